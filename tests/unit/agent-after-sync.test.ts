// What the agent does after each successful sync, as upstream: the per-Service health-check
// servers follow the Services and their local endpoints (real sockets), a failed listen
// becomes a FailedToStartServiceHealthcheck Event, the conntrack reconciler gets the family's
// ServicePorts, and ServicePorts left without a local endpoint are counted per policy.
import { createServer } from 'node:net';
import test from 'ava';
import type { ServicePort } from '../../ts/model/types.js';
import type { KubeObject } from '../../ts/sources/types.js';
import { scriptedAgent } from '../helpers/scripted.js';

const NODE = 'node-a';

function lbLocal(name: string, ip: string, healthCheckNodePort: number): KubeObject {
  return {
    apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'ns', name },
    spec: {
      type: 'LoadBalancer', clusterIP: ip, clusterIPs: [ip], externalTrafficPolicy: 'Local', healthCheckNodePort,
      ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30000 + (healthCheckNodePort % 1000) }],
    },
  };
}

function slice(svc: string, eps: [ip: string, node: string, ready?: boolean][]): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { namespace: 'ns', name: `${svc}-x`, labels: { 'kubernetes.io/service-name': svc } },
    addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: eps.map(([ip, nodeName, ready = true]) => ({ addresses: [ip], nodeName, conditions: { ready, serving: true, terminating: !ready } })),
  };
}

