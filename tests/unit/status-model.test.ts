// The status model: Services and EndpointSlices (through the real tracker) → status rows,
// as a table of cases; the recorder's bounded memory and what a sync does to "programmed";
// the terminal table and the SVG plots drawn from a document.
import test from 'ava';
import type { IPFamily, ServicePort } from '../../ts/model/types.js';
import { renderPlot } from '../../ts/status/plot.js';
import { Ring, StatusRecorder, type StatusContext } from '../../ts/status/recorder.js';
import { servicePortName } from '../../ts/status/rows.js';
import { alignColumns, renderTable, tableLines } from '../../ts/status/table.js';
import type { KubeObject } from '../../ts/sources/types.js';
import { ChangeTracker } from '../../ts/tracker/change-tracker.js';

const NODE = 'node-a';

function service(name: string, spec: Record<string, unknown>, status?: Record<string, unknown>): KubeObject {
  return {
    apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'ns', name, uid: `uid-${name}` },
    spec: { type: 'ClusterIP', ports: [{ name: 'http', port: 80, protocol: 'TCP' }], ...spec },
    ...(status ? { status } : {}),
  };
}

interface Ep { ip: string; ready?: boolean; terminating?: boolean; serving?: boolean; node?: string }

function slice(svc: string, eps: Ep[], addressType = 'IPv4', ports = [{ name: 'http', port: 8080, protocol: 'TCP' }]): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { namespace: 'ns', name: `${svc}-${addressType.toLowerCase()}`, labels: { 'kubernetes.io/service-name': svc } },
    addressType, ports,
    endpoints: eps.map((e) => ({
      addresses: [e.ip], nodeName: e.node,
      conditions: { ready: e.ready ?? true, serving: e.serving ?? e.ready ?? true, terminating: e.terminating ?? false },
    })),
  };
}

/** The tracker's ServicePorts for these objects, per family. */
function model(objects: KubeObject[], families: IPFamily[] = ['IPv4']): Map<IPFamily, ServicePort[]> {
  const tracker = new ChangeTracker({ families, nodeName: NODE, onInvalid: () => undefined, startTime: 0 });
  for (const o of objects) tracker.onEvent(o.kind as 'Service' | 'EndpointSlice', 'ADDED', o);
  tracker.drain();
  return new Map(families.map((f) => [f, tracker.all(f)]));
}

/** A recorder that has synced everything in `desired` (one full sync per family at t=1000). */
function syncedAll(desired: Map<IPFamily, ServicePort[]>, refused: { key: string; reason: string }[] = []): StatusRecorder {
  const r = new StatusRecorder(0);
  for (const [family, sps] of desired) r.sync({ family, full: true, started: 990, done: 1000, upserts: sps, deletes: [], refused });
  return r;
}

function ctx(desired: Map<IPFamily, ServicePort[]>, now = 5000): StatusContext {
  return { now, mode: 'nftables', node: NODE, families: [...desired.keys()], listed: true, pending: { services: 0, endpoints: 0 }, desired };
}

// --- Services → rows ------------------------------------------------------------------------

const LOCAL = NODE;
const OTHER = 'node-b';

interface RowCase {
  name: string;
  objects: KubeObject[];
  row: string;
  expect: { endpoints?: [number, number, number]; policy?: Record<string, unknown>; state?: string; detail?: RegExp; vips?: Record<string, unknown> };
}

