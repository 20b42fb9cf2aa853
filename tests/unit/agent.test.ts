// The agent loop with a scripted source and the addon's in-memory backend:
// nothing is programmed before the initial sync, changes flow through,
// bad objects are counted, and a failed sync is retried as a full one.
import test from 'ava';
import pino from 'pino';
import { Agent } from '../../ts/agent.js';
import { loadConfig } from '../../ts/config/index.js';
import { Registry } from 'prom-client';
import { NftablesProxier } from '../../ts/modes/nftables/proxier.js';
import type { SyncReport, SyncRequest } from '../../ts/proxier/types.js';
import type { KubeObject } from '../../ts/sources/types.js';
import { RecordingProxier, ScriptedSource } from '../helpers/scripted.js';

const config = loadConfig([
  '--manifests', '/unused',
  '--cluster-cidr', '10.244.0.0/16',
  '--metrics-bind-address=',
  '--healthz-bind-address=',
  '--iptables-min-sync-period', '0s',
  '--iptables-sync-period', '1h',
]);

const service = (name: string, ip: string, extra: Record<string, unknown> = {}): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { namespace: 'ns', name, uid: `uid-${name}` },
  spec: { clusterIP: ip, clusterIPs: [ip], ports: [{ name: 'http', port: 80, protocol: 'TCP' }], ...extra },
});

const slice = (svc: string, ips: string[]): KubeObject => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { namespace: 'ns', name: `${svc}-abc`, labels: { 'kubernetes.io/service-name': svc } },
  addressType: 'IPv4',
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
});

/** nftables mode on the fake, recording every request; its fake refuses the next `failures` batches. */
class FailingProxier extends RecordingProxier {
  constructor(readonly nft: NftablesProxier, public failures = 0) {
    super(nft);
  }
  override sync(req: SyncRequest): Promise<SyncReport> {
    if (this.failures > 0) {
      this.failures--;
      this.nft.fakeFailNext(1); // EPERM, as an unprivileged agent would get
    }
    return super.sync(req);
  }
}

function setup(failures = 0) {
  const source = new ScriptedSource();
  const registry = new Registry();
  const logger = pino({ level: 'silent' });
  const inner = new NftablesProxier({ family: 'IPv4', localDetector: { mode: 'ClusterCIDR', cidr: '10.244.0.0/16' }, masqueradeAll: false, masqueradeBit: 14, fake: true, registry, logger });
  const dp = new FailingProxier(inner, failures);
  const agent = new Agent({ config, logger, source, proxiers: [dp], registry });
  return { source, dp, agent };
}

/** Starts an agent, feeds it `objects`, marks the source synced and waits for the first sync. */
async function started(t: { teardown(fn: () => unknown): void }, objects: [('Service' | 'EndpointSlice'), KubeObject][], failures = 0) {
  const s = setup(failures);
  await s.agent.start();
  t.teardown(() => s.agent.stop());
  const next = s.agent.nextSync();
  for (const [kind, obj] of objects) s.source.handler!.onEvent(kind, 'ADDED', obj);
  s.source.handler!.onSynced();
  await next;
  return s;
}

test('nothing is programmed until Services and EndpointSlices have synced', async (t) => {
  const { source, dp, agent } = setup();
  await agent.start();
  t.teardown(() => agent.stop());
  source.handler!.onEvent('Service', 'ADDED', service('web', '10.96.0.10'));
  source.handler!.onEvent('EndpointSlice', 'ADDED', slice('web', ['10.244.1.2', '10.244.2.2']));
  await new Promise((r) => setTimeout(r, 50));
  t.is(dp.seen.length, 0);
  const synced = agent.nextSync();
  source.handler!.onSynced();
  await synced;
  t.is(dp.seen.length, 1);
  t.true(dp.seen[0].full, 'the first sync replaces the table');
  t.regex(dp.nft.fakeDump(), /10\.96\.0\.10 \. tcp \. 80 comment "ns\/web:http" : goto endpoints-mod-2/);
});

test('a change after the initial sync is programmed as a partial sync', async (t) => {
  const { source, dp, agent } = await started(t, [['Service', service('web', '10.96.0.10')]]);
  const next = agent.nextSync();
  source.handler!.onEvent('EndpointSlice', 'ADDED', slice('web', ['10.244.1.2']));
  await next;
  const last = dp.seen.at(-1)!;
  t.false(last.full);
  t.is(last.upserts.length, 1);
  t.regex(dp.nft.fakeDump(), /goto endpoints-mod-1/);
});

