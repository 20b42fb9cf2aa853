#!/usr/bin/env node
// `npm test`: the Rust tests, the fast ava suites, then the network-namespace
// suites against the real kernel (root). Ends with one line: "N passed, N failed".
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

// The k8s suite's 5-minute watch-drop test is mostly waiting: it runs on its own, beside the VM
// suite (one core of emulated CPU), and the k8s suite runs without it.
const WATCH_DROP = '*connection to the API server reset every second*';

const suites = [
  { name: 'rust (cargo test)', cmd: 'cargo', args: ['test', '--workspace', '--locked'], parse: parseCargo },
  // The same Rust tests built for arm64 and run under qemu-user (.cargo/config.toml's runner;
  // QEMU_LD_PREFIX for the binaries they start in turn); KPROXY_TEST_ARM64=1 (CI) requires it.
  { name: 'rust arm64 (qemu-user)', cmd: 'cargo', args: ['test', '--workspace', '--locked', '--target', 'aarch64-unknown-linux-gnu'], parse: parseCargo,
    // The stable fuzz loops at 50k inputs each, not 0.3-1M: emulated, the full count took ~2.5 of
    // this suite's ~6 minutes; the native run above does the full count, cargo fuzz searches.
    env: { QEMU_LD_PREFIX: '/usr/aarch64-linux-gnu', KPROXY_TEST_EMULATED: '1', KPROXY_FUZZ_ITERS: process.env.KPROXY_FUZZ_ITERS ?? '50000' }, optIn: 'KPROXY_TEST_ARM64',
    present: () => existsSync('/usr/bin/qemu-aarch64-static') && existsSync('/usr/bin/aarch64-linux-gnu-gcc'), hint: 'needs qemu-user-static, gcc-aarch64-linux-gnu and rustup target add aarch64-unknown-linux-gnu' },
  { name: 'unit (ava)', cmd: 'npx', args: ['ava', '--tap', 'tests/unit'], parse: parseTap },
  { name: 'netns (ava, real kernel)', cmd: 'npx', args: ['ava', '--tap', '--serial', 'tests/netns'], parse: parseTap, root: true },
  // A real kube-apiserver and etcd (scripts/build-k8s.sh builds them): runs when they are
  // built; with KPROXY_TEST_K8S=1 (CI) missing binaries fail it.
  { name: 'k8s (real kube-apiserver)', cmd: 'npx', args: ['ava', '--tap', '--serial', 'tests/k8s', '--match', `!${WATCH_DROP}`], parse: parseTap, root: true, optIn: 'KPROXY_TEST_K8S',
    present: () => existsSync('tests/k8s/bin/kube-apiserver'), hint: 'run scripts/build-k8s.sh (needs Go) to build it' },
  // The npm tarballs installed and run (registry access; the demo part as root), the addon on other
  // Node lines (22, 24) and, under qemu-user, on arm64 (npm run build:addon:arm64; KPROXY_TEST_ARM64=1 requires it).
  { name: 'package (npm install, Node lines, arm64)', cmd: 'npx', args: ['ava', '--tap', 'tests/package'], parse: parseTap },
  // The container images (scripts/image/build.sh and build-dockerfile.sh build them): run with
  // crun in a test namespace; with KPROXY_TEST_IMAGE=1 (CI) missing images fail it.
  { name: 'image (buildah, crun)', cmd: 'npx', args: ['ava', '--tap', '--serial', 'tests/image'], parse: parseTap, root: true, optIn: 'KPROXY_TEST_IMAGE',
    present: () => existsSync('build/image/kproxy-amd64.oci.tar'), hint: 'run scripts/image/build.sh amd64 (buildah) to build it' },
  // Opt-in (CI sets it): the demo on Debian's LTS kernel in a qemu VM.
  // In the background: the next suite runs beside it, and its output is printed once both are done.
  { name: 'vm (Debian LTS kernel)', cmd: 'bash', args: ['tests/vm/lts-kernel.sh'], parse: parseTap, root: true, optIn: 'KPROXY_TEST_VM', background: true },
  { name: 'k8s watch drops (real kube-apiserver)', cmd: 'npx', args: ['ava', '--tap', '--serial', 'tests/k8s/source.test.ts', '--match', WATCH_DROP], parse: parseTap, root: true, optIn: 'KPROXY_TEST_K8S',
    present: () => existsSync('tests/k8s/bin/kube-apiserver'), hint: 'run scripts/build-k8s.sh (needs Go) to build it' },
];

