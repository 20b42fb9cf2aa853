// NodePorts, externalTrafficPolicy Local, LoadBalancer and external IPs, source ranges,
// ClientIP affinity and the ServiceCIDR drop, with real packets through the real agent: the
// flows tests/unit/packet-flows-nodeport.test.ts traces without a kernel.
//
// Address plan (ts/demo/topology.ts, tests/netns/outside.ts):
//   client  192.168.100.2 / fd00:100::2 -> node 192.168.100.1 / fd00:100::1: the Node's InternalIPs,
//           so the NodePorts (nodePortAddresses "primary", the default) answer there
//   outside 203.0.113.2 / 2001:db8:113::2 -> node 203.0.113.1 (a second off-cluster source)
//   backend i 10.244.i.2 / fd00:244:0:i::2, node 10.244.i.1 / fd00:244:0:i::1 on backend i's link
//   ServiceCIDR 10.96.0.0/16, fd00:96::/112 (both routed to the node itself)
//   web    10.96.0.10 / fd00:96::10   ClusterIP 80/TCP, 53/UDP -> backend-1..3 (tests/netns/cluster.ts)
//   np     10.96.0.60 / fd00:96::60   NodePort 80->30080/TCP, 53->30053/UDP -> backend-1..3
//   local  10.96.0.61 / fd00:96::61   LoadBalancer 198.51.100.61, eTP Local, 80->30081;
//                                     backend-1 on this node, backend-2/3 on other-node
//   remote 10.96.0.62                 LoadBalancer 198.51.100.62, eTP Local, 80->30082; backend-2/3 on other-node
//   lb     10.96.0.63                 LoadBalancer 198.51.100.63, externalIPs 192.0.2.63, 80->30083 -> backend-1..3
//   fw     10.96.0.64                 LoadBalancer 198.51.100.64, sourceRanges 192.168.100.0/24, 80->30084 -> backend-1..3
//   sticky 10.96.0.65                 ClientIP affinity, timeoutSeconds 2 -> backend-1..3
//   keep   10.96.0.66                 ClientIP affinity, the default timeout -> backend-1..3
//   hinted 10.96.0.67                 backend-1 hinted for zone-a (this node's zone), backend-2/3 for zone-b
//   draining 10.96.0.68               no Ready endpoint: backend-1 terminating and not serving, 2/3 serving
//   rolling 10.96.0.69                backend-1 Ready, backend-2/3 serving but terminating
//   sticky6 10.96.0.70 / fd00:96::70  ClientIP affinity, the default timeout -> backend-1..3
//   paths  10.96.0.71 / fd00:96::71   NodePort 80->30071, externalIPs 192.0.2.71, 2001:db8:2::71,
//                                     ClientIP affinity (default timeout) -> backend-1..3
//   stlocal 10.96.0.72 / fd00:96::72  LoadBalancer 198.51.100.72, 2001:db8:51::72, eTP Local, 80->30072,
//                                     ClientIP affinity (default timeout);
//                                     backend-1/2 on this node, backend-3 on other-node
// Where a drop is expected, the address is one the node would otherwise answer or refuse: an
// LB IP it forwards to its upstream router, which answers "unreachable" (tests/netns/outside.ts),
// its own IP or the Service range it routes to itself ("refused", closed ports). So "timeout"
// can only come from a rule that dropped the packet.
import test, { type ExecutionContext } from 'ava';
import { isIPv6 } from 'node:net';
import { CLIENT_LINK, GiveUp, type FlowResult, type Topology } from '../../ts/demo/topology.js';
import { waitWhileRunning } from '../helpers/agent.js';
import { clusterFor, WEB_IP, WEB_IP6, type Cluster } from './cluster.js';
import { ALL_BACKENDS, destination, tally, type Proto } from './flows.js';
import { endpointSlice, node, NODE_NAME, service, WEB_PORTS, type ServicePortDef } from './manifests.js';
import { OUTSIDE_LINK, outsideFor } from './outside.js';

