// Packet-flow tables through the tracer (kernel-free), after upstream's packetFlowTest:
// Kubernetes objects in, the verdict for each new connection out. Real packets check a
// sample of these rows in tests/netns/tracer-vs-kernel.test.ts.
//
// Address plan
//   pods (cluster CIDR)   10.244.0.0/16, fd00:244::/48
//     ep-a 10.244.1.2     ep-b 10.244.2.2     ep-c 10.244.3.2      ep6-a fd00:244:0:1::2
//   outside the cluster   203.0.113.9, 2001:db8::9
//   the node              192.168.0.2 (connections it originates)
//   Services              web      172.30.0.41  80/TCP→8080 (ep-a, ep-b)
//                         dns      172.30.0.42  53/UDP→5353 (ep-a)
//                         diameter 172.30.0.43  3868/SCTP→3868 (ep-c)
//                         multi    172.30.0.44  http 80→8080 (ep-a), metrics 9090→9100 (ep-b)
//                         empty    172.30.0.45  80/TCP, 53/UDP, no endpoints
//                         draining 172.30.0.46  80/TCP: ep-a not ready but serving+terminating,
//                                               ep-b terminating and not serving
//                         mixed    172.30.0.47  80/TCP: ep-a ready, ep-b serving+terminating
//                         web6     fd00:172:30::41  80/TCP→8080 (ep6-a)
import test from 'ava';
import type { KubeObject } from '../../ts/sources/types.js';
import type { ProxyMode } from '../../ts/proxier/types.js';
import { expectedIn, masqueradeCell, MODES, tracedCluster, verdictCell, type TracedCluster } from '../helpers/traced-cluster.js';

const POD = '10.244.9.9';
const OUTSIDE = '203.0.113.9';
const NODE = '192.168.0.2';

type Port = { name?: string; port: number; protocol?: string; targetPort?: number };
type Ep = { ip: string; ready?: boolean; serving?: boolean; terminating?: boolean };

function service(name: string, clusterIP: string, ports: Port[]): KubeObject {
  return { apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'ns', name }, spec: { clusterIP, clusterIPs: [clusterIP], ports } };
}

function slice(svc: string, family: 'IPv4' | 'IPv6', ports: Port[], eps: Ep[], suffix = 'x'): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { namespace: 'ns', name: `${svc}-${suffix}`, labels: { 'kubernetes.io/service-name': svc } },
    addressType: family,
    ports: ports.map((p) => ({ name: p.name ?? '', port: p.port, protocol: p.protocol ?? 'TCP' })),
    endpoints: eps.map((e) => ({
      addresses: [e.ip],
      conditions: { ready: e.ready ?? true, serving: e.serving ?? true, terminating: e.terminating ?? false },
    })),
  };
}

const OBJECTS: KubeObject[] = [
  service('web', '172.30.0.41', [{ port: 80, protocol: 'TCP' }]),
  slice('web', 'IPv4', [{ port: 8080 }], [{ ip: '10.244.1.2' }, { ip: '10.244.2.2' }]),
  service('dns', '172.30.0.42', [{ port: 53, protocol: 'UDP' }]),
  slice('dns', 'IPv4', [{ port: 5353, protocol: 'UDP' }], [{ ip: '10.244.1.2' }]),
  service('diameter', '172.30.0.43', [{ port: 3868, protocol: 'SCTP' }]),
  slice('diameter', 'IPv4', [{ port: 3868, protocol: 'SCTP' }], [{ ip: '10.244.3.2' }]),
  service('multi', '172.30.0.44', [{ name: 'http', port: 80 }, { name: 'metrics', port: 9090 }]),
  slice('multi', 'IPv4', [{ name: 'http', port: 8080 }], [{ ip: '10.244.1.2' }], 'http'),
  slice('multi', 'IPv4', [{ name: 'metrics', port: 9100 }], [{ ip: '10.244.2.2' }], 'metrics'),
  service('empty', '172.30.0.45', [{ name: 'http', port: 80 }, { name: 'dns', port: 53, protocol: 'UDP' }]),
  service('draining', '172.30.0.46', [{ port: 80 }]),
  slice('draining', 'IPv4', [{ port: 8080 }], [
    { ip: '10.244.1.2', ready: false, serving: true, terminating: true },
    { ip: '10.244.2.2', ready: false, serving: false, terminating: true },
  ]),
  service('mixed', '172.30.0.47', [{ port: 80 }]),
  slice('mixed', 'IPv4', [{ port: 8080 }], [{ ip: '10.244.1.2' }, { ip: '10.244.2.2', ready: false, serving: true, terminating: true }]),
  service('web6', 'fd00:172:30::41', [{ port: 80 }]),
  slice('web6', 'IPv6', [{ port: 8080 }], [{ ip: 'fd00:244:0:1::2' }]),
];

type Row = [name: string, src: string, dst: string, port: number, proto: 'TCP' | 'UDP' | 'SCTP', verdict: string, masq: 'yes' | 'no', service?: string];

