// Per-Service health-check servers, as upstream's pkg/proxy/healthcheck/service_health.go: one
// HTTP server per Service (namespace/name) that has a healthCheckNodePort (LoadBalancer with
// externalTrafficPolicy Local), so cloud load balancers only send traffic to nodes with a
// local ready endpoint. Any path answers 200 when the Service has local ready endpoints and the
// proxier is healthy, else 503.
//
// One instance per IP family, as upstream has one per family proxier. With no nodePortAddresses
// an instance binds its family's wildcard only ("0.0.0.0", or "::" IPv6-only), as upstream since
// kubernetes#137370: before it both families bound Go's dual-stack 0.0.0.0 and one always failed
// with EADDRINUSE (kubernetes#114702).

import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { logV } from '../log.js';
import type { IPFamily, ServicePort } from '../model/types.js';
import { realClock, type Clock, type TimerHandle } from '../runner/clock.js';
import { joinHostPort } from './address.js';
import { listen as httpListen, send, type Handler } from './http.js';
import { ConnectionBudget, serverLimits, type ServerLimits } from './limits.js';

export interface ServiceName {
  namespace: string;
  name: string;
}

export interface Closable {
  close(): Promise<void>;
}

/** Opens one listener; rejects (EADDRINUSE, EACCES...) when it cannot. */
export type ListenFn = (host: string, port: number, handler: Handler) => Promise<Closable>;

export interface ServiceHealthOptions {
  logger: Logger;
  /** The family this instance serves (default IPv4): it picks the wildcard address. */
  family?: IPFamily;
  /** This family's nodePortAddresses IPs on the node; 'all' or [] binds the family's wildcard. */
  nodeIPs: () => string[] | 'all';
  /** The proxier's health (ProxyHealth.isHealthy()); node eligibility does not count here. */
  healthy: () => boolean;
  /** A listen failed (the agent's FailedToStartServiceHealthcheck Event); once per distinct failure. */
  onListenError?: (svc: ServiceName, port: number, err: Error) => void;
  /** Wait between retries of failed listens (default 5000, the metrics server's retry period). */
  retryMs?: number;
  clock?: Clock;
  listen?: ListenFn;
  /** Overrides of DEFAULT_SERVER_LIMITS for the default listen. */
  limits?: Partial<ServerLimits>;
  /**
   * The connections all these servers may hold together (the agent shares one between the
   * families); default one of limits.maxConnections for this instance.
   */
  connections?: ConnectionBudget;
}

interface Instance {
  port: number;
  /** The bound hosts, sorted and joined: a change of node IPs reopens. */
  hosts: string;
  servers: Closable[];
}

function defaultListen(limits: Partial<ServerLimits> | undefined, connections: ConnectionBudget): ListenFn {
  return (host, port, handler) => httpListen(joinHostPort(host, port), handler, undefined, { ipv6Only: host === '::', limits, connections });
}

export class ServiceHealthServers {
  private readonly opts: ServiceHealthOptions;
  private readonly clock: Clock;
  private readonly listenFn: ListenFn;
  private readonly wanted = new Map<string, number>();
  private readonly open = new Map<string, Instance>();
  private counts = new Map<string, number>();
  /** The last failure reported per Service, so retries do not repeat the Event. */
  private readonly reported = new Map<string, string>();
  private running: Promise<void> | undefined;
  private dirty = false;
  private retryTimer: TimerHandle | undefined;
  private closed = false;

  constructor(opts: ServiceHealthOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? realClock;
    this.listenFn = opts.listen ?? defaultListen(opts.limits, opts.connections ?? new ConnectionBudget(serverLimits(opts.limits).maxConnections));
  }

  /**
   * Upstream's SyncServices: `services` maps "namespace/name" to its healthCheckNodePort and is
   * the whole set. Servers of Services not in it close, a changed port closes and reopens, new
   * ones open; failed ones are tried again now and every retryMs. Never throws.
   */
  syncServices(services: ReadonlyMap<string, number>): void {
    if (this.closed) return;
    this.wanted.clear();
    for (const [key, port] of services) {
      if (Number.isInteger(port) && port > 0 && port <= 65535) this.wanted.set(key, port);
      else this.opts.logger.warn({ service: key, port }, 'Ignoring invalid healthCheckNodePort');
    }
    for (const key of this.reported.keys()) if (!this.wanted.has(key)) this.reported.delete(key);
    this.kick();
  }

  /**
   * Upstream's SyncEndpoints: local ready endpoints per "namespace/name"; a Service missing from
   * the map has 0. Unlike upstream, counts of Services not open yet are kept, so a listen that
   * succeeds on a timer retry answers with the right count.
   */
  syncEndpoints(localEndpoints: ReadonlyMap<string, number>): void {
    this.counts = new Map(localEndpoints);
  }

