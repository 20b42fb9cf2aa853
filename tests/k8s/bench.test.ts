// The side-by-side benchmark (npm run bench -- --k8s) at a tiny size, so that it keeps working:
// both proxies run every phase, each figure is measured, and a restart with the rules in place
// fails no connection. No figure is compared with a time.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../../ts/demo/topology.js';

const run = promisify(execFile);

test.serial('npm run bench -- --k8s: kproxy and upstream kube-proxy, every phase measured, no connection lost on restart', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-k8s-bench-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const json = join(dir, 'out.json');
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'tests/k8s/bench/main.ts', '--services', '20', '--endpoints', '3', '--updates', '4', '--json', json],
    { cwd: REPO_ROOT, maxBuffer: 16 << 20, timeout: 600_000 });
  t.log(stdout);
  const { results } = JSON.parse(readFileSync(json, 'utf8'));
  t.deepEqual(results.map((r: any) => r.proxy), ['kproxy', 'upstream kube-proxy (nftables)']);
  for (const r of results) {
    for (const k of ['coldStartMs', 'coldStartCpuS', 'eventP50Ms', 'eventP99Ms', 'updatesCpuS', 'programmingMeanMs', 'restartFirstSyncMs']) {
      t.true(Number.isFinite(r[k]) && r[k] >= 0, `${r.proxy}: ${k} = ${r[k]}`);
    }
    t.true(r.restartConnections > 0, `${r.proxy}: connections were made during the restart`);
    t.is(r.restartFailed, 0, `${r.proxy}: no connection failed while it restarted`);
    for (const [way, rss] of Object.entries(r.rssMiB)) t.true(Number(rss) > 0, `${r.proxy}: RSS started as ${way}`);
  }
  t.deepEqual(Object.keys(results[0].rssMiB).sort(), ['image', 'node', 'npm-bin']);
});
