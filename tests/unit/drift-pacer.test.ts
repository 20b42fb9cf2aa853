// The drift pacer as a table of repair requests over time: the first repair runs at once,
// repeated ones wait twice as long each time up to the sync period, and a quiet minute resets.
import test from 'ava';
import { DriftPacer } from '../../ts/proxier/drift-pacer.js';

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