const FLOWS: Row[] = [
  ['ClusterIP TCP from a pod', POD, '172.30.0.41', 80, 'TCP', '10.244.1.2:8080, 10.244.2.2:8080', 'no', 'ns/web:'],
  ['ClusterIP UDP from a pod', POD, '172.30.0.42', 53, 'UDP', '10.244.1.2:5353', 'no', 'ns/dns:'],
  ['ClusterIP SCTP from a pod', POD, '172.30.0.43', 3868, 'SCTP', '10.244.3.2:3868', 'no', 'ns/diameter:'],
  ['wrong protocol on a ClusterIP port (UDP to a TCP port)', POD, '172.30.0.41', 80, 'UDP', 'REJECT (icmp port-unreachable)', 'no'],
  ['multi-port: the named port http', POD, '172.30.0.44', 80, 'TCP', '10.244.1.2:8080', 'no', 'ns/multi:http'],
  ['multi-port: the named port metrics', POD, '172.30.0.44', 9090, 'TCP', '10.244.2.2:9100', 'no', 'ns/multi:metrics'],
  ['no endpoints, TCP: reset at once', POD, '172.30.0.45', 80, 'TCP', 'REJECT (tcp reset)', 'no', 'ns/empty:http'],
  ['no endpoints, UDP: ICMP port unreachable', POD, '172.30.0.45', 53, 'UDP', 'REJECT (icmp port-unreachable)', 'no', 'ns/empty:dns'],
  ['an undefined port on a ClusterIP, TCP: reset at once', POD, '172.30.0.41', 81, 'TCP', 'REJECT (tcp reset)', 'no'],
  ['an undefined port on a ClusterIP, UDP', POD, '172.30.0.41', 81, 'UDP', 'REJECT (icmp port-unreachable)', 'no'],
  ['from outside the cluster: masqueraded', OUTSIDE, '172.30.0.41', 80, 'TCP', '10.244.1.2:8080, 10.244.2.2:8080', 'yes', 'ns/web:'],
  ['from the node itself: masqueraded (not from the cluster CIDR)', NODE, '172.30.0.41', 80, 'TCP', '10.244.1.2:8080, 10.244.2.2:8080', 'yes'],
  ['hairpin: an endpoint reaching itself through the ClusterIP', '10.244.1.2', '172.30.0.42', 53, 'UDP', '10.244.1.2:5353', 'yes'],
  ['terminating fallback: only the serving one, when none is ready', POD, '172.30.0.46', 80, 'TCP', '10.244.1.2:8080', 'no', 'ns/draining:'],
  ['no fallback while one endpoint is ready', POD, '172.30.0.47', 80, 'TCP', '10.244.1.2:8080', 'no', 'ns/mixed:'],
  ['IPv6 ClusterIP from a pod', 'fd00:244:0:9::9', 'fd00:172:30::41', 80, 'TCP', '[fd00:244:0:1::2]:8080', 'no', 'ns/web6:'],
  ['IPv6 ClusterIP from outside: masqueraded', '2001:db8::9', 'fd00:172:30::41', 80, 'TCP', '[fd00:244:0:1::2]:8080', 'yes'],
  ['IPv6 undefined port: reset', 'fd00:244:0:9::9', 'fd00:172:30::41', 81, 'TCP', 'REJECT (tcp reset)', 'no'],
  ['not a Service address: untouched', POD, '10.244.2.2', 8080, 'TCP', 'ACCEPT', 'no'],
];

const clusters = new Map<ProxyMode, Promise<TracedCluster>>();
const traced = (mode: ProxyMode = MODES[0]) => {
  if (!clusters.has(mode)) clusters.set(mode, tracedCluster({ mode, objects: OBJECTS }));
  return clusters.get(mode)!;
};

test('the address plan loads without invalid objects', async (t) => {
  t.deepEqual((await traced()).invalid, []);
});

for (const mode of MODES) for (const [name, src, dst, port, proto, verdict, masq, svc] of FLOWS) {
  test(`${mode} flow: ${name}`, async (t) => {
    const c = await traced(mode);
    const r = c.trace(src, dst, port, proto, src === NODE);
    t.is(verdictCell(r), expectedIn(mode, name, verdict), `${src} → ${dst}:${port}/${proto}\n${r.path.join('\n')}`);
    t.is(masqueradeCell(r), masq, 'masquerade');
    if (svc) t.is(r.service, svc, 'the Service the answer names');
    t.true(r.path.length > 0, 'the answer says which rules decided it');
  });
}

test('a node that routes the Service range to itself still resets undefined ports (input path)', async (t) => {
  const c = await traced();
  const r = c.trace(POD, '172.30.0.41', 81, 'TCP', false, ['172.30.0.0/16']);
  t.is(verdictCell(r), 'REJECT (tcp reset)');
  t.true(r.path.some((p) => p.startsWith('kube-proxy filter-input:')), r.path.join('\n'));
  t.false(r.path.some((p) => p.startsWith('kube-proxy filter-forward:')), 'not forwarded');
});

// internalTrafficPolicy Local: the ClusterIP reaches only endpoints on this node (node-1);
// with none here but some elsewhere, a drop (not a reject); with none anywhere, a reject.
const ITP_ROWS: Array<[name: string, eps: Array<[ip: string, node: string]>, verdict: string]> = [
  ['only the local endpoints', [['10.244.1.2', 'node-1'], ['10.244.2.2', 'node-2'], ['10.244.1.3', 'node-1']], '10.244.1.2:8080, 10.244.1.3:8080'],
  ['none local: DROP, as upstream', [['10.244.2.2', 'node-2']], 'DROP'],
  ['none at all: REJECT', [], 'REJECT (tcp reset)'],
];
for (const [name, eps, verdict] of ITP_ROWS) {
  test(`internalTrafficPolicy Local: ${name}`, async (t) => {
    const itp = service('itp', '172.30.0.48', [{ port: 80 }]);
    itp.spec.internalTrafficPolicy = 'Local';
    const sl = slice('itp', 'IPv4', [{ port: 8080 }], eps.map(([ip]) => ({ ip })));
    sl.endpoints.forEach((e: Record<string, unknown>, i: number) => (e.nodeName = eps[i][1]));
    const c = await tracedCluster({ objects: [itp, sl], nodeName: 'node-1' });
    t.deepEqual(c.invalid, []);
    t.is(verdictCell(c.trace(POD, '172.30.0.48', 80, 'TCP')), verdict);
  });
}
