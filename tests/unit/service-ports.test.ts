import test from 'ava';
import type { IPFamily } from '../../ts/dataplane/types.js';
import { clusterIPForFamily, endpointString, servicePortsFromObjects } from '../../ts/tracker/service-ports.js';

// Address plan (as upstream's proxier tests): ClusterIPs 172.30.0.4x / fd00:30::4x,
// pods 10.180.0.x / fd00:180::x.
const V4_CIP = '172.30.0.41';
const V6_CIP = 'fd00:30::41';

function svc(patch: (s: any) => void = () => {}): any {
  const s: any = {
    metadata: { namespace: 'ns1', name: 'svc1' },
    spec: { type: 'ClusterIP', clusterIP: V4_CIP, clusterIPs: [V4_CIP], ports: [{ name: 'p80', port: 80, protocol: 'TCP', targetPort: 8080 }] },
  };
  patch(s);
  return s;
}

type Ep = { ip: string; ready?: boolean; serving?: boolean; terminating?: boolean; raw?: any };

function slice(name: string, eps: Ep[], ports: any[] = [{ name: 'p80', port: 8080, protocol: 'TCP' }], patch: (s: any) => void = () => {}): any {
  const s: any = {
    metadata: { namespace: 'ns1', name, labels: { 'kubernetes.io/service-name': 'svc1' } },
    addressType: eps.some((e) => e.ip.includes(':')) ? 'IPv6' : 'IPv4',
    endpoints: eps.map((e) => e.raw ?? { addresses: [e.ip], conditions: { ready: e.ready, serving: e.serving, terminating: e.terminating } }),
    ports,
  };
  patch(s);
  return s;
}

const eps = (family: IPFamily, service: any, slices: any[]) =>
  servicePortsFromObjects(service, slices, family).map((sp) => sp.endpoints.map((e) => endpointString(e.ip, e.port)));

// --- Service filtering ---------------------------------------------------------

// [name, service, family, expected clusterIP of the one spec, or undefined for none]
const filterCases: Array<[string, any, IPFamily, string | undefined]> = [
  ['plain ClusterIP', svc(), 'IPv4', V4_CIP],
  ['NodePort type is still a ClusterIP', svc((s) => (s.spec.type = 'NodePort')), 'IPv4', V4_CIP],
  ['other proxy label', svc((s) => (s.metadata.labels = { 'service.kubernetes.io/service-proxy-name': 'other' })), 'IPv4', undefined],
  ['headless label', svc((s) => (s.metadata.labels = { 'service.kubernetes.io/headless': '' })), 'IPv4', undefined],
  ['clusterIP None', svc((s) => ((s.spec.clusterIP = 'None'), (s.spec.clusterIPs = ['None']))), 'IPv4', undefined],
  ['clusterIP empty', svc((s) => ((s.spec.clusterIP = ''), delete s.spec.clusterIPs)), 'IPv4', undefined],
  ['ExternalName', svc((s) => ((s.spec.type = 'ExternalName'), (s.spec.externalName = 'x.example'))), 'IPv4', undefined],
  ['IPv4 Service in IPv6', svc(), 'IPv6', undefined],
  ['IPv6 Service in IPv6', svc((s) => ((s.spec.clusterIP = V6_CIP), (s.spec.clusterIPs = [V6_CIP]))), 'IPv6', V6_CIP],
  ['dual-stack, IPv4', svc((s) => (s.spec.clusterIPs = [V4_CIP, V6_CIP])), 'IPv4', V4_CIP],
  ['dual-stack, IPv6', svc((s) => (s.spec.clusterIPs = [V4_CIP, V6_CIP])), 'IPv6', V6_CIP],
  ['IPv6-primary dual-stack, IPv4', svc((s) => ((s.spec.clusterIP = V6_CIP), (s.spec.clusterIPs = [V6_CIP, V4_CIP]))), 'IPv4', V4_CIP],
  ['no clusterIPs: falls back to clusterIP', svc((s) => delete s.spec.clusterIPs), 'IPv4', V4_CIP],
  ['IPv6 ClusterIP canonicalised', svc((s) => ((s.spec.clusterIP = 'FD00:30:0::41'), delete s.spec.clusterIPs)), 'IPv6', V6_CIP],
];