const NODE_IP = CLIENT_LINK.nodeV4;
const NODE_IP6 = CLIENT_LINK.nodeV6;
const ALL = ALL_BACKENDS(3);
const HTTP = WEB_PORTS[0];
const DNS = WEB_PORTS[1];
const STICKY_IP = '10.96.0.65';
const STICKY_TIMEOUT_S = 2;
const KEEP_IP = '10.96.0.66';
const STICKY6_IP6 = 'fd00:96::70';
const PATHS = { v4: { cluster: '10.96.0.71', external: '192.0.2.71' }, v6: { cluster: 'fd00:96::71', external: '2001:db8:2::71' }, nodePort: 30071 };
const STLOCAL_LB = { v4: '198.51.100.72', v6: '2001:db8:51::72' };
const STLOCAL_NODEPORT = 30072;
const AFFINITY = { sessionAffinity: 'ClientIP' };

type Port = ServicePortDef & { nodePort?: number };

/** A Service of the address plan: `service()` with node ports, extra spec fields and an LB ingress IP. */
function svc(name: string, clusterIPs: string[], ports: Port[], spec: Record<string, unknown> = {}, ingress?: string) {
  const s = service(name, clusterIPs, ports);
  s.spec.ports = ports.map((p) => ({ name: p.name, port: p.port, targetPort: p.targetPort, protocol: p.protocol, ...(p.nodePort ? { nodePort: p.nodePort } : {}) }));
  Object.assign(s.spec, spec);
  return ingress ? { ...s, status: { loadBalancer: { ingress: [{ ip: ingress }] } } } : s;
}

/** The Service's EndpointSlices: backend i (1-based) for each family, on the node named for it. */
function slices(name: string, placement: Record<number, string>, ports: Port[], families: Array<'IPv4' | 'IPv6'> = ['IPv4', 'IPv6']) {
  const indexes = Object.keys(placement).map(Number);
  return families.map((f) => {
    const s = endpointSlice(name, f, indexes.map((i) => (f === 'IPv4' ? `10.244.${i}.2` : `fd00:244:0:${i}::2`)), ports);
    s.endpoints.forEach((e, k) => (e.nodeName = placement[indexes[k]]));
    return s;
  });
}

const HERE = { 1: NODE_NAME, 2: NODE_NAME, 3: NODE_NAME };
/** The one backend that answered every attempt of a burst, or undefined (several, or errors). */
const only = (counts: Record<string, number>) => (Object.keys(counts).length === 1 && !Object.keys(counts)[0].startsWith('error') ? Object.keys(counts)[0] : undefined);
/** A tally on one line ("backend-2 x10, backend-3 x2"), so a diff shows which row it belongs to. */
const line = (counts: Record<string, number>) => Object.entries(counts).map(([k, n]) => `${k} x${n}`).sort().join(', ');

/** backend-1..3 of a Service, each with these conditions (ready unless said) or a zone hint. */
function conditioned(name: string, eps: Array<{ ready?: boolean; serving?: boolean; terminating?: boolean; zone?: string }>) {
  const s = endpointSlice(name, 'IPv4', eps.map((_, i) => `10.244.${i + 1}.2`), [HTTP]);
  s.endpoints.forEach((e, i) => {
    const c = eps[i];
    e.conditions = { ready: c.ready ?? true, serving: c.serving ?? true, terminating: c.terminating ?? false };
    if (c.zone) Object.assign(e, { zone: c.zone, hints: { forZones: [{ name: c.zone }] } });
  });
  return s;
}
const SPLIT = { 1: NODE_NAME, 2: 'other-node', 3: 'other-node' };
const LB = { type: 'LoadBalancer' };
const LOCAL = { ...LB, externalTrafficPolicy: 'Local' };

