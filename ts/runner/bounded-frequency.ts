// Runs one async function (a proxy-rules sync) with upstream BoundedFrequencyRunner semantics:
//  - run() requests a run; requests made close together (or during a run) coalesce into one;
//  - runs are at least minInterval apart, except for `burst` quick runs (a token bucket that
//    refills one token per minInterval);
//  - with no requests, a periodic run happens maxInterval after the last one;
//  - when fn rejects, or retryAfter() is called, another run comes after retryInterval (with
//    firstRetryMs, failures in a row retry sooner: firstRetry, doubling up to retryInterval);
//  - fn never runs twice at once.
// Every request goes through the clock's timer, so a test's FakeClock controls when fn runs.

import { realClock, type Clock, type TimerHandle } from './clock.js';

export interface BoundedFrequencyRunnerOptions {
  name: string;
  minIntervalMs: number;
  maxIntervalMs: number;
  retryIntervalMs: number;
  /** kproxy: the first retry after a failure comes this soon, each next one twice as late, up to retryIntervalMs. */
  firstRetryMs?: number;
  /** Runs allowed back to back before minInterval applies (upstream uses 2). */
  burst?: number;
  clock?: Clock;
  fn: () => Promise<void>;
  /** Told about each failed run (the runner already schedules the retry). */
  onError?: (err: unknown) => void;
}

export class BoundedFrequencyRunner {
  readonly name: string;
  private readonly minIntervalMs: number;
  private readonly maxIntervalMs: number;
  private readonly retryIntervalMs: number;
  private readonly firstRetryMs: number;
  /** Runs that failed in a row. */
  private failures = 0;
  private readonly burst: number;
  private readonly clock: Clock;
  private readonly fn: () => Promise<void>;
  private readonly onError?: (err: unknown) => void;

  private started = false;
  private stopped = false;
  /** A run was requested and has not started yet. */
  private requested = false;
  private inFlight: Promise<void> | undefined;
  /** The single armed timer and when it fires; a new deadline only ever moves it earlier. */
  private timer: TimerHandle | undefined;
  private timerAt = Infinity;
  /** A retry asked for while fn was running, applied when it finishes. */
  private retryAt = Infinity;
  /** Token bucket, counted in ms of credit: one run costs minInterval. */
  private creditMs: number;
  private creditAt: number;

  constructor(options: BoundedFrequencyRunnerOptions) {
    this.name = options.name;
    this.minIntervalMs = Math.max(0, options.minIntervalMs);
    this.maxIntervalMs = options.maxIntervalMs;
    this.retryIntervalMs = options.retryIntervalMs;
    this.firstRetryMs = Math.min(options.firstRetryMs ?? options.retryIntervalMs, options.retryIntervalMs);
    this.burst = Math.max(1, options.burst ?? 2);
    this.clock = options.clock ?? realClock;
    this.fn = options.fn;
    this.onError = options.onError;
    this.creditMs = this.burst * this.minIntervalMs;
    this.creditAt = this.clock.now();
  }

  /** Starts the loop: the periodic run is due maxInterval from now; an earlier run() is honoured. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.armAt(this.clock.now() + this.maxIntervalMs);
    if (this.requested) this.armAt(this.clock.now());
  }

  /** Stops scheduling; resolves once an in-flight run has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.disarm();
    await this.inFlight;
  }

  /** Requests a run as soon as the rate limit allows. Never runs fn synchronously. */
  run(): void {
    if (this.stopped) return;
    this.requested = true;
    if (this.started && !this.inFlight) this.armAt(this.clock.now());
  }

  /** Makes sure fn runs again no later than `ms` from now (default retryInterval). */
  retryAfter(ms = this.retryIntervalMs): void {
    if (this.stopped) return;
    const at = this.clock.now() + ms;
    if (this.inFlight) this.retryAt = Math.min(this.retryAt, at);
    else if (this.started) this.armAt(at);
  }

  /** True while fn is running. */
  get running(): boolean {
    return this.inFlight !== undefined;
  }

  private onTimer(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    // A timer firing (periodic, retry or requested) always means "run now if allowed".
    this.requested = true;
    this.tryRun();
  }

  private tryRun(): void {
    if (this.stopped || this.inFlight || !this.requested) return;
    const waitMs = this.takeToken();
    if (waitMs > 0) {
      this.armAt(this.clock.now() + waitMs);
      return;
    }
    this.requested = false;
    this.retryAt = Infinity;
    this.disarm();
    let result: Promise<void>;
    try {
      result = this.fn();
    } catch (err) {
      result = Promise.reject(err);
    }
    this.inFlight = result.then(
      () => this.finished(true),
      (err: unknown) => {
        try {
          this.onError?.(err);
        } finally {
          this.finished(false);
        }
      },
    );
  }

  private finished(ok: boolean): void {
    this.inFlight = undefined;
    if (this.stopped) return;
    const now = this.clock.now();
    this.armAt(now + this.maxIntervalMs);
    this.failures = ok ? 0 : this.failures + 1;
    if (!ok) this.armAt(now + Math.min(this.firstRetryMs * 2 ** Math.min(this.failures - 1, 30), this.retryIntervalMs));
    this.armAt(this.retryAt);
    this.retryAt = Infinity;
    if (this.requested) this.armAt(now);
  }

  /** Takes a token if one is available (returns 0), or returns how long until one is. */
  private takeToken(): number {
    if (this.minIntervalMs === 0) return 0;
    const now = this.clock.now();
    this.creditMs = Math.min(this.burst * this.minIntervalMs, this.creditMs + (now - this.creditAt));
    this.creditAt = now;
    if (this.creditMs >= this.minIntervalMs) {
      this.creditMs -= this.minIntervalMs;
      return 0;
    }
    return this.minIntervalMs - this.creditMs;
  }

  private armAt(at: number): void {
    if (at >= this.timerAt || at === Infinity) return;
    this.disarm();
    this.timerAt = at;
    this.timer = this.clock.setTimeout(() => this.onTimer(), at - this.clock.now());
  }

  private disarm(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }
}
