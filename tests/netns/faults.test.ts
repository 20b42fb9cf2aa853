// Mid-batch rejection on the real kernel, one fault child per mode, each in a fresh namespace
// with KPROXY_FAULT_REJECT set so that the addon poisons half of the syncs at a random place.
// - nftables (fault-child.ts): over 1,000 refused batches the kernel shows no partial state,
//   every accepted sync leaves exactly the model, and the sync after a refusal is full.
// - iptables (iptables-fault-child.ts): a sync goes in several restores, each one transaction
//   per table; after a refused one every chain is whole (old or new), after an accepted one
//   the kernel is the model's render.
// FAULT_REJECTIONS=<n> and FAULT_SYNCS=<n> run more.
import test from 'ava';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import type { ExecutionContext } from 'ava';

const REJECTIONS = Number(process.env.FAULT_REJECTIONS ?? 1000);
const IPTABLES_SYNCS = Number(process.env.FAULT_SYNCS ?? 300);

/** Runs a fault child in its own namespace; returns its counts and problems, and how long it took. */
async function runChild(t: ExecutionContext, child: string, env: Record<string, string>) {
  const ns = `kp-fault-${process.pid}`;
  execFileSync('ip', ['netns', 'add', ns]);
  t.teardown(() => void spawnSync('ip', ['netns', 'del', ns]));
  execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  const started = performance.now();
  // Asynchronously: a spawnSync would block the worker past ava's inactivity timeout.
  const r = await promisify(execFile)('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', child], {
    encoding: 'utf8', timeout: 580_000, maxBuffer: 64 << 20,
    env: { ...process.env, KPROXY_FAULT_REJECT: '0.5:42', FAULT_SEED: '7', ...env },
  }).catch((e: { stdout?: string; stderr?: string; code?: number }) => ({ stdout: e.stdout ?? '', stderr: `exit ${e.code}: ${e.stderr ?? e}` }));
  t.false(r.stderr.startsWith('exit '), r.stderr);
  const { counts, problems } = JSON.parse(r.stdout.trim().split('\n').pop()!);
  return { counts, problems, seconds: ((performance.now() - started) / 1000).toFixed(1) };
}

test.serial(`nftables: ${REJECTIONS} batches refused at a random message: 0 partial states, the model after each accepted sync`, async (t) => {
  t.timeout(600_000);
  const { counts, problems, seconds } = await runChild(t, 'tests/netns/fault-child.ts', { FAULT_REJECTIONS: String(REJECTIONS) });
  t.log(`${counts.syncs} syncs in ${seconds} s: ${counts.rejected} refused, ${counts.accepted} accepted, ${counts.changes} changes; ` +
    `partial states ${counts.partialStates}, model mismatches ${counts.modelMismatches}, not full after a refusal ${counts.notFullAfterRejection}`);
  t.deepEqual(problems, []);
  t.is(counts.rejected, REJECTIONS);
  t.true(counts.accepted >= REJECTIONS / 2, 'accepted syncs in between');
  t.is(counts.partialStates, 0);
  t.is(counts.modelMismatches, 0);
  t.is(counts.notFullAfterRejection, 0);
});

for (const backend of ['nft', 'legacy'] as const) test.serial(`iptables (${backend}): ${IPTABLES_SYNCS} syncs, half with a restore refused at a random line: every chain whole, the model after each accepted sync`, async (t) => {
  t.timeout(600_000);
  const { counts, problems, seconds } = await runChild(t, 'tests/netns/iptables-fault-child.ts', { FAULT_SYNCS: String(IPTABLES_SYNCS), FAULT_BACKEND: backend });
  t.log(`${counts.syncs} syncs in ${seconds} s: ${counts.rejected} refused, ${counts.accepted} accepted (${counts.multiRestore} in several restores); ` +
    `chains neither old nor new ${counts.brokenChains}, model mismatches ${counts.modelMismatches}, not full after a refusal ${counts.notFullAfterRejection}`);
  t.deepEqual(problems, []);
  t.is(counts.syncs, IPTABLES_SYNCS);
  t.true(counts.rejected >= IPTABLES_SYNCS / 4 && counts.accepted >= IPTABLES_SYNCS / 4, 'refused and accepted syncs both');
  // The nft backend splits syncs (NFT_MAX_JUMPS); the legacy one rewrites a table per restore.
  if (backend === 'nft') t.true(counts.multiRestore > 0, 'some syncs went in several restores');
  else t.is(counts.multiRestore, 0);
  t.is(counts.brokenChains, 0);
  t.is(counts.modelMismatches, 0);
  t.is(counts.notFullAfterRejection, 0);
});
