// tests/vm/lifecycle.ts on this machine's kernel too (the VM suite runs it on the LTS one):
// every rule shape nftables mode writes, through the life of ServicePorts that own chains and
// sets, committed to a real kernel in a fresh network namespace.
import { spawnSync } from 'node:child_process';
import test from 'ava';

test('every rule shape commits through its life on this kernel', (t) => {
  const ns = `kp-lifecycle-${process.pid}`;
  t.is(spawnSync('ip', ['netns', 'add', ns]).status, 0, 'netns add');
  t.teardown(() => void spawnSync('ip', ['netns', 'del', ns]));
  const r = spawnSync('ip', ['netns', 'exec', ns, 'npx', 'tsx', 'tests/vm/lifecycle.ts'], { encoding: 'utf8', timeout: 120_000 });
  const lines = r.stdout.split('\n').filter((l) => / - lifecycle: /.test(l));
  t.deepEqual(lines.filter((l) => l.startsWith('not ok')), [], r.stderr);
  t.is(lines.filter((l) => l.startsWith('ok')).length, 21, r.stdout);
  t.is(r.status, 0);
});
