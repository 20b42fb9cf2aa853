// `npm run soak -- --minutes N [--restart-every-s S] [--mode M] [--json]`: the agent (in mode M:
// nftables, the default, iptables or userspace; IPVS needs the VM's kernel) on a node namespace
// for N minutes (default 10) while 20 Services' endpoints churn (one rewrite every 250 ms),
// new connections flow without pause to four of them, and the agent is restarted every S
// seconds (default 180). Samples the agent's RSS and open fds every 5 s, and reports them,
// sync duration and event-to-rules percentiles, failed connections and drift repairs, against
// the goals: RSS flat within 5% after warm-up, 0 failed connections, no fd growth. Root.
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLUSTER_CIDRS, createTopology, REPO_ROOT, waitFor, type NsProcess, type Topology } from '../demo/topology.js';
import type { StatusDoc, SyncRecord } from '../status/types.js';

const SERVICES = 20;
const TRAFFIC_SERVICES = 4;
const CHURN_MS = 250;
const SAMPLE_MS = 5000;
/** What an agent instance may do before its memory counts: the first syncs, V8's warm-up. */
const WARMUP_MS = 30_000;
const NODE = 'soak-node';

export type SoakMode = 'nftables' | 'iptables' | 'userspace';
const MODES: readonly SoakMode[] = ['nftables', 'iptables', 'userspace'];

export interface SoakOptions {
  minutes: number;
  restartEveryS: number;
  mode?: SoakMode;
}

/** Per mode: the command that lists what is programmed, how a ClusterIP shows in it, and the drift counter. */
const PROGRAMMED: Record<SoakMode, { cmd: string[]; shows: (ip: string) => string; drift: string }> = {
  nftables: { cmd: ['nft', 'list', 'map', 'ip', 'kube-proxy', 'service-ips'], shows: (a) => `${a} . tcp . 80 `, drift: 'kproxy_nftables_drift_repairs_total' },
  iptables: { cmd: ['iptables-nft-save', '-t', 'nat'], shows: (a) => `-d ${a}/32 `, drift: '' },
  userspace: { cmd: ['ss', '-Hltn'], shows: (a) => `${a}:80 `, drift: 'kproxy_userspace_drift_repairs_total' },
};

interface Sample { atS: number; instance: number; rssMiB: number; fds: number }

export interface SoakReport {
  mode: SoakMode;
  minutes: number;
  restarts: number;
  connections: number;
  failed: number;
  failures: Record<string, number>;
  churnWrites: number;
  samples: Sample[];
  /** Per agent instance: RSS change from the first sample after warm-up to the last, in %. */
  rssGrowthPct: number[];
  /** Per instance: open fds, last sample minus first after warm-up. */
  fdGrowth: number[];
  syncMs: { p50: number; p99: number; max: number; count: number };
  eventToRulesMs: { p50: number; p99: number; max: number; count: number };
  driftRepairs: number;
}

const ip = (i: number) => `10.96.1.${10 + i}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function service(i: number) {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name: `s${i}`, namespace: 'soak' },
    spec: { type: 'ClusterIP', clusterIP: ip(i), clusterIPs: [ip(i)], ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] } };
}

function slice(i: number, addresses: string[]) {
  return { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
    metadata: { name: `s${i}-v4`, namespace: 'soak', labels: { 'kubernetes.io/service-name': `s${i}` } },
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: true, serving: true, terminating: false }, nodeName: NODE })) };
}

function percentiles(values: number[]) {
  const v = [...values].sort((a, b) => a - b);
  const at = (q: number) => (v.length ? v[Math.min(v.length - 1, Math.floor(q * v.length))] : 0);
  return { p50: at(0.5), p99: at(0.99), max: v[v.length - 1] ?? 0, count: v.length };
}

function startAgent(topo: Topology, dir: string, mode: SoakMode): NsProcess {
  return topo.spawnIn(topo.node, process.execPath, ['--max-semi-space-size=2', join(REPO_ROOT, 'bin', 'kproxy.js'),
    '--proxy-mode', mode, '--manifests', dir, '--cluster-cidr', CLUSTER_CIDRS.join(','), '--hostname-override', NODE,
    '--metrics-bind-address', '127.0.0.1:10249', '--healthz-bind-address', '0.0.0.0:10256']);
}

async function stopAgent(agent: NsProcess): Promise<void> {
  if (agent.exitCode !== null) return;
  agent.kill('SIGTERM');
  const timer = setTimeout(() => agent.kill('SIGKILL'), 5000);
  await agent.exited;
  clearTimeout(timer);
}

async function fetchIn(topo: Topology, path: string): Promise<string> {
  const r = await topo.exec(topo.node, ['curl', '-sf', '--max-time', '5', `http://127.0.0.1:10249${path}`], { allowFailure: true });
  return r.code === 0 ? r.stdout : '';
}

