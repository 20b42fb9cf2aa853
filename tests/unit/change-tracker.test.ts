import test from 'ava';
import type { IPFamily } from '../../ts/model/types.js';
import { ChangeTracker } from '../../ts/tracker/change-tracker.js';

const START = Date.UTC(2025, 0, 1);
const V4 = '172.30.0.41';
const V6 = 'fd00:30::41';
const NODE = 'node-a';
const ZONE = 'topology.kubernetes.io/zone';

function svc(name: string, patch: (s: any) => void = () => {}): any {
  const s: any = {
    metadata: { namespace: 'ns1', name, resourceVersion: '1' },
    spec: { clusterIP: V4, clusterIPs: [V4], ports: [{ name: 'p80', port: 80, protocol: 'TCP' }] },
  };
  patch(s);
  return s;
}

function slice(name: string, service: string, ips: string[], patch: (s: any) => void = () => {}): any {
  const s: any = {
    metadata: { namespace: 'ns1', name, resourceVersion: '1', labels: { 'kubernetes.io/service-name': service } },
    addressType: ips.some((ip) => ip.includes(':')) ? 'IPv6' : 'IPv4',
    endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
    ports: [{ name: 'p80', port: 8080, protocol: 'TCP' }],
  };
  patch(s);
  return s;
}

const ipPort = (list: Array<{ ip: string; port: number }>) => list.map(({ ip, port }) => ({ ip, port }));

function tracker(families: IPFamily[] = ['IPv4']) {
  const invalid: string[] = [];
  const tr = new ChangeTracker({ families, nodeName: NODE, onInvalid: (k, r, ref) => invalid.push(`${k} ${r} ${ref}`), startTime: START });
  const drain = (family: IPFamily = 'IPv4') => tr.drain().get(family)!;
  const summary = (family: IPFamily = 'IPv4') => {
    const d = drain(family);
    return { up: d.upserts.map((s) => `${s.key}=${s.endpoints.map((e) => e.ip).join(',')}`), del: d.deletes };
  };
  return { tr, invalid, drain, summary };
}

test('add Service and slice: one upsert with endpoints, then nothing', (t) => {
  const { tr, summary } = tracker();
  tr.onEvent('Service', 'ADDED', svc('a'));
  tr.onEvent('EndpointSlice', 'ADDED', slice('a-1', 'a', ['10.180.0.1']));
  t.is(tr.pendingServiceChanges(), 1);
  t.is(tr.pendingEndpointChanges(), 1);
  t.deepEqual(summary(), { up: ['ns1/a/tcp/p80=10.180.0.1'], del: [] });
  t.is(tr.pendingServiceChanges(), 0);
  t.is(tr.pendingEndpointChanges(), 0);
  t.deepEqual(summary(), { up: [], del: [] });
});

test('slice before its Service: endpoints appear when the Service does', (t) => {
  const { tr, summary } = tracker();
  tr.onEvent('EndpointSlice', 'ADDED', slice('a-1', 'a', ['10.180.0.1']));
  t.deepEqual(summary(), { up: [], del: [] });
  tr.onEvent('Service', 'ADDED', svc('a'));
  t.deepEqual(summary(), { up: ['ns1/a/tcp/p80=10.180.0.1'], del: [] });
});

