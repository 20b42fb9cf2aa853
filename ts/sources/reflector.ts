// One resource, listed and then watched, as client-go's reflector does: the first list from
// the watch cache (resourceVersion=0), its items parsed as they arrive, watches resumed from the last resourceVersion seen
// (bookmarks keep it fresh), a relist only after 410 Gone, and exponential backoff after
// errors. Nothing is deleted because the server is unreachable: only a list that lacks an
// object, or a watch DELETED, removes it.
//
// What it keeps per object: its resourceVersion, and the object itself only when asked
// (`keepObjects`: the Node and ServiceCIDRs, few and read whole by their consumers). The
// tracker holds Services and EndpointSlices in parsed form; a copy here would double them.
import type { Logger } from 'pino';
import { ApiError, listRequest, watchStream, type ApiEndpoint, type WatchEvent } from './kube-client.js';
import type { MessageSchema } from './protobuf/decode.js';
import type { EventType, Kind, KubeObject } from './types.js';

export interface Resource {
  kind: Kind;
  apiVersion: string;
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** A 404 means the API server does not serve it (older release): no objects, not an error. */
  optional?: boolean;
  keepObjects?: boolean;
  /** Ask for protobuf and decode these fields of each object (JSON is read if the server sends it). */
  protobuf?: MessageSchema;
}

export interface ReflectorHooks {
  emit(kind: Kind, type: EventType, obj: KubeObject, old?: KubeObject): void;
  /** The first complete list (or: the resource is not served). */
  synced(): void;
  log: Logger;
  sleep(ms: number): Promise<void>;
  backoff: { initialMs: number; maxMs: number };
  pageSize: number;
  /** A watch silent this long is taken for dead and reopened (default WATCH_IDLE_MS). */
  watchIdleMs?: number;
}

class Gone extends Error {}

/**
 * A watch that streamed this long before its connection broke is resumed at once: the server
 * was there a moment ago, and a path that resets connections every second would otherwise
 * keep the watch closed two thirds of the time (the ~1 s wait, then the next reset). One that
 * breaks sooner waits as an unanswered request does, so a path that kills every connection at
 * once is asked about once a second; timed from the request, so no two attempts are closer.
 */
export const RESUME_AT_ONCE_AFTER_MS = 500;

const key = (o: KubeObject) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

export class Reflector {
  private readonly known = new Map<string, { rv: string; obj?: KubeObject }>();
  private resourceVersion = '';
  private attempt = 0;
  private watchAbort = new AbortController();
  /** A list has succeeded: relists after that need not come from the cache's oldest state. */
  private listedOnce = false;
  /** The next list's resourceVersion after a 410: the last one seen (from the cache), else '' (current). */
  private relistFrom = '';
  private lastGone = -Infinity;
  /** When the current watch was opened; 0 while listing or waiting. */
  private watchBegan = 0;
  /** The last list was served from the cache at a version we named, and its watch has seen nothing yet. */
  private cachedRelist = false;
  absent = false;
  synced = false;
  stopped = false;
  lists = 0;
  errors = 0;

  constructor(
    private readonly res: Resource,
    private readonly ep: ApiEndpoint,
    private readonly hooks: ReflectorHooks,
  ) {}

  get kind(): Kind {
    return this.res.kind;
  }

  /** Resolves once running: after the first list, or after it failed and a retry is scheduled. */
  start(): Promise<void> {
    return new Promise((started) => void this.loop(started));
  }

  stop(): void {
    this.stopped = true;
    this.watchAbort.abort();
  }

  /** Re-delivers every kept object as an unchanged MODIFIED (configSyncPeriod). */
  resync(): void {
    for (const { obj } of this.known.values()) if (obj) this.hooks.emit(this.res.kind, 'MODIFIED', obj, obj);
  }

