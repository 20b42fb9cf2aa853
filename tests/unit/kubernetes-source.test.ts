import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { SERVICE_FIELD_SELECTOR, SERVICE_LABEL_SELECTOR } from '../../ts/model/service-filter.js';
import { KubernetesSource, loadKubeConfig } from '../../ts/sources/kubernetes.js';
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

async function setup(t: ExecutionContext, opts: { seed?: (f: FakeApiServer) => void; pageSize?: number; resyncMs?: number } = {}) {
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
    kubeConfig: fake.kubeConfig(),
    backoff: { initialMs: 5, maxMs: 40 },
    pageSize: opts.pageSize,
    resyncMs: opts.resyncMs,
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
  t.is(mod.old?.metadata.resourceVersion, before.metadata.resourceVersion, 'old is the previous version');

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

test('resync re-delivers unchanged objects as MODIFIED with old === obj', async (t) => {
  const env = await setup(t, { resyncMs: 20 });
  await waitFor(() => env.names('Service', 'MODIFIED').length >= 2, 'resync');
  const m = env.events.find((e) => e.type === 'MODIFIED')!;
  t.true(m.obj === m.old);
});

test('loadKubeConfig: --master overrides the kubeconfig server; plain http needs no TLS', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-kc-'));
  const file = join(dir, 'config');
  writeFileSync(
    file,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters: [{name: c1, cluster: {server: "https://10.0.0.1:6443", insecure-skip-tls-verify: false}}]',
      'users: [{name: u1, user: {token: abc}}]',
      'contexts: [{name: x, context: {cluster: c1, user: u1}}]',
      'current-context: x',
    ].join('\n'),
  );
  t.is(loadKubeConfig({ kubeconfig: file }).getCurrentCluster()?.server, 'https://10.0.0.1:6443');
  const over = loadKubeConfig({ kubeconfig: file, master: 'http://127.0.0.1:8080' });
  t.is(over.getCurrentCluster()?.server, 'http://127.0.0.1:8080');
  t.true(over.getCurrentCluster()?.skipTLSVerify);
  t.is(over.getCurrentUser()?.token, 'abc');
  const bare = loadKubeConfig({ master: 'https://api.example:6443' });
  t.is(bare.getCurrentCluster()?.server, 'https://api.example:6443');
  t.false(bare.getCurrentCluster()?.skipTLSVerify);
});
