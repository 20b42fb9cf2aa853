// The wire codec: the shared fixtures (tests/fixtures/wire/) decode here exactly as the
// Rust codec decodes them (crates/kproxy-proxier/tests/wire_fixtures.rs), and what the
// encoder writes decodes back to the model it came from.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { decodeServicePorts, encodeServicePorts } from '../../ts/addon/wire.js';
import { clusterIPServicePort, readyEndpoint } from '../../ts/model/build.js';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/wire/${name}`, import.meta.url), 'utf8');

test('the v1 fixture decodes as the shared expectation says', (t) => {
  t.deepEqual(decodeServicePorts(fixture('v1.tsv')), JSON.parse(fixture('v1.json')));
});

test('encode → decode keeps every field and the selection flags', (t) => {
  const local = readyEndpoint('10.244.1.2', 8080, { isLocal: true, nodeName: 'n1' });
  const other = readyEndpoint('10.244.2.2', 8080);
  const term = readyEndpoint('10.244.3.2', 8080, { ready: false, terminating: true });
  const sp = clusterIPServicePort({
    namespace: 'demo', name: 'web', portName: 'http', protocol: 'TCP', clusterIP: '10.96.0.10', port: 80,
    type: 'NodePort', nodePort: 30080, externalIPs: ['192.0.2.10'], sessionAffinity: 'ClientIP', stickyMaxAgeSeconds: 60,
    endpoints: [local, other, term], clusterEndpoints: [other], localEndpoints: [local],
  });
  const { text, rejected } = encodeServicePorts([sp]);
  t.deepEqual(rejected, []);
  const { records } = decodeServicePorts(text);
  t.is(records.length, 1);
  const r = records[0];
  t.like(r, { key: sp.key, type: 'NodePort', nodePort: 30080, externalIPs: ['192.0.2.10'], sessionAffinity: 'ClientIP', stickyMaxAgeSeconds: 60 });
  t.deepEqual(
    r.endpoints.map((e) => [e.ip, e.ready, e.terminating, e.isLocal, e.cluster, e.local]),
    [
      ['10.244.1.2', true, false, true, false, true],
      ['10.244.2.2', true, false, false, true, false],
      ['10.244.3.2', false, true, false, false, false],
    ],
  );
});

test('a header of another version or without a required column is refused whole', (t) => {
  t.throws(() => decodeServicePorts('kproxy-wire 2\tkey\tprotocol\tclusterIP\tport\n'), { message: /version 2 is not supported/ });
  t.throws(() => decodeServicePorts('kproxy-wire 1\tkey\tprotocol\tport\n'), { message: /required column "clusterIP"/ });
});

test('headers are read strictly: the exact magic, no duplicate columns, endpoints required', (t) => {
  t.throws(() => decodeServicePorts('kproxy-wire1\tkey\tprotocol\tclusterIP\tport\tendpoints\n'), { message: /not a kproxy wire header/ });
  t.throws(() => decodeServicePorts('kproxy-wire 1\tkey\tprotocol\tclusterIP\tport\tendpoints\tport\n'), { message: /column "port" twice/ });
  t.throws(() => decodeServicePorts('kproxy-wire 1\tkey\tprotocol\tclusterIP\tport\n'), { message: /required column "endpoints"/ });
});
