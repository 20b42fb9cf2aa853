// --manifests DIR: Services, EndpointSlices, the Node and ServiceCIDRs read from YAML/JSON
// files instead of the API server, kept live with fs.watch. The handler sees the same event
// stream an informer would give, filtered like kube-proxy's list/watch selectors. Events the
// agent records are logged. Files are read defensively (./manifest-files.ts): each one skipped
// is reported once, as kproxy_invalid_objects_total{kind="File"}, until it changes or goes.

import { watch, type FSWatcher } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { yaml } from '../yaml.js';
import { decodeName, MAX_FILE_BYTES, MAX_FILES, MAX_TOTAL_BYTES, printableName, readManifestFile, type ReadResult } from './manifest-files.js';
import { fingerprint } from '../fingerprint.js';
import { matchesLabelSelector, selectedService } from '../model/service-filter.js';
import type { EventType, Kind, KubeObject, ProxyEvent, Source, SourceHandler } from './types.js';

export interface ManifestsSourceOptions {
  dir: string;
  /** Only the Node of this name is delivered (as the field selector metadata.name=<node>). */
  nodeName?: string;
  /** Quiet time after the last fs event before rescanning; default 5ms. */
  debounceMs?: number;
  /** Upper bound on the wait while events keep coming; default 100ms. */
  maxWaitMs?: number;
  /** Caps (defaults in ./manifest-files.ts): per file, all files together, and the number of files. */
  maxFileBytes?: number;
  maxTotalBytes?: number;
  maxFiles?: number;
  /** Tests: runs between a file's stat and its read, as a busy writer might. */
  beforeRead?: (name: string) => Promise<void> | void;
  logger?: { debug(o: object, msg?: string): void; info?(o: object, msg?: string): void; warn(o: object, msg?: string): void };
}

const API_VERSIONS: Record<Kind, string> = { Service: 'v1', EndpointSlice: 'discovery.k8s.io/v1', Node: 'v1', ServiceCIDR: 'networking.k8s.io/v1' };
const KIND_ORDER: Record<Kind, number> = { Service: 0, EndpointSlice: 1, Node: 2, ServiceCIDR: 3 };
const CLUSTER_SCOPED: ReadonlySet<Kind> = new Set<Kind>(['Node', 'ServiceCIDR']);
const EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

interface Entry {
  kind: Kind;
  obj: KubeObject;
  /** Canonical JSON, to tell a real change from a rewrite of the same content. */
  json: string;
}

interface FileState {
  objects: Map<string, Entry>;
  /** Bytes read, counted against maxTotalBytes. */
  size: number;
}

/** A torn read is retried this many times in a row before it is reported (and retried on the next event). */
const TORN_RETRIES = 3;
const READ_AHEAD = 16;
/** A read that failed for a passing reason (out of fds, EIO) is tried again after this, doubling to RETRY_MAX_MS. */
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 30_000;
const OUT_OF_FDS: ReadonlySet<string> = new Set(['EMFILE', 'ENFILE']);

function isManifestFile(name: string): boolean {
  // Dot files are editor swap files, atomic-write temporaries, or ConfigMap's ..data links.
  return !name.startsWith('.') && EXTENSIONS.has(extname(name).toLowerCase());
}