export async function soak(opts: SoakOptions, log: (line: string) => void = () => {}): Promise<SoakReport> {
  const mode = opts.mode ?? 'nftables';
  const topo = await createTopology({ backends: 3, name: 'soak' });
  const root = await mkdtemp(join(tmpdir(), 'kproxy-soak-'));
  const dir = join(root, 'manifests');
  let agent: NsProcess | undefined;
  try {
    await mkdir(dir);
    const put = async (file: string, obj: object) => {
      await writeFile(join(root, file), JSON.stringify(obj));
      await rename(join(root, file), join(dir, file));
    };
    const backends = topo.backends.map((b) => b.v4);
    await put('node.json', { apiVersion: 'v1', kind: 'Node', metadata: { name: NODE, labels: { 'kubernetes.io/hostname': NODE } } });
    for (let i = 0; i < SERVICES; i++) {
      await put(`s${i}.json`, service(i));
      await put(`s${i}-v4.json`, slice(i, backends));
    }
    const report: SoakReport = { mode, minutes: opts.minutes, restarts: 0, connections: 0, failed: 0, failures: {}, churnWrites: 0, samples: [],
      rssGrowthPct: [], fdGrowth: [], syncMs: percentiles([]), eventToRulesMs: percentiles([]), driftRepairs: 0 };
    const syncs = new Map<string, SyncRecord>();
    let instance = 0;
    const begin = Date.now();
    const end = begin + opts.minutes * 60_000;
    // The last Service's address in what the mode programs (a map element, a rule, a listener).
    const ready = async () => {
      await waitFor('the soak Services programmed', async () => {
        const m = await topo.exec(topo.node, PROGRAMMED[mode].cmd, { allowFailure: true });
        return m.stdout.includes(PROGRAMMED[mode].shows(ip(SERVICES - 1)));
      }, { timeoutMs: 60_000 });
    };
    const drift = (metrics: string) => {
      if (!PROGRAMMED[mode].drift) return;
      for (const m of metrics.matchAll(new RegExp(`^${PROGRAMMED[mode].drift}\\{[^}]*\\} (\\d+)$`, 'gm'))) report.driftRepairs += Number(m[1]);
    };
    agent = startAgent(topo, dir, mode);
    await ready();
    let running = true;

    // Connections without pause, to the first few Services (their endpoints never go empty).
    const traffic = (async () => {
      while (running) {
        const results = await topo.tcpRequests(topo.client, ip(Math.floor(Math.random() * TRAFFIC_SERVICES)), 80, { count: 50, intervalMs: 2, timeoutMs: 3000 });
        for (const r of results) {
          report.connections++;
          if (!r.ok) {
            report.failed++;
            report.failures[r.error] = (report.failures[r.error] ?? 0) + 1;
          }
        }
      }
    })();
    // Endpoint churn: a random non-empty subset for the trafficked ones, any subset for the rest.
    const churn = (async () => {
      while (running) {
        const i = Math.floor(Math.random() * SERVICES);
        let chosen = backends.filter(() => Math.random() < 0.6);
        if (i < TRAFFIC_SERVICES && chosen.length === 0) chosen = [backends[Math.floor(Math.random() * backends.length)]];
        await put(`s${i}-v4.json`, slice(i, chosen));
        report.churnWrites++;
        await sleep(CHURN_MS);
      }
    })();

    let lastRestart = Date.now();
    while (Date.now() < end) {
      await sleep(Math.min(SAMPLE_MS, Math.max(0, end - Date.now())));
      if (agent.exitCode !== null) throw new Error(`the agent exited (${agent.exitCode}):\n${agent.output().slice(-2000)}`);
      const pid = agent.pid!;
      const rssKb = Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
      const sample = { atS: Math.round((Date.now() - begin) / 1000), instance, rssMiB: Math.round(rssKb / 102.4) / 10, fds: readdirSync(`/proc/${pid}/fd`).length };
      report.samples.push(sample);
      const doc = await fetchIn(topo, '/kproxy/status.json');
      if (doc) for (const s of (JSON.parse(doc) as StatusDoc).syncs) syncs.set(`${instance}/${s.at}/${s.family}`, s);
      log(`${sample.atS}s agent#${instance} rss ${sample.rssMiB} MiB fds ${sample.fds} connections ${report.connections} failed ${report.failed}`);
      if (Date.now() - lastRestart >= opts.restartEveryS * 1000 && end - Date.now() > WARMUP_MS) {
        drift(await fetchIn(topo, '/metrics'));
        await stopAgent(agent);
        agent = startAgent(topo, dir, mode);
        instance++;
        report.restarts++;
        lastRestart = Date.now();
        log(`restarted the agent (#${instance})`);
      }
    }
    drift(await fetchIn(topo, '/metrics'));
    running = false;
    await Promise.all([traffic, churn]);

    for (let k = 0; k <= instance; k++) {
      const mine = report.samples.filter((s) => s.instance === k);
      const warm = mine.filter((s) => s.atS * 1000 - (mine[0]?.atS ?? 0) * 1000 >= WARMUP_MS);
      if (warm.length < 2) continue;
      report.rssGrowthPct.push(Math.round(((warm[warm.length - 1].rssMiB - warm[0].rssMiB) / warm[0].rssMiB) * 1000) / 10);
      report.fdGrowth.push(warm[warm.length - 1].fds - warm[0].fds);
    }
    const all = [...syncs.values()].filter((s) => s.ok);
    report.syncMs = percentiles(all.map((s) => s.durationMs));
    report.eventToRulesMs = percentiles(all.flatMap((s) => (s.eventLatencyMs === undefined ? [] : [s.eventLatencyMs])));
    return report;
  } finally {
    if (agent) await stopAgent(agent);
    await topo.destroy();
    await rm(root, { recursive: true, force: true });
  }
}