function parseCargo(out) {
  let passed = 0;
  let failed = 0;
  for (const m of out.matchAll(/test result: \w+\. (\d+) passed; (\d+) failed/g)) {
    passed += Number(m[1]);
    failed += Number(m[2]);
  }
  return { passed, failed };
}

function parseTap(out) {
  const num = (re) => Number(re.exec(out)?.[1] ?? 0);
  return { passed: num(/^# pass (\d+)/m), failed: num(/^# fail (\d+)/m) };
}

/** A failed TAP test's block (its logs and assertion), shortened: repeated at the end of the run,
 * where a reader of a truncated CI log still sees why it failed. */
function tapFailures(out) {
  const blocks = [];
  const lines = out.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!/^not ok \d+/.test(lines[i])) continue;
    let end = i + 1;
    while (end < lines.length && !/^(ok|not ok) \d+|^1\.\.\d+/.test(lines[end])) end++;
    const block = lines.slice(i, end).filter((l) => !/^#\s+\{"level"/.test(l)).join('\n');
    blocks.push(block.length > 2500 ? `${block.slice(0, 1200)}\n  […]\n${block.slice(-1200)}` : block);
  }
  return blocks;
}

let passed = 0;
let failed = 0;
const failures = [];
const background = [];
const only = process.argv.slice(2);

function finish(s, status, out, seconds) {
  const res = s.parse(out);
  // A suite that exits non-zero without reporting a failure (crash, compile error) still fails.
  if (status !== 0 && res.failed === 0) res.failed = 1;
  console.log(`-- ${s.name}: ${res.passed} passed, ${res.failed} failed (${seconds} s)`);
  if (res.failed) failures.push(`${s.name}:`, ...(s.parse === parseTap ? tapFailures(out) : [`exit status ${status}`]));
  passed += res.passed;
  failed += res.failed;
}

/** Starts a suite with its output in a file (spawnSync would leave a pipe undrained); resolves once it is done. */
function startInBackground(s, env) {
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-test-'));
  const file = join(dir, 'out');
  const fd = openSync(file, 'w');
  const started = Date.now();
  const child = spawn(s.cmd, s.args, { stdio: ['ignore', fd, fd], env });
  closeSync(fd);
  return new Promise((resolve) => {
    const done = (status) => {
      const out = readFileSync(file, 'utf8');
      rmSync(dir, { recursive: true, force: true });
      resolve({ s, status, out, seconds: Math.round((Date.now() - started) / 1000) });
    };
    child.on('error', (err) => done(`${err.message}`));
    child.on('close', (code) => done(code ?? -1));
  });
}

for (const s of suites) {
  if (only.length && !only.some((o) => s.name.startsWith(o))) continue;
  if (s.optIn && !process.env[s.optIn] && !s.present?.()) {
    console.log(`\n== ${s.name}: skipped (${s.hint ?? `set ${s.optIn}=1 to run it`})`);
    continue;
  }
  if (s.root && process.getuid?.() !== 0) {
    console.log(`\n== ${s.name}: needs root (network namespaces, nftables); counted as 1 failure`);
    failed += 1;
    continue;
  }
  // The load before a suite starts: a busy machine (a stray process from an earlier step) shows here.
  console.log(`\n== ${s.name}${s.background ? ', in the background' : ''} (load average ${loadavg().map((l) => l.toFixed(2)).join(' ')})`);
  const env = { ...process.env, ...s.env };
  if (s.background) {
    background.push(startInBackground(s, env));
    continue;
  }
  const started = Date.now();
  const r = spawnSync(s.cmd, s.args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 << 20, env });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  process.stdout.write(out);
  finish(s, r.status, out, Math.round((Date.now() - started) / 1000));
}
for (const { s, status, out, seconds } of await Promise.all(background)) {
  console.log(`\n== ${s.name}, from the background`);
  process.stdout.write(out);
  finish(s, status, out, seconds);
}
if (failures.length) console.log(`\n== failures, again (agent log lines left out)\n${failures.join('\n')}`);
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
