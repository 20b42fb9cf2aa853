// The stale UDP conntrack reconciler against the kernel's table. The node namespace DNATs
// with its own nft rules (not the agent's), so each flow's backend is known; the client's
// requests make real conntrack entries there; the reconciler runs inside the node and
// `conntrack -L` (the CLI, only to observe) shows what is left.
//
//   VIP / port            DNAT to     ServicePort's serving endpoints   expected
//   .10 / ::10  :53/UDP   backend-1   backend-2                         deleted
//   .11 / ::11  :53/UDP   backend-2   backend-2                         kept
//   .12 / ::12  :53/UDP   backend-1   none (backend-2 is not serving)   kept: skipped
//   node :30053/UDP       backend-1   backend-2 (NodePort of .13)       deleted
//   .10 / ::10  :80/TCP   backend-1   (TCP is never reconciled)         kept
import test, { type ExecutionContext } from 'ava';
import { CLIENT_LINK, backendAddresses, type Topology } from '../../ts/demo/topology.js';
import { clusterIPServicePort, readyEndpoint } from '../../ts/model/build.js';
import type { IPFamily, ServicePort } from '../../ts/model/types.js';
import { topologyFor } from './flows.js';

interface Plan {
  family: IPFamily;
  nft: 'ip' | 'ip6';
  vip: (n: number) => string;
  nodeIP: string;
  backend: (i: number) => string;
}

const PLANS: Plan[] = [
  { family: 'IPv4', nft: 'ip', vip: (n) => `10.96.0.${n}`, nodeIP: CLIENT_LINK.nodeV4, backend: (i) => backendAddresses(i).v4 },
  { family: 'IPv6', nft: 'ip6', vip: (n) => `fd00:96::${n}`, nodeIP: CLIENT_LINK.nodeV6, backend: (i) => backendAddresses(i).v6 },
];

const hostPort = (ip: string, port: number) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);

function rules(p: Plan): string {
  const dnat = (match: string, backend: number, port: number) =>
    `add rule ${p.nft} ct-test pre ${match} dnat to ${hostPort(p.backend(backend), port)}`;
  const daddr = p.nft === 'ip' ? 'ip daddr' : 'ip6 daddr';
  return [
    `add table ${p.nft} ct-test`,
    `add chain ${p.nft} ct-test pre { type nat hook prerouting priority -100 ; }`,
    dnat(`${daddr} ${p.vip(10)} udp dport 53`, 1, 8053),
    dnat(`${daddr} ${p.vip(11)} udp dport 53`, 2, 8053),
    dnat(`${daddr} ${p.vip(12)} udp dport 53`, 1, 8053),
    dnat(`${daddr} ${p.nodeIP} udp dport 30053`, 1, 8053),
    dnat(`${daddr} ${p.vip(10)} tcp dport 80`, 1, 8080),
  ].join('\n');
}

function servicePorts(p: Plan): ServicePort[] {
  const udp = (n: number, endpoints = [readyEndpoint(p.backend(2), 8053)], nodePort = 0) => clusterIPServicePort({
    namespace: 'default', name: `svc-${n}`, portName: 'dns', protocol: 'UDP', clusterIP: p.vip(n), port: 53,
    family: p.family, endpoints, nodePort, type: nodePort ? 'NodePort' : 'ClusterIP',
  });
  return [
    udp(10),
    udp(11),
    udp(12, [readyEndpoint(p.backend(2), 8053, { ready: false, serving: false, terminating: true })]),
    udp(13, undefined, 30053),
    clusterIPServicePort({ namespace: 'default', name: 'svc-10', portName: 'http', protocol: 'TCP', clusterIP: p.vip(10),
      port: 80, family: p.family, endpoints: [readyEndpoint(p.backend(2), 8080)] }),
  ];
}