/** JSON with sorted keys, so that key order in a file is not a change. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    const keys = Object.keys(v as object).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical((v as any)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

export class ManifestsSource implements Source {
  private readonly dir: string;
  private readonly nodeName?: string;
  private readonly debounceMs: number;
  private readonly maxWaitMs: number;
  private readonly log?: ManifestsSourceOptions['logger'];
  private handler?: SourceHandler;
  private watcher?: FSWatcher;
  private readonly files = new Map<string, FileState>();
  /** What the handler has been told: key -> entry. */
  private readonly emitted = new Map<string, Entry>();
  private readonly changed = new Set<string>();
  private fullRescan = false;
  private readonly emptyOnce = new Set<string>();
  private readonly maxFileBytes: number;
  private readonly maxTotalBytes: number;
  private readonly maxFiles: number;
  private readonly beforeRead?: (name: string) => Promise<void> | void;
  private totalBytes = 0;
  /** Manifest names believed present (at most maxFiles); a new one past the cap forces a full scan. */
  private readonly known = new Set<string>();
  private overCap = false;
  /** Per file (or '' for the directory), what was reported last time: reported again only when new. */
  private readonly reported = new Map<string, Set<string>>();
  private reporting?: { file: string; seen: Set<string> };
  private readonly torn = new Map<string, number>();
  private timer?: NodeJS.Timeout;
  private firstEventAt = 0;
  private running: Promise<void> = Promise.resolve();
  private stopped = false;
  /** Names (null: the directory) to read again once RETRY_MS has passed; the old objects stay meanwhile. */
  private readonly retryNames = new Set<string | null>();
  private retryTimer?: NodeJS.Timeout;
  private retryMs = RETRY_MIN_MS;
  private failedThisScan = false;

  constructor(opts: ManifestsSourceOptions) {
    this.dir = opts.dir;
    this.nodeName = opts.nodeName || undefined;
    this.debounceMs = opts.debounceMs ?? 5;
    this.maxWaitMs = opts.maxWaitMs ?? 100;
    this.log = opts.logger;
    this.maxFileBytes = opts.maxFileBytes ?? MAX_FILE_BYTES;
    this.maxTotalBytes = opts.maxTotalBytes ?? MAX_TOTAL_BYTES;
    this.maxFiles = opts.maxFiles ?? MAX_FILES;
    this.beforeRead = opts.beforeRead;
  }

  async start(handler: SourceHandler): Promise<void> {
    this.handler = handler;
    this.stopped = false;
    const st = await stat(this.dir);
    if (!st.isDirectory()) throw new Error(`manifests: ${this.dir} is not a directory`);
    // Watch before the first scan, so that nothing written meanwhile is missed.
    // Buffer names: a non-UTF-8 name must not be mangled into some other, valid one.
    this.watcher = watch(this.dir, { persistent: false, encoding: 'buffer' }, (_event, filename) =>
      this.onFsEvent(filename ? decodeName(filename) ?? null : null),
    );
    this.watcher.on('error', (err) => {
      this.log?.warn({ err, dir: this.dir }, 'manifests: directory watch failed');
    });
    this.fullRescan = true;
    await this.flush();
    handler.onSynced();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    this.watcher = undefined;
    if (this.timer) clearTimeout(this.timer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.timer = this.retryTimer = undefined;
    await this.running;
  }

  private onFsEvent(filename: string | null): void {
    if (this.stopped) return;
    // Unknown names (ConfigMap ..data swaps, subdirectories) or none at all: rescan everything.
    if (filename === null || !isManifestFile(basename(filename)) || this.overCap) this.fullRescan = true;
    else if (!this.known.has(basename(filename)) && this.known.size >= this.maxFiles) this.fullRescan = true;
    else this.changed.add(basename(filename));
    const now = Date.now();
    if (!this.timer) this.firstEventAt = now;
    else clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(this.debounceMs, this.firstEventAt + this.maxWaitMs - now));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, wait);
  }

  /** Serialised: a rescan never overlaps another one. */
  private flush(): Promise<void> {
    this.running = this.running
      .then(() => {
        this.failedThisScan = false;
        return this.rescan();
      })
      .catch((err) => {
        const code = String((err as NodeJS.ErrnoException)?.code);
        if (OUT_OF_FDS.has(code)) this.outOfFds(`${this.dir}: ${code}`);
        else this.log?.warn({ err }, 'manifests: rescan failed; retrying');
        this.retryLater(null);
      })
      .then(() => {
        if (!this.failedThisScan) this.retryMs = RETRY_MIN_MS;
      });
    return this.running;
  }

  /** Reads `name` (null: the whole directory) again later; nothing read before is dropped meanwhile. */
  private retryLater(name: string | null): void {
    this.failedThisScan = true;
    this.retryNames.add(name);
    if (this.retryTimer || this.stopped) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      const names = [...this.retryNames];
      this.retryNames.clear();
      for (const n of names) this.onFsEvent(n);
    }, this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
  }

  /** Out of file descriptors: not the file's fault, so not an invalid object. Said once per scan. */
  private outOfFds(ref: string): void {
    if (this.failedThisScan) return;
    this.log?.warn({ ref, retryMs: this.retryMs }, 'manifests: out of file descriptors (EMFILE/ENFILE); keeping the objects already read and retrying');
    try {
      this.handler?.onResourceExhausted?.('file_descriptors', 'manifests', ref);
    } catch (err) {
      this.log?.warn({ err, ref }, 'manifests: resource handler threw');
    }
  }

  private async rescan(): Promise<void> {
    if (this.stopped) return;
    let names: string[];
    if (this.fullRescan) {
      this.fullRescan = false;
      this.changed.clear();
      const present = await this.listDir();
      names = [...new Set([...present, ...this.files.keys()])];
    } else {
      names = [...this.changed];
      this.changed.clear();
    }
    if (names.length === 0) return;
    // Reads run READ_AHEAD at a time (10k files are I/O bound); results are applied in order,
    // so the total-bytes cap is deterministic, and at most READ_AHEAD texts wait in memory.
    const reads: Promise<ReadResult>[] = [];
    let next = 0;
    for (const name of names) {
      while (reads.length < READ_AHEAD && next < names.length) reads.push(this.read(names[next++]));
      this.loadFile(name, await reads.shift()!);
    }
    if (!this.stopped) this.publish();
  }

  /** The manifest names to read, in name order: non-UTF-8 ones reported, past maxFiles dropped. */
  private async listDir(): Promise<string[]> {
    const raw = (await readdir(this.dir, { encoding: 'buffer' })).sort(Buffer.compare);
    const names: string[] = [];
    let count = 0;
    this.beginReports('');
    for (const buf of raw) {
      const name = decodeName(buf);
      if (!isManifestFile(name ?? buf.toString('utf8'))) continue;
      if (++count > this.maxFiles) continue;
      if (name === undefined) this.report('File', 'bad-file-name', `${printableName(buf)}: name is not valid UTF-8`);
      else names.push(name);
    }
    this.overCap = count > this.maxFiles;
    if (this.overCap) {
      this.report('Directory', 'too-many-files', `${this.dir}: more than ${this.maxFiles} manifest files; those past the first ${this.maxFiles} in name order are skipped`);
      this.log?.warn({ dir: this.dir, files: count, cap: this.maxFiles }, 'manifests: too many files');
    }
    this.endReports();
    this.known.clear();
    for (const n of names) this.known.add(n);
    // Names dropped by the cap lose their objects, as if deleted.
    for (const n of this.files.keys()) if (!this.known.has(n)) this.dropFile(n, true);
    return names;
  }

  private setFile(name: string, state: FileState): void {
    this.totalBytes += state.size - (this.files.get(name)?.size ?? 0);
    this.files.set(name, state);
  }

  /** `gone`: the name left the directory (or the cap), so whatever was reported about it is forgotten. */
  private dropFile(name: string, gone: boolean): void {
    this.totalBytes -= this.files.get(name)?.size ?? 0;
    this.files.delete(name);
    if (gone) {
      this.emptyOnce.delete(name);
      this.reported.delete(name);
      this.torn.delete(name);
      this.known.delete(name);
    }
  }

  private beginReports(file: string): void {
    this.reporting = { file, seen: new Set() };
  }

  /** Ends a file's reports; `keep` merges in the previous ones (the file kept its old content). */
  private endReports(keep = false): void {
    const r = this.reporting;
    this.reporting = undefined;
    if (!r) return;
    if (keep) for (const k of this.reported.get(r.file) ?? []) r.seen.add(k);
    if (r.seen.size > 0) this.reported.set(r.file, r.seen);
    else this.reported.delete(r.file);
  }

  /** Reports once: a problem seen on the previous read of the same file is not reported again. */
  private report(kind: string, reason: string, ref: string): void {
    const r = this.reporting;
    if (!r) return this.invalid(kind, reason, ref);
    const key = `${kind}\0${reason}\0${ref}`;
    r.seen.add(key);
    if (!this.reported.get(r.file)?.has(key)) this.invalid(kind, reason, ref);
  }

  private read(name: string): Promise<ReadResult> {
    return readManifestFile(join(this.dir, name), this.maxFileBytes, this.beforeRead && (() => this.beforeRead!(name)));
  }

  private loadFile(name: string, r: ReadResult): void {
    this.beginReports(name);
    let keep = false;
    try {
      keep = this.apply(name, r);
    } finally {
      this.endReports(keep);
    }
  }

  /** Returns true when the file keeps its previous objects (and so its previous reports). */
  private apply(name: string, r: ReadResult): boolean {
    if (r.kind === 'gone') {
      this.dropFile(name, true);
      return false;
    }
    this.known.add(name);
    if (r.kind === 'torn') {
      // A writer is busy: parsing now could act on half a file. Keep what the file defined
      // before and look again after a debounce (its writes also bring fs events).
      const n = (this.torn.get(name) ?? 0) + 1;
      this.torn.set(name, n);
      if (n <= TORN_RETRIES) this.onFsEvent(name);
      else this.report('File', 'changing-while-read', `${name}: changed while it was read, more than ${TORN_RETRIES} times in a row`);
      return true;
    }
    this.torn.delete(name);
    if (r.kind === 'skip') {
      // A read error may be passing (EMFILE, EIO, EACCES during a chmod): keep the old objects, look again later.
      if (r.reason === 'read-error') {
        if (OUT_OF_FDS.has(r.detail)) this.outOfFds(`${name}: ${r.detail}`);
        else this.report('File', r.reason, `${name}: ${r.detail}`);
        this.retryLater(name);
        return true;
      }
      this.report('File', r.reason, `${name}: ${r.detail}`);
      this.dropFile(name, false);
      return false;
    }
    const others = this.totalBytes - (this.files.get(name)?.size ?? 0);
    if (others + r.size > this.maxTotalBytes) {
      this.report('File', 'total-size-cap', `${name}: ${r.size} bytes would pass the ${this.maxTotalBytes}-byte cap on all files`);
      this.dropFile(name, false);
      return false;
    }
    const text = r.text;
    const prev = this.files.get(name);
    // Rewriting a file truncates it first: an empty read of a file that had objects is
    // believed only when a second look, one debounce later, still finds it empty.
    if (text.trim() === '' && prev && prev.objects.size > 0 && !this.emptyOnce.has(name)) {
      this.emptyOnce.add(name);
      this.onFsEvent(name);
      return true;
    }
    this.emptyOnce.delete(name);
    const { docs, syntaxError } = this.parse(name, text);
    const objects = new Map<string, Entry>();
    for (const [i, doc] of docs.entries()) this.accept(doc, `${name}#${i}`, objects);
    // A file that does not parse may be half-written: keep what it defined before,
    // rather than deleting rules because of a syntax error.
    if (syntaxError && prev) {
      for (const [key, e] of prev.objects) if (!objects.has(key)) objects.set(key, e);
    }
    this.setFile(name, { objects, size: r.size });
    return syntaxError;
  }

  private parse(name: string, text: string): { docs: unknown[]; syntaxError: boolean } {
    if (extname(name).toLowerCase() === '.json') {
      try {
        const v = JSON.parse(text);
        return { docs: [v], syntaxError: false };
      } catch {
        this.report('File', 'parse-error', name);
        return { docs: [], syntaxError: true };
      }
    }
    const docs: unknown[] = [];
    let syntaxError = false;
    for (const [i, doc] of yaml().parseAllDocuments(text).entries()) {
      if (doc.errors.length > 0) {
        syntaxError = true;
        this.report('Document', 'parse-error', `${name}#${i}`);
        docs.push(undefined);
        continue;
      }
      try {
        docs.push(doc.toJS({ maxAliasCount: 100 }));
      } catch {
        // toJS throws on alias bombs and similar; same treatment as a syntax error.
        syntaxError = true;
        this.report('Document', 'parse-error', `${name}#${i}`);
        docs.push(undefined);
      }
    }
    return { docs, syntaxError };
  }

  /** Flattens Lists, applies defaults and the API's selectors, and keys the objects. */
  private accept(doc: unknown, ref: string, out: Map<string, Entry>, listKind?: string, listApiVersion?: string): void {
    if (doc === null || doc === undefined) return; // empty document, or already reported
    if (Array.isArray(doc)) {
      doc.forEach((d, i) => this.accept(d, `${ref}[${i}]`, out));
      return;
    }
    if (typeof doc !== 'object') return this.report('Document', 'not-an-object', ref);
    const obj = { ...(doc as KubeObject) };
    if (obj.kind === undefined && listKind) obj.kind = listKind;
    if (obj.apiVersion === undefined && listApiVersion) obj.apiVersion = listApiVersion;
    if (typeof obj.kind !== 'string') return this.report('Document', 'missing-field', `${ref}.kind`);
    if (obj.kind.endsWith('List') && Array.isArray(obj.items)) {
      const itemKind = obj.kind === 'List' ? undefined : obj.kind.slice(0, -'List'.length);
      obj.items.forEach((d: unknown, i: number) => this.accept(d, `${ref}.items[${i}]`, out, itemKind, itemKind ? obj.apiVersion : undefined));
      return;
    }
    if (!(obj.kind in API_VERSIONS)) {
      this.log?.debug({ ref, kind: obj.kind }, 'manifests: ignoring object of another kind');
      return;
    }
    const kind = obj.kind as Kind;
    if (obj.apiVersion !== API_VERSIONS[kind]) return this.report(kind, 'unsupported-api-version', ref);
    if (typeof obj.metadata !== 'object' || obj.metadata === null || typeof obj.metadata.name !== 'string' || obj.metadata.name === '') {
      return this.report(kind, 'missing-field', `${ref}.metadata.name`);
    }
    // kubectl's defaulting: namespaced kinds without a namespace land in "default".
    if (!CLUSTER_SCOPED.has(kind) && obj.metadata.namespace === undefined) obj.metadata = { ...obj.metadata, namespace: 'default' };
    if (!this.selected(kind, obj)) return;
    const key = `${kind}/${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
    if (out.has(key)) return this.report(kind, 'duplicate-object', ref);
    out.set(key, { kind, obj, json: fingerprint(canonical(obj)) });
  }

  /** The label and field selectors kube-proxy's informers use. */
  private selected(kind: Kind, obj: KubeObject): boolean {
    if (kind === 'Node') return this.nodeName === undefined || obj.metadata.name === this.nodeName;
    if (kind === 'ServiceCIDR') return true;
    return kind === 'Service' ? selectedService(obj) : matchesLabelSelector(obj);
  }

  /** Merges all files (first file in name order wins a duplicate) and emits the difference. */
  private publish(): void {
    const desired = new Map<string, Entry>();
    for (const name of [...this.files.keys()].sort()) {
      for (const [key, e] of this.files.get(name)!.objects) if (!desired.has(key)) desired.set(key, e);
    }
    const events: Array<{ type: EventType; key: string; e: Entry; old?: Entry }> = [];
    for (const [key, e] of desired) {
      const old = this.emitted.get(key);
      if (!old) events.push({ type: 'ADDED', key, e });
      else if (old.json !== e.json) events.push({ type: 'MODIFIED', key, e, old });
    }
    for (const [key, old] of this.emitted) if (!desired.has(key)) events.push({ type: 'DELETED', key, e: old, old });
    events.sort((a, b) => KIND_ORDER[a.e.kind] - KIND_ORDER[b.e.kind] || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    for (const ev of events) {
      if (ev.type === 'DELETED') this.emitted.delete(ev.key);
      else this.emitted.set(ev.key, ev.e);
      try {
        this.handler?.onEvent(ev.e.kind, ev.type, ev.e.obj, ev.old?.obj);
      } catch (err) {
        this.log?.warn({ err, key: ev.key }, 'manifests: event handler threw');
      }
    }
  }

  /** No API server to post to: the Event goes to the log. */
  async recordEvent(event: ProxyEvent): Promise<void> {
    const fields = { event: { type: event.type, reason: event.reason, action: event.action, regarding: event.regarding, note: event.note } };
    (event.type === 'Warning' ? this.log?.warn : this.log?.info ?? this.log?.debug)?.call(this.log, fields, 'Event');
  }

  private invalid(kind: string, reason: string, ref: string): void {
    try {
      this.handler?.onInvalid(kind, reason, ref);
    } catch (err) {
      this.log?.warn({ err, ref }, 'manifests: invalid handler threw');
    }
  }
}
