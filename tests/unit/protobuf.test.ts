// The protobuf decoder on bytes shaped as kube-apiserver writes them (tests/helpers/protobuf-encode.ts):
// the objects it builds are what JSON.parse would give for the same fields, in lists split
// at any byte and in watch frames; malformed bytes are errors, never short or wrong objects.
// tests/k8s/protobuf.test.ts compares it with a real apiserver's JSON.
import test from 'ava';
import { decodeObject, ProtoError } from '../../ts/sources/protobuf/decode.js';
import { ENDPOINT_SLICE, SERVICE } from '../../ts/sources/protobuf/schemas.js';
import { ProtoListSplitter, ProtoWatchFrames } from '../../ts/sources/protobuf/stream.js';
import { encode, envelope, m, varint, watchFrame, type Msg } from '../helpers/protobuf-encode.js';

const managedFields = m([1, 'kubectl'], [2, 'Update'], [7, Buffer.alloc(2000, 0x7b)]);

function objectMeta(name: string, extra: [number, Msg | string | number][] = []): Msg {
  return m(
    [1, name], [2, ''], [3, 'default'], [4, ''], [5, `uid-${name}`], [6, '17'], [7, 1],
    [8, m([1, 1764600000], [2, 0])],
    [11, m([1, 'app'], [2, 'web'])], [11, m([1, 'tier'], [2, '1'])],
    [12, m([1, 'note'], [2, 'zürich-東京'])],
    [17, managedFields],
    ...extra,
  );
}

/** A Service as gogo writes it: zeros of non-pointer fields included, unread fields between. */
const serviceMsg = (name: string) =>
  m(
    [1, objectMeta(name)],
    [2, m(
      [1, m([1, 'http'], [2, 'TCP'], [3, 80], [4, m([1, 0], [2, 8080], [3, ''])], [5, 30080], [6, 'kubernetes.io/h2c'])],
      [1, m([1, 'dns'], [2, 'UDP'], [3, 53], [4, m([1, 1], [2, 0], [3, 'dns'])], [5, 0])],
      [2, m([1, 'app'], [2, 'web'])],
      [3, '10.96.0.10'], [4, 'LoadBalancer'], [5, '192.0.2.1'], [7, 'ClientIP'], [9, '203.0.113.0/24'],
      [11, 'Local'], [12, 31000], [13, false],
      [14, m([1, m([1, 0])])],
      [17, 'SingleStack'], [18, '10.96.0.10'], [19, 'IPv4'], [20, true], [22, 'Cluster'], [23, 'PreferClose'],
    )],
    [3, m([1, m([1, m([1, '198.51.100.7'], [2, ''], [3, 'VIP'])], [1, m([1, ''], [2, 'lb.example'])])])],
  );

const serviceJSON = (name: string) => ({
  metadata: { name, namespace: 'default', resourceVersion: '17', labels: { app: 'web', tier: '1' }, annotations: { note: 'zürich-東京' } },
  spec: {
    ports: [{ name: 'http', protocol: 'TCP', port: 80, nodePort: 30080 }, { name: 'dns', protocol: 'UDP', port: 53 }],
    clusterIP: '10.96.0.10', type: 'LoadBalancer', externalIPs: ['192.0.2.1'], sessionAffinity: 'ClientIP',
    loadBalancerSourceRanges: ['203.0.113.0/24'], externalTrafficPolicy: 'Local', healthCheckNodePort: 31000,
    // A pointer: timeoutSeconds 0 is there, not absent (validate.ts reports it).
    sessionAffinityConfig: { clientIP: { timeoutSeconds: 0 } },
    clusterIPs: ['10.96.0.10'], internalTrafficPolicy: 'Cluster', trafficDistribution: 'PreferClose',
  },
  status: { loadBalancer: { ingress: [{ ip: '198.51.100.7', ipMode: 'VIP' }, { hostname: 'lb.example' }] } },
});

const sliceMsg = m(
  [1, objectMeta('web-abc', [[9, m([1, 1764600060])]])],
  [2, m([1, '10.0.0.1'], [2, m([1, true], [2, true], [3, false])], [3, 'pod-a'], [4, m([1, 'Pod'])], [6, 'node-1'], [7, 'zone-a'],
    [8, m([1, m([1, 'zone-a'])], [2, m([1, 'node-1'])])])],
  [2, m([1, '10.0.0.2'], [2, m([1, false])])],
  [2, m([1, '10.0.0.3'], [2, m()])],
  [3, m([1, ''], [2, 'TCP'], [3, 8080])],
  [3, m([2, 'UDP'], [3, 53])],
  [4, 'IPv4'],
);

