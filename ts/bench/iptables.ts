// npm run bench -- --mode iptables: iptables mode beside upstream's restore shape, in the same
// run, on each backend (iptables-nft and iptables-legacy), each in throwaway namespaces:
// - the full program and one-endpoint changes of the mixed cluster (./mix.ts). kproxy writes
//   only the chains that changed; the baseline is upstream's MinimizeIPTablesRestore shape,
//   which writes every shared chain (a flat KUBE-SERVICES) on every sync, from the same model.
// - the new-connection latency to the last Service of upstream's flat KUBE-SERVICES, through
//   real packets (client → node → backend namespaces), with kproxy's dispatch tree and flat.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { loadAddon, type NativeIptablesRules } from '../addon/native.js';
import { encodeServicePorts } from '../addon/wire.js';
import { clusterIPServicePort, readyEndpoint } from '../model/build.js';
import type { ServicePort } from '../model/types.js';
import { NFT_MAX_JUMPS } from '../modes/iptables/proxier.js';
import { nativeNode } from '../proxier/addon-options.js';
import { systemTool } from '../system-tools.js';
import { mixedCluster, mixedServicePort, MIX_ADDRESSING, MIX_CLUSTER_CIDR } from './mix.js';

const IP = systemTool('ip');
/** A restore longer than this is reported as not done (the nft backend's cliff); --full-limit-s. */
const RESTORE_LIMIT_MS = 15 * 60_000;

interface Args {
  services: number;
  endpoints: number;
  changes: number;
  backends: string[];
  latencySizes: number[];
  connects: number;
  /** The longest a full program's restore may take before it is reported as not done. */
  fullLimitMs: number;
}

function parse(argv: string[]): Args {
  const a: Args = { services: 10_000, endpoints: 10, changes: 50, backends: ['nft', 'legacy'], latencySizes: [10, 1000, 10_000, 50_000], connects: 2000, fullLimitMs: RESTORE_LIMIT_MS };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    if (flag === '--mode') {
      i += inline === undefined ? 1 : 0;
      continue;
    }
    const value = inline ?? argv[++i] ?? '';
    const ints = () => value.split(',').map((v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new Error(`${flag}: expected non-negative integers, got ${value}`);
      return n;
    });
    if (flag === '--services') a.services = ints()[0];
    else if (flag === '--endpoints') a.endpoints = ints()[0];
    else if (flag === '--changes') a.changes = ints()[0];
    else if (flag === '--connects') a.connects = ints()[0];
    else if (flag === '--full-limit-s') a.fullLimitMs = ints()[0] * 1000;
    else if (flag === '--latency-sizes') a.latencySizes = value === '' ? [] : ints();
    else if (flag === '--backends') a.backends = value.split(',');
    else throw new Error(`unknown flag ${flag}; accepted: --mode iptables --services N --endpoints M --changes K --backends nft,legacy --latency-sizes 10,1000 --connects C --full-limit-s S`);
  }
  for (const b of a.backends) if (b !== 'nft' && b !== 'legacy') throw new Error(`--backends: nft or legacy, not ${b}`);
  return a;
}

function rules(shape: 'kproxy' | 'upstream'): NativeIptablesRules {
  const { IptablesRules } = loadAddon();
  return new IptablesRules({
    family: 'IPv4',
    localDetector: { mode: 'ClusterCIDR', value: MIX_CLUSTER_CIDR },
    masqueradeBit: 14,
    ...(shape === 'upstream' ? { dispatchAbove: 2 ** 31, upstreamPartial: true } : {}),
  });
}

