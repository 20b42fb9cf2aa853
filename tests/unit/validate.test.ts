import test from 'ava';
import { canonicalIP, ipFamilyOf, parseCIDR, parseEndpointSlice, parseService, validateService } from '../../ts/tracker/validate.js';

const long = (n: number) => 'a'.repeat(n);

/** A good ClusterIP Service; each row below breaks one thing. */
function svc(patch: (s: any) => void = () => {}): any {
  const s: any = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { namespace: 'ns1', name: 'svc1' },
    spec: { clusterIP: '172.30.0.41', clusterIPs: ['172.30.0.41'], ports: [{ name: 'p80', port: 80, protocol: 'TCP' }] },
  };
  patch(s);
  return s;
}

const serviceCases: Array<[string, unknown, string | undefined]> = [
  ['good', svc(), undefined],
  ['good dual-stack', svc((s) => (s.spec.clusterIPs = ['172.30.0.41', 'fd00:30::41'])), undefined],
  ['good unnamed single port', svc((s) => (s.spec.ports = [{ port: 80 }])), undefined],
  ['no ports', svc((s) => delete s.spec.ports), undefined],
  ['headless needs no IP checks', svc((s) => ((s.spec.clusterIP = 'None'), (s.spec.clusterIPs = ['None']))), undefined],
  ['ExternalName', svc((s) => ((s.spec.type = 'ExternalName'), delete s.spec.clusterIP, delete s.spec.clusterIPs)), undefined],
  ['null', null, 'not-an-object'],
  ['string', 'Service', 'not-an-object'],
  ['array', [svc()], 'not-an-object'],
  ['no metadata', svc((s) => delete s.metadata), 'missing-field'],
  ['no namespace', svc((s) => delete s.metadata.namespace), 'missing-field'],
  ['no name', svc((s) => delete s.metadata.name), 'missing-field'],
  ['name not a string', svc((s) => (s.metadata.name = 42)), 'missing-field'],
  ['no spec', svc((s) => delete s.spec), 'missing-field'],
  ['namespace too long', svc((s) => (s.metadata.namespace = long(64))), 'name-too-long'],
  ['name too long', svc((s) => (s.metadata.name = long(64))), 'name-too-long'],
  ['name 63 is fine', svc((s) => (s.metadata.name = long(63))), undefined],
  ['enormous name', svc((s) => (s.metadata.name = long(100_000))), 'name-too-long'],
  ['name with a slash', svc((s) => (s.metadata.name = 'a/b')), 'bad-name'],
  ['name starting with a digit', svc((s) => (s.metadata.name = '1abc')), 'bad-name'],
  ['bad clusterIP', svc((s) => (s.spec.clusterIP = '300.1.1.1')), 'bad-cluster-ip'],
  ['clusterIP not a string', svc((s) => (s.spec.clusterIP = 17)), 'bad-cluster-ip'],
  ['clusterIP with zone', svc((s) => ((s.spec.clusterIP = 'fe80::1%eth0'), delete s.spec.clusterIPs)), 'bad-cluster-ip'],
  ['bad clusterIPs entry', svc((s) => (s.spec.clusterIPs = ['172.30.0.41', 'nope'])), 'bad-cluster-ip'],
  ['clusterIPs same family twice', svc((s) => (s.spec.clusterIPs = ['172.30.0.41', '172.30.0.42'])), 'bad-cluster-ip'],
  ['clusterIPs[0] != clusterIP', svc((s) => (s.spec.clusterIPs = ['172.30.0.42'])), 'bad-cluster-ip'],
  ['three clusterIPs', svc((s) => (s.spec.clusterIPs = ['172.30.0.41', 'fd00::1', '172.30.0.9'])), 'bad-cluster-ip'],
  ['ports not a list', svc((s) => (s.spec.ports = { port: 80 })), 'bad-field'],
  ['port entry not an object', svc((s) => (s.spec.ports = [80])), 'bad-field'],
  ['port missing', svc((s) => delete s.spec.ports[0].port), 'missing-field'],
  ['port 0', svc((s) => (s.spec.ports[0].port = 0)), 'port-out-of-range'],
  ['port 65536', svc((s) => (s.spec.ports[0].port = 65536)), 'port-out-of-range'],
  ['port negative', svc((s) => (s.spec.ports[0].port = -1)), 'port-out-of-range'],
  ['port fractional', svc((s) => (s.spec.ports[0].port = 80.5)), 'port-out-of-range'],
  ['port as string', svc((s) => (s.spec.ports[0].port = '80')), 'port-out-of-range'],
  ['unknown protocol', svc((s) => (s.spec.ports[0].protocol = 'ICMP')), 'unknown-protocol'],
  ['lowercase protocol', svc((s) => (s.spec.ports[0].protocol = 'tcp')), 'unknown-protocol'],
  ['port name too long', svc((s) => (s.spec.ports[0].name = long(64))), 'name-too-long'],
  ['port name bad', svc((s) => (s.spec.ports[0].name = 'P_80')), 'bad-name'],
  ['unnamed port among two', svc((s) => s.spec.ports.push({ port: 81 })), 'missing-field'],
  ['duplicate port name', svc((s) => s.spec.ports.push({ name: 'p80', port: 81 })), 'duplicate-port'],
  // As the API: (protocol, port) and (protocol, nodePort) pairs are unique; protocols tell them apart.
  ['duplicate port number and protocol', svc((s) => s.spec.ports.push({ name: 'other', port: 80 })), 'duplicate-port'],
  ['same port number, another protocol', svc((s) => s.spec.ports.push({ name: 'udp', port: 80, protocol: 'UDP' })), undefined],
  ['duplicate nodePort and protocol', svc((s) => ((s.spec.ports[0].nodePort = 30080), s.spec.ports.push({ name: 'b', port: 81, nodePort: 30080 }))), 'duplicate-port'],
  ['same nodePort, another protocol', svc((s) => ((s.spec.ports[0].nodePort = 30080), s.spec.ports.push({ name: 'b', port: 81, protocol: 'UDP', nodePort: 30080 }))), undefined],
  ['LoadBalancer type', svc((s) => (s.spec.type = 'LoadBalancer')), undefined],
  ['unknown type', svc((s) => (s.spec.type = 'Ingress')), 'bad-field'],
  ['source ranges with blanks', svc((s) => (s.spec.loadBalancerSourceRanges = [' 10.0.0.0/8', 'fd00::/8 '])), undefined],
  ['bad source range on a LoadBalancer', svc((s) => ((s.spec.type = 'LoadBalancer'), (s.spec.loadBalancerSourceRanges = ['10.0.0.0/8', '10.0.0.0']))), 'bad-source-range'],
  ['bad source range elsewhere is unused', svc((s) => (s.spec.loadBalancerSourceRanges = ['10.0.0.0'])), undefined],
  ['malformed optional fields do not refuse', svc((s) => ((s.spec.externalIPs = ['nope']), (s.spec.sessionAffinity = 'x'))), undefined],
];

