// Time as an injected dependency: the runner and health code read the clock and arm timers
// only through this interface, so tests drive them with FakeClock and never sleep.

/** Opaque: whatever the clock returned from setTimeout. */
export type TimerHandle = object;

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, Math.max(0, ms)),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

interface FakeTimer {
  at: number;
  seq: number;
  fn: () => void;
}

/**
 * A manual clock. advance(ms) fires due timers in time order (ties in creation order) and lets
 * promise callbacks settle after each one, so async work started by a timer completes before
 * the next timer fires.
 */
export class FakeClock implements Clock {
  private nowMs: number;
  private seq = 0;
  private readonly timers = new Map<object, FakeTimer>();

  constructor(startMs = Date.UTC(2024, 0, 1)) {
    this.nowMs = startMs;
  }

  now(): number {
    return this.nowMs;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const handle = {};
    this.timers.set(handle, { at: this.nowMs + Math.max(0, ms), seq: this.seq++, fn });
    return handle;
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers.delete(handle);
  }

  /** Number of armed timers. */
  pendingTimers(): number {
    return this.timers.size;
  }

  /** When the next timer fires, or undefined when none is armed. */
  nextTimerAt(): number | undefined {
    return this.nextDue(Infinity)?.[1].at;
  }

  /** Moves time forward by `ms`, firing every timer due on the way. */
  async advance(ms: number): Promise<void> {
    const target = this.nowMs + ms;
    await settle();
    for (let due = this.nextDue(target); due; due = this.nextDue(target)) {
      const [handle, timer] = due;
      this.timers.delete(handle);
      this.nowMs = timer.at;
      timer.fn();
      await settle();
    }
    this.nowMs = target;
  }

  private nextDue(limit: number): [object, FakeTimer] | undefined {
    let best: [object, FakeTimer] | undefined;
    for (const entry of this.timers) {
      const t = entry[1];
      if (t.at > limit) continue;
      if (!best || t.at < best[1].at || (t.at === best[1].at && t.seq < best[1].seq)) best = entry;
    }
    return best;
  }
}

/** Lets every queued promise callback run (a macrotask turn drains the microtask queue). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
