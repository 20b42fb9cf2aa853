// The Kubernetes API source: list+watch of Services, EndpointSlices, our own Node and
// ServiceCIDRs, with the selectors kube-proxy uses (cmd/kube-proxy/app/server.go), and the
// sink for kube-proxy's Events (events.k8s.io/v1).
//
// reflector.ts lists and watches each resource; kube-client.ts reaches the API server.

import { hostname as osHostname } from 'node:os';
import { setTimeout as sleepAbortable } from 'node:timers/promises';
import type { Logger } from 'pino';
import { SERVICE_FIELD_SELECTOR, SERVICE_LABEL_SELECTOR } from '../model/service-filter.js';
import { eventBody, eventNamespace, isomorphicKey } from './events.js';
import { apiRequest, loadApiEndpoint, type ApiEndpoint } from './kube-client.js';
import { ENDPOINT_SLICE, SERVICE } from './protobuf/schemas.js';
import { Reflector, type Resource } from './reflector.js';
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
  /**
   * Re-deliver the Node and ServiceCIDRs as unchanged MODIFIED this often (configSyncPeriod);
   * 0 = never. Services and EndpointSlices are held parsed, not as objects: re-delivering an
   * identical one changes nothing, upstream as here.
   */
  resyncMs?: number;
  logger: Logger;
  backoff?: BackoffOptions;
  /** Read Services and EndpointSlices in protobuf, as upstream (clientConnection.contentType); default true. */
  protobuf?: boolean;
  /** A ready endpoint (tests); overrides kubeconfig and in-cluster loading. */
  endpoint?: ApiEndpoint;
  /** Items per list page (the API's limit/continue); default 500 like client-go. */
  pageSize?: number;
  /** Tests: how long a silent watch lasts before it is reopened. */
  watchIdleMs?: number;
  /** Events: client-go's retries for unreachable servers (12 tries, 10 s apart) and os.hostname(). */
  events?: { tries?: number; intervalMs?: number; hostname?: string; now?: () => number };
}

/** client-go drops an isomorphic Event seen within this window (its series bookkeeping). */
const EVENT_DEDUP_MS = 6 * 60_000;

// Re-exported for callers that knew them here; model/service-filter.ts owns them.
export { SERVICE_FIELD_SELECTOR, SERVICE_LABEL_SELECTOR };

const defaultSleep = async (ms: number, signal: AbortSignal): Promise<void> => {
  try {
    await sleepAbortable(ms, undefined, { signal });
  } catch {
    // aborted: the caller checks whether it was stopped
  }
};

export class KubernetesSource implements Source {
  readonly log: Logger;
  private readonly opts: KubernetesSourceOptions;
  private handler?: SourceHandler;
  private informers: Reflector[] = [];
  private abort = new AbortController();
  private resyncTimer?: NodeJS.Timeout;
  private syncedCalled = false;
  private ep?: ApiEndpoint;
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
    const ep = this.endpoint();
    const backoff = { initialMs: this.opts.backoff?.initialMs ?? 1000, maxMs: this.opts.backoff?.maxMs ?? 30_000 };
    const sleep = this.opts.backoff?.sleep ?? defaultSleep;
    const signal = this.abort.signal;
    // The Node and ServiceCIDRs stay JSON: one object each, read whole by their consumers.
    const pb = this.opts.protobuf ?? true;
    const resources: Resource[] = [
      { kind: 'Service', apiVersion: 'v1', path: '/api/v1/services', labelSelector: SERVICE_LABEL_SELECTOR, fieldSelector: SERVICE_FIELD_SELECTOR, protobuf: pb ? SERVICE : undefined },
      { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', path: '/apis/discovery.k8s.io/v1/endpointslices', labelSelector: SERVICE_LABEL_SELECTOR, protobuf: pb ? ENDPOINT_SLICE : undefined },
      { kind: 'Node', apiVersion: 'v1', path: '/api/v1/nodes', fieldSelector: `metadata.name=${this.opts.nodeName}`, keepObjects: true },
      { kind: 'ServiceCIDR', apiVersion: 'networking.k8s.io/v1', path: '/apis/networking.k8s.io/v1/servicecidrs', optional: true, keepObjects: true },
    ];
    const hooks = {
      emit: (kind: Kind, type: EventType, obj: KubeObject, old?: KubeObject) => this.emit(kind, type, obj, old),
      synced: () => this.informerSynced(),
      log: this.log,
      sleep: (ms: number) => sleep(ms, signal),
      backoff,
      pageSize: this.opts.pageSize ?? 500,
      watchIdleMs: this.opts.watchIdleMs,
    };
    this.informers = resources.map((r) => new Reflector(r, ep, hooks));
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
    for (const i of this.informers) i.stop();
    await Promise.all(this.pendingEvents);
  }

  private endpoint(): ApiEndpoint {
    this.ep ??= this.opts.endpoint ?? loadApiEndpoint(this.opts);
    return this.ep;
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
    let ep: ApiEndpoint;
    try {
      ep = this.endpoint();
    } catch (err) {
      this.log.warn({ reason: event.reason, err: (err as Error)?.message ?? String(err) }, 'Cannot post events without an API server configuration');
      return;
    }
    for (let attempt = 1; attempt <= tries && !signal.aborted; attempt++) {
      try {
        const { status, json } = await apiRequest(ep, 'POST', path, body);
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