// Each row: events after a drained baseline of Service a + slice a-1 (10.180.0.1); expected next drain.
const changeCases: Array<[string, (tr: ChangeTracker) => void, { up: string[]; del: string[] }, [number, number]]> = [
  ['no-op update (only resourceVersion)', (tr) => tr.onEvent('Service', 'MODIFIED', svc('a', (s) => (s.metadata.resourceVersion = '2')), svc('a')),
    { up: [], del: [] }, [0, 0]],
  ['irrelevant field change', (tr) => tr.onEvent('Service', 'MODIFIED', svc('a', (s) => (s.metadata.annotations = { x: 'y' }))),
    { up: [], del: [] }, [0, 0]],
  ['endpoint added', (tr) => tr.onEvent('EndpointSlice', 'MODIFIED', slice('a-1', 'a', ['10.180.0.1', '10.180.0.2'])),
    { up: ['ns1/a/tcp/p80=10.180.0.1,10.180.0.2'], del: [] }, [0, 1]],
  ['change reverted before drain', (tr) => {
    tr.onEvent('EndpointSlice', 'MODIFIED', slice('a-1', 'a', ['10.180.0.9']));
    tr.onEvent('EndpointSlice', 'MODIFIED', slice('a-1', 'a', ['10.180.0.1']));
  }, { up: [], del: [] }, [0, 0]],
  ['Service deleted and re-added unchanged', (tr) => {
    tr.onEvent('Service', 'DELETED', svc('a'));
    tr.onEvent('Service', 'ADDED', svc('a'));
  }, { up: [], del: [] }, [0, 0]],
  ['Service deleted', (tr) => tr.onEvent('Service', 'DELETED', svc('a')), { up: [], del: ['ns1/a/tcp/p80'] }, [1, 0]],
  ['slice deleted: spec stays, without endpoints', (tr) => tr.onEvent('EndpointSlice', 'DELETED', slice('a-1', 'a', [])),
    { up: ['ns1/a/tcp/p80='], del: [] }, [0, 1]],
  ['port renamed: old key deleted, new key upserted', (tr) => tr.onEvent('Service', 'MODIFIED', svc('a', (s) => (s.spec.ports[0].name = 'web'))),
    { up: ['ns1/a/tcp/web='], del: ['ns1/a/tcp/p80'] }, [1, 0]],
  ['ClusterIP changed', (tr) => tr.onEvent('Service', 'MODIFIED', svc('a', (s) => ((s.spec.clusterIP = '172.30.0.42'), (s.spec.clusterIPs = ['172.30.0.42'])))),
    { up: ['ns1/a/tcp/p80=10.180.0.1'], del: [] }, [1, 0]],
  ['Service becomes headless', (tr) => tr.onEvent('Service', 'MODIFIED', svc('a', (s) => ((s.spec.clusterIP = 'None'), (s.spec.clusterIPs = ['None'])))),
    { up: [], del: ['ns1/a/tcp/p80'] }, [1, 0]],
  ['Service gets the other-proxy label', (tr) => tr.onEvent('Service', 'MODIFIED', svc('a', (s) => (s.metadata.labels = { 'service.kubernetes.io/service-proxy-name': 'x' }))),
    { up: [], del: ['ns1/a/tcp/p80'] }, [1, 0]],
  ['slice relabelled to another Service', (tr) => {
    tr.onEvent('Service', 'ADDED', svc('b'));
    tr.onEvent('EndpointSlice', 'MODIFIED', slice('a-1', 'b', ['10.180.0.1']));
  }, { up: ['ns1/a/tcp/p80=', 'ns1/b/tcp/p80=10.180.0.1'], del: [] }, [1, 1]],
  ['second slice merged', (tr) => tr.onEvent('EndpointSlice', 'ADDED', slice('a-2', 'a', ['10.180.0.0'])),
    { up: ['ns1/a/tcp/p80=10.180.0.0,10.180.0.1'], del: [] }, [0, 1]],
  ['slice turns FQDN (dropped)', (tr) => tr.onEvent('EndpointSlice', 'MODIFIED', slice('a-1', 'a', ['10.180.0.1'], (s) => (s.addressType = 'FQDN'))),
    { up: ['ns1/a/tcp/p80='], del: [] }, [0, 1]],
  ['another Node\'s events ignored', (tr) => tr.onEvent('Node', 'MODIFIED', { metadata: { name: 'n1', labels: { [ZONE]: 'zone-b' } } }), { up: [], del: [] }, [0, 0]],
  ['our Node without hinted endpoints: nothing to send', (tr) => tr.onEvent('Node', 'ADDED', { metadata: { name: NODE, labels: { [ZONE]: 'zone-b' } } }), { up: [], del: [] }, [0, 0]],
  ['malformed update keeps the last good version', (tr) => tr.onEvent('Service', 'MODIFIED', svc('a', (s) => (s.spec.clusterIP = 'garbage'))),
    { up: [], del: [] }, [0, 0]],
];

for (const [name, apply, expected, [svcPending, epPending]] of changeCases) {
  test(`change: ${name}`, (t) => {
    const { tr, summary } = tracker();
    tr.onEvent('Service', 'ADDED', svc('a'));
    tr.onEvent('EndpointSlice', 'ADDED', slice('a-1', 'a', ['10.180.0.1']));
    tr.drain();
    apply(tr);
    t.deepEqual([tr.pendingServiceChanges(), tr.pendingEndpointChanges()], [svcPending, epPending], 'pending counts');
    t.deepEqual(summary(), expected);
    t.deepEqual(summary(), { up: [], del: [] }, 'second drain is empty');
  });
}

