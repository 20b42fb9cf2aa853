import test from 'ava';
import type { IPFamily, NodeInfo } from '../../ts/model/types.js';
import { clusterIPForFamily, endpointString, servicePortKey, servicePortsFromObjects } from '../../ts/tracker/service-ports.js';

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

// The usable endpoints: with no topology and Cluster policy, clusterEndpoints.
const eps = (family: IPFamily, service: any, slices: any[]) =>
  servicePortsFromObjects(service, slices, family).map((sp) => sp.clusterEndpoints.map((e) => endpointString(e.ip, e.port)));
const ipPort = (list: Array<{ ip: string; port: number }>) => list.map(({ ip, port }) => ({ ip, port }));

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
  t.deepEqual(specs[1], {
    key: 'ns1/svc1/tcp/p80', namespace: 'ns1', name: 'svc1', portName: 'p80', protocol: 'TCP', family: 'IPv4', type: 'ClusterIP',
    clusterIP: V4_CIP, port: 80, nodePort: 0, externalIPs: [], loadBalancerVIPs: [], loadBalancerSourceRanges: [],
    sessionAffinity: 'None', stickyMaxAgeSeconds: 0, externalPolicyLocal: false, internalPolicyLocal: false,
    healthCheckNodePort: 0, trafficDistribution: '', endpoints: [], clusterEndpoints: [], localEndpoints: [],
  });
  t.is(servicePortKey('ns1', 'svc1', 'SCTP', 'x'), 'ns1/svc1/sctp/x');
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
  t.deepEqual(ipPort(specs[0].endpoints), [{ ip: 'fd00:180::10', port: 8080 }, { ip: 'fd00:180::2', port: 8080 }]);
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

// --- Service fields per family -------------------------------------------------

const NODE_A: NodeInfo = { name: 'node-a', labels: { 'topology.kubernetes.io/zone': 'zone-a' } };

/** A dual-stack LoadBalancer using every field; each family must see only its own addresses. */
function fullService(patch: (s: any) => void = () => {}): any {
  return svc((s) => {
    s.spec.type = 'LoadBalancer';
    s.spec.clusterIPs = [V4_CIP, V6_CIP];
    s.spec.ports[0].nodePort = 30080;
    s.spec.externalIPs = ['192.168.99.11', 'FD00:99:0::11', '192.168.99.11'];
    s.spec.loadBalancerSourceRanges = [' 203.0.113.7/24 ', '2001:db8::1/64', '198.51.100.0/24'];
    s.spec.sessionAffinity = 'ClientIP';
    s.spec.externalTrafficPolicy = 'Local';
    s.spec.internalTrafficPolicy = 'Local';
    s.spec.healthCheckNodePort = 30999;
    s.spec.trafficDistribution = 'PreferClose';
    s.status = {
      loadBalancer: {
        ingress: [{ ip: '5.6.7.8' }, { ip: '5.6.7.9', ipMode: 'Proxy' }, { ip: 'fd00:5::8', ipMode: 'VIP' }, { hostname: 'lb.example' }, { ip: 'fd00:5::9', ipMode: 'Proxy' }],
      },
    };
    patch(s);
  });
}

test('every Service field, per family: canonical, filtered, ipMode Proxy skipped', (t) => {
  const common = {
    type: 'LoadBalancer', nodePort: 30080, sessionAffinity: 'ClientIP', stickyMaxAgeSeconds: 10800,
    externalPolicyLocal: true, internalPolicyLocal: true, healthCheckNodePort: 30999, trafficDistribution: 'PreferClose',
  };
  const pick = (sp: any) => Object.fromEntries(
    ['family', 'clusterIP', 'externalIPs', 'loadBalancerVIPs', 'loadBalancerSourceRanges', ...Object.keys(common)].map((k) => [k, sp[k]]),
  );
  const [v4] = servicePortsFromObjects(fullService(), [], 'IPv4');
  const [v6] = servicePortsFromObjects(fullService(), [], 'IPv6');
  t.deepEqual(pick(v4), {
    family: 'IPv4', clusterIP: V4_CIP, externalIPs: ['192.168.99.11'], loadBalancerVIPs: ['5.6.7.8'],
    loadBalancerSourceRanges: ['203.0.113.0/24', '198.51.100.0/24'], ...common,
  });
  t.deepEqual(pick(v6), {
    family: 'IPv6', clusterIP: V6_CIP, externalIPs: ['fd00:99::11'], loadBalancerVIPs: ['fd00:5::8'],
    loadBalancerSourceRanges: ['2001:db8::/64'], ...common,
  });
});