  private async loop(started: () => void): Promise<void> {
    while (!this.stopped) {
      try {
        if (!this.resourceVersion) await this.list();
        if (this.stopped) break;
        started();
        const began = (this.watchBegan = Date.now());
        await this.watch();
        this.watchBegan = 0;
        // A server that ends watches at once must not be asked again in a tight loop.
        if (Date.now() - began < 1000) await this.hooks.sleep(this.hooks.backoff.initialMs);
      } catch (err) {
        const streamed = this.watchBegan ? Date.now() - this.watchBegan : 0;
        this.watchBegan = 0;
        if (this.stopped) break;
        if (err instanceof Gone || (err as ApiError)?.statusCode === 410) {
          this.hooks.log.info({ resource: this.res.kind }, 'Watch history compacted (410 Gone); relisting');
          // As client-go: relist from the watch cache at the last version seen, not from etcd;
          // but a cached relist whose own version is gone at once (a restarted apiserver's cache
          // starts later) reads current state.
          this.relistFrom = this.cachedRelist ? '' : this.resourceVersion;
          this.cachedRelist = false;
          this.resourceVersion = '';
          // Gone again at once: do not hammer the server.
          if (Date.now() - this.lastGone < 1000) await this.hooks.sleep(this.hooks.backoff.initialMs);
          this.lastGone = Date.now();
          continue;
        }
        if (this.res.optional && (err as ApiError)?.statusCode === 404) {
          this.notServed();
          started();
          return;
        }
        this.errors++;
        if (unanswered(err) && streamed >= RESUME_AT_ONCE_AFTER_MS) {
          this.hooks.log.warn({ resource: this.res.kind, err: (err as Error)?.message ?? String(err), streamedMs: streamed }, 'watch broke; resuming at once');
          continue;
        }
        // No answer at all (refused, reset, timed out: a restart, an outage) costs the server
        // nothing to ask again: try every second or so, so that the rules converge within about
        // a second of its return. A server that answers with an HTTP error gets the backoff, which
        // the unanswered attempts do not grow (a restarted server's first 429s start it afresh).
        const delay = unanswered(err)
          ? this.hooks.backoff.initialMs * (0.8 + 0.4 * Math.random())
          : Math.min(this.hooks.backoff.maxMs, this.hooks.backoff.initialMs * 2 ** this.attempt++);
        this.hooks.log.warn({ resource: this.res.kind, err: (err as Error)?.message ?? String(err), status: (err as ApiError)?.statusCode, retryMs: delay }, 'watch failed; restarting');
        started();
        await this.hooks.sleep(delay);
      }
    }
    started();
  }

  private query(extra: Record<string, string>): string {
    const q = new URLSearchParams();
    if (this.res.labelSelector) q.set('labelSelector', this.res.labelSelector);
    if (this.res.fieldSelector) q.set('fieldSelector', this.res.fieldSelector);
    for (const [k, v] of Object.entries(extra)) q.set(k, v);
    return `${this.res.path}?${q}`;
  }

  /**
   * A list; its items are delivered as they arrive. It comes from the watch cache (one
   * response, served several times faster than pages): resourceVersion=0 at first, the last
   * version seen after a 410; current state, in pages, only when the cache cannot serve that.
   * Then what the list lacked is deleted.
   */
  private async list(): Promise<void> {
    this.lists++;
    const began = Date.now();
    const listed = new Set<string>();
    let rv = '';
    let cont = '';
    let pages = 0;
    let encoding: string | undefined;
    // The first list (until one succeeds) takes any cached state, as client-go's "0"; a relist
    // after 410 takes the cache at least as new as the last version seen; failing that, current.
    const from = !this.listedOnce ? '0' : this.relistFrom;
    const onItem = (obj: KubeObject) => {
      if (typeof obj !== 'object' || obj === null) return;
      listed.add(key(obj));
      this.deliver('ADDED', obj);
    };
    for (;;) {
      const extra: Record<string, string> = { limit: String(this.hooks.pageSize) };
      if (cont) extra.continue = cont;
      else if (from) extra.resourceVersion = from;
      const { status, json, encoding: enc } = await listRequest(this.ep, this.query(extra), onItem, this.res.protobuf);
      encoding = enc;
      pages++;
      // The continue token, or the version asked for, is too old (410) or too new (504): read current state.
      if ((status === 410 || status === 504) && (cont || (from && from !== '0'))) {
        this.relistFrom = '';
        throw new Gone();
      }
      if (status !== 200) throw new ApiError(`list ${this.res.path}: HTTP ${status}: ${json?.message ?? ''}`, status);
      rv ||= json?.metadata?.resourceVersion ?? '';
      cont = json?.metadata?.continue ?? '';
      if (!cont) break;
    }
    if (this.stopped) return;
    // Every list names its version; one without is no basis for deleting what it lacks.
    if (!rv) throw new ApiError(`list ${this.res.path}: the answer has no resourceVersion`, 0);
    this.hooks.log.info({ resource: this.res.kind, objects: listed.size, pages, ms: Date.now() - began, resourceVersion: rv, encoding }, 'Listed');
    for (const [k, entry] of this.known) if (!listed.has(k)) this.deliver('DELETED', entry.obj ?? stub(this.res, k));
    this.resourceVersion = rv;
    this.listedOnce = true;
    this.cachedRelist = from !== '' && from !== '0';
    this.relistFrom = '';
    this.attempt = 0;
    this.markSynced();
  }