for (const [name, service, family, cip] of filterCases) {
  test(`service filter: ${name}`, (t) => {
    const specs = servicePortsFromObjects(service, [], family);
    t.deepEqual(specs.map((s) => s.clusterIP), cip ? [cip] : []);
  });
}

test('spec shape: key, protocol default TCP, sorted by key', (t) => {
  const service = svc((s) => (s.spec.ports = [{ name: 'p80', port: 80 }, { name: 'dns', port: 53, protocol: 'UDP' }, { name: 'sctp', port: 9, protocol: 'SCTP' }]));
  const specs = servicePortsFromObjects(service, [], 'IPv4');
  t.deepEqual(specs.map((s) => s.key), ['ns1/svc1/sctp/sctp', 'ns1/svc1/tcp/p80', 'ns1/svc1/udp/dns']);
  t.deepEqual(specs[1], { key: 'ns1/svc1/tcp/p80', namespace: 'ns1', name: 'svc1', portName: 'p80', protocol: 'TCP', clusterIP: V4_CIP, port: 80, endpoints: [] });
  const unnamed = servicePortsFromObjects(svc((s) => (s.spec.ports = [{ port: 80 }])), [], 'IPv4');
  t.is(unnamed[0].key, 'ns1/svc1/tcp/');
});

test('clusterIPForFamily', (t) => {
  t.is(clusterIPForFamily(svc((s) => (s.spec.clusterIPs = [V4_CIP, V6_CIP])), 'IPv6'), V6_CIP);
  t.is(clusterIPForFamily(svc(), 'IPv6'), undefined);
  t.is(clusterIPForFamily({}, 'IPv4'), undefined);
});

// --- Endpoint selection --------------------------------------------------------

// [name, slices, expected endpoints of the single ServicePort (IPv4 unless an IPv6 address appears)]
const endpointCases: Array<[string, any[], string[]]> = [
  ['ready only', [slice('a', [{ ip: '10.180.0.1', ready: true }, { ip: '10.180.0.2', ready: false }])], ['10.180.0.1:8080']],
  ['nil conditions mean ready', [slice('a', [{ ip: '10.180.0.1', raw: { addresses: ['10.180.0.1'] } }])], ['10.180.0.1:8080']],
  ['terminating fallback when none ready', [slice('a', [
    { ip: '10.180.0.1', ready: false, serving: true, terminating: true },
    { ip: '10.180.0.2', ready: false, serving: false, terminating: true },
    { ip: '10.180.0.3', ready: false, serving: true, terminating: false },
  ])], ['10.180.0.1:8080']],
  ['no fallback while one is ready', [slice('a', [
    { ip: '10.180.0.1', ready: false, serving: true, terminating: true },
    { ip: '10.180.0.2', ready: true },
  ])], ['10.180.0.2:8080']],
  ['nothing usable', [slice('a', [{ ip: '10.180.0.1', ready: false, serving: false }])], []],
  ['only addresses[0]', [slice('a', [{ ip: '10.180.0.1', raw: { addresses: ['10.180.0.1', '10.180.0.9'] } }])], ['10.180.0.1:8080']],
  ['slice port chosen by name', [slice('a', [{ ip: '10.180.0.1' }], [{ name: 'metrics', port: 9090 }, { name: 'p80', port: 8080 }])], ['10.180.0.1:8080']],
  ['no slice port of that name', [slice('a', [{ ip: '10.180.0.1' }], [{ name: 'other', port: 8080 }])], []],
  ['protocol must match too', [slice('a', [{ ip: '10.180.0.1' }], [{ name: 'p80', port: 8080, protocol: 'UDP' }])], []],
  ['slice port protocol defaults to TCP', [slice('a', [{ ip: '10.180.0.1' }], [{ name: 'p80', port: 8080 }])], ['10.180.0.1:8080']],
  ['zero and nil ports skipped', [slice('a', [{ ip: '10.180.0.1' }], [{ name: 'p80', port: 0 }, { name: 'p80' }])], []],
  ['nil port name skipped', [slice('a', [{ ip: '10.180.0.1' }], [{ port: 8080 }])], []],
  ['slices merged, sorted by "IP:port" string', [
    slice('b', [{ ip: '10.180.0.2' }, { ip: '10.180.0.10' }]),
    slice('a', [{ ip: '10.180.0.1' }]),
  ], ['10.180.0.10:8080', '10.180.0.1:8080', '10.180.0.2:8080']],
  ['duplicate IP:port, terminating first: non-terminating wins', [
    slice('a', [{ ip: '10.180.0.1', ready: false, serving: true, terminating: true }]),
    slice('b', [{ ip: '10.180.0.1', ready: true }]),
  ], ['10.180.0.1:8080']],
  ['duplicate IP:port, terminating last: non-terminating wins', [
    slice('a', [{ ip: '10.180.0.1', ready: true }]),
    slice('b', [{ ip: '10.180.0.1', ready: false, serving: true, terminating: true }]),
  ], ['10.180.0.1:8080']],
  ['same IP, different ports in two slices are distinct', [
    slice('a', [{ ip: '10.180.0.1' }], [{ name: 'p80', port: 8080 }]),
    slice('b', [{ ip: '10.180.0.1' }], [{ name: 'p80', port: 8081 }]),
  ], ['10.180.0.1:8080', '10.180.0.1:8081']],
  ['IPv6 slice ignored for IPv4', [slice('a', [{ ip: 'fd00:180::1' }])], []],
  ['FQDN slice ignored', [slice('a', [{ ip: '10.180.0.1' }], undefined, (s) => (s.addressType = 'FQDN'))], []],
  ['slice of another Service ignored', [slice('a', [{ ip: '10.180.0.1' }], undefined, (s) => (s.metadata.labels['kubernetes.io/service-name'] = 'svc2'))], []],
  ['slice in another namespace ignored', [slice('a', [{ ip: '10.180.0.1' }], undefined, (s) => (s.metadata.namespace = 'ns2'))], []],
  ['bad endpoint dropped, rest kept', [slice('a', [{ ip: '10.180.0.1' }, { ip: 'bogus', raw: { addresses: ['bogus'] } }])], ['10.180.0.1:8080']],
];

