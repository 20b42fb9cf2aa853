// userspace mode behind the Proxier seam: the addon's proxy threads listen on the Service
// addresses themselves (on kproxy's dummy link kproxy-vips, or on lo without the dummy
// driver) and relay each connection or UDP session to an endpoint. No netfilter: no table,
// no rule, no conntrack. See docs/design.md, userspace mode.
import type { Logger } from 'pino';
import { fromAddonError, ProxierError } from '../../addon/errors.js';
import { loadAddon, type NativeUserspaceProxier, type NativeUserspaceReport } from '../../addon/native.js';
import { encodeServicePorts } from '../../addon/wire.js';
import { DEFAULT_USERSPACE, type UserspaceConfig } from '../../config/userspace.js';
import type { IPFamily } from '../../model/types.js';
import { pollAddonDrift } from '../../proxier/drift-pacer.js';
import { Serial } from '../../proxier/serial.js';
import { detectorOption, nativeNode } from '../../proxier/addon-options.js';
import type { Feature, Proxier, ProxierOptions, SyncReport, SyncRequest, TraceResult } from '../../proxier/types.js';
import { userspaceMetrics, type UserspaceMetrics } from './metrics.js';

/** What a proxy in userspace can do; not SCTP, and endpoints never see the client's address. */
export const USERSPACE_FEATURES: ReadonlySet<Feature> = new Set<Feature>([
  'ClusterIP', 'NodePort', 'ExternalIPs', 'LoadBalancer', 'LoadBalancerSourceRanges', 'SessionAffinity',
  'ExternalTrafficPolicyLocal', 'InternalTrafficPolicyLocal', 'TopologyHints', 'TerminatingFallback',
]);

export class UserspaceProxier implements Proxier {
  readonly mode = 'userspace' as const;
  readonly family: IPFamily;
  readonly features = USERSPACE_FEATURES;
  private readonly native: NativeUserspaceProxier;
  private readonly metrics: UserspaceMetrics;
  private readonly logger: Logger;
  private readonly serial = new Serial();
  private lastFailure = '';
  private fdExhausted = 0;
  private link: string | undefined;
  private readonly fake: boolean;

  constructor(opts: ProxierOptions) {
    this.family = opts.family;
    this.logger = opts.logger;
    this.fake = opts.fake === true;
    const cfg: UserspaceConfig = opts.userspace ?? DEFAULT_USERSPACE;
    const addon = loadAddon();
    try {
      this.native = new addon.UserspaceProxier({
        family: opts.family,
        localDetector: detectorOption(opts.localDetector),
        maxConnectionsPerService: cfg.maxConnectionsPerService,
        udpIdleTimeoutMs: cfg.udpIdleTimeoutMs,
        fake: opts.fake,
      });
    } catch (e) {
      throw fromAddonError(e);
    }
    const native = this.native;
    this.metrics = userspaceMetrics(opts.registry, {
      family: opts.family,
      stats: () => native.stats(),
      engineStats: () => native.engineStats(),
    }, addon.userspaceConstants());
  }

  sync(req: SyncRequest): Promise<SyncReport> {
    return this.serial.run(async () => {
      const { text, rejected } = encodeServicePorts(req.upserts);
      let report: NativeUserspaceReport;
      try {
        report = await this.native.sync({ full: req.full, upserts: text, deletes: req.deletes, explain: req.explain, node: nativeNode(req.node) });
      } catch (e) {
        const err = fromAddonError(e);
        this.logger.error({ ipFamily: this.family, code: err.code, errno: err.errno, err: err.message }, 'Failed to program the userspace proxy');
        throw err;
      }
      this.observe(report);
      return {
        full: report.full,
        objects: report.objects,
        messages: report.objects,
        bytes: 0,
        durationMs: report.durationMs,
        rejected: [...rejected, ...report.rejected],
        text: report.text ?? undefined,
        details: {
          services: report.services, frontends: report.frontends, opened: report.opened, closed: report.closed,
          listenFailed: report.listenFailed, addressesAdded: report.addressesAdded, addressesDeleted: report.addressesDeleted,
        },
      };
    });
  }

  private observe(report: NativeUserspaceReport): void {
    this.metrics.frontends.set({ ip_family: this.family }, report.frontends);
    this.metrics.listenFailures.set({ ip_family: this.family }, report.listenFailed);
    if (report.link && report.link !== this.link) {
      this.link = report.link;
      this.logger.info({ ipFamily: this.family, link: report.link }, 'userspace mode: the Service addresses are on this link');
    }
    if (report.driftRepaired > 0) {
      this.logger.warn({ ipFamily: this.family, repaired: report.driftRepaired }, 'Service addresses had been changed on the link by someone else; put back');
    }
    // Logged when it changes, not every sync period while it lasts.
    const failure = report.listenFailed > 0 ? `${report.listenFailed} ${report.firstFailed ?? ''}` : '';
    if (failure && failure !== this.lastFailure) {
      this.logger.error({ ipFamily: this.family, frontends: report.listenFailed, errno: report.firstErrno ?? undefined, first: report.firstFailed ?? undefined },
        'The userspace proxy cannot listen on some Service addresses; retried at every sync');
    }
    this.lastFailure = failure;
    if (report.addressesFailed > 0) {
      this.logger.error({ ipFamily: this.family, refused: report.addressesFailed }, 'The kernel refused some Service address changes; retried at the next sync');
    }
    const fd = this.native.engineStats().fdExhausted;
    if (fd > this.fdExhausted) {
      this.logger.error({ times: fd - this.fdExhausted }, 'The userspace proxy ran out of file descriptors while accepting; raise the open-files limit (ulimit -n)');
    }
    this.fdExhausted = fd;
  }

  /**
   * The drift check between syncs (upstream's userspace proxier had only the periodic sync):
   * each ADDON_DRIFT_POLL_MS, this family's Service addresses on the link (one address dump); one
   * missing (the link deleted, an address removed) makes the family's next sync full and
   * starts it, at once or paced when it keeps happening.
   */
  monitor(lost: (why: string, full?: boolean) => void, intervalMs: number): () => void {
    if (this.fake) return () => {};
    return pollAddonDrift({
      family: this.family, logger: this.logger, syncPeriodMs: intervalMs, lost, what: 'kproxy\'s Service addresses on the link',
      check: () => this.serial.run(() => this.native.drift()),
      repairs: this.metrics.driftRepairsTotal, delayed: this.metrics.driftRepairsDelayedTotal,
    });
  }

  render(): string {
    return this.native.render();
  }

  explain(): TraceResult {
    throw new ProxierError('E_INVALID_OPTION', 'tracing is not implemented in userspace mode yet');
  }

  /** Closes this family's frontends and removes the Service link (kproxy-vips, or kproxy's addresses on lo). */
  cleanup(): Promise<boolean> {
    return this.serial.run(async () => {
      try {
        // The addresses kproxy had on its link (or on lo); an empty kproxy-vips goes uncounted.
        return (await this.native.cleanup()).addressesDeleted > 0;
      } catch (e) {
        throw fromAddonError(e);
      }
    });
  }
}

export function createUserspaceProxier(opts: ProxierOptions): UserspaceProxier {
  return new UserspaceProxier(opts);
}
