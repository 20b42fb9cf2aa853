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