const EXTRA: Record<string, object[]> = {
  // Replaces cluster.ts's plain Node: a real node's addresses, where "primary" NodePorts answer.
  'node.yaml': [{
    ...node(),
    metadata: { ...node().metadata, labels: { ...node().metadata.labels, 'topology.kubernetes.io/zone': 'zone-a' } },
    status: { addresses: [{ type: 'InternalIP', address: NODE_IP }, { type: 'InternalIP', address: NODE_IP6 }] },
  }],
  'servicecidr.yaml': [{ apiVersion: 'networking.k8s.io/v1', kind: 'ServiceCIDR', metadata: { name: 'kubernetes' }, spec: { cidrs: ['10.96.0.0/16', 'fd00:96::/112'] } }],
  'np.yaml': [
    svc('np', ['10.96.0.60', 'fd00:96::60'], [{ ...HTTP, nodePort: 30080 }, { ...DNS, nodePort: 30053 }], { type: 'NodePort' }),
    ...slices('np', HERE, WEB_PORTS),
  ],
  'local.yaml': [
    svc('local', ['10.96.0.61', 'fd00:96::61'], [{ ...HTTP, nodePort: 30081 }], { ...LOCAL, healthCheckNodePort: 32061 }, '198.51.100.61'),
    ...slices('local', SPLIT, [HTTP]),
    svc('remote', ['10.96.0.62'], [{ ...HTTP, nodePort: 30082 }], { ...LOCAL, healthCheckNodePort: 32062 }, '198.51.100.62'),
    ...slices('remote', { 2: 'other-node', 3: 'other-node' }, [HTTP], ['IPv4']),
  ],
  'lb.yaml': [
    svc('lb', ['10.96.0.63'], [{ ...HTTP, nodePort: 30083 }], { ...LB, externalIPs: ['192.0.2.63'] }, '198.51.100.63'),
    ...slices('lb', HERE, [HTTP], ['IPv4']),
    svc('fw', ['10.96.0.64'], [{ ...HTTP, nodePort: 30084 }], { ...LB, loadBalancerSourceRanges: ['192.168.100.0/24'] }, '198.51.100.64'),
    ...slices('fw', HERE, [HTTP], ['IPv4']),
  ],
  'sticky.yaml': [
    svc('sticky', [STICKY_IP], [HTTP], { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: STICKY_TIMEOUT_S } } }),
    ...slices('sticky', HERE, [HTTP], ['IPv4']),
  ],
  // Topology hints (this node is in zone-a) and the terminating fallback.
  'topology.yaml': [
    svc('hinted', ['10.96.0.67'], [HTTP]),
    conditioned('hinted', [{ zone: 'zone-a' }, { zone: 'zone-b' }, { zone: 'zone-b' }]),
    svc('draining', ['10.96.0.68'], [HTTP]),
    conditioned('draining', [{ ready: false, terminating: true, serving: false }, { ready: false, terminating: true }, { ready: false, terminating: true }]),
    svc('rolling', ['10.96.0.69'], [HTTP]),
    conditioned('rolling', [{}, { ready: false, terminating: true }, { ready: false, terminating: true }]),
  ],
  // The default timeout (3 h): nothing expires while the test changes endpoints.
  'keep.yaml': [svc('keep', [KEEP_IP], [HTTP], { sessionAffinity: 'ClientIP' }), ...slices('keep', HERE, [HTTP], ['IPv4'])],
  'sticky6.yaml': [svc('sticky6', ['10.96.0.70', STICKY6_IP6], [HTTP], AFFINITY), ...slices('sticky6', HERE, [HTTP])],
  'paths.yaml': [
    svc('paths', [PATHS.v4.cluster, PATHS.v6.cluster], [{ ...HTTP, nodePort: PATHS.nodePort }],
      { type: 'NodePort', externalIPs: [PATHS.v4.external, PATHS.v6.external], ...AFFINITY }),
    ...slices('paths', HERE, [HTTP]),
  ],
  'stlocal.yaml': [
    {
      ...svc('stlocal', ['10.96.0.72', 'fd00:96::72'], [{ ...HTTP, nodePort: STLOCAL_NODEPORT }], { ...LOCAL, healthCheckNodePort: 32072, ...AFFINITY }),
      status: { loadBalancer: { ingress: [{ ip: STLOCAL_LB.v4 }, { ip: STLOCAL_LB.v6 }] } },
    },
    ...slices('stlocal', { 1: NODE_NAME, 2: NODE_NAME, 3: 'other-node' }, [HTTP]),
  ],
};

