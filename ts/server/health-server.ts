// The proxier health server (default 0.0.0.0:10256): exactly /healthz and /livez, with the
// JSON bodies and 200/503 codes of upstream's proxy_health.go; every other path is a 404.
// Each answer counts in kubeproxy_proxy_healthz_total / kubeproxy_proxy_livez_total{code}.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { ProxyHealth } from './health.js';
import type { ProxyMetrics } from './metrics.js';
import { listen, notFound, pathOf, send, type RunningServer } from './http.js';
import type { ServerLimits } from './limits.js';

export type { RunningServer } from './http.js';

export interface HealthServerOptions {
  address: string;
  health: ProxyHealth;
  metrics?: Pick<ProxyMetrics, 'proxyHealthzTotal' | 'proxyLivezTotal'>;
  logger?: Logger;
  /** Overrides of DEFAULT_SERVER_LIMITS. */
  limits?: Partial<ServerLimits>;
}

export async function startHealthServer(options: HealthServerOptions): Promise<RunningServer> {
  const { health, metrics, logger } = options;

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const path = pathOf(req);
    if (path !== '/healthz' && path !== '/livez') {
      notFound(res);
      return;
    }
    const which = path === '/healthz' ? 'healthz' : 'livez';
    const { code, body } = health.status(which);
    const counter = which === 'healthz' ? metrics?.proxyHealthzTotal : metrics?.proxyLivezTotal;
    counter?.inc({ code: String(code) });
    send(res, code, { 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff' }, body);
  };

  const server = await listen(options.address, handler, (err) => logger?.error({ err }, 'Health server request failed'), { limits: options.limits });
  logger?.info({ address: options.address, port: server.port }, 'Started proxier health server');
  return server;
}
