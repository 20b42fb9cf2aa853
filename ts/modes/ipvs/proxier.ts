// IPVS mode behind the Proxier seam: the addon's IpvsProxier programs, per family, IPVS's
// virtual and real servers over generic netlink, the Service addresses on the dummy
// kube-ipvs0 over rtnetlink, and one nftables table for masquerade and filtering (in place
// of upstream's ipsets and iptables chains). See docs/design.md, IPVS mode.
import { networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import { fromAddonError, ProxierError } from '../../addon/errors.js';
import { loadAddon, type NativeIpvsProxier, type NativeIpvsReport } from '../../addon/native.js';
import { encodeServicePorts } from '../../addon/wire.js';
import type { IPFamily } from '../../model/types.js';
import { Serial } from '../../proxier/serial.js';
import { nativeNode, nativeOptions } from '../../proxier/addon-options.js';
import type { Feature, IpvsModeOptions, Proxier, ProxierOptions, SyncReport, SyncRequest, TraceResult } from '../../proxier/types.js';
import { ensureIpvs, ipvsSysctls } from './kernel.js';
import { ipvsMetrics, type IpvsMetrics } from './metrics.js';
import { nftTableExists } from '../../proxier/nft-probe.js';
import { pollAddonDrift } from '../../proxier/drift-pacer.js';

/** Every Service feature upstream's IPVS mode has. */
export const IPVS_FEATURES: ReadonlySet<Feature> = new Set<Feature>([
  'ClusterIP', 'NodePort', 'ExternalIPs', 'LoadBalancer', 'LoadBalancerSourceRanges', 'SessionAffinity',
  'ExternalTrafficPolicyLocal', 'InternalTrafficPolicyLocal', 'TopologyHints', 'TerminatingFallback', 'SCTP', 'SourceIPPreservation',
]);

export const DEFAULT_IPVS: IpvsModeOptions = { scheduler: '', excludeCIDRs: [], strictARP: false, tcpTimeoutS: 0, tcpFinTimeoutS: 0, udpTimeoutS: 0 };

/** How often draining real servers are checked for remaining connections (upstream: a minute). */
export const REAP_INTERVAL_MS = 5_000;

/** This host's addresses of `family`, but loopback, link-local and kube-ipvs0's. */
function localAddresses(family: IPFamily): string[] {
  const v6 = family === 'IPv6';
  return Object.entries(networkInterfaces())
    .filter(([name]) => name !== 'kube-ipvs0')
    .flatMap(([, addrs]) => addrs ?? [])
    .filter((a) => (a.family === 'IPv6') === v6 && !a.internal && !a.address.toLowerCase().startsWith('fe80:'))
    .map((a) => a.address);
}

/** The kernel is readied once per process, for both families. */
let prepared: Promise<void> | undefined;

export class IpvsProxier implements Proxier {
  readonly mode = 'ipvs' as const;
  readonly family: IPFamily;
  readonly features = IPVS_FEATURES;
  private readonly native: NativeIpvsProxier;
  private readonly metrics: IpvsMetrics;
  private readonly logger: Logger;
  private readonly ipvs: IpvsModeOptions;
  private readonly fake: boolean;
  private reaper: NodeJS.Timeout | undefined;
  private readonly serial = new Serial();

  constructor(opts: ProxierOptions) {
    this.family = opts.family;
    this.metrics = ipvsMetrics(opts.registry);
    this.logger = opts.logger;
    this.ipvs = opts.ipvs ?? DEFAULT_IPVS;
    this.fake = opts.fake;
    const { IpvsProxier: Native } = loadAddon();
    try {
      this.native = new Native({
        ...nativeOptions(opts), scheduler: this.ipvs.scheduler, excludeCidrs: this.ipvs.excludeCIDRs, fake: opts.fake,
        // `plan` on a node: NodePorts on every address are this host's addresses.
        fakeNodeAddresses: opts.fake ? localAddresses(opts.family) : undefined,
      });
    } catch (e) {
      throw fromAddonError(e);
    }
  }

  async prepare(): Promise<void> {
    if (this.fake) return;
    prepared ??= (async () => {
      // As upstream's start (1.35+): the mode works, and is deprecated there.
      this.logger.warn({}, 'IPVS mode is deprecated upstream since Kubernetes 1.35; the nftables mode is its successor');
      await ensureIpvs(this.ipvs, this.logger);
      await ipvsSysctls(this.ipvs, this.logger);
      const { tcpTimeoutS, tcpFinTimeoutS, udpTimeoutS } = this.ipvs;
      try {
        this.native.probeScheduler();
        if (tcpTimeoutS || tcpFinTimeoutS || udpTimeoutS) this.native.setTimeouts(tcpTimeoutS, tcpFinTimeoutS, udpTimeoutS);
      } catch (e) {
        throw fromAddonError(e);
      }
    })();
    try {
      await prepared;
    } catch (e) {
      prepared = undefined;
      throw e;
    }
  }

  sync(req: SyncRequest): Promise<SyncReport> {
    return this.serial.run(async () => {
      const { text, rejected } = encodeServicePorts(req.upserts);
      let report: NativeIpvsReport;
      try {
        report = await this.native.sync({ full: req.full, upserts: text, deletes: req.deletes, explain: req.explain, node: nativeNode(req.node) });
      } catch (e) {
        const err = fromAddonError(e);
        this.metrics.restoreFailuresTotal.inc({ ip_family: this.family });
        this.logger.error({ ipFamily: this.family, code: err.code, errno: err.errno, err: err.message }, 'Failed to program IPVS');
        throw err;
      }
      this.gauges(report);
      if (report.driftRepaired > 0) {
        this.logger.warn({ ipFamily: this.family, repaired: report.driftRepaired }, 'IPVS or kube-ipvs0 had been changed by someone else; put back');
      }
      if (report.ipvsFailed > 0 || report.addressesFailed > 0) {
        // Upstream logs and goes on; the rest went in, and the next tick's dumps retry these.
        this.metrics.operationFailuresTotal.inc({ ip_family: this.family }, report.ipvsFailed + report.addressesFailed);
        this.logger.error({
          ipFamily: this.family, refused: report.ipvsFailed, of: report.ipvsOps, addressesRefused: report.addressesFailed,
          first: report.firstFailed ?? undefined, errno: report.firstErrno ?? undefined,
        }, 'The kernel refused some IPVS operations; they are retried at the next sync');
      }
      return {
        full: report.full,
        objects: report.objects,
        messages: report.ipvsOps + (report.tableOps ? 1 : 0),
        bytes: report.bytes,
        durationMs: report.durationMs,
        rejected: [...rejected, ...report.rejected],
        text: report.text ?? undefined,
        details: {
          ipvsOps: report.ipvsOps, tableOps: report.tableOps, addressesAdded: report.addressesAdded, addressesDeleted: report.addressesDeleted,
          virtualServers: report.services, realServers: report.destinations, draining: report.draining,
        },
      };
    });
  }

  private gauges(report: NativeIpvsReport): void {
    this.metrics.virtualServers.set({ ip_family: this.family }, report.services);
    this.metrics.realServers.set({ ip_family: this.family }, report.destinations);
    if (report.draining > 0 && !this.reaper) {
      this.reaper = setInterval(() => void this.reap(), REAP_INTERVAL_MS);
      this.reaper.unref();
    } else if (report.draining === 0 && this.reaper) {
      clearInterval(this.reaper);
      this.reaper = undefined;
    }
  }

  /**
   * The drift check between syncs (upstream's IPVS mode has only the periodic sync): each
   * ADDON_DRIFT_POLL_MS, kproxy's virtual servers and table against the kernel (one services dump);
   * a difference makes the family's next sync full and starts it, at once or paced when it
   * keeps happening. Virtual servers another process added are left to the periodic sync.
   */
  monitor(lost: (why: string, full?: boolean) => void, intervalMs: number): () => void {
    if (this.fake) return () => {};
    return pollAddonDrift({
      family: this.family, logger: this.logger, syncPeriodMs: intervalMs, lost, what: 'kproxy\'s virtual servers',
      check: () => this.serial.run(() => this.native.drift()),
      repairs: this.metrics.driftRepairsTotal, delayed: this.metrics.driftRepairsDelayedTotal,
    });
  }

  /** Deletes draining real servers whose connections have ended. */
  reap(): Promise<void> {
    return this.serial.run(async () => {
      try {
        const r = await this.native.reap();
        if (this.reaper && r.draining === 0) {
          clearInterval(this.reaper);
          this.reaper = undefined;
        }
      } catch (e) {
        this.logger.warn({ ipFamily: this.family, err: fromAddonError(e).message }, 'Could not check draining IPVS real servers');
      }
    });
  }

  render(): string {
    return this.native.render();
  }

  explain(): TraceResult {
    throw new ProxierError('E_INVALID_OPTION', 'tracing is not implemented in IPVS mode yet');
  }

  /** Test hook for the fake: one real server's connection counts. */
  fakeSetConnections(service: string, protocol: number, dest: string, active: number, inactive: number): void {
    this.native.fakeSetConnections(service, protocol, dest, active, inactive);
  }

  /** kproxy's virtual servers, its kube-ipvs0 addresses and its table go; kube-ipvs0 too when empty. */
  cleanup(): Promise<boolean | undefined> {
    if (this.reaper) clearInterval(this.reaper);
    this.reaper = undefined;
    return this.serial.run(async () => {
      try {
        // The report counts the virtual servers deleted (ipvsOps), not the table (asked of nft
        // before) nor kube-ipvs0 (deleted with its addresses, uncounted).
        const table = await nftTableExists(this.family, 'kproxy-ipvs');
        const report = await this.native.cleanup();
        return report.ipvsOps > 0 || report.addressesDeleted > 0 ? true : table;
      } catch (e) {
        throw fromAddonError(e);
      }
    });
  }
}

export function createIpvsProxier(opts: ProxierOptions): IpvsProxier {
  return new IpvsProxier(opts);
}