for (const [name, input, reason] of serviceCases) {
  test(`validateService: ${name}`, (t) => {
    t.is(validateService(input)?.reason as string | undefined, reason);
  });
}

/** A good IPv4 slice; each row breaks one thing. */
function slice(patch: (s: any) => void = () => {}): any {
  const s: any = {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { namespace: 'ns1', name: 'svc1-abcde', labels: { 'kubernetes.io/service-name': 'svc1' } },
    addressType: 'IPv4',
    endpoints: [
      { addresses: ['10.180.0.1'], conditions: { ready: true } },
      { addresses: ['10.180.0.2'] },
    ],
    ports: [{ name: 'p80', port: 80, protocol: 'TCP' }],
  };
  patch(s);
  return s;
}

// [name, input, whole slice usable?, reasons reported, endpoints kept, ports kept]
const sliceCases: Array<[string, unknown, boolean, string[], number, number]> = [
  ['good', slice(), true, [], 2, 1],
  ['null endpoints and ports', slice((s) => ((s.endpoints = null), (s.ports = null))), true, [], 0, 0],
  ['FQDN: addresses not checked', slice((s) => ((s.addressType = 'FQDN'), (s.endpoints = [{ addresses: ['x.example'] }]))), true, [], 0, 1],
  ['not an object', 7, false, ['not-an-object'], 0, 0],
  ['no metadata', slice((s) => delete s.metadata), false, ['missing-field'], 0, 0],
  ['no service-name label', slice((s) => delete s.metadata.labels), false, ['missing-field'], 0, 0],
  ['namespace too long', slice((s) => (s.metadata.namespace = long(64))), false, ['name-too-long'], 0, 0],
  ['slice name 253 is fine', slice((s) => (s.metadata.name = long(253))), true, [], 2, 1],
  ['slice name too long', slice((s) => (s.metadata.name = long(254))), false, ['name-too-long'], 0, 0],
  ['service-name label too long', slice((s) => (s.metadata.labels['kubernetes.io/service-name'] = long(64))), false, ['name-too-long'], 0, 0],
  ['no addressType', slice((s) => delete s.addressType), false, ['missing-field'], 0, 0],
  ['unknown addressType', slice((s) => (s.addressType = 'IPv5')), false, ['unknown-address-type'], 0, 0],
  ['endpoints not a list', slice((s) => (s.endpoints = {})), false, ['bad-field'], 0, 0],
  ['ports not a list', slice((s) => (s.ports = 'p80')), false, ['bad-field'], 0, 0],
  ['endpoint without addresses', slice((s) => s.endpoints.push({ conditions: {} })), true, ['missing-field'], 2, 1],
  ['endpoint with empty addresses', slice((s) => s.endpoints.push({ addresses: [] })), true, ['missing-field'], 2, 1],
  ['bad endpoint IP', slice((s) => s.endpoints.push({ addresses: ['10.180.0.999'] })), true, ['bad-endpoint-ip'], 2, 1],
  ['IPv6 endpoint in IPv4 slice', slice((s) => s.endpoints.push({ addresses: ['fd00::1'] })), true, ['wrong-family'], 2, 1],
  ['IPv4 endpoint in IPv6 slice', slice((s) => ((s.addressType = 'IPv6'), (s.endpoints = [{ addresses: ['10.0.0.1'] }, { addresses: ['fd00::1'] }]))), true, ['wrong-family'], 1, 1],
  ['port out of range', slice((s) => s.ports.push({ name: 'big', port: 70000 })), true, ['port-out-of-range'], 2, 1],
  ['unknown protocol', slice((s) => s.ports.push({ name: 'icmp', port: 1, protocol: 'ICMP' })), true, ['unknown-protocol'], 2, 1],
  ['nil port name', slice((s) => s.ports.push({ port: 81 })), true, ['missing-field'], 2, 1],
  ['port name too long', slice((s) => s.ports.push({ name: long(64), port: 81 })), true, ['name-too-long'], 2, 1],
  ['nil and zero ports skipped silently', slice((s) => s.ports.push({ name: 'a' }, { name: 'b', port: 0 })), true, [], 2, 1],
];

