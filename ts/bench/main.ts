// npm run bench -- --services N --endpoints M [--changes K] [--mix] [--agent] [--upstream-baseline]
// npm run bench -- --k8s ...: see tests/k8s/bench/main.ts; --mode iptables: ./iptables.ts; --mode ipvs: ./ipvs.ts.
// Loads a synthetic cluster into a throwaway network namespace through the
// addon, then applies the same ruleset with `nft -f`, and reports both.
// --mix: the cluster of ts/bench/mix.ts (NodePort, source ranges, eTP Local, affinity,
// topology among plain ClusterIPs); changes rotate over the features, the upstream-shaped
// baseline runs too, and each feature's new-connection path is traced at two sizes.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import pino from 'pino';
import { clusterIPServicePort, readyEndpoint } from '../model/build.js';
import type { ServicePort } from '../model/types.js';
import { NftablesProxier } from '../modes/nftables/proxier.js';
import type { Proxier } from '../proxier/types.js';
import {
  chainRuleCounts, featureOf, indicesByFeature, mixedCluster, mixedServicePort, MIX_ADDRESSING, MIX_CLUSTER_CIDR, MIX_FEATURES, MIX_NODE_IP,
  MIX_PROBES, pathCost, probeSample, upstreamShapedText, type MixFeature, type PathCost,
} from './mix.js';
import { systemTool } from '../system-tools.js';
import { runIptablesBench } from './iptables.js';
import { runIpvsBench } from './ipvs.js';
import { runUserspaceBench } from './userspace.js';

const NFT = systemTool('nft');

