// The command line as a new user meets it: help and version, usage errors, closed pipes,
// plan's warnings, --write-config-to, and the start without CAP_NET_ADMIN. Each runs
// ts/cli.ts in a child process (no kernel is programmed: plan uses the fakes).
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../ts/config/index.js';
import { systemTool } from '../../ts/system-tools.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const CLI = [process.execPath, '--import', 'tsx', 'ts/cli.ts'];
const VERSION = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version as string;
const tmp = mkdtempSync(join(tmpdir(), 'kproxy-cli-'));

function kproxy(args: string[], timeout = 60_000) {
  return spawnSync(CLI[0], [...CLI.slice(1), ...args], { cwd: REPO, encoding: 'utf8', timeout });
}

/** Runs kproxy into a pipe whose reader is already gone (`kproxy … | true`); its exit status. */
function intoClosedPipe(args: string[]) {
  const cmd = `${CLI.map((a) => `'${a}'`).join(' ')} ${args.map((a) => `'${a}'`).join(' ')} 2>${join(tmp, 'stderr')} | true; echo "\${PIPESTATUS[0]}"`;
  const r = spawnSync('bash', ['-c', cmd], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
  return { status: Number(r.stdout.trim()), stderr: readFileSync(join(tmp, 'stderr'), 'utf8') };
}

test('--version: kproxy\'s version and the kube-proxy release it follows; =raw as a struct', (t) => {
  let r = kproxy(['--version']);
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout, `kproxy v${VERSION} (kube-proxy v1.37 compatible)\n`);
  r = kproxy(['--version=raw', '--config=/nonexistent']);
  t.is(r.status, 0, 'answered before the config file is read, as upstream');
  t.regex(r.stdout, new RegExp(`^version\\.Info\\{Major:"\\d+", Minor:"\\d+", GitVersion:"v${VERSION.replaceAll('.', '\\.')}", KubeProxyCompatible:"v1\\.37"`));
  r = kproxy(['--version=sometimes']);
  t.is(r.status, 2);
});

const HELPS: Array<[string[], RegExp]> = [
  [['--help'], /^kproxy: a Kubernetes service proxy[\s\S]*Commands:[\s\S]*\n  plan /],
  [['help'], /^kproxy: a Kubernetes service proxy/],
  [['help', 'plan'], /^Usage: kproxy plan \[flags\]/],
  [['plan', '--help'], /^Usage: kproxy plan \[flags\]/],
  [['plan', '-h', '--bogus'], /^Usage: kproxy plan/],
  [['trace', '--help'], /^Usage: kproxy trace \[flags\] --from IP/],
  [['help', 'trace'], /^Usage: kproxy trace/],
  [['help', 'status'], /^Usage: kproxy status/],
  [['status', '--help'], /^Usage: kproxy status/],
  [['help', 'help'], /^Usage: kproxy help \[command\]/],
];
for (const [args, expected] of HELPS) {
  test(`kproxy ${args.join(' ')} prints its own help`, (t) => {
    const r = kproxy(args);
    t.is(r.status, 0, r.stderr);
    t.regex(r.stdout, expected);
  });
}

test('kproxy help of an unknown command is a usage error', (t) => {
  const r = kproxy(['help', 'frobnicate']);
  t.is(r.status, 2);
  t.regex(r.stderr, /unknown command "frobnicate"/);
});

const USAGE_ERRORS: Array<[string[], string]> = [
  [['--bogus'], 'kproxy --help'],
  [['plan', '--bogus'], 'kproxy plan --help'],
  [['--proxy-mode=nope'], 'kproxy --help'],
];
for (const [args, hint] of USAGE_ERRORS) {
  test(`kproxy ${args.join(' ')}: the error once, and the hint "${hint}" once`, (t) => {
    const r = kproxy(args);
    t.is(r.status, 2);
    t.is(r.stderr.split('--help').length - 1, 1, r.stderr);
    t.true(r.stderr.includes(`Run '${hint}' for the accepted flags.`), r.stderr);
  });
}

const PIPED: string[][] = [
  ['--help'],
  ['plan', '--manifests', 'examples/demo', '--cluster-cidr', '10.244.0.0/16'],
  ['help', 'plan'],
];
for (const args of PIPED) {
  test(`kproxy ${args.join(' ')} | true: exit 0, no EPIPE`, (t) => {
    const r = intoClosedPipe(args);
    t.is(r.status, 0, r.stderr);
    t.false(r.stderr.includes('EPIPE'), r.stderr);
  });
}