for (const [name, input, usable, reasons, eps, ports] of sliceCases) {
  test(`parseEndpointSlice: ${name}`, (t) => {
    const r = parseEndpointSlice(input);
    t.is(r.info !== undefined, usable);
    t.deepEqual(r.issues.map((i) => i.reason), reasons);
    t.is(r.info?.endpoints.length ?? 0, eps);
    t.is(r.info?.ports.length ?? 0, ports);
  });
}

test('parseEndpointSlice: conditions default as upstream (ready/serving nil=true, terminating nil=false)', (t) => {
  const r = parseEndpointSlice(
    slice((s) => (s.endpoints = [{ addresses: ['10.180.0.1'] }, { addresses: ['10.180.0.2'], conditions: { ready: false, serving: true, terminating: true } }])),
  );
  t.deepEqual(r.info?.endpoints, [
    { ip: '10.180.0.1', ready: true, serving: true, terminating: false },
    { ip: '10.180.0.2', ready: false, serving: true, terminating: true },
  ]);
});

test('parseEndpointSlice: issue refs locate the dropped part', (t) => {
  const r = parseEndpointSlice(slice((s) => s.endpoints.push({ addresses: ['bogus'] })));
  t.deepEqual(r.issues, [{ reason: 'bad-endpoint-ip', ref: 'ns1/svc1-abcde#endpoints[2]' }]);
});

