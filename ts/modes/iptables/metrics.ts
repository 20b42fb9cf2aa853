// iptables mode's own metrics (upstream pkg/proxy/metrics: iptables only). Both families'
// proxiers share one registry, so each metric is registered once and labelled by family.
import { Counter, Gauge, type Registry } from 'prom-client';

export interface IptablesMetrics {
  restoreFailuresTotal: Counter<'ip_family'>;
  partialRestoreFailuresTotal: Counter<'ip_family'>;
  /** Rules kproxy owns, per table. */
  rulesTotal: Gauge<'ip_family' | 'table'>;
  /** Rules written by the last restore, per table. */
  rulesLast: Gauge<'ip_family' | 'table'>;
}

function once<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

export function iptablesMetrics(registry: Registry): IptablesMetrics {
  const counter = (name: string, help: string) =>
    once(registry, name, () => new Counter({ name, help: `[ALPHA] ${help}`, labelNames: ['ip_family'] as const, registers: [registry] }));
  const gauge = (name: string, help: string) =>
    once(registry, name, () => new Gauge({ name, help: `[ALPHA] ${help}`, labelNames: ['ip_family', 'table'] as const, registers: [registry] }));
  return {
    restoreFailuresTotal: counter('kubeproxy_sync_proxy_rules_iptables_restore_failures_total', 'Cumulative proxy iptables restore failures'),
    partialRestoreFailuresTotal: counter('kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total', 'Cumulative proxy iptables partial restore failures'),
    rulesTotal: gauge('kubeproxy_sync_proxy_rules_iptables_total', 'Total number of iptables rules owned by kube-proxy'),
    rulesLast: gauge('kubeproxy_sync_proxy_rules_iptables_last', 'Number of iptables rules written by kube-proxy in last sync'),
  };
}
