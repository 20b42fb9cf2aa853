// The agent's Kubernetes source against a real kube-apiserver v1.37.2 and etcd
// (tests/helpers/control-plane.ts), under kproxy's own RBAC (deploy/rbac.yaml), with real
// packets. The objects go in through the API; no controller-manager runs, so the tests
// write the EndpointSlices themselves.
//
// Address plan: as tests/netns (ts/demo/topology.ts): backend i 10.244.i.2 / fd00:244:0:i::2.
//   web 10.96.0.20 / fd00:96::20   80/TCP -> 8080, 53/UDP -> 8053
import test from 'ava';
import { waitFor } from '../../ts/demo/topology.js';
import { startAgent, waitForServiceIP, type Agent } from '../helpers/agent.js';
import { startControlPlane, type ControlPlane } from '../helpers/control-plane.js';
import { tally, topologyFor } from '../netns/flows.js';
import { endpointSlice, node, NODE_NAME, service } from '../netns/manifests.js';

const WEB_IP = '10.96.0.20';
const WEB_IP6 = 'fd00:96::20';

type Bed = Awaited<ReturnType<typeof bedFor>>;

async function bedFor(t: Parameters<typeof startControlPlane>[0], name: string) {
  const topo = await topologyFor(t, { backends: 2, name });
  const cp = await startControlPlane(t, topo);
  const [b1, b2] = topo.backends;
  await cp.apply(node());
  await cp.setStatus('node', NODE_NAME, { addresses: [{ type: 'InternalIP', address: '192.168.100.1' }] });
  await cp.apply(service('web', [WEB_IP, WEB_IP6]));
  const setEndpoints = (...backends: typeof topo.backends) =>
    cp.apply(endpointSlice('web', 'IPv4', backends.map((b) => b.v4)), endpointSlice('web', 'IPv6', backends.map((b) => b.v6)));
  await setEndpoints(b1, b2);
  const agent: Agent = startAgent(topo, { kubeconfig: cp.kubeconfig('kproxy'), hostname: NODE_NAME, syncPeriod: '1s' });
  t.teardown(() => {
    if (!t.passed) t.log(`agent output (tail):\n${agent.logs().slice(-3000)}`);
  });
  await waitForServiceIP(topo, agent, WEB_IP);
  await waitForServiceIP(topo, agent, WEB_IP6);
  const answered = async (ip = WEB_IP) => Object.keys(tally(await topo.tcpRequests(topo.client, ip, 80, { count: 30 }))).sort().join();
  return { topo, cp, agent, b1, b2, setEndpoints, answered };
}

/** Waits until the web ClusterIP is answered by exactly `want` (backend names, comma-joined). */
async function until(bed: Bed, what: string, want: string, timeoutMs = 30_000) {
  await waitFor(what, async () => (await bed.answered()) === want, { timeoutMs });
}

test.serial('Services and EndpointSlices from a real kube-apiserver are proxied, under kproxy\'s own ClusterRole', async (t) => {
  const bed = await bedFor(t, 'k8s-src');
  t.is(await bed.answered(), 'backend-1,backend-2', 'IPv4: both endpoints answer');
  t.is(await bed.answered(WEB_IP6), 'backend-1,backend-2', 'IPv6: both endpoints answer');
  // A watch event: one endpoint goes.
  await bed.setEndpoints(bed.b2);
  await until(bed, 'only backend-2 to answer', 'backend-2');
  t.pass('an EndpointSlice update through the API reached the rules');

  // The Starting Event was accepted (events.k8s.io create is the role's only write).
  const events = JSON.parse(await bed.cp.kubectl(['get', 'events.v1.events.k8s.io', '-A', '-o', 'json']));
  const starting = events.items.filter((e: any) => e.reason === 'Starting' && e.regarding?.name === NODE_NAME);
  t.true(starting.length >= 1, `a Starting Event for the Node: ${JSON.stringify(events.items.map((e: any) => e.reason))}`);
  // Nothing it asked for was refused: with any permission missing, the API answers 403.
  t.notRegex(bed.agent.logs(), /forbidden|\b403\b/i, 'no request was forbidden');
  // And the role is no wider than deploy/rbac.yaml: kproxy cannot read Secrets or write Services.
  for (const [verb, resource] of [['list', 'secrets'], ['create', 'services'], ['delete', 'endpointslices.discovery.k8s.io']]) {
    const can = (await bed.cp.kubectl(['auth', 'can-i', verb, resource, '-A'], { as: 'kproxy', allowFailure: true })).trim();
    t.is(can, 'no', `kproxy may not ${verb} ${resource}`);
  }
});

test.serial('an API server restart, an etcd restart and a compaction (410 Gone, relist): no rule is removed, later changes land', async (t) => {
  const bed = await bedFor(t, 'k8s-restart');
  const both = 'backend-1,backend-2';

  // kube-apiserver goes away for several sync periods: nothing is removed.
  await bed.cp.stopApiserver();
  await new Promise((r) => setTimeout(r, 4000));
  t.is(await bed.answered(), both, 'rules stay while the API server is down');
  await bed.cp.startApiserver();
  await bed.setEndpoints(bed.b2);
  await until(bed, 'the change after the apiserver restart', 'backend-2', 60_000);

  // etcd goes away behind a running apiserver.
  await bed.cp.stopEtcd();
  await new Promise((r) => setTimeout(r, 4000));
  t.is(await bed.answered(), 'backend-2', 'rules stay while etcd is down');
  await bed.cp.startEtcd();
  await bed.setEndpoints(bed.b1, bed.b2);
  await until(bed, 'the change after the etcd restart', both, 60_000);

  // The agent's last resourceVersion falls behind a compaction: writes it does not watch move
  // etcd on, then the compaction, then a restart that breaks its watches. Resuming from the old
  // version answers 410 Gone, and only a relist brings the next change.
  for (let i = 0; i < 5; i++) await bed.cp.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `bump-${i}`, namespace: 'default' }, data: { i: String(i) } });
  await bed.cp.compact();
  await bed.cp.stopApiserver();
  await bed.cp.startApiserver();
  await bed.setEndpoints(bed.b1);
  await until(bed, 'the change after the compaction', 'backend-1', 60_000);
  // The restarted apiserver counts from zero, and only the agent lists EndpointSlices.
  const lists = /apiserver_request_total\{[^}]*resource="endpointslices"[^}]*verb="LIST"[^}]*\} (\d+)/.exec(await bed.cp.metrics());
  t.truthy(lists && Number(lists[1]) >= 1, 'the agent relisted EndpointSlices (its old resourceVersion was gone)');
});