type Group = 'nodeport' | 'local' | 'external' | 'ranges' | 'servicecidr' | 'topology';
/**
 * One flow: new connections (or UDP sockets) from `from` ('client', 'outside', 'node' or a
 * backend) to `to`. expect: the backends that must all answer (count is picked so that each
 * shows up: a miss has odds of about 3 * (2/3)^count) and how they see the source, or the one
 * error every attempt ends in.
 */
type Row = [group: Group, name: string, from: string, to: string, proto: Proto, expect: string[] | 'timeout' | 'refused', source: 'masqueraded' | 'kept' | '', count: number];

const FLOWS: Row[] = [
  ['nodeport', 'NodePort TCP from outside: every endpoint, masqueraded', 'client', `${NODE_IP}:30080`, 'tcp', ALL, 'masqueraded', 40],
  ['nodeport', 'NodePort UDP from outside', 'client', `${NODE_IP}:30053`, 'udp', ALL, 'masqueraded', 40],
  ['nodeport', 'IPv6 NodePort TCP from outside', 'client', `[${NODE_IP6}]:30080`, 'tcp', ALL, 'masqueraded', 40],
  ['nodeport', 'IPv6 NodePort UDP from outside', 'client', `[${NODE_IP6}]:30053`, 'udp', ALL, 'masqueraded', 40],
  ['nodeport', 'NodePort from a pod: masqueraded too (eTP Cluster)', 'backend-1', `${NODE_IP}:30080`, 'tcp', ALL, 'masqueraded', 40],
  ['nodeport', 'NodePort from a second outside source', 'outside', `${NODE_IP}:30080`, 'tcp', ALL, 'masqueraded', 40],
  ['nodeport', 'another node address is not a NodePort address ("primary"): its own closed port', 'client', '10.244.1.1:30080', 'tcp', 'refused', '', 2],

  ['local', 'eTP Local LB IP from outside: the local endpoint only, client IP kept', 'client', '198.51.100.61:80', 'tcp', ['backend-1'], 'kept', 10],
  ['local', 'eTP Local NodePort from outside: local endpoint only, client IP kept', 'client', `${NODE_IP}:30081`, 'tcp', ['backend-1'], 'kept', 10],
  ['local', 'IPv6 eTP Local NodePort: local endpoint only, client IP kept', 'client', `[${NODE_IP6}]:30081`, 'tcp', ['backend-1'], 'kept', 10],
  ['local', 'eTP Local LB IP from the second outside source: kept too', 'outside', '198.51.100.61:80', 'tcp', ['backend-1'], 'kept', 10],
  ['local', 'eTP Local LB IP, no local endpoint: dropped, not refused', 'client', '198.51.100.62:80', 'tcp', 'timeout', '', 2],
  ['local', 'eTP Local NodePort, no local endpoint: dropped, not refused', 'client', `${NODE_IP}:30082`, 'tcp', 'timeout', '', 2],
  ['local', 'a pod reaching the eTP Local LB IP short-circuits to the cluster endpoints, source kept', 'backend-1', '198.51.100.62:80', 'tcp', ['backend-2', 'backend-3'], 'kept', 30],
  ['local', 'the node itself reaching an eTP Local NodePort: every endpoint, masqueraded', 'node', `${NODE_IP}:30081`, 'tcp', ALL, 'masqueraded', 40],
  ['local', 'the eTP Local ClusterIP keeps every endpoint (internal policy Cluster)', 'client', '10.96.0.62:80', 'tcp', ['backend-2', 'backend-3'], 'masqueraded', 30],

  ['external', 'LoadBalancer ingress IP from outside: every endpoint, masqueraded', 'client', '198.51.100.63:80', 'tcp', ALL, 'masqueraded', 40],
  ['external', 'externalIP from outside: every endpoint, masqueraded', 'client', '192.0.2.63:80', 'tcp', ALL, 'masqueraded', 40],
  ['external', 'externalIP from a pod: masqueraded', 'backend-2', '192.0.2.63:80', 'tcp', ALL, 'masqueraded', 40],
  ['external', 'LoadBalancer NodePort', 'client', `${NODE_IP}:30083`, 'tcp', ALL, 'masqueraded', 40],

  ['ranges', 'source range: the allowed client reaches the LB IP', 'client', '198.51.100.64:80', 'tcp', ALL, 'masqueraded', 40],
  ['ranges', 'source range: a source outside it is dropped', 'outside', '198.51.100.64:80', 'tcp', 'timeout', '', 2],
  ['ranges', 'source range: a pod outside it is dropped too', 'backend-1', '198.51.100.64:80', 'tcp', 'timeout', '', 2],
  ['ranges', '... while that source reaches an LB IP without ranges', 'outside', '198.51.100.63:80', 'tcp', ALL, 'masqueraded', 40],
  ['ranges', '... and the ranged Service\'s NodePort (ranges guard LB IPs only)', 'outside', `${NODE_IP}:30084`, 'tcp', ALL, 'masqueraded', 40],
  ['ranges', '... and its ClusterIP', 'outside', '10.96.0.64:80', 'tcp', ALL, 'masqueraded', 40],

  ['topology', 'zone hints: only the endpoint hinted for this node\'s zone', 'client', '10.96.0.67:80', 'tcp', ['backend-1'], 'masqueraded', 20],
  ['topology', 'no Ready endpoint: the serving terminating ones take the traffic', 'client', '10.96.0.68:80', 'tcp', ['backend-2', 'backend-3'], 'masqueraded', 30],
  ['topology', 'a Ready endpoint beside terminating ones: only the Ready one', 'client', '10.96.0.69:80', 'tcp', ['backend-1'], 'masqueraded', 20],

  ['servicecidr', 'a real ClusterIP works', 'client', `${WEB_IP}:80`, 'tcp', ALL, 'masqueraded', 40],
  ['servicecidr', 'a real IPv6 ClusterIP works', 'client', `[${WEB_IP6}]:80`, 'tcp', ALL, 'masqueraded', 40],
  ['servicecidr', 'an unallocated IP in the ServiceCIDR, TCP: dropped', 'client', '10.96.9.9:80', 'tcp', 'timeout', '', 2],
  ['servicecidr', 'an unallocated IP in the ServiceCIDR, UDP: dropped', 'client', '10.96.9.9:53', 'udp', 'timeout', '', 2],
  ['servicecidr', 'an unallocated IPv6 in the ServiceCIDR: dropped', 'client', '[fd00:96::99]:80', 'tcp', 'timeout', '', 2],
  ['servicecidr', 'an unallocated IP from a pod: dropped', 'backend-2', '10.96.9.9:80', 'tcp', 'timeout', '', 2],
  ['servicecidr', 'an undefined port on a real ClusterIP is still rejected (reset), not dropped', 'client', `${WEB_IP}:81`, 'tcp', 'refused', '', 2],
];