test('dual-stack: one drain, per-family results', (t) => {
  const { tr } = tracker(['IPv4', 'IPv6']);
  tr.onEvent('Service', 'ADDED', svc('a', (s) => (s.spec.clusterIPs = [V4, V6])));
  tr.onEvent('EndpointSlice', 'ADDED', slice('a-4', 'a', ['10.180.0.1']));
  tr.onEvent('EndpointSlice', 'ADDED', slice('a-6', 'a', ['fd00:180::1']));
  const d = tr.drain();
  t.deepEqual([...d.keys()], ['IPv4', 'IPv6']);
  t.is(d.get('IPv4')!.upserts[0].clusterIP, V4);
  t.deepEqual(ipPort(d.get('IPv4')!.upserts[0].endpoints), [{ ip: '10.180.0.1', port: 8080 }]);
  t.is(d.get('IPv6')!.upserts[0].clusterIP, V6);
  t.deepEqual(ipPort(d.get('IPv6')!.upserts[0].endpoints), [{ ip: 'fd00:180::1', port: 8080 }]);
  // An IPv6-only endpoint change leaves IPv4 untouched.
  tr.onEvent('EndpointSlice', 'MODIFIED', slice('a-6', 'a', ['fd00:180::2']));
  const d2 = tr.drain();
  t.deepEqual(d2.get('IPv4'), { upserts: [], deletes: [] });
  t.is(d2.get('IPv6')!.upserts.length, 1);
});

test('all(): everything desired, sorted, including undrained changes', (t) => {
  const { tr } = tracker();
  tr.onEvent('Service', 'ADDED', svc('b'));
  tr.onEvent('Service', 'ADDED', svc('a'));
  tr.drain();
  tr.onEvent('Service', 'ADDED', svc('c'));
  tr.onEvent('Service', 'DELETED', svc('b'));
  t.deepEqual(tr.all('IPv4').map((s) => s.key), ['ns1/a/tcp/p80', 'ns1/c/tcp/p80']);
  t.deepEqual(tr.all('IPv6'), []);
  t.deepEqual(tr.drain().get('IPv4')!.deletes, ['ns1/b/tcp/p80']);
});

test('trigger time: earliest of the changed slices since the last drain', (t) => {
  const { tr } = tracker();
  const at = (ms: number) => (s: any) => (s.metadata.annotations = { 'endpoints.kubernetes.io/last-change-trigger-time': new Date(START + ms).toISOString() });
  tr.onEvent('Service', 'ADDED', svc('a'));
  tr.onEvent('Service', 'ADDED', svc('b'));
  tr.onEvent('EndpointSlice', 'ADDED', slice('a-1', 'a', ['10.180.0.1'], at(-5000))); // before start: not ours
  tr.drain();
  t.is(tr.lastDrainTriggerTime, undefined);
  tr.onEvent('EndpointSlice', 'MODIFIED', slice('a-1', 'a', ['10.180.0.2'], at(3000)));
  tr.onEvent('EndpointSlice', 'ADDED', slice('b-1', 'b', ['10.180.0.3'], at(2000)));
  tr.onEvent('EndpointSlice', 'ADDED', slice('b-2', 'b', ['10.180.0.4'], at(1000)));
  tr.onEvent('EndpointSlice', 'DELETED', slice('b-2', 'b', [], at(1000))); // reverted: does not count
  tr.drain();
  t.is(tr.lastDrainTriggerTime, START + 2000);
  tr.drain();
  t.is(tr.lastDrainTriggerTime, undefined);
});

