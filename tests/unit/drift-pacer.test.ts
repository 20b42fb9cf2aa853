// The drift pacer as a table of repair requests over time: the first repair runs at once,
// repeated ones wait twice as long each time up to the sync period, and a quiet minute resets;
// then pollDrift, the monitor loop both modes run on it, with real timers.
import test from 'ava';
import { DriftPacer, pollDrift } from '../../ts/proxier/drift-pacer.js';

const PACING = { minGapMs: 1000, maxGapMs: 30_000, quietMs: 60_000 };

// [time a change is seen (ms), the wait the pacer gives]; each request is repaired after its wait.
const FIGHT: [number, number][] = [
  [0, 0],
  [100, 900], // repaired at 1000: the gap becomes 2 s
  [1100, 1900], // repaired at 3000: 4 s
  [3050, 3950], // at 7000: 8 s
  [7000, 8000], // at 15000: 16 s
  [15000, 16000], // at 31000: 30 s (the cap)
  [31000, 30000], // at 61000: still 30 s
];

test('a fight: each repair waits twice as long as the one before, up to the sync period', (t) => {
  const pacer = new DriftPacer(PACING);
  for (const [at, wait] of FIGHT) {
    t.is(pacer.delay(at), wait, `a change seen at ${at} ms`);
    pacer.repaired(at + wait);
  }
});

test('a quiet minute after a repair: the next one runs at once, and the gap starts again at 1 s', (t) => {
  const pacer = new DriftPacer(PACING);
  pacer.repaired(0);
  pacer.repaired(1000);
  pacer.repaired(3000); // the gap is 4 s now
  t.is(pacer.delay(3000 + 60_000), 0);
  pacer.repaired(63_000);
  t.is(pacer.delay(63_100), 900);
});

test('pollDrift: the first change is repaired at the next poll, a second one waits its gap, and stop cancels a waiting repair', async (t) => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const until = async (ok: () => boolean) => {
    for (let i = 0; i < 500 && !ok(); i++) await sleep(10);
  };
  const changes: string[] = [];
  const repairs: string[] = [];
  const delays: string[] = [];
  const waits: number[] = [];
  let ticks = 0;
  const stop = pollDrift({
    pollMs: 10,
    syncPeriodMs: 10_000,
    pacing: { minGapMs: 1000 },
    tick: () => ticks++,
    check: async () => changes.shift(),
    repair: (why) => repairs.push(why),
    delayed: (why, waitMs) => (delays.push(why), waits.push(waitMs)),
  });
  changes.push('flushed');
  await until(() => repairs.length > 0);
  t.deepEqual(repairs, ['flushed'], 'repaired at once');
  changes.push('deleted');
  await until(() => delays.length > 0);
  t.deepEqual(repairs, ['flushed'], 'the second waits out the gap');
  t.deepEqual(delays, ['deleted']);
  t.true(waits[0] > 0 && waits[0] <= 1000, `at most the first gap: ${waits[0]} ms`);
  await until(() => repairs.length > 1);
  t.deepEqual(repairs, ['flushed', 'deleted'], 'and is repaired once it ends');
  changes.push('edited');
  await until(() => delays.length > 1);
  t.true(waits[1] > 1000, `the gap doubled: ${waits[1]} ms`);
  stop();
  const after = ticks;
  await sleep(waits[1] + 200);
  t.deepEqual(repairs, ['flushed', 'deleted'], 'stopped: the waiting repair never runs');
  t.is(ticks, after, 'and nothing polls');
  t.true(after > 50, 'tick ran on every poll, waiting or not');
});

test('pollDrift: a check that throws is nothing to repair, and polling goes on', async (t) => {
  let calls = 0;
  const repairs: string[] = [];
  const stop = pollDrift({
    pollMs: 10, syncPeriodMs: 1000,
    check: () => {
      calls++;
      if (calls === 1) throw new Error('dump failed');
      return calls === 3 ? 'changed' : undefined;
    },
    repair: (why) => repairs.push(why),
    delayed: () => {},
  });
  for (let i = 0; i < 500 && calls < 5; i++) await new Promise((r) => setTimeout(r, 10));
  stop();
  t.deepEqual(repairs, ['changed']);
  t.true(calls > 3);
});
