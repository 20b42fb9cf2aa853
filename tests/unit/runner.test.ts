import test from 'ava';
import { FakeClock } from '../../ts/runner/clock.js';
import { BoundedFrequencyRunner, type BoundedFrequencyRunnerOptions } from '../../ts/runner/bounded-frequency.js';

const T0 = Date.UTC(2024, 0, 1);

/** A runner whose fn records the (relative) time of each call; `results` scripts failures. */
function harness(options: Partial<BoundedFrequencyRunnerOptions> = {}, results: Array<'ok' | 'fail'> = []) {
  const clock = new FakeClock(T0);
  const calls: number[] = [];
  const errors: unknown[] = [];
  const runner = new BoundedFrequencyRunner({
    name: 'test',
    minIntervalMs: 1_000,
    maxIntervalMs: 60_000,
    retryIntervalMs: 5_000,
    clock,
    fn: async () => {
      calls.push(clock.now() - T0);
      if (results.shift() === 'fail') throw new Error('sync failed');
    },
    onError: (err) => errors.push(err),
    ...options,
  });
  return { clock, calls, errors, runner };
}

function deferred() {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

test('FakeClock fires timers in time order, ties in creation order, and honours clearTimeout', async (t) => {
  const clock = new FakeClock(0);
  const fired: string[] = [];
  clock.setTimeout(() => fired.push('b@20'), 20);
  clock.setTimeout(() => fired.push('a@10'), 10);
  clock.setTimeout(() => fired.push('c@20'), 20);
  const cancelled = clock.setTimeout(() => fired.push('never'), 5);
  clock.clearTimeout(cancelled);
  t.is(clock.nextTimerAt(), 10);
  await clock.advance(15);
  t.deepEqual(fired, ['a@10']);
  t.is(clock.now(), 15);
  await clock.advance(5);
  t.deepEqual(fired, ['a@10', 'b@20', 'c@20']);
  t.is(clock.pendingTimers(), 0);
});

test('FakeClock fires timers armed by a timer within the same advance', async (t) => {
  const clock = new FakeClock(0);
  const fired: number[] = [];
  clock.setTimeout(() => {
    fired.push(clock.now());
    clock.setTimeout(() => fired.push(clock.now()), 10);
  }, 10);
  await clock.advance(100);
  t.deepEqual(fired, [10, 20]);
});

test('run() never calls fn synchronously; the request runs on the next tick', async (t) => {
  const { clock, calls, runner } = harness();
  runner.start();
  runner.run();
  t.deepEqual(calls, []);
  await clock.advance(0);
  t.deepEqual(calls, [0]);
});

test('requests made together coalesce into one run', async (t) => {
  const { clock, calls, runner } = harness();
  runner.start();
  for (let i = 0; i < 5; i++) runner.run();
  await clock.advance(0);
  t.deepEqual(calls, [0]);
});

test('burst: two quick runs, then one per minInterval', async (t) => {
  const { clock, calls, runner } = harness({ minIntervalMs: 1_000, burst: 2 });
  runner.start();
  for (let i = 0; i < 3; i++) {
    runner.run();
    await clock.advance(0);
  }
  t.deepEqual(calls, [0, 0]);
  await clock.advance(999);
  t.deepEqual(calls, [0, 0]);
  await clock.advance(1);
  t.deepEqual(calls, [0, 0, 1_000]);
  runner.run();
  await clock.advance(0);
  t.deepEqual(calls, [0, 0, 1_000], 'no token left: the request waits');
  await clock.advance(1_000);
  t.deepEqual(calls, [0, 0, 1_000, 2_000]);
});

test('burst 1 keeps every run minInterval apart', async (t) => {
  const { clock, calls, runner } = harness({ minIntervalMs: 2_000, burst: 1 });
  runner.start();
  runner.run();
  await clock.advance(500);
  runner.run();
  await clock.advance(500);
  runner.run();
  await clock.advance(5_000);
  t.deepEqual(calls, [0, 2_000]);
});

test('tokens refill while idle, up to burst', async (t) => {
  const { clock, calls, runner } = harness({ minIntervalMs: 1_000, burst: 2 });
  runner.start();
  runner.run();
  await clock.advance(0);
  runner.run();
  await clock.advance(0);
  await clock.advance(10_000);
  for (let i = 0; i < 3; i++) {
    runner.run();
    await clock.advance(0);
  }
  t.deepEqual(calls, [0, 0, 10_000, 10_000]);
});

test('minInterval 0 runs every request at once', async (t) => {
  const { clock, calls, runner } = harness({ minIntervalMs: 0 });
  runner.start();
  for (let i = 0; i < 4; i++) {
    runner.run();
    await clock.advance(0);
  }
  t.deepEqual(calls, [0, 0, 0, 0]);
});

test('periodic run every maxInterval without requests', async (t) => {
  const { clock, calls, runner } = harness({ maxIntervalMs: 60_000 });
  runner.start();
  await clock.advance(59_999);
  t.deepEqual(calls, []);
  await clock.advance(1);
  t.deepEqual(calls, [60_000]);
  await clock.advance(60_000);
  t.deepEqual(calls, [60_000, 120_000]);
});

test('a requested run pushes the periodic run back to maxInterval after it', async (t) => {
  const { clock, calls, runner } = harness({ maxIntervalMs: 60_000 });
  runner.start();
  await clock.advance(10_000);
  runner.run();
  await clock.advance(0);
  await clock.advance(59_999);
  t.deepEqual(calls, [10_000]);
  await clock.advance(1);
  t.deepEqual(calls, [10_000, 70_000]);
});

test('a failed run is retried after retryInterval, and reported', async (t) => {
  const { clock, calls, errors, runner } = harness({ retryIntervalMs: 5_000 }, ['fail', 'ok']);
  runner.start();
  runner.run();
  await clock.advance(0);
  t.is(errors.length, 1);
  t.is((errors[0] as Error).message, 'sync failed');
  await clock.advance(4_999);
  t.deepEqual(calls, [0]);
  await clock.advance(1);
  t.deepEqual(calls, [0, 5_000]);
  await clock.advance(60_000);
  t.deepEqual(calls, [0, 5_000, 65_000], 'back to the periodic schedule after success');
});

test('with firstRetryMs, failures in a row are retried after 1 s, 2 s, 4 s, then retryInterval; a success resets it', async (t) => {
  const { clock, calls, runner } = harness({ minIntervalMs: 0, retryIntervalMs: 5_000, firstRetryMs: 1_000 }, ['fail', 'fail', 'fail', 'fail', 'ok', 'fail', 'ok']);
  runner.start();
  runner.run();
  await clock.advance(0);
  for (const step of [1_000, 2_000, 4_000, 5_000]) await clock.advance(step);
  t.deepEqual(calls, [0, 1_000, 3_000, 7_000, 12_000], 'doubling, capped at retryInterval');
  runner.run();
  await clock.advance(0);
  await clock.advance(1_000);
  t.deepEqual(calls, [0, 1_000, 3_000, 7_000, 12_000, 12_000, 13_000], 'after a success the next failure starts at firstRetry again');
});

test('a retry still respects the rate limit', async (t) => {
  const { clock, calls, runner } = harness({ minIntervalMs: 10_000, burst: 1, retryIntervalMs: 1_000 }, ['fail']);
  runner.start();
  runner.run();
  await clock.advance(1_000);
  t.deepEqual(calls, [0]);
  await clock.advance(9_000);
  t.deepEqual(calls, [0, 10_000]);
});

test('a synchronous throw counts as a failure', async (t) => {
  const clock = new FakeClock(T0);
  const calls: number[] = [];
  const errors: unknown[] = [];
  const runner = new BoundedFrequencyRunner({
    name: 'sync-throw', minIntervalMs: 0, maxIntervalMs: 60_000, retryIntervalMs: 2_000, clock,
    fn: () => {
      calls.push(clock.now() - T0);
      if (calls.length === 1) throw new Error('boom');
      return Promise.resolve();
    },
    onError: (err) => errors.push(err),
  });
  runner.start();
  runner.run();
  await clock.advance(2_000);
  t.deepEqual(calls, [0, 2_000]);
  t.is(errors.length, 1);
});

test('retryAfter() schedules a run no later than asked', async (t) => {
  const { clock, calls, runner } = harness();
  runner.start();
  runner.retryAfter(3_000);
  await clock.advance(2_999);
  t.deepEqual(calls, []);
  await clock.advance(1);
  t.deepEqual(calls, [3_000]);
  runner.retryAfter();
  await clock.advance(5_000);
  t.deepEqual(calls, [3_000, 8_000], 'default delay is retryInterval');
});

test('retryAfter() called from inside fn applies once it returns', async (t) => {
  const clock = new FakeClock(T0);
  const calls: number[] = [];
  const runner: BoundedFrequencyRunner = new BoundedFrequencyRunner({
    name: 'inner-retry', minIntervalMs: 0, maxIntervalMs: 60_000, retryIntervalMs: 7_000, clock,
    fn: async () => {
      calls.push(clock.now() - T0);
      if (calls.length === 1) runner.retryAfter();
    },
  });
  runner.start();
  runner.run();
  await clock.advance(7_000);
  t.deepEqual(calls, [0, 7_000]);
});

test('fn never runs twice at once; requests during a run coalesce into one more run', async (t) => {
  const clock = new FakeClock(T0);
  const gates = [deferred(), deferred()];
  let active = 0;
  let maxActive = 0;
  const calls: number[] = [];
  const runner = new BoundedFrequencyRunner({
    name: 'overlap', minIntervalMs: 1_000, maxIntervalMs: 60_000, retryIntervalMs: 5_000, clock,
    fn: async () => {
      const gate = gates[calls.length];
      calls.push(clock.now() - T0);
      active++;
      maxActive = Math.max(maxActive, active);
      await gate.promise;
      active--;
    },
  });
  runner.start();
  runner.run();
  await clock.advance(0);
  t.true(runner.running);
  runner.run();
  runner.run();
  await clock.advance(30_000);
  t.deepEqual(calls, [0], 'nothing else starts while the first run is in flight');
  gates[0].resolve();
  await clock.advance(0);
  t.deepEqual(calls, [0, 30_000], 'the requests made meanwhile run once, right after');
  gates[1].resolve();
  await clock.advance(0);
  t.is(maxActive, 1);
  t.false(runner.running);
});

test('a periodic deadline passing during a long run does not start a second run', async (t) => {
  const clock = new FakeClock(T0);
  const gate = deferred();
  const calls: number[] = [];
  const runner = new BoundedFrequencyRunner({
    name: 'long', minIntervalMs: 1_000, maxIntervalMs: 10_000, retryIntervalMs: 5_000, clock,
    fn: async () => {
      calls.push(clock.now() - T0);
      if (calls.length === 1) await gate.promise;
    },
  });
  runner.start();
  runner.run();
  await clock.advance(25_000);
  t.deepEqual(calls, [0]);
  gate.resolve();
  await clock.advance(10_000);
  t.deepEqual(calls, [0, 35_000], 'periodic again maxInterval after the long run ended');
});

test('run() before start() is remembered', async (t) => {
  const { clock, calls, runner } = harness();
  runner.run();
  await clock.advance(5_000);
  t.deepEqual(calls, []);
  runner.start();
  await clock.advance(0);
  t.deepEqual(calls, [5_000]);
});

test('stop() waits for the in-flight run and prevents further runs', async (t) => {
  const clock = new FakeClock(T0);
  const gate = deferred();
  const calls: number[] = [];
  const runner = new BoundedFrequencyRunner({
    name: 'stop', minIntervalMs: 0, maxIntervalMs: 10_000, retryIntervalMs: 5_000, clock,
    fn: async () => {
      calls.push(clock.now() - T0);
      await gate.promise;
    },
  });
  runner.start();
  runner.run();
  await clock.advance(0);
  let stopped = false;
  const stopping = runner.stop().then(() => {
    stopped = true;
  });
  await clock.advance(0);
  t.false(stopped);
  gate.resolve();
  await stopping;
  t.true(stopped);
  runner.run();
  runner.retryAfter(1);
  await clock.advance(100_000);
  t.deepEqual(calls, [0]);
  t.is(clock.pendingTimers(), 0);
});