// [name, patch of a plain ClusterIP Service, externalPolicyLocal, healthCheckNodePort, stickyMaxAgeSeconds]
const policyCases: Array<[string, (s: any) => void, boolean, number, number]> = [
  ['eTP Local on a ClusterIP without externalIPs is meaningless', (s) => (s.spec.externalTrafficPolicy = 'Local'), false, 0, 0],
  ['eTP Local with externalIPs', (s) => ((s.spec.externalTrafficPolicy = 'Local'), (s.spec.externalIPs = ['192.168.99.11'])), true, 0, 0],
  ['eTP Local with only other-family externalIPs still counts (Service-wide)', (s) => ((s.spec.externalTrafficPolicy = 'Local'), (s.spec.externalIPs = ['fd00:99::11'])), true, 0, 0],
  ['eTP Local NodePort: no health check port', (s) => ((s.spec.type = 'NodePort'), (s.spec.externalTrafficPolicy = 'Local'), (s.spec.healthCheckNodePort = 30999)), true, 0, 0],
  ['eTP Cluster LoadBalancer: no health check port', (s) => ((s.spec.type = 'LoadBalancer'), (s.spec.healthCheckNodePort = 30999)), false, 0, 0],
  ['eTP Local LoadBalancer', (s) => ((s.spec.type = 'LoadBalancer'), (s.spec.externalTrafficPolicy = 'Local'), (s.spec.healthCheckNodePort = 30999)), true, 30999, 0],
  ['eTP Local LoadBalancer without its port', (s) => ((s.spec.type = 'LoadBalancer'), (s.spec.externalTrafficPolicy = 'Local')), true, 0, 0],
  ['ClientIP with a timeout', (s) => ((s.spec.sessionAffinity = 'ClientIP'), (s.spec.sessionAffinityConfig = { clientIP: { timeoutSeconds: 600 } })), false, 0, 600],
  ['None ignores a timeout', (s) => ((s.spec.sessionAffinity = 'None'), (s.spec.sessionAffinityConfig = { clientIP: { timeoutSeconds: 600 } })), false, 0, 0],
];
for (const [name, patch, etpLocal, hc, sticky] of policyCases) {
  test(`service fields: ${name}`, (t) => {
    const [sp] = servicePortsFromObjects(svc(patch), [], 'IPv4');
    t.deepEqual([sp.externalPolicyLocal, sp.healthCheckNodePort, sp.stickyMaxAgeSeconds], [etpLocal, hc, sticky]);
  });
}

test('endpoints carry conditions, node, zone and hints; isLocal from the node name', (t) => {
  const s = slice('a', [
    { ip: '10.180.0.1', raw: { addresses: ['10.180.0.1'], nodeName: 'node-a', zone: 'zone-a', hints: { forZones: [{ name: 'zone-a' }], forNodes: [{ name: 'node-a' }] } } },
    { ip: '10.180.0.2', raw: { addresses: ['10.180.0.2'], nodeName: 'node-b', conditions: { ready: false, serving: true, terminating: true } } },
  ]);
  const [sp] = servicePortsFromObjects(svc(), [s], 'IPv4', undefined, NODE_A);
  t.deepEqual(sp.endpoints, [
    { ip: '10.180.0.1', port: 8080, ready: true, serving: true, terminating: false, isLocal: true, nodeName: 'node-a', zone: 'zone-a', zoneHints: ['zone-a'], nodeHints: ['node-a'] },
    { ip: '10.180.0.2', port: 8080, ready: false, serving: true, terminating: true, isLocal: false, nodeName: 'node-b' },
  ]);
  t.deepEqual(ipPort(sp.clusterEndpoints), [{ ip: '10.180.0.1', port: 8080 }], 'the terminating one is known but not used');
  t.deepEqual(ipPort(sp.localEndpoints), [{ ip: '10.180.0.1', port: 8080 }], 'local endpoints are computed even when no policy uses them');
  const [noNode] = servicePortsFromObjects(svc(), [s], 'IPv4');
  t.false(noNode.endpoints[0].isLocal, 'no node, nothing is local');
});

test('endpoints: topology and Local policy chosen by endpoint selection', (t) => {
  const hinted = (ip: string, zone: string, node: string) => ({ ip, raw: { addresses: [ip], nodeName: node, hints: { forZones: [{ name: zone }] } } });
  const s = slice('a', [hinted('10.180.0.1', 'zone-a', 'node-b'), hinted('10.180.0.2', 'zone-b', 'node-a'), hinted('10.180.0.3', 'zone-a', 'node-c')]);
  const service = svc((x) => ((x.spec.type = 'NodePort'), (x.spec.ports[0].nodePort = 30080), (x.spec.externalTrafficPolicy = 'Local')));
  const [sp] = servicePortsFromObjects(service, [s], 'IPv4', undefined, NODE_A);
  t.deepEqual(sp.clusterEndpoints.map((e) => e.ip), ['10.180.0.1', '10.180.0.3']);
  t.deepEqual(sp.localEndpoints.map((e) => e.ip), ['10.180.0.2']);
});

test('endpoints: a terminating duplicate keeps the non-terminating conditions', (t) => {
  const slices = [
    slice('a', [{ ip: '10.180.0.1', ready: true }]),
    slice('b', [{ ip: '10.180.0.1', ready: false, serving: true, terminating: true }]),
  ];
  const [sp] = servicePortsFromObjects(svc(), slices, 'IPv4');
  t.is(sp.endpoints.length, 1);
  t.false(sp.endpoints[0].terminating);
});

// --- malformed optional fields ---------------------------------------------------

