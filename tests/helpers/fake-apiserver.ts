// A fake Kubernetes API server on 127.0.0.1 speaking the real wire protocol, enough for
// list+watch clients: paged lists with a resourceVersion, watches streaming
// newline-delimited {"type","object"} events from a resourceVersion, selector filtering
// (including the ADDED/DELETED a filtered watch sees when an object starts/stops matching),
// 410 Gone for compacted history, dropped connections, and stop/restart on the same port.
// It also takes events.k8s.io/v1 Event POSTs (kept in `events`, checked like the API server
// checks them) and can play an older release that does not serve a resource (404).

import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { ApiEndpoint } from '../../ts/sources/kube-client.js';

export type Resource = 'services' | 'endpointslices' | 'nodes' | 'servicecidrs';

const RESOURCES: Record<Resource, { path: string; kind: string; apiVersion: string }> = {
  services: { path: '/api/v1/services', kind: 'Service', apiVersion: 'v1' },
  endpointslices: { path: '/apis/discovery.k8s.io/v1/endpointslices', kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1' },
  nodes: { path: '/api/v1/nodes', kind: 'Node', apiVersion: 'v1' },
  servicecidrs: { path: '/apis/networking.k8s.io/v1/servicecidrs', kind: 'ServiceCIDR', apiVersion: 'networking.k8s.io/v1' },
};

const EVENTS_PATH = /^\/apis\/events\.k8s\.io\/v1\/namespaces\/([^/]+)\/events$/;

export interface PostedEvent {
  /** The namespace in the URL. */
  namespace: string;
  body: any;
}

/** What the API server's events.k8s.io/v1 validation refuses (ValidateEventCreate), briefly. */
function eventProblem(namespace: string, e: any): string | undefined {
  if (e?.apiVersion !== 'events.k8s.io/v1' || e?.kind !== 'Event') return 'apiVersion/kind must be events.k8s.io/v1 Event';
  if (!e.metadata?.name) return 'metadata.name: Required value';
  if (e.metadata.namespace !== namespace) return 'metadata.namespace: does not match the namespace in the URL';
  if (typeof e.eventTime !== 'string' || !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/.test(e.eventTime)) return 'eventTime: Required value (MicroTime)';
  for (const f of ['reportingController', 'reportingInstance', 'action', 'reason']) {
    if (typeof e[f] !== 'string' || e[f] === '' || e[f].length > 128) return `${f}: Required value, at most 128 characters`;
  }
  if (!['Normal', 'Warning'].includes(e.type)) return 'type: Unsupported value';
  if (typeof e.note === 'string' && Buffer.byteLength(e.note) > 1024) return 'note: Too long';
  if (!e.regarding?.kind || !e.regarding?.name) return 'regarding: Required value';
  if (!e.regarding.namespace && namespace !== 'default') return 'metadata.namespace: cluster-scoped objects have events in default';
  return undefined;
}

interface HistoryEvent {
  rv: number;
  resource: Resource;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  obj: any;
  old?: any;
}

interface OpenWatch {
  resource: Resource;
  matches: (o: any) => boolean;
  res: http.ServerResponse;
}

export interface RequestLog {
  resource: Resource;
  watch: boolean;
  query: Record<string, string>;
}

type Pred = (o: any) => boolean;

function getPath(obj: any, path: string): unknown {
  return path.split('.').reduce<any>((o, k) => (o == null ? undefined : o[k]), obj);
}

/** label selectors: "a", "!a", "a=b", "a==b", "a!=b", comma-separated (no set syntax). */
export function parseLabelSelector(sel: string | undefined): Pred {
  const terms = (sel ?? '').split(',').map((t) => t.trim()).filter(Boolean);
  const preds: Pred[] = terms.map((t) => {
    const labels = (o: any): Record<string, string> => o?.metadata?.labels ?? {};
    let m: RegExpMatchArray | null;
    if ((m = t.match(/^(.+?)!=(.*)$/))) { const [, k, v] = m; return (o) => labels(o)[k] !== v; }
    if ((m = t.match(/^(.+?)==?(.*)$/))) { const [, k, v] = m; return (o) => labels(o)[k] === v; }
    if (t.startsWith('!')) return (o) => !(t.slice(1) in labels(o));
    return (o) => t in labels(o);
  });
  return (o) => preds.every((p) => p(o));
}

/** field selectors: "a.b=c", "a.b==c", "a.b!=c", comma-separated. */
export function parseFieldSelector(sel: string | undefined): Pred {
  const terms = (sel ?? '').split(',').map((t) => t.trim()).filter(Boolean);
  const preds: Pred[] = terms.map((t) => {
    const m = t.match(/^(.+?)(!=|==|=)(.*)$/);
    if (!m) throw new Error(`bad field selector ${t}`);
    const [, path, op, v] = m;
    return op === '!=' ? (o) => String(getPath(o, path) ?? '') !== v : (o) => String(getPath(o, path) ?? '') === v;
  });
  return (o) => preds.every((p) => p(o));
}

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v));