const rowCases: RowCase[] = [
  {
    name: 'ClusterIP with two ready endpoints, one here',
    objects: [service('web', { clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'] }), slice('web', [{ ip: '10.244.1.2', node: LOCAL }, { ip: '10.244.2.2', node: OTHER }])],
    row: 'ns/web:http',
    expect: { endpoints: [2, 0, 1], policy: { internal: 'Cluster', external: '', affinity: 'None' }, state: 'programmed', vips: { clusterIP: '10.96.0.10', nodePort: 0 } },
  },
  {
    name: 'no endpoints at all: reject',
    objects: [service('empty', { clusterIP: '10.96.0.11', clusterIPs: ['10.96.0.11'] })],
    row: 'ns/empty:http',
    expect: { endpoints: [0, 0, 0], state: 'no-endpoints', detail: /rejected/ },
  },
  {
    name: 'only terminating endpoints (serving): the fallback keeps it programmed',
    objects: [service('going', { clusterIP: '10.96.0.12', clusterIPs: ['10.96.0.12'] }), slice('going', [{ ip: '10.244.1.3', ready: false, serving: true, terminating: true, node: OTHER }])],
    row: 'ns/going:http',
    expect: { endpoints: [0, 1, 0], state: 'programmed' },
  },
  {
    name: 'NodePort, eTP Local, with no local endpoint: external traffic dropped',
    objects: [
      service('np', { type: 'NodePort', clusterIP: '10.96.0.13', clusterIPs: ['10.96.0.13'], externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }] }),
      slice('np', [{ ip: '10.244.2.4', node: OTHER }]),
    ],
    row: 'ns/np:http',
    expect: { endpoints: [1, 0, 0], policy: { internal: 'Cluster', external: 'Local' }, state: 'programmed', detail: /external traffic dropped/, vips: { nodePort: 30080 } },
  },
  {
    name: 'iTP Local with a local endpoint, ClientIP affinity, an external IP',
    objects: [
      service('sticky', { clusterIP: '10.96.0.14', clusterIPs: ['10.96.0.14'], internalTrafficPolicy: 'Local', externalIPs: ['192.168.99.14'], sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 300 } } }),
      slice('sticky', [{ ip: '10.244.1.5', node: LOCAL }, { ip: '10.244.2.5', node: OTHER }]),
    ],
    row: 'ns/sticky:http',
    expect: { endpoints: [2, 0, 1], policy: { internal: 'Local', external: 'Cluster', affinity: 'ClientIP', affinityTimeoutSeconds: 300 }, state: 'programmed', detail: /^$/, vips: { externalIPs: ['192.168.99.14'] } },
  },
  {
    name: 'LoadBalancer with an ingress IP and source ranges',
    objects: [
      service('lb', { type: 'LoadBalancer', clusterIP: '10.96.0.15', clusterIPs: ['10.96.0.15'], loadBalancerSourceRanges: ['203.0.113.0/24'], ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30081 }] },
        { loadBalancer: { ingress: [{ ip: '198.51.100.15' }] } }),
      slice('lb', [{ ip: '10.244.2.6', node: OTHER }]),
    ],
    row: 'ns/lb:http',
    expect: { state: 'programmed', vips: { loadBalancerIPs: ['198.51.100.15'], loadBalancerSourceRanges: ['203.0.113.0/24'], nodePort: 30081 } },
  },
];

for (const c of rowCases) {
  test(`rows: ${c.name}`, (t) => {
    const desired = model(c.objects);
    const rows = syncedAll(desired).document(ctx(desired)).services;
    const row = rows.find((r) => r.service === c.row);
    if (!row) return t.fail(`no row ${c.row} in ${rows.map((r) => r.service).join(', ')}`);
    if (c.expect.endpoints) t.deepEqual([row.endpoints.ready, row.endpoints.terminating, row.endpoints.local], c.expect.endpoints);
    if (c.expect.policy) t.like(row.policy, c.expect.policy);
    if (c.expect.state) t.is(row.programmed.state, c.expect.state);
    if (c.expect.detail) t.regex(row.programmed.detail, c.expect.detail);
    if (c.expect.vips) t.like(row, c.expect.vips as never);
    t.is(row.programmed.at, 1000);
  });
}

test('rows: dual stack gives one row per family, IPv4 first, sorted by service', (t) => {
  const desired = model([
    service('zz', { clusterIP: '10.96.0.20', clusterIPs: ['10.96.0.20', 'fd00:96::20'], ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'PreferDualStack' }),
    service('aa', { clusterIP: '10.96.0.21', clusterIPs: ['10.96.0.21'] }),
    slice('zz', [{ ip: 'fd00:244::2', node: LOCAL }], 'IPv6'),
  ], ['IPv4', 'IPv6']);
  const rows = syncedAll(desired).document(ctx(desired)).services;
  t.deepEqual(rows.map((r) => [r.service, r.family, r.clusterIP]), [
    ['ns/aa:http', 'IPv4', '10.96.0.21'],
    ['ns/zz:http', 'IPv4', '10.96.0.20'],
    ['ns/zz:http', 'IPv6', 'fd00:96::20'],
  ]);
  t.deepEqual(rows.map((r) => r.programmed.state), ['no-endpoints', 'no-endpoints', 'programmed']);
});

