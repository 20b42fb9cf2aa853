// `kproxy status` against the real agent (--manifests) in the node namespace: the table and
// -o json list the Services it programs with their VIPs, endpoint counts, policies and state;
// an endpoint change shows after its sync, with its event-to-rules latency; the page at / lists
// them too; every metric the Grafana dashboard queries that nftables mode registers is on the
// agent's /metrics; and with no agent at the address, a clear message.
//
// Address plan (ts/demo/topology.ts, cluster.ts):
//   default/web   10.96.0.10 / fd00:96::10   http 80/TCP, dns 53/UDP; backends 1-3, on this node
//   shop/np       10.96.0.81 / fd00:96::81   NodePort 30081, eTP Local, its one endpoint on another node
//   shop/none     10.96.0.82                 no EndpointSlice: rejected
//   shop/bad      clusterIP "not-an-ip": skipped and counted as invalid
import test from 'ava';
import { Registry } from 'prom-client';
import { iptablesMetrics } from '../../ts/modes/iptables/metrics.js';
import { ipvsMetrics } from '../../ts/modes/ipvs/metrics.js';
import { userspaceMetrics } from '../../ts/modes/userspace/metrics.js';
import type { Topology } from '../../ts/demo/topology.js';
import type { StatusDoc } from '../../ts/status/types.js';
import { AGENT_ENTRY } from '../helpers/agent.js';
import { DASHBOARD, dashboardExprs, exposedNames, metricNames } from '../helpers/promql.js';
import { clusterFor } from './cluster.js';
import { endpointSlice, service, WEB_PORTS } from './manifests.js';
import { readFileSync } from 'node:fs';

const METRICS = '127.0.0.1:10249';
const HTTP = WEB_PORTS[0];

function npService() {
  const s = service('np', ['10.96.0.81', 'fd00:96::81'], [HTTP], 'shop');
  s.spec.ports = [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: 30081 } as (typeof s.spec.ports)[number]];
  Object.assign(s.spec, { type: 'NodePort', externalTrafficPolicy: 'Local' });
  return s;
}

function npSlice() {
  const s = endpointSlice('np', 'IPv4', ['10.244.9.2'], [HTTP], 'shop');
  s.endpoints[0].nodeName = 'other-node';
  return s;
}

function badService() {
  const s = service('bad', ['10.96.0.83'], [HTTP], 'shop');
  return { ...s, spec: { ...s.spec, clusterIP: 'not-an-ip', clusterIPs: ['not-an-ip'] } };
}

async function status(topo: Topology, args: string[]) {
  return topo.exec(topo.node, ['node', ...AGENT_ENTRY, 'status', ...args], { allowFailure: true });
}