export class FakeApiServer {
  private server?: http.Server;
  private port = 0;
  private rv = 1;
  /** Watches from below this resourceVersion get 410 Gone. */
  private compactedRv = 0;
  private readonly store: Record<Resource, Map<string, any>> = { services: new Map(), endpointslices: new Map(), nodes: new Map(), servicecidrs: new Map() };
  private readonly history: HistoryEvent[] = [];
  private readonly watches = new Set<OpenWatch>();
  private readonly sockets = new Set<Socket>();
  readonly requests: RequestLog[] = [];
  /** Answer this many coming list requests with 500, to exercise retries. */
  failLists = 0;
  /** Resources this "older release" does not serve: lists and watches get 404. */
  readonly notServed = new Set<Resource>();
  /** Events accepted by POST, in order. */
  readonly events: PostedEvent[] = [];
  /** Reset the connection of this many coming Event POSTs (transport errors: client-go retries). */
  dropEventPosts = 0;
  /** Every Event POST received, whatever became of it. */
  eventPostAttempts = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts listening; on restart it takes the same port again. */
  async start(): Promise<void> {
    const server = http.createServer((req, res) => this.handle(req, res));
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Stops listening and kills every connection, as a crashed apiserver would. State is kept. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const w of this.watches) w.res.destroy();
    this.watches.clear();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** How a source reaches this server, with a token it accepts. */
  endpoint(): ApiEndpoint {
    return { server: this.url, insecure: true, authorization: () => 'Bearer fake-token' };
  }

  // --- state ------------------------------------------------------------------

  /** Creates or replaces an object; emits ADDED/MODIFIED unless silent (then only a relist sees it). */
  upsert(resource: Resource, obj: any, opts: { silent?: boolean } = {}): any {
    const key = this.key(obj);
    const old = this.store[resource].get(key);
    const stored = clone(obj);
    stored.kind = RESOURCES[resource].kind;
    stored.apiVersion = RESOURCES[resource].apiVersion;
    stored.metadata = { ...stored.metadata, resourceVersion: String(++this.rv) };
    stored.metadata.uid ??= old?.metadata?.uid ?? `uid-${this.rv}`;
    this.store[resource].set(key, stored);
    if (!opts.silent) this.record({ rv: this.rv, resource, type: old ? 'MODIFIED' : 'ADDED', obj: stored, old });
    return stored;
  }

  remove(resource: Resource, namespace: string | undefined, name: string, opts: { silent?: boolean } = {}): void {
    const key = `${namespace ?? ''}/${name}`;
    const old = this.store[resource].get(key);
    if (!old) return;
    this.store[resource].delete(key);
    const gone = { ...clone(old), metadata: { ...old.metadata, resourceVersion: String(++this.rv) } };
    if (!opts.silent) this.record({ rv: this.rv, resource, type: 'DELETED', obj: gone, old });
  }

  get resourceVersion(): number {
    return this.rv;
  }

  // --- failure injection ------------------------------------------------------

  /** Resets every open watch connection (TCP reset, no clean end). */
  dropWatches(): void {
    for (const w of this.watches) w.res.destroy();
    this.watches.clear();
  }

  /** Ends every open watch cleanly, as the apiserver does when a watch times out. */
  closeWatches(): void {
    for (const w of this.watches) w.res.end();
    this.watches.clear();
  }

  /** Compacts history: a watch from any resourceVersion seen so far gets 410 Gone. */
  compact(): void {
    this.compactedRv = ++this.rv;
  }

  /** Compacts, and open watches get an ERROR 410 event and end: the client must relist. */
  expireWatches(): void {
    this.compact();
    for (const w of this.watches) {
      this.writeEvent(w.res, 'ERROR', this.goneStatus(0));
      w.res.end();
    }
    this.watches.clear();
  }

  openWatchCount(resource?: Resource): number {
    return [...this.watches].filter((w) => !resource || w.resource === resource).length;
  }

  listCount(resource: Resource): number {
    return this.requests.filter((r) => r.resource === resource && !r.watch).length;
  }