function goals(r: SoakReport): string[] {
  const rss = Math.max(0, ...r.rssGrowthPct);
  const fds = Math.max(0, ...r.fdGrowth);
  return [
    `RSS growth after warm-up (max over ${r.rssGrowthPct.length} agents): ${rss}% (goal ≤ 5%) ${rss <= 5 ? 'met' : 'MISSED'}`,
    `failed connections: ${r.failed} of ${r.connections} (goal 0) ${r.failed === 0 ? 'met' : 'MISSED'}`,
    `fd growth after warm-up: ${fds} (goal 0, ±2 for sockets in flight) ${fds <= 2 ? 'met' : 'MISSED'}`,
  ];
}

async function main(argv: string[]): Promise<number> {
  const get = (flag: string, dflt: number) => {
    const at = argv.indexOf(flag);
    return at >= 0 ? Number(argv[at + 1]) : dflt;
  };
  const modeAt = argv.indexOf('--mode');
  const mode = (modeAt >= 0 ? argv[modeAt + 1] : 'nftables') as SoakMode;
  const opts = { minutes: get('--minutes', 10), restartEveryS: get('--restart-every-s', 180), mode };
  if (!(opts.minutes > 0) || !(opts.restartEveryS > 0) || !MODES.includes(mode)) {
    console.error(`usage: npm run soak -- [--minutes N] [--restart-every-s S] [--mode ${MODES.join('|')}] [--json]`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    console.error('the soak needs root (network namespaces, nftables)');
    return 1;
  }
  const r = await soak(opts, argv.includes('--json') ? () => {} : (l) => console.log(l));
  if (argv.includes('--json')) console.log(JSON.stringify(r));
  else {
    console.log(`\n${r.mode} mode, ${r.minutes} min, ${r.restarts} restarts, ${r.churnWrites} endpoint rewrites, ${r.connections} connections`);
    console.log(`sync p50 ${r.syncMs.p50.toFixed(2)} ms, p99 ${r.syncMs.p99.toFixed(2)} ms (${r.syncMs.count} syncs); event to rules p50 ${r.eventToRulesMs.p50.toFixed(1)} ms, p99 ${r.eventToRulesMs.p99.toFixed(1)} ms; drift repairs ${r.driftRepairs}`);
    for (const g of goals(r)) console.log(g);
  }
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = await main(process.argv.slice(2));