interface Bed extends Cluster {
  outside: string;
}

/** The agent over every manifest above, the outside namespace, the ruleset logged on failure. */
async function bedFor(t: ExecutionContext, name: string): Promise<Bed> {
  const c = await clusterFor(t, { name, extra: EXTRA });
  const outside = await outsideFor(t, c.topo);
  t.teardown(async () => {
    if (t.passed) return;
    let ruleset = await c.topo.exec(c.topo.node, ['nft', 'list', 'ruleset'], { allowFailure: true });
    if (ruleset.code !== 0) ruleset = await c.topo.exec(c.topo.node, ['nft', '-j', 'list', 'ruleset'], { allowFailure: true });
    t.log(`nft list ruleset (node namespace):\n${ruleset.stdout}${ruleset.stderr}`);
  });
  // The first sync holds everything; NodePorts need the Node's addresses, so wait for them too.
  await waitWhileRunning(c.agent, 'the NodePorts in both families', async () => {
    const lists = await Promise.all(['ip', 'ip6'].map((f) => c.topo.exec(c.topo.node, ['nft', 'list', 'table', f, 'kube-proxy'], { allowFailure: true })));
    const broken = lists.find((r) => r.code !== 0 && !/No such file/.test(r.stderr));
    if (broken) throw new GiveUp(`nft cannot list the kube-proxy tables: ${broken.stderr.trim()}`);
    return lists.every((r) => r.stdout.includes('30080'));
  });
  return { ...c, outside };
}