/** The demo's manifests with the http port made SCTP: a feature userspace mode does not proxy. */
function sctpManifests(): string {
  const dir = join(tmp, 'sctp');
  cpSync(join(REPO, 'examples', 'demo'), dir, { recursive: true });
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    writeFileSync(p, readFileSync(p, 'utf8').replaceAll('protocol: TCP', 'protocol: SCTP'));
  }
  return dir;
}

test('plan says what the mode does not program, beside the rules and on stderr', (t) => {
  const r = kproxy(['plan', '--proxy-mode', 'userspace', '--manifests', sctpManifests(), '--cluster-cidr', '10.244.0.0/16']);
  t.is(r.status, 0, r.stderr);
  t.true(r.stdout.startsWith('# warning: demo/web uses SCTP, which userspace mode does not program (its SCTP ports are not proxied in this mode)\n'), r.stdout.slice(0, 300));
  t.regex(r.stderr, /"feature":"SCTP"/);
  // The mode that has it says nothing.
  const nft = kproxy(['plan', '--manifests', sctpManifests(), '--cluster-cidr', '10.244.0.0/16']);
  t.false(nft.stdout.includes('# warning:'));
});

test('no --cluster-cidr: upstream\'s warning that off-cluster traffic is not masqueraded', (t) => {
  const r = kproxy(['plan', '--manifests', 'examples/demo']);
  t.is(r.status, 0, r.stderr);
  const warning = r.stderr.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((l) => l.msg.startsWith('clusterCIDR not specified'));
  t.truthy(warning, r.stderr);
  t.is(warning.level, 40);
  t.regex(warning.msg, /^clusterCIDR not specified, unable to distinguish between internal and external traffic: .*--cluster-cidr/);
  const given = kproxy(['plan', '--manifests', 'examples/demo', '--cluster-cidr', '10.244.0.0/16']);
  t.false(given.stderr.includes('clusterCIDR not specified'));
});

test('--logging-format text: klog-like lines on stderr for plan', (t) => {
  const r = kproxy(['plan', '--manifests', 'examples/demo', '--logging-format=text']);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /^W\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ kproxy\] "clusterCIDR not specified/m);
});

test('--write-config-to: the effective configuration as YAML, which loads back to the same', (t) => {
  const file = join(tmp, 'written.yaml');
  const args = ['--proxy-mode=iptables', '--cluster-cidr=10.244.0.0/16', '--conntrack-min=1000', '--oom-score-adj=-500', '--feature-gates=WatchListClient=false'];
  const r = kproxy([...args, `--write-config-to=${file}`]);
  t.is(r.status, 0, r.stderr);
  const text = readFileSync(file, 'utf8');
  t.regex(text, /^apiVersion: kubeproxy\.config\.k8s\.io\/v1alpha1\nkind: KubeProxyConfiguration\n/);
  const fromFlags = loadConfig(args, { hostname: () => 'x' });
  const fromFile = loadConfig(['--config', file], { hostname: () => 'x' });
  t.deepEqual(fromFile.raw, fromFlags.raw);
  t.like(fromFile.raw, { mode: 'iptables', oomScoreAdj: -500, featureGates: { WatchListClient: false }, conntrack: { min: 1000, maxPerCore: 32768 } });
});

test('without CAP_NET_ADMIN the start fails at once, naming it (no retry loop)', (t) => {
  const setpriv = systemTool('setpriv');
  if (process.getuid?.() !== 0 || !existsSync(setpriv)) return t.pass('needs root and setpriv to drop the capability');
  const r = spawnSync(setpriv, ['--inh-caps=-net_admin', '--bounding-set=-net_admin', ...CLI, '--manifests', 'examples/demo',
    '--metrics-bind-address=', '--healthz-bind-address='], { cwd: REPO, encoding: 'utf8', timeout: 30_000 });
  t.is(r.status, 1, `${r.stdout}${r.stderr}`);
  const fatal = JSON.parse(r.stdout.trim().split('\n').pop()!);
  t.is(fatal.level, 60);
  t.regex(fatal.err, /needs CAP_NET_ADMIN/);
});

test('--cleanup says "Deleted" only for rules that were there', async (t) => {
  const { logCleanup } = await import('../../ts/commands/run.js');
  const { createLogger } = await import('../../ts/log.js');
  const { captureLines } = await import('../helpers/log-capture.js');
  const out = captureLines();
  const logger = createLogger(0, out.stream);
  logCleanup(logger, 'nftables', 'IPv4', true);
  logCleanup(logger, 'nftables', 'IPv6', false);
  logCleanup(logger, 'ipvs', 'IPv4', undefined);
  t.deepEqual(out.lines.map((l) => l.msg), [
    'Deleted the rules of this mode',
    'No rules of this mode to delete',
    'Cleaned up the rules of this mode (whether any were there is not known)',
  ]);
});
