// nftables mode behind the Proxier seam: the model goes out as wire text, the addon's
// NftablesProxier programs one `ip`/`ip6` kube-proxy table per family over netlink.
import type { Logger } from 'pino';
import { fromAddonError, ProxierError } from '../../addon/errors.js';
import { loadAddon, type NativeNftablesProxier, type NativeSyncReport } from '../../addon/native.js';
import { encodeServicePorts } from '../../addon/wire.js';
import type { IPFamily } from '../../model/types.js';
import { nativeNode, nativeOptions } from '../../proxier/addon-options.js';
import type { Feature, Proxier, ProxierOptions, SyncReport, SyncRequest, TracePacket, TraceResult } from '../../proxier/types.js';
import { pollDrift } from '../../proxier/drift-pacer.js';
import { nftTableExists } from '../../proxier/nft-probe.js';
import { nftablesMetrics, type NftablesMetrics } from './metrics.js';
import { resourceExhaustedCounter } from '../../server/metrics.js';
import type { Counter } from 'prom-client';

/** What nftables mode programs: every Service feature upstream's nftables mode has. */
export const NFTABLES_FEATURES: ReadonlySet<Feature> = new Set<Feature>([
  'ClusterIP', 'NodePort', 'ExternalIPs', 'LoadBalancer', 'LoadBalancerSourceRanges', 'SessionAffinity',
  'ExternalTrafficPolicyLocal', 'InternalTrafficPolicyLocal', 'TopologyHints', 'TerminatingFallback', 'SCTP', 'SourceIPPreservation',
]);

export type NftablesSyncReport = SyncReport & { planMs: number; commitMs: number };

/** Partial syncs of at most this many ServicePorts run on the calling thread. */
const SYNC_NOW_MAX = 16;
/** How often the kernel's ruleset notifications are read for changes by others (cheap). */
const DRIFT_POLL_MS = 200;
const ENFILE = 23;
/** The addon's monitor overflow count already reported: one monitor serves both families' proxiers. */
let overflowsReported = 0;

export class NftablesProxier implements Proxier {
  readonly mode = 'nftables' as const;
  readonly family: IPFamily;
  readonly features = NFTABLES_FEATURES;
  private readonly native: NativeNftablesProxier;
  /** The after-commit work of the last quick sync, running on the pool. */
  private afterCommitDone: Promise<void> = Promise.resolve();
  private readonly metrics: NftablesMetrics;
  private readonly exhausted: Counter<'resource' | 'component'>;
  private readonly logger: Logger;
  private readonly fake: boolean;
  /** Completed syncs: a drift repair waits for the next one before looking again. */
  private syncs = 0;

  constructor(opts: ProxierOptions) {
    this.family = opts.family;
    this.fake = opts.fake === true;
    this.metrics = nftablesMetrics(opts.registry);
    this.exhausted = resourceExhaustedCounter(opts.registry);
    this.logger = opts.logger;
    const { NftablesProxier: Native } = loadAddon();
    try {
      this.native = new Native({ ...nativeOptions(opts), fake: opts.fake });
    } catch (e) {
      throw fromAddonError(e);
    }
  }

  async sync(req: SyncRequest): Promise<NftablesSyncReport> {
    // What a quick sync left for the pool finishes first: syncs never overlap.
    await this.afterCommitDone;
    const encodeStart = performance.now();
    const { text, rejected } = encodeServicePorts(req.upserts);
    const encodeMs = performance.now() - encodeStart;
    let report: NativeSyncReport;
    try {
      const nreq = {
        full: req.full,
        upserts: text,
        deletes: req.deletes,
        explain: req.explain,
        node: nativeNode(req.node),
        serviceCidrs: req.serviceCIDRs,
      };
      // A small partial sync runs on this thread: its plan and commit take a fraction of a
      // millisecond, less than handing it to the thread pool and back (far less on a busy
      // node). The addon declines anything bigger (a full replace, a foreign change), and
      // leaves the after-commit work, which can dump large maps, to the pool.
      const small = !req.full && req.upserts.length + req.deletes.length <= SYNC_NOW_MAX;
      report = (small ? this.native.syncNow(nreq) : null) ?? (await this.native.sync(nreq));
      if (report.afterCommitPending) {
        this.afterCommitDone = this.native.afterCommit().then(
          (failed) => void (failed && this.metrics.cleanupFailuresTotal.inc({ ip_family: this.family })),
          (e) => this.logger.warn({ ipFamily: this.family, err: fromAddonError(e).message }, 'after-commit work failed'),
        );
      }
    } catch (e) {
      const err = fromAddonError(e);
      this.metrics.syncFailuresTotal.inc({ ip_family: this.family });
      // ENFILE on an element: a set at its size cap (the addon's message says so).
      if (err.errno === ENFILE && / element /.test(err.message)) this.exhausted.inc({ resource: 'set_size', component: 'nftables' });
      this.logger.error({ ipFamily: this.family, code: err.code, errno: err.errno, err: err.message }, 'Failed to program nftables');
      throw err;
    }
    this.syncs++;
    // Upstream counts failures to delete stale chains; the next sync retries them.
    if (report.cleanupFailed) this.metrics.cleanupFailuresTotal.inc({ ip_family: this.family });
    return {
      full: report.full,
      objects: report.objects,
      messages: report.messages,
      bytes: report.bytes,
      durationMs: report.durationMs,
      planMs: report.planMs,
      commitMs: report.commitMs,
      rejected: [...rejected, ...report.rejected],
      text: report.text ?? undefined,
      details: { encodeMs: Number(encodeMs.toFixed(3)), planMs: Number(report.planMs.toFixed(3)), commitMs: Number(report.commitMs.toFixed(3)) },
    };
  }

