import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { SERVICE_FIELD_SELECTOR, SERVICE_LABEL_SELECTOR } from '../../ts/model/service-filter.js';
import { loadApiEndpoint } from '../../ts/sources/kube-client.js';
import { KubernetesSource } from '../../ts/sources/kubernetes.js';
import { RESUME_AT_ONCE_AFTER_MS } from '../../ts/sources/reflector.js';
import type { EventType, Kind, KubeObject } from '../../ts/sources/types.js';
import { FakeApiServer, waitFor } from '../helpers/fake-apiserver.js';

interface Recorded {
  kind: Kind;
  type: EventType;
  obj: KubeObject;
  old?: KubeObject;
}

const svc = (ns: string, name: string, extra: Record<string, any> = {}) => ({
  metadata: { namespace: ns, name, labels: extra.labels },
  spec: { clusterIP: extra.clusterIP ?? '10.96.0.10', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
});
const slice = (ns: string, name: string, service: string) => ({
  metadata: { namespace: ns, name, labels: { 'kubernetes.io/service-name': service } },
  addressType: 'IPv4',
  endpoints: [{ addresses: ['10.0.0.1'], conditions: { ready: true } }],
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
});
/** Services, EndpointSlices, the Node and ServiceCIDRs. */
const WATCHED = 4;
const node = (name: string) => ({ metadata: { name, labels: { 'topology.kubernetes.io/zone': 'z1' } } });

async function setup(t: ExecutionContext, opts: { seed?: (f: FakeApiServer) => void; pageSize?: number; resyncMs?: number; watchIdleMs?: number; retryMs?: number } = {}) {
  const fake = new FakeApiServer();
  await fake.start();
  if (opts.seed) opts.seed(fake);
  else {
    fake.upsert('services', svc('ns1', 'a'));
    fake.upsert('services', svc('ns1', 'b'));
    fake.upsert('endpointslices', slice('ns1', 'a-1', 'a'));
    fake.upsert('nodes', node('node-a'));
    fake.upsert('nodes', node('node-b'));
  }
  const events: Recorded[] = [];
  const invalid: string[] = [];
  let synced = 0;
  let eventsAtSync = -1;
  const source = new KubernetesSource({
    nodeName: 'node-a',
    logger: pino({ level: 'silent' }),
    endpoint: fake.endpoint(),
    backoff: { initialMs: opts.retryMs ?? 5, maxMs: Math.max(40, opts.retryMs ?? 0) },
    pageSize: opts.pageSize,
    resyncMs: opts.resyncMs,
    watchIdleMs: opts.watchIdleMs,
  });
  await source.start({
    onEvent: (kind, type, obj, old) => events.push({ kind, type, obj, old }),
    onSynced: () => {
      synced++;
      eventsAtSync = events.length;
    },
    onInvalid: (kind, reason, ref) => invalid.push(`${kind} ${reason} ${ref}`),
  });
  t.teardown(async () => {
    await source.stop();
    await fake.stop();
  });
  const names = (kind: Kind, type: EventType) =>
    events.filter((e) => e.kind === kind && e.type === type).map((e) => `${e.obj.metadata.namespace ?? ''}/${e.obj.metadata.name}`);
  const deletes = () => events.filter((e) => e.type === 'DELETED');
  return { fake, source, events, invalid, names, deletes, synced: () => synced, eventsAtSync: () => eventsAtSync };
}

test('lists with kube-proxy selectors, syncs once, then streams the watch', async (t) => {
  const env = await setup(t, {
    seed: (f) => {
      f.upsert('services', svc('ns1', 'a'));
      f.upsert('services', svc('ns1', 'other-proxy', { labels: { 'service.kubernetes.io/service-proxy-name': 'x' } }));
      f.upsert('services', svc('ns1', 'headless', { clusterIP: 'None' }));
      f.upsert('endpointslices', slice('ns1', 'a-1', 'a'));
      f.upsert('nodes', node('node-a'));
      f.upsert('nodes', node('node-b'));
    },
  });
  await waitFor(() => env.synced() === 1 && env.names('Node', 'ADDED').length === 1, 'sync');
  t.deepEqual(env.names('Service', 'ADDED'), ['ns1/a']);
  t.deepEqual(env.names('EndpointSlice', 'ADDED'), ['ns1/a-1']);
  t.deepEqual(env.names('Node', 'ADDED'), ['/node-a']);
  // Both Services and slices were delivered before onSynced.
  t.true(env.events.slice(0, env.eventsAtSync()).some((e) => e.kind === 'EndpointSlice'));
  t.true(env.events.slice(0, env.eventsAtSync()).some((e) => e.kind === 'Service'));
  // List items arrive without kind/apiVersion; the source fills them in.
  const first = env.events.find((e) => e.kind === 'EndpointSlice')!;
  t.is(first.obj.kind, 'EndpointSlice');
  t.is(first.obj.apiVersion, 'discovery.k8s.io/v1');

  const before = env.events.find((e) => e.kind === 'Service')!.obj;
  env.fake.upsert('services', { ...svc('ns1', 'a'), spec: { ...svc('ns1', 'a').spec, clusterIP: '10.96.0.11' } });
  await waitFor(() => env.names('Service', 'MODIFIED').length === 1, 'MODIFIED');
  const mod = env.events.find((e) => e.type === 'MODIFIED')!;
  t.is(mod.obj.spec.clusterIP, '10.96.0.11');
  t.not(mod.obj.metadata.resourceVersion, before.metadata.resourceVersion);
  // Services are held parsed by the tracker, not as objects here: no previous object to hand.
  t.is(mod.old, undefined);
  // Our Node is kept whole: an update carries the previous version.
  const nodeBefore = env.events.find((e) => e.kind === 'Node')!.obj;
  env.fake.upsert('nodes', { ...node('node-a'), metadata: { name: 'node-a', labels: { 'topology.kubernetes.io/zone': 'z2' } } });
  await waitFor(() => env.events.some((e) => e.kind === 'Node' && e.type === 'MODIFIED'), 'Node MODIFIED');
  const nodeMod = env.events.find((e) => e.kind === 'Node' && e.type === 'MODIFIED')!;
  t.is(nodeMod.old?.metadata.resourceVersion, nodeBefore.metadata.resourceVersion, 'old is the previous version');
  t.is(nodeMod.obj.metadata.labels['topology.kubernetes.io/zone'], 'z2');

  // Gaining the other-proxy label takes a Service out of the selection: DELETED.
  env.fake.upsert('services', svc('ns1', 'a', { labels: { 'service.kubernetes.io/service-proxy-name': 'x' } }));
  await waitFor(() => env.names('Service', 'DELETED').length === 1, 'DELETED by selector');
  env.fake.remove('endpointslices', 'ns1', 'a-1');
  await waitFor(() => env.names('EndpointSlice', 'DELETED').length === 1, 'slice DELETED');
  t.is(env.synced(), 1);
  t.deepEqual(env.invalid, []);
});

test('selectors are kube-proxy\'s, from the one Service filter', async (t) => {
  const env = await setup(t);
  await waitFor(() => env.synced() === 1, 'sync');
  t.is(SERVICE_LABEL_SELECTOR, '!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless');
  t.is(SERVICE_FIELD_SELECTOR, 'spec.clusterIP!=None');
  const query = (resource: string) => env.fake.requests.find((r) => r.resource === resource && !r.watch)!.query;
  t.like(query('services'), { labelSelector: SERVICE_LABEL_SELECTOR, fieldSelector: SERVICE_FIELD_SELECTOR });
  t.like(query('endpointslices'), { labelSelector: SERVICE_LABEL_SELECTOR });
  t.false('fieldSelector' in query('endpointslices'));
  t.like(query('nodes'), { fieldSelector: 'metadata.name=node-a' });
});

test('paged lists are followed to the end', async (t) => {
  const env = await setup(t, {
    pageSize: 2,
    seed: (f) => {
      for (let i = 0; i < 5; i++) f.upsert('services', svc('ns1', `s${i}`));
    },
  });
  await waitFor(() => env.synced() === 1, 'sync');
  t.deepEqual(env.names('Service', 'ADDED'), ['ns1/s0', 'ns1/s1', 'ns1/s2', 'ns1/s3', 'ns1/s4']);
  t.is(env.fake.requests.filter((r) => r.resource === 'services' && !r.watch).length, 3);
});

test('a dropped or closed watch is resumed from its resourceVersion, without a relist', async (t) => {
  const env = await setup(t);
  await waitFor(() => env.synced() === 1 && env.fake.openWatchCount('services') === 1, 'watching');
  env.fake.dropWatches();
  env.fake.upsert('services', svc('ns2', 'c'));
  await waitFor(() => env.names('Service', 'ADDED').includes('ns2/c'), 'event after drop');
  await waitFor(() => env.fake.openWatchCount('services') === 1, 'rewatching');
  env.fake.closeWatches();
  env.fake.upsert('services', svc('ns2', 'd'));
  await waitFor(() => env.names('Service', 'ADDED').includes('ns2/d'), 'event after clean close');
  t.is(env.fake.listCount('services'), 1, 'resumed by resourceVersion');
  t.deepEqual(env.deletes(), []);
});

test('a watch reset after it streamed a while is resumed at once; one reset at once waits for the retry', async (t) => {
  // A retry wait longer than the test: only a resumption at once brings the event in time.
  const env = await setup(t, { retryMs: 60_000 });
  await waitFor(() => env.synced() === 1 && env.fake.openWatchCount('services') === 1, 'watching');
  await new Promise((r) => setTimeout(r, RESUME_AT_ONCE_AFTER_MS + 100));
  env.fake.dropWatches();
  env.fake.upsert('services', svc('ns2', 'c'));
  await waitFor(() => env.names('Service', 'ADDED').includes('ns2/c'), 'the event after the reset', 5000);
  await waitFor(() => env.fake.openWatchCount('services') === 1, 'rewatching');
  // Reset again at once (a path that kills every connection): now the wait applies.
  env.fake.dropWatches();
  env.fake.upsert('services', svc('ns2', 'd'));
  await new Promise((r) => setTimeout(r, 1000));
  t.false(env.names('Service', 'ADDED').includes('ns2/d'), 'not asked again in a tight loop');
  t.is(env.fake.listCount('services'), 1, 'resumed by resourceVersion');
  t.deepEqual(env.deletes(), []);
});

test('410 Gone forces a relist that yields deletes only for objects really gone', async (t) => {
  const env = await setup(t);
  await waitFor(() => env.synced() === 1 && env.fake.openWatchCount() === WATCHED, 'watching');
  // Changes the watch never reports: only a relist can reveal them.
  env.fake.remove('services', 'ns1', 'a', { silent: true });
  env.fake.upsert('services', svc('ns3', 'e'), { silent: true });
  env.fake.expireWatches();
  await waitFor(() => env.names('Service', 'DELETED').length === 1 && env.names('Service', 'ADDED').includes('ns3/e'), 'relist');
  t.deepEqual(env.names('Service', 'DELETED'), ['ns1/a']);
  t.deepEqual(env.names('EndpointSlice', 'DELETED'), []);
  t.is(env.fake.listCount('services'), 2);
  t.is(env.synced(), 1, 'onSynced is not repeated');
});

test('the relist after 410 asks the watch cache for the last version seen; the first list asks for any (0)', async (t) => {
  const env = await setup(t);
  await waitFor(() => env.synced() === 1 && env.fake.openWatchCount() === WATCHED, 'watching');
  const watched = env.fake.requests.filter((r) => r.resource === 'services' && r.watch).at(-1)!.query.resourceVersion;
  env.fake.expireWatches();
  await waitFor(() => env.fake.listCount('services') === 2, 'relist');
  const lists = env.fake.requests.filter((r) => r.resource === 'services' && !r.watch);
  t.is(lists[0].query.resourceVersion, '0');
  t.is(lists[1].query.resourceVersion, watched, 'not from etcd: at least as new as what it had');
});

test('a watch that goes silent is taken for dead and reopened from its resourceVersion, without a relist', async (t) => {
  const env = await setup(t, { watchIdleMs: 300 });
  await waitFor(() => env.synced() === 1, 'sync');
  const watches = () => env.fake.requests.filter((r) => r.resource === 'services' && r.watch).length;
  await waitFor(() => watches() >= 3, 'reopened watches', 10_000);
  env.fake.upsert('services', svc('ns9', 'z'));
  await waitFor(() => env.names('Service', 'ADDED').includes('ns9/z'), 'a change after the reopenings');
  t.is(env.fake.listCount('services'), 1);
  t.deepEqual(env.deletes(), []);
});

test('apiserver down: retries with backoff and emits no deletes; events resume after restart', async (t) => {
  const env = await setup(t);
  await waitFor(() => env.synced() === 1 && env.fake.openWatchCount() === WATCHED, 'watching');
  const added = env.events.length;
  await env.fake.stop();
  await waitFor(() => env.source.stats().Service.errors >= 3 && env.source.stats().EndpointSlice.errors >= 3, 'failed retries');
  t.deepEqual(env.deletes(), [], 'no rule removed while unreachable');
  t.is(env.events.length, added);
  await env.fake.start();
  env.fake.upsert('services', svc('ns4', 'f'));
  await waitFor(() => env.names('Service', 'ADDED').includes('ns4/f'), 'event after restart');
  t.deepEqual(env.deletes(), []);
});

test('after an outage with compacted history, the relist deletes exactly what went away', async (t) => {
  const env = await setup(t);
  await waitFor(() => env.synced() === 1 && env.fake.openWatchCount() === WATCHED, 'watching');
  await env.fake.stop();
  env.fake.remove('services', 'ns1', 'b');
  env.fake.compact();
  await waitFor(() => env.source.stats().Service.errors >= 2, 'failed retries');
  t.deepEqual(env.deletes(), []);
  await env.fake.start();
  await waitFor(() => env.deletes().length > 0, 'relist');
  t.deepEqual(env.names('Service', 'DELETED'), ['ns1/b']);
  await waitFor(() => env.fake.openWatchCount() === WATCHED, 'watching again');
  t.deepEqual(env.deletes().length, 1);
});

test('failed initial lists are retried until synced', async (t) => {
  const env = await setup(t, {
    seed: (f) => {
      f.failLists = 4;
      f.upsert('services', svc('ns1', 'a'));
    },
  });
  await waitFor(() => env.synced() === 1, 'sync after failures');
  t.deepEqual(env.names('Service', 'ADDED'), ['ns1/a']);
  t.true(Object.values(env.source.stats()).reduce((n, s) => n + s.errors, 0) >= 4);
});

test('resync re-delivers the kept objects (our Node) as MODIFIED with old === obj; Services are held parsed, not re-sent', async (t) => {
  const env = await setup(t, { resyncMs: 20 });
  await waitFor(() => env.events.filter((e) => e.kind === 'Node' && e.type === 'MODIFIED').length >= 2, 'resync');
  const m = env.events.find((e) => e.type === 'MODIFIED')!;
  t.is(m.kind, 'Node');
  t.true(m.obj === m.old);
  t.deepEqual(env.names('Service', 'MODIFIED'), []);
});

test('loadApiEndpoint: --master overrides the kubeconfig server; tokens, token files, certificates and plugins', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-kc-'));
  const write = (name: string, lines: string[]) => {
    writeFileSync(join(dir, name), lines.join('\n'));
    return join(dir, name);
  };
  const kubeconfig = (user: string, cluster = '{server: "https://10.0.0.1:6443/", insecure-skip-tls-verify: false}') => [
    'apiVersion: v1', 'kind: Config',
    `clusters: [{name: c1, cluster: ${cluster}}]`,
    `users: [{name: u1, user: ${user}}]`,
    'contexts: [{name: x, context: {cluster: c1, user: u1}}]',
    'current-context: x',
  ];
  const file = write('config', kubeconfig('{token: abc}'));
  const ep = loadApiEndpoint({ kubeconfig: file });
  t.is(ep.server, 'https://10.0.0.1:6443');
  t.is(ep.authorization?.(), 'Bearer abc');
  t.false(ep.insecure);
  const over = loadApiEndpoint({ kubeconfig: file, master: 'http://127.0.0.1:8080' });
  t.is(over.server, 'http://127.0.0.1:8080');
  t.is(over.authorization?.(), 'Bearer abc');
  t.is(loadApiEndpoint({ master: 'https://api.example:6443' }).server, 'https://api.example:6443');

  // Paths are relative to the kubeconfig's folder; a token file is read, not copied.
  write('token', ['from-file']);
  write('ca.crt', ['CA']);
  write('client.crt', ['CERT']);
  const files = loadApiEndpoint({ kubeconfig: write('files', kubeconfig('{tokenFile: token, client-certificate: client.crt, client-key-data: S0VZ}', '{server: "https://h:6443", certificate-authority: ca.crt}')) });
  t.is(files.authorization?.(), 'Bearer from-file');
  t.is(files.ca?.toString(), 'CA');
  t.is(files.cert?.toString(), 'CERT');
  t.is(files.key?.toString(), 'KEY');

  // exec plugins go through client-node; an unknown context is a clear error.
  const exec = loadApiEndpoint({ kubeconfig: write('exec', kubeconfig('{exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/true}}')) });
  t.truthy(exec.plugin);
  t.is(exec.authorization, undefined);
  t.throws(() => loadApiEndpoint({ kubeconfig: write('bad', ['current-context: nope', 'contexts: []']) }), { message: /no context named "nope"/ });
});