test('servicePortName is upstream\'s: the port name only when there is one', (t) => {
  t.is(servicePortName({ namespace: 'a', name: 'b', portName: '' }), 'a/b');
  t.is(servicePortName({ namespace: 'a', name: 'b', portName: 'dns' }), 'a/b:dns');
});

// --- what syncs do to "programmed" -----------------------------------------------------------

test('programmed follows the syncs: pending until synced, refused, failed, and partial edits', (t) => {
  const objects = [service('a', { clusterIP: '10.96.0.30', clusterIPs: ['10.96.0.30'] }), slice('a', [{ ip: '10.244.1.30', node: LOCAL }])];
  const desired = model(objects);
  const [a] = desired.get('IPv4')!;
  const r = new StatusRecorder(0);
  const state = () => r.document(ctx(desired)).services.map((s) => [s.service, s.programmed.state]);
  t.deepEqual(state(), [['ns/a:http', 'pending']]);

  r.sync({ family: 'IPv4', full: true, started: 0, done: 10, upserts: [a], deletes: [], refused: [{ key: a.key, reason: 'port clash' }] });
  t.deepEqual(state(), [['ns/a:http', 'refused']]);
  t.is(r.document(ctx(desired)).services[0].programmed.detail, 'port clash');

  // Programmed without an address another port holds: in the rules, with the reason.
  r.sync({ family: 'IPv4', full: false, started: 12, done: 13, upserts: [a], deletes: [], refused: [{ key: a.key, reason: '192.168.99.1:80 is already used by ns/b/tcp/http; this ServicePort is programmed without it' }] });
  t.deepEqual(state(), [['ns/a:http', 'programmed']]);
  t.regex(r.document(ctx(desired)).services[0].programmed.detail, /^at that sync: .* programmed without it$/);

  // A later partial sync that hands it out again, accepted this time.
  r.sync({ family: 'IPv4', full: false, started: 20, done: 21, upserts: [a], deletes: [] });
  t.deepEqual(state(), [['ns/a:http', 'programmed']]);

  // A change not yet synced is pending; a failed sync says so.
  const changed = model([objects[0], slice('a', [{ ip: '10.244.1.31', node: LOCAL }])]);
  const stateOf = (d: Map<IPFamily, ServicePort[]>) => r.document(ctx(d)).services[0].programmed;
  t.is(stateOf(changed).state, 'pending');
  r.sync({ family: 'IPv4', full: false, started: 30, done: 31, upserts: changed.get('IPv4')!, deletes: [], error: 'EPERM: operation not permitted' });
  t.is(stateOf(changed).state, 'failed');
  t.regex(stateOf(changed).detail, /EPERM/);
  // What the kernel still holds is the old one, programmed at 21.
  t.is(stateOf(desired).state, 'programmed');
  t.is(stateOf(desired).at, 21);

  // A partial delete drops it; a full sync without it too.
  r.sync({ family: 'IPv4', full: false, started: 40, done: 41, upserts: [], deletes: [a.key] });
  t.is(stateOf(desired).state, 'pending');
  const doc = r.document(ctx(desired));
  t.is(doc.syncs.length, 5);
  t.deepEqual(doc.syncs.map((s) => s.ok), [true, true, true, false, true]);
  t.is(doc.errors.total, 1);
  t.is(doc.errors.recent[0].source, 'sync IPv4');
  t.deepEqual(doc.lastSync.IPv4?.attempt?.at, 41);
});

