// The packet matrix: NodePorts, externalTrafficPolicy Local, LoadBalancer and external IPs,
// source ranges, topology, ClientIP affinity and the ServiceCIDR drop, as objects and rows of
// real flows. One table for every source and proxy: tests/netns/service-types.test.ts (kproxy on
// manifests), tests/k8s/matrix.test.ts (kproxy and upstream kube-proxy through a real API
// server); tests/unit/packet-flows-nodeport.test.ts traces the same flows without a kernel.
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
import type { ExecutionContext } from 'ava';
import { isIPv6 } from 'node:net';
import { CLIENT_LINK, type FlowResult, type Topology } from '../../ts/demo/topology.js';
import { WEB_IP, WEB_IP6 } from './cluster.js';
import { ALL_BACKENDS, destination, type Proto } from './flows.js';
import { endpointSlice, node, NODE_NAME, WEB_PORTS, service, type ServicePortDef } from './manifests.js';
import { OUTSIDE_LINK } from './outside.js';

export const NODE_IP = CLIENT_LINK.nodeV4;
export const NODE_IP6 = CLIENT_LINK.nodeV6;
export const ALL = ALL_BACKENDS(3);
export const HTTP = WEB_PORTS[0];
export const DNS = WEB_PORTS[1];
export const STICKY_IP = '10.96.0.65';
export const STICKY_TIMEOUT_S = 2;
export const KEEP_IP = '10.96.0.66';
export const STICKY6_IP6 = 'fd00:96::70';
export const PATHS = { v4: { cluster: '10.96.0.71', external: '192.0.2.71' }, v6: { cluster: 'fd00:96::71', external: '2001:db8:2::71' }, nodePort: 30071 };
export const STLOCAL_LB = { v4: '198.51.100.72', v6: '2001:db8:51::72' };
export const STLOCAL_NODEPORT = 30072;
export const AFFINITY = { sessionAffinity: 'ClientIP' };

export type Port = ServicePortDef & { nodePort?: number };

/** A Service of the address plan: `service()` with node ports, extra spec fields and an LB ingress IP. */
export function svc(name: string, clusterIPs: string[], ports: Port[], spec: Record<string, unknown> = {}, ingress?: string) {
  const s = service(name, clusterIPs, ports);
  s.spec.ports = ports.map((p) => ({ name: p.name, port: p.port, targetPort: p.targetPort, protocol: p.protocol, ...(p.nodePort ? { nodePort: p.nodePort } : {}) }));
  Object.assign(s.spec, spec);
  return ingress ? { ...s, status: { loadBalancer: { ingress: [{ ip: ingress }] } } } : s;
}

/** The Service's EndpointSlices: backend i (1-based) for each family, on the node named for it. */
export function slices(name: string, placement: Record<number, string>, ports: Port[], families: Array<'IPv4' | 'IPv6'> = ['IPv4', 'IPv6']) {
  const indexes = Object.keys(placement).map(Number);
  return families.map((f) => {
    const s = endpointSlice(name, f, indexes.map((i) => (f === 'IPv4' ? `10.244.${i}.2` : `fd00:244:0:${i}::2`)), ports);
    s.endpoints.forEach((e, k) => (e.nodeName = placement[indexes[k]]));
    return s;
  });
}

export const HERE = { 1: NODE_NAME, 2: NODE_NAME, 3: NODE_NAME };
/** The one backend that answered every attempt of a burst, or undefined (several, or errors). */
export const only = (counts: Record<string, number>) => (Object.keys(counts).length === 1 && !Object.keys(counts)[0].startsWith('error') ? Object.keys(counts)[0] : undefined);
/** A tally on one line ("backend-2 x10, backend-3 x2"), so a diff shows which row it belongs to. */
export const line = (counts: Record<string, number>) => Object.entries(counts).map(([k, n]) => `${k} x${n}`).sort().join(', ');

/** backend-1..3 of a Service, each with these conditions (ready unless said) or a zone hint. */
export function conditioned(name: string, eps: Array<{ ready?: boolean; serving?: boolean; terminating?: boolean; zone?: string }>) {
  const s = endpointSlice(name, 'IPv4', eps.map((_, i) => `10.244.${i + 1}.2`), [HTTP]);
  s.endpoints.forEach((e, i) => {
    const c = eps[i];
    e.conditions = { ready: c.ready ?? true, serving: c.serving ?? true, terminating: c.terminating ?? false };
    if (c.zone) Object.assign(e, { zone: c.zone, hints: { forZones: [{ name: c.zone }] } });
  });
  return s;
}
export const SPLIT = { 1: NODE_NAME, 2: 'other-node', 3: 'other-node' };
export const LB = { type: 'LoadBalancer' };
export const LOCAL = { ...LB, externalTrafficPolicy: 'Local' };

