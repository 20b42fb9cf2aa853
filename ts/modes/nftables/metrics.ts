// nftables mode's own metrics (upstream pkg/proxy/metrics: nftables only). Both families'
// proxiers share one registry, so each metric is registered once and labelled by family.
import { Counter, type Registry } from 'prom-client';

export interface NftablesMetrics {
  syncFailuresTotal: Counter<'ip_family'>;
  cleanupFailuresTotal: Counter<'ip_family'>;
  driftRepairsTotal: Counter<'ip_family'>;
  driftRepairsDelayedTotal: Counter<'ip_family'>;
}

function familyCounter(registry: Registry, name: string, help: string): Counter<'ip_family'> {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Counter<'ip_family'>;
  return new Counter({ name, help: `[ALPHA] ${help}`, labelNames: ['ip_family'] as const, registers: [registry] });
}

export function nftablesMetrics(registry: Registry): NftablesMetrics {
  return {
    syncFailuresTotal: familyCounter(registry, 'kubeproxy_sync_proxy_rules_nftables_sync_failures_total', 'Cumulative proxy nftables sync failures'),
    cleanupFailuresTotal: familyCounter(registry, 'kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total', 'Cumulative proxy nftables cleanup failures'),
    // kproxy's own: repairs of the table after another process changed it, and repairs that
    // waited because it kept happening (a fight with another agent).
    driftRepairsTotal: familyCounter(registry, 'kproxy_nftables_drift_repairs_total', 'Syncs started because another process changed kproxy\'s table'),
    driftRepairsDelayedTotal: familyCounter(registry, 'kproxy_nftables_drift_repairs_delayed_total', 'Drift repairs that waited, the table being changed again and again'),
  };
}