test('a request made partial but run full by the proxier edits, not replaces, what it holds', (t) => {
  const desired = model([service('a', { clusterIP: '10.96.0.40', clusterIPs: ['10.96.0.40'] }), service('b', { clusterIP: '10.96.0.41', clusterIPs: ['10.96.0.41'] })]);
  const [a, b] = desired.get('IPv4')!;
  const r = new StatusRecorder(0);
  r.sync({ family: 'IPv4', full: true, started: 0, done: 1, upserts: [a, b], deletes: [] });
  r.sync({ family: 'IPv4', full: false, ranFull: true, started: 2, done: 3, upserts: [b], deletes: [] });
  const doc = r.document(ctx(desired));
  t.deepEqual(doc.services.map((s) => [s.name, s.programmed.state, s.programmed.at]), [['a', 'no-endpoints', 1], ['b', 'no-endpoints', 3]]);
  t.true(doc.syncs[1].full, 'shown as the full sync it was');
});

test('latencies: from the first queued event, and from the trigger time when given', (t) => {
  const r = new StatusRecorder(0);
  r.eventQueued(500);
  r.eventQueued(400);
  r.eventQueued(700);
  const at = r.takeEventTime();
  t.is(at, 400);
  t.is(r.takeEventTime(), undefined, 'taken once');
  const rec = r.sync({ family: 'IPv4', full: false, started: 900, done: 1000, upserts: [], deletes: ['ns/a/tcp/http'], eventAt: at, triggerAt: 250 });
  t.is(rec.eventLatencyMs, 600);
  t.is(rec.triggerLatencyMs, 750);
  t.is(rec.durationMs, 100);
  const idle = r.sync({ family: 'IPv6', full: false, started: 900, done: 1000, upserts: [], deletes: [], eventAt: at, triggerAt: 250 });
  t.is(idle.eventLatencyMs, undefined, 'a family whose rules did not change has no latency');
  t.is(idle.triggerLatencyMs, undefined);
  const failed = r.sync({ family: 'IPv4', full: false, started: 900, done: 1000, upserts: [], deletes: ['ns/a/tcp/http'], eventAt: 100, error: 'x' });
  t.is(failed.eventLatencyMs, undefined, 'a failed sync programmed nothing');
});

test('memory is bounded: syncs, errors and distinct invalid objects, with totals kept', (t) => {
  const r = new StatusRecorder(0, { syncs: 5, errors: 3, invalid: 4 });
  for (let i = 0; i < 12; i++) r.sync({ family: 'IPv4', full: false, started: i, done: i + 1, upserts: [], deletes: [] });
  for (let i = 0; i < 7; i++) r.error(i, 'metrics server', `EADDRINUSE ${i}`);
  for (let i = 0; i < 10; i++) r.invalid(i, 'Service', i % 2 ? 'bad-field' : 'missing-field', `ns/s${i}`);
  r.invalid(20, 'Service', 'missing-field', 'ns/s8');
  const doc = r.document(ctx(new Map([['IPv4', []]])));
  t.deepEqual(doc.syncs.map((s) => s.at), [8, 9, 10, 11, 12]);
  t.is(doc.errors.total, 7);
  t.deepEqual(doc.errors.recent.map((e) => e.message), ['EADDRINUSE 4', 'EADDRINUSE 5', 'EADDRINUSE 6']);
  t.is(doc.invalid.total, 11);
  t.deepEqual(doc.invalid.byReason, [{ kind: 'Service', reason: 'missing-field', count: 6 }, { kind: 'Service', reason: 'bad-field', count: 5 }]);
  // The most recently seen last; ns/s8 moved to the end with its count.
  t.deepEqual(doc.invalid.recent.map((x) => [x.ref, x.count]), [['ns/s6', 1], ['ns/s7', 1], ['ns/s9', 1], ['ns/s8', 2]]);
  t.is(doc.invalid.recent[3].firstAt, 8);
  t.is(doc.invalid.recent[3].lastAt, 20);
});

test('Ring keeps the newest, oldest first', (t) => {
  const ring = new Ring<number>(3);
  t.deepEqual(ring.toArray(), []);
  t.is(ring.last(), undefined);
  for (const n of [1, 2, 3, 4, 5]) ring.push(n);
  t.deepEqual(ring.toArray(), [3, 4, 5]);
  t.is(ring.last(), 5);
  t.is(ring.size, 3);
  t.throws(() => new Ring(0));
});

// --- rendering ------------------------------------------------------------------------------

