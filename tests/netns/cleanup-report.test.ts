// `kproxy --cleanup` on a real kernel, in a namespace of its own: it says "Deleted" for the
// table that was there, and "No rules" where there were none.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { systemTool } from '../../ts/system-tools.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const NS = `kp-cleanup-${process.pid}`;
const ip = (...args: string[]) => spawnSync(systemTool('ip'), args, { encoding: 'utf8' });
const inNs = (cmd: string, ...args: string[]) => spawnSync(systemTool('ip'), ['netns', 'exec', NS, cmd, ...args], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });

test.before(() => {
  ip('netns', 'add', NS);
});
test.after.always(() => {
  ip('netns', 'del', NS);
});

function cleanupLines(): Array<{ msg: string; mode: string; ipFamily: string }> {
  const r = inNs(process.execPath, '--import', 'tsx', 'ts/cli.ts', '--cleanup');
  if (r.status !== 0) throw new Error(`--cleanup failed: ${r.stdout}${r.stderr}`);
  return r.stdout.trim().split('\n').map((l) => JSON.parse(l));
}

test.serial('nothing there: no "Deleted"; an ip kube-proxy table: "Deleted" for nftables IPv4 only', (t) => {
  const empty = cleanupLines();
  t.false(empty.some((l) => l.msg === 'Deleted the rules of this mode'), JSON.stringify(empty));
  t.true(empty.some((l) => l.mode === 'nftables' && l.msg === 'No rules of this mode to delete'));

  t.is(inNs(systemTool('nft'), 'add', 'table', 'ip', 'kube-proxy').status, 0);
  const one = cleanupLines();
  t.deepEqual(one.filter((l) => l.msg === 'Deleted the rules of this mode').map((l) => `${l.mode} ${l.ipFamily}`), ['nftables IPv4']);
  t.is(inNs(systemTool('nft'), 'list', 'tables').stdout.trim(), '', 'the table is gone');
});