test('bad input: reported with its reason, never thrown, never a spec', (t) => {
  const { tr, invalid } = tracker();
  const bad: Array<[string, any]> = [
    ['Service', null],
    ['Service', 'nonsense'],
    ['Service', svc('x', (s) => delete s.metadata)],
    ['Service', svc('x', (s) => delete s.spec)],
    ['Service', svc('x', (s) => (s.spec.clusterIP = '1.2.3'))],
    ['Service', svc('x', (s) => (s.spec.ports[0].port = 123456))],
    ['Service', svc('x', (s) => (s.spec.ports[0].protocol = 'HTTP'))],
    ['Service', svc('x'.repeat(5000))],
    ['EndpointSlice', slice('x-1', 'x', ['10.180.0.1'], (s) => (s.metadata.name = 'y'.repeat(300)))],
    ['EndpointSlice', slice('x-1', 'x', ['10.180.0.1'], (s) => (s.addressType = 'IPX'))],
    ['EndpointSlice', []],
  ];
  for (const [kind, obj] of bad) t.notThrows(() => tr.onEvent(kind as any, 'ADDED', obj));
  t.notThrows(() => tr.onEvent('Service', 'DELETED', {} as any));
  t.deepEqual(tr.all('IPv4'), []);
  const d = tr.drain().get('IPv4')!;
  t.deepEqual(d, { upserts: [], deletes: [] });
  t.deepEqual(invalid.map((s) => s.split(' ').slice(0, 2).join(' ')), [
    'Service not-an-object',
    'Service not-an-object',
    'Service missing-field',
    'Service missing-field',
    'Service bad-cluster-ip',
    'Service port-out-of-range',
    'Service unknown-protocol',
    'Service name-too-long',
    'EndpointSlice name-too-long',
    'EndpointSlice unknown-address-type',
    'EndpointSlice not-an-object',
    'Service missing-field',
  ]);
});

test('a bad endpoint drops only itself', (t) => {
  const { tr, invalid, summary } = tracker();
  tr.onEvent('Service', 'ADDED', svc('a'));
  tr.onEvent('EndpointSlice', 'ADDED', slice('a-1', 'a', ['10.180.0.1', '10.180.0.2', 'fd00::1', 'not-an-ip'], (s) => (s.addressType = 'IPv4')));
  t.deepEqual(summary(), { up: ['ns1/a/tcp/p80=10.180.0.1,10.180.0.2'], del: [] });
  t.deepEqual(invalid, ['EndpointSlice wrong-family ns1/a-1#endpoints[2]', 'EndpointSlice bad-endpoint-ip ns1/a-1#endpoints[3]']);
});

test('DELETED identifies the object by metadata, or by old when obj is bare', (t) => {
  const { tr, summary } = tracker();
  tr.onEvent('Service', 'ADDED', svc('a'));
  tr.drain();
  tr.onEvent('Service', 'DELETED', {} as any, svc('a'));
  t.deepEqual(summary(), { up: [], del: ['ns1/a/tcp/p80'] });
});

// --- Node labels and topology ----------------------------------------------------

const node = (labels: Record<string, string> = {}, name = NODE) => ({ metadata: { name, labels } });

/** Three endpoints hinted for zone-a, zone-b and zone-a. */
function hintedSlice(name: string, service: string): any {
  return slice(name, service, ['10.180.0.1', '10.180.0.2', '10.180.0.3'], (s) =>
    s.endpoints.forEach((e: any, i: number) => (e.hints = { forZones: [{ name: i === 1 ? 'zone-b' : 'zone-a' }] })),
  );
}

