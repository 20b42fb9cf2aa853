import test from 'ava';
import { createLogger, klogLine, levelForVerbosity, logSync, logV } from '../../ts/log.js';
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

// --- klog's verbosity, exactly: V(n) shows when n ≤ -v ------------------------------------------

const GATES: Array<[number, number, boolean]> = [
  [0, 0, true], [0, 1, false], [1, 1, true], [2, 3, false], [3, 3, true], [3, 4, false], [4, 5, false], [5, 5, true], [9, 6, true],
];
for (const [verbosity, v, shown] of GATES) {
  test(`-v=${verbosity}: a V(${v}) message is ${shown ? 'shown' : 'not shown'}`, (t) => {
    const out = capture();
    logV(createLogger(verbosity, out.stream), v, {}, 'm');
    t.is(out.lines.length, shown ? 1 : 0);
  });
}

test('a child logger keeps its parent\'s verbosity', (t) => {
  const out = capture();
  const child = createLogger(2, out.stream).child({ component: 'x' });
  logV(child, 3, {}, 'hidden');
  logV(child, 2, {}, 'shown');
  t.deepEqual(out.lines.map((l) => l.msg), ['shown']);
});

// --- --logging-format text ------------------------------------------------------------------------

process.env.TZ = 'UTC';
const AT = Date.UTC(2026, 11, 2, 9, 30, 0, 123);

const LINES: Array<[Record<string, unknown>, string]> = [
  [{ level: 30, time: AT, pid: 1234, msg: 'Starting kproxy', mode: 'nftables', families: ['IPv4', 'IPv6'] },
    'I1202 09:30:00.123000    1234 kproxy] "Starting kproxy" mode="nftables" families=["IPv4","IPv6"]'],
  [{ level: 40, time: AT, pid: 7, msg: 'Could not set sysctl', value: 131072, ok: false, current: null },
    'W1202 09:30:00.123000       7 kproxy] "Could not set sysctl" value=131072 ok=false current=<nil>'],
  [{ level: 50, time: AT, pid: 7, msg: 'failed', err: { type: 'Error', message: 'boom', stack: 'Error: boom\n at x' } },
    'E1202 09:30:00.123000       7 kproxy] "failed" err="boom"'],
  [{ level: 60, time: AT, pid: 7, msg: 'kproxy "failed"', code: 'E_X' }, 'F1202 09:30:00.123000       7 kproxy] "kproxy \\"failed\\"" code="E_X"'],
  // The "v" field stays out of text, as klog's; multi-line strings are klog's key=< block.
  [{ level: 10, time: AT, pid: 7, v: 4, msg: 'Committed transaction', transaction: 'add table ip kube-proxy\nflush table ip kube-proxy\n' },
    'I1202 09:30:00.123000       7 kproxy] "Committed transaction" transaction=<\n\tadd table ip kube-proxy\n\tflush table ip kube-proxy\n >'],
];
for (const [entry, line] of LINES) {
  test(`text: ${entry.msg}`, (t) => {
    t.is(klogLine(JSON.stringify(entry)), `${line}\n`);
  });
}

test('a text logger writes klog lines, gated the same way', (t) => {
  const chunks: string[] = [];
  const logger = createLogger(2, { format: 'text', dest: { write: (s: string) => void chunks.push(s) } });
  logger.info({ a: 1 }, 'one');
  logV(logger, 3, {}, 'hidden');
  logger.warn('two');
  t.is(chunks.length, 2);
  t.regex(chunks[0], /^I\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ kproxy\] "one" a=1\n$/);
  t.regex(chunks[1], /^W\d{4} .* kproxy\] "two"\n$/);
});
