// The agent's memory of what happened, for the status document: the last syncs, errors and
// invalid objects in fixed-size buffers, and per family what the proxier holds (references
// to the ServicePorts the tracker already keeps, so that costs a map entry per port).
import type { IPFamily, ServicePort } from '../model/types.js';
import { serviceRows, type FamilyProgram } from './rows.js';
import { STATUS_VERSION, type ErrorRecord, type InvalidRecord, type StatusDoc, type SyncRecord } from './types.js';

/** A fixed-capacity buffer that drops its oldest item. */
export class Ring<T> {
  private readonly items: T[] = [];
  private start = 0;
  constructor(readonly capacity: number) {
    if (!(capacity >= 1)) throw new RangeError(`ring capacity must be at least 1, got ${capacity}`);
  }
  push(item: T): void {
    if (this.items.length < this.capacity) this.items.push(item);
    else {
      this.items[this.start] = item;
      this.start = (this.start + 1) % this.capacity;
    }
  }
  get size(): number {
    return this.items.length;
  }
  /** Oldest first. */
  toArray(): T[] {
    return [...this.items.slice(this.start), ...this.items.slice(0, this.start)];
  }
  last(): T | undefined {
    return this.items.length ? this.items[(this.start + this.items.length - 1) % this.items.length] : undefined;
  }
}

export interface RecorderOptions {
  /** Sync records kept (each family's sync is one); default 360, an hour of 10 s syncs for two families. */
  syncs?: number;
  errors?: number;
  /** Distinct invalid objects (kind, reason, ref) kept; the per-reason counts are never dropped. */
  invalid?: number;
}

export interface SyncInput {
  family: IPFamily;
  /** The request was a full sync: `upserts` is then everything the proxier holds. */
  full: boolean;
  /** The proxier made it a full one by itself (a partial request can be), as its report says. */
  ranFull?: boolean;
  started: number;
  done: number;
  /** The proxier's time, finer than done - started (a partial sync takes a fraction of a ms). */
  durationMs?: number;
  upserts: readonly ServicePort[];
  deletes: readonly string[];
  /** Refused ServicePorts and why (successful syncs). */
  refused?: readonly { key: string; reason: string }[];
  error?: string;
  eventAt?: number;
  triggerAt?: number;
}

/** What the document needs from the agent at request time. */
export interface StatusContext {
  now: number;
  mode: string;
  node: string;
  families: IPFamily[];
  /** Services and EndpointSlices have been listed (syncs may start). */
  listed: boolean;
  pending: { services: number; endpoints: number };
  /** Each family's desired ServicePorts (the tracker's current state). */
  desired: ReadonlyMap<IPFamily, readonly ServicePort[]>;
}

interface Program {
  synced: Map<string, { sp: ServicePort; at: number }>;
  refused: Map<string, string>;
  failed?: string;
}

const MAX_MESSAGE = 500;
// A copy, not a slice: V8's slices keep the whole source string (a 1 MiB name) alive.
const clip = (s: string) => (s.length > MAX_MESSAGE ? `${Buffer.from(s.slice(0, MAX_MESSAGE)).toString()}…` : s);

export class StatusRecorder {
  readonly startedAt: number;
  private readonly syncs: Ring<SyncRecord>;
  private readonly errors: Ring<ErrorRecord>;
  private errorsTotal = 0;
  private readonly invalidCap: number;
  /** Insertion order is recency: an update moves an entry to the end; the first goes first. */
  private readonly invalidRecent = new Map<string, InvalidRecord>();
  private readonly invalidByReason = new Map<string, { kind: string; reason: string; count: number }>();
  private invalidTotal = 0;
  private readonly programs = new Map<IPFamily, Program>();
  private readonly last = new Map<IPFamily, { attempt?: SyncRecord; success?: SyncRecord }>();
  private firstEventAt: number | undefined;

  constructor(now: number, opts: RecorderOptions = {}) {
    this.startedAt = now;
    this.syncs = new Ring(opts.syncs ?? 360);
    this.errors = new Ring(opts.errors ?? 100);
    this.invalidCap = opts.invalid ?? 200;
  }

  /** An event that will be programmed by the next sync arrived at `now`. */
  eventQueued(now: number): void {
    if (this.firstEventAt === undefined || now < this.firstEventAt) this.firstEventAt = now;
  }

  /**
   * At a sync's drain: the first event it carries (then forgotten, so the next sync starts
   * afresh). A failed sync gives it back with eventQueued: its retry carries the same events.
   */
  takeEventTime(): number | undefined {
    const t = this.firstEventAt;
    this.firstEventAt = undefined;
    return t;
  }