function namespace(bed: Bed, who: string): string {
  if (who === 'client') return bed.topo.client;
  if (who === 'outside') return bed.outside;
  if (who === 'node') return bed.topo.node;
  const b = bed.topo.backends.find((x) => x.name === who);
  if (!b) throw new Error(`no namespace ${who}`);
  return b.ns;
}

/** The address a flow leaves `who` with, before any NAT ('node': its client-link address, the source towards its own NodePort IP). */
function sender(topo: Topology, who: string, v6: boolean): string {
  if (who === 'client' || who === 'node') return v6 ? CLIENT_LINK[who === 'client' ? 'clientV6' : 'nodeV6'] : CLIENT_LINK[who === 'client' ? 'clientV4' : 'nodeV4'];
  if (who === 'outside') return v6 ? OUTSIDE_LINK.v6 : OUTSIDE_LINK.v4;
  const b = topo.backends.find((x) => x.name === who)!;
  return v6 ? b.v6 : b.v4;
}

/** What the packets did: "<backend> masqueraded|kept|seen from <ip>" per answer, or the error. */
function observed(topo: Topology, from: string, v6: boolean, results: FlowResult[]): string[] {
  const seen = results.map((r) => {
    if (!r.ok) return r.error;
    const b = topo.backends.find((x) => x.name === r.backend);
    const how = r.source === (v6 ? b?.nodeV6 : b?.nodeV4) ? 'masqueraded' : r.source === sender(topo, from, v6) ? 'kept' : `seen from ${r.source}`;
    return `${r.backend} ${how}`;
  });
  return [...new Set(seen)].sort();
}

/** Runs every row and compares them all at once, so a failure lists each differing row. */
async function checkRows(t: ExecutionContext, group: Group): Promise<void> {
  const bed = await bedFor(t, `svct-${group}`.slice(0, 14));
  const seen: Record<string, string[]> = {};
  const want: Record<string, string[]> = {};
  for (const [, name, from, to, proto, expect, source, count] of FLOWS.filter((r) => r[0] === group)) {
    const { host, port } = destination(to);
    const opts = { count, timeoutMs: typeof expect === 'string' ? 1500 : 3000 };
    const ns = namespace(bed, from);
    const results = proto === 'tcp' ? await bed.topo.tcpRequests(ns, host, port, opts) : await bed.topo.udpRequests(ns, host, port, opts);
    const key = `${name}: ${from} -> ${to}/${proto}`;
    seen[key] = observed(bed.topo, from, isIPv6(host), results);
    want[key] = typeof expect === 'string' ? [expect] : expect.map((b) => `${b} ${source}`).sort();
  }
  t.deepEqual(seen, want, 'kernel (-) vs expected (+)');
}

test.serial('NodePorts from outside, IPv4 and IPv6, TCP and UDP: every endpoint, masqueraded', async (t) => {
  await checkRows(t, 'nodeport');
});

test.serial('externalTrafficPolicy Local: local endpoints with the client IP kept, a drop when none is local', async (t) => {
  await checkRows(t, 'local');
});

test.serial('a LoadBalancer ingress IP and an externalIP reach the endpoints', async (t) => {
  await checkRows(t, 'external');
});

test.serial('loadBalancerSourceRanges: an allowed source connects, any other is dropped', async (t) => {
  await checkRows(t, 'ranges');
});

test.serial('topology hints and the terminating fallback, applied to real traffic', async (t) => {
  await checkRows(t, 'topology');
});

test.serial('ServiceCIDR: an unallocated IP is dropped while a real ClusterIP works', async (t) => {
  await checkRows(t, 'servicecidr');
});

