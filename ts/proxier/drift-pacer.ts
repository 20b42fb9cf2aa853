import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import { fromAddonError } from '../addon/errors.js';
import type { IPFamily } from '../model/types.js';

/** How often IPVS and userspace mode run their addon drift check (one dump each). */
export const ADDON_DRIFT_POLL_MS = 1_000;

// When to repair rules that someone else changed: at once the first time, but never in a
// loop. Against another agent that keeps undoing kproxy's rules (a fight), each repair waits
// twice as long after the previous one, up to the sync period; a quiet spell starts over.
export interface DriftPacing {
  /** The wait after a first repair (a second change within it is repaired when it ends). */
  minGapMs: number;
  /** The longest wait: the sync period, which repairs everything anyway. */
  maxGapMs: number;
  /** Without a repair for this long, the wait starts again from minGapMs. */
  quietMs: number;
}

export class DriftPacer {
  private gap: number;
  private last = Number.NEGATIVE_INFINITY;

  constructor(private readonly pacing: DriftPacing) {
    this.gap = pacing.minGapMs;
  }

  /** How long a repair asked for at `now` must wait (0: repair now). */
  delay(now: number): number {
    if (now - this.last >= this.pacing.quietMs) return 0;
    return Math.max(0, this.last + this.gap - now);
  }

  /** A repair ran at `now`. */
  repaired(now: number): void {
    const fighting = now - this.last < this.pacing.quietMs;
    this.gap = fighting ? Math.min(this.gap * 2, this.pacing.maxGapMs) : this.pacing.minGapMs;
    this.last = now;
  }
}

export interface DriftPoll {
  /** How often to look. */
  pollMs: number;
  /** The sync period: the longest a paced repair waits. */
  syncPeriodMs: number;
  /** Each poll, first: bookkeeping that runs even while a repair waits. */
  tick?: () => void;
  /** What another process changed, or nothing; a throw counts as nothing (the sync period repairs). */
  check: () => Promise<string | undefined> | string | undefined;
  /** Starts the repair of `why`. */
  repair: (why: string) => void;
  /** A repair of `why` waits `waitMs`: count it and say so. */
  delayed: (why: string, waitMs: number) => void;
  pacing?: Partial<DriftPacing>;
}

/**
 * A mode's drift monitor: `check` every pollMs, one at a time; a change it names is repaired at
 * once, or paced by a DriftPacer while it keeps coming back. Returns the function that stops it.
 */
export function pollDrift(p: DriftPoll): () => void {
  const pacer = new DriftPacer({ minGapMs: 1000, maxGapMs: Math.max(1000, p.syncPeriodMs), quietMs: 60_000, ...p.pacing });
  let waiting: ReturnType<typeof setTimeout> | undefined;
  let checking = false;
  const repair = (why: string) => {
    waiting = undefined;
    pacer.repaired(performance.now());
    p.repair(why);
  };
  const look = async () => {
    const why = await p.check();
    if (!why) return;
    const waitMs = pacer.delay(performance.now());
    if (waitMs === 0) return repair(why);
    p.delayed(why, waitMs);
    waiting = setTimeout(() => repair(why), waitMs);
    waiting.unref();
  };
  const poll = setInterval(() => {
    p.tick?.();
    if (checking || waiting) return;
    checking = true;
    void look().catch(() => {}).finally(() => (checking = false));
  }, p.pollMs);
  poll.unref();
  return () => {
    clearInterval(poll);
    if (waiting) clearTimeout(waiting);
  };
}

/** An addon drift check (IPVS, userspace): a Promise of what changed, '' for nothing. */
export interface AddonDrift {
  family: IPFamily;
  logger: Logger;
  syncPeriodMs: number;
  /** Looks once, in turn with the syncs (the mode's Serial). */
  check: () => Promise<string>;
  repairs: Counter<'ip_family'>;
  delayed: Counter<'ip_family'>;
  /** Starts the repair sync: the addon has made the family's next sync full already. */
  lost: (why: string, full?: boolean) => void;
  /** What is checked, plural, for the log lines: "kproxy's virtual servers". */
  what: string;
}

/** Each ADDON_DRIFT_POLL_MS, the addon's check; what it names is repaired, paced and counted. */
export function pollAddonDrift(d: AddonDrift): () => void {
  const ipFamily = d.family;
  return pollDrift({
    pollMs: ADDON_DRIFT_POLL_MS,
    syncPeriodMs: d.syncPeriodMs,
    // The addon answers '' before the first sync and once a repair's full sync is due.
    check: async () => {
      try {
        return await d.check();
      } catch (e) {
        d.logger.debug({ ipFamily, err: fromAddonError(e).message }, `Could not check ${d.what}; the periodic sync will`);
        return undefined;
      }
    },
    repair: (why) => {
      d.repairs.inc({ ip_family: ipFamily });
      d.lost(why, false);
    },
    delayed: (why, waitMs) => {
      d.delayed.inc({ ip_family: ipFamily });
      d.logger.warn({ ipFamily, why, waitMs: Math.round(waitMs) }, `${d.what} keep being changed by another process; pacing the repairs`);
    },
  });
}
