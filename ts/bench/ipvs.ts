// npm run bench -- --mode ipvs: IPVS mode beside `ipvsadm --restore` of the same virtual
// servers, in the same run and the same throwaway namespace. Needs a kernel with IPVS: on this
// machine, inside the VM (tests/vm/run.sh 'cd REPO && node dist/bench/main.js --mode ipvs').
// Absolute times under emulation mean little; the ratios are the point.
// - the full program of the mixed cluster (./mix.ts): kproxy's whole sync (IPVS, kube-ipvs0's
//   addresses and the nftables table) against ipvsadm --restore of its virtual servers alone;
// - one-endpoint changes at each size: time and IPVS operations (O(1) in the Services).
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadAddon } from '../addon/native.js';
import { encodeServicePorts } from '../addon/wire.js';
import { nativeNode } from '../proxier/addon-options.js';
import { systemTool } from '../system-tools.js';
import { mixedCluster, mixedServicePort, MIX_ADDRESSING, MIX_CLUSTER_CIDR } from './mix.js';

const IP = systemTool('ip');

interface Args {
  sizes: number[];
  endpoints: number;
  changes: number;
}

function parse(argv: string[]): Args {
  const a: Args = { sizes: [1000, 10_000], endpoints: 10, changes: 50 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    const value = inline ?? argv[++i] ?? '';
    const ints = () => value.split(',').map((v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag}: expected positive integers, got ${value}`);
      return n;
    });
    if (flag === '--mode') continue;
    else if (flag === '--services') a.sizes = ints();
    else if (flag === '--endpoints') a.endpoints = ints()[0];
    else if (flag === '--changes') a.changes = ints()[0];
    else throw new Error(`unknown flag ${flag}; accepted: --mode ipvs --services N[,N...] --endpoints M --changes K`);
  }
  return a;
}

function percentile(v: number[], p: number): number {
  const s = [...v].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
}

function sh(cmd: string, args: string[], input?: string): number {
  const t = performance.now();
  const r = spawnSync(cmd, args, { input, encoding: 'utf8', maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error}`);
  return performance.now() - t;
}

async function size(services: number, a: Args): Promise<void> {
  const { IpvsProxier } = loadAddon();
  const p = new IpvsProxier({ family: 'IPv4', localDetector: { mode: 'ClusterCIDR', value: MIX_CLUSTER_CIDR }, masqueradeBit: 14 });
  const node = nativeNode(MIX_ADDRESSING);
  // Warm up: the first program loads the kernel's nf_tables, NAT and IPVS modules (seconds
  // under emulation), which a node pays once per boot, not per sync.
  await p.sync({ full: true, upserts: encodeServicePorts(mixedCluster(20, 2)).text, deletes: [], node });
  await p.cleanup();
  const upserts = encodeServicePorts(mixedCluster(services, a.endpoints)).text;
  // The baseline first: the same virtual servers as ipvsadm-save text, restored by ipvsadm.
  const fake = new IpvsProxier({ family: 'IPv4', localDetector: { mode: 'ClusterCIDR', value: MIX_CLUSTER_CIDR }, masqueradeBit: 14, fake: true });
  await fake.sync({ full: true, upserts, deletes: [], node });
  const save = fake.render().split('# kube-ipvs0')[0];
  const lines = save.split('\n').filter(Boolean).length;
  const restoreMs = sh('ipvsadm', ['--restore'], save);
  sh('ipvsadm', ['-C']);
  const t = performance.now();
  const full = await p.sync({ full: true, upserts, deletes: [], node });
  const fullMs = performance.now() - t;
  if (full.ipvsFailed) throw new Error(`full program: IPVS refused ${full.ipvsFailed} operations`);
  const changeMs: number[] = [];
  let maxOps = 0;
  const generations = new Map<number, number[]>();
  for (let i = 0; i < a.changes; i++) {
    const svc = (i * 7919) % services;
    const gens = generations.get(svc) ?? new Array<number>(a.endpoints).fill(0);
    gens[i % a.endpoints]++;
    generations.set(svc, gens);
    const text = encodeServicePorts([mixedServicePort(svc, a.endpoints, gens)]).text;
    const s = performance.now();
    const r = await p.sync({ full: false, upserts: text, deletes: [], node });
    changeMs.push(performance.now() - s);
    maxOps = Math.max(maxOps, r.ipvsOps);
    if (r.ipvsFailed) throw new Error(`a change: IPVS refused ${r.ipvsFailed} operations`);
  }
  console.log(`\n${services} Services x ${a.endpoints} endpoints: ${full.services} virtual servers, ${full.destinations} real servers (${lines} ipvsadm lines)`);
  console.log(`  ipvsadm --restore (virtual servers only)   ${restoreMs.toFixed(0)} ms`);
  const [tableMs, addrMs, dumpMs, opsMs] = full.phasesMs;
  console.log(`  kproxy full program (IPVS, kube-ipvs0, table) ${fullMs.toFixed(0)} ms   ${(restoreMs / fullMs).toFixed(1)}x faster`);
  console.log(`    of which: IPVS operations ${opsMs.toFixed(0)} ms (${full.ipvsOps}, ${(restoreMs / opsMs).toFixed(1)}x ipvsadm's), ` +
    `kube-ipvs0 addresses ${addrMs.toFixed(0)} ms (${full.addressesAdded}), table ${tableMs.toFixed(0)} ms, dumps ${dumpMs.toFixed(0)} ms`);
  console.log(`  one-endpoint change: p50 ${percentile(changeMs, 50).toFixed(2)} ms, p99 ${percentile(changeMs, 99).toFixed(2)} ms, at most ${maxOps} IPVS operations`);
  await p.cleanup();
  sh('ipvsadm', ['-C']);
}

export async function runIpvsBench(argv: string[]): Promise<void> {
  const a = parse(argv);
  if (process.env.KPROXY_BENCH_INNER !== '1') {
    const ns = `kproxy-ipvsb-${process.pid}`;
    execFileSync(IP, ['netns', 'add', ns]);
    try {
      const r = spawnSync(IP, ['netns', 'exec', ns, process.execPath, ...process.execArgv, fileURLToPath(new URL('./main.js', import.meta.url)), ...process.argv.slice(2)], {
        stdio: 'inherit',
        env: { ...process.env, KPROXY_BENCH_INNER: '1' },
      });
      process.exitCode = r.status ?? 1;
    } finally {
      execFileSync(IP, ['netns', 'del', ns]);
    }
    return;
  }
  execFileSync(IP, ['link', 'set', 'lo', 'up']);
  spawnSync('modprobe', ['ip_vs']);
  if (spawnSync('ipvsadm', ['-Ln']).status !== 0) throw new Error('this kernel has no IPVS (modprobe ip_vs failed): run the benchmark in the VM, tests/vm/run.sh');
  for (const n of a.sizes) await size(n, a);
}
