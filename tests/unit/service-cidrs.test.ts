// ServiceCIDR objects: validation, the per-family union, both sources (the API server's
// list/watch, a 404 from an older one; --manifests files), and what the agent passes.
import test from 'ava';
import { mkdtempSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { KubernetesSource } from '../../ts/sources/kubernetes.js';
import { ManifestsSource } from '../../ts/sources/manifests.js';
import type { EventType, Kind, KubeObject, SourceHandler } from '../../ts/sources/types.js';
import { parseServiceCIDR, ServiceCIDRTracker } from '../../ts/tracker/service-cidrs.js';
import { FakeApiServer, waitFor } from '../helpers/fake-apiserver.js';
import { scriptedAgent } from '../helpers/scripted.js';

const cidr = (name: string, cidrs: unknown) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'ServiceCIDR', metadata: { name }, spec: { cidrs } });

const PARSE: Array<[string, unknown, string[], string[]]> = [
  ['a single CIDR', cidr('a', ['10.96.0.0/16']), ['10.96.0.0/16'], []],
  ['a dual-stack pair, canonical', cidr('a', ['10.96.1.2/16', 'fd00:96:0::/108']), ['10.96.0.0/16', 'fd00:96::/108'], []],
  ['a bad CIDR is dropped, the other kept', cidr('a', ['10.96.0.0/33', 'fd00::/108']), ['fd00::/108'], ['bad-cidr a#cidrs[0]']],
  ['two of a family: the second is dropped', cidr('a', ['10.96.0.0/16', '10.97.0.0/16']), ['10.96.0.0/16'], ['wrong-family a#cidrs[1]']],
  ['more than two', cidr('a', ['10.96.0.0/16', 'fd00::/108', '10.97.0.0/16']), [], ['bad-field a#cidrs']],
  ['no CIDRs', cidr('a', []), [], ['missing-field a#cidrs']],
  ['cidrs not a list', cidr('a', '10.96.0.0/16'), [], ['missing-field a#cidrs']],
  ['no spec', { metadata: { name: 'a' } }, [], ['missing-field a#cidrs']],
  ['no name', { metadata: {}, spec: { cidrs: ['10.96.0.0/16'] } }, [], ['missing-field <unnamed>']],
  ['not an object', 'x', [], ['not-an-object <unnamed>']],
];

for (const [name, obj, cidrs, issues] of PARSE) {
  test(`parseServiceCIDR: ${name}`, (t) => {
    const p = parseServiceCIDR(obj);
    t.deepEqual(p.cidrs, cidrs);
    t.deepEqual(p.issues.map((i) => `${i.reason} ${i.ref}`), issues);
  });
}

test('the tracker gives each family the sorted union over all objects', (t) => {
  const invalid: string[] = [];
  const tr = new ServiceCIDRTracker((kind, reason, ref) => invalid.push(`${kind} ${reason} ${ref}`));
  tr.onEvent('ADDED', cidr('kubernetes', ['10.96.0.0/16', 'fd00:96::/108']));
  tr.onEvent('ADDED', cidr('extra', ['10.100.0.0/24']));
  tr.onEvent('ADDED', cidr('same', ['10.96.0.0/16']));
  t.deepEqual(tr.cidrs('IPv4'), ['10.100.0.0/24', '10.96.0.0/16']);
  t.deepEqual(tr.cidrs('IPv6'), ['fd00:96::/108']);
  // Another object holding the same CIDR keeps it when one goes.
  tr.onEvent('DELETED', cidr('same', ['10.96.0.0/16']));
  t.deepEqual(tr.cidrs('IPv4'), ['10.100.0.0/24', '10.96.0.0/16']);
  // An unusable update leaves the last good version in force, and is reported.
  tr.onEvent('MODIFIED', cidr('extra', []), cidr('extra', ['10.100.0.0/24']));
  t.deepEqual(tr.cidrs('IPv4'), ['10.100.0.0/24', '10.96.0.0/16']);
  t.deepEqual(invalid, ['ServiceCIDR missing-field extra#cidrs']);
  tr.onEvent('DELETED', { metadata: {} } as KubeObject, cidr('extra', ['10.100.0.0/24']));
  tr.onEvent('DELETED', cidr('kubernetes', []));
  t.deepEqual(tr.cidrs('IPv4'), []);
  t.deepEqual(tr.cidrs('IPv6'), []);
});

function recorder() {
  const events: Array<{ kind: Kind; type: EventType; obj: KubeObject }> = [];
  const invalid: string[] = [];
  let synced = 0;
  const handler: SourceHandler = {
    onEvent: (kind, type, obj) => events.push({ kind, type, obj }),
    onSynced: () => synced++,
    onInvalid: (kind, reason, ref) => invalid.push(`${kind} ${reason} ${ref}`),
  };
  return { events, invalid, handler, synced: () => synced, of: (kind: Kind) => events.filter((e) => e.kind === kind).map((e) => `${e.type} ${e.obj.metadata.name}`) };
}

async function apiSource(t: { teardown(f: () => unknown): void }, seed: (f: FakeApiServer) => void) {
  const fake = new FakeApiServer();
  await fake.start();
  seed(fake);
  const source = new KubernetesSource({ nodeName: 'node-a', logger: pino({ level: 'silent' }), endpoint: fake.endpoint(), backoff: { initialMs: 5, maxMs: 40 } });
  const rec = recorder();
  await source.start(rec.handler);
  t.teardown(async () => {
    await source.stop();
    await fake.stop();
  });
  return { fake, source, rec };
}