/** `conntrack -L` lines as "proto origDst -> replySrc" (ports included). */
async function flows(topo: Topology, p: Plan): Promise<string[]> {
  const { stdout } = await topo.exec(topo.node, ['conntrack', '-L', '-f', p.family === 'IPv4' ? 'ipv4' : 'ipv6']);
  return stdout.split('\n').filter(Boolean).map((line) => {
    const kv = [...line.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1], m[2]] as const);
    const get = (k: string, nth: number) => kv.filter(([key]) => key === k)[nth]?.[1] ?? '?';
    return `${line.split(/\s+/)[0]} ${hostPort(get('dst', 0), Number(get('dport', 0)))} -> ${hostPort(get('src', 1), Number(get('sport', 1)))}`;
  }).sort();
}

async function reconcileIn(topo: Topology, p: Plan, sps: ServicePort[]): Promise<{ metrics: string; logs: any[] }> {
  const arg = JSON.stringify({ family: p.family, servicePorts: sps });
  const { stdout } = await topo.exec(topo.node, ['node', '--import', 'tsx', 'tests/helpers/conntrack-main.ts', arg]);
  return JSON.parse(stdout);
}

async function makeFlows(t: ExecutionContext, topo: Topology, p: Plan): Promise<void> {
  const answered = async (r: Promise<{ ok: boolean; backend?: string }>) => {
    const res = await r;
    return res.ok ? (res as { backend: string }).backend : 'error';
  };
  const got = [
    await answered(topo.udpRequest(topo.client, p.vip(10), 53)),
    await answered(topo.udpRequest(topo.client, p.vip(10), 53)),
    await answered(topo.udpRequest(topo.client, p.vip(11), 53)),
    await answered(topo.udpRequest(topo.client, p.vip(12), 53)),
    await answered(topo.udpRequest(topo.client, p.nodeIP, 30053)),
    await answered(topo.tcpRequest(topo.client, p.vip(10), 80)),
  ];
  t.deepEqual(got, ['backend-1', 'backend-1', 'backend-2', 'backend-1', 'backend-1', 'backend-1'], 'the DNAT rules sent each flow where planned');
}

for (const p of PLANS) {
  test.serial(`${p.family}: UDP flows to a backend that is not serving are deleted, the others stay`, async (t) => {
    const topo = await topologyFor(t, { backends: 2, name: 'ct' });
    await topo.exec(topo.node, ['nft', '-f', '-'], { input: rules(p) });
    await makeFlows(t, topo, p);

    const b = (i: number, port = 8053) => hostPort(p.backend(i), port);
    const stale = [`udp ${hostPort(p.vip(10), 53)} -> ${b(1)}`, `udp ${hostPort(p.vip(10), 53)} -> ${b(1)}`,
      `udp ${hostPort(p.nodeIP, 30053)} -> ${b(1)}`];
    const kept = [`tcp ${hostPort(p.vip(10), 80)} -> ${b(1, 8080)}`, `udp ${hostPort(p.vip(11), 53)} -> ${b(2)}`,
      `udp ${hostPort(p.vip(12), 53)} -> ${b(1)}`];
    t.deepEqual(await flows(topo, p), [...stale, ...kept].sort(), 'the kernel tracks every planned flow before the pass');

    const first = await reconcileIn(topo, p, servicePorts(p));
    t.deepEqual(await flows(topo, p), [...kept].sort(), 'only the flows to a serving endpoint (or not reconciled) are left');
    t.regex(first.metrics, new RegExp(`kubeproxy_conntrack_reconciler_deleted_entries_total\\{ip_family="${p.family}"\\} 3\\n`));
    t.regex(first.metrics, new RegExp(`kubeproxy_conntrack_reconciler_sync_duration_seconds_count\\{ip_family="${p.family}"\\} 1\\n`));
    t.falsy(first.logs.find((l) => l.level >= 50), JSON.stringify(first.logs));

    // Nothing stale is left: a second pass deletes nothing.
    const second = await reconcileIn(topo, p, servicePorts(p));
    t.regex(second.metrics, new RegExp(`deleted_entries_total\\{ip_family="${p.family}"\\} 0\\n`));
    t.deepEqual(await flows(topo, p), [...kept].sort());
  });
}
