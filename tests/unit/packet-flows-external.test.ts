// Packet-flow tables through the tracer for the external addresses of a Service: externalIPs
// and LoadBalancer ingress IPs, with externalTrafficPolicy Cluster (always masqueraded).
//
// Address plan
//   pods 10.244.0.0/16: ep-a 10.244.1.2, ep-b 10.244.2.2; a client pod 10.244.9.9
//   outside the cluster 203.0.113.9; the node 192.168.0.2
//   ext      172.30.0.51  80/TCP→8080 (ep-a, ep-b), externalIPs 192.0.2.51, 2001:db8::51 (IPv6 has no ClusterIP: ignored)
//   lb       172.30.0.52  LoadBalancer 80/TCP→8080 (ep-a), ingress 198.51.100.52 (VIP), 198.51.100.99 (ipMode Proxy)
//   ranged   172.30.0.53  LoadBalancer with loadBalancerSourceRanges 203.0.113.0/24, ingress 198.51.100.53
//   local    172.30.0.54  externalIPs 192.0.2.54, externalTrafficPolicy Local, its endpoint on no node
//   dead     172.30.0.55  externalIPs 192.0.2.55, no endpoints
//   thief    172.30.0.56  externalIPs 192.0.2.51 on port 80 too: ext keeps the address, thief its ClusterIP
import test from 'ava';
import type { KubeObject } from '../../ts/sources/types.js';
import type { ProxyMode } from '../../ts/proxier/types.js';
import { expectedIn, masqueradeCell, MODES, tracedCluster, verdictCell, type TracedCluster } from '../helpers/traced-cluster.js';

const POD = '10.244.9.9';
const OUTSIDE = '203.0.113.9';
const NODE = '192.168.0.2';

let nextNodePort = 30080;
function service(name: string, clusterIP: string, spec: Record<string, unknown> = {}, status?: unknown): KubeObject {
  const nodePort = spec.type === 'LoadBalancer' ? nextNodePort++ : undefined;
  return {
    apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'ns', name },
    spec: { clusterIP, clusterIPs: [clusterIP], ports: [{ port: 80, protocol: 'TCP', nodePort }], ...spec },
    ...(status ? { status } : {}),
  };
}

function slice(svc: string, ips: string[]): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { namespace: 'ns', name: `${svc}-x`, labels: { 'kubernetes.io/service-name': svc } },
    addressType: 'IPv4', ports: [{ name: '', port: 8080, protocol: 'TCP' }],
    endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
  };
}

const ingress = (...ips: [string, string?][]) => ({ loadBalancer: { ingress: ips.map(([ip, ipMode]) => ({ ip, ...(ipMode ? { ipMode } : {}) })) } });

const OBJECTS: KubeObject[] = [
  service('ext', '172.30.0.51', { externalIPs: ['192.0.2.51', '2001:db8::51'] }),
  slice('ext', ['10.244.1.2', '10.244.2.2']),
  service('lb', '172.30.0.52', { type: 'LoadBalancer' }, ingress(['198.51.100.52'], ['198.51.100.99', 'Proxy'])),
  slice('lb', ['10.244.1.2']),
  service('ranged', '172.30.0.53', { type: 'LoadBalancer', loadBalancerSourceRanges: ['203.0.113.0/24'] }, ingress(['198.51.100.53'])),
  slice('ranged', ['10.244.1.2']),
  service('local', '172.30.0.54', { externalIPs: ['192.0.2.54'], externalTrafficPolicy: 'Local' }),
  slice('local', ['10.244.1.2']),
  service('dead', '172.30.0.55', { externalIPs: ['192.0.2.55'] }),
  service('thief', '172.30.0.56', { externalIPs: ['192.0.2.51'] }),
  slice('thief', ['10.244.2.2']),
];

type Row = [name: string, src: string, dst: string, port: number, verdict: string, masq: 'yes' | 'no', service?: string];

