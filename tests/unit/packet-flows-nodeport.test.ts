// Packet-flow tables through the tracer: NodePorts, externalTrafficPolicy Local, source
// ranges, session affinity and ServiceCIDRs. Each row is one new connection.
//
// Address plan
//   node-1 (this node) 192.168.0.2 and 2001:db8:ff::2; pods 10.244.0.0/16, fd00:244::/48
//   endpoints: here 10.244.1.2 (node-1), there 10.244.2.2 (node-2); v6 here fd00:244:0:1::2
//   a client pod 10.244.9.9; outside 203.0.113.9 (in the ranges) and 198.18.0.9 (not)
//   np      172.30.0.61  NodePort 80→8080 nodePort 30061 (here, there)
//   np6     fd00:96::61  NodePort 80→8080 nodePort 30062 (v6 here)
//   lbl     172.30.0.62  LoadBalancer, externalTrafficPolicy Local, ingress 198.51.100.62, nodePort 30063 (here, there)
//   lbr     172.30.0.63  LoadBalancer, externalTrafficPolicy Local, ingress 198.51.100.63, nodePort 30064 (there only)
//   fw      172.30.0.64  LoadBalancer, sourceRanges 203.0.113.0/24, 192.168.0.0/24 (holds the node), ingress 198.51.100.64
//   sticky  172.30.0.65  ClientIP affinity, externalIPs 192.0.2.65, NodePort 30065 (here, there)
//   npdead  172.30.0.66  NodePort 30066, no endpoints
//   open    172.30.0.67  LoadBalancer, sourceRanges 0.0.0.0/0, ingress 198.51.100.67
//   ServiceCIDR 172.30.0.0/16
import test from 'ava';
import type { KubeObject } from '../../ts/sources/types.js';
import type { ProxyMode } from '../../ts/proxier/types.js';
import { expectedIn, masqueradeCell, MODES, tracedCluster, verdictCell, type TracedCluster } from '../helpers/traced-cluster.js';

const NODE = '192.168.0.2';
const NODE6 = '2001:db8:ff::2';
const POD = '10.244.9.9';
const IN_RANGE = '203.0.113.9';
const OUT_OF_RANGE = '198.18.0.9';
const HERE = '10.244.1.2';
const THERE = '10.244.2.2';

function service(name: string, clusterIP: string, nodePort: number, spec: Record<string, unknown> = {}, lbIP?: string): KubeObject {
  return {
    apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'ns', name },
    spec: { type: 'NodePort', clusterIP, clusterIPs: [clusterIP], ports: [{ port: 80, protocol: 'TCP', nodePort }], ...spec },
    ...(lbIP ? { status: { loadBalancer: { ingress: [{ ip: lbIP }] } } } : {}),
  };
}

function slice(svc: string, eps: [ip: string, node: string][], family: 'IPv4' | 'IPv6' = 'IPv4'): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { namespace: 'ns', name: `${svc}-x`, labels: { 'kubernetes.io/service-name': svc } },
    addressType: family, ports: [{ name: '', port: 8080, protocol: 'TCP' }],
    endpoints: eps.map(([ip, nodeName]) => ({ addresses: [ip], nodeName, conditions: { ready: true } })),
  };
}

