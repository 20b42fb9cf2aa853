import test from 'ava';
import { createLogger, levelForVerbosity, logSync, logV } from '../../ts/log.js';
import { captureLines } from '../helpers/log-capture.js';

const capture = captureLines;

const LEVELS: Array<[number, string]> = [[0, 'info'], [1, 'info'], [2, 'debug'], [3, 'debug'], [4, 'trace'], [9, 'trace']];
for (const [v, level] of LEVELS) {
  test(`-v=${v} logs at pino level ${level}`, (t) => {
    t.is(levelForVerbosity(v), level);
    t.is(createLogger(v, capture().stream).level, level);
  });
}

test('a sync line shows from -v=2, as JSON with a "v" field', (t) => {
  const quiet = capture();
  logSync(createLogger(1, quiet.stream), { family: 'IPv4', durationMs: 3 });
  t.deepEqual(quiet.lines, []);

  const verbose = capture();
  logSync(createLogger(2, verbose.stream), { family: 'IPv4', durationMs: 3 }, 'Synced nftables rules');
  t.is(verbose.lines.length, 1);
  t.like(verbose.lines[0], { level: 20, v: 2, family: 'IPv4', durationMs: 3, msg: 'Synced nftables rules' });
});

test('logV: v<=1 is info, v=4 needs -v=4', (t) => {
  const out = capture();
  const logger = createLogger(2, out.stream);
  logV(logger, 0, {}, 'always');
  logV(logger, 4, {}, 'trace only');
  t.deepEqual(out.lines.map((l) => [l.level, l.msg]), [[30, 'always']]);
});