test('parseEndpointSlice: trigger-time annotation parsed to epoch ms', (t) => {
  const r = parseEndpointSlice(slice((s) => (s.metadata.annotations = { 'endpoints.kubernetes.io/last-change-trigger-time': '2024-01-02T03:04:05Z' })));
  t.is(r.info?.triggerTime, Date.UTC(2024, 0, 2, 3, 4, 5));
  t.is(parseEndpointSlice(slice((s) => (s.metadata.annotations = { 'endpoints.kubernetes.io/last-change-trigger-time': 'yesterday' }))).info?.triggerTime, undefined);
});

test('ipFamilyOf and canonicalIP', (t) => {
  t.is(ipFamilyOf('10.0.0.1'), 'IPv4');
  t.is(ipFamilyOf('fd00::1'), 'IPv6');
  t.is(ipFamilyOf('010.0.0.1'), undefined);
  t.is(ipFamilyOf(undefined), undefined);
  t.is(canonicalIP('FD00:0:0:0::0001'), 'fd00::1');
  t.is(canonicalIP('10.0.0.1'), '10.0.0.1');
});

test('validation never throws on hostile shapes', (t) => {
  const hostile: unknown[] = [undefined, 0, '', [], { metadata: null }, { metadata: { name: {}, namespace: [] } }, { metadata: 'x', spec: 'y' }];
  const cyclic: any = { metadata: { namespace: 'a', name: 'b' }, spec: { clusterIP: '10.0.0.1' } };
  cyclic.spec.ports = [cyclic];
  hostile.push(cyclic, Object.create(null));
  for (const h of hostile) {
    t.notThrows(() => validateService(h));
    t.notThrows(() => parseService(h));
    t.notThrows(() => parseEndpointSlice(h));
  }
});

// [input, canonical CIDR or undefined]
const cidrCases: Array<[unknown, string | undefined]> = [
  ['10.0.0.0/8', '10.0.0.0/8'],
  ['10.1.2.3/8', '10.0.0.0/8'],
  [' 192.168.1.77/25\t', '192.168.1.0/25'],
  ['1.2.3.4/32', '1.2.3.4/32'],
  ['1.2.3.4/0', '0.0.0.0/0'],
  ['FD00:0:0:0::1/64', 'fd00::/64'],
  ['2001:db8:1234:5678:9abc::1/52', '2001:db8:1234:5000::/52'],
  ['::1/128', '::1/128'],
  ['::/0', '::/0'],
  ['10.0.0.0', undefined],
  ['10.0.0.0/33', undefined],
  ['fd00::/129', undefined],
  ['10.0.0.0/08', undefined],
  ['10.0.0.0/-1', undefined],
  ['/8', undefined],
  ['010.0.0.0/8', undefined],
  [8, undefined],
];
for (const [input, cidr] of cidrCases) {
  test(`parseCIDR(${JSON.stringify(input)})`, (t) => {
    t.is(parseCIDR(input)?.cidr, cidr);
  });
}