const LB = { type: 'LoadBalancer' };
const OBJECTS: KubeObject[] = [
  service('np', '172.30.0.61', 30061),
  slice('np', [[HERE, 'node-1'], [THERE, 'node-2']]),
  service('np6', 'fd00:96::61', 30062, { ipFamilies: ['IPv6'] }),
  slice('np6', [['fd00:244:0:1::2', 'node-1']], 'IPv6'),
  service('lbl', '172.30.0.62', 30063, { ...LB, externalTrafficPolicy: 'Local', healthCheckNodePort: 32062 }, '198.51.100.62'),
  slice('lbl', [[HERE, 'node-1'], [THERE, 'node-2']]),
  service('lbr', '172.30.0.63', 30064, { ...LB, externalTrafficPolicy: 'Local', healthCheckNodePort: 32063 }, '198.51.100.63'),
  slice('lbr', [[THERE, 'node-2']]),
  service('fw', '172.30.0.64', 30067, { ...LB, loadBalancerSourceRanges: ['203.0.113.0/24', '192.168.0.0/24'] }, '198.51.100.64'),
  slice('fw', [[THERE, 'node-2']]),
  service('sticky', '172.30.0.65', 30065, { externalIPs: ['192.0.2.65'], sessionAffinity: 'ClientIP' }),
  slice('sticky', [[HERE, 'node-1'], [THERE, 'node-2']]),
  service('npdead', '172.30.0.66', 30066),
  service('open', '172.30.0.67', 30068, { ...LB, loadBalancerSourceRanges: ['0.0.0.0/0'] }, '198.51.100.67'),
  slice('open', [[THERE, 'node-2']]),
];

type Row = [name: string, src: string, dst: string, port: number, verdict: string, masq: 'yes' | 'no', fromNode?: boolean];

const BOTH = `${HERE}:8080, ${THERE}:8080`;
const FLOWS: Row[] = [
  ['NodePort from outside: every endpoint, masqueraded', OUT_OF_RANGE, NODE, 30061, BOTH, 'yes'],
  ['NodePort from a pod: masqueraded too (eTP Cluster)', POD, NODE, 30061, BOTH, 'yes'],
  ['the node itself reaching its NodePort', NODE, NODE, 30061, BOTH, 'yes', true],
  ['IPv6 NodePort from outside', '2001:db8:77::9', NODE6, 30062, '[fd00:244:0:1::2]:8080', 'yes'],
  ['a port no Service has on the node: untouched', OUT_OF_RANGE, NODE, 30099, 'ACCEPT', 'no'],
  ['NodePort without endpoints: reset at once', OUT_OF_RANGE, NODE, 30066, 'REJECT (tcp reset)', 'no'],
  ['eTP Local LB IP from outside: the local endpoint only, source kept', OUT_OF_RANGE, '198.51.100.62', 80, `${HERE}:8080`, 'no'],
  ['eTP Local NodePort from outside: local only, source kept', OUT_OF_RANGE, NODE, 30063, `${HERE}:8080`, 'no'],
  ['a pod reaching an eTP Local LB IP: short-circuit to every endpoint', POD, '198.51.100.62', 80, BOTH, 'no'],
  ['the node reaching an eTP Local LB IP: every endpoint, masqueraded', NODE, '198.51.100.62', 80, BOTH, 'yes', true],
  ['eTP Local with no local endpoint: dropped (not rejected)', OUT_OF_RANGE, '198.51.100.63', 80, 'DROP', 'no'],
  ['eTP Local NodePort with no local endpoint: dropped', OUT_OF_RANGE, NODE, 30064, 'DROP', 'no'],
  ['... while a pod still reaches it through the short-circuit', POD, '198.51.100.63', 80, `${THERE}:8080`, 'no'],
  ['... and its ClusterIP still works (internal policy Cluster)', POD, '172.30.0.63', 80, `${THERE}:8080`, 'no'],
  ['source range: an allowed source reaches the LB IP', IN_RANGE, '198.51.100.64', 80, `${THERE}:8080`, 'yes'],
  ['source range: any other source is dropped before DNAT', OUT_OF_RANGE, '198.51.100.64', 80, 'DROP', 'no'],
  ['source range: a pod outside the ranges is dropped too', POD, '198.51.100.64', 80, 'DROP', 'no'],
  ['source range holding the node: the LB IP itself may be the source', '198.51.100.64', '198.51.100.64', 80, `${THERE}:8080`, 'yes'],
  ['a source range of every address lets everyone in', OUT_OF_RANGE, '198.51.100.67', 80, `${THERE}:8080`, 'yes'],
  ['source ranges do not guard the NodePort', OUT_OF_RANGE, NODE, 30067, `${THERE}:8080`, 'yes'],
  ['source ranges do not guard the ClusterIP', POD, '172.30.0.64', 80, `${THERE}:8080`, 'no'],
  ['affinity Service by its ClusterIP: any endpoint for a new client', POD, '172.30.0.65', 80, BOTH, 'no'],
  ['affinity Service by its external IP: the same endpoints, masqueraded', OUT_OF_RANGE, '192.0.2.65', 80, BOTH, 'yes'],
  ['affinity Service by its NodePort', OUT_OF_RANGE, NODE, 30065, BOTH, 'yes'],
  ['an unallocated IP in the ServiceCIDR: dropped', POD, '172.30.9.9', 80, 'DROP', 'no'],
  ['a ClusterIP on a port its Service lacks: reset', POD, '172.30.0.61', 81, 'REJECT (tcp reset)', 'no'],
];