test('the terminal table: a row per ServicePort, its other frontends below, notes for what is not programmed', (t) => {
  const desired = model([
    service('np', { type: 'NodePort', clusterIP: '10.96.0.50', clusterIPs: ['10.96.0.50'], externalIPs: ['192.168.99.50'], ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30050 }] }),
    slice('np', [{ ip: '10.244.1.50', node: LOCAL }, { ip: '10.244.2.50', node: OTHER, ready: false, serving: true, terminating: true }]),
    service('dns', { clusterIP: '10.96.0.53', clusterIPs: ['10.96.0.53'], ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] }),
  ]);
  const r = new StatusRecorder(0);
  const sps = desired.get('IPv4')!;
  r.sync({ family: 'IPv4', full: true, started: 0, done: 1000, upserts: sps.filter((s) => s.name === 'np'), deletes: [] });
  const doc = r.document(ctx(desired, 4000));
  t.deepEqual(tableLines(doc), [
    ['ns/dns:dns', 'ClusterIP 10.96.0.53', '53/UDP', '0/0/0', 'int:Cluster', 'pending', 'never'],
    ['ns/np:http', 'ClusterIP 10.96.0.50', '80/TCP', '1/1/1', 'int:Cluster ext:Cluster', 'programmed', '3s ago'],
    ['', 'NodePort *', '30050/TCP', '', '', '', ''],
    ['', 'ExternalIP 192.168.99.50', '80/TCP', '', '', '', ''],
  ]);
  const text = renderTable(doc, 'http://127.0.0.1:10249');
  t.regex(text, /^kproxy nftables on node node-a \(IPv4\), up 4s, at http:\/\/127\.0\.0\.1:10249$/m);
  t.regex(text, /^last sync: IPv4 3s ago \(full, 1\.00 s\)$/m);
  t.regex(text, /^SERVICE +TYPE\/VIP +PORT +ENDPOINTS\(R\/T\/L\) +POLICY +PROGRAMMED +LAST SYNC$/m);
  t.regex(text, /^ {2}ns\/dns:dns UDP IPv4: pending: not synced yet$/m);
  t.notRegex(text, /Recent errors/);
});

test('alignColumns pads every column but the last', (t) => {
  t.is(alignColumns([['A', 'BB', 'C'], ['aaa', 'b', '']]), 'A    BB  C\naaa  b');
});

test('plots: a path per series with its points; a log axis for a wide range; empty says so', (t) => {
  const svg = renderPlot({
    title: 'Sync duration',
    format: (ms) => `${ms} ms`,
    series: [
      { name: 'IPv4', color: '#00f', points: [{ x: 1000, y: 0.2 }, { x: 2000, y: 300, marker: 'full' }, { x: 3000, y: 0.3 }] },
      { name: 'IPv6', color: '#f80', points: [{ x: 1500, y: 0.25, marker: 'failed' }] },
    ],
  });
  const paths = [...svg.matchAll(/<path class="series" data-series="([^"]+)" data-points="(\d+)" d="([^"]+)"/g)];
  t.deepEqual(paths.map((p) => [p[1], Number(p[2])]), [['IPv4', 3], ['IPv6', 1]]);
  t.is(paths[0][3].split(/[ML]/).filter(Boolean).length, 3);
  t.regex(svg, /log scale/);
  t.is((svg.match(/<circle class="full"/g) ?? []).length, 1);
  t.is((svg.match(/<path class="failed"/g) ?? []).length, 1);
  // The point at 300 ms is above the one at 0.2 ms (SVG y grows downwards).
  const ys = paths[0][3].split(/[ML]/).filter(Boolean).map((p) => Number(p.split(',')[1]));
  t.true(ys[1] < ys[0] && ys[1] < ys[2]);
  const linear = renderPlot({ title: 'x', format: String, series: [{ name: 'a', color: '#000', points: [{ x: 1, y: 2 }, { x: 2, y: 3 }] }] });
  t.notRegex(linear, /log scale/);
  const empty = renderPlot({ title: 'x', format: String, series: [{ name: 'a', color: '#000', points: [] }], empty: 'no sync yet' });
  t.regex(empty, /no sync yet/);
  t.notRegex(empty, /class="series"/);
  // Names go through escaping.
  t.regex(renderPlot({ title: '<b>', format: String, series: [] }), /&lt;b&gt;/);
});
