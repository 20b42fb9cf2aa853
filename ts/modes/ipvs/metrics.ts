// IPVS mode's own metrics. Upstream's IPVS mode registers the iptables restore failure counter
// (its helper rules go through iptables-restore); kproxy's go in one nftables batch, and a
// refused batch counts there. Both families share one registry, labelled by family.
import { Counter, Gauge, type Registry } from 'prom-client';

export interface IpvsMetrics {
  restoreFailuresTotal: Counter<'ip_family'>;
  /** kproxy's own: IPVS operations the kernel refused. */
  operationFailuresTotal: Counter<'ip_family'>;
  virtualServers: Gauge<'ip_family'>;
  realServers: Gauge<'ip_family'>;
  /** kproxy's own: syncs started because another process changed kproxy's virtual servers or table. */
  driftRepairsTotal: Counter<'ip_family'>;
  driftRepairsDelayedTotal: Counter<'ip_family'>;
}

function once<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

export function ipvsMetrics(registry: Registry): IpvsMetrics {
  const counter = (name: string, help: string) =>
    once(registry, name, () => new Counter({ name, help, labelNames: ['ip_family'] as const, registers: [registry] }));
  const gauge = (name: string, help: string) =>
    once(registry, name, () => new Gauge({ name, help, labelNames: ['ip_family'] as const, registers: [registry] }));
  return {
    restoreFailuresTotal: counter('kubeproxy_sync_proxy_rules_iptables_restore_failures_total', '[ALPHA] Cumulative proxy iptables restore failures'),
    operationFailuresTotal: counter('kproxy_ipvs_operation_failures_total', 'IPVS operations the kernel refused'),
    virtualServers: gauge('kproxy_ipvs_virtual_servers', 'IPVS virtual servers kproxy programs'),
    realServers: gauge('kproxy_ipvs_real_servers', 'IPVS real servers kproxy programs, draining ones included'),
    driftRepairsTotal: counter('kproxy_ipvs_drift_repairs_total', 'Syncs started because another process changed kproxy\'s virtual servers or table'),
    driftRepairsDelayedTotal: counter('kproxy_ipvs_drift_repairs_delayed_total', 'Drift repairs that waited, kproxy\'s virtual servers being changed again and again'),
  };
}