const sliceJSON = {
  metadata: {
    name: 'web-abc', namespace: 'default', resourceVersion: '17',
    labels: { app: 'web', tier: '1' }, annotations: { note: 'zürich-東京' },
  },
  endpoints: [
    { addresses: ['10.0.0.1'], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'node-1', zone: 'zone-a', hints: { forZones: [{ name: 'zone-a' }], forNodes: [{ name: 'node-1' }] } },
    { addresses: ['10.0.0.2'], conditions: { ready: false } },
    { addresses: ['10.0.0.3'], conditions: {} },
  ],
  // Pointers: the empty name is kept (the unnamed port), a missing one stays missing.
  ports: [{ name: '', protocol: 'TCP', port: 8080 }, { protocol: 'UDP', port: 53 }],
  addressType: 'IPv4',
};

test('protobuf: a Service decodes to its JSON: zeros of value fields dropped, pointers kept, unread fields skipped', (t) => {
  const obj = decodeObject(envelope('v1', 'Service', encode(serviceMsg('web'))), SERVICE);
  t.deepEqual(obj, { ...serviceJSON('web'), kind: 'Service', apiVersion: 'v1' });
});

test('protobuf: an EndpointSlice decodes to its JSON: conditions as given, hints, pointer ports', (t) => {
  const obj = decodeObject(envelope('discovery.k8s.io/v1', 'EndpointSlice', encode(sliceMsg)), ENDPOINT_SLICE);
  t.deepEqual(obj, { ...sliceJSON, kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1' });
});

test('protobuf: negative int32 (written as 10-byte varints) and other wire types of unread fields', (t) => {
  const raw = encode(m([1, m([1, 'x'], [3, 'ns'])], [2, m([1, m([3, -1], [5, -30000])])]));
  // fixed64 (wire 1) and fixed32 (wire 5) fields the schema does not name are skipped by size.
  const extra = Buffer.concat([varint((9 << 3) | 1), Buffer.alloc(8, 0xff), varint((10 << 3) | 5), Buffer.alloc(4, 0xff)]);
  const obj = decodeObject(envelope('v1', 'Service', Buffer.concat([raw, extra])), SERVICE);
  t.deepEqual(obj.spec.ports, [{ port: -1, nodePort: -30000 }]);
});

function list(kind: string, items: Buffer[], meta: Msg): Buffer {
  return envelope('v1', kind, encode(m([1, meta], ...items.map((i): [number, Buffer] => [2, i]))));
}

const chunkings: [string, (i: number) => number][] = [
  ['whole', () => 1 << 30],
  ['one byte at a time', () => 1],
  ['7-byte chunks', () => 7],
  ['uneven chunks', (i) => 1 + ((i * 37) % 11)],
];

function splitList(bytes: Buffer, sizes: (i: number) => number) {
  const items: unknown[] = [];
  const splitter = new ProtoListSplitter(SERVICE, (o) => items.push(o));
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = sizes(i);
    splitter.push(bytes.subarray(at, at + n));
    at += n;
  }
  return { items, end: splitter.end() };
}

for (const [how, sizes] of chunkings) {
  test(`protobuf list, ${how}: every item as decoded whole, and the list's resourceVersion and continue`, (t) => {
    const names = ['a', 'b', 'c'];
    const bytes = list('ServiceList', names.map((n) => encode(serviceMsg(n))), m([1, ''], [2, '4242'], [3, 'next-page']));
    const { items, end } = splitList(bytes, sizes);
    t.deepEqual(items, names.map(serviceJSON));
    t.deepEqual(end, { metadata: { resourceVersion: '4242', continue: 'next-page' } });
  });
}

test('protobuf list: no items', (t) => {
  const { items, end } = splitList(list('ServiceList', [], m([2, '5'])), () => 3);
  t.deepEqual(items, []);
  t.deepEqual(end.metadata, { resourceVersion: '5' });
});

test('protobuf list: a response cut at any byte is an error, not a short or empty list', (t) => {
  const bytes = list('ServiceList', [encode(serviceMsg('a')), encode(serviceMsg('b'))], m([2, '9']));
  // The envelope's trailing fields (contentEncoding, contentType: 4 bytes) may be absent; any cut before them is not.
  for (let cut = 0; cut < bytes.length - 4; cut++) {
    const splitter = new ProtoListSplitter(SERVICE, () => {});
    splitter.push(bytes.subarray(0, cut));
    t.throws(() => splitter.end(), { instanceOf: ProtoError }, `cut at ${cut} of ${bytes.length}`);
  }
  const whole = new ProtoListSplitter(SERVICE, () => {});
  whole.push(bytes.subarray(0, bytes.length - 4));
  t.deepEqual(whole.end().metadata, { resourceVersion: '9' }, 'without the trailing fields');
});

test('protobuf list: a field longer than the list that holds it is an error at once', (t) => {
  // A list of 10 bytes whose first field claims 200 (a skipped one, then an item).
  for (const field of [5, 2]) {
    const lying = Buffer.concat([Buffer.from('k8s\0', 'latin1'), varint(0x12), varint(10), varint((field << 3) | 2), varint(200), Buffer.alloc(8)]);
    t.throws(() => new ProtoListSplitter(SERVICE, () => {}).push(lying), { instanceOf: ProtoError, message: /runs past the list/ }, `field ${field}`);
  }
});

test('protobuf list: JSON or garbage where protobuf was promised is an error', (t) => {
  t.throws(() => new ProtoListSplitter(SERVICE, () => {}).push(Buffer.from('{"kind":"ServiceList"}')), { instanceOf: ProtoError, message: /k8s\\0/ });
  // A known field with the wrong wire type: a number where the name (a string) should be.
  const wrong = list('ServiceList', [encode(m([1, m([1, 7])]))], m());
  t.throws(() => new ProtoListSplitter(SERVICE, () => {}).push(wrong), { instanceOf: ProtoError, message: /name: wire type 0/ });
});

test('protobuf watch: frames split at any byte give each event once, a Status for ERROR', (t) => {
  const stream = Buffer.concat([
    watchFrame('ADDED', envelope('v1', 'Service', encode(serviceMsg('a')))),
    watchFrame('BOOKMARK', envelope('v1', 'Service', encode(m([1, m([6, '99'], [12, m([1, 'k8s.io/initial-events-end'], [2, 'true'])])])))),
    watchFrame('ERROR', envelope('v1', 'Status', encode(m([1, m()], [2, 'Failure'], [3, 'too old resource version: 1 (99)'], [4, 'Expired'], [6, 410])))),
  ]);
  for (const [how, sizes] of chunkings) {
    const events: { type: string; object: any }[] = [];
    const frames = new ProtoWatchFrames(SERVICE, (e) => events.push(e));
    for (let at = 0, i = 0; at < stream.length; i++) {
      const n = sizes(i);
      frames.push(stream.subarray(at, at + n));
      at += n;
    }
    t.deepEqual(events.map((e) => e.type), ['ADDED', 'BOOKMARK', 'ERROR'], how);
    t.deepEqual(events[0].object, { ...serviceJSON('a'), kind: 'Service', apiVersion: 'v1' }, how);
    t.is(events[1].object.metadata.resourceVersion, '99', how);
    t.like(events[2].object, { kind: 'Status', status: 'Failure', reason: 'Expired', code: 410 }, how);
  }
});

test('protobuf watch: an event that throws stops the stream there (the watch is torn down)', (t) => {
  const frames = new ProtoWatchFrames(SERVICE, () => {
    throw new Error('handler failed');
  });
  t.throws(() => frames.push(watchFrame('ADDED', envelope('v1', 'Service', encode(serviceMsg('a'))))), { message: 'handler failed' });
  const bad = new ProtoWatchFrames(SERVICE, () => {});
  t.throws(() => bad.push(watchFrame('ADDED', Buffer.from('not an object'))), { instanceOf: ProtoError });
  const huge = Buffer.alloc(4);
  huge.writeUInt32BE(64 << 20);
  t.throws(() => new ProtoWatchFrames(SERVICE, () => {}).push(huge), { instanceOf: ProtoError, message: /at most/ });
  const cut = new ProtoWatchFrames(SERVICE, () => {});
  const frame = watchFrame('ADDED', envelope('v1', 'Service', encode(serviceMsg('a'))));
  cut.push(frame.subarray(0, frame.length - 3));
  t.is(cut.pending, frame.length - 3, 'a cut frame is held, and counted as pending');
});
