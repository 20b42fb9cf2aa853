// `npm start`: a node in a few network namespaces, kproxy programming it, traffic to show it.
//
//   --once  exit after the showing (the smoke test uses it); otherwise run until Ctrl-C.
//   --mode iptables|ipvs|userspace  run kproxy in that mode instead of nftables.
//   KPROXY_DEMO_AGENT=path  run another agent script instead of bin/kproxy.js (e.g. a build).
//   KPROXY_DEMO_WAIT_S=N    wait up to N s (default 60) for the first program (slow, emulated CPUs).
//
// Everything the demo makes (namespaces, processes) is removed on exit, Ctrl-C, SIGTERM or error.
import { createWriteStream, existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import {
  CLIENT_LINK, CLUSTER_CIDRS, GiveUp, REPO_ROOT, createTopology, systemTool, waitFor, type NsProcess, type Topology,
} from './topology.js';

const CLUSTER_IP = '10.96.0.10';
const CLUSTER_IP6 = 'fd00:96::10';
const MANIFESTS = join(REPO_ROOT, 'examples', 'demo');
const REQUESTS = 30;
const NEEDS_ROOT = "kproxy's demo needs root (it creates network namespaces and programs nftables), like kube-proxy; run: sudo npm start";

// `npm start | head`: once the reader is gone, lines are dropped instead of an EPIPE that
// would end the demo before it removes its namespaces and temp folder.
let stdoutGone = false;
process.stdout.on('error', () => {
  stdoutGone = true;
});
const say = (line = '') => {
  if (!stdoutGone && !process.stdout.destroyed) process.stdout.write(`${line}\n`);
};

type Mode = 'nftables' | 'iptables' | 'ipvs' | 'userspace';
const MODES: Mode[] = ['nftables', 'iptables', 'ipvs', 'userspace'];

/** Where the demo says to look at what kproxy did, per mode. */
const LOOK: Record<Mode, (node: string) => string> = {
  nftables: (node) => `ip netns exec ${node} nft list ruleset`,
  iptables: (node) => `ip netns exec ${node} iptables-save`,
  ipvs: (node) => `ip netns exec ${node} ipvsadm -Ln`,
  userspace: (node) => `ip netns exec ${node} ss -ltnu`,
};

function agentArgs(mode: Mode): string[] {
  return [
    '--proxy-mode', mode,
    '--manifests', relative(REPO_ROOT, MANIFESTS),
    '--cluster-cidr', CLUSTER_CIDRS.join(','),
    '--hostname-override', 'demo-node',
    '--metrics-bind-address', '127.0.0.1:10249',
    '--healthz-bind-address', '0.0.0.0:10256',
    '-v', '2',
  ];
}

async function startAgent(topo: Topology, logFile: string, mode: Mode): Promise<NsProcess> {
  const script = process.env.KPROXY_DEMO_AGENT ?? join(REPO_ROOT, 'bin', 'kproxy.js');
  if (!existsSync(script)) throw new Error(`the agent (${script}) is missing; is this a complete checkout?`);
  const args = [relative(REPO_ROOT, script), ...agentArgs(mode)];
  say(`Starting kproxy in the node namespace:`);
  say(`  ip netns exec ${topo.node} node ${args.join(' ')}`);
  say(`  (its log: ${logFile})`);
  const agent = topo.spawnIn(topo.node, 'node', args);
  const log = createWriteStream(logFile);
  agent.stdout!.pipe(log);
  agent.stderr!.pipe(log);
  return agent;
}

async function waitForRuleset(topo: Topology, agent: NsProcess, mode: Mode): Promise<void> {
  const started = Date.now();
  const timeoutMs = (Number(process.env.KPROXY_DEMO_WAIT_S) || 60) * 1000;
  for (const [family, ip] of [['ip', CLUSTER_IP], ['ip6', CLUSTER_IP6]]) {
    const where = {
      nftables: `the ${family} kube-proxy service-ips map`,
      iptables: `${family === 'ip' ? 'iptables' : 'ip6tables'} KUBE-SERVICES`,
      ipvs: 'IPVS',
      userspace: 'the listening sockets',
    }[mode];
    await waitFor(`${ip} in ${where}`, async () => {
      if (agent.exitCode !== null) throw new GiveUp(`kproxy exited (${agent.exitCode}):\n${agent.output().slice(-3000)}`);
      if (mode === 'userspace' || mode === 'ipvs') {
        const at = family === 'ip' ? `${ip}:80` : `[${ip}]:80`;
        const r = mode === 'ipvs' ? await topo.exec(topo.node, ['ipvsadm', '-Ln', '-t', at], { allowFailure: true }) : await topo.exec(topo.node, ['ss', '-Hltn'], { allowFailure: true });
        return r.code === 0 && (mode === 'ipvs' || r.stdout.split(/\s+/).includes(at));
      }
      if (mode === 'iptables') {
        const save = await topo.exec(topo.node, [family === 'ip' ? 'iptables-save' : 'ip6tables-save', '-t', 'nat'], { allowFailure: true });
        return save.code === 0 && save.stdout.includes(`-A KUBE-SERVICES -d ${ip}/`);
      }
      const map = await topo.exec(topo.node, ['nft', 'list', 'map', family, 'kube-proxy', 'service-ips'], { allowFailure: true });
      return map.code === 0 && map.stdout.includes(`${ip} . `);
    }, { timeoutMs });
  }
  say(`${mode === 'userspace' ? 'Proxy listening' : 'Ruleset programmed'} after ${((Date.now() - started) / 1000).toFixed(1)} s:`);
  say(`  ${LOOK[mode](topo.node)}`);
}

async function showTraffic(topo: Topology): Promise<void> {
  say();
  say(`${REQUESTS} TCP connections from the client (${CLIENT_LINK.clientV4}) to http://${CLUSTER_IP}:80/`);
  const results = await topo.tcpRequests(topo.client, CLUSTER_IP, 80, { count: REQUESTS });
  const counts = new Map<string, number>();
  for (const r of results) {
    const key = r.ok ? r.backend : `failed: ${r.error}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  for (const [who, n] of [...counts].sort()) say(`  ${who.padEnd(12)} ${'#'.repeat(n).padEnd(REQUESTS)} ${n}`);
  const first = results.find((r) => r.ok);
  if (first?.ok) say(`  backends see the node's address, not the client's (masquerade, or the proxy's own connection): "${first.body}"`);

  say();
  const udp = await topo.udpRequest(topo.client, CLUSTER_IP, 53);
  say(`UDP datagram to ${CLUSTER_IP}:53 -> ${udp.ok ? `"${udp.body}"` : `failed: ${udp.error}`}`);
  const v6 = await topo.tcpRequest(topo.client, CLUSTER_IP6, 80);
  say(`TCP to [${CLUSTER_IP6}]:80     -> ${v6.ok ? `"${v6.body}"` : `failed: ${v6.error}`}`);
  const inside = await topo.tcpRequest(topo.backends[0].ns, CLUSTER_IP, 80);
  say(`TCP from backend-1 to ${CLUSTER_IP}:80 -> ${inside.ok ? `"${inside.body}" (pod to pod: source kept, unless it lands on itself)` : `failed: ${inside.error}`}`);
}

async function showEndpoints(topo: Topology): Promise<void> {
  const curl = async (ns: string, url: string) => {
    const result = await topo.exec(ns, ['curl', '-s', '-m', '3', url], { allowFailure: true });
    return result.code === 0 ? result.stdout.trim() : `(no answer: curl exit ${result.code})`;
  };
  // The servers may come up a moment after the first sync.
  await waitFor('the metrics server', async () => (await topo.exec(topo.node, ['curl', '-sf', 'http://127.0.0.1:10249/proxyMode'], { allowFailure: true })).code === 0,
    { timeoutMs: 10_000 }).catch(() => {});
  say();
  say('kproxy serves, like kube-proxy:');
  say(`  metrics on 127.0.0.1:10249 (node namespace):  ip netns exec ${topo.node} curl http://127.0.0.1:10249/metrics`);
  say(`    /proxyMode -> ${await curl(topo.node, 'http://127.0.0.1:10249/proxyMode')}`);
  say(`  health on 0.0.0.0:10256, reachable from the client via the node's address:`);
  say(`    ip netns exec ${topo.client} curl http://${CLIENT_LINK.nodeV4}:10256/healthz`);
  say(`    /healthz -> ${await curl(topo.client, `http://${CLIENT_LINK.nodeV4}:10256/healthz`)}`);
}

function describeTopology(topo: Topology): void {
  say('Network namespaces (one node, one client outside the cluster, three backends):');
  const row = (role: string, ns: string, what: string) => say(`  ${role.padEnd(10)} ${ns.padEnd(topo.client.length + 2)} ${what}`);
  row('node', topo.node, 'routes between the others; kproxy runs here');
  row('client', topo.client, `${CLIENT_LINK.clientV4}, ${CLIENT_LINK.clientV6}`);
  for (const b of topo.backends) row(b.name, b.ns, `${b.v4}, ${b.v6}   (TCP 8080, UDP 8053)`);
  say(`Service demo/web (${relative(REPO_ROOT, MANIFESTS)}/): ClusterIPs ${CLUSTER_IP}, ${CLUSTER_IP6}; http 80/TCP -> 8080, dns 53/UDP -> 8053`);
  say();
}

async function main(argv: string[]): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error(NEEDS_ROOT);
    return 1;
  }
  // ip builds the namespaces; nft and curl show what kproxy did. Say what to install.
  const missing = ['ip', 'nft', 'curl'].filter((tool) => !systemTool(tool).includes('/'));
  if (missing.length > 0) {
    console.error(`kproxy's demo needs ${missing.join(', ')}; on Debian or Ubuntu: apt-get install -y iproute2 nftables curl`);
    return 1;
  }
  const once = argv.includes('--once');
  const modeAt = argv.indexOf('--mode');
  const mode = (modeAt >= 0 ? argv[modeAt + 1] : 'nftables') as Mode;
  if (!MODES.includes(mode)) {
    console.error(`--mode: one of ${MODES.join(', ')}, got ${mode}`);
    return 1;
  }
  const workDir = await mkdtemp(join(tmpdir(), 'kproxy-demo-'));
  const logFile = join(workDir, 'agent.log');
  let topo: Topology | undefined;
  let keepLog = false;

  const signalled = new Promise<number>((resolve) => {
    for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) process.on(sig, () => resolve(code));
  });
  const show = async (): Promise<number> => {
    topo = await createTopology({ backends: 3, name: 'demo' });
    describeTopology(topo);
    const agent = await startAgent(topo, logFile, mode);
    await waitForRuleset(topo, agent, mode);
    await showTraffic(topo);
    await showEndpoints(topo);
    say();
    if (once) return 0;
    say('Try it:');
    say(`  ip netns exec ${topo.client} curl http://${CLUSTER_IP}/`);
    say(`  ${LOOK[mode](topo.node)}`);
    say('Running until Ctrl-C (everything above is removed on exit).');
    const code = await agent.exited;
    throw new Error(`kproxy exited (${code})`);
  };

  // A signal wins the race at any point; whatever show() was doing is cut short by the cleanup.
  const code = await Promise.race([show(), signalled]).catch((err: Error) => {
    keepLog = existsSync(logFile);
    console.error(`demo failed: ${err.message}`);
    if (keepLog) console.error(`kproxy's log is kept at ${logFile}`);
    return 1;
  });
  if (topo) {
    say('Cleaning up: stopping processes, deleting namespaces...');
    await (topo as Topology).destroy().catch((err: Error) => console.error(`cleanup: ${err.message}`));
  }
  if (!keepLog) await rm(workDir, { recursive: true, force: true });
  return code;
}

process.exitCode = await main(process.argv.slice(2));
// Children are gone; do not wait for stray handles (signal listeners, timers, a cut-short show()).
process.exit();
