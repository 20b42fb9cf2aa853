// npm run bench -- --k8s [--services N] [--endpoints M] [--updates K] [--proxies kproxy,nftables]
//                       [--json FILE] [--profile DIR] [--kproxy-content-type json|protobuf]
// kproxy and upstream kube-proxy v1.37.2 side by side, on one real kube-apiserver (built by
// scripts/build-k8s.sh), in one run, with minSyncPeriod 0 for both. For each proxy:
//   cold start   process start → the last Service answers a real connection; CPU until at rest
//                (5 s later, so that upstream's `nft` children have exited and count)
//   memory       RSS at rest after the cold start (kproxy: started each way a user starts it)
//   event→rules  an EndpointSlice write accepted → its new endpoints answer (p50/p99), CPU,
//                and the proxy's own kubeproxy_network_programming_duration_seconds
//   restart      with the rules in place, under a steady stream of new connections:
//                time to the first sync and the connections that failed
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTopology, REPO_ROOT, waitFor, type Topology } from '../../../ts/demo/topology.js';
import { agentFlags, asAgent, type Agent } from '../../helpers/agent.js';
import { controlPlaneBuilt, startControlPlane, type ControlPlane, type Teardowns } from '../../helpers/control-plane.js';
import { node, NODE_NAME } from '../../netns/manifests.js';
import { spawnUpstream } from '../bed.js';
import {
  cpuSeconds, histogram, histogramQuantile, NAMESPACE, quantile, routeBackendRanges, rssMiB, service, serviceIP, servicePath,
  slice, slicePath, startIo, type Io,
} from './cluster.js';

type ProxyName = 'kproxy' | 'nftables';
/** How a user starts kproxy: the npm bin (its shebang), `node bin/kproxy.js`, the image's ENTRYPOINT. */
type StartWay = 'npm-bin' | 'node' | 'image';

interface Args {
  services: number;
  endpoints: number;
  updates: number;
  proxies: ProxyName[];
  json?: string;
  /** Runs kproxy as `node --cpu-prof ... bin/kproxy.js` every time, with a heap snapshot at rest, into DIR. */
  profile?: string;
  /** kproxy's --kube-api-content-type (protobuf, its default, or json: the encodings side by side). */
  kproxyContentType: 'protobuf' | 'json';
}

