import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, readFileSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManifestsSource } from '../../ts/sources/manifests.js';
import type { EventType, Kind, KubeObject } from '../../ts/sources/types.js';

async function waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const serviceYaml = (name: string, ip = '172.30.0.41', ns = 'ns1') => `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: ${ns}
spec:
  clusterIP: ${ip}
  ports:
  - name: p80
    port: 80
`;

const sliceYaml = (name: string, service: string, ip = '10.180.0.1') => `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${name}
  namespace: ns1
  labels:
    kubernetes.io/service-name: ${service}
addressType: IPv4
endpoints:
- addresses: [${ip}]
ports:
- name: p80
  port: 8080
`;

async function setup(t: ExecutionContext, files: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-manifests-'));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  const events: Array<{ kind: Kind; type: EventType; obj: KubeObject; old?: KubeObject }> = [];
  const invalid: string[] = [];
  let synced = 0;
  const source = new ManifestsSource({ dir, nodeName: 'node-a' });
  await source.start({
    onEvent: (kind, type, obj, old) => events.push({ kind, type, obj, old }),
    onSynced: () => synced++,
    onInvalid: (kind, reason, ref) => invalid.push(`${kind} ${reason} ${ref}`),
  });
  t.teardown(async () => {
    await source.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const seen = (type?: EventType) =>
    events.filter((e) => !type || e.type === type).map((e) => `${e.type === type ? '' : e.type + ' '}${e.kind}/${e.obj.metadata.namespace ?? ''}/${e.obj.metadata.name}`);
  const write = (name: string, text: string) => writeFile(join(dir, name), text);
  return { dir, source, events, invalid, seen, write, synced: () => synced };
}

test('initial load: multi-document YAML, JSON, Lists, filtering; then onSynced', async (t) => {
  const env = await setup(t, {
    'a.yaml': `${serviceYaml('a')}---\n${sliceYaml('a-1', 'a')}---\n# empty document follows\n---\n`,
    'b.json': JSON.stringify({
      apiVersion: 'v1',
      kind: 'ServiceList',
      items: [{ metadata: { name: 'b', namespace: 'ns1' }, spec: { clusterIP: '172.30.0.42', ports: [{ port: 80 }] } }],
    }),
    'c.yml': `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata: {name: node-a}
- apiVersion: v1
  kind: Node
  metadata: {name: node-b}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: cm, namespace: ns1}
- apiVersion: v1
  kind: Service
  metadata: {name: headless, namespace: ns1}
  spec: {clusterIP: None}
- apiVersion: v1
  kind: Service
  metadata: {name: other, namespace: ns1, labels: {service.kubernetes.io/service-proxy-name: x}}
  spec: {clusterIP: 172.30.0.43}
- apiVersion: v1
  kind: Service
  metadata: {name: defaulted}
  spec: {clusterIP: 172.30.0.44}
`,
    'notes.txt': 'not a manifest',
    '.hidden.yaml': serviceYaml('hidden'),
  });
  t.is(env.synced(), 1);
  t.deepEqual(env.seen('ADDED'), [
    'Service/default/defaulted',
    'Service/ns1/a',
    'Service/ns1/b',
    'EndpointSlice/ns1/a-1',
    'Node//node-a',
  ]);
  t.deepEqual(env.invalid, []);
  const b = env.events.find((e) => e.obj.metadata.name === 'b')!;
  t.is(b.obj.kind, 'Service', 'List items inherit the kind from ServiceList');
  t.is(b.obj.apiVersion, 'v1');
});

test('files added, changed and deleted become ADDED, MODIFIED, DELETED', async (t) => {
  const env = await setup(t, { 'a.yaml': serviceYaml('a') });
  await env.write('b.yaml', `${serviceYaml('b')}---\n${sliceYaml('b-1', 'b')}`);
  await waitFor(() => env.seen('ADDED').includes('EndpointSlice/ns1/b-1'), 'ADDED');
  await env.write('b.yaml', `${serviceYaml('b', '172.30.0.99')}---\n${sliceYaml('b-1', 'b')}`);
  await waitFor(() => env.seen('MODIFIED').length === 1, 'MODIFIED');
  const mod = env.events.find((e) => e.type === 'MODIFIED')!;
  t.is(mod.obj.spec.clusterIP, '172.30.0.99');
  t.is(mod.old?.spec.clusterIP, '172.30.0.41');
  await rm(join(env.dir, 'b.yaml'));
  await waitFor(() => env.seen('DELETED').length === 2, 'DELETED');
  t.deepEqual(env.seen('DELETED'), ['Service/ns1/b', 'EndpointSlice/ns1/b-1']);
  t.deepEqual(env.seen('ADDED'), ['Service/ns1/a', 'Service/ns1/b', 'EndpointSlice/ns1/b-1']);
});

test('rewriting the same content (even reordered) is not a change', async (t) => {
  const env = await setup(t, { 'a.yaml': serviceYaml('a') });
  await env.write('a.yaml', `kind: Service\napiVersion: v1\nspec: {ports: [{port: 80, name: p80}], clusterIP: 172.30.0.41}\nmetadata: {namespace: ns1, name: a}\n`);
  // A marker file proves the rewrite has been processed.
  await env.write('z.yaml', serviceYaml('marker'));
  await waitFor(() => env.seen('ADDED').includes('Service/ns1/marker'), 'marker');
  t.deepEqual(env.seen('MODIFIED'), []);
});

test('bad YAML is reported and skipped; good documents beside it still load', async (t) => {
  const env = await setup(t, {
    'bad.yaml': `${serviceYaml('good')}---\nkind: Service\n  metadata: [unclosed\n`,
    'bad.json': '{"kind": "Service",',
    'scalar.yaml': 'just a string\n',
  });
  t.deepEqual(env.seen('ADDED'), ['Service/ns1/good']);
  t.deepEqual(env.invalid.sort(), ['Document not-an-object scalar.yaml#0', 'Document parse-error bad.yaml#1', 'File parse-error bad.json']);
  await env.write('bad.json', JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'fixed', namespace: 'ns1' }, spec: { clusterIP: '172.30.0.50' } }));
  await waitFor(() => env.seen('ADDED').includes('Service/ns1/fixed'), 'fixed file');
});

