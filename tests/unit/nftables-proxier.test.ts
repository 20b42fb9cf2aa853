// nftables mode behind the Proxier seam, on the addon's in-memory backend (kernel
// semantics, no kernel): what a sync leaves in the table, what it rejects, and how it recovers.
import test from 'ava';
import pino from 'pino';
import { Registry } from 'prom-client';
import { fromAddonError } from '../../ts/addon/errors.js';
import { encodeServicePorts } from '../../ts/addon/wire.js';
import { clusterIPServicePort, readyEndpoint } from '../../ts/model/build.js';
import type { ServicePort } from '../../ts/model/types.js';
import { NftablesProxier } from '../../ts/modes/nftables/proxier.js';

function spec(name: string, clusterIP: string, endpoints: string[], over: Partial<ServicePort> = {}): ServicePort {
  const eps = over.endpoints ?? endpoints.map((ip) => readyEndpoint(ip, 8080));
  return clusterIPServicePort({ namespace: 'ns', name, portName: 'http', protocol: 'TCP', clusterIP, port: 80, ...over, endpoints: eps });
}

type Opts = { family?: 'IPv4' | 'IPv6'; clusterCIDR?: string; masqueradeBit?: number };
const nft = (o: Opts = {}) =>
  new NftablesProxier({
    family: o.family ?? 'IPv4',
    localDetector: { mode: 'ClusterCIDR', cidr: o.clusterCIDR ?? ((o.family ?? 'IPv4') === 'IPv4' ? '10.244.0.0/16' : 'fd00:244::/48') },
    masqueradeAll: false,
    masqueradeBit: o.masqueradeBit ?? 14,
    fake: true,
    registry: new Registry(),
    logger: pino({ level: 'silent' }),
  });
const fake = (family: 'IPv4' | 'IPv6' = 'IPv4') => nft({ family });

const lines = (dump: string, what: string) => dump.split('\n').filter((l) => l.startsWith('add element') && l.includes(what));

test('a first sync is full and programs VIP, slots, hairpins and the no-endpoint reject', async (t) => {
  const dp = fake();
  const r = await dp.sync({ full: false, upserts: [spec('a', '10.96.0.1', ['10.244.1.2', '10.244.2.2']), spec('b', '10.96.0.2', [])], deletes: [] });
  t.true(r.full);
  t.deepEqual(r.rejected, []);
  const dump = dp.fakeDump();
  t.deepEqual(lines(dump, 'service-ips {'), ['add element ip kube-proxy service-ips { 10.96.0.1 . tcp . 80 comment "ns/a:http" : goto endpoints-mod-2 }']);
  t.is(lines(dump, 'endpoint-addrs {').length, 2);
  t.deepEqual(lines(dump, 'no-endpoint-services {'), ['add element ip kube-proxy no-endpoint-services { 10.96.0.2 . tcp . 80 comment "ns/b:http" : goto reject-chain }']);
  t.is(lines(dump, 'hairpin-connections {').length, 2);
  t.is(dump, dp.render(), 'the fake holds exactly the rendered model');
});

test('a one-endpoint change is a partial sync of a few objects', async (t) => {
  const dp = fake();
  // b makes endpoints-mod-2 exist already, so a's move from 3 to 2 endpoints only touches elements.
  const b = spec('b', '10.96.0.2', ['10.244.5.2', '10.244.6.2']);
  await dp.sync({ full: false, upserts: [spec('a', '10.96.0.1', ['10.244.1.2', '10.244.2.2', '10.244.3.2']), b], deletes: [] });
  const r = await dp.sync({ full: false, upserts: [spec('a', '10.96.0.1', ['10.244.1.2', '10.244.3.2'])], deletes: [] });
  t.false(r.full);
  // VIP element re-pointed (2), the tail endpoint moved into the freed slot (2), last slot and hairpin gone (2).
  t.is(r.objects, 6);
  t.is(lines(dp.fakeDump(), 'endpoint-addrs { 10.96.0.1').length, 2);
  t.is(lines(dp.fakeDump(), 'goto endpoints-mod-2').length, 2);
});