/** A port nobody listens on now (bound once and released). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

async function probe(port: number): Promise<{ status: number; weight: string | null; body: string } | 'refused'> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/any/path`);
    return { status: r.status, weight: r.headers.get('x-load-balancing-endpoint-weight'), body: await r.text() };
  } catch {
    return 'refused';
  }
}

async function eventually<T>(f: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  let v = await f();
  for (let i = 0; i < 50 && !ok(v); i++) {
    await new Promise((r) => setTimeout(r, 20));
    v = await f();
  }
  return v;
}

test('health-check servers open, answer per local Ready endpoints, and close as Services change', async (t) => {
  const port = await freePort();
  const s = await scriptedAgent(['--hostname-override', NODE], { families: ['IPv4'] });
  t.teardown(() => s.agent.stop());
  await s.start(() => {
    s.source.emit('Service', 'ADDED', lbLocal('web', '10.96.0.40', port));
    s.source.emit('EndpointSlice', 'ADDED', slice('web', [['10.244.1.2', 'node-b']]));
  });
  const first = await eventually(() => probe(port), (v) => v !== 'refused');
  t.like(first, { status: 503, weight: '0' }, 'no local endpoint: 503');
  if (first !== 'refused') t.is(first.body, '{\n\t"service": {\n\t\t"namespace": "ns",\n\t\t"name": "web"\n\t},\n\t"localEndpoints": 0,\n\t"serviceProxyHealthy": true\n}');
  // A local endpoint that is Ready counts; a terminating one does not.
  await s.synced(() => s.source.emit('EndpointSlice', 'MODIFIED', slice('web', [['10.244.1.2', NODE], ['10.244.1.3', NODE, false]])));
  t.like(await eventually(() => probe(port), (v) => v !== 'refused' && v.status === 200), { status: 200, weight: '1' });
  await s.synced(() => s.source.emit('Service', 'DELETED', lbLocal('web', '10.96.0.40', port)));
  t.is(await eventually(() => probe(port), (v) => v === 'refused'), 'refused', 'closed with its Service');
});

test('a health-check port that cannot be bound is reported as a Warning Event on the Service', async (t) => {
  const port = await freePort();
  const squatter = createServer();
  await new Promise<void>((r) => squatter.listen(port, '0.0.0.0', r));
  t.teardown(() => new Promise((r) => squatter.close(r)));
  const s = await scriptedAgent(['--hostname-override', NODE], { families: ['IPv4'] });
  t.teardown(() => s.agent.stop());
  await s.start(() => s.source.emit('Service', 'ADDED', lbLocal('busy', '10.96.0.41', port)));
  const events = await eventually(async () => s.source.events.filter((e) => e.reason === 'FailedToStartServiceHealthcheck'), (v) => v.length > 0);
  t.is(events.length, 1);
  t.like(events[0], { type: 'Warning', regarding: { kind: 'Service', namespace: 'ns', name: 'busy' } });
  t.true(events[0].note.includes(String(port)), events[0].note);
});

test('the conntrack reconciler gets every UDP ServicePort of its family after each successful sync', async (t) => {
  const calls: string[][] = [];
  const conntrack = { IPv4: { reconcile: async (sps: readonly ServicePort[]) => void calls.push(sps.map((sp) => sp.key).sort()) } };
  const s = await scriptedAgent(['--hostname-override', NODE], { families: ['IPv4'], conntrack, serviceHealth: false });
  t.teardown(() => s.agent.stop());
  const udp = (svc: any) => ({ ...svc, spec: { ...svc.spec, ports: svc.spec.ports.map((p: any) => ({ ...p, protocol: 'UDP' })) } });
  await s.start(() => s.source.emit('Service', 'ADDED', udp(lbLocal('a', '10.96.0.42', 32001))));
  await s.synced(() => s.source.emit('Service', 'ADDED', udp(lbLocal('b', '10.96.0.43', 32002))));
  t.deepEqual(calls.at(-1), ['ns/a/udp/http', 'ns/b/udp/http'], 'the whole family, not just the change');
  // TCP ServicePorts have no stale flows to clear.
  await s.synced(() => s.source.emit('Service', 'ADDED', lbLocal('c', '10.96.0.44', 32003)));
  t.deepEqual(calls.at(-1), ['ns/a/udp/http', 'ns/b/udp/http']);
  await s.synced(() => s.source.emit('Service', 'DELETED', udp(lbLocal('a', '10.96.0.42', 32001))));
  t.deepEqual(calls.at(-1), ['ns/b/udp/http'], 'a deleted ServicePort leaves the input');
  t.true(calls.length >= 4);
});

test('a UDP change waits for the running conntrack pass; a TCP change does not', async (t) => {
  // The pass decides on the endpoints it was given: a UDP endpoint committed under it would
  // have its first flows deleted as stale. Upstream runs the pass inside the sync.
  const releases: (() => void)[] = [];
  const conntrack = { IPv4: { reconcile: () => new Promise<void>((resolve) => releases.push(resolve)) } };
  const s = await scriptedAgent(['--hostname-override', NODE], { families: ['IPv4'], conntrack, serviceHealth: false });
  t.teardown(() => s.agent.stop());
  const udp = (svc: any) => ({ ...svc, spec: { ...svc.spec, ports: svc.spec.ports.map((p: any) => ({ ...p, protocol: 'UDP' })) } });
  await s.start(() => s.source.emit('Service', 'ADDED', udp(lbLocal('dns', '10.96.0.46', 32005))));
  const proxier = s.proxiers.get('IPv4')!;
  const keys = () => proxier.seen.map((r) => r.upserts.map((sp) => sp.key).join(',')).filter(Boolean);
  t.is(releases.length, 1, 'the first sync started a pass');
  // TCP: synced while the pass still runs.
  await s.synced(() => s.source.emit('Service', 'ADDED', lbLocal('web', '10.96.0.47', 32006)));
  t.deepEqual(keys().at(-1), 'ns/web/tcp/http');
  // UDP: held back until the pass settles, then synced.
  const next = s.agent.nextSync();
  s.source.emit('EndpointSlice', 'ADDED', { ...slice('dns', [['10.244.1.9', 'node-b']]), ports: [{ name: 'http', port: 8053, protocol: 'UDP' }] });
  await new Promise((r) => setTimeout(r, 200));
  t.deepEqual(keys().at(-1), 'ns/web/tcp/http', 'no UDP commit while the pass runs');
  t.is(releases.length, 2, 'the TCP sync started a pass of its own: the one waited for');
  releases[1]();
  await next;
  t.deepEqual(keys().at(-1), 'ns/dns/udp/http', 'committed once the pass settled');
  t.is(releases.length, 3, 'each sync started its pass');
  for (const release of releases) release();
});

test('externalTrafficPolicy Local ServicePorts with no local endpoint are counted, as internal ones are', async (t) => {
  const s = await scriptedAgent(['--hostname-override', NODE], { families: ['IPv4'], serviceHealth: false });
  t.teardown(() => s.agent.stop());
  await s.start(() => {
    s.source.emit('Service', 'ADDED', lbLocal('remote', '10.96.0.44', 32003));
    s.source.emit('EndpointSlice', 'ADDED', slice('remote', [['10.244.2.2', 'node-b']]));
    // No endpoints at all: rejected, not dropped, and not counted (as upstream).
    s.source.emit('Service', 'ADDED', lbLocal('empty', '10.96.0.45', 32004));
  });
  const metric = () => s.agent.registry.getSingleMetricAsString('kubeproxy_sync_proxy_rules_no_local_endpoints_total');
  t.regex(await metric(), /ip_family="IPv4",traffic_policy="external"\} 1/);
  await s.synced(() => s.source.emit('EndpointSlice', 'MODIFIED', slice('remote', [['10.244.2.2', NODE]])));
  t.regex(await metric(), /ip_family="IPv4",traffic_policy="external"\} 0/);
});