for (const [name, slices, expected] of endpointCases) {
  test(`endpoints: ${name}`, (t) => {
    t.deepEqual(eps('IPv4', svc(), slices), [expected]);
  });
}

test('endpoints: IPv6 canonical and bracketed in sort order', (t) => {
  const service = svc((s) => ((s.spec.clusterIP = V6_CIP), (s.spec.clusterIPs = [V6_CIP])));
  const specs = servicePortsFromObjects(service, [slice('a', [{ ip: 'fd00:180:0::0002' }, { ip: 'fd00:180::10' }])], 'IPv6');
  t.deepEqual(specs[0].endpoints, [{ ip: 'fd00:180::10', port: 8080 }, { ip: 'fd00:180::2', port: 8080 }]);
});

test('endpoints: dual-stack Service gets each family from its own slices', (t) => {
  const service = svc((s) => (s.spec.clusterIPs = [V4_CIP, V6_CIP]));
  const slices = [slice('v4', [{ ip: '10.180.0.1' }]), slice('v6', [{ ip: 'fd00:180::1' }])];
  t.deepEqual(eps('IPv4', service, slices), [['10.180.0.1:8080']]);
  t.deepEqual(eps('IPv6', service, slices), [['[fd00:180::1]:8080']]);
});

test('endpoints: terminating fallback is per ServicePort', (t) => {
  const service = svc((s) => (s.spec.ports = [{ name: 'a', port: 80 }, { name: 'b', port: 81 }]));
  const slices = [
    slice('x', [{ ip: '10.180.0.1', ready: true }], [{ name: 'a', port: 8080 }]),
    slice('y', [{ ip: '10.180.0.2', ready: false, serving: true, terminating: true }], [{ name: 'b', port: 8081 }]),
  ];
  t.deepEqual(eps('IPv4', service, slices), [['10.180.0.1:8080'], ['10.180.0.2:8081']]);
});

test('malformed Services yield no spec and are reported', (t) => {
  const reports: string[] = [];
  const bad = [svc((s) => (s.spec.clusterIP = 'bogus')), svc((s) => (s.spec.ports[0].port = 99999)), svc((s) => delete s.metadata)];
  for (const b of bad) t.deepEqual(servicePortsFromObjects(b, [slice('a', [{ ip: '10.180.0.1' }])], 'IPv4', (k, r) => reports.push(`${k}:${r}`)), []);
  t.deepEqual(reports, ['Service:bad-cluster-ip', 'Service:port-out-of-range', 'Service:missing-field']);
});