/** Runs `cmd` in `ns` with `input` on stdin; the time it took, or undefined past the limit. */
function timed(ns: string, cmd: string[], input: string, limitMs = RESTORE_LIMIT_MS): number | undefined {
  const t = performance.now();
  const r = spawnSync(IP, ['netns', 'exec', ns, ...cmd], { input, encoding: 'utf8', timeout: limitMs, maxBuffer: 64 << 20 });
  const ms = performance.now() - t;
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') return undefined;
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} in ${ns}: ${r.stderr || r.error}`);
  return ms;
}

function percentile(v: number[], p: number): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
}

const ms = (v: number | undefined) => (v === undefined ? 'not done' : `${v.toFixed(1)} ms`);

interface SyncResult {
  /** The full program did not land within the limit; the changes ran on the cluster loaded in pieces. */
  loadedInPieces?: boolean;
  fullMs?: number;
  fullLines: number;
  fullPieces: number;
  changeMs: number[];
  changeLines: number[];
}

/** One shape on one backend: the full program, then one-endpoint changes. */
function syncRun(a: Args, backend: string, shape: 'kproxy' | 'upstream'): SyncResult {
  const ns = `kproxy-iptb-${process.pid}-${shape}`;
  execFileSync(IP, ['netns', 'add', ns]);
  try {
    const r = rules(shape);
    // As the agent: kproxy applies the nft backend in pieces; upstream's shape is one restore.
    if (shape === 'kproxy' && backend === 'nft') r.setChunking(NFT_MAX_JUMPS);
    const tool = [`iptables-${backend}-restore`, '--noflush', '-w', '5'];
    const apply = (restores: string[], limitMs = RESTORE_LIMIT_MS) => {
      let total = 0;
      for (const input of restores) {
        const ms = timed(ns, tool, input, limitMs);
        if (ms === undefined) return undefined;
        total += ms;
      }
      return total;
    };
    const lines = (restores: string[]) => restores.reduce((n, x) => n + x.split('\n').length - 1, 0);
    const node = nativeNode(MIX_ADDRESSING);
    const t = performance.now();
    const full = r.plan({ full: true, upserts: encodeServicePorts(mixedCluster(a.services, a.endpoints)).text, deletes: [], node });
    const restoreMs = apply(full.restores, a.fullLimitMs);
    const res: SyncResult = { fullMs: restoreMs === undefined ? undefined : performance.now() - t, fullLines: lines(full.restores), fullPieces: full.restores.length, changeMs: [], changeLines: [] };
    if (restoreMs === undefined) {
      // Past the limit (killed before its commit: nothing landed). The changes still need the
      // cluster in place: loaded in pieces, untimed, then back to one restore a sync.
      r.committed(false);
      r.setChunking(NFT_MAX_JUMPS);
      const setup = r.plan({ full: true, upserts: encodeServicePorts(mixedCluster(a.services, a.endpoints)).text, deletes: [], node });
      if (apply(setup.restores) === undefined) return res;
      r.setChunking(0);
      res.loadedInPieces = true;
    }
    r.committed(true);
    const generations = new Map<number, number[]>();
    for (let i = 0; i < a.changes; i++) {
      const svc = (i * 7919) % a.services;
      const gens = generations.get(svc) ?? new Array<number>(a.endpoints).fill(0);
      gens[i % Math.max(1, a.endpoints)]++;
      generations.set(svc, gens);
      const start = performance.now();
      const plan = r.plan({ full: false, upserts: encodeServicePorts([mixedServicePort(svc, a.endpoints, gens)]).text, deletes: [], node });
      if (apply(plan.restores) === undefined) throw new Error(`a one-endpoint change took over ${RESTORE_LIMIT_MS} ms`);
      r.committed(true);
      res.changeMs.push(performance.now() - start);
      res.changeLines.push(lines(plan.restores));
    }
    return res;
  } finally {
    execFileSync(IP, ['netns', 'del', ns]);
  }
}

/** `n` (at most 65536) ClusterIP Services, all to one backend. */
function latencyCluster(n: number): ServicePort[] {
  return Array.from({ length: n }, (_, i) =>
    clusterIPServicePort({
      namespace: 'bench', name: `svc-${i}`, portName: 'http', protocol: 'TCP',
      clusterIP: `172.20.${i >> 8}.${i & 255}`, port: 80,
      endpoints: [readyEndpoint('10.64.0.2', 8080)],
    }));
}

/** Sequential TCP handshakes to host:80, each timed in µs (python: less jitter than a node event loop). */
const CLIENT_SCRIPT = `
import json, socket, sys, time
host, count, out = sys.argv[1], int(sys.argv[2]), []
for _ in range(count):
    s = socket.socket()
    t = time.perf_counter_ns()
    s.connect((host, 80))
    out.append((time.perf_counter_ns() - t) / 1e3)
    s.close()
