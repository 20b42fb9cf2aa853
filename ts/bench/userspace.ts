// npm run bench -- --mode userspace [--seconds N]: userspace mode beside HAProxy in TCP mode and
// beside nftables mode (kernel NAT), in one run on one set of throwaway namespaces (issue 10, §4):
// bulk TCP throughput (iperf3, 1 and 8 streams), new connections per second and the latency a
// proxy adds per request (wrk, one connection per request). It reports ratios, never asserts.
//   client (a pod) 10.244.0.2 ── node 10.244.0.1 / 10.244.i.1 ── backend i 10.244.i.2 (i = 1, 2)
// The contenders take turns in the node, on the Service 10.96.0.10: 80 → both backends' HTTP
// responders (haproxy's `http-request return`), 5201 → backend 1's iperf3 only (its streams
// must reach the server their control connection did). "direct" (client → backend 1, no
// proxy) is the reference for the added latency. The client is a pod, so nftables mode does
// not masquerade it, as in a cluster; each contender has its own backend port, so one's
// TIME_WAITs on the backends never meet the next one's SYNs (dropped as PAWS: 1 s retransmits).
// The bench re-runs itself inside the node, where the proxiers program and listen; the
// client's tools run in the client through `ip netns exec`.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { clusterIPServicePort, readyEndpoint } from '../model/build.js';
import { createProxiers } from '../proxier/registry.js';
import type { Proxier, ProxyMode } from '../proxier/types.js';
import { systemTool } from '../system-tools.js';
import { measureChanges } from './userspace-changes.js';

const IP = systemTool('ip');
const [HAPROXY, IPERF3, WRK] = ['haproxy', 'iperf3', 'wrk'].map(systemTool);
const VIP = '10.96.0.10';
const IPERF_PORT = 5201;
const NODE_IP = '10.244.0.1';
const BACKENDS = ['10.244.1.2', '10.244.2.2'];

/** seconds: each measurement's length. */
/** seconds: per measurement; services: the change-latency program's size (0 skips it); repeat: rounds, medians reported. */
interface Args { seconds: number; services: number; repeat: number }

