// Mid-batch rejection on the real kernel: with KPROXY_FAULT_REJECT the addon poisons half of
// its batches at a random message (fault-child.ts), and over 1,000 refused syncs the kernel
// must show no partial state, every accepted sync must leave exactly the model, and the sync
// after a refusal must be full. FAULT_REJECTIONS=<n> runs more.
import test from 'ava';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';

const REJECTIONS = Number(process.env.FAULT_REJECTIONS ?? 1000);

test.serial(`${REJECTIONS} batches refused at a random message: 0 partial states, the model after each accepted sync`, async (t) => {
  t.timeout(600_000);
  const ns = `kp-fault-${process.pid}`;
  execFileSync('ip', ['netns', 'add', ns]);
  t.teardown(() => void spawnSync('ip', ['netns', 'del', ns]));
  execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  const started = performance.now();
  // Asynchronously: a spawnSync would block the worker past ava's inactivity timeout.
  const r = await promisify(execFile)('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', 'tests/netns/fault-child.ts'], {
    encoding: 'utf8', timeout: 580_000, maxBuffer: 64 << 20,
    env: { ...process.env, KPROXY_FAULT_REJECT: '0.5:42', FAULT_REJECTIONS: String(REJECTIONS), FAULT_SEED: '7' },
  }).catch((e: { stdout?: string; stderr?: string; code?: number }) => ({ stdout: e.stdout ?? '', stderr: `exit ${e.code}: ${e.stderr ?? e}` }));
  t.false(r.stderr.startsWith('exit '), r.stderr);
  const { counts, problems } = JSON.parse(r.stdout.trim().split('\n').pop()!);
  t.log(`${counts.syncs} syncs in ${((performance.now() - started) / 1000).toFixed(1)} s: ${counts.rejected} refused, ${counts.accepted} accepted, ${counts.changes} changes; ` +
    `partial states ${counts.partialStates}, model mismatches ${counts.modelMismatches}, not full after a refusal ${counts.notFullAfterRejection}`);
  t.deepEqual(problems, []);
  t.is(counts.rejected, REJECTIONS);
  t.true(counts.accepted >= REJECTIONS / 2, 'accepted syncs in between');
  t.is(counts.partialStates, 0);
  t.is(counts.modelMismatches, 0);
  t.is(counts.notFullAfterRejection, 0);
});
