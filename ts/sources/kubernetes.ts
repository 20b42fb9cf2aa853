// The Kubernetes API source: list+watch of Services, EndpointSlices, our own Node and
// ServiceCIDRs, with the selectors kube-proxy uses (cmd/kube-proxy/app/server.go), and the
// sink for kube-proxy's Events (events.k8s.io/v1).
//
// client-node's ListWatch does the list/watch/relist-on-410 work. What it does not do,
// and this file adds: restart after an `error` (it stops for good otherwise), an initial
// "synced" signal, the previous object on updates, and lists that return raw JSON.

import http from 'node:http';
import https from 'node:https';
import { hostname as osHostname } from 'node:os';
import { setTimeout as sleepAbortable } from 'node:timers/promises';
import { KubeConfig, ListWatch, Watch, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { SERVICE_FIELD_SELECTOR, SERVICE_LABEL_SELECTOR } from '../model/service-filter.js';
import { eventBody, eventNamespace, isomorphicKey } from './events.js';
import type { EventType, Kind, KubeObject, ProxyEvent, Source, SourceHandler } from './types.js';

export interface BackoffOptions {
  /** First restart delay after an error; doubles up to maxMs. Default 1000. */
  initialMs?: number;
  maxMs?: number;
  /** Injectable sleep (tests count or shorten delays). Must resolve, not reject, on abort. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

export interface KubernetesSourceOptions {
  kubeconfig?: string;
  master?: string;
  nodeName: string;
  /** Re-deliver every object as an unchanged MODIFIED this often (configSyncPeriod); 0 = never. */
  resyncMs?: number;
  logger: Logger;
  backoff?: BackoffOptions;
  /** A ready KubeConfig (tests); overrides kubeconfig and in-cluster loading. */
  kubeConfig?: KubeConfig;
  /** Items per list page (the API's limit/continue); default 500 like client-go. */
  pageSize?: number;
  /** Events: client-go's retries for unreachable servers (12 tries, 10 s apart) and os.hostname(). */
  events?: { tries?: number; intervalMs?: number; hostname?: string; now?: () => number };
}

/** client-go drops an isomorphic Event seen within this window (its series bookkeeping). */
const EVENT_DEDUP_MS = 6 * 60_000;

// Re-exported for callers that knew them here; model/service-filter.ts owns them.
export { SERVICE_FIELD_SELECTOR, SERVICE_LABEL_SELECTOR };

interface Resource {
  kind: Kind;
  apiVersion: string;
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** A 404 means the API server does not serve it (older release): no objects, not an error. */
  optional?: boolean;
}

/** One request to the API server with the kubeconfig's credentials; resolves with status and JSON body. */
async function apiRequest(kc: KubeConfig, method: string, pathAndQuery: string, body?: unknown): Promise<{ status: number; json: any }> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('no current cluster in kubeconfig');
  const url = new URL(cluster.server.replace(/\/+$/, '') + pathAndQuery);
  const opts: https.RequestOptions = { method, headers: {} };
  await kc.applyToHTTPSOptions(opts);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  opts.headers = {
    ...(opts.headers as object),
    Accept: 'application/json',
    'User-Agent': 'kproxy',
    ...(payload === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) }),
  };
  const mod = url.protocol === 'http:' ? http : https;
  return new Promise((resolve, reject) => {
    const req = mod.request(url, opts, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: any;
        try {
          json = text === '' ? undefined : JSON.parse(text);
        } catch (e) {
          if (res.statusCode === 200) return reject(e);
        }
        resolve({ status: res.statusCode ?? 0, json });
      });
    });
    req.setTimeout(60_000, () => req.destroy(new Error(`${method} ${url.pathname} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** --kubeconfig, else in-cluster; --master overrides the server (as clientcmd does). */
export function loadKubeConfig(opts: { kubeconfig?: string; master?: string }): KubeConfig {
  const kc = new KubeConfig();
  if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
  else if (opts.master) kc.loadFromClusterAndUser({ name: 'master', server: opts.master, skipTLSVerify: false }, { name: 'anonymous' });
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else throw new Error('no --kubeconfig or --master, and not running in a cluster (KUBERNETES_SERVICE_HOST is unset)');
  if (opts.master && opts.kubeconfig) {
    const current = kc.getCurrentCluster();
    if (!current) throw new Error('kubeconfig has no current cluster to apply --master to');
    kc.clusters = kc.clusters.map((c) => (c.name === current.name ? { ...c, server: opts.master! } : c));
  }
  // client-node refuses plain http unless skipTLSVerify is set; there is no TLS to verify.
  kc.clusters = kc.clusters.map((c) => (c.server.startsWith('http:') ? { ...c, skipTLSVerify: true } : c));
  return kc;
}

const defaultSleep = async (ms: number, signal: AbortSignal): Promise<void> => {
  try {
    await sleepAbortable(ms, undefined, { signal });
  } catch {
    // aborted: the caller checks whether it was stopped
  }
};

/** One resource: a ListWatch plus what it lacks. */
class Informer {
  private lw?: ListWatch<KubernetesObject>;
  /** The last version of each object handed out, by ns/name: updates carry only the new one. */
  private readonly store = new Map<string, KubeObject>();
  private attempt = 0;
  private listedSinceWatch = false;
  private restarting = false;
  /** The resource is not served (optional resources only). */
  absent = false;
  synced = false;
  stopped = false;
  lists = 0;
  errors = 0;

  constructor(
    private readonly res: Resource,
    private readonly kc: KubeConfig,
    private readonly src: KubernetesSource,
    private readonly backoff: Required<Omit<BackoffOptions, 'sleep'>> & Pick<BackoffOptions, 'sleep'>,
    private readonly abort: AbortController,
    private readonly pageSize: number,
  ) {}

  get kind(): Kind {
    return this.res.kind;
  }

  async start(): Promise<void> {
    const self = this;
    // The informer opens its watch only after it has applied a list: that is our "synced".
    class HookedWatch extends Watch {
      override async watch(path: string, query: any, cb: (phase: string, apiObj: any, watchObj?: any) => void, done: (err: any) => void): Promise<AbortController> {
        if (self.stopped) return new AbortController();
        if (self.listedSinceWatch) {
          self.listedSinceWatch = false;
          self.onListed();
        }
        const wrapped = (phase: string, obj: any, watchObj?: any) => {
          if (phase !== 'ERROR') self.attempt = 0;
          cb(phase, obj, watchObj);
        };
        try {
          // Bookmarks keep a quiet resource's resourceVersion fresh, so a reconnect rarely needs a relist.
          return await super.watch(path, { ...query, allowWatchBookmarks: true }, wrapped, done);
        } catch (err) {
          // Thrown before the request (auth plugins, no cluster): route it to `error`.
          done(err);
          return new AbortController();
        }
      }
    }
    const { initialMs, maxMs } = this.backoff;
    // ListWatch's own reconnect ladder (1s..30s after clean watch ends) scaled to ours.
    const delayFn = (ms: number) => this.sleep(Math.min(maxMs, (ms / 1000) * initialMs));
    this.lw = new ListWatch(this.res.path, new HookedWatch(this.kc), () => this.list(), false, this.res.labelSelector, this.res.fieldSelector, { delayFn });
    this.lw.on('add', (o) => this.deliver('add', o));
    this.lw.on('update', (o) => this.deliver('update', o));
    this.lw.on('delete', (o) => this.deliver('delete', o));
    this.lw.on('error', (err) => this.onError(err));
    await this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.lw?.stop();
  }

  resync(): void {
    for (const obj of this.store.values()) this.src.emit(this.res.kind, 'MODIFIED', obj, obj);
  }

  private async run(): Promise<void> {
    try {
      await this.lw!.start();
    } catch (err) {
      this.onError(err);
    }
  }

  private sleep(ms: number): Promise<void> {
    return (this.backoff.sleep ?? defaultSleep)(ms, this.abort.signal);
  }

  /** ListWatch stops after `error`; restart it with exponential backoff. Nothing is deleted here. */
  private onError(err: any): void {
    if (this.res.optional && err?.statusCode === 404) return this.notServed();
    this.errors++;
    if (this.stopped || this.restarting) return;
    this.restarting = true;
    const delay = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** this.attempt);
    this.attempt++;
    this.src.log.warn({ resource: this.res.kind, err: err?.message ?? String(err), status: err?.statusCode, retryMs: delay }, 'watch failed; restarting');
    void this.sleep(delay).then(() => {
      this.restarting = false;
      if (!this.stopped) return this.run();
    });
  }

  /** An older API server: the resource does not exist, so there are none of it. */
  private notServed(): void {
    if (this.stopped || this.absent) return;
    this.absent = true;
    void this.lw?.stop();
    this.src.log.info({ resource: this.res.kind, path: this.res.path }, 'The API server does not serve this resource; assuming there are none');
    for (const [key, obj] of this.store) {
      this.store.delete(key);
      this.src.emit(this.res.kind, 'DELETED', obj, obj);
    }
    this.onListed();
  }

  private onListed(): void {
    this.attempt = 0;
    if (!this.synced) {
      this.synced = true;
      this.src.informerSynced();
    }
  }

  private deliver(verb: 'add' | 'update' | 'delete', raw: KubernetesObject): void {
    if (this.stopped) return; // a list that completes after stop() must not leak events
    const obj = raw as KubeObject;
    // List items come without kind/apiVersion; watch objects have them.
    if (obj.kind === undefined) obj.kind = this.res.kind;
    if (obj.apiVersion === undefined) obj.apiVersion = this.res.apiVersion;
    const key = `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
    const old = this.store.get(key);
    if (verb === 'delete') {
      this.store.delete(key);
      this.src.emit(this.res.kind, 'DELETED', obj, old);
      return;
    }
    this.store.set(key, obj);
    if (old && old.metadata?.uid !== obj.metadata?.uid) {
      this.src.log.debug({ resource: this.res.kind, key }, 'object recreated under the same name');
    }
    this.src.emit(this.res.kind, old ? 'MODIFIED' : 'ADDED', obj, old);
  }

  /** A paged list returning the API's JSON untouched (the typed client would turn times into Dates). */
  private async list(): Promise<KubernetesListObject<KubernetesObject>> {
    this.lists++;
    const items: KubernetesObject[] = [];
    let resourceVersion = '';
    let cont = '';
    for (;;) {
      const q = new URLSearchParams();
      if (this.res.labelSelector) q.set('labelSelector', this.res.labelSelector);
      if (this.res.fieldSelector) q.set('fieldSelector', this.res.fieldSelector);
      q.set('limit', String(this.pageSize));
      if (cont) q.set('continue', cont);
      const page = await this.get(`${this.res.path}?${q}`);
      if (!resourceVersion) resourceVersion = page.metadata?.resourceVersion ?? '';
      if (Array.isArray(page.items)) items.push(...page.items);
      cont = page.metadata?.continue ?? '';
      if (!cont) break;
    }
    this.listedSinceWatch = true;
    return { apiVersion: this.res.apiVersion, kind: `${this.res.kind}List`, metadata: { resourceVersion }, items };
  }

  private async get(pathAndQuery: string): Promise<any> {
    const { status, json } = await apiRequest(this.kc, 'GET', pathAndQuery);
    if (status !== 200) {
      const err: any = new Error(`list ${pathAndQuery.split('?')[0]}: HTTP ${status}`);
      err.statusCode = status;
      throw err;
    }
    return json;
  }
}

export class KubernetesSource implements Source {
  readonly log: Logger;
  private readonly opts: KubernetesSourceOptions;
  private handler?: SourceHandler;
  private informers: Informer[] = [];
  private abort = new AbortController();
  private resyncTimer?: NodeJS.Timeout;
  private syncedCalled = false;
  private kc?: KubeConfig;
  /** Isomorphic Events recently posted, with when (client-go's dedup). */
  private readonly recentEvents = new Map<string, number>();
  private eventSeq = 0;
  private readonly pendingEvents = new Set<Promise<void>>();
  private eventAbort = new AbortController();

  constructor(opts: KubernetesSourceOptions) {
    this.opts = opts;
    this.log = opts.logger;
  }

  async start(handler: SourceHandler): Promise<void> {
    this.handler = handler;
    this.abort = new AbortController();
    this.eventAbort = new AbortController();
    this.syncedCalled = false;
    const kc = this.kubeConfig();
    const backoff = { initialMs: this.opts.backoff?.initialMs ?? 1000, maxMs: this.opts.backoff?.maxMs ?? 30_000, sleep: this.opts.backoff?.sleep };
    const resources: Resource[] = [
      { kind: 'Service', apiVersion: 'v1', path: '/api/v1/services', labelSelector: SERVICE_LABEL_SELECTOR, fieldSelector: SERVICE_FIELD_SELECTOR },
      { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', path: '/apis/discovery.k8s.io/v1/endpointslices', labelSelector: SERVICE_LABEL_SELECTOR },
      { kind: 'Node', apiVersion: 'v1', path: '/api/v1/nodes', fieldSelector: `metadata.name=${this.opts.nodeName}` },
      { kind: 'ServiceCIDR', apiVersion: 'networking.k8s.io/v1', path: '/apis/networking.k8s.io/v1/servicecidrs', optional: true },
    ];
    this.informers = resources.map((r) => new Informer(r, kc, this, backoff, this.abort, this.opts.pageSize ?? 500));
    // Each start resolves after its first attempt (watching, or failed and scheduled to retry).
    await Promise.all(this.informers.map((i) => i.start()));
    if (this.opts.resyncMs && this.opts.resyncMs > 0) {
      this.resyncTimer = setInterval(() => this.informers.forEach((i) => i.resync()), this.opts.resyncMs);
      this.resyncTimer.unref();
    }
  }

  async stop(): Promise<void> {
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.abort.abort();
    this.eventAbort.abort();
    await Promise.all(this.informers.map((i) => i.stop()));
    await Promise.all(this.pendingEvents);
  }

  private kubeConfig(): KubeConfig {
    this.kc ??= this.opts.kubeConfig ?? loadKubeConfig(this.opts);
    return this.kc;
  }

  /** Counters for tests and debugging: lists issued and errors seen, per kind. */
  stats(): Record<Kind, { lists: number; errors: number; synced: boolean; absent: boolean }> {
    const out = {} as Record<Kind, { lists: number; errors: number; synced: boolean; absent: boolean }>;
    for (const i of this.informers) out[i.kind] = { lists: i.lists, errors: i.errors, synced: i.synced, absent: i.absent };
    return out;
  }

  /**
   * Posts an events.k8s.io/v1 Event, as client-go's recorder does: an isomorphic one within
   * 6 minutes is dropped (client-go counts it into a series instead), a refused one is not
   * retried, an unreachable server is retried 12 times 10 s apart. Never rejects.
   */
  recordEvent(event: ProxyEvent): Promise<void> {
    const now = (this.opts.events?.now ?? Date.now)();
    const key = isomorphicKey(event);
    for (const [k, at] of this.recentEvents) if (now - at >= EVENT_DEDUP_MS) this.recentEvents.delete(k);
    if (this.recentEvents.has(key)) {
      this.log.debug({ reason: event.reason, regarding: event.regarding }, 'Event recorded recently; not posted again');
      return Promise.resolve();
    }
    this.recentEvents.set(key, now);
    const body = eventBody(event, { nowMs: now, hostname: this.opts.events?.hostname ?? osHostname(), seq: this.eventSeq++ });
    const p = this.postEvent(event, body).finally(() => this.pendingEvents.delete(p));
    this.pendingEvents.add(p);
    return p;
  }

  private async postEvent(event: ProxyEvent, body: Record<string, unknown>): Promise<void> {
    const tries = this.opts.events?.tries ?? 12;
    const path = `/apis/events.k8s.io/v1/namespaces/${encodeURIComponent(eventNamespace(event))}/events`;
    const signal = this.eventAbort.signal;
    let kc: KubeConfig;
    try {
      kc = this.kubeConfig();
    } catch (err) {
      this.log.warn({ reason: event.reason, err: (err as Error)?.message ?? String(err) }, 'Cannot post events without an API server configuration');
      return;
    }
    for (let attempt = 1; attempt <= tries && !signal.aborted; attempt++) {
      try {
        const { status, json } = await apiRequest(kc, 'POST', path, body);
        if (status >= 200 && status < 300) return;
        // As client-go: the server refused it; retrying will not help.
        this.log.warn({ reason: event.reason, status, err: json?.message }, 'Server rejected event (will not retry)');
        return;
      } catch (err) {
        if (attempt === tries) {
          this.log.warn({ reason: event.reason, err: (err as Error)?.message ?? String(err) }, 'Could not post event; giving up');
          return;
        }
        await (this.opts.backoff?.sleep ?? defaultSleep)(this.opts.events?.intervalMs ?? 10_000, signal);
      }
    }
  }

  /** @internal */
  emit(kind: Kind, type: EventType, obj: KubeObject, old?: KubeObject): void {
    try {
      this.handler?.onEvent(kind, type, obj, old);
    } catch (err) {
      this.log.error({ err, kind, type }, 'event handler threw');
    }
  }

  /** @internal Services and EndpointSlices gate the first sync; the Node and ServiceCIDRs do not. */
  informerSynced(): void {
    if (this.syncedCalled) return;
    const synced = (kind: Kind) => this.informers.some((i) => i.kind === kind && i.synced);
    if (!synced('Service') || !synced('EndpointSlice')) return;
    this.syncedCalled = true;
    try {
      this.handler?.onSynced();
    } catch (err) {
      this.log.error({ err }, 'onSynced handler threw');
    }
  }
}
