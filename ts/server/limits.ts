// The limits every kproxy HTTP server runs with (metrics, proxier health, per-Service health
// checks): these serve small GET answers to probes and scrapers, so anything slower, bigger or
// more numerous than that is refused early instead of holding sockets, fds or memory.
// Upstream's Go servers set none of these; the answers on the normal paths are unchanged.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface ServerLimits {
  /** Time to receive the request line and headers (slowloris); Node answers 408 and closes. */
  headersTimeoutMs: number;
  /** Time to receive the whole request; must be >= headersTimeoutMs. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** A socket with no bytes either way this long (silent, or not reading the answer) is destroyed. */
  socketIdleTimeoutMs: number;
  /** How often Node checks the headers and request timeouts (its default is 30 s). */
  checkIntervalMs: number;
  /** Header bytes as Node counts them (URL, names and values); beyond it Node answers 431 and closes. */
  maxHeaderBytes: number;
  /** A declared Content-Length beyond this is answered 413 without reading the body. */
  maxBodyBytes: number;
  /** Open connections per server (or per shared ConnectionBudget); more are closed at accept. */
  maxConnections: number;
}

/** Production values: a probe or a scrape needs well under a second and a few hundred bytes. */
export const DEFAULT_SERVER_LIMITS: Readonly<ServerLimits> = Object.freeze({
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 15_000,
  keepAliveTimeoutMs: 5_000,
  socketIdleTimeoutMs: 10_000,
  checkIntervalMs: 1_000,
  maxHeaderBytes: 8 * 1024,
  maxBodyBytes: 1024,
  maxConnections: 128,
});

export function serverLimits(overrides: Partial<ServerLimits> = {}): ServerLimits {
  const l = { ...DEFAULT_SERVER_LIMITS, ...overrides };
  // Node refuses a headers timeout above the request timeout.
  if (l.requestTimeoutMs < l.headersTimeoutMs) l.requestTimeoutMs = l.headersTimeoutMs;
  return l;
}

/** The options for http.createServer that carry these limits. */
export function nodeServerOptions(l: ServerLimits): { headersTimeout: number; requestTimeout: number; keepAliveTimeout: number; connectionsCheckingInterval: number; maxHeaderSize: number } {
  return {
    headersTimeout: l.headersTimeoutMs,
    requestTimeout: l.requestTimeoutMs,
    keepAliveTimeout: l.keepAliveTimeoutMs,
    connectionsCheckingInterval: l.checkIntervalMs,
    maxHeaderSize: l.maxHeaderBytes,
  };
}

/**
 * Counts open connections across one or more servers: the per-Service health-check servers
 * share one, so many Services do not multiply the fds a flood can take.
 */
export class ConnectionBudget {
  private open = 0;
  constructor(readonly max: number) {}

  get count(): number {
    return this.open;
  }

  /** Takes a slot for `socket` until it closes; destroys it when none is free. */
  admit(socket: Socket): boolean {
    if (this.open >= this.max) {
      socket.destroy();
      return false;
    }
    this.open++;
    socket.once('close', () => this.open--);
    return true;
  }
}

export const ALLOWED_METHODS = 'GET, HEAD';
const TEXT_PLAIN = 'text/plain; charset=utf-8';

/**
 * Refuses what these servers never take: methods other than GET and HEAD (405 with Allow) and
 * request bodies (413 for a Content-Length above the cap, or a chunked body of unknown size).
 * A refused request with a body closes its connection, so the body is never read or drained.
 * Returns true when it answered.
 */
export function refuseRequest(req: IncomingMessage, res: ServerResponse, l: ServerLimits): boolean {
  const length = req.headers['content-length'];
  const chunked = req.headers['transfer-encoding'] !== undefined;
  const declared = length === undefined ? 0 : Number(length);
  const hasBody = chunked || declared > 0;
  let code = 0;
  let body = '';
  const headers: Record<string, string> = { 'Content-Type': TEXT_PLAIN, 'X-Content-Type-Options': 'nosniff' };
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    code = 405;
    body = 'Method Not Allowed\n';
    headers.Allow = ALLOWED_METHODS;
  } else if (chunked || !(declared <= l.maxBodyBytes)) {
    code = 413;
    body = 'Request Entity Too Large\n';
  }
  if (code === 0) return false;
  // Node then closes the socket once the answer is written, instead of draining the body.
  if (hasBody) headers.Connection = 'close';
  res.writeHead(code, { ...headers, 'Content-Length': String(Buffer.byteLength(body)) });
  res.end(body);
  return true;
}