// [name, patch of fullService, reasons reported, check on the IPv4 ServicePort (undefined: none built)]
const malformed: Array<[string, (s: any) => void, string[], ((sp: any) => unknown) | undefined, unknown]> = [
  ['bad externalIP dropped, others kept', (s) => s.spec.externalIPs.push('192.168.99.300'), ['bad-external-ip'], (sp) => sp.externalIPs, ['192.168.99.11']],
  ['externalIPs not a list', (s) => (s.spec.externalIPs = '192.168.99.11'), ['bad-field'], (sp) => sp.externalIPs, []],
  ['nodePort out of range', (s) => (s.spec.ports[0].nodePort = 70000), ['port-out-of-range'], (sp) => sp.nodePort, 0],
  ['bad ingress IP dropped', (s) => s.status.loadBalancer.ingress.push({ ip: 'lb' }), ['bad-ingress-ip'], (sp) => sp.loadBalancerVIPs, ['5.6.7.8']],
  ['unknown ipMode dropped', (s) => (s.status.loadBalancer.ingress[0].ipMode = 'Tunnel'), ['bad-field'], (sp) => sp.loadBalancerVIPs, []],
  ['ingress not a list', (s) => (s.status.loadBalancer.ingress = {}), ['bad-field'], (sp) => sp.loadBalancerVIPs, []],
  ['bad timeout: default', (s) => (s.spec.sessionAffinityConfig = { clientIP: { timeoutSeconds: 0 } }), ['bad-field'], (sp) => sp.stickyMaxAgeSeconds, 10800],
  ['unknown affinity: None', (s) => (s.spec.sessionAffinity = 'Cookie'), ['bad-field'], (sp) => [sp.sessionAffinity, sp.stickyMaxAgeSeconds], ['None', 0]],
  ['unknown eTP: Cluster', (s) => (s.spec.externalTrafficPolicy = 'Nearby'), ['bad-field'], (sp) => [sp.externalPolicyLocal, sp.healthCheckNodePort], [false, 0]],
  ['unknown iTP: Cluster', (s) => (s.spec.internalTrafficPolicy = 'local'), ['bad-field'], (sp) => sp.internalPolicyLocal, false],
  ['healthCheckNodePort out of range', (s) => (s.spec.healthCheckNodePort = -1), ['port-out-of-range'], (sp) => sp.healthCheckNodePort, 0],
  ['trafficDistribution not a string', (s) => (s.spec.trafficDistribution = 7), ['bad-field'], (sp) => sp.trafficDistribution, ''],
  ['trafficDistribution not a word (it could not cross the wire)', (s) => (s.spec.trafficDistribution = 'Prefer Close'), ['bad-field'], (sp) => sp.trafficDistribution, ''],
  ['bad source range refuses the Service', (s) => s.spec.loadBalancerSourceRanges.push('10.0.0.0/33'), ['bad-source-range'], undefined, undefined],
  ['source ranges not a list', (s) => (s.spec.loadBalancerSourceRanges = '10.0.0.0/8'), ['bad-source-range'], undefined, undefined],
  ['unknown type refuses the Service', (s) => (s.spec.type = 'Ingress'), ['bad-field'], undefined, undefined],
  ['bad source range on a NodePort: dropped, unused anyway', (s) => ((s.spec.type = 'NodePort'), s.spec.loadBalancerSourceRanges.push('x')), ['bad-source-range'], (sp) => sp.loadBalancerSourceRanges, ['203.0.113.0/24', '198.51.100.0/24']],
];
for (const [name, patch, reasons, get, expected] of malformed) {
  test(`malformed field: ${name}`, (t) => {
    const reported: string[] = [];
    const specs = servicePortsFromObjects(fullService(patch), [], 'IPv4', (_k, r) => reported.push(r));
    t.deepEqual(reported, reasons);
    if (!get) return t.deepEqual(specs, []);
    t.deepEqual(get(specs[0]), expected);
  });
}

test('malformed endpoint fields drop only the field', (t) => {
  const reported: string[] = [];
  const s = slice('a', [
    { ip: '10.180.0.1', raw: { addresses: ['10.180.0.1'], nodeName: 7, zone: ['z'], hints: { forZones: [{ name: 'zone-a' }, {}], forNodes: [{ name: 'node-a' }] } } },
    { ip: '10.180.0.2', raw: { addresses: ['10.180.0.2'], hints: 'zone-a' } },
  ]);
  const [sp] = servicePortsFromObjects(svc(), [s], 'IPv4', (_k, r, ref) => reported.push(`${r} ${ref}`), NODE_A);
  t.deepEqual(reported, [
    'bad-field ns1/a#endpoints[0].nodeName',
    'bad-field ns1/a#endpoints[0].zone',
    'bad-field ns1/a#endpoints[0].hints.forZones',
    'bad-field ns1/a#endpoints[1].hints',
  ]);
  t.deepEqual(sp.endpoints.map((e) => e.ip), ['10.180.0.1', '10.180.0.2']);
  t.deepEqual(sp.endpoints[0], { ip: '10.180.0.1', port: 8080, ready: true, serving: true, terminating: false, isLocal: false, nodeHints: ['node-a'] });
});