function parseArgs(argv: string[]): Args {
  const a: Args = { services: 1000, endpoints: 10, updates: 200, proxies: ['kproxy', 'nftables'], kproxyContentType: 'protobuf' };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    if (flag === '--k8s') continue;
    const value = inline ?? argv[++i];
    if (flag === '--proxies') {
      a.proxies = value.split(',') as ProxyName[];
      for (const p of a.proxies) if (p !== 'kproxy' && p !== 'nftables') throw new Error(`--proxies: unknown ${p}; accepted: kproxy, nftables`);
      continue;
    }
    if (flag === '--kproxy-content-type') {
      if (value !== 'json' && value !== 'protobuf') throw new Error(`--kproxy-content-type: json or protobuf, got ${value}`);
      a.kproxyContentType = value;
      continue;
    }
    if (flag === '--json' || flag === '--profile') {
      a[flag === '--json' ? 'json' : 'profile'] = value;
      continue;
    }
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${flag}: expected a positive integer, got ${value}`);
    if (flag === '--services') a.services = n;
    else if (flag === '--endpoints') a.endpoints = n;
    else if (flag === '--updates') a.updates = n;
    else throw new Error(`unknown flag ${flag}; accepted: --services N --endpoints M --updates K --proxies kproxy,nftables --json FILE --profile DIR --kproxy-content-type json|protobuf`);
  }
  if (a.endpoints > 16) throw new Error('--endpoints: at most 16 (the address plan of cluster.ts)');
  return a;
}

const now = () => performance.timeOrigin + performance.now();

interface Result {
  proxy: string;
  coldStartMs: number;
  coldStartCpuS: number;
  rssMiB: Record<string, number>;
  eventP50Ms: number;
  eventP99Ms: number;
  updatesCpuS: number;
  programmingMeanMs: number;
  programmingP99Ms: number;
  restartFirstSyncMs: number;
  restartFailed: number;
  restartConnections: number;
}

/** The Dockerfile's ENTRYPOINT, with the image's /opt/kproxy as this checkout. */
function imageEntrypoint(): string[] {
  const line = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8').split('\n').find((l) => l.startsWith('ENTRYPOINT '));
  if (!line) throw new Error('Dockerfile has no ENTRYPOINT');
  return (JSON.parse(line.slice('ENTRYPOINT '.length)) as string[]).map((s) => s.replace('/opt/kproxy', REPO_ROOT.replace(/\/$/, '')));
}

class Bench {
  /** Which backend each Service's endpoints are on now (1 or 2). */
  private readonly on: number[];
  constructor(
    private readonly args: Args,
    private readonly topo: Topology,
    private readonly cp: ControlPlane,
    private readonly api: Io,
    private readonly probe: Io,
  ) {
    this.on = new Array(args.services).fill(1);
  }

  async load(): Promise<void> {
    const { services, endpoints } = this.args;
    await this.cp.apply(node(), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } });
    await this.cp.setStatus('node', NODE_NAME, { addresses: [{ type: 'InternalIP', address: '192.168.100.1' }] });
    const t = now();
    const requests = [
      ...Array.from({ length: services }, (_, i) => ({ method: 'POST', path: servicePath(), body: service(i) })),
      ...Array.from({ length: services }, (_, i) => ({ method: 'POST', path: slicePath(), body: slice(i, endpoints, 1) })),
    ];
    await this.write(requests, 8);
    console.error(`loaded ${services} Services and EndpointSlices (x${endpoints}) in ${((now() - t) / 1000).toFixed(1)} s`);
  }

  private async write(requests: object[], concurrency = 1): Promise<number> {
    const r = await this.api.call({ op: 'api', server: this.cp.server, token: this.cp.token('admin'), requests, concurrency });
    if (r.failed) throw new Error(`${r.failed} API writes failed; first: ${r.firstError}`);
    return r.at;
  }

  spawn(proxy: ProxyName, way: StartWay = 'npm-bin'): Agent {
    const minSync = ['--iptables-min-sync-period', '0s'];
    if (proxy === 'nftables') return spawnUpstream({ topo: this.topo, cp: this.cp }, 'nftables', minSync);
    const contentType = ['--kube-api-content-type', this.args.kproxyContentType === 'json' ? 'application/json' : 'application/vnd.kubernetes.protobuf'];
    const flags = agentFlags({ kubeconfig: this.cp.kubeconfig('kproxy'), hostname: NODE_NAME, extraArgs: [...minSync, ...contentType] });
    const bin = join(REPO_ROOT, 'bin/kproxy.js');
    if (this.args.profile) {
      // CPU profile on exit, and a heap snapshot on SIGUSR2 (sent at rest, after the cold start).
      const prof = ['--cpu-prof', '--cpu-prof-dir', this.args.profile, '--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${this.args.profile}`];
      return asAgent(this.topo.spawnIn(this.topo.node, 'node', [...prof, bin, ...flags]));
    }
    if (way === 'npm-bin') return asAgent(this.topo.spawnIn(this.topo.node, bin, flags));
    if (way === 'node') return asAgent(this.topo.spawnIn(this.topo.node, 'node', [bin, ...flags]));
    const [cmd, ...rest] = imageEntrypoint();
    return asAgent(this.topo.spawnIn(this.topo.node, cmd, [...rest, ...flags]));
  }

  /** No rules and no flows: every cold start starts from an empty node. */
  async flush(): Promise<void> {
    await this.topo.exec(this.topo.node, ['nft', 'flush', 'ruleset']);
    await this.topo.exec(this.topo.node, ['conntrack', '-F'], { allowFailure: true });
  }

  /** Waits for Service i to answer from the backend it is on now, trying every pauseMs. */
  private until(i: number, pauseMs: number, timeoutMs = 300_000): Promise<{ at: number; tries: number }> {
    return this.probe.call({ op: 'until', host: serviceIP(i), port: 80, want: `backend-${this.on[i]}`, timeoutMs, pauseMs });
  }

  /** Cold start: from an empty node to the last Service answering. */
  async coldStart(proxy: ProxyName, way?: StartWay): Promise<{ agent: Agent; ms: number; cpu: number; rss: number }> {
    await this.flush();
    const t0 = now();
    const agent = this.spawn(proxy, way);
    const pid = agent.process.pid!;
    const exited = agent.process.exited.then((code) => {
      throw new Error(`${proxy} exited (${code}) during its cold start:\n${agent.logs().slice(-2000)}`);
    });
    const answered = await Promise.race([this.until(this.args.services - 1, 5), exited]);
    await sleep(5000); // at rest: the first syncs done, garbage collected as it would be
    // Read at rest, not at the answer: upstream's `nft` child counts (cutime) once it exits and is reaped.
    const cpu = cpuSeconds(pid);
    const rss = rssMiB(pid);
    if (proxy === 'kproxy') this.timeline('cold start', agent, t0);
    if (this.args.profile && proxy === 'kproxy') {
      agent.signal('SIGUSR2');
      await sleep(10_000);
    }
    return { agent, ms: answered.at - t0, cpu, rss };
  }

  /** Where kproxy's start went: its lists and first syncs, in ms after the process was started. */
  private timeline(what: string, agent: Agent, t0: number): void {
    const marks: string[] = [];
    for (const line of agent.logs().split('\n')) {
      if (!line.startsWith('{')) continue;
      const l = JSON.parse(line);
      if (l.msg === 'Listed') marks.push(`${l.resource} listed +${Math.round(l.time - t0)} (${l.objects} in ${l.ms} ms)`);
      else if (l.msg === 'Synced proxy rules' && marks.filter((m) => m.includes('synced')).length < 2) {
        marks.push(`${l.ipFamily} synced +${Math.round(l.time - t0)} (${l.full ? 'full' : 'partial'}, ${Math.round(l.durationMs)} ms)`);
      } else if (l.msg === 'Starting kproxy') marks.push(`started +${Math.round(l.time - t0)}`);
    }
    console.error(`  kproxy ${what}: ${marks.join('; ')}`);
  }

  private async metricsPage(): Promise<string> {
    return (await this.api.call({ op: 'metric', url: 'http://127.0.0.1:10249/metrics', name: 'none', full: true })).text ?? '';
  }

  /** `updates` EndpointSlice writes, one at a time, each moving a Service's endpoints to the other backend. */
  async events(agent: Agent): Promise<{ p50: number; p99: number; cpu: number; progMean: number; progP99: number }> {
    const pid = agent.process.pid!;
    const name = 'kubeproxy_network_programming_duration_seconds';
    const before = histogram(await this.metricsPage(), name);
    const cpu0 = cpuSeconds(pid);
    const latencies: number[] = [];
    for (let k = 0; k < this.args.updates; k++) {
      // Spread over the Services (7919 is prime: no short cycles).
      const i = (k * 7919) % this.args.services;
      this.on[i] = 3 - this.on[i];
      const accepted = await this.write([{ method: 'PUT', path: slicePath(i), body: slice(i, this.args.endpoints, this.on[i]) }]);
      const answered = await this.until(i, 1, 60_000);
      latencies.push(answered.at - accepted);
    }
    await sleep(1000); // the last observation reaches the histogram; the last `nft` child is reaped
    const cpu = cpuSeconds(pid) - cpu0;
    const after = histogram(await this.metricsPage(), name);
    latencies.sort((a, b) => a - b);
    const n = after.count - before.count;
    return {
      p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), cpu,
      progMean: n > 0 ? ((after.sum - before.sum) / n) * 1000 : NaN,
      progP99: histogramQuantile(before, after, 0.99) * 1000,
    };
  }

  /** Stops the proxy and starts it again with its rules in place, under new connections every 2 ms. */
  async restart(proxy: ProxyName, agent: Agent): Promise<{ agent: Agent; firstSyncMs: number; failed: number; total: number }> {
    const targets = Array.from({ length: Math.min(64, this.args.services) }, (_, k) => serviceIP(Math.floor((k * this.args.services) / Math.min(64, this.args.services))));
    await this.probe.call({ op: 'stream', targets, port: 80, intervalMs: 2 });
    await sleep(1000);
    await agent.stop();
    const t0 = now();
    const next = this.spawn(proxy);
    const metric = 'kubeproxy_sync_proxy_rules_last_timestamp_seconds';
    const synced = await waitFor(`${proxy}'s first sync after the restart`, async () => {
      if (next.process.exitCode !== null) throw new Error(`${proxy} exited after the restart:\n${next.logs().slice(-2000)}`);
      const { value } = await this.api.call({ op: 'metric', url: 'http://127.0.0.1:10249/metrics', name: metric });
      return value * 1000 > t0 ? value * 1000 : undefined;
    }, { timeoutMs: 300_000, intervalMs: 20 });
    await sleep(2000);
    if (proxy === 'kproxy') this.timeline('restart', next, t0);
    const s = await this.probe.call({ op: 'stop-stream' });
    if (s.failed) console.error(`${proxy}: failed connections during the restart: ${JSON.stringify(s.errors)}`);
    return { agent: next, firstSyncMs: synced - t0, failed: s.failed, total: s.ok + s.failed };
  }

  async run(proxy: ProxyName): Promise<Result> {
    const label = proxy === 'kproxy' ? 'kproxy' : 'upstream kube-proxy (nftables)';
    console.error(`${label}: cold start`);
    const cold = await this.coldStart(proxy);
    console.error(`${label}: ${this.args.updates} EndpointSlice updates`);
    const ev = await this.events(cold.agent);
    console.error(`${label}: restart`);
    const rs = await this.restart(proxy, cold.agent);
    await rs.agent.stop();
    const rss: Record<string, number> = { [proxy === 'kproxy' ? 'npm-bin' : 'binary']: cold.rss };
    if (proxy === 'kproxy') {
      for (const way of ['node', 'image'] as const) {
        console.error(`${label}: cold start as ${way}`);
        const c = await this.coldStart(proxy, way);
        rss[way] = c.rss;
        await c.agent.stop();
      }
    }
    return {
      proxy: label, coldStartMs: cold.ms, coldStartCpuS: cold.cpu, rssMiB: rss,
      eventP50Ms: ev.p50, eventP99Ms: ev.p99, updatesCpuS: ev.cpu, programmingMeanMs: ev.progMean, programmingP99Ms: ev.progP99,
      restartFirstSyncMs: rs.firstSyncMs, restartFailed: rs.failed, restartConnections: rs.total,
    };
  }
}

