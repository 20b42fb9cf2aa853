// The metrics server (default 127.0.0.1:10249), as kube-proxy's serveMetrics:
// /metrics (Prometheus text), /healthz and /healthz/ping ("ok"), /proxyMode (the mode, no
// newline), /configz ({"kubeproxy.config.k8s.io": <config>}), /flagz (the flags, as text);
// kproxy adds its status: the page at / and the document at /kproxy/status.json (upstream's
// /statusz is a component-base zpage, another thing: kproxy does not take that name).
// Anything else is a 404. No /livez here, as upstream. Listen failures reject; retrying is the caller's choice.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { Logger } from 'pino';
import { renderStatusPage } from '../status/page.js';
import { STATUS_JSON_PATH, type StatusDoc } from '../status/types.js';
import { listen, notFound, pathOf, send, type RunningServer } from './http.js';
import type { ServerLimits } from './limits.js';

export type { RunningServer } from './http.js';

export interface MetricsServerOptions {
  address: string;
  mode: string;
  registry: Registry;
  /** The effective KubeProxyConfiguration, read at each request. */
  configz: () => object;
  /** The /flagz body (upstream's zpages text: a header, then `name=value` per flag); 404 when unset. */
  flagz?: () => string;
  /** The agent's status document, built at each request; / and /kproxy/status.json are 404s without it. */
  status?: () => StatusDoc;
  logger?: Logger;
  /** Overrides of DEFAULT_SERVER_LIMITS. */
  limits?: Partial<ServerLimits>;
}

const TEXT_PLAIN = 'text/plain; charset=utf-8';

export async function startMetricsServer(options: MetricsServerOptions): Promise<RunningServer> {
  const { mode, registry, configz, flagz, status, logger } = options;

  const handler = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = pathOf(req);
    switch (path) {
      case '/metrics': {
        send(res, 200, { 'Content-Type': registry.contentType }, await registry.metrics());
        return;
      }
      case '/healthz':
        // component-base healthz: "?verbose" lists the checks (only "ping" here).
        send(res, 200, { 'Content-Type': TEXT_PLAIN, 'X-Content-Type-Options': 'nosniff' },
          hasQuery(req, 'verbose') ? '[+]ping ok\nhealthz check passed\n' : 'ok');
        return;
      case '/healthz/ping':
        send(res, 200, { 'Content-Type': TEXT_PLAIN }, 'ok');
        return;
      case '/proxyMode':
        send(res, 200, { 'Content-Type': TEXT_PLAIN, 'X-Content-Type-Options': 'nosniff' }, mode);
        return;
      case '/configz':
        send(res, 200, { 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff' },
          JSON.stringify({ 'kubeproxy.config.k8s.io': configz() }));
        return;
      case '/flagz':
        if (!flagz) return notFound(res);
        send(res, 200, { 'Content-Type': TEXT_PLAIN, 'X-Content-Type-Options': 'nosniff' }, flagz());
        return;
      case STATUS_JSON_PATH:
        if (!status) return notFound(res);
        send(res, 200, { 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store' }, JSON.stringify(status()));
        return;
      case '/':
        if (!status) return notFound(res);
        send(res, 200, { 'Content-Type': 'text/html; charset=utf-8', 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store' },
          renderStatusPage(status(), pageQuery(req)));
        return;
      default:
        notFound(res);
    }
  };

  const server = await listen(options.address, handler, (err) => logger?.error({ err }, 'Metrics server request failed'), { limits: options.limits });
  logger?.info({ address: options.address, port: server.port }, 'Started metrics server');
  return server;
}

function pageQuery(req: IncomingMessage): { filter: string; limit?: number } {
  const q = new URL(req.url ?? '/', 'http://x').searchParams;
  const limit = Number(q.get('limit'));
  return { filter: q.get('q') ?? '', limit: Number.isInteger(limit) && limit > 0 ? limit : undefined };
}

function hasQuery(req: IncomingMessage, key: string): boolean {
  return new URL(req.url ?? '/', 'http://x').searchParams.has(key);
}