const clusters = new Map<ProxyMode, Promise<TracedCluster>>();
const traced = (mode: ProxyMode = MODES[0]) => {
  if (!clusters.has(mode)) {
    clusters.set(mode, tracedCluster({ mode, objects: OBJECTS, nodeIPs: [NODE, NODE6], serviceCIDRs: ['172.30.0.0/16', 'fd00:96::/112'] }));
  }
  return clusters.get(mode)!;
};

test('every object of the table is valid', async (t) => {
  t.deepEqual((await traced()).invalid, []);
});

for (const mode of MODES) for (const [name, src, dst, port, verdict, masq, fromNode] of FLOWS) {
  test(`${mode} flow: ${name}`, async (t) => {
    const r = (await traced(mode)).trace(src, dst, port, 'TCP', fromNode ?? false);
    t.is(verdictCell(r), expectedIn(mode, name, verdict), `${src} → ${dst}:${port}\n${r.path.join('\n')}`);
    t.is(masqueradeCell(r), masq, 'masquerade');
  });
}

test('nodePortAddresses matching everything: any local address but loopback takes NodePorts', async (t) => {
  const c = await tracedCluster({ objects: OBJECTS, nodeIPs: [NODE], nodePortAll: true });
  t.is(verdictCell(c.trace(OUT_OF_RANGE, '192.168.7.7', 30061, 'TCP', false, ['192.168.7.7/32'])), BOTH, 'another local address');
  t.is(verdictCell(c.trace(OUT_OF_RANGE, '192.168.7.7', 30061, 'TCP', false, [])), 'ACCEPT', 'not a local address');
  t.is(verdictCell(c.trace(NODE, '127.0.0.1', 30061, 'TCP', true, ['127.0.0.0/8'])), 'ACCEPT', 'no localhost NodePorts');
});

test('NodePorts answer only on the nodePortAddresses IPs', async (t) => {
  const c = await tracedCluster({ objects: OBJECTS, nodeIPs: [NODE] });
  t.is(verdictCell(c.trace(OUT_OF_RANGE, '192.168.7.7', 30061, 'TCP', false, ['192.168.7.7/32'])), 'ACCEPT');
});

test('detect-local by interface: pods are told by the interface they come in on', async (t) => {
  const c = await tracedCluster({ objects: OBJECTS, nodeIPs: [NODE], localDetector: { mode: 'InterfaceNamePrefix', prefix: 'veth' } });
  t.is(verdictCell(c.trace(POD, '198.51.100.63', 80, 'TCP', false, undefined, 'veth1234')), `${THERE}:8080`, 'short-circuit from a veth');
  t.is(verdictCell(c.trace(POD, '198.51.100.63', 80, 'TCP', false, undefined, 'eth0')), 'DROP', 'the same address from eth0 is not a pod');
  t.is(masqueradeCell(c.trace(POD, '172.30.0.61', 80, 'TCP', false, undefined, 'eth0')), 'yes', 'off-cluster ClusterIP traffic is masqueraded');
  t.is(masqueradeCell(c.trace(POD, '172.30.0.61', 80, 'TCP', false, undefined, 'veth9')), 'no');
});