test('a file that stops parsing keeps its objects (no delete on a half-written file)', async (t) => {
  const env = await setup(t, { 'a.yaml': `${serviceYaml('a')}---\n${sliceYaml('a-1', 'a')}` });
  await env.write('a.yaml', `${serviceYaml('a')}---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: a-1, namespace: ns1`);
  await waitFor(() => env.invalid.length > 0, 'parse error');
  t.deepEqual(env.seen('DELETED'), []);
  // Once the file parses again, its content is authoritative: a removed object is deleted.
  await env.write('a.yaml', serviceYaml('a'));
  await waitFor(() => env.seen('DELETED').length === 1, 'DELETED');
  t.deepEqual(env.seen('DELETED'), ['EndpointSlice/ns1/a-1']);
});

test('emptying a file deletes its objects (once a second look confirms it)', async (t) => {
  const env = await setup(t, { 'a.yaml': `${serviceYaml('a')}---\n${serviceYaml('b')}` });
  await env.write('a.yaml', '');
  await waitFor(() => env.seen('DELETED').length === 2, 'DELETED');
  t.deepEqual(env.seen('DELETED'), ['Service/ns1/a', 'Service/ns1/b']);
});

test('an object moving between files is neither deleted nor re-added', async (t) => {
  const env = await setup(t, { 'a.yaml': `${serviceYaml('a')}---\n${serviceYaml('b')}` });
  // Atomic rename: both fs events land in one debounce window.
  await rename(join(env.dir, 'a.yaml'), join(env.dir, 'moved.yaml'));
  await env.write('z.yaml', serviceYaml('marker1'));
  await waitFor(() => env.seen('ADDED').includes('Service/ns1/marker1'), 'marker1');
  // Cut and paste in two writes: the copy in the new file bridges the gap.
  await env.write('new.yaml', serviceYaml('b'));
  await env.write('moved.yaml', `${serviceYaml('a')}---\n${serviceYaml('marker2')}`);
  await waitFor(() => env.seen('ADDED').includes('Service/ns1/marker2'), 'marker2');
  t.deepEqual(env.seen('DELETED'), []);
  t.deepEqual(env.seen('MODIFIED'), []);
  t.deepEqual(env.seen('ADDED'), ['Service/ns1/a', 'Service/ns1/b', 'Service/ns1/marker1', 'Service/ns1/marker2']);
});

test('objects the API would not serve are reported or ignored', async (t) => {
  const env = await setup(t, {
    'x.yaml': [
      'apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: {name: old, namespace: ns1}\naddressType: IPv4\n',
      'apiVersion: v1\nkind: Service\nmetadata: {namespace: ns1}\nspec: {clusterIP: 172.30.0.41}\n',
      'apiVersion: v1\nmetadata: {name: nokind}\n',
      `${serviceYaml('dup')}`,
      `${serviceYaml('dup')}`,
    ].join('---\n'),
  });
  t.deepEqual(env.seen('ADDED'), ['Service/ns1/dup']);
  t.deepEqual(env.invalid, [
    'EndpointSlice unsupported-api-version x.yaml#0',
    'Service missing-field x.yaml#1.metadata.name',
    'Document missing-field x.yaml#2.kind',
    'Service duplicate-object x.yaml#4',
  ]);
});

test('a label change that leaves the selection is a DELETED', async (t) => {
  const env = await setup(t, { 'a.yaml': serviceYaml('a') });
  const text = readFileSync(join(env.dir, 'a.yaml'), 'utf8').replace('  namespace: ns1\n', '  namespace: ns1\n  labels: {service.kubernetes.io/headless: ""}\n');
  await env.write('a.yaml', text);
  await waitFor(() => env.seen('DELETED').length === 1, 'DELETED');
  t.deepEqual(env.seen('DELETED'), ['Service/ns1/a']);
});

test('the API selectors only: slices of other proxies dropped, ExternalName left to the tracker', async (t) => {
  const other = sliceYaml('x-1', 'x').replace('    kubernetes.io/service-name: x\n', '    kubernetes.io/service-name: x\n    service.kubernetes.io/service-proxy-name: other\n');
  const external = 'apiVersion: v1\nkind: Service\nmetadata: {name: ext, namespace: ns1}\nspec: {type: ExternalName, externalName: x.example}\n';
  const env = await setup(t, { 'a.yaml': `${sliceYaml('a-1', 'a')}---\n${other}---\n${external}` });
  t.deepEqual(env.seen('ADDED'), ['Service/ns1/ext', 'EndpointSlice/ns1/a-1']);
});

test('after stop, file changes are not delivered', async (t) => {
  const env = await setup(t, { 'a.yaml': serviceYaml('a') });
  await env.source.stop();
  await env.write('b.yaml', serviceYaml('b'));
  await new Promise((r) => setTimeout(r, 50));
  t.deepEqual(env.seen('ADDED'), ['Service/ns1/a']);
});

test('a missing directory fails start()', async (t) => {
  const source = new ManifestsSource({ dir: join(tmpdir(), 'kproxy-does-not-exist-' + process.pid) });
  await t.throwsAsync(source.start({ onEvent() {}, onSynced() {}, onInvalid() {} }));
});