async function statusJSON(topo: Topology): Promise<StatusDoc> {
  const r = await status(topo, ['--metrics-address', METRICS, '-o', 'json']);
  if (r.code !== 0) throw new Error(`kproxy status -o json exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as StatusDoc;
}

/** Polls the document until `ok` holds (the agent debounces manifest changes), or gives the last one. */
async function until(topo: Topology, ok: (d: StatusDoc) => boolean, timeoutMs = 20_000): Promise<StatusDoc> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const doc = await statusJSON(topo);
    if (ok(doc) || Date.now() > deadline) return doc;
    await new Promise((r) => setTimeout(r, 300));
  }
}

const view = (d: StatusDoc) => d.services.map((s) => `${s.service} ${s.protocol} ${s.family} ${s.clusterIP} ${s.endpoints.ready}/${s.endpoints.terminating}/${s.endpoints.local} ${s.programmed.state}`);

test('kproxy status and -o json list what the running agent programs', async (t) => {
  const c = await clusterFor(t, {
    name: 'status',
    extra: { 'np.yaml': [npService()], 'np-endpoints.yaml': [npSlice()], 'none.yaml': [service('none', ['10.96.0.82'], [HTTP], 'shop')], 'bad.yaml': [badService()] },
  });
  const { topo } = c;
  // Everything listed (the ready check above waits only for web).
  let doc = await until(topo, (d) => d.services.length === 7 && d.services.every((s) => s.programmed.state !== 'pending'));
  t.deepEqual(view(doc), [
    'default/web:dns UDP IPv4 10.96.0.10 3/0/3 programmed',
    'default/web:dns UDP IPv6 fd00:96::10 3/0/3 programmed',
    'default/web:http TCP IPv4 10.96.0.10 3/0/3 programmed',
    'default/web:http TCP IPv6 fd00:96::10 3/0/3 programmed',
    'shop/none:http TCP IPv4 10.96.0.82 0/0/0 no-endpoints',
    'shop/np:http TCP IPv4 10.96.0.81 1/0/0 programmed',
    'shop/np:http TCP IPv6 fd00:96::81 0/0/0 no-endpoints',
  ]);
  const np = doc.services.find((s) => s.service === 'shop/np:http' && s.family === 'IPv4')!;
  t.like(np, { type: 'NodePort', nodePort: 30081, policy: { internal: 'Cluster', external: 'Local' } });
  t.regex(np.programmed.detail, /external traffic dropped/);
  t.is(doc.mode, 'nftables');
  t.is(doc.node, 'test-node');
  t.true(doc.initialSyncDone);
  t.true(doc.invalid.total >= 1, 'shop/bad counted');
  t.true(doc.invalid.recent.some((r) => r.ref.includes('shop/bad')), JSON.stringify(doc.invalid));
  t.true(doc.syncs.some((s) => s.family === 'IPv4' && s.full && s.ok));
  t.true(doc.syncs.some((s) => s.family === 'IPv6' && s.full && s.ok));

  const table = await status(topo, []);
  t.is(table.code, 0, table.stderr);
  t.regex(table.stdout, /^kproxy nftables on node test-node \(IPv4, IPv6\), up \d+[sm], at http:\/\/127\.0\.0\.1:10249$/m);
  t.regex(table.stdout, /^SERVICE +TYPE\/VIP +PORT +ENDPOINTS\(R\/T\/L\) +POLICY +PROGRAMMED +LAST SYNC$/m);
  t.regex(table.stdout, /^default\/web:http +ClusterIP fd00:96::10 +80\/TCP +3\/0\/3 +int:Cluster +programmed +\d+[sm] ago$/m);
  t.regex(table.stdout, /^shop\/none:http +ClusterIP 10\.96\.0\.82 +80\/TCP +0\/0\/0 +int:Cluster +no endpoints \(reject\)/m);
  t.regex(table.stdout, /^shop\/np:http +ClusterIP 10\.96\.0\.81 +80\/TCP +1\/0\/0 +int:Cluster ext:Local +programmed \(partly dropped\)/m);
  t.regex(table.stdout, /^ +NodePort \* +30081\/TCP$/m);
  t.regex(table.stdout, /^errors: 0 · invalid objects: [1-9]/m);

  // One endpoint change: after its sync, one ready endpoint, and a partial sync with its latency.
  const before = doc.syncs.length;
  await c.setWebEndpoints([2]);
  doc = await until(topo, (d) => d.services.filter((s) => s.name === 'web').every((s) => s.endpoints.ready === 1 && s.programmed.state === 'programmed'));
  t.deepEqual(doc.services.filter((s) => s.name === 'web').map((s) => s.endpoints.ready), [1, 1, 1, 1]);
  const partial = doc.syncs.slice(before).filter((s) => !s.full && s.ok && s.upserts > 0);
  t.true(partial.length >= 1, JSON.stringify(doc.syncs.slice(before)));
  t.true(partial.every((s) => s.eventLatencyMs !== undefined && s.eventLatencyMs >= 0 && s.eventLatencyMs < 20_000), JSON.stringify(partial));

  // The page lists the same Service ports.
  const page = await topo.exec(topo.node, ['curl', '-sS', '--max-time', '5', `http://${METRICS}/`]);
  const rows = [...page.stdout.matchAll(/<tr class="svc" data-service="([^"]+)" data-family="(IPv[46])"/g)].map((m) => `${m[1]} ${m[2]}`);
  t.deepEqual(rows, doc.services.map((s) => `${s.service} ${s.family}`));
  t.is((page.stdout.match(/<svg class="plot"/g) ?? []).length, 2);

  // The dashboard's metrics that nftables mode has are all on this agent's /metrics.
  const metrics = await topo.exec(topo.node, ['curl', '-sS', '--max-time', '5', `http://${METRICS}/metrics`]);
  const exposed = exposedNames(metrics.stdout);
  const others = new Registry();
  iptablesMetrics(others);
  ipvsMetrics(others);
  userspaceMetrics(others, { family: 'IPv4', stats: () => [], engineStats: () => ({ fdExhausted: 0, acceptErrors: 0 }) }, { failureReasons: [], connectBuckets: [] });
  const otherModes = exposedNames(await others.metrics());
  const wanted = [...new Set(dashboardExprs(JSON.parse(readFileSync(DASHBOARD, 'utf8'))).flatMap(({ expr }) => metricNames(expr)))].filter((n) => !otherModes.has(n));
  t.true(wanted.length > 15, `${wanted.length} dashboard metrics for nftables mode`);
  t.deepEqual(wanted.filter((n) => !exposed.has(n)), [], 'on the dashboard but not on the agent\'s /metrics');
});

test('kproxy status with no agent at the address: a clear message, exit 1', async (t) => {
  // No agent runs in this process's namespace on this port.
  const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
    import('node:child_process').then(({ execFile }) =>
      execFile('node', [...AGENT_ENTRY, 'status', '--metrics-address', '127.0.0.1:1'], (err, _out, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code) : 0, stderr })));
  });
  t.is(r.code, 1);
  t.regex(r.stderr, /^kproxy status: no kproxy agent answered at http:\/\/127\.0\.0\.1:1: is it running\? use --metrics-address \(ECONNREFUSED/);
});