test('deleting a ServicePort removes every trace of it', async (t) => {
  const dp = fake();
  await dp.sync({ full: false, upserts: [spec('a', '10.96.0.1', ['10.244.1.2'])], deletes: [] });
  await dp.sync({ full: false, upserts: [], deletes: ['ns/a/tcp/http'] });
  const dump = dp.fakeDump();
  for (const set of ['service-ips {', 'endpoint-addrs {', 'cluster-ips {', 'hairpin-connections {']) t.deepEqual(lines(dump, set), [], set);
});

const badSpecs: [string, ServicePort, RegExp][] = [
  ['bad cluster IP', spec('x', '10.96.0.300', []), /bad clusterIP/],
  ['wrong family', spec('x', 'fd00::1', []), /not ip/],
  ['port out of range', spec('x', '10.96.0.1', [], { port: 70000 }), /out of range/],
  ['unknown protocol', spec('x', '10.96.0.1', [], { protocol: 'ICMP' as never }), /unknown protocol/],
  ['bad endpoint', spec('x', '10.96.0.1', ['10.244.1.999']), /bad endpoint/],
  ['endpoint port 0', spec('x', '10.96.0.1', [], { endpoints: [readyEndpoint('10.244.1.2', 0)] }), /out of range/],
  ['tab in a name', spec('x\ty', '10.96.0.1', []), /tab, space or newline/],
];

for (const [what, bad, reason] of badSpecs) {
  test(`a spec with a ${what} is rejected and never reaches the table`, async (t) => {
    const dp = fake();
    const r = await dp.sync({ full: false, upserts: [bad, spec('ok', '10.96.0.9', ['10.244.1.2'])], deletes: [] });
    t.is(r.rejected.length, 1);
    t.regex(r.rejected[0].reason, reason);
    t.deepEqual(lines(dp.fakeDump(), 'service-ips {').map((l) => l.includes('10.96.0.9')), [true]);
  });
}

test('a table deleted behind our back is rebuilt by the next sync, even with no changes', async (t) => {
  const dp = fake();
  await dp.sync({ full: false, upserts: [spec('a', '10.96.0.1', ['10.244.1.2'])], deletes: [] });
  const before = dp.fakeDump();
  dp.fakeDeleteTable();
  t.is(dp.fakeDump(), '');
  const r = await dp.sync({ full: false, upserts: [], deletes: [] });
  t.true(r.full);
  t.is(dp.fakeDump(), before);
});

test('a full sync carries the complete desired state and drops what it lacks', async (t) => {
  const dp = fake();
  await dp.sync({ full: false, upserts: [spec('a', '10.96.0.1', ['10.244.1.2']), spec('b', '10.96.0.2', ['10.244.1.3'])], deletes: [] });
  const r = await dp.sync({ full: true, upserts: [spec('b', '10.96.0.2', ['10.244.1.3'])], deletes: [] });
  t.true(r.full);
  t.false(dp.fakeDump().includes('10.96.0.1'));
  t.true(dp.fakeDump().includes('10.96.0.2'));
});

test('explain returns the committed transaction as nft text', async (t) => {
  const dp = fake();
  await dp.sync({ full: false, upserts: [spec('a', '10.96.0.1', ['10.244.1.2'])], deletes: [] });
  const r = await dp.sync({ full: false, upserts: [spec('a', '10.96.0.1', ['10.244.1.3'])], deletes: [], explain: true });
  t.is(
    r.text,
    [
      'delete element ip kube-proxy endpoint-addrs { 10.96.0.1 . tcp . 80 . 0 }',
      'delete element ip kube-proxy hairpin-connections { 10.244.1.2 . 10.244.1.2 }',
      'add element ip kube-proxy endpoint-addrs { 10.96.0.1 . tcp . 80 . 0 : 10.244.1.3 . 8080 }',
      'add element ip kube-proxy hairpin-connections { 10.244.1.3 . 10.244.1.3 }',
      '',
    ].join('\n'),
  );
  const quiet = await dp.sync({ full: false, upserts: [], deletes: [] });
  t.falsy(quiet.text);
});