  // --- wire protocol ----------------------------------------------------------

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    const eventsNs = EVENTS_PATH.exec(url.pathname)?.[1];
    if (eventsNs !== undefined && req.method === 'POST') return this.postEvent(decodeURIComponent(eventsNs), req, res);
    const resource = (Object.keys(RESOURCES) as Resource[]).find((r) => RESOURCES[r].path === url.pathname);
    const query = Object.fromEntries(url.searchParams);
    const watch = query.watch === 'true' || query.watch === '1';
    if (resource && req.method === 'GET') this.requests.push({ resource, watch, query });
    if (!resource || req.method !== 'GET' || this.notServed.has(resource)) {
      return this.status(res, 404, 'NotFound', `the server could not find the requested resource (${req.method} ${url.pathname})`);
    }
    let matches: Pred;
    try {
      const byLabel = parseLabelSelector(query.labelSelector);
      const byField = parseFieldSelector(query.fieldSelector);
      matches = (o) => byLabel(o) && byField(o);
    } catch (err) {
      return this.status(res, 400, 'BadRequest', (err as Error).message);
    }
    if (watch) return this.serveWatch(resource, matches, query, res);
    if (this.failLists > 0) {
      this.failLists--;
      return this.status(res, 500, 'InternalError', 'injected list failure');
    }
    this.serveList(resource, matches, query, res);
  }

  private postEvent(namespace: string, req: http.IncomingMessage, res: http.ServerResponse): void {
    this.eventPostAttempts++;
    if (this.dropEventPosts > 0) {
      this.dropEventPosts--;
      req.socket.destroy();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body: any;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return this.status(res, 400, 'BadRequest', 'body is not JSON');
      }
      if (req.headers['content-type'] !== 'application/json') return this.status(res, 415, 'UnsupportedMediaType', 'want application/json');
      const problem = eventProblem(namespace, body);
      if (problem) return this.status(res, 422, 'Invalid', `Event "${body?.metadata?.name}" is invalid: ${problem}`);
      if (this.events.some((e) => e.namespace === namespace && e.body.metadata.name === body.metadata.name)) {
        return this.status(res, 409, 'AlreadyExists', `events.events.k8s.io "${body.metadata.name}" already exists`);
      }
      this.events.push({ namespace, body });
      const stored = { ...body, metadata: { ...body.metadata, uid: `uid-${++this.rv}`, resourceVersion: String(this.rv) } };
      res.writeHead(201, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(stored));
    });
  }

  private serveList(resource: Resource, matches: Pred, query: Record<string, string>, res: http.ServerResponse): void {
    const all = [...this.store[resource].values()].filter(matches).sort((a, b) => (this.key(a) < this.key(b) ? -1 : 1));
    // continue token: "<rv>:<offset>"; every page reports the snapshot's resourceVersion.
    let offset = 0;
    let rv = this.rv;
    if (query.continue) [rv, offset] = query.continue.split(':').map(Number);
    const limit = query.limit ? Number(query.limit) : all.length;
    const items = all.slice(offset, offset + limit).map((o) => {
      const { kind: _k, apiVersion: _a, ...rest } = o; // list items carry no kind/apiVersion
      return rest;
    });
    const metadata: Record<string, string> = { resourceVersion: String(rv) };
    if (offset + limit < all.length) metadata.continue = `${rv}:${offset + limit}`;
    const { kind, apiVersion } = RESOURCES[resource];
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ kind: `${kind}List`, apiVersion, metadata, items }));
  }

  private serveWatch(resource: Resource, matches: Pred, query: Record<string, string>, res: http.ServerResponse): void {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders(); // as the apiserver does: the client's fetch resolves before any event
    const from = Number(query.resourceVersion || this.rv);
    if (from < this.compactedRv) {
      this.writeEvent(res, 'ERROR', this.goneStatus(from));
      res.end();
      return;
    }
    const w: OpenWatch = { resource, matches, res };
    for (const ev of this.history) if (ev.rv > from) this.send(w, ev);
    this.watches.add(w);
    res.on('close', () => this.watches.delete(w));
  }

  private record(ev: HistoryEvent): void {
    this.history.push(ev);
    for (const w of this.watches) this.send(w, ev);
  }

  /** What a filtered watch sees: an object leaving the selection is DELETED, entering it ADDED. */
  private send(w: OpenWatch, ev: HistoryEvent): void {
    if (w.resource !== ev.resource) return;
    const now = ev.type !== 'DELETED' && w.matches(ev.obj);
    const before = ev.old !== undefined && w.matches(ev.old);
    if (ev.type === 'DELETED') {
      if (before) this.writeEvent(w.res, 'DELETED', ev.obj);
    } else if (now && before) this.writeEvent(w.res, 'MODIFIED', ev.obj);
    else if (now) this.writeEvent(w.res, 'ADDED', ev.obj);
    else if (before) this.writeEvent(w.res, 'DELETED', ev.obj);
  }

  private writeEvent(res: http.ServerResponse, type: string, object: any): void {
    if (!res.writableEnded && !res.destroyed) res.write(JSON.stringify({ type, object }) + '\n');
  }

  private goneStatus(from: number): any {
    return {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: `too old resource version: ${from} (${this.compactedRv})`,
      reason: 'Expired',
      code: 410,
    };
  }

  private status(res: http.ServerResponse, code: number, reason: string, message: string): void {
    res.writeHead(code, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code }));
  }

  private key(obj: any): string {
    return `${obj?.metadata?.namespace ?? ''}/${obj?.metadata?.name}`;
  }
}

/** Polls until cond() holds; never asserts on wall time beyond the generous timeout. */
export async function waitFor(cond: () => boolean, what = 'condition', timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