interface Args {
  services: number;
  endpoints: number;
  changes: number;
  /** Also time `nft -f` of the same cluster in upstream kube-proxy's ruleset shape. */
  upstreamBaseline: boolean;
  /** Also run the whole agent on the cluster (as manifests) and report its RSS. */
  agent: boolean;
  /** The mixed cluster of ./mix.ts; implies upstreamBaseline. */
  mix: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { services: 1000, endpoints: 10, changes: 200, upstreamBaseline: false, agent: false, mix: false };
  // --mix implies the upstream baseline (minutes at 10k); this skips it for quick runs.
  let skipBaseline = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--no-upstream-baseline') {
      skipBaseline = true;
      continue;
    }
    if (argv[i] === '--upstream-baseline' || argv[i] === '--agent' || argv[i] === '--mix') {
      if (argv[i] === '--agent') a.agent = true;
      else if (argv[i] === '--mix') a.mix = a.upstreamBaseline = true;
      else a.upstreamBaseline = true;
      continue;
    }
    const [flag, inline] = argv[i].split('=', 2);
    const value = inline ?? argv[++i];
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${flag}: expected a non-negative integer, got ${value}`);
    if (flag === '--services') a.services = n;
    else if (flag === '--endpoints') a.endpoints = n;
    else if (flag === '--changes') a.changes = n;
    else throw new Error(`unknown flag ${flag}; accepted: --services N --endpoints M --changes K --upstream-baseline --no-upstream-baseline --agent --mix`);
  }
  if (a.mix && a.agent) throw new Error('--mix and --agent: the agent run uses the plain cluster only');
  if (skipBaseline) a.upstreamBaseline = false;
  return a;
}

function endpointIP(svc: number, ep: number, generation: number): string {
  // 10.{64+gen}.x.y: unique per (service, endpoint), a new address per generation.
  const n = svc * 64 + ep;
  return `10.${64 + (generation % 128)}.${(n >> 8) & 255}.${n & 255}`;
}

function endpointIPv6(svc: number, ep: number, generation: number): string {
  return `fd00:${64 + (generation % 128)}::${svc.toString(16)}:${ep.toString(16)}`;
}

function spec(svc: number, endpoints: number, generation = 0, bumped = -1, v6 = false): ServicePort {
  const ip = v6 ? endpointIPv6 : endpointIP;
  return clusterIPServicePort({
    namespace: 'bench',
    name: `svc-${svc}`,
    portName: 'http',
    protocol: 'TCP',
    clusterIP: v6 ? `fd00:172:20::${svc.toString(16)}` : `172.20.${svc >> 8}.${svc & 255}`,
    port: 80,
    endpoints: Array.from({ length: endpoints }, (_, e) => readyEndpoint(ip(svc, e, e === bumped ? generation : 0), 8080)),
  });
}

function timeNftFile(text: string): number {
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-bench-'));
  const file = join(dir, 'ruleset.nft');
  writeFileSync(file, text);
  const t = performance.now();
  const res = spawnSync(NFT, ['-f', file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const ms = performance.now() - t;
  rmSync(dir, { recursive: true, force: true });
  if (res.status !== 0) throw new Error(`nft -f failed: ${res.stderr}`);
  execFileSync(NFT, ['delete', 'table', 'ip', 'kube-proxy']);
  return ms;
}

/** The synthetic cluster as Kubernetes objects (one List), for the agent run. */
function manifests(specs: ServicePort[]): string {
  const items = specs.flatMap((s) => [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { namespace: s.namespace, name: s.name, uid: s.key },
      spec: { clusterIP: s.clusterIP, clusterIPs: [s.clusterIP], ports: [{ name: s.portName, port: s.port, protocol: s.protocol, targetPort: 8080 }] },
    },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { namespace: s.namespace, name: `${s.name}-x`, labels: { 'kubernetes.io/service-name': s.name } },
      addressType: 'IPv4',
      ports: [{ name: s.portName, port: 8080, protocol: s.protocol }],
      endpoints: s.endpoints.map((e) => ({ addresses: [e.ip], conditions: { ready: true } })),
    },
  ]);
  return JSON.stringify({ apiVersion: 'v1', kind: 'List', items });
}

/** Runs the built agent on `specs` (from a manifests directory); resolves when IPv4 is programmed. */
async function runAgent(specs: ServicePort[]): Promise<{ programmedMs: number; rssMiB: number; syncMs: number; split: string }> {
  const cli = fileURLToPath(new URL('../cli.js', import.meta.url));
  if (!existsSync(cli)) throw new Error(`--agent needs the built agent (${cli}); run: npm run build`);
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-bench-agent-'));
  writeFileSync(join(dir, 'cluster.json'), manifests(specs));
  const started = performance.now();
  const child = spawn(process.execPath, ['--max-semi-space-size=2', cli, '--manifests', dir, '--cluster-cidr', '10.64.0.0/10', '--metrics-bind-address=', '--healthz-bind-address=', '-v', '2'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    let split = '';
    const syncMs = await new Promise<number>((resolve, reject) => {
      let buf = '';
      child.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.includes('"ipFamily":"IPv4"') && line.includes('"durationMs"')) {
            const l = JSON.parse(line);
            split = `encode ${l.encodeMs?.toFixed(0)} ms in TS, plan ${l.planMs?.toFixed(0)} + commit ${l.commitMs?.toFixed(0)} ms in Rust`;
            resolve(l.durationMs);
          }
        }
      });
      child.on('exit', (code) => reject(new Error(`the agent exited (${code}) before programming`)));
    });
    const programmedMs = performance.now() - started;
    // Let the startup garbage (parsed files, first full sync) be collected before sampling.
    await new Promise((r) => setTimeout(r, 10000));
    const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
    const rssMiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN) / 1024;
    return { programmedMs, rssMiB, syncMs, split };
  } finally {
    child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const fmt = (ms: number) => ms.toFixed(3);

/** The path measurement's rows: for each probe, the cost at each size (min–max over the samples). */
interface PathRow {
  label: string;
  costs: PathCost[][];
}

const PATH_SAMPLES = 5;

/** Traces PATH_SAMPLES Services of each probe's kind through each proxier's desired ruleset. */
function measurePaths(sized: { proxier: Proxier; specs: ServicePort[] }[]): PathRow[] {
  const rules = sized.map(({ proxier }) => chainRuleCounts(proxier.render()));
  return MIX_PROBES.map((probe, k) => ({
    label: probe.label,
    costs: sized.map(({ proxier, specs }, n) => probeSample(probe, specs, PATH_SAMPLES, k + 1).map((sp) => pathCost(proxier, probe.packet(sp), rules[n]))),
  }));
}

function range(values: number[]): string {
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  return lo === hi ? `${lo}` : `${lo}-${hi}`;
}

async function run(args: Args): Promise<void> {
  // The agent runs first, alone: our own proxiers listen to ruleset notifications, and a
  // listener in the namespace makes the kernel build them for the agent's batches too.
  const agent = args.agent ? await runAgent(Array.from({ length: args.services }, (_, s) => spec(s, args.endpoints))) : undefined;
  const common = { masqueradeAll: false, masqueradeBit: 14, fake: false, registry: new Registry(), logger: pino({ level: 'silent' }) };
  const dp = new NftablesProxier({ ...common, family: 'IPv4', localDetector: { mode: 'ClusterCIDR', cidr: MIX_CLUSTER_CIDR } });
  // Both families are on, as on any node with IPv6: each family's commits must not
  // look foreign to the other, or every sync would be full.
  const dp6 = new NftablesProxier({ ...common, family: 'IPv6', localDetector: { mode: 'ClusterCIDR', cidr: 'fd00::/8' } });
  const specs = args.mix ? mixedCluster(args.services, args.endpoints) : Array.from({ length: args.services }, (_, s) => spec(s, args.endpoints));
  const specs6 = Array.from({ length: Math.min(args.services, 1000) }, (_, s) => spec(s, args.endpoints, 0, -1, true));
  await dp6.sync({ full: true, upserts: specs6, deletes: [] });
  // The mix has NodePorts: the node's addressing goes with the full sync, as the agent sends it.
  const node = args.mix ? { node: MIX_ADDRESSING } : {};
  const t0 = performance.now();
  const full = await dp.sync({ full: true, upserts: specs, deletes: [], ...node });
  const fullMs = performance.now() - t0;
  if (full.rejected.length > 0) throw new Error(`the addon rejected ${full.rejected.length} ServicePorts, e.g. ${full.rejected[0].key}: ${full.rejected[0].reason}`);

  const times: number[] = [];
  const byFeature = new Map<MixFeature, { times: number[]; plan: number[]; commit: number[]; objects: number }>(
    MIX_FEATURES.map((f) => [f, { times: [], plan: [], commit: [], objects: 0 }]),
  );
  const indices = indicesByFeature(args.services);
  // Each endpoint's current generation, so a change to a Service changed before moves one endpoint only.
  const generations = new Map<number, number[]>();
  let objects = 0;
  let fullAfterOther = 0;
  for (let i = 0; i < args.changes; i++) {
    let svc: number;
    let s: ServicePort;
    if (args.mix) {
      // Rotate over the features; within one, a stride over its Services, one endpoint each.
      const list = indices.get(MIX_FEATURES[i % MIX_FEATURES.length])!;
      const round = Math.floor(i / MIX_FEATURES.length);
      svc = list[(round * 7919) % list.length];
      const gens = generations.get(svc) ?? new Array<number>(args.endpoints).fill(0);
      gens[round % Math.max(1, args.endpoints)]++;
      generations.set(svc, gens);
      s = mixedServicePort(svc, args.endpoints, gens);
    } else {
      svc = (i * 7919) % args.services;
      s = spec(svc, args.endpoints, i + 1, i % Math.max(1, args.endpoints));
    }
    const t = performance.now();
    const r = await dp.sync({ full: false, upserts: [s], deletes: [] });
    const ms = performance.now() - t;
    times.push(ms);
    objects += r.objects;
    if (args.mix) {
      const f = byFeature.get(featureOf(svc))!;
      f.times.push(ms);
      f.plan.push(r.planMs);
      f.commit.push(r.commitMs);
      f.objects += r.objects;
    }
    if (r.full) fullAfterOther++;
    // The other family commits in between, as the agent's loop does.
    await dp6.sync({ full: false, upserts: [spec(svc % specs6.length, args.endpoints, i + 1, i % Math.max(1, args.endpoints), true)], deletes: [] });
  }
  await dp6.cleanup();
  times.sort((x, y) => x - y);
  const rssMiB = process.memoryUsage().rss / 2 ** 20;

  // The new-connection path per feature, in the desired rulesets of two sizes (no kernel
  // involved: explain() traces the desired state). The smaller cluster is a prefix of this one.
  let paths: { sizes: number[]; rows: PathRow[] } | undefined;
  if (args.mix) {
    const small = args.services > 1000 ? 1000 : Math.max(20, Math.floor(args.services / 10));
    const smallSpecs = mixedCluster(small, args.endpoints);
    const fake = new NftablesProxier({ ...common, fake: true, family: 'IPv4', localDetector: { mode: 'ClusterCIDR', cidr: MIX_CLUSTER_CIDR } });
    await fake.sync({ full: true, upserts: smallSpecs, deletes: [], node: MIX_ADDRESSING });
    paths = { sizes: [small, args.services], rows: measurePaths([{ proxier: fake, specs: smallSpecs }, { proxier: dp, specs }]) };
  }

  // Baseline: the same ruleset as text through nft -f, into an empty table.
  const text = dp.render();
  await dp.cleanup();
  const nftMs = timeNftFile(text);
  const upstreamText = args.upstreamBaseline ? upstreamShapedText(specs, MIX_CLUSTER_CIDR, args.mix ? [MIX_NODE_IP] : []) : undefined;
  const upstreamMs = upstreamText !== undefined ? timeNftFile(upstreamText) : undefined;

  const lines = [
    `kproxy bench: ${args.services} services x ${args.endpoints} endpoints${args.mix ? ' (mixed features)' : ''} (${full.objects} objects, ${(full.bytes / 2 ** 20).toFixed(1)} MiB netlink, ${full.messages} messages)`,
  ];
  if (args.mix) {
    lines.push(`  mix: ${MIX_FEATURES.map((f) => `${f} ${indices.get(f)!.length}`).join(', ')}; NodePorts on ${MIX_NODE_IP}`);
  }
  lines.push(
    `full program (addon, one batch):   ${fullMs.toFixed(1)} ms  (TS encode ${full.details?.encodeMs?.toFixed(1)} ms; in Rust: ${full.durationMs.toFixed(1)} ms = plan ${full.planMs.toFixed(1)} + commit ${full.commitMs.toFixed(1)})`,
    `same ruleset via nft -f:           ${nftMs.toFixed(1)} ms  (${text.split('\n').length - 1} lines)`,
    `ratio nft -f / addon:              ${(nftMs / fullMs).toFixed(1)}x`,
    `one-endpoint change (${args.changes} runs): p50 ${fmt(percentile(times, 50))} ms, p99 ${fmt(percentile(times, 99))} ms, ${(objects / Math.max(1, args.changes)).toFixed(1)} objects each, ${fullAfterOther} of them full (IPv6 committing in between)`,
  );
  if (args.mix) {
    for (const f of MIX_FEATURES) {
      const { times: ft, plan, commit, objects: fo } = byFeature.get(f)!;
      for (const l of [ft, plan, commit]) l.sort((x, y) => x - y);
      lines.push(
        `  ${f.padEnd(27)} ${String(ft.length).padStart(4)} runs: p50 ${fmt(percentile(ft, 50))} ms, p99 ${fmt(percentile(ft, 99))} ms, ` +
          `${(fo / Math.max(1, ft.length)).toFixed(1)} objects each (Rust plan p50 ${fmt(percentile(plan, 50))}, commit p50 ${fmt(percentile(commit, 50))} / p99 ${fmt(percentile(commit, 99))} ms)`,
      );
    }
  }
  lines.push(`bench process RSS (addon + specs): ${rssMiB.toFixed(0)} MiB`);
  if (agent) {
    lines.push(
      `whole agent (--manifests, 10k objects parsed, tracked, synced): programmed ${agent.programmedMs.toFixed(0)} ms after start ` +
        `(its IPv4 sync: ${agent.syncMs.toFixed(0)} ms; ${agent.split}), RSS ${agent.rssMiB.toFixed(0)} MiB`,
    );
  }
  if (upstreamMs !== undefined) {
    lines.push(`upstream-shaped ruleset via nft -f: ${upstreamMs.toFixed(1)} ms  (${upstreamText!.split('\n').length - 1} lines; ratio to the addon: ${(upstreamMs / fullMs).toFixed(1)}x)`);
  }
  if (paths) {
    const [a, b] = paths.sizes;
    lines.push(
      `new connection, per feature (tracer over the desired ruleset, ${PATH_SAMPLES} pseudo-random Services each; rules fired / set+map refs in them / rules in the chains entered):`,
      `  ${'probe'.padEnd(34)} ${`at ${a}`.padEnd(14)} ${`at ${b}`.padEnd(14)} verdict`,
    );
    let same = true;
    for (const row of paths.rows) {
      const cell = (c: PathCost[]) => `${range(c.map((x) => x.rulesFired))} / ${range(c.map((x) => x.lookups))} / ${range(c.map((x) => x.rulesInChainsEntered))}`;
      const [ca, cb] = row.costs.map(cell);
      if (ca !== cb || ca.includes('-')) same = false;
      const verdicts = [...new Set(row.costs.flat().map((c) => c.verdict))].join(', ');
      lines.push(`  ${row.label.padEnd(34)} ${ca.padEnd(14)} ${cb.padEnd(14)} ${verdicts}`);
    }
    lines.push(`  path independent of the number of Services: ${same ? 'yes, every row equal at both sizes' : 'NO: some row differs between sizes or samples'}`);
    const p99 = percentile(times, 99);
    lines.push(
      `targets: full <= 600 ms: ${fullMs <= 600 ? 'met' : 'MISSED'} (${fullMs.toFixed(0)} ms); ` +
        `one-endpoint p99 <= 2 ms: ${p99 <= 2 ? 'met' : 'MISSED'} (${fmt(p99)} ms); O(1) path: ${same ? 'met' : 'MISSED'}`,
    );
  }
  console.log(lines.join('\n'));
}

function main(): void {
  if (process.argv.includes('--k8s')) {
    // Side by side with upstream kube-proxy on a real kube-apiserver: a test-side harness
    // (tests/k8s/bench), run from its TypeScript sources.
    const root = fileURLToPath(new URL('../../', import.meta.url));
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'tests/k8s/bench/main.ts'), ...process.argv.slice(2)], { stdio: 'inherit', cwd: root });
    process.exit(r.status ?? 1);
  }
  const modeFlag = process.argv.findIndex((a) => a === '--mode' || a.startsWith('--mode='));
  const mode = modeFlag < 0 ? 'nftables' : (process.argv[modeFlag].split('=', 2)[1] ?? process.argv[modeFlag + 1]);
  if (mode !== 'nftables' && mode !== 'iptables' && mode !== 'ipvs' && mode !== 'userspace') {
    console.error(`--mode: nftables, iptables, ipvs or userspace, not ${mode}`);
    process.exit(2);
  }
  if (mode === 'userspace') return void runUserspaceBench(process.argv.slice(2));
  if (mode === 'ipvs') {
    if (process.getuid?.() !== 0) {
      console.error('kproxy bench needs root: it creates a network namespace and programs IPVS');
      process.exit(1);
    }
    runIpvsBench(process.argv.slice(2)).catch((e) => {
      console.error(e instanceof Error ? e.message : e);
      process.exit(1);
    });
    return;
  }
  if (mode === 'iptables') {
    if (process.getuid?.() !== 0) {
      console.error('kproxy bench needs root: it creates network namespaces and programs iptables');
      process.exit(1);
    }
    runIptablesBench(process.argv.slice(2));
    return;
  }
  // Without --mode and its value (one argument when written --mode=VALUE).
  const modeArgs = modeFlag < 0 ? 0 : process.argv[modeFlag].includes('=') ? 1 : 2;
  const args = parseArgs(process.argv.filter((_, i) => i < modeFlag || i >= modeFlag + modeArgs).slice(2));
  if (process.getuid?.() !== 0) {
    console.error('kproxy bench needs root: it creates a network namespace and programs nftables');
    process.exit(1);
  }
  if (process.env.KPROXY_BENCH_INNER === '1') {
    run(args).catch((e) => {
      console.error(e instanceof Error ? e.message : e);
      process.exit(1);
    });
    return;
  }
  // Re-run this script inside a throwaway namespace so the host ruleset is untouched.
  const ns = `kproxy-bench-${process.pid}`;
  execFileSync(systemTool('ip'), ['netns', 'add', ns]);
  try {
    const self = fileURLToPath(import.meta.url);
    const r = spawnSync(systemTool('ip'), ['netns', 'exec', ns, process.execPath, ...process.execArgv, self, ...process.argv.slice(2)], {
      stdio: 'inherit',
      env: { ...process.env, KPROXY_BENCH_INNER: '1' },
    });
    process.exitCode = r.status ?? 1;
  } finally {
    execFileSync(systemTool('ip'), ['netns', 'del', ns]);
  }
}

main();