test('the API source lists and watches networking.k8s.io/v1 ServiceCIDRs', async (t) => {
  const { fake, source, rec } = await apiSource(t, (f) => f.upsert('servicecidrs', cidr('kubernetes', ['10.96.0.0/16'])));
  await waitFor(() => rec.synced() === 1 && rec.of('ServiceCIDR').length === 1 && fake.openWatchCount('servicecidrs') === 1, 'listed and watching');
  const first = rec.events.find((e) => e.kind === 'ServiceCIDR')!.obj;
  t.is(first.apiVersion, 'networking.k8s.io/v1');
  t.is(first.kind, 'ServiceCIDR');
  fake.upsert('servicecidrs', cidr('extra', ['fd00:96::/108']));
  fake.remove('servicecidrs', undefined, 'kubernetes');
  await waitFor(() => rec.of('ServiceCIDR').length === 3, 'watch events');
  t.deepEqual(rec.of('ServiceCIDR'), ['ADDED kubernetes', 'ADDED extra', 'DELETED kubernetes']);
  t.like(source.stats().ServiceCIDR, { synced: true, absent: false, errors: 0 });
});

test('an API server without ServiceCIDRs (404) means none, not an error', async (t) => {
  const { fake, source, rec } = await apiSource(t, (f) => {
    f.notServed.add('servicecidrs');
    f.upsert('services', { metadata: { namespace: 'ns', name: 'a' }, spec: { clusterIP: '10.96.0.10', ports: [{ port: 80 }] } });
  });
  await waitFor(() => rec.synced() === 1 && source.stats().ServiceCIDR?.absent === true, 'synced without ServiceCIDRs');
  await new Promise((r) => setTimeout(r, 100));
  t.like(source.stats().ServiceCIDR, { synced: true, absent: true, errors: 0 });
  t.is(fake.listCount('servicecidrs'), 1, 'asked once, not retried');
  t.is(fake.openWatchCount('servicecidrs'), 0);
  t.deepEqual(rec.of('Service'), ['ADDED a']);
  t.deepEqual(rec.invalid, []);
});

test('--manifests accepts ServiceCIDRs (cluster-scoped), and refuses a wrong apiVersion', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-servicecidr-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'cidrs.yaml'), [
    'apiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\nmetadata: {name: kubernetes}\nspec: {cidrs: [10.96.0.0/16, "fd00:96::/108"]}',
    'apiVersion: networking.k8s.io/v1beta1\nkind: ServiceCIDR\nmetadata: {name: old}\nspec: {cidrs: [10.97.0.0/16]}',
  ].join('\n---\n'));
  const rec = recorder();
  const source = new ManifestsSource({ dir, nodeName: 'node-a' });
  await source.start(rec.handler);
  t.teardown(() => source.stop());
  t.deepEqual(rec.of('ServiceCIDR'), ['ADDED kubernetes']);
  const obj = rec.events.find((e) => e.kind === 'ServiceCIDR')!.obj;
  t.is(obj.metadata.namespace, undefined, 'no namespace defaulting for a cluster-scoped kind');
  t.deepEqual(rec.invalid, ['ServiceCIDR unsupported-api-version cidrs.yaml#1']);
  await writeFile(join(dir, 'cidrs.yaml'), 'apiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\nmetadata: {name: kubernetes}\nspec: {cidrs: [10.96.0.0/12]}\n');
  await waitFor(() => rec.of('ServiceCIDR').length === 2, 'modified');
  t.is(rec.events.at(-1)!.obj.spec.cidrs[0], '10.96.0.0/12');
});

test('the agent passes each family its ServiceCIDRs on full syncs and when they change; bad ones are counted', async (t) => {
  const s = await scriptedAgent([], { localAddresses: () => [] });
  t.teardown(() => s.agent.stop());
  await s.start(() => s.source.emit('ServiceCIDR', 'ADDED', cidr('kubernetes', ['10.96.0.0/16', 'fd00:96::/108'])));
  const v4 = s.proxiers.get('IPv4')!;
  const v6 = s.proxiers.get('IPv6')!;
  t.deepEqual(v4.seen[0].serviceCIDRs, ['10.96.0.0/16']);
  t.deepEqual(v6.seen[0].serviceCIDRs, ['fd00:96::/108']);
  t.true(v4.render().includes('10.96.0.0/16'), 'the proxier got them');

  // A change triggers a sync on its own; only the family that changed is told.
  await s.synced(() => s.source.emit('ServiceCIDR', 'ADDED', cidr('extra', ['10.100.0.0/24', 'fd00::/8', '10.0.0.0/8'])));
  t.false('serviceCIDRs' in v4.seen.at(-1)!, 'a bad object changes nothing');
  await s.synced(() => s.source.emit('ServiceCIDR', 'ADDED', cidr('extra', ['10.100.0.0/24'])));
  t.false(v4.seen.at(-1)!.full);
  t.deepEqual(v4.seen.at(-1)!.serviceCIDRs, ['10.100.0.0/24', '10.96.0.0/16']);
  t.false('serviceCIDRs' in v6.seen.at(-1)!);

  await s.synced(() => s.source.emit('ServiceCIDR', 'DELETED', cidr('kubernetes', [])));
  t.deepEqual(v4.seen.at(-1)!.serviceCIDRs, ['10.100.0.0/24']);
  t.deepEqual(v6.seen.at(-1)!.serviceCIDRs, [], 'none left: []');
  await s.synced(() => s.agent.forceFullSync());
  t.deepEqual(v6.seen.at(-1)!.serviceCIDRs, [], 'a full sync always carries them');
  const metric = await s.agent.registry.getSingleMetricAsString('kproxy_invalid_objects_total');
  t.regex(metric, /kind="ServiceCIDR",reason="bad-field"\} 1/);
});