function report(args: Args, results: Result[]): string {
  const cell = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : String(n));
  const rows: [string, (r: Result) => string, (r: Result) => number][] = [
    ['cold start, ms', (r) => cell(r.coldStartMs), (r) => r.coldStartMs],
    ['CPU for the cold start, s', (r) => cell(r.coldStartCpuS, 2), (r) => r.coldStartCpuS],
    ['RSS at rest, MiB', (r) => Object.entries(r.rssMiB).map(([k, v]) => `${cell(v)} (${k})`).join(', '), (r) => Math.max(...Object.values(r.rssMiB))],
    [`event → rules p50, ms (${args.updates} writes)`, (r) => cell(r.eventP50Ms, 1), (r) => r.eventP50Ms],
    ['event → rules p99, ms', (r) => cell(r.eventP99Ms, 1), (r) => r.eventP99Ms],
    ['CPU for the writes, s', (r) => cell(r.updatesCpuS, 2), (r) => r.updatesCpuS],
    ['network_programming_duration mean, ms', (r) => cell(r.programmingMeanMs, 1), (r) => r.programmingMeanMs],
    ['network_programming_duration p99 bucket, ms', (r) => cell(r.programmingP99Ms), (r) => r.programmingP99Ms],
    ['restart: first sync, ms', (r) => cell(r.restartFirstSyncMs), (r) => r.restartFirstSyncMs],
    ['restart: failed / new connections', (r) => `${r.restartFailed} / ${r.restartConnections}`, (r) => r.restartFailed],
  ];
  const [k, ...others] = results;
  const head = `| ${args.services} Services × ${args.endpoints} endpoints | ${results.map((r) => r.proxy).join(' | ')} |${others.length && k?.proxy === 'kproxy' ? ' upstream ÷ kproxy |' : ''}`;
  const lines = [head, `|---|${results.map(() => '---|').join('')}${others.length && k?.proxy === 'kproxy' ? '---|' : ''}`];
  for (const [name, show, value] of rows) {
    const r = others.length && k?.proxy === 'kproxy' ? value(others[0]) / value(k) : undefined;
    const ratio = r === undefined ? '' : Number.isFinite(r) ? ` ${r.toFixed(1)}× |` : ' — |';
    lines.push(`| ${name} | ${results.map(show).join(' | ')} |${ratio}`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (!controlPlaneBuilt()) throw new Error('no Kubernetes binaries: run scripts/build-k8s.sh first');
  const teardowns: (() => unknown)[] = [];
  const log = Object.assign((...v: unknown[]) => console.error(...v), { skip: () => {} });
  const ctx: Teardowns = { teardown: (fn) => void teardowns.push(fn), log, passed: true };
  const cleanup = async () => {
    for (const fn of teardowns.reverse()) await fn();
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  const topo = await createTopology({ backends: 2, name: 'k8sbench' });
  ctx.teardown(() => topo.destroy());
  try {
    await routeBackendRanges(topo);
    const cp = await startControlPlane(ctx, topo);
    const api = await startIo(topo, topo.node);
    const probe = await startIo(topo, topo.client);
    const bench = new Bench(args, topo, cp, api, probe);
    await bench.load();
    const results: Result[] = [];
    for (const p of args.proxies) results.push(await bench.run(p));
    const table = report(args, results);
    console.log(table);
    if (args.json) writeFileSync(args.json, JSON.stringify({ args, results }, null, 2));
  } catch (err) {
    (ctx as { passed: boolean }).passed = false;
    throw err;
  } finally {
    await cleanup();
  }
}

await main();