const FLOWS: Row[] = [
  ['externalIP from outside: every endpoint, masqueraded', OUTSIDE, '192.0.2.51', 80, '10.244.1.2:8080, 10.244.2.2:8080', 'yes', 'ns/ext:'],
  ['externalIP from a pod: masqueraded too (eTP Cluster)', POD, '192.0.2.51', 80, '10.244.1.2:8080, 10.244.2.2:8080', 'yes', 'ns/ext:'],
  ['externalIP from the node itself', NODE, '192.0.2.51', 80, '10.244.1.2:8080, 10.244.2.2:8080', 'yes', 'ns/ext:'],
  ['the ClusterIP beside it is unchanged: source kept from a pod', POD, '172.30.0.51', 80, '10.244.1.2:8080, 10.244.2.2:8080', 'no', 'ns/ext:'],
  ['externalIP on another port: not ours, untouched', OUTSIDE, '192.0.2.51', 81, 'ACCEPT', 'no'],
  ['LoadBalancer ingress IP (VIP mode)', OUTSIDE, '198.51.100.52', 80, '10.244.1.2:8080', 'yes', 'ns/lb:'],
  ['LoadBalancer ingress IP in ipMode Proxy: not programmed', OUTSIDE, '198.51.100.99', 80, 'ACCEPT', 'no'],
  ['LoadBalancer with source ranges, from inside them', OUTSIDE, '198.51.100.53', 80, '10.244.1.2:8080', 'yes', 'ns/ranged:'],
  ['LoadBalancer with source ranges, from outside them: dropped before DNAT', POD, '198.51.100.53', 80, 'DROP', 'no', 'ns/ranged:'],
  ['... while its ClusterIP works from anywhere', POD, '172.30.0.53', 80, '10.244.1.2:8080', 'no', 'ns/ranged:'],
  ['externalTrafficPolicy Local, no local endpoint: dropped', OUTSIDE, '192.0.2.54', 80, 'DROP', 'no', 'ns/local:'],
  ['... a pod short-circuits to every endpoint, source kept', POD, '192.0.2.54', 80, '10.244.1.2:8080', 'no', 'ns/local:'],
  ['... the node too, masqueraded', NODE, '192.0.2.54', 80, '10.244.1.2:8080', 'yes', 'ns/local:'],
  ['externalIP of a Service without endpoints: reset at once', OUTSIDE, '192.0.2.55', 80, 'REJECT (tcp reset)', 'no', 'ns/dead:'],
];

const clusters = new Map<ProxyMode, Promise<TracedCluster>>();
const traced = (mode: ProxyMode = MODES[0]) => {
  if (!clusters.has(mode)) clusters.set(mode, tracedCluster({ mode, objects: OBJECTS }));
  return clusters.get(mode)!;
};

test('a second Service claiming an external IP:port does not get it, and keeps the rest', async (t) => {
  const c = await traced();
  t.deepEqual(c.invalid.filter((i) => !i.includes('ns/thief')), []);
  t.true(c.invalid.some((i) => i.startsWith('ServicePort ns/thief/tcp/') && i.includes('192.0.2.51 port 80 is already used by ns/ext/tcp/')), c.invalid.join('\n'));
  t.is(verdictCell(c.trace(POD, '172.30.0.56', 80, 'TCP')), '10.244.2.2:8080', 'its ClusterIP is programmed');
  t.is(verdictCell(c.trace(OUTSIDE, '192.0.2.51', 80, 'TCP')), '10.244.1.2:8080, 10.244.2.2:8080', 'the address stays with ext');
});

for (const mode of MODES) for (const [name, src, dst, port, verdict, masq, svc] of FLOWS) {
  test(`${mode} flow: ${name}`, async (t) => {
    const r = (await traced(mode)).trace(src, dst, port, 'TCP', src === NODE);
    t.is(verdictCell(r), expectedIn(mode, name, verdict), `${src} → ${dst}:${port}\n${r.path.join('\n')}`);
    t.is(masqueradeCell(r), masq, 'masquerade');
    if (svc) t.is(r.service, svc);
  });
}
