// userspace mode's metrics (kproxy's own names; upstream's userspace proxier had none of
// these). Per Service, read from the proxy threads' counters at each scrape: connections
// accepted, active and failed (by reason), bytes each way, and the time to connect to an
// endpoint. Both families' proxiers feed the same series, labelled by family.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { NativeUserspaceStats } from '../../addon/native.js';
import type { IPFamily } from '../../model/types.js';

export interface UserspaceSource {
  family: IPFamily;
  stats(): NativeUserspaceStats[];
  engineStats(): { fdExhausted: number; acceptErrors: number };
}

export interface UserspaceConstants {
  failureReasons: string[];
  connectBuckets: number[];
}

export interface UserspaceMetrics {
  frontends: Gauge<'ip_family'>;
  listenFailures: Gauge<'ip_family'>;
  driftRepairsTotal: Counter<'ip_family'>;
  driftRepairsDelayedTotal: Counter<'ip_family'>;
}

type Labels = Record<string, string | number>;
interface Value { value: number; labels: Labels; metricName?: string }

/** A metric whose values are computed at scrape time (prom-client takes any object with get()). */
interface Collected {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  aggregator: 'sum';
  get(): { name: string; help: string; type: string; values: Value[]; aggregator: 'sum' };
  reset(): void;
}

const sources = new WeakMap<Registry, Set<UserspaceSource>>();

function collected(registry: Registry, name: string, help: string, type: Collected['type'], values: (s: UserspaceSource) => Value[]): void {
  if (registry.getSingleMetric(name)) return;
  const m: Collected = {
    name, help, type, aggregator: 'sum',
    get: () => ({ name, help, type, aggregator: 'sum', values: [...(sources.get(registry) ?? [])].flatMap(values) }),
    reset: () => undefined,
  };
  registry.registerMetric(m as never);
}

function perService(s: UserspaceSource, f: (st: NativeUserspaceStats, base: Labels) => Value[]): Value[] {
  return s.stats().flatMap((st) => f(st, { service: st.service, ip_family: s.family }));
}

/** One snapshot per scrape: the six per-Service metrics read the same counters. */
function oncePerScrape<T>(f: () => T): () => T {
  let v: T | undefined;
  return () => {
    if (v === undefined) {
      v = f();
      setImmediate(() => (v = undefined));
    }
    return v;
  };
}

export function userspaceMetrics(registry: Registry, source: UserspaceSource, k: UserspaceConstants): UserspaceMetrics {
  if (!sources.has(registry)) sources.set(registry, new Set());
  sources.get(registry)!.add({ ...source, stats: oncePerScrape(source.stats) });
  collected(registry, 'kproxy_userspace_connections_accepted_total', 'Connections (UDP: sessions) the userspace proxy accepted, per Service', 'counter',
    (s) => perService(s, (st, labels) => [{ value: st.accepted, labels }]));
  collected(registry, 'kproxy_userspace_connections_active', 'Connections (UDP: sessions) the userspace proxy is relaying, per Service', 'gauge',
    (s) => perService(s, (st, labels) => [{ value: st.active, labels }]));
  collected(registry, 'kproxy_userspace_connections_failed_total', 'Accepted connections not relayed, per Service and reason (no_endpoint, connect, limit, source_range)', 'counter',
    (s) => perService(s, (st, labels) => k.failureReasons.map((reason, i) => ({ value: st.failed[i] ?? 0, labels: { ...labels, reason } }))));
  collected(registry, 'kproxy_userspace_endpoint_connect_errors_total', 'Connect attempts to endpoints that failed or timed out (a connection retries the next endpoint), per Service', 'counter',
    (s) => perService(s, (st, labels) => [{ value: st.connectErrors, labels }]));
  collected(registry, 'kproxy_userspace_bytes_total', 'Bytes the userspace proxy relayed, per Service and direction (to_endpoint, to_client)', 'counter',
    (s) => perService(s, (st, labels) => [
      { value: st.bytesIn, labels: { ...labels, direction: 'to_endpoint' } },
      { value: st.bytesOut, labels: { ...labels, direction: 'to_client' } },
    ]));
  const hist = 'kproxy_userspace_endpoint_connect_duration_seconds';
  collected(registry, hist, 'Time to connect to an endpoint, per Service', 'histogram',
    (s) => perService(s, (st, labels) => [
      ...k.connectBuckets.map((le, i) => ({ metricName: `${hist}_bucket`, value: st.connectBuckets[i] ?? 0, labels: { ...labels, le } })),
      { metricName: `${hist}_bucket`, value: st.connectCount, labels: { ...labels, le: '+Inf' } },
      { metricName: `${hist}_sum`, value: st.connectSum, labels },
      { metricName: `${hist}_count`, value: st.connectCount, labels },
    ]));
  // One proxy serves both families: its own trouble is counted once.
  const first = (s: UserspaceSource): boolean => [...(sources.get(registry) ?? [])][0] === s;
  collected(registry, 'kproxy_userspace_accept_errors_total', 'accept(2) and recvfrom(2) errors on the userspace proxy frontends', 'counter',
    (s) => (first(s) ? [{ value: s.engineStats().acceptErrors, labels: {} }] : []));
  collected(registry, 'kproxy_userspace_fd_exhausted_total', 'Times the userspace proxy ran out of file descriptors (EMFILE, ENFILE) while accepting', 'counter',
    (s) => (first(s) ? [{ value: s.engineStats().fdExhausted, labels: {} }] : []));
  const gauge = (name: string, help: string) =>
    (registry.getSingleMetric(name) as Gauge<'ip_family'> | undefined) ?? new Gauge({ name, help, labelNames: ['ip_family'] as const, registers: [registry] });
  const counter = (name: string, help: string) =>
    (registry.getSingleMetric(name) as Counter<'ip_family'> | undefined) ?? new Counter({ name, help, labelNames: ['ip_family'] as const, registers: [registry] });
  return {
    driftRepairsTotal: counter('kproxy_userspace_drift_repairs_total', 'Syncs started because Service addresses went missing from the link'),
    driftRepairsDelayedTotal: counter('kproxy_userspace_drift_repairs_delayed_total', 'Drift repairs that waited, the link\'s addresses being removed again and again'),
    frontends: gauge('kproxy_userspace_frontends', 'Sockets the userspace proxy listens on (address, protocol and port)'),
    listenFailures: gauge('kproxy_userspace_listen_failures', 'Frontends wanted but not listening (address in use, say); retried each sync'),
  };
}