test('invalid objects are skipped, logged and counted, and never reach the dataplane', async (t) => {
  const { dp, agent } = await started(t, [
    ['Service', service('bad', '10.96.0.300')],
    ['Service', service('good', '10.96.0.11')],
  ]);
  const metrics = await agent.registry.getSingleMetricAsString('kproxy_invalid_objects_total');
  t.regex(metrics, /kproxy_invalid_objects_total\{kind="Service",reason="[a-z-]+"\} 1/);
  t.false(dp.nft.fakeDump().includes('10.96.0.300'));
  t.true(dp.nft.fakeDump().includes('10.96.0.11'));
});

test('a failed sync is counted and retried as a full sync that loses nothing', async (t) => {
  const { source, dp, agent } = await started(t, [['Service', service('web', '10.96.0.10')]], 1);
  t.is(dp.seen.length, 1);
  const failures = await agent.registry.getSingleMetricAsString('kubeproxy_sync_proxy_rules_nftables_sync_failures_total');
  t.regex(failures, /ip_family="IPv4"\} 1/);
  // A new event triggers the retry (the periodic one would, an hour from now).
  const next = agent.nextSync();
  source.handler!.onEvent('Service', 'ADDED', service('other', '10.96.0.12'));
  await next;
  const retry = dp.seen.at(-1)!;
  t.true(retry.full, 'the retry after a failure is a full sync');
  t.true(dp.nft.fakeDump().includes('10.96.0.12'));
  // The failed request never reached the fake's table: the full retry carries web again.
  t.true(dp.nft.fakeDump().includes('10.96.0.10'), 'the Service from the failed sync is programmed');
});

test('a full sync requested while a sync is running is not lost', async (t) => {
  const { source, dp, agent } = await started(t, [['Service', service('web', '10.96.0.10')]]);
  // Make the next sync slow, and ask for a full sync while it runs.
  const inner = dp.nft;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  dp.sync = async (req) => {
    dp.seen.push(req);
    await gate;
    return inner.sync(req);
  };
  const first = agent.nextSync();
  source.handler!.onEvent('Service', 'ADDED', service('other', '10.96.0.12'));
  await new Promise((r) => setTimeout(r, 20));
  t.false(dp.seen.at(-1)!.full, 'the running sync is partial');
  const second = first.then(() => agent.nextSync());
  agent.forceFullSync();
  release();
  await second;
  t.true(dp.seen.at(-1)!.full, 'the requested full sync still happens');
});

test('ServicePorts with internalTrafficPolicy Local and no local endpoint are counted per family', async (t) => {
  const { source, agent } = await started(t, [
    ['Service', service('itp', '10.96.0.20', { internalTrafficPolicy: 'Local' })],
    ['EndpointSlice', slice('itp', ['10.244.1.2'])],
    // No endpoints anywhere: rejected, not dropped, and not counted (as upstream).
    ['Service', service('itp-empty', '10.96.0.22', { internalTrafficPolicy: 'Local' })],
    ['Service', service('plain', '10.96.0.21')],
  ]);
  const metric = () => agent.registry.getSingleMetricAsString('kubeproxy_sync_proxy_rules_no_local_endpoints_total');
  t.regex(await metric(), /ip_family="IPv4",traffic_policy="internal"\} 1/);
  // The endpoint moves onto this node: nothing left to count.
  const next = agent.nextSync();
  const local = slice('itp', ['10.244.1.2']);
  (local.endpoints as Array<Record<string, unknown>>)[0].nodeName = config.hostnameOverride;
  source.handler!.onEvent('EndpointSlice', 'MODIFIED', local);
  await next;
  t.regex(await metric(), /ip_family="IPv4",traffic_policy="internal"\} 0/);
});

test('a Node event without a usable name is counted, not silently dropped', async (t) => {
  const { source, agent } = await started(t, []);
  source.handler!.onEvent('Node', 'MODIFIED', { apiVersion: 'v1', kind: 'Node', metadata: { name: 42 } });
  source.handler!.onEvent('Node', 'DELETED', null as unknown as KubeObject);
  source.handler!.onEvent('Node', 'ADDED', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'another-node' } });
  const metrics = await agent.registry.getSingleMetricAsString('kproxy_invalid_objects_total');
  t.regex(metrics, /kproxy_invalid_objects_total\{kind="Node",reason="missing-field"\} 2/);
});