function parse(argv: string[]): Args {
  const a: Args = { seconds: 5, services: 10_000, repeat: 1 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    const value = inline ?? argv[++i] ?? '';
    if (flag === '--mode') continue;
    const n = Number(value);
    if (flag === '--seconds' && Number.isInteger(n) && n > 0) a.seconds = n;
    else if (flag === '--services' && Number.isInteger(n) && n >= 0) a.services = n;
    else if (flag === '--repeat' && Number.isInteger(n) && n > 0) a.repeat = n;
    else throw new Error(`bad flag ${flag} ${value}; accepted: --mode userspace --seconds N (N > 0) --services N (change latency at N Services; 0 skips) --repeat N (each figure the median of N rounds)`);
  }
  return a;
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

type Names = ReturnType<typeof names>;
const names = (prefix: string) => ({ client: `${prefix}-c`, node: `${prefix}-n`, backends: BACKENDS.map((_, k) => `${prefix}-b${k + 1}`) });
const all = (n: Names) => [n.client, n.node, ...n.backends];

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error}`);
}

function build(n: Names): void {
  const ip = (...args: string[]) => sh(IP, args);
  const sysctl = (ns: string, ...kv: string[]) => sh(IP, ['netns', 'exec', ns, systemTool('sysctl'), '-qw', ...kv]);
  for (const ns of all(n)) ip('netns', 'add', ns), ip('-n', ns, 'link', 'set', 'lo', 'up');
  // A /24 a link, the node's end .1: the client's (a pod's) 10.244.0.0/24, backend i's 10.244.i.0/24.
  [n.client, ...n.backends].forEach((ns, k) => {
    ip('link', 'add', 'eth0', 'netns', ns, 'type', 'veth', 'peer', 'name', `n${k}`, 'netns', n.node);
    ip('-n', n.node, 'addr', 'add', `10.244.${k}.1/24`, 'dev', `n${k}`);
    ip('-n', ns, 'addr', 'add', `10.244.${k}.2/24`, 'dev', 'eth0');
    ip('-n', n.node, 'link', 'set', `n${k}`, 'up');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
    ip('-n', ns, 'route', 'add', 'default', 'via', `10.244.${k}.1`);
  });
  sysctl(n.node, 'net.ipv4.ip_forward=1');
  // A connection per request: tens of thousands of tuples in a few seconds, client and node.
  for (const ns of [n.client, n.node]) sysctl(ns, 'net.ipv4.ip_local_port_range=1024 65535', 'net.ipv4.tcp_tw_reuse=1');
}

/** Kills what is left in the namespaces (all started by this bench) and deletes them. */
function destroy(n: Names): void {
  for (const ns of all(n)) {
    const pids = spawnSync(IP, ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '';
    for (const pid of pids.split(/\s+/).filter(Boolean)) try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
    spawnSync(IP, ['netns', 'del', ns]);
  }
}

const running = new Set<ChildProcess>();
let interrupted = false;

/** Runs `cmd` in `ns` to its end (killed past `timeoutMs`), tracked so that a signal stops it. */
function runIn(ns: string, cmd: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  if (interrupted) return Promise.reject(new Error('interrupted'));
  return new Promise((resolve, reject) => {
    const c = spawn(IP, ['netns', 'exec', ns, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(c);
    let [stdout, stderr] = ['', ''];
    c.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('error', reject);
    c.on('close', (code) => {
      clearTimeout(timer);
      running.delete(c);
      return interrupted ? reject(new Error('interrupted')) : resolve({ code, stdout, stderr });
    });
  });
}

interface Server { child: ChildProcess; stopping: boolean }

/** A long-running server, in `ns` or (undefined) in this, the node's, namespace. */
function serve(ns: string | undefined, cmd: string[]): Server {
  const child = spawn(ns ? IP : cmd[0], ns ? ['netns', 'exec', ns, ...cmd] : cmd.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  const s: Server = { child, stopping: false };
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  child.on('exit', (code) => void (!s.stopping && console.error(`${cmd.join(' ')} exited (${code}): ${stderr.trim()}`)));
  return s;
}

async function stop(s: Server): Promise<void> {
  s.stopping = true;
  if (s.child.exitCode !== null || s.child.signalCode !== null) return;
  const kill = setTimeout(() => s.child.kill('SIGKILL'), 3000);
  await new Promise((resolve) => s.child.once('exit', resolve).kill('SIGTERM'));
  clearTimeout(kill);
}

/** Waits until the client can open a TCP connection to host:port (a listener, or rules, in place). */
async function reachable(client: string, [host, port]: HostPort): Promise<void> {
  const probe = `const [h, p] = process.argv.slice(1), end = Date.now() + 10000;
    (function t() { const s = require('node:net').connect(+p, h, () => (s.destroy(), process.exit(0)));
      s.on('error', () => (s.destroy(), Date.now() > end ? process.exit(1) : setTimeout(t, 100))); })();`;
  const r = await runIn(client, [process.execPath, '-e', probe, host, String(port)], 15000);
  if (r.code !== 0) throw new Error(`${host}:${port} not reachable from the client within 10 s`);
}

async function iperf(client: string, [host, port]: HostPort, streams: number, seconds: number): Promise<number> {
  const r = await runIn(client, [IPERF3, '-c', host, '-p', String(port), '-t', String(seconds), '-P', String(streams), '-J'], (seconds + 20) * 1000);
  let j: { error?: string; end?: { sum_received?: { bits_per_second: number } } } = {};
  try { j = JSON.parse(r.stdout); } catch { /* reported below */ }
  const bps = j.end?.sum_received?.bits_per_second;
  if (r.code !== 0 || j.error || bps === undefined) throw new Error(`iperf3 -P ${streams} to ${host}:${port}: ${j.error ?? (r.stderr.trim() || 'no result')}`);
  return bps / 1e9;
}

const UNIT_MS: Record<string, number> = { us: 1e-3, ms: 1, s: 1000 };

/**
 * wrk, one connection per request, `conns` at a time. Its latency runs from the request's write
 * to the response (connect excluded). Saturated (32) it measures connections per second; one at
 * a time it measures what the proxy adds to a request, unhidden by queueing.
 */
async function wrk(client: string, [host, port]: HostPort, seconds: number, conns = 32): Promise<{ cps: number; p50: number; p99: number; errors: number }> {
  const r = await runIn(client, [WRK, `-t${Math.min(2, conns)}`, `-c${conns}`, `-d${seconds}s`, '-H', 'Connection: close', '--latency', `http://${host}:${port}/`], (seconds + 20) * 1000);
  const out = r.stdout;
  const pct = (p: number) => ((m) => (m ? Number(m[1]) * UNIT_MS[m[2]] : NaN))(new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)\\s*$`, 'm').exec(out));
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (r.code !== 0 || !rps) throw new Error(`wrk to ${host}:${port}: ${r.stderr.trim() || out.trim() || 'no result'}`);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)?.slice(1) ?? [];
  const errors = [...sock, /Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? '0'].reduce((s, x) => s + Number(x), 0);
  return { cps: Number(rps[1]), p50: pct(50), p99: pct(99), errors };
}

// maxconn: haproxy needs two descriptors a connection, under this machine's limit of 20000.
const haproxyConfig = (mode: string, threads: number, body: string[]) =>
  [`global\n  nbthread ${threads}\n  maxconn 8000\ndefaults\n  mode ${mode}`, ...['connect 5s', 'client 30s', 'server 30s'].map((t) => `  timeout ${t}`), ...body, ''].join('\n');
const backendConfig = (addr: string) => haproxyConfig('http', 1, [
  'frontend ok', ...CONTENDERS.map((c) => `  bind ${addr}:${c.port}`), '  http-request return status 200 content-type text/plain string ok',
]);
// The contender: TCP mode, round robin over the same backends, two threads (the machine's
// cores). No splice options: HAProxy copies through userspace, as kproxy's proxy does.
const nodeConfig = (port: number) => haproxyConfig('tcp', 2, [
  'listen http', `  bind ${VIP}:80`, '  balance roundrobin', ...BACKENDS.map((b, k) => `  server b${k + 1} ${b}:${port}`),
  'listen iperf', `  bind ${VIP}:${IPERF_PORT}`, `  server b1 ${BACKENDS[0]}:${IPERF_PORT}`,
]);

type Teardown = () => Promise<void>;

/** HAProxy in the node, bound on the Service address, which it needs as a local one (on lo). */
async function startHaproxy(dir: string, port: number): Promise<Teardown> {
  const cfg = join(dir, 'node.cfg');
  writeFileSync(cfg, nodeConfig(port));
  sh(IP, ['addr', 'add', `${VIP}/32`, 'dev', 'lo']);
  const s = serve(undefined, [HAPROXY, '-db', '-f', cfg]);
  return async () => {
    await stop(s);
    spawnSync(IP, ['addr', 'del', `${VIP}/32`, 'dev', 'lo']);
  };
}

/** kproxy's proxier of `mode` in the node, as the agent drives it; a string: why it cannot run. */
async function startKproxy(mode: ProxyMode, port: number): Promise<Teardown | string> {
  const p: Proxier | string = await createProxiers(mode, ['IPv4'], {
    masqueradeAll: false, masqueradeBit: 14, fake: false, registry: new Registry(), logger: pino({ level: 'silent' }),
    localDetectors: { IPv4: { mode: 'ClusterCIDR', cidr: '10.244.0.0/16' } },
  }).then(([x]) => x, message);
  if (typeof p === 'string') return p;
  const web = { namespace: 'bench', name: 'web', protocol: 'TCP' as const, clusterIP: VIP };
  try {
    await p.prepare?.();
    const r = await p.sync({
      full: true, deletes: [], node: { nodePortIPs: [], nodeIPs: [NODE_IP] },
      upserts: [
        clusterIPServicePort({ ...web, portName: 'http', port: 80, endpoints: BACKENDS.map((b) => readyEndpoint(b, port)) }),
        clusterIPServicePort({ ...web, portName: 'iperf', port: IPERF_PORT, endpoints: [readyEndpoint(BACKENDS[0], IPERF_PORT)] }),
      ],
    });
    if (r.rejected.length > 0) throw new Error(`rejected ${r.rejected[0].key}: ${r.rejected[0].reason}`);
  } catch (e) {
    await p.cleanup().catch(() => undefined);
    throw e;
  }
  return async () => void (await p.cleanup());
}

interface Figures { bulk1: number; bulk8: number; cps: number; p50: number; p99: number; errors: number }
type Outcome = Figures | { skipped: string };

type HostPort = [string, number];
/** port: its HTTP port on the backends; start: its teardown, or why it cannot run. */
interface Contender { name: string; port: number; http: HostPort; iperf: HostPort; start(dir: string, port: number): Promise<Teardown | string> }

const onVip = { http: [VIP, 80] as HostPort, iperf: [VIP, IPERF_PORT] as HostPort };
// In turn; nftables last, so that its conntrack and NAT hooks are not in the node for the others.
const CONTENDERS: Contender[] = [
  { name: 'direct', port: 8080, http: [BACKENDS[0], 8080], iperf: [BACKENDS[0], IPERF_PORT], start: async () => async () => undefined },
  { name: 'haproxy', port: 8081, ...onVip, start: startHaproxy },
  { name: 'userspace', port: 8082, ...onVip, start: (_, port) => startKproxy('userspace', port) },
  { name: 'nftables', port: 8083, ...onVip, start: (_, port) => startKproxy('nftables', port) },
];

async function contend(c: Contender, n: Names, a: Args, dir: string): Promise<Outcome> {
  console.error(`${c.name}...`);
  const teardown = await c.start(dir, c.port).catch((e: unknown) => `could not start: ${message(e)}`);
  if (typeof teardown === 'string') return { skipped: teardown };
  try {
    await reachable(n.client, c.http);
    await wrk(n.client, c.http, 1); // warm-up: neighbours, the proxy's first connections
    const bulk1 = await iperf(n.client, c.iperf, 1, a.seconds);
    const bulk8 = await iperf(n.client, c.iperf, 8, a.seconds);
    const busy = await wrk(n.client, c.http, a.seconds);
    const light = await wrk(n.client, c.http, a.seconds, 1);
    return { bulk1, bulk8, cps: busy.cps, p50: light.p50, p99: light.p99, errors: busy.errors + light.errors };
  } catch (e) {
    if (interrupted) throw e;
    return { skipped: `failed: ${message(e)}` };
  } finally {
    await teardown();
  }
}

/** Each figure's median over the rounds; a round that was skipped makes the contender skipped. */
function median(outcomes: Outcome[]): Outcome {
  const skipped = outcomes.find((o): o is { skipped: string } => 'skipped' in o);
  if (skipped) return skipped;
  const figs = outcomes as Figures[];
  const mid = (k: keyof Figures) => [...figs.map((f) => f[k])].sort((x, y) => x - y)[Math.floor(figs.length / 2)];
  return { bulk1: mid('bulk1'), bulk8: mid('bulk8'), cps: mid('cps'), p50: mid('p50'), p99: mid('p99'), errors: figs.reduce((s, f) => s + f.errors, 0) };
}

const ROWS: [string, (f: Figures, direct?: Figures) => number, number][] = [
  ['bulk TCP, 1 stream (Gbit/s)', (f) => f.bulk1, 2],
  ['bulk TCP, 8 streams (Gbit/s)', (f) => f.bulk8, 2],
  ['new connections/s', (f) => f.cps, 0],
  ['request p50 (ms)', (f) => f.p50, 3],
  ['request p99 (ms)', (f) => f.p99, 3],
  ['added p50 (ms)', (f, d) => (d ? f.p50 - d.p50 : NaN), 3],
  ['added p99 (ms)', (f, d) => (d ? f.p99 - d.p99 : NaN), 3],
];
const SHOWN = ['direct', 'nftables', 'haproxy', 'userspace'];

function report(results: Map<string, Outcome>, a: Args): string[] {
  const fig = (name: string) => { const r = results.get(name); return r && !('skipped' in r) ? r : undefined; };
  const [d, nf, hp, us] = SHOWN.map(fig);
  const ratio = (x?: number, y?: number) => (x !== undefined && y !== undefined && x > 0 && y > 0 ? `${(x / y).toFixed(2)}x` : '-');
  const cols = [...SHOWN, 'us/haproxy', 'us/nftables'];
  const lines = [`kproxy bench, userspace mode: ${a.seconds} s per measurement, median of ${a.repeat} round(s); iperf3 -P 1 and -P 8; wrk -t2 -c32 (connections/s) and -t1 -c1 (latency), Connection: close`, `${''.padEnd(30)}${cols.map((c) => c.padStart(12)).join('')}`];
  for (const [label, get, digits] of ROWS) {
    const v = (f?: Figures) => (f ? get(f, d) : undefined);
    const cells = [d, nf, hp, us].map((f) => { const x = v(f); return x === undefined || Number.isNaN(x) ? '-' : x.toFixed(digits); });
    lines.push(`${label.padEnd(30)}${[...cells, ratio(v(us), v(hp)), ratio(v(us), v(nf))].map((c) => c.padStart(12)).join('')}`);
  }
  for (const [name, r] of results) {
    if ('skipped' in r) lines.push(`${name}: not measured: ${r.skipped}`);
    else if (r.errors > 0) lines.push(`${name}: wrk counted ${r.errors} socket errors or non-2xx responses`);
  }
  const check = (label: string, ok: boolean | undefined) => `  ${label}: ${ok === undefined ? 'not measured' : ok ? 'met' : 'MISSED'}`;
  lines.push(
    'targets (this run\'s figures, on a shared machine: rerun before reading much into a near miss):',
    check('bulk throughput, 1 and 8 streams, >= haproxy', us && hp && us.bulk1 >= hp.bulk1 && us.bulk8 >= hp.bulk8),
    check('new connections/s >= haproxy', us && hp && us.cps >= hp.cps),
    // Both minus the same direct figures: comparing the totals compares the added latencies.
    check('added p50 and p99 <= haproxy\'s', us && hp && us.p50 <= hp.p50 && us.p99 <= hp.p99),
    check('bulk throughput within 2x of kernel NAT (nftables), 1 and 8 streams', us && nf && 2 * us.bulk1 >= nf.bulk1 && 2 * us.bulk8 >= nf.bulk8),
  );
  return lines;
}

/** In the node namespace: the backends, then each contender in turn. */
async function inner(a: Args): Promise<void> {
  const n = names(process.env.KPROXY_BENCH_NS ?? '');
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-usb-'));
  const onSignal = () => void ((interrupted = true), [...running].forEach((c) => c.kill('SIGTERM')));
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
  const servers: Server[] = [];
  const results = new Map<string, Outcome>();
  try {
    // iperf3 first: it listens at once, well before the HTTP responders answer the probes
    // (a bare probe connection would cost iperf3 a test).
    servers.push(serve(n.backends[0], [IPERF3, '-s', '-B', BACKENDS[0], '-p', String(IPERF_PORT)]));
    BACKENDS.forEach((b, k) => {
      writeFileSync(join(dir, `b${k + 1}.cfg`), backendConfig(b));
      servers.push(serve(n.backends[k], [HAPROXY, '-db', '-f', join(dir, `b${k + 1}.cfg`)]));
    });
    for (const b of BACKENDS) await reachable(n.client, [b, 8080]);
    // Rounds interleave the contenders, so a slow spell of the machine hits them all alike.
    const rounds = new Map<string, Outcome[]>();
    for (let r = 0; r < a.repeat; r++) {
      for (const c of CONTENDERS) rounds.set(c.name, [...(rounds.get(c.name) ?? []), await contend(c, n, a, dir)]);
    }
    for (const [name, outcomes] of rounds) results.set(name, median(outcomes));
  } finally {
    await Promise.all(servers.map(stop));
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(report(results, a).join('\n'));
  // Last, alone in the node: the change latency at scale.
  if (a.services > 0) console.log((await measureChanges(a.services, 10, 500)).join('\n'));
}

/** Builds the namespaces, runs the bench inside the node, and always removes them. */
async function outer(): Promise<number> {
  const prefix = `kproxy-usb-${process.pid}`;
  const n = names(prefix);
  let child: ChildProcess | undefined;
  const forward = (sig: NodeJS.Signals) => void child?.kill(sig);
  process.on('SIGINT', forward).on('SIGTERM', forward);
  try {
    build(n);
    const env = { ...process.env, KPROXY_BENCH_INNER: '1', KPROXY_BENCH_NS: prefix };
    const c = (child = spawn(IP, ['netns', 'exec', n.node, process.execPath, ...process.execArgv, process.argv[1], ...process.argv.slice(2)], { stdio: 'inherit', env }));
    return await new Promise<number>((resolve, reject) => c.on('error', reject).on('exit', (code, sig) => resolve(code ?? (sig ? 130 : 1))));
  } finally {
    process.off('SIGINT', forward).off('SIGTERM', forward);
    destroy(n);
  }
}

export async function runUserspaceBench(argv: string[]): Promise<void> {
  try {
    const a = parse(argv);
    if (process.getuid?.() !== 0) throw new Error('kproxy bench needs root: it creates network namespaces');
    const missing = [HAPROXY, IPERF3, WRK].filter((t) => !t.includes('/'));
    if (missing.length > 0) throw new Error(`--mode userspace needs ${missing.join(', ')} (Debian: apt-get install haproxy iperf3 wrk)`);
    if (process.env.KPROXY_BENCH_INNER === '1') await inner(a);
    else process.exitCode = await outer();
  } catch (e) {
    console.error(message(e));
    process.exitCode = 1;
  }
}