test.serial('ClientIP affinity: one client sticks to one backend, and picks anew after timeoutSeconds idle', async (t) => {
  const bed = await bedFor(t, 'svct-sticky');
  /** A burst of new connections, back to back (far inside the timeout): every answer counted. */
  const burst = async (ns: string, count: number) => tally(await bed.topo.tcpRequests(ns, STICKY_IP, 80, { count }));

  // Without affinity, 30 connections on one of 3 backends has odds of 3 * (1/3)^30.
  const first = await burst(bed.topo.client, 30);
  t.truthy(only(first), `30 connections from the client: ${JSON.stringify(first)}`);
  const other = await burst(bed.outside, 30);
  t.truthy(only(other), `30 connections from a second client: ${JSON.stringify(other)}`);

  // Idle for longer than timeoutSeconds, then a new burst: the client's entry has expired, so
  // the backend is picked anew (1 in 3 it is the same one). Bounded: with expiry working, ten
  // rounds all on one backend have odds of (1/3)^10; without it, they always are.
  const backends = new Set([only(first)]);
  const rounds: Array<Record<string, number>> = [];
  for (let round = 0; round < 10 && backends.size < 2; round++) {
    await new Promise((r) => setTimeout(r, STICKY_TIMEOUT_S * 1000 + 1500));
    const counts = await burst(bed.topo.client, 5);
    rounds.push(counts);
    t.truthy(only(counts), `a burst after the timeout sticks again: ${JSON.stringify(counts)}`);
    backends.add(only(counts));
  }
  t.true(backends.size >= 2, `after each idle period the client still landed on ${[...backends].join(', ')}; rounds: ${JSON.stringify(rounds)}`);
});

test.serial('ClientIP affinity: when one backend leaves, only its clients move', async (t) => {
  const bed = await bedFor(t, 'svct-keep');
  const burst = async (ns: string) => tally(await bed.topo.tcpRequests(ns, KEEP_IP, 80, { count: 5 }));
  // Five clients (the two outside namespaces and the three pods), each stuck to one backend.
  const clients = [bed.topo.client, bed.outside, ...bed.topo.backends.map((b) => b.ns)];
  const before = new Map<string, string | undefined>();
  for (const ns of clients) before.set(ns, only(await burst(ns)));
  t.true([...before.values()].every(Boolean), `each client sticks: ${JSON.stringify([...before])}`);
  // The backend with the fewest clients leaves (so most clients must stay where they are).
  const load = (b: string) => [...before.values()].filter((v) => v === b).length;
  const leaving = [...bed.topo.backends].sort((a, b) => load(a.name) - load(b.name))[0];
  const staying = bed.topo.backends.filter((b) => b !== leaving).map((b) => Number(b.name.split('-')[1]));
  const placement = Object.fromEntries(staying.map((i) => [i, NODE_NAME]));
  await bed.manifests.write('keep.yaml', EXTRA['keep.yaml'][0], ...slices('keep', placement, [HTTP], ['IPv4']));
  await waitWhileRunning(bed.agent, `${leaving.name} out of the keep Service`, async () => {
    const r = await bed.topo.exec(bed.topo.node, ['nft', 'list', 'table', 'ip', 'kube-proxy'], { allowFailure: true });
    return !r.stdout.includes(`keep/tcp/http__${leaving.v4}/`);
  });
  const after = new Map<string, string | undefined>();
  for (const ns of clients) after.set(ns, only(await burst(ns)));
  const want = new Map([...before].map(([ns, b]) => [ns, b === leaving.name ? 'moved' : b]));
  const seen = new Map([...after].map(([ns, b]) => [ns, before.get(ns) === leaving.name && b && b !== leaving.name ? 'moved' : b]));
  // With the map flushed instead, each staying client keeps its backend only 1 time in 2.
  t.deepEqual([...seen], [...want], `before ${JSON.stringify([...before])}, ${leaving.name} left`);
  t.true(clients.some((ns) => before.get(ns) !== leaving.name), 'some client had another backend');
});

test.serial('ClientIP affinity on an IPv6 ClusterIP: each client sticks to one backend', async (t) => {
  const bed = await bedFor(t, 'svct-sticky6');
  // Without affinity, 30 connections on one of 3 backends has odds of 3 * (1/3)^30.
  const seen: Record<string, string> = {};
  const want: Record<string, string> = {};
  for (const [who, ns] of [['client', bed.topo.client], ['outside', bed.outside]]) {
    const counts = tally(await bed.topo.tcpRequests(ns, STICKY6_IP6, 80, { count: 30 }));
    seen[who] = line(counts);
    want[who] = `${only(counts) ?? 'one backend'} x30`;
  }
  t.deepEqual(seen, want, `30 connections from each client to [${STICKY6_IP6}]:80`);
});