  /** Resolves once pending opens and closes are done (tests, shutdown). */
  whenIdle(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  /** Closes every server and stops retrying; later syncs are ignored. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer !== undefined) this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.wanted.clear();
    this.kick();
    await this.whenIdle();
  }

  private kick(): void {
    this.dirty = true;
    this.running ??= this.loop();
  }

  // One pass at a time; a sync during a pass reruns it, so the latest set always wins.
  private async loop(): Promise<void> {
    while (this.dirty) {
      this.dirty = false;
      try {
        await this.reconcile();
      } catch (err) {
        this.opts.logger.error({ err }, 'Service health check reconcile failed');
      }
    }
    this.running = undefined;
  }

  private async reconcile(): Promise<void> {
    const hosts = this.bindHosts();
    const signature = hosts.join(',');
    const closing: Array<Promise<void>> = [];
    for (const [key, inst] of this.open) {
      if (this.wanted.get(key) === inst.port && inst.hosts === signature) continue;
      this.open.delete(key);
      logV(this.opts.logger, 2, { service: key, port: inst.port }, 'Closing healthcheck');
      closing.push(closeAll(inst.servers, (err) => this.opts.logger.error({ err, service: key }, 'Error closing server for health check service')));
    }
    // Closed first, so that a port moving from one Service to another is free to reopen.
    await Promise.all(closing);
    const opening: Array<Promise<void>> = [];
    for (const [key, port] of this.wanted) {
      if (!this.open.has(key)) opening.push(this.openOne(key, port, hosts, signature));
    }
    await Promise.all(opening);
    this.armRetry();
  }

  private bindHosts(): string[] {
    let ips: string[] | 'all' = 'all';
    try {
      ips = this.opts.nodeIPs();
    } catch (err) {
      this.opts.logger.error({ err }, 'Failed to get node IPs, health check ports will listen on all addresses');
    }
    if (ips === 'all' || ips.length === 0) return [this.opts.family === 'IPv6' ? '::' : '0.0.0.0'];
    return [...new Set(ips)].sort();
  }

  private async openOne(key: string, port: number, hosts: string[], signature: string): Promise<void> {
    const svc = splitKey(key);
    const handler: Handler = (_req, res) => this.respond(key, svc, res);
    logV(this.opts.logger, 2, { service: key, port }, 'Opening healthcheck');
    const servers: Closable[] = [];
    try {
      for (const host of hosts) servers.push(await this.listenFn(host, port, handler));
    } catch (e) {
      // All or nothing, as upstream: a half-open Service would hide the failure from the retry.
      await closeAll(servers, () => {});
      this.failed(key, svc, port, signature, e instanceof Error ? e : new Error(String(e)));
      return;
    }
    this.reported.delete(key);
    this.open.set(key, { port, hosts: signature, servers });
  }

  private failed(key: string, svc: ServiceName, port: number, hosts: string, err: Error): void {
    if (this.closed) return;
    const what = `${port}|${hosts}|${(err as NodeJS.ErrnoException).code ?? err.message}`;
    if (this.reported.get(key) === what) {
      logV(this.opts.logger, 2, { err, service: key, port }, 'Healthcheck still failing to start');
      return;
    }
    this.reported.set(key, what);
    this.opts.logger.error({ err, service: key, port }, 'Failed to start healthcheck');
    try {
      this.opts.onListenError?.(svc, port, err);
    } catch (cbErr) {
      this.opts.logger.error({ err: cbErr, service: key }, 'Health check listen-error callback failed');
    }
  }

  private armRetry(): void {
    const missing = [...this.wanted.keys()].some((key) => !this.open.has(key));
    if (!missing && this.retryTimer !== undefined) {
      this.clock.clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
    }
    if (this.closed || !missing || this.retryTimer !== undefined) return;
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.closed) this.kick();
    }, this.opts.retryMs ?? 5000);
    // A pending retry alone must not keep the process alive.
    (this.retryTimer as { unref?: () => void }).unref?.();
  }

  private respond(key: string, svc: ServiceName, res: ServerResponse): void {
    const count = this.counts.get(key) ?? 0;
    const healthy = this.opts.healthy();
    const headers = {
      'Content-Type': 'application/json',
      'X-Content-Type-Options': 'nosniff',
      'X-Load-Balancing-Endpoint-Weight': String(count),
    };
    send(res, count > 0 && healthy ? 200 : 503, headers, serviceHealthBody(svc, count, healthy));
  }
}

/** The response body, byte for byte as upstream's: tab-indented JSON, no trailing newline. */
export function serviceHealthBody(svc: ServiceName, localEndpoints: number, healthy: boolean): string {
  return JSON.stringify({ service: { namespace: svc.namespace, name: svc.name }, localEndpoints, serviceProxyHealthy: healthy }, null, '\t');
}

export interface ServiceHealthMaps {
  /** "namespace/name" → healthCheckNodePort (for syncServices). */
  services: Map<string, number>;
  /** "namespace/name" → local ready endpoints (for syncEndpoints). */
  localEndpoints: Map<string, number>;
}

/**
 * Both maps from one family's ServicePorts, as upstream's HealthCheckNodePorts() and
 * LocalReadyEndpoints(): ports with a healthCheckNodePort, and per Service the distinct IPs of
 * its local ready endpoints over all its ports (10.0.0.1:80 and 10.0.0.1:443 are one endpoint).
 * Terminating endpoints are not ready, so a node with only those fails the check and drains.
 */
export function serviceHealthMaps(ports: Iterable<ServicePort>): ServiceHealthMaps {
  const services = new Map<string, number>();
  const ips = new Map<string, Set<string>>();
  for (const sp of ports) {
    if (!(sp.healthCheckNodePort > 0)) continue;
    const key = `${sp.namespace}/${sp.name}`;
    services.set(key, sp.healthCheckNodePort);
    let set = ips.get(key);
    if (!set) ips.set(key, (set = new Set()));
    for (const ep of sp.endpoints) if (ep.isLocal && ep.ready) set.add(ep.ip);
  }
  const localEndpoints = new Map<string, number>();
  for (const [key, set] of ips) if (set.size > 0) localEndpoints.set(key, set.size);
  return { services, localEndpoints };
}

function splitKey(key: string): ServiceName {
  const slash = key.indexOf('/');
  return slash < 0 ? { namespace: '', name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

async function closeAll(servers: Closable[], onError: (err: unknown) => void): Promise<void> {
  await Promise.all(servers.map((s) => s.close().catch(onError)));
}