  render(): string {
    return this.native.render();
  }

  /**
   * Drift: the kernel's ruleset notifications say when another process changed or deleted this
   * family's table or flushed the ruleset. Read every DRIFT_POLL_MS, and repaired by a sync (full
   * for this family, as the addon sees the change) at once, or paced when it keeps happening.
   * Without notifications (null) the periodic sync alone repairs, as upstream's does.
   */
  monitor(lost: (why: string, full?: boolean) => void, intervalMs: number): () => void {
    if (this.fake) return () => {};
    let syncsAtRepair = -1;
    let silentLogged = false;
    return pollDrift({
      pollMs: DRIFT_POLL_MS,
      syncPeriodMs: intervalMs,
      // The syncs drain the notifications too: what they lost is told here, even between repairs.
      tick: () => this.reportOverflows(),
      check: () => {
        // Before the first sync nothing is ours to watch; after a repair, its sync consumes the news.
        if (this.syncs === 0 || this.syncs === syncsAtRepair) return undefined;
        let pending: boolean | null;
        try {
          pending = this.native.foreignChangePending();
        } catch {
          pending = null;
        }
        if (pending === null && !silentLogged) {
          this.logger.info({ ipFamily: this.family }, 'No nftables notifications to read: changes by others are repaired by the periodic sync only');
          silentLogged = true;
        }
        return pending ? `another process changed the ${this.family === 'IPv4' ? 'ip' : 'ip6'} kube-proxy table` : undefined;
      },
      repair: (why) => {
        syncsAtRepair = this.syncs;
        this.metrics.driftRepairsTotal.inc({ ip_family: this.family });
        lost(why, false);
      },
      delayed: (_why, waitMs) => {
        this.metrics.driftRepairsDelayedTotal.inc({ ip_family: this.family });
        this.logger.warn({ ipFamily: this.family, waitMs: Math.round(waitMs) }, 'kproxy\'s table keeps being changed by another process; pacing the repairs');
      },
    });
  }

  /** Notifications lost to a full socket buffer: the ledger of generations decides instead. */
  private reportOverflows(): void {
    let n: number;
    try {
      n = this.native.monitorOverflows();
    } catch {
      return;
    }
    if (n <= overflowsReported) return;
    this.exhausted.inc({ resource: 'socket_buffer', component: 'nftables-monitor' }, n - overflowsReported);
    this.logger.warn({ lost: n - overflowsReported }, 'nftables notifications were lost (the monitor socket\'s buffer overflowed, ENOBUFS); checking the tables against the ruleset generation instead');
    overflowsReported = n;
  }

  explain(p: TracePacket): TraceResult {
    try {
      return JSON.parse(this.native.explain(p.src, p.dst, p.port, p.protocol, p.fromNode ?? false, p.iif ?? '', p.localCidrs ?? [])) as TraceResult;
    } catch (e) {
      throw e instanceof SyntaxError ? new ProxierError('E_INTERNAL', `explain returned bad JSON: ${e.message}`) : fromAddonError(e);
    }
  }

  /** Contents of the fake backend (empty when programming the kernel). */
  fakeDump(): string {
    return this.native.fakeDump();
  }

  /** Test hook for the fake backend: another process deleted our table. */
  fakeDeleteTable(): void {
    this.native.fakeDeleteTable();
  }

  /** Test hook for the fake backend: the next batch is refused with `errno`. */
  fakeFailNext(errno: number): void {
    this.native.fakeFailNext(errno);
  }

  async cleanup(): Promise<boolean | undefined> {
    await this.afterCommitDone;
    // An addon that says whether the table was there (true) or not (ENOENT: false) is believed;
    // an older one returns nothing, and then nft, when installed, is asked first.
    const before = this.fake ? undefined : await nftTableExists(this.family, 'kube-proxy');
    try {
      const deleted: unknown = await this.native.cleanup();
      return typeof deleted === 'boolean' ? deleted : before;
    } catch (e) {
      this.metrics.cleanupFailuresTotal.inc({ ip_family: this.family });
      throw fromAddonError(e);
    }
  }
}

export function createNftablesProxier(opts: ProxierOptions): NftablesProxier {
  return new NftablesProxier(opts);
}