test.serial('ClientIP affinity holds across a Service\'s paths: NodePort, then externalIP, then ClusterIP', async (t) => {
  const bed = await bedFor(t, 'svct-paths');
  // Four off-node clients (each namespace's IPv4 and IPv6 address). Each first lands on some
  // backend B through the NodePort; its bursts through the externalIP and the ClusterIP (which
  // the node routes for off-node clients too) must land on B as well. Without the entries the
  // recorder writes for the other paths, each later path picks its own backend (and sticks to
  // it): B again 1 time in 3 per path, so all four clients pass by luck with odds (1/9)^4.
  const clients: Array<[string, string, boolean]> = [
    ['client', bed.topo.client, false], ['outside', bed.outside, false], ['client IPv6', bed.topo.client, true], ['outside IPv6', bed.outside, true],
  ];
  const seen: Record<string, string> = {};
  const want: Record<string, string> = {};
  for (const [who, ns, v6] of clients) {
    const a = v6 ? PATHS.v6 : PATHS.v4;
    const node = v6 ? `[${NODE_IP6}]` : NODE_IP;
    const paths = [`${node}:${PATHS.nodePort}`, `${v6 ? `[${a.external}]` : a.external}:80`, `${v6 ? `[${a.cluster}]` : a.cluster}:80`];
    let first: string | undefined;
    for (const to of paths) {
      const { host, port } = destination(to);
      const counts = tally(await bed.topo.tcpRequests(ns, host, port, { count: 10 }));
      first ??= only(counts) ?? 'one backend';
      seen[`${who} -> ${to}`] = line(counts);
      want[`${who} -> ${to}`] = `${first} x10`;
    }
  }
  t.deepEqual(seen, want, 'each client\'s bursts, in order: NodePort, externalIP, ClusterIP');
});

test.serial('ClientIP affinity with externalTrafficPolicy Local: one local endpoint, the client IP kept, on the LB IP and the NodePort', async (t) => {
  const bed = await bedFor(t, 'svct-stlocal');
  // backend-1/2 are local, backend-3 is not (its namespace still answers, so a stray pick shows).
  // Four off-node clients (each namespace's IPv4 and IPv6 address). Without affinity, 30
  // connections on one of the two local endpoints has odds of 2 * (1/2)^30. The NodePort burst
  // then must land on the same endpoint (the LB IP's recorder writes the NodePort's local map
  // too); without that entry it would pick anew, the same one 1 time in 2 (all four: 1 in 16).
  const seen: Record<string, string> = {};
  const want: Record<string, string> = {};
  for (const [who, v6] of [['client', false], ['outside', false], ['client', true], ['outside', true]] as const) {
    const ns = namespace(bed, who);
    const lbIP = v6 ? STLOCAL_LB.v6 : STLOCAL_LB.v4;
    const nodeIP = v6 ? NODE_IP6 : NODE_IP;
    const lb = await bed.topo.tcpRequests(ns, lbIP, 80, { count: 30 });
    const np = await bed.topo.tcpRequests(ns, nodeIP, STLOCAL_NODEPORT, { count: 10 });
    const b = only(tally(lb));
    const expect = b && ['backend-1', 'backend-2'].includes(b) ? `${b} kept` : 'backend-1 or backend-2 kept';
    const [lbTo, npTo] = v6 ? [`[${lbIP}]:80`, `[${nodeIP}]:${STLOCAL_NODEPORT}`] : [`${lbIP}:80`, `${nodeIP}:${STLOCAL_NODEPORT}`];
    seen[`${who} -> ${lbTo}`] = observed(bed.topo, who, v6, lb).join(', ');
    seen[`${who} -> ${npTo}`] = observed(bed.topo, who, v6, np).join(', ');
    want[`${who} -> ${lbTo}`] = expect;
    want[`${who} -> ${npTo}`] = expect;
  }
  t.deepEqual(seen, want, 'each client: LB IP burst, then NodePort burst');
});
