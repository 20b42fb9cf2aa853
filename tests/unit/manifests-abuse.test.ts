// Issue 12, manifests directory abuse: the real ManifestsSource over a temp dir holding one
// hostile entry beside a valid Service. Each entry is skipped with its reason, reported once
// (not again on the next full rescan), and the valid Service still loads.
import test, { type ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManifestsSource, type ManifestsSourceOptions } from '../../ts/sources/manifests.js';
import { MAX_FILE_BYTES } from '../../ts/sources/manifest-files.js';
import type { EventType } from '../../ts/sources/types.js';

const svc = (name: string, ip = '172.30.0.41') =>
  `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}, namespace: ns1}\nspec: {clusterIP: ${ip}, ports: [{name: p, port: 80}]}\n`;

async function start(t: ExecutionContext, dir: string, opts: Partial<ManifestsSourceOptions> = {}) {
  const events: string[] = [];
  const invalid: string[] = [];
  const source = new ManifestsSource({ dir, ...opts });
  await source.start({
    onEvent: (kind, type: EventType, obj) => events.push(`${type} ${kind}/${obj.metadata.name} ${obj.spec?.clusterIP ?? ''}`.trim()),
    onSynced() {},
    onInvalid: (kind, reason, ref) => invalid.push(`${kind} ${reason} ${ref}`),
  });
  t.teardown(() => source.stop());
  /** A full rescan, as any unknown-name fs event causes, awaited. */
  const rescan = async () => {
    const s = source as unknown as { fullRescan: boolean; flush(): Promise<void> };
    s.fullRescan = true;
    await s.flush();
  };
  return { source, events, invalid, rescan };
}

function tempDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-abuse-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const badName = Buffer.concat([Buffer.from('bad-'), Buffer.from([0xff, 0xfe]), Buffer.from('.yaml')]);

const cases: Array<{ name: string; make(dir: string, t: ExecutionContext): void | Promise<void>; expect: string }> = [
  {
    name: '1 GB sparse file: skipped by its stat size, never read',
    make: (dir) => {
      writeFileSync(join(dir, 'huge.yaml'), '');
      truncateSync(join(dir, 'huge.yaml'), 1024 ** 3);
    },
    expect: `File too-large huge.yaml: ${1024 ** 3} bytes, cap ${MAX_FILE_BYTES}`,
  },
  {
    name: 'symlink loop',
    make: (dir) => {
      symlinkSync('loop-b.yaml', join(dir, 'loop-a.yaml'));
      symlinkSync('loop-a.yaml', join(dir, 'loop-b.yaml'));
    },
    expect: 'File symlink-loop loop-a.yaml: too many levels of symbolic links|File symlink-loop loop-b.yaml: too many levels of symbolic links',
  },
  {
    name: 'FIFO: not opened, so it cannot block',
    make: (dir) => void execFileSync('mkfifo', [join(dir, 'fifo.yaml')]),
    expect: 'File not-a-regular-file fifo.yaml: FIFO',
  },
  {
    name: 'unix socket',
    make: (dir, t) =>
      new Promise<void>((resolve) => {
        const srv = createServer().listen(join(dir, 'sock.yaml'), () => resolve());
        t.teardown(() => srv.close());
      }),
    expect: 'File not-a-regular-file sock.yaml: socket',
  },
  {
    name: 'symlink to a character device (/dev/zero)',
    make: (dir) => symlinkSync('/dev/zero', join(dir, 'zero.yaml')),
    expect: 'File not-a-regular-file zero.yaml: device or other',
  },
  {
    name: 'directory with a manifest name',
    make: (dir) => mkdirSync(join(dir, 'sub.yaml')),
    expect: 'File not-a-regular-file sub.yaml: directory',
  },
  {
    name: 'non-UTF-8 file name',
    make: (dir) => writeFileSync(Buffer.concat([Buffer.from(dir + '/'), badName]), svc('mangled')),
    expect: 'File bad-file-name bad-\\xff\\xfe.yaml: name is not valid UTF-8',
  },
  {
    name: 'non-UTF-8 content',
    make: (dir) => writeFileSync(join(dir, 'latin1.yaml'), Buffer.concat([Buffer.from(svc('latin')), Buffer.from([0x23, 0xe9, 0x0a])])),
    expect: 'File not-utf8 latin1.yaml: content is not valid UTF-8',
  },
];

for (const c of cases) {
  test(`abuse: ${c.name}`, async (t) => {
    const dir = tempDir(t);
    writeFileSync(join(dir, 'good.yaml'), svc('good'));
    await c.make(dir, t);
    const env = await start(t, dir);
    t.deepEqual(env.events, ['ADDED Service/good 172.30.0.41'], 'the valid Service loads beside it');
    t.deepEqual(env.invalid.sort(), c.expect.split('|'));
    await env.rescan();
    await env.rescan();
    t.is(env.invalid.length, c.expect.split('|').length, 'reported once, not on every rescan');
  });
}

test('a skipped file is reported again once it changes and is fixed; then loads', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'a.yaml'), '');
  truncateSync(join(dir, 'a.yaml'), MAX_FILE_BYTES + 1);
  const env = await start(t, dir);
  t.is(env.invalid.length, 1);
  writeFileSync(join(dir, 'a.yaml'), svc('a'));
  await env.rescan();
  t.deepEqual(env.events, ['ADDED Service/a 172.30.0.41']);
  truncateSync(join(dir, 'a.yaml'), MAX_FILE_BYTES + 1);
  await env.rescan();
  t.is(env.invalid.length, 2, 'too large again: reported again');
  t.deepEqual(env.events.at(-1), 'DELETED Service/a 172.30.0.41', 'a too-large file defines nothing');
});

