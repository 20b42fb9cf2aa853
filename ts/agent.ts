// The proxier loop: sources → tracker → runner → proxiers (one per IP family, of one
// mode, behind the Proxier seam), with the metrics and health servers beside it. Each sync
// also hands a proxier this node's addressing and the ServiceCIDRs when they changed.
// Everything with I/O is injected; the agent imports no mode's code.
import { Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { ProxyConfig } from './config/index.js';
import { logSync } from './log.js';
import type { IPFamily, ServicePort } from './model/types.js';
import type { Feature, NodeAddressing, Proxier, SyncReport, SyncRequest } from './proxier/types.js';
import { BoundedFrequencyRunner } from './runner/bounded-frequency.js';
import { realClock, type Clock } from './runner/clock.js';
import { startHealthServer } from './server/health-server.js';
import { ProxyHealth } from './server/health.js';
import type { RunningServer } from './server/http.js';
import { startMetricsServer } from './server/metrics-server.js';
import { createMetrics, type ProxyMetrics } from './server/metrics.js';
import { ConnectionBudget, serverLimits, type ServerLimits } from './server/limits.js';
import { ServiceHealthServers, serviceHealthMaps } from './server/service-health.js';
import { StatusRecorder } from './status/recorder.js';
import type { StatusDoc } from './status/types.js';
import { failedToStartServiceHealthcheckEvent, startingEvent } from './sources/events.js';
import type { EventType, Kind, KubeObject, ProxyEvent, Source } from './sources/types.js';
import { ChangeTracker } from './tracker/change-tracker.js';
import { objectRef } from './tracker/validate.js';
import { NodeAddressResolver, type LocalAddresses } from './tracker/node-addressing.js';
import { ServiceCIDRTracker } from './tracker/service-cidrs.js';
import { FEATURE_NOTES, UnsupportedReporter } from './tracker/unsupported.js';

/** Features every proxier supports (they share one model, so this is the mode's set). */
function supportedByAll(proxiers: readonly Proxier[]): ReadonlySet<Feature> {
  const [first, ...rest] = proxiers;
  if (!first) return new Set();
  return new Set([...first.features].filter((f) => rest.every((p) => p.features.has(f))));
}

/** Upstream (1.36) forces a full resync this often even without failures. */
export const FULL_SYNC_PERIOD_MS = 60 * 60 * 1000;
/** Upstream retries a failed metrics/healthz listen this often. */
const LISTEN_RETRY_MS = 5000;
/** The first retry of a failed sync; later ones double, up to the sync period. */
const FIRST_RETRY_MS = 1000;

export interface AgentOptions {
  config: ProxyConfig;
  logger: Logger;
  source: Source;
  proxiers: Proxier[];
  clock?: Clock;
  registry?: Registry;
  /** The node's interface addresses (nodePortAddresses); default os.networkInterfaces(), read at each sync. */
  localAddresses?: LocalAddresses;
  /** Record upstream's "Starting" Event on the Node once the source started (`kproxy` runs, not plan/trace). */
  announce?: boolean;
  /** Per family, run after each successful sync: stale UDP conntrack cleanup (kernel runs only). */
  conntrack?: Partial<Record<IPFamily, { reconcile(servicePorts: readonly ServicePort[]): Promise<void> }>>;
  /** The per-Service health-check servers on healthCheckNodePort (default on). */
  serviceHealth?: boolean;
  /** Overrides of the HTTP servers' DEFAULT_SERVER_LIMITS (tests shorten the timeouts). */
  serverLimits?: Partial<ServerLimits>;
}

export class Agent {
  readonly metrics: ProxyMetrics;
  readonly health: ProxyHealth;
  readonly registry: Registry;
  /** The last syncs, errors and invalid objects, for the status page and `kproxy status`. */
  readonly status: StatusRecorder;
  private readonly tracker: ChangeTracker;
  private readonly runner: BoundedFrequencyRunner;
  private readonly clock: Clock;
  private readonly unsupported: UnsupportedReporter;
  private readonly needFull = new Map<IPFamily, boolean>();
  private readonly addressing: NodeAddressResolver;
  private readonly serviceCIDRs: ServiceCIDRTracker;
  /** What each family's proxier last synced with (JSON), to pass only changes. */
  private readonly sent = new Map<IPFamily, { node: string; serviceCIDRs: string }>();
  private addressingNow = new Map<IPFamily, NodeAddressing>();
  private readonly serviceHealth = new Map<IPFamily, ServiceHealthServers>();
  /** Keys of the ServicePorts with a health-check node port, per family, as last handed out. */
  private readonly healthChecked = new Map<IPFamily, Set<string>>();
  /** Per family, the UDP ServicePorts as last synced: the conntrack reconciler's input. */
  private readonly udpServicePorts = new Map<IPFamily, Map<string, ServicePort>>();
  /** Per family, the conntrack pass started after the last sync; it settles, never rejects. */
  private readonly conntrackPass = new Map<IPFamily, Promise<void>>();
  private lastFullSync = 0;
  /** Bumped by forceFullSync, so a request made during a sync is not cleared by it. */
  private fullSyncRequests = 0;
  /** Stops the proxiers' monitors (iptables' canary, nftables' drift poll). */
  private readonly monitors: (() => void)[] = [];
  private synced = false;
  private servers: RunningServer[] = [];
  private stopped = false;
  private retryTimers: ReturnType<typeof setTimeout>[] = [];
  /** Resolves after each sync attempt (tests and `--once` wait on it). */
  private waiters: (() => void)[] = [];

  constructor(private readonly opts: AgentOptions) {
    this.clock = opts.clock ?? realClock;
    this.registry = opts.registry ?? new Registry();
    this.metrics = createMetrics(this.registry);
    this.status = new StatusRecorder(this.clock.now());
    this.health = new ProxyHealth({ syncPeriodMs: opts.config.syncPeriodMs, clock: this.clock });
    for (const p of opts.proxiers) this.needFull.set(p.family, true);
    const mode = opts.proxiers[0]?.mode ?? opts.config.mode;
    this.unsupported = new UnsupportedReporter(supportedByAll(opts.proxiers), (service, feature) =>
      opts.logger.warn({ service, feature, mode, note: FEATURE_NOTES[feature] }, 'Service uses a feature this proxy mode does not implement yet'),
    );
    this.tracker = new ChangeTracker({
      families: opts.proxiers.map((p) => p.family),
      nodeName: opts.config.hostnameOverride,
      onInvalid: (kind, reason, ref) => this.invalid(kind, reason, ref),
    });
    this.addressing = new NodeAddressResolver({
      bindAddress: opts.config.bindAddress,
      nodePortAddresses: opts.config.nodePortAddresses,
      localhostNodePorts: opts.config.mode === 'iptables' && opts.config.localhostNodePorts,
      addresses: opts.localAddresses,
      log: (level, fields, msg) => opts.logger[level](fields, msg),
    });
    this.serviceCIDRs = new ServiceCIDRTracker((kind, reason, ref) => this.invalid(kind, reason, ref));
    if (opts.serviceHealth !== false) {
      // One budget for every family's health-check servers: more Services do not mean more fds.
      const connections = new ConnectionBudget(serverLimits(opts.serverLimits).maxConnections);
      for (const p of opts.proxiers) {
        const family = p.family;
        this.serviceHealth.set(
          family,
          new ServiceHealthServers({
            logger: opts.logger,
            family,
            clock: this.clock,
            limits: opts.serverLimits,
            connections,
            nodeIPs: () => this.addressingNow.get(family)?.nodePortIPs ?? [],
            healthy: () => this.health.isHealthy(),
            onListenError: (svc, port, err) =>
              this.recordEvent(failedToStartServiceHealthcheckEvent(svc.namespace, svc.name, opts.config.hostnameOverride, port, err.message)),
          }),
        );
      }
    }
    this.runner = new BoundedFrequencyRunner({
      name: 'sync-runner',
      minIntervalMs: opts.config.minSyncPeriodMs,
      maxIntervalMs: opts.config.syncPeriodMs,
      retryIntervalMs: opts.config.syncPeriodMs,
      // Upstream retries a failed sync after the sync period (30 s); a passing fault (a full set, a
      // busy ruleset) is repaired sooner here, and a lasting one still costs one sync per period.
      firstRetryMs: FIRST_RETRY_MS,
      clock: this.clock,
      fn: () => this.syncProxyRules(),
      onError: (err) => opts.logger.error({ err: String(err) }, 'Sync failed; retrying after 1 s, doubling up to the sync period'),
    });
  }

  private invalid(kind: string, reason: string, ref: string): void {
    this.metrics.invalidObjectsTotal.inc({ kind, reason });
    this.status.invalid(this.clock.now(), kind, reason, ref);
    this.opts.logger.warn({ kind, reason, object: ref }, 'Skipping invalid object');
  }

  async start(): Promise<void> {
    const { config, logger } = this.opts;
    // As upstream's SyncLoop: the families count as updated when the loop starts.
    for (const p of this.opts.proxiers) this.health.updated(p.family);
    if (config.healthzBindAddress) {
      this.listen('healthz', () => startHealthServer({ address: config.healthzBindAddress, health: this.health, metrics: this.metrics, logger, limits: this.opts.serverLimits }));
    }
    if (config.metricsBindAddress) {
      this.listen('metrics', () =>
        startMetricsServer({ address: config.metricsBindAddress, mode: config.mode, registry: this.registry, configz: () => config.raw,
          // /flagz unless the ComponentFlagz gate is set false (kproxy serves it by default).
          flagz: config.flagz && config.featureGates?.ComponentFlagz !== false ? () => config.flagz : undefined,
          status: () => this.statusDoc(), logger, limits: this.opts.serverLimits }),
      );
    }
    this.runner.start();
    for (const p of this.opts.proxiers) {
      const stop = p.monitor?.((why, full = true) => {
        if (full) {
          logger.warn({ ipFamily: p.family, why }, 'The rules were flushed by someone else; resyncing in full');
          this.forceFullSync();
        } else {
          // nftables: the addon saw the change too, and makes that family's next sync full.
          logger.warn({ ipFamily: p.family, why }, 'The rules were changed by someone else; resyncing');
          this.runner.run();
        }
      }, config.syncPeriodMs);
      if (stop) this.monitors.push(stop);
    }
    await this.opts.source.start({
      onEvent: (kind, type, obj, old) => this.onEvent(kind, type, obj, old),
      onSynced: () => {
        this.synced = true;
        logger.info({}, 'Services and EndpointSlices synced; programming rules');
        this.runner.run();
      },
      onInvalid: (kind, reason, ref) => this.invalid(kind, reason, ref),
      onResourceExhausted: (resource, component) => this.metrics.resourceExhaustedTotal.inc({ resource, component }),
    });
    // Upstream's birthCry, once the informers are started.
    if (this.opts.announce) this.recordEvent(startingEvent(config.hostnameOverride));
  }

  /** This node's addressing in `family` as of the last sync (health-check servers bind its NodePort IPs). */
  nodeAddressing(family: IPFamily): NodeAddressing | undefined {
    return this.addressingNow.get(family);
  }

  /** Reports an Event through the source: posted to the API server, or logged with --manifests. */
  recordEvent(event: ProxyEvent): void {
    void this.opts.source.recordEvent?.(event).catch((err) => this.opts.logger.warn({ err: String(err), reason: event.reason }, 'Could not record event'));
  }

  private listen(what: string, start: () => Promise<RunningServer>): void {
    start().then(
      (s) => {
        if (this.stopped) void s.close();
        else this.servers.push(s);
        this.opts.logger.info({ server: what, address: `${s.host}:${s.port}` }, 'Serving');
      },
      (err) => {
        this.opts.logger.error({ server: what, err: String(err) }, 'Failed to start server; retrying in 5s');
        this.status.error(this.clock.now(), `${what} server`, String(err));
        if (!this.stopped) this.retryTimers.push(setTimeout(() => this.listen(what, start), LISTEN_RETRY_MS));
      },
    );
  }

  private onEvent(kind: Kind, type: EventType, obj: KubeObject, old?: KubeObject): void {
    if (kind === 'Node') {
      // Only this node's object matters (the API source watches only it; manifests may hold more).
      const name = obj?.metadata?.name ?? old?.metadata?.name;
      // Nameless, it is nobody's Node: counted here, as the tracker would, since it never gets there.
      if (typeof name !== 'string' || name === '') return this.invalid('Node', 'missing-field', objectRef(obj ?? old));
      if (name !== this.opts.config.hostnameOverride) return;
      this.health.onNodeEvent(type, obj, old);
      this.addressing.onNode(type, obj);
      this.status.eventQueued(this.clock.now());
      // The node's labels (zone) steer topology: the tracker recomputes what they affect.
      this.tracker.onEvent(kind, type, obj, old);
      if (this.synced) this.runner.run();
      return;
    }
    if (kind === 'ServiceCIDR') {
      this.serviceCIDRs.onEvent(type, obj, old);
      this.status.eventQueued(this.clock.now());
      if (this.synced) this.runner.run();
      return;
    }
    if (kind === 'Service') {
      this.metrics.serviceChangesTotal.inc();
      if (type !== 'DELETED') this.unsupported.check(obj);
    } else this.metrics.endpointChangesTotal.inc();
    this.tracker.onEvent(kind, type, obj, old);
    this.metrics.serviceChangesPending.set(this.tracker.pendingServiceChanges());
    this.metrics.endpointChangesPending.set(this.tracker.pendingEndpointChanges());
    const now = this.clock.now();
    this.status.eventQueued(now);
    for (const p of this.opts.proxiers) {
      this.health.queued(p.family);
      this.metrics.syncProxyRulesLastQueuedTimestamp.set({ ip_family: p.family }, now / 1000);
    }
    if (this.synced) this.runner.run();
  }

  /** Replace every table atomically at the next sync (SIGHUP, tests). */
  forceFullSync(): void {
    this.fullSyncRequests++;
    for (const f of this.needFull.keys()) this.needFull.set(f, true);
    this.runner.run();
  }

  /** Resolves after the next sync attempt completes. */
  nextSync(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private async syncProxyRules(): Promise<void> {
    if (!this.synced || this.stopped) return;
    try {
      await this.syncAll();
    } finally {
      const w = this.waiters;
      this.waiters = [];
      for (const resolve of w) resolve();
    }
  }

  private async syncAll(): Promise<void> {
    const now = this.clock.now();
    const requestsAtStart = this.fullSyncRequests;
    const hourly = now - this.lastFullSync >= FULL_SYNC_PERIOD_MS;
    const changes = this.tracker.drain();
    const trigger = this.tracker.lastDrainTriggerTime;
    const eventAt = this.status.takeEventTime();
    this.metrics.serviceChangesPending.set(0);
    this.metrics.endpointChangesPending.set(0);
    // Interfaces are read at every sync: an address change shows within a sync period.
    const addressing = (this.addressingNow = this.addressing.resolve(this.opts.proxiers.map((p) => p.family)));
    let failure: unknown;
    for (const proxier of this.opts.proxiers) {
      const family = proxier.family;
      const full = hourly || this.needFull.get(family) === true;
      // A full sync carries the complete desired state, so a failed sync loses nothing.
      const c = full ? { upserts: this.tracker.all(family), deletes: [] } : (changes.get(family) ?? { upserts: [], deletes: [] });
      const req: SyncRequest = { full, upserts: c.upserts, deletes: c.deletes, explain: this.opts.config.verbosity >= 4 };
      const node = addressing.get(family)!;
      const serviceCIDRs = this.serviceCIDRs.cidrs(family);
      const current = { node: JSON.stringify(node), serviceCIDRs: JSON.stringify(serviceCIDRs) };
      const last = this.sent.get(family);
      if (full || last?.node !== current.node) req.node = node;
      if (full || last?.serviceCIDRs !== current.serviceCIDRs) req.serviceCIDRs = serviceCIDRs;
      // A running pass deletes flows to endpoints missing from its input: a commit that adds a
      // UDP endpoint under it would lose that endpoint's first flows. Upstream runs the pass
      // inside the sync, so a UDP change waits for it; other changes do not.
      const pass = this.conntrackPass.get(family);
      if (pass && (full || c.upserts.some((sp) => sp.protocol === 'UDP'))) await pass;
      const started = this.clock.now();
      // For the status page only: the clock's milliseconds are too coarse for a partial sync.
      const precise = performance.now();
      let report: SyncReport;
      try {
        report = await proxier.sync(req);
        this.sent.set(family, current);
      } catch (err) {
        // The proxier counted and logged it in its mode's words and keeps the changes it
        // was given; the retry replaces the whole ruleset.
        this.needFull.set(family, true);
        failure ??= err;
        this.status.sync({ family, full, started, done: this.clock.now(), durationMs: performance.now() - precise, upserts: c.upserts, deletes: c.deletes, error: err instanceof Error ? err.message : String(err) });
        // Its retry carries these events too: their latency runs on.
        if (eventAt !== undefined) this.status.eventQueued(eventAt);
        continue;
      }
      if (this.fullSyncRequests === requestsAtStart) this.needFull.set(family, false);
      const done = this.record(family, report, started, trigger);
      this.status.sync({ family, full, ranFull: report.full, started, done, durationMs: performance.now() - precise, upserts: c.upserts, deletes: c.deletes, refused: report.rejected, eventAt, triggerAt: trigger });
      this.afterSync(family, full, c.upserts, c.deletes);
    }
    if (failure !== undefined) throw failure;
    if (hourly) this.lastFullSync = now;
  }

  /** As upstream after a successful sync: the health-check servers, then the conntrack cleanup. */
  private afterSync(family: IPFamily, full: boolean, upserts: readonly ServicePort[], deletes: readonly string[]): void {
    const servers = this.serviceHealth.get(family);
    const had = this.healthChecked.get(family) ?? new Set<string>();
    const touched = full || upserts.some((sp) => sp.healthCheckNodePort > 0 || had.has(sp.key)) || deletes.some((k) => had.has(k));
    const conntrack = this.opts.conntrack?.[family];
    if (conntrack) {
      // Only UDP ServicePorts can have stale flows: kept as syncs hand them out, not re-listed.
      let udp = this.udpServicePorts.get(family);
      if (!udp || full) this.udpServicePorts.set(family, (udp = new Map()));
      for (const key of deletes) udp.delete(key);
      for (const sp of upserts) {
        if (sp.protocol === 'UDP') udp.set(sp.key, sp);
        else udp.delete(sp.key);
      }
      // It never rejects; a failed pass is logged and the next sync reconciles again.
      this.conntrackPass.set(family, conntrack.reconcile([...udp.values()]).catch(() => {}));
    }
    if (servers && touched) {
      const checked = this.tracker.all(family).filter((sp) => sp.healthCheckNodePort > 0);
      this.healthChecked.set(family, new Set(checked.map((sp) => sp.key)));
      const m = serviceHealthMaps(checked);
      servers.syncServices(m.services);
      servers.syncEndpoints(m.localEndpoints);
    }
  }

  /** The metrics and log line of a successful sync; returns when it ended. */
  private record(family: IPFamily, report: SyncReport, started: number, trigger: number | undefined): number {
    const done = this.clock.now();
    const seconds = (done - started) / 1000;
    const labels = { ip_family: family };
    this.metrics.syncProxyRulesDuration.observe(labels, seconds);
    (report.full ? this.metrics.syncFullProxyRulesDuration : this.metrics.syncPartialProxyRulesDuration).observe(labels, seconds);
    this.metrics.syncProxyRulesLastTimestamp.set(labels, done / 1000);
    if (trigger !== undefined && done > trigger) this.metrics.networkProgrammingDuration.observe(labels, (done - trigger) / 1000);
    this.health.updated(family);
    if (this.opts.proxiers.find((p) => p.family === family)?.features.has('InternalTrafficPolicyLocal')) {
      this.metrics.noLocalEndpointsTotal.set({ ip_family: family, traffic_policy: 'internal' }, this.tracker.noLocalInternalEndpoints(family));
    }
    if (this.opts.proxiers.find((p) => p.family === family)?.features.has('ExternalTrafficPolicyLocal')) {
      this.metrics.noLocalEndpointsTotal.set({ ip_family: family, traffic_policy: 'external' }, this.tracker.noLocalExternalEndpoints(family));
    }
    for (const r of report.rejected) this.invalid('ServicePort', 'proxier-rejected', `${r.key}: ${r.reason}`);
    if (report.text) this.opts.logger.trace({ ipFamily: family, transaction: report.text }, 'Committed transaction');
    logSync(this.opts.logger, {
      ipFamily: family,
      full: report.full,
      durationMs: Number(report.durationMs.toFixed(3)),
      objects: report.objects,
      messages: report.messages,
      bytes: report.bytes,
      ...report.details,
    });
    return done;
  }

  /** The status document: the recorder's history and, per family, the tracker's ServicePorts. */
  statusDoc(): StatusDoc {
    const families = this.opts.proxiers.map((p) => p.family);
    return this.status.document({
      now: this.clock.now(),
      mode: this.opts.proxiers[0]?.mode ?? this.opts.config.mode,
      node: this.opts.config.hostnameOverride,
      families,
      listed: this.synced,
      pending: { services: this.tracker.pendingServiceChanges(), endpoints: this.tracker.pendingEndpointChanges() },
      desired: new Map(families.map((f) => [f, this.tracker.all(f)])),
    });
  }

  /** Stops watching and serving. The rules stay in the kernel, as upstream's do. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.retryTimers) clearTimeout(t);
    for (const stop of this.monitors.splice(0)) stop();
    await this.opts.source.stop();
    await this.runner.stop();
    await Promise.all([...this.servers.map((s) => s.close()), ...[...this.serviceHealth.values()].map((s) => s.close())]);
    this.servers = [];
  }
}