test('Node zone change recomputes hinted Services; only real changes are sent', (t) => {
  const { tr, summary } = tracker();
  tr.onEvent('Node', 'ADDED', node({ [ZONE]: 'zone-a' }));
  tr.onEvent('Service', 'ADDED', svc('hinted'));
  tr.onEvent('EndpointSlice', 'ADDED', hintedSlice('hinted-1', 'hinted'));
  tr.onEvent('Service', 'ADDED', svc('plain'));
  tr.onEvent('EndpointSlice', 'ADDED', slice('plain-1', 'plain', ['10.180.0.9']));
  const clusterOf = () => tr.all('IPv4').map((sp) => `${sp.name}=${sp.clusterEndpoints.map((e) => e.ip).join(',')}`);
  t.deepEqual(clusterOf(), ['hinted=10.180.0.1,10.180.0.3', 'plain=10.180.0.9']);
  tr.drain();

  tr.onEvent('Node', 'MODIFIED', node({ [ZONE]: 'zone-b' }));
  t.deepEqual([tr.pendingServiceChanges(), tr.pendingEndpointChanges()], [0, 0], 'a Node change is neither');
  t.deepEqual(clusterOf(), ['hinted=10.180.0.2', 'plain=10.180.0.9'], 'all() sees the new zone before the drain');
  const d = tr.drain().get('IPv4')!;
  t.deepEqual(d.upserts.map((sp) => sp.key), ['ns1/hinted/tcp/p80']);
  t.deepEqual(d.upserts[0].clusterEndpoints.map((e) => e.ip), ['10.180.0.2']);

  // Other labels do not matter; a zone no endpoint is hinted for means all endpoints.
  tr.onEvent('Node', 'MODIFIED', node({ [ZONE]: 'zone-b', team: 'x' }));
  t.deepEqual(summary(), { up: [], del: [] });
  tr.onEvent('Node', 'MODIFIED', node({ [ZONE]: 'zone-c' }));
  t.deepEqual(summary(), { up: ['ns1/hinted/tcp/p80=10.180.0.1,10.180.0.2,10.180.0.3'], del: [] });
  // Deleting our Node forgets its labels (as upstream's OnNodeDelete).
  tr.onEvent('Node', 'MODIFIED', node({ [ZONE]: 'zone-a' }));
  tr.drain();
  tr.onEvent('Node', 'DELETED', node({ [ZONE]: 'zone-a' }));
  t.deepEqual(tr.node, { name: NODE, labels: {} });
  t.deepEqual(summary(), { up: ['ns1/hinted/tcp/p80=10.180.0.1,10.180.0.2,10.180.0.3'], del: [] });
});

test('local endpoints follow the node name; Local policies select them', (t) => {
  const { tr, drain } = tracker();
  tr.onEvent('Service', 'ADDED', svc('a', (s) => (s.spec.internalTrafficPolicy = 'Local')));
  tr.onEvent('EndpointSlice', 'ADDED', slice('a-1', 'a', ['10.180.0.1', '10.180.0.2'], (s) => {
    s.endpoints[0].nodeName = 'node-b';
    s.endpoints[1].nodeName = NODE;
  }));
  const [sp] = drain().upserts;
  t.deepEqual(sp.endpoints.map((e) => [e.ip, e.isLocal]), [['10.180.0.1', false], ['10.180.0.2', true]]);
  t.deepEqual(sp.localEndpoints.map((e) => e.ip), ['10.180.0.2']);
  // Both lists are always computed; each mode picks the one its policy needs.
  t.deepEqual(sp.clusterEndpoints.map((e) => e.ip), ['10.180.0.1', '10.180.0.2'], 'cluster endpoints are there for modes without iTP Local');
});

test('dual-stack: every new ServicePort field per family; ipMode Proxy skipped', (t) => {
  const { tr } = tracker(['IPv4', 'IPv6']);
  tr.onEvent('Service', 'ADDED', svc('lb', (s) => {
    s.spec.type = 'LoadBalancer';
    s.spec.clusterIPs = [V4, V6];
    s.spec.ports[0].nodePort = 30080;
    s.spec.externalIPs = ['192.168.99.11', 'fd00:99::11'];
    s.spec.loadBalancerSourceRanges = ['203.0.113.0/24', 'fd00:203::/48'];
    s.spec.sessionAffinity = 'ClientIP';
    s.spec.sessionAffinityConfig = { clientIP: { timeoutSeconds: 300 } };
    s.spec.externalTrafficPolicy = 'Local';
    s.spec.healthCheckNodePort = 30999;
    s.spec.trafficDistribution = 'PreferClose';
    s.status = { loadBalancer: { ingress: [{ ip: '5.6.7.8', ipMode: 'VIP' }, { ip: '5.6.7.9', ipMode: 'Proxy' }, { ip: 'fd00:5::8' }] } };
  }));
  const d = tr.drain();
  const [v4] = d.get('IPv4')!.upserts;
  const [v6] = d.get('IPv6')!.upserts;
  const { endpoints: _a, clusterEndpoints: _b, localEndpoints: _c, ...v4Fields } = v4;
  t.deepEqual(v4Fields, {
    key: 'ns1/lb/tcp/p80', namespace: 'ns1', name: 'lb', portName: 'p80', protocol: 'TCP', family: 'IPv4', type: 'LoadBalancer',
    clusterIP: V4, port: 80, nodePort: 30080, externalIPs: ['192.168.99.11'], loadBalancerVIPs: ['5.6.7.8'],
    loadBalancerSourceRanges: ['203.0.113.0/24'], sessionAffinity: 'ClientIP', stickyMaxAgeSeconds: 300,
    externalPolicyLocal: true, internalPolicyLocal: false, healthCheckNodePort: 30999, trafficDistribution: 'PreferClose',
  });
  t.deepEqual([v6.family, v6.clusterIP, v6.externalIPs, v6.loadBalancerVIPs, v6.loadBalancerSourceRanges], ['IPv6', V6, ['fd00:99::11'], ['fd00:5::8'], ['fd00:203::/48']]);
  // The ingress IP switching to Proxy mode removes it from IPv4 only.
  tr.onEvent('Service', 'MODIFIED', svc('lb', (s) => {
    Object.assign(s.spec, { type: 'LoadBalancer', clusterIPs: [V4, V6], externalIPs: ['192.168.99.11', 'fd00:99::11'], externalTrafficPolicy: 'Local', healthCheckNodePort: 30999 });
    s.spec.ports[0].nodePort = 30080;
    s.spec.loadBalancerSourceRanges = ['203.0.113.0/24', 'fd00:203::/48'];
    s.spec.sessionAffinity = 'ClientIP';
    s.spec.sessionAffinityConfig = { clientIP: { timeoutSeconds: 300 } };
    s.spec.trafficDistribution = 'PreferClose';
    s.status = { loadBalancer: { ingress: [{ ip: '5.6.7.8', ipMode: 'Proxy' }, { ip: 'fd00:5::8' }] } };
  }));
  const d2 = tr.drain();
  t.deepEqual(d2.get('IPv4')!.upserts.map((sp) => sp.loadBalancerVIPs), [[]]);
  t.deepEqual(d2.get('IPv6')!.upserts, []);
});

