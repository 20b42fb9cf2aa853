// The small HTTP plumbing every server shares: listen on a kube-proxy style address with the
// limits of limits.ts, and answer unknown paths the way Go's ServeMux does.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { parseListenAddress } from './address.js';
import { ConnectionBudget, nodeServerOptions, refuseRequest, serverLimits, type ServerLimits } from './limits.js';

export interface RunningServer {
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** The bound host as given ("" means all interfaces). */
  readonly host: string;
  close(): Promise<void>;
}

export type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface ListenOptions {
  /** For "::": IPv6 only, so that a separate IPv4 listener can share the port. */
  ipv6Only?: boolean;
  /** Overrides of DEFAULT_SERVER_LIMITS (tests shorten the timeouts). */
  limits?: Partial<ServerLimits>;
  /** A connection budget shared with other servers; default one of limits.maxConnections for this server. */
  connections?: ConnectionBudget;
}

/** Listens on "host:port"; rejects if the address is malformed or the listen fails. */
export async function listen(address: string, handler: Handler, onError?: (err: unknown) => void, options: ListenOptions = {}): Promise<RunningServer> {
  const { host, port } = parseListenAddress(address);
  const limits = serverLimits(options.limits);
  const budget = options.connections ?? new ConnectionBudget(limits.maxConnections);
  const dispatch = (req: IncomingMessage, res: ServerResponse): void => {
    Promise.resolve(handler(req, res)).catch((err: unknown) => {
      onError?.(err);
      if (!res.headersSent) {
        res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
      }
      res.end();
    });
  };
  const server: Server = createServer(nodeServerOptions(limits), (req, res) => {
    if (!refuseRequest(req, res, limits)) dispatch(req, res);
  });
  // "Expect: 100-continue": a refused body is not invited (Node would send 100 by default).
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (refuseRequest(req, res, limits)) return;
    res.writeContinue();
    dispatch(req, res);
  });
  // Counted here rather than with server.maxConnections, so that servers can share a budget.
  server.on('connection', (socket) => budget.admit(socket));
  // With no 'timeout' listener Node destroys a socket idle this long.
  server.timeout = limits.socketIdleTimeoutMs;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: host === '' ? undefined : host, port, ipv6Only: options.ipv6Only === true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // After listening, an 'error' is an accept that failed (EMFILE: out of file descriptors). The
  // connection stays queued and is accepted once fds are free; without a listener it would crash us.
  server.on('error', (err) => onError?.(err));
  const bound = server.address();
  const boundPort = typeof bound === 'object' && bound ? bound.port : port;
  return {
    port: boundPort,
    host,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

/** The request path without the query string. */
export function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/** Writes a complete response with a Content-Length (as Go does for small bodies), not chunked. */
export function send(res: ServerResponse, code: number, headers: Record<string, string>, body: string): void {
  res.writeHead(code, { ...headers, 'Content-Length': String(Buffer.byteLength(body)) });
  res.end(body);
}

/** Go's http.NotFound: 404, "404 page not found\n". */
export function notFound(res: ServerResponse): void {
  send(res, 404, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' }, '404 page not found\n');
}