  private async watch(): Promise<void> {
    this.watchAbort = new AbortController();
    // No timeoutSeconds: the server then ends each watch after 1-2x its --min-request-timeout,
    // spread at random as client-go's own timeouts are.
    const path = this.query({ watch: '1', resourceVersion: this.resourceVersion, allowWatchBookmarks: 'true' });
    await watchStream(this.ep, path, (e) => this.onWatchEvent(e), this.watchAbort.signal, this.hooks.watchIdleMs, this.res.protobuf);
  }

  private onWatchEvent(e: WatchEvent): void {
    if (this.stopped) return;
    if (e.type === 'ERROR') {
      const code = e.object?.code;
      if (code === 410) throw new Gone();
      throw new ApiError(`watch ${this.res.path}: ${e.object?.message ?? 'error event'}`, code ?? 0);
    }
    this.attempt = 0;
    this.cachedRelist = false;
    const rv = e.object?.metadata?.resourceVersion;
    if (typeof rv === 'string' && rv) this.resourceVersion = rv;
    if (e.type === 'BOOKMARK') return;
    this.deliver(e.type, e.object);
  }

  private deliver(type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: KubeObject): void {
    if (this.stopped || typeof obj !== 'object' || obj === null) return;
    // List items come without kind/apiVersion; watch objects have them.
    obj.kind ??= this.res.kind;
    obj.apiVersion ??= this.res.apiVersion;
    const k = key(obj);
    const prev = this.known.get(k);
    if (type === 'DELETED') {
      this.known.delete(k);
      this.hooks.emit(this.res.kind, 'DELETED', obj, prev?.obj);
      return;
    }
    const rv = String(obj.metadata?.resourceVersion ?? '');
    // A relist hands back every object: one we hold at this version has not changed.
    if (prev && rv && prev.rv === rv) return;
    // managedFields are the largest part of most objects, and no proxy reads them.
    if (obj.metadata?.managedFields) delete obj.metadata.managedFields;
    this.known.set(k, { rv, obj: this.res.keepObjects ? obj : undefined });
    this.hooks.emit(this.res.kind, prev ? 'MODIFIED' : 'ADDED', obj, prev?.obj);
  }

  /** An older API server: the resource does not exist, so there are none of it. */
  private notServed(): void {
    if (this.absent) return;
    this.absent = true;
    this.hooks.log.info({ resource: this.res.kind, path: this.res.path }, 'The API server does not serve this resource; assuming there are none');
    for (const [k, entry] of this.known) {
      this.known.delete(k);
      this.hooks.emit(this.res.kind, 'DELETED', entry.obj ?? stub(this.res, k), entry.obj);
    }
    this.markSynced();
  }

  private markSynced(): void {
    if (this.synced) return;
    this.synced = true;
    this.hooks.synced();
  }
}

/** What a deletion found by a relist carries when the object itself was not kept. */
function stub(res: Resource, k: string): KubeObject {
  const [namespace, name] = k.split('/', 2);
  return { apiVersion: res.apiVersion, kind: res.kind, metadata: { ...(namespace ? { namespace } : {}), name } };
}

/** The request got no HTTP answer (a network error), as opposed to an error status. */
function unanswered(err: unknown): boolean {
  return !((err as ApiError)?.statusCode > 0);
}