test('a file that changes while it is read is not parsed; it is read again once it holds still', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'a.yaml');
  writeFileSync(path, svc('a'));
  let busy = 0;
  let final: string | undefined;
  const env = await start(t, dir, {
    // A slow writer, between the reader's stat and its read: it finishes its last write (the
    // whole file) and, while busy, starts the next one, half a document so far.
    beforeRead: () => {
      if (final !== undefined) writeFileSync(path, final);
      if (busy-- > 0) appendFileSync(path, '---\napiVersion: v1\nkind: Service\nmetadata: {name: torn');
      else final = undefined;
    },
  });
  t.deepEqual(env.events, ['ADDED Service/a 172.30.0.41']);
  busy = 2;
  final = svc('a', '172.30.0.42');
  writeFileSync(path, final);
  const deadline = Date.now() + 5000;
  while (!env.events.some((e) => e.includes('172.30.0.42')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  // Retried after each torn read, it is parsed once whole; the torn text was never parsed.
  t.true(env.events.some((e) => e === 'MODIFIED Service/a 172.30.0.42'));
  t.deepEqual(env.invalid, []);

  // Busy on every read: reported once, and the objects it defined before are kept.
  busy = 1000;
  final = svc('a', '172.30.0.43');
  writeFileSync(path, final);
  await new Promise((r) => setTimeout(r, 300));
  await env.rescan();
  await env.rescan();
  t.deepEqual(env.invalid, ['File changing-while-read a.yaml: changed while it was read, more than 3 times in a row']);
  t.false(env.events.some((e) => e.includes('172.30.0.43') || e.includes('torn') || e.startsWith('DELETED')));
  busy = 0;
  final = undefined;
});

test('the file count cap: past maxFiles, later names are skipped with one report', async (t) => {
  const dir = tempDir(t);
  for (let i = 0; i < 8; i++) writeFileSync(join(dir, `f${i}.yaml`), svc(`s${i}`, `172.30.0.${i + 1}`));
  const env = await start(t, dir, { maxFiles: 5 });
  t.is(env.events.length, 5);
  t.deepEqual(env.events.map((e) => e.split(' ')[1]), ['Service/s0', 'Service/s1', 'Service/s2', 'Service/s3', 'Service/s4']);
  t.deepEqual(env.invalid, [`Directory too-many-files ${dir}: more than 5 manifest files; those past the first 5 in name order are skipped`]);
  await env.rescan();
  t.is(env.invalid.length, 1);
});

test('the total bytes cap: a file that would pass it is skipped', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'a.yaml'), svc('a'));
  writeFileSync(join(dir, 'b.yaml'), svc('b', '172.30.0.42') + '#'.repeat(400) + '\n');
  const env = await start(t, dir, { maxTotalBytes: 300 });
  t.deepEqual(env.events, ['ADDED Service/a 172.30.0.41']);
  t.is(env.invalid.length, 1);
  t.regex(env.invalid[0], /^File total-size-cap b\.yaml: \d+ bytes would pass the 300-byte cap on all files$/);
});

test('10k files load in one scan; time and heap measured', async (t) => {
  t.timeout(120_000);
  const dir = tempDir(t);
  const n = 10_000;
  for (let i = 0; i < n; i++) writeFileSync(join(dir, `s${String(i).padStart(5, '0')}.yaml`), svc(`s${i}`, `172.30.${i >> 8}.${i & 255}`));
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  const env = await start(t, dir);
  const ms = performance.now() - t0;
  t.is(env.events.length, n);
  t.deepEqual(env.invalid, []);
  const t1 = performance.now();
  await env.rescan();
  t.log(`${n} files: first scan ${ms.toFixed(0)} ms, full rescan ${(performance.now() - t1).toFixed(0)} ms, rss +${((process.memoryUsage().rss - rss0) / 2 ** 20).toFixed(0)} MiB`);
});

test('out of file descriptors (EMFILE) mid-read: not an invalid object; the file keeps its objects and is read again, with its change, by itself', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'svc.yaml'), svc('web'));
  let failures = 0;
  const exhausted: string[] = [];
  const emfile = () => {
    if (failures-- > 0) throw Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE' });
  };
  const events: string[] = [];
  const invalid: string[] = [];
  const source = new ManifestsSource({ dir, beforeRead: emfile });
  await source.start({
    onEvent: (kind, type: EventType, obj) => events.push(`${type} ${obj.metadata.name} ${obj.spec?.clusterIP}`),
    onSynced() {},
    onInvalid: (kind, reason, ref) => invalid.push(`${kind} ${reason} ${ref}`),
    onResourceExhausted: (resource, component, ref) => exhausted.push(`${resource} ${component} ${ref}`),
  });
  t.teardown(() => source.stop());
  t.deepEqual(events, ['ADDED web 172.30.0.41']);
  failures = 2; // the next two reads fail: the retries back off (0.5 s, then 1 s) and the third read lands
  writeFileSync(join(dir, 'svc.yaml'), svc('web', '172.30.0.42'));
  const deadline = Date.now() + 10_000;
  while (events.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.deepEqual(events, ['ADDED web 172.30.0.41', 'MODIFIED web 172.30.0.42'], 'the change was read once fds were back; nothing was deleted meanwhile');
  t.deepEqual(invalid, [], 'not blamed on the file');
  t.true(exhausted.length >= 1 && exhausted.every((e) => e.startsWith('file_descriptors manifests ')), exhausted.join('; '));
});