  sync(input: SyncInput): SyncRecord {
    const ok = input.error === undefined;
    const rec: SyncRecord = {
      at: input.done,
      family: input.family,
      full: input.full || input.ranFull === true,
      durationMs: Math.max(0, input.durationMs ?? input.done - input.started),
      ok,
      upserts: input.upserts.length,
      deletes: input.full ? 0 : input.deletes.length,
      refused: input.refused?.length ?? 0,
    };
    if (!ok) rec.error = clip(input.error!);
    // A latency is that of rules this sync changed: a family the events did not touch has none.
    const changed = input.full || input.upserts.length + input.deletes.length > 0;
    if (ok && changed && input.eventAt !== undefined && input.done >= input.eventAt) rec.eventLatencyMs = input.done - input.eventAt;
    if (ok && changed && input.triggerAt !== undefined && input.done > input.triggerAt) rec.triggerLatencyMs = input.done - input.triggerAt;
    this.syncs.push(rec);
    const last = this.last.get(input.family) ?? {};
    this.last.set(input.family, { attempt: rec, success: ok ? rec : last.success });
    if (ok) this.applied(input);
    else {
      this.program(input.family).failed = rec.error;
      this.error(input.done, `sync ${input.family}`, input.error!);
    }
    return rec;
  }

  private program(family: IPFamily): Program {
    let p = this.programs.get(family);
    if (!p) this.programs.set(family, (p = { synced: new Map(), refused: new Map() }));
    return p;
  }

  /** A committed sync: a full one replaces what the proxier holds, a partial one edits it. */
  private applied(input: SyncInput): void {
    const p = this.program(input.family);
    p.failed = undefined;
    if (input.full) {
      p.synced.clear();
      p.refused.clear();
    } else {
      for (const key of input.deletes) {
        p.synced.delete(key);
        p.refused.delete(key);
      }
    }
    for (const sp of input.upserts) {
      p.synced.set(sp.key, { sp, at: input.done });
      p.refused.delete(sp.key);
    }
    for (const r of input.refused ?? []) p.refused.set(r.key, clip(r.reason));
  }

  error(now: number, source: string, message: string): void {
    this.errorsTotal++;
    this.errors.push({ at: now, source, message: clip(message) });
  }

  invalid(now: number, kind: string, reason: string, ref: string): void {
    this.invalidTotal++;
    const rk = `${kind}\u0000${reason}`;
    const r = this.invalidByReason.get(rk);
    if (r) r.count++;
    else this.invalidByReason.set(rk, { kind, reason, count: 1 });
    // Keyed by the clipped ref too: the map must not hold on to an object's huge name.
    const shown = clip(ref);
    const key = `${rk}\u0000${shown}`;
    const prev = this.invalidRecent.get(key);
    this.invalidRecent.delete(key);
    this.invalidRecent.set(key, { kind, reason, ref: shown, count: (prev?.count ?? 0) + 1, firstAt: prev?.firstAt ?? now, lastAt: now });
    if (this.invalidRecent.size > this.invalidCap) this.invalidRecent.delete(this.invalidRecent.keys().next().value!);
  }

  /** The whole document, built at request time (the Services table from the tracker's state). */
  document(ctx: StatusContext): StatusDoc {
    const lastSync: StatusDoc['lastSync'] = {};
    for (const [f, l] of this.last) lastSync[f] = { ...l };
    const programs = new Map<IPFamily, FamilyProgram>(this.programs);
    return {
      kind: 'KproxyStatus',
      version: STATUS_VERSION,
      generatedAt: ctx.now,
      mode: ctx.mode,
      node: ctx.node,
      families: [...ctx.families],
      startedAt: this.startedAt,
      initialSyncDone: ctx.listed && this.last.size > 0,
      lastSync,
      pending: { ...ctx.pending },
      syncs: this.syncs.toArray(),
      errors: { total: this.errorsTotal, recent: this.errors.toArray() },
      invalid: {
        total: this.invalidTotal,
        byReason: [...this.invalidByReason.values()].map((r) => ({ ...r })).sort((a, b) => b.count - a.count || (a.kind + a.reason < b.kind + b.reason ? -1 : 1)),
        recent: [...this.invalidRecent.values()].map((r) => ({ ...r })),
      },
      services: serviceRows(ctx.desired, programs),
    };
  }
}