test('malformed new fields: counted, the field skipped, the rest programmed', (t) => {
  const { tr, invalid, drain } = tracker();
  tr.onEvent('Service', 'ADDED', svc('a', (s) => {
    s.spec.type = 'NodePort';
    s.spec.ports[0].nodePort = 99999;
    s.spec.externalIPs = ['192.168.99.11', '999.1.1.1'];
    s.status = { loadBalancer: { ingress: [{ ip: 'not-an-ip' }] } };
  }));
  tr.onEvent('EndpointSlice', 'ADDED', slice('a-1', 'a', ['10.180.0.1'], (s) => (s.endpoints[0].hints = { forZones: 'zone-a' })));
  tr.onEvent('Node', 'ADDED', { metadata: { name: NODE, labels: { [ZONE]: 'zone-a', broken: 7 } } });
  t.deepEqual(invalid, [
    'Service port-out-of-range ns1/a#ports[0].nodePort',
    'Service bad-external-ip ns1/a#externalIPs[1]',
    'Service bad-ingress-ip ns1/a#status.loadBalancer.ingress[0]',
    'EndpointSlice bad-field ns1/a-1#endpoints[0].hints.forZones',
    'Node bad-field node-a#labels.broken',
  ]);
  const [sp] = drain().upserts;
  t.deepEqual([sp.nodePort, sp.externalIPs, sp.loadBalancerVIPs], [0, ['192.168.99.11'], []]);
  t.deepEqual(sp.clusterEndpoints.map((e) => e.ip), ['10.180.0.1']);
  t.is(sp.endpoints[0].zoneHints, undefined);
  t.deepEqual(tr.node.labels, { [ZONE]: 'zone-a' });
  // A refused update (bad source range) keeps the last good version.
  tr.onEvent('Service', 'MODIFIED', svc('a', (s) => ((s.spec.type = 'LoadBalancer'), (s.spec.loadBalancerSourceRanges = ['10.0.0.0/40']))));
  t.is(invalid.at(-1), 'Service bad-source-range ns1/a#loadBalancerSourceRanges[0]');
  t.deepEqual(drain(), { upserts: [], deletes: [] });
  t.notThrows(() => tr.onEvent('Node', 'MODIFIED', { metadata: { name: NODE, labels: 'zone-a' } }));
  t.notThrows(() => tr.onEvent('Node', 'MODIFIED', {} as any));
  t.deepEqual(invalid.slice(-2), ['Node bad-field node-a#labels', 'Node missing-field <unnamed>']);
});
