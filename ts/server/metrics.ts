// kube-proxy's Prometheus metrics that every mode shares (pkg/proxy/metrics): same names,
// types, labels and buckets, with component-base's "[ALPHA] " help prefix. Plus kproxy's own
// kproxy_invalid_objects_total, kproxy_resource_exhausted_total and the default process metrics. Each mode registers its
// own metrics (ts/modes/<mode>/metrics.ts).

import { Counter, Gauge, Histogram, collectDefaultMetrics, exponentialBuckets, linearBuckets, type Registry } from 'prom-client';

export interface ProxyMetrics {
  syncProxyRulesDuration: Histogram<'ip_family'>;
  syncFullProxyRulesDuration: Histogram<'ip_family'>;
  syncPartialProxyRulesDuration: Histogram<'ip_family'>;
  networkProgrammingDuration: Histogram<'ip_family'>;
  syncProxyRulesLastTimestamp: Gauge<'ip_family'>;
  syncProxyRulesLastQueuedTimestamp: Gauge<'ip_family'>;
  endpointChangesPending: Gauge;
  serviceChangesPending: Gauge;
  endpointChangesTotal: Counter;
  serviceChangesTotal: Counter;
  /** traffic_policy is "internal" or "external". */
  noLocalEndpointsTotal: Gauge<'ip_family' | 'traffic_policy'>;
  proxyHealthzTotal: Counter<'code'>;
  proxyLivezTotal: Counter<'code'>;
  /** kproxy only: objects rejected by validation, by kind and reason. */
  invalidObjectsTotal: Counter<'kind' | 'reason'>;
  /** kproxy only: times a resource ran out (file descriptors, a socket buffer, a set's size cap), by where. */
  resourceExhaustedTotal: Counter<'resource' | 'component'>;
}

export interface CreateMetricsOptions {
  /** Register process_* and nodejs_* metrics too (default true). */
  defaultMetrics?: boolean;
}

// ExponentialBuckets(0.001, 2, 15): 1ms ... 16.384s.
export const SYNC_DURATION_BUCKETS = exponentialBuckets(0.001, 2, 15);

// 0.25, 0.5, then 1..59 by 1, 60..115 by 5, 120..300 by 30.
export const NETWORK_PROGRAMMING_BUCKETS = [
  ...linearBuckets(0.25, 0.25, 2),
  ...linearBuckets(1, 1, 59),
  ...linearBuckets(60, 5, 12),
  ...linearBuckets(120, 30, 7),
];

const alpha = (help: string) => `[ALPHA] ${help}`;

/** kproxy_resource_exhausted_total, registered once per registry: the modes count into it too. */
export function resourceExhaustedCounter(registry: Registry): Counter<'resource' | 'component'> {
  const name = 'kproxy_resource_exhausted_total';
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Counter<'resource' | 'component'>;
  return new Counter({ name, labelNames: ['resource', 'component'] as const, registers: [registry],
    help: 'Times a resource ran out (file_descriptors, socket_buffer, set_size), by the component that met it; each is retried' });
}

export function createMetrics(registry: Registry, options: CreateMetricsOptions = {}): ProxyMetrics {
  const registers = [registry];
  const histogram = (name: string, help: string, buckets: number[]) =>
    new Histogram({ name, help: alpha(help), labelNames: ['ip_family'] as const, buckets, registers });
  const familyGauge = (name: string, help: string) =>
    new Gauge({ name, help: alpha(help), labelNames: ['ip_family'] as const, registers });
  const codeCounter = (name: string, help: string) =>
    new Counter({ name, help: alpha(help), labelNames: ['code'] as const, registers });

  const metrics: ProxyMetrics = {
    syncProxyRulesDuration: histogram('kubeproxy_sync_proxy_rules_duration_seconds',
      'SyncProxyRules latency in seconds', SYNC_DURATION_BUCKETS),
    syncFullProxyRulesDuration: histogram('kubeproxy_sync_full_proxy_rules_duration_seconds',
      'SyncProxyRules latency in seconds for full resyncs', SYNC_DURATION_BUCKETS),
    syncPartialProxyRulesDuration: histogram('kubeproxy_sync_partial_proxy_rules_duration_seconds',
      'SyncProxyRules latency in seconds for partial resyncs', SYNC_DURATION_BUCKETS),
    networkProgrammingDuration: histogram('kubeproxy_network_programming_duration_seconds',
      'In Cluster Network Programming Latency in seconds', NETWORK_PROGRAMMING_BUCKETS),
    syncProxyRulesLastTimestamp: familyGauge('kubeproxy_sync_proxy_rules_last_timestamp_seconds',
      'The last time proxy rules were successfully synced'),
    syncProxyRulesLastQueuedTimestamp: familyGauge('kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds',
      'The last time a sync of proxy rules was queued'),
    endpointChangesPending: new Gauge({ name: 'kubeproxy_sync_proxy_rules_endpoint_changes_pending',
      help: alpha('Pending proxy rules Endpoint changes'), registers }),
    serviceChangesPending: new Gauge({ name: 'kubeproxy_sync_proxy_rules_service_changes_pending',
      help: alpha('Pending proxy rules Service changes'), registers }),
    endpointChangesTotal: new Counter({ name: 'kubeproxy_sync_proxy_rules_endpoint_changes_total',
      help: alpha('Cumulative proxy rules Endpoint changes'), registers }),
    serviceChangesTotal: new Counter({ name: 'kubeproxy_sync_proxy_rules_service_changes_total',
      help: alpha('Cumulative proxy rules Service changes'), registers }),
    noLocalEndpointsTotal: new Gauge({ name: 'kubeproxy_sync_proxy_rules_no_local_endpoints_total',
      help: alpha('Number of services with a Local traffic policy and no endpoints'),
      labelNames: ['ip_family', 'traffic_policy'] as const, registers }),
    proxyHealthzTotal: codeCounter('kubeproxy_proxy_healthz_total', 'Cumulative proxy healthz HTTP status'),
    proxyLivezTotal: codeCounter('kubeproxy_proxy_livez_total', 'Cumulative proxy livez HTTP status'),
    invalidObjectsTotal: new Counter({ name: 'kproxy_invalid_objects_total',
      help: 'Service, EndpointSlice and Node objects kproxy rejected, by kind and reason',
      labelNames: ['kind', 'reason'] as const, registers }),
    resourceExhaustedTotal: resourceExhaustedCounter(registry),
  };
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  return metrics;
}