export const EXTRA: Record<string, object[]> = {
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

export type Group = 'nodeport' | 'local' | 'external' | 'ranges' | 'servicecidr' | 'topology';
/**
 * One flow: new connections (or UDP sockets) from `from` ('client', 'outside', 'node' or a
 * backend) to `to`. expect: the backends that must all answer (count is picked so that each
 * shows up: a miss has odds of about 3 * (2/3)^count) and how they see the source, or the one
 * error every attempt ends in.
 */
export type Row = [group: Group, name: string, from: string, to: string, proto: Proto, expect: string[] | 'timeout' | 'refused' | 'reset', source: 'masqueraded' | 'kept' | '', count: number];

export const FLOWS: Row[] = [
  ['nodeport', 'NodePort TCP from outside: every endpoint, masqueraded', 'client', `${NODE_IP}:30080`, 'tcp', ALL, 'masqueraded', 40],
  ['nodeport', 'NodePort UDP from outside', 'client', `${NODE_IP}:30053`, 'udp', ALL, 'masqueraded', 40],
  ['nodeport', 'IPv6 NodePort TCP from outside', 'client', `[${NODE_IP6}]:30080`, 'tcp', ALL, 'masqueraded', 40],
  ['nodeport', 'IPv6 NodePort UDP from outside', 'client', `[${NODE_IP6}]:30053`, 'udp', ALL, 'masqueraded', 40],
  ['nodeport', 'NodePort from a pod: masqueraded too (eTP Cluster)', 'backend-1', `${NODE_IP}:30080`, 'tcp', ALL, 'masqueraded', 40],
  ['nodeport', 'NodePort from a second outside source', 'outside', `${NODE_IP}:30080`, 'tcp', ALL, 'masqueraded', 40],
  ['nodeport', 'another node address is not a NodePort address ("primary"): its own closed port', 'client', '10.244.1.1:30080', 'tcp', 'refused', '', 2],
  ['nodeport', 'a NodePort on 127.0.0.1 from the node itself: no localhost NodePorts', 'node', '127.0.0.1:30080', 'tcp', 'refused', '', 2],

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

/** Where the rows run: a topology with its outside namespace, a proxy programming the node. */
export interface MatrixBed {
  topo: Topology;
  outside: string;
}

export function namespace(bed: MatrixBed, who: string): string {
  if (who === 'client') return bed.topo.client;
  if (who === 'outside') return bed.outside;
  if (who === 'node') return bed.topo.node;
  const b = bed.topo.backends.find((x) => x.name === who);
  if (!b) throw new Error(`no namespace ${who}`);
  return b.ns;
}

/** The address a flow leaves `who` with, before any NAT ('node': its client-link address, the source towards its own NodePort IP). */
export function sender(topo: Topology, who: string, v6: boolean): string {
  if (who === 'client' || who === 'node') return v6 ? CLIENT_LINK[who === 'client' ? 'clientV6' : 'nodeV6'] : CLIENT_LINK[who === 'client' ? 'clientV4' : 'nodeV4'];
  if (who === 'outside') return v6 ? OUTSIDE_LINK.v6 : OUTSIDE_LINK.v4;
  const b = topo.backends.find((x) => x.name === who)!;
  return v6 ? b.v6 : b.v4;
}

/** What the packets did: "<backend> masqueraded|kept|seen from <ip>" per answer, or the error. */
export function observed(topo: Topology, from: string, v6: boolean, results: FlowResult[]): string[] {
  const seen = results.map((r) => {
    if (!r.ok) return r.error;
    const b = topo.backends.find((x) => x.name === r.backend);
    const how = r.source === (v6 ? b?.nodeV6 : b?.nodeV4) ? 'masqueraded' : r.source === sender(topo, from, v6) ? 'kept' : `seen from ${r.source}`;
    return `${r.backend} ${how}`;
  });
  return [...new Set(seen)].sort();
}

/** Runs every row of `groups` on `bed` and compares them all at once, so a failure lists each
 * differing row; `skip` names the rows a proxy is not held to (row name: why). */
/** A row a proxy answers differently, what it does instead, and why (a documented deviation). */
export interface RowException {
  /** As a row's: the backends that answer, or 'refused' / 'reset' / 'timeout'. */
  outcome: Row[5];
  source?: Row[6];
  /** Connections to send (a row that expects a refusal sends few; backends need more). */
  count?: number;
  why: string;
}

/** The rows each mode answers otherwise, and why (one list per mode). */
const NO_SERVICECIDR_DROP = (mode: string) => `${mode} mode has no unallocated-ServiceCIDR drop (upstream added it to nftables mode only); the node's closed port answers`;
const UNALLOCATED = [
  'an unallocated IP in the ServiceCIDR, TCP: dropped',
  'an unallocated IP in the ServiceCIDR, UDP: dropped',
  'an unallocated IPv6 in the ServiceCIDR: dropped',
  'an unallocated IP from a pod: dropped',
];
const EVERY_ADDRESS = (mode: string): RowException => ({
  outcome: ['backend-1', 'backend-2', 'backend-3'],
  source: 'masqueraded',
  count: 30,
  why: `${mode} mode's default, upstream's too, is NodePorts on every local address (nodePortAddresses unset means "primary" in nftables mode only)`,
});
/** userspace mode: endpoints see the node's address, and what the kernel modes drop is reset. */
const NODE_SOURCE = "userspace mode connects to the endpoint from the node: it sees the node's address, never the client's (no source preservation, documented)";
const RESET = 'userspace mode resets what the kernel modes drop: the proxy has accepted the connection before it can tell, and never leaves it hanging';
const fromTheNode = (outcome: string[], count: number): RowException => ({ outcome, source: 'masqueraded', count, why: NODE_SOURCE });
export const MODE_EXCEPTIONS: Record<'nftables' | 'iptables' | 'ipvs' | 'userspace', Record<string, RowException>> = {
  nftables: {},
  iptables: {
    ...Object.fromEntries(UNALLOCATED.map((row) => [row, { outcome: 'refused', why: NO_SERVICECIDR_DROP('iptables') }])),
    'a NodePort on 127.0.0.1 from the node itself: no localhost NodePorts': {
      outcome: ['backend-1', 'backend-2', 'backend-3'],
      source: 'masqueraded',
      count: 30,
      why: 'iptables mode has localhost NodePorts (IPv4, --iptables-localhost-nodeports, the default), with route_localnet and the martian drop',
    },
    'another node address is not a NodePort address ("primary"): its own closed port': EVERY_ADDRESS('iptables'),
  },
  ipvs: {
    ...Object.fromEntries(UNALLOCATED.map((row) => [row, { outcome: 'refused', why: NO_SERVICECIDR_DROP('IPVS') }])),
    'another node address is not a NodePort address ("primary"): its own closed port': EVERY_ADDRESS('IPVS'),
    'the node itself reaching an eTP Local NodePort: every endpoint, masqueraded': {
      outcome: ['backend-1'],
      source: 'kept',
      count: 10,
      why: 'IPVS mode, upstream\'s too: an eTP Local NodePort\'s virtual server has the local endpoints only, whoever connects, and its traffic is not masqueraded',
    },
  },
  userspace: {
    ...Object.fromEntries(UNALLOCATED.map((row) => [row, { outcome: 'refused', why: NO_SERVICECIDR_DROP('userspace') }])),
    'another node address is not a NodePort address ("primary"): its own closed port': EVERY_ADDRESS('userspace'),
    'eTP Local LB IP from outside: the local endpoint only, client IP kept': fromTheNode(['backend-1'], 10),
    'eTP Local NodePort from outside: local endpoint only, client IP kept': fromTheNode(['backend-1'], 10),
    'IPv6 eTP Local NodePort: local endpoint only, client IP kept': fromTheNode(['backend-1'], 10),
    'eTP Local LB IP from the second outside source: kept too': fromTheNode(['backend-1'], 10),
    'a pod reaching the eTP Local LB IP short-circuits to the cluster endpoints, source kept': fromTheNode(['backend-2', 'backend-3'], 30),
    'eTP Local LB IP, no local endpoint: dropped, not refused': { outcome: 'reset', why: RESET },
    'eTP Local NodePort, no local endpoint: dropped, not refused': { outcome: 'reset', why: RESET },
    'source range: a source outside it is dropped': { outcome: 'reset', why: RESET },
    'source range: a pod outside it is dropped too': { outcome: 'reset', why: RESET },
  },
};

/**
 * Sends every row of `groups` and compares what happened with the table. A row in
 * `exceptions` is held to the exception's outcome instead: still checked, never skipped.
 */
export async function checkRows(t: ExecutionContext, bed: MatrixBed, groups: Group[], exceptions: Record<string, RowException> = {}): Promise<void> {
  const seen: Record<string, string[]> = {};
  const want: Record<string, string[]> = {};
  for (const unknown of Object.keys(exceptions)) if (!FLOWS.some((r) => r[1] === unknown)) throw new Error(`exception for no row: ${unknown}`);
  for (const row of FLOWS.filter((r) => groups.includes(r[0]))) {
    const [, name, from, to, proto, tableExpect, tableSource, tableCount] = row;
    const exception: RowException | undefined = exceptions[name];
    const expect = exception ? exception.outcome : tableExpect;
    const source = exception ? exception.source ?? '' : tableSource;
    const count = exception?.count ?? tableCount;
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

