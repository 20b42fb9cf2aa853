// Upstream's stale UDP conntrack reconciler (pkg/proxy/conntrack/cleanup.go, 1.33+), one per
// family: after a successful sync, UDP flows to a Service (VIP:port or *:NodePort) whose reply
// does not come from one of its serving endpoints are deleted, so clients stop sending into
// a gone backend. The addon does the dump, the decision and the deletes over ctnetlink.
import { Counter, Histogram, type Registry } from 'prom-client';
import { fromAddonError } from '../addon/errors.js';
import { loadAddon, type NativeConntrackReport } from '../addon/native.js';
import { logV, type Logger } from '../log.js';
import { ipFamilyOf } from '../model/ip.js';
import type { IPFamily, ServicePort } from '../model/types.js';
import { SYNC_DURATION_BUCKETS } from '../server/metrics.js';

export interface ConntrackNative {
  reconcileConntrack(family: string, services: string): Promise<NativeConntrackReport>;
}

export interface ConntrackReconcilerOptions {
  family: IPFamily;
  registry: Registry;
  logger: Logger;
  /** The addon, or a stand-in for tests; loaded on first use when omitted. */
  native?: ConntrackNative;
}

export interface ConntrackMetrics {
  syncDuration: Histogram<'ip_family'>;
  deletedEntriesTotal: Counter<'ip_family'>;
}

/** Both families' reconcilers share a registry: each metric is registered once. */
export function conntrackMetrics(registry: Registry): ConntrackMetrics {
  const get = (name: string) => registry.getSingleMetric(name);
  return {
    syncDuration: (get('kubeproxy_conntrack_reconciler_sync_duration_seconds') as Histogram<'ip_family'> | undefined)
      ?? new Histogram({ name: 'kubeproxy_conntrack_reconciler_sync_duration_seconds',
        help: '[ALPHA] ReconcileConntrackFlowsLatency latency in seconds', labelNames: ['ip_family'] as const,
        buckets: SYNC_DURATION_BUCKETS, registers: [registry] }),
    deletedEntriesTotal: (get('kubeproxy_conntrack_reconciler_deleted_entries_total') as Counter<'ip_family'> | undefined)
      ?? new Counter({ name: 'kubeproxy_conntrack_reconciler_deleted_entries_total',
        help: '[ALPHA] Cumulative conntrack flows deleted by conntrack reconciler', labelNames: ['ip_family'] as const,
        registers: [registry] }),
  };
}

const hostPort = (ip: string, port: number) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);

/**
 * The addon's input: one line per UDP ServicePort of `family` that has serving endpoints,
 * `VIPS PORT NODEPORT ENDPOINTS` (lists comma-separated, `-` when empty).
 */
export function conntrackInput(servicePorts: readonly ServicePort[], family: IPFamily): string {
  const lines: string[] = [];
  for (const sp of servicePorts) {
    if (sp.protocol !== 'UDP' || sp.family !== family) continue;
    // Policies, topology and terminating state are ignored on purpose: serving is what counts.
    const endpoints = sp.endpoints.filter((e) => e.serving && ipFamilyOf(e.ip) === family);
    if (!endpoints.length) continue;
    const vips = [sp.clusterIP, ...sp.externalIPs, ...sp.loadBalancerVIPs].filter((ip) => ipFamilyOf(ip) === family);
    const eps = [...new Set(endpoints.map((e) => hostPort(e.ip, e.port)))];
    lines.push(`${vips.join(',') || '-'} ${sp.port} ${sp.nodePort} ${eps.join(',')}`);
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}

export class ConntrackReconciler {
  private readonly family: IPFamily;
  private readonly logger: Logger;
  private readonly metrics: ConntrackMetrics;
  private native?: ConntrackNative;
  private running?: Promise<void>;
  private next?: readonly ServicePort[];

  constructor(opts: ConntrackReconcilerOptions) {
    this.family = opts.family;
    this.logger = opts.logger;
    this.native = opts.native;
    this.metrics = conntrackMetrics(opts.registry);
  }

  /**
   * One pass over the family's table for these ServicePorts. Never rejects: a failure is
   * logged and the next call reconciles again. Calls during a pass coalesce into one more
   * pass with the latest ServicePorts; the promise settles once that has run.
   */
  reconcile(servicePorts: readonly ServicePort[]): Promise<void> {
    this.next = servicePorts;
    this.running ??= this.drain();
    return this.running;
  }

  private async drain(): Promise<void> {
    try {
      while (this.next) {
        const sps = this.next;
        this.next = undefined;
        await this.pass(sps).catch(() => {}); // pass() logs its own failures; a failing logger must not escape either
      }
    } finally {
      // In the same tick as the last check of `next`: a later call starts a new drain.
      this.running = undefined;
    }
  }

  private async pass(servicePorts: readonly ServicePort[]): Promise<void> {
    const ipFamily = this.family;
    let report: NativeConntrackReport;
    try {
      const input = conntrackInput(servicePorts, ipFamily);
      // No UDP ServicePort with serving endpoints: no flow can be stale, so the table is not dumped.
      if (!input) return;
      this.native ??= loadAddon();
      logV(this.logger, 4, { ipFamily }, 'Started to reconcile conntrack entries');
      report = await this.native.reconcileConntrack(ipFamily, input);
    } catch (e) {
      const err = fromAddonError(e);
      // As upstream, a pass that could not list the table records no latency.
      this.logger.error({ ipFamily, code: err.code, errno: err.errno, err: err.message }, 'Failed to reconcile conntrack entries');
      return;
    }
    try {
      this.metrics.syncDuration.labels(ipFamily).observe(report.durationMs / 1000);
      this.metrics.deletedEntriesTotal.labels(ipFamily).inc(report.deleted);
      const fields = {
        ipFamily, flows: report.flows, stale: report.stale, entriesDeleted: report.deleted, missing: report.missing,
        took: `${report.durationMs.toFixed(1)}ms`,
      };
      if (report.interrupted) logV(this.logger, 2, { ipFamily }, 'Conntrack dump was interrupted by table changes; reconciled with a partial result');
      if (report.failed) {
        this.logger.error({ ...fields, failed: report.failed, errno: report.failedErrno ?? undefined }, 'Failed to clear all conntrack entries');
      } else {
        logV(this.logger, report.deleted ? 2 : 4, fields, 'Finished reconciling conntrack entries');
      }
    } catch (e) {
      this.logger.error({ ipFamily, err: (e as Error).message }, 'Recording the conntrack reconcile failed');
    }
  }
}