print(json.dumps(out))`;

/** client (192.168.90.2) → node → backend (10.64.0.2:8080), in three namespaces. */
function topology(tag: string): { node: string; client: string; backend: string; destroy(): void } {
  const [node, client, backend] = ['node', 'client', 'backend'].map((n) => `kproxy-iptl-${process.pid}-${tag}-${n}`);
  const ip = (...args: string[]) => execFileSync(IP, args);
  for (const ns of [node, client, backend]) ip('netns', 'add', ns);
  ip('link', 'add', 'c0', 'netns', client, 'type', 'veth', 'peer', 'name', 'n0', 'netns', node);
  ip('link', 'add', 'b0', 'netns', backend, 'type', 'veth', 'peer', 'name', 'n1', 'netns', node);
  const inNs = (ns: string, ...args: string[]) => ip('-n', ns, ...args);
  inNs(client, 'addr', 'add', '192.168.90.2/24', 'dev', 'c0');
  inNs(node, 'addr', 'add', '192.168.90.1/24', 'dev', 'n0');
  inNs(node, 'addr', 'add', '10.64.0.1/24', 'dev', 'n1');
  inNs(backend, 'addr', 'add', '10.64.0.2/24', 'dev', 'b0');
  for (const [ns, dev] of [[client, 'c0'], [node, 'n0'], [node, 'n1'], [backend, 'b0']]) {
    inNs(ns, 'link', 'set', dev, 'up');
    inNs(ns, 'link', 'set', 'lo', 'up');
  }
  inNs(client, 'route', 'add', 'default', 'via', '192.168.90.1');
  inNs(backend, 'route', 'add', 'default', 'via', '10.64.0.1');
  execFileSync(IP, ['netns', 'exec', node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  // The client closes first, so TIME_WAIT stays with the client's own tuples, never with the
  // backend's (which every Service's masqueraded connections share).
  const server = spawn(IP, ['netns', 'exec', backend, process.execPath, '-e', "require('node:net').createServer((s) => s.on('error', () => {}).resume()).listen(8080)"], { stdio: 'ignore' });
  return {
    node, client, backend,
    destroy() {
      server.kill();
      for (const ns of [node, client, backend]) spawnSync(IP, ['netns', 'del', ns]);
    },
  };
}

interface LatencyRow {
  size: number;
  shape: string;
  programMs?: number;
  p50?: number;
  p99?: number;
}

function latencyRun(a: Args, backend: string): LatencyRow[] {
  const rows: LatencyRow[] = [];
  const topo = topology(backend);
  try {
    execFileSync(IP, ['netns', 'exec', topo.backend, 'sh', '-c', 'for i in $(seq 50); do ss -ltn | grep -q :8080 && exit 0; sleep 0.1; done; exit 1']);
    for (const size of a.latencySizes) {
      const specs = latencyCluster(size);
      let last: string | undefined;
      for (const shape of ['upstream', 'kproxy'] as const) {
        const r = rules(shape);
        r.plan({ full: true, upserts: encodeServicePorts(specs).text, deletes: [], node: { nodePortAll: true, nodePortIps: [], nodeIps: ['192.168.90.1'] } });
        const save = r.render();
        // The last Service upstream's flat KUBE-SERVICES walks to; the same one through the tree.
        last ??= [...save.matchAll(/^-A KUBE-SERVICES -d (\S+)\/32 /gm)].pop()?.[1];
        const programMs = timed(topo.node, [`iptables-${backend}-restore`, '-w', '5'], save);
        if (programMs === undefined || !last) {
          rows.push({ size, shape, programMs });
          continue;
        }
        // Let the kernel finish with the table it replaced (the legacy backend frees a whole
        // table's blob) before the clock starts.
        spawnSync('sleep', ['5']);
        // A clean conntrack table each time: the earlier measurements' entries share the
        // masqueraded tuples. The client at real-time priority: scheduling noise would be the p99.
        spawnSync(IP, ['netns', 'exec', topo.node, 'conntrack', '-F'], { stdio: 'ignore' });
        const out = execFileSync(IP, ['netns', 'exec', topo.client, 'chrt', '-f', '50', 'python3', '-c', CLIENT_SCRIPT, last, String(a.connects)], { encoding: 'utf8' });
        const us = (JSON.parse(out) as number[]).slice(Math.min(20, a.connects >> 3)); // warm-up dropped
        rows.push({ size, shape, programMs, p50: percentile(us, 50), p99: percentile(us, 99) });
      }
    }
  } finally {
    topo.destroy();
  }
  return rows;
}

export function runIptablesBench(argv: string[]): void {
  const a = parse(argv);
  const lines: string[] = [`kproxy bench, iptables mode: ${a.services} services x ${a.endpoints} endpoints (mixed features), ${a.changes} one-endpoint changes`];
  for (const backend of a.backends) {
    if (spawnSync(`iptables-${backend}-save`, [], { stdio: 'ignore' }).status !== 0) {
      lines.push(`\n[${backend}] iptables-${backend} is not usable here: skipped`);
      continue;
    }
    lines.push(`\n[${backend}]`);
    if (a.services > 0) {
      const k = syncRun(a, backend, 'kproxy');
      const u = syncRun(a, backend, 'upstream');
      lines.push(
        `full program: kproxy ${ms(k.fullMs)} (${k.fullLines} lines in ${k.fullPieces} restores), upstream-shaped ${ms(u.fullMs)} (${u.fullLines} lines in ${u.fullPieces})` +
          (k.fullMs && u.fullMs ? `; upstream / kproxy ${(u.fullMs / k.fullMs).toFixed(1)}x` : ''),
      );
      for (const [who, x] of [['kproxy', k], ['upstream-shaped', u]] as const) {
        if (x.fullMs === undefined) lines.push(`  ${who}: the full program did not land within ${a.fullLimitMs / 1000} s${x.loadedInPieces ? '; for the changes below the cluster was loaded in pieces (untimed)' : ''}`);
      }
      if (k.changeMs.length && u.changeMs.length) {
        const [k50, k99, u50, u99] = [percentile(k.changeMs, 50), percentile(k.changeMs, 99), percentile(u.changeMs, 50), percentile(u.changeMs, 99)];
        lines.push(
          `one-endpoint change: kproxy p50 ${ms(k50)} p99 ${ms(k99)} (${percentile(k.changeLines, 50)} lines), ` +
            `upstream-shaped p50 ${ms(u50)} p99 ${ms(u99)} (${percentile(u.changeLines, 50)} lines); upstream / kproxy: p50 ${(u50 / k50).toFixed(1)}x, p99 ${(u99 / k99).toFixed(1)}x`,
        );
      }
    }
    if (a.latencySizes.length) {
      lines.push(`new connection to the last Service (${a.connects} connects, TCP handshake, µs):`);
      const rows = latencyRun(a, backend);
      for (const r of rows) {
        lines.push(`  ${String(r.size).padStart(6)} services, ${r.shape.padEnd(8)}: ${r.p50 === undefined ? 'not done' : `p50 ${r.p50.toFixed(0)} p99 ${r.p99?.toFixed(0)}`} (programmed in ${ms(r.programMs)})`);
      }
      const base = rows.find((r) => r.shape === 'kproxy' && r.p99 !== undefined);
      for (const r of rows.filter((x) => x.shape === 'kproxy' && x.p99 !== undefined && x !== base)) {
        lines.push(`  kproxy p99 at ${r.size} / at ${base?.size}: ${((r.p99 ?? 0) / (base?.p99 ?? 1)).toFixed(2)}x`);
      }
      const ups = rows.filter((r) => r.shape === 'upstream' && r.p99 !== undefined);
      if (ups.length > 1) lines.push(`  upstream-shaped p99 at ${ups[ups.length - 1].size} / at ${ups[0].size}: ${((ups[ups.length - 1].p99 ?? 0) / (ups[0].p99 ?? 1)).toFixed(2)}x`);
    }
  }
  console.log(lines.join('\n'));
}
