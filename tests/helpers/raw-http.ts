// HTTP/1.1 over a bare TCP socket, for tests that send what a well-behaved client would not
// (bytes one at a time, oversize headers, bodies that never end) and watch when the server closes.
import { readdirSync } from 'node:fs';
import { connect, createServer as createNetServer, type Socket } from 'node:net';

export interface RawReply {
  /** 0 when no status line came back. */
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The server closed the connection (else the wait ran out). */
  closed: boolean;
  ms: number;
}

/** Parses the first response in `raw` (headers lower-cased; the body is whatever followed). */
export function parseReply(raw: string): Pick<RawReply, 'status' | 'headers' | 'body'> {
  const end = raw.indexOf('\r\n\r\n');
  const head = end < 0 ? raw : raw.slice(0, end);
  const [line, ...rest] = head.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(line ?? '');
  const headers: Record<string, string> = {};
  for (const h of rest) {
    const colon = h.indexOf(':');
    if (colon > 0) headers[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trim();
  }
  return { status: m ? Number(m[1]) : 0, headers, body: end < 0 ? '' : raw.slice(end + 4) };
}

/** Writes `data`, then reads until the server closes or `waitMs` passes. */
export function rawRequest(port: number, data: string | Buffer, waitMs = 3000): Promise<RawReply> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = connect({ host: '127.0.0.1', port });
    let got = '';
    let closed = false;
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...parseReply(got), closed, ms: Date.now() - started });
    };
    const timer = setTimeout(finish, waitMs);
    socket.on('connect', () => socket.write(data));
    socket.on('data', (d) => (got += d.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => {
      closed = true;
      finish();
    });
  });
}

/** A plain GET on its own connection. */
export function get(port: number, path: string, method = 'GET', waitMs = 3000): Promise<RawReply> {
  return rawRequest(port, `${method} ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, waitMs);
}

/** Resolves once `socket` connected or failed: true if connected. */
export function connected(socket: Socket): Promise<boolean> {
  return new Promise((resolve) => {
    socket.once('connect', () => resolve(true));
    socket.once('error', () => resolve(false));
    socket.once('close', () => resolve(false));
  });
}

/** This process's open file descriptors. */
export function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Polls until the fd count is at most `baseline`, or `timeoutMs` passes; returns the last count. */
export async function fdsBackTo(baseline: number, timeoutMs = 5000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let n = fdCount();
  while (n > baseline && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    n = fdCount();
  }
  return n;
}

/** A TCP port on 127.0.0.1 that nothing listens on (just now). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen({ port: 0, host: '127.0.0.1' }, () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}