test('parseService: skipped, refused and partially dropped', (t) => {
  t.deepEqual(parseService(svc((s) => (s.metadata.labels = { 'service.kubernetes.io/headless': '' }))), { skipped: true, issues: [] });
  t.deepEqual(parseService(svc((s) => (s.spec.type = 'ExternalName'))), { skipped: true, issues: [] });
  t.deepEqual(parseService(svc((s) => (s.spec.clusterIP = 'x'))), { skipped: false, issues: [{ reason: 'bad-cluster-ip', ref: 'ns1/svc1#clusterIP' }] });
  const partial = parseService(svc((s) => {
    s.spec.externalIPs = ['1.2.3.4', 'bogus'];
    s.spec.ports[0].nodePort = 0.5;
    s.status = { loadBalancer: { ingress: [7] } };
  }));
  t.truthy(partial.info);
  t.deepEqual(partial.issues, [
    { reason: 'port-out-of-range', ref: 'ns1/svc1#ports[0].nodePort' },
    { reason: 'bad-external-ip', ref: 'ns1/svc1#externalIPs[1]' },
    { reason: 'bad-field', ref: 'ns1/svc1#status.loadBalancer.ingress[0]' },
  ]);
  t.deepEqual(partial.info?.families.IPv4?.externalIPs, ['1.2.3.4']);
  t.is(partial.info?.families.IPv6, undefined, 'no IPv6 ClusterIP, no IPv6 addresses');
});

test('parseEndpointSlice: nodeName, zone and hints kept; empty hints are none', (t) => {
  const r = parseEndpointSlice(slice((s) => (s.endpoints = [
    { addresses: ['10.180.0.1'], nodeName: 'node-a', zone: 'zone-a', hints: { forZones: [{ name: 'zone-a' }], forNodes: [{ name: 'node-a' }] } },
    { addresses: ['10.180.0.2'], nodeName: '', hints: { forZones: [] } },
  ])));
  t.deepEqual(r.issues, []);
  t.deepEqual(r.info?.endpoints, [
    { ip: '10.180.0.1', ready: true, serving: true, terminating: false, nodeName: 'node-a', zone: 'zone-a', zoneHints: ['zone-a'], nodeHints: ['node-a'] },
    { ip: '10.180.0.2', ready: true, serving: true, terminating: false },
  ]);
});

test('parseService: a status, loadBalancer or sessionAffinityConfig of the wrong shape is counted, not ignored', (t) => {
  t.deepEqual(parseService(svc((s) => (s.status = 'up'))).issues, [{ reason: 'bad-field', ref: 'ns1/svc1#status' }]);
  t.deepEqual(parseService(svc((s) => (s.status = { loadBalancer: [1] }))).issues, [{ reason: 'bad-field', ref: 'ns1/svc1#status.loadBalancer' }]);
  t.deepEqual(parseService(svc((s) => (s.status = { loadBalancer: {} }))).issues, [], 'an empty status is fine');
  const cfg = parseService(svc((s) => ((s.spec.sessionAffinity = 'ClientIP'), (s.spec.sessionAffinityConfig = { clientIP: 60 }))));
  t.deepEqual(cfg.issues, [{ reason: 'bad-field', ref: 'ns1/svc1#sessionAffinityConfig' }]);
  t.is(cfg.info?.stickyMaxAgeSeconds, 10800, 'the default timeout stands');
  t.deepEqual(parseService(svc((s) => ((s.spec.sessionAffinity = 'ClientIP'), (s.spec.sessionAffinityConfig = 'x')))).issues.map((i) => i.reason), ['bad-field']);
});

test('parseEndpointSlice: conditions of the wrong type are counted and read as upstream\'s nil defaults', (t) => {
  const r = parseEndpointSlice(slice((s) => (s.endpoints = [{ addresses: ['10.180.0.1'], conditions: 'ready' }, { addresses: ['10.180.0.2'], conditions: { ready: 'false', terminating: 1 } }])));
  t.deepEqual(r.issues, [
    { reason: 'bad-field', ref: 'ns1/svc1-abcde#endpoints[0].conditions' },
    { reason: 'bad-field', ref: 'ns1/svc1-abcde#endpoints[1].conditions.ready' },
    { reason: 'bad-field', ref: 'ns1/svc1-abcde#endpoints[1].conditions.terminating' },
  ]);
  t.deepEqual(r.info?.endpoints.map((e) => [e.ready, e.serving, e.terminating]), [[true, true, false], [true, true, false]]);
});