test('IPv6 tables use ip6 matches and addresses', async (t) => {
  const dp = fake('IPv6');
  await dp.sync({ full: false, upserts: [spec('a', 'fd00:96::1', ['fd00:244:0:1::2'])], deletes: [] });
  const dump = dp.fakeDump();
  t.true(dump.startsWith('add table ip6 kube-proxy'));
  t.deepEqual(lines(dump, 'endpoint-addrs {'), ['add element ip6 kube-proxy endpoint-addrs { fd00:96::1 . tcp . 80 . 0 : fd00:244:0:1::2 . 8080 }']);
  t.true(dump.includes('ip6 saddr != fd00:244::/48 jump mark-for-masquerade'));
});

test('invalid options fail with a coded error', (t) => {
  const e = t.throws(() => nft({ family: 'IPv4', clusterCIDR: 'fd00::/8' }));
  t.is((e as { code?: string }).code, 'E_INVALID_OPTION');
  const e2 = t.throws(() => nft({ family: 'IPv4', masqueradeBit: 40 }));
  t.regex(e2!.message, /masqueradeBit/);
});

test('errors from the addon keep their code, and the errno as a field', (t) => {
  const e = fromAddonError(new Error(JSON.stringify({ code: 'E_KERNEL_REJECTED', errno: 2, message: 'kernel rejected `add rule ip kube-proxy x`: No such file or directory (errno 2)' })));
  t.is(e.code, 'E_KERNEL_REJECTED');
  t.is(e.errno, 2);
  t.regex(e.message, /errno 2/);
  t.is(fromAddonError('boom').code, 'E_UNKNOWN');
});

test('a refused batch is counted in nftables mode\'s own failure metric, with code and errno', async (t) => {
  const registry = new Registry();
  const dp = new NftablesProxier({ family: 'IPv4', masqueradeAll: false, masqueradeBit: 14, fake: true, registry, logger: pino({ level: 'silent' }) });
  dp.fakeFailNext(17);
  const e = await t.throwsAsync(dp.sync({ full: false, upserts: [spec('a', '10.96.0.1', ['10.244.1.2'])], deletes: [] }));
  t.is((e as { code?: string }).code, 'E_KERNEL_REJECTED');
  t.is((e as { errno?: number }).errno, 17);
  t.regex(await registry.getSingleMetricAsString('kubeproxy_sync_proxy_rules_nftables_sync_failures_total'), /ip_family="IPv4"\} 1/);
  const r = await dp.sync({ full: false, upserts: [], deletes: [] });
  t.true(r.full, 'the next sync repairs with a full one');
  t.true(dp.fakeDump().includes('10.96.0.1'), 'nothing from the failed sync is lost');
});

test('the wire text keeps fields apart and refuses separators inside them', (t) => {
  const { text, rejected } = encodeServicePorts([spec('a', '10.96.0.1', ['10.244.1.2', 'fd00::1']), spec('b\nc', '10.96.0.2', [])]);
  const [header, row, ...more] = text.split('\n');
  t.regex(header, /^kproxy-wire 1\tkey\tnamespace\t/);
  t.is(row.split('\t').length, header.split('\t').length - 1, 'one value per column');
  t.true(row.startsWith('ns/a/tcp/http\tns\ta\thttp\tTCP\tClusterIP\t10.96.0.1\t80\t'));
  t.true(row.endsWith('\t10.244.1.2,8080,RSC fd00::1,8080,RSC'));
  t.deepEqual(more, []);
  t.is(rejected.length, 1);
});

test('nftables mode registers its own metrics once per registry, with upstream names and help', async (t) => {
  const registry = new Registry();
  const common = { masqueradeAll: false, masqueradeBit: 14, fake: true, registry, logger: pino({ level: 'silent' }) };
  new NftablesProxier({ ...common, family: 'IPv4' });
  new NftablesProxier({ ...common, family: 'IPv6' });
  const text = await registry.metrics();
  for (const [name, help] of [
    ['kubeproxy_sync_proxy_rules_nftables_sync_failures_total', 'Cumulative proxy nftables sync failures'],
    ['kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total', 'Cumulative proxy nftables cleanup failures'],
  ]) {
    t.true(text.includes(`# HELP ${name} [ALPHA] ${help}\n# TYPE ${name} counter\n`), name);
  }
});
