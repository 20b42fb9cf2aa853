// The health answers a load balancer reads from a node, fetched from outside over the node's
// IP while the real agent (--manifests) runs in the node namespace:
//   - the per-Service health-check server on spec.healthCheckNodePort of an
//     externalTrafficPolicy Local LoadBalancer (kube-proxy-reference.md §2.3): its exact body,
//     the endpoint-weight header, 200 / 503 as local Ready endpoints come and go, closed once
//     the Service is gone;
//   - /healthz and /livez on 10256 while the Node is being deleted (§2.2): nodeEligible.
//
// Address plan (ts/demo/topology.ts):
//   client 192.168.100.2 / fd00:100::2 -> node 192.168.100.1 / fd00:100::1, the Node's InternalIPs
//     (nodePortAddresses unset = "primary": the health-check servers bind these only)
//   backend i 10.244.i.2 / fd00:244:0:i::2, node 10.244.i.1 on backend i's link
//   shop/hc  10.96.0.71 / fd00:96::71  LoadBalancer 198.51.100.71, eTP Local,
//            http 80->8080 nodePort 30071, healthCheckNodePort 32071
// Each phase rewrites manifests, then polls (bounded) until every row reads as expected; what
// was last seen goes into one table, compared at the end, so a failure lists every differing row.
import test, { type ExecutionContext } from 'ava';
import { isDeepStrictEqual } from 'node:util';
import { CLIENT_LINK, type Topology } from '../../ts/demo/topology.js';
import { waitForServiceIP, waitForServiceIPGone } from '../helpers/agent.js';
import { clusterFor, type Cluster } from './cluster.js';
import { endpointSlice, node, service, WEB_PORTS } from './manifests.js';

const NODE_IP = CLIENT_LINK.nodeV4;
const NODE_IP6 = CLIENT_LINK.nodeV6;
const HC_IP = '10.96.0.71';
const HC_IP6 = 'fd00:96::71';
const HC_PORT = 32071;
const SHOP = 'shop';
const HTTP = WEB_PORTS[0];
const SETTLE_MS = 20_000;

/** The node with its InternalIPs (so "primary" resolves), plus whatever a phase adds. */
function nodeObject(metadata: Record<string, unknown> = {}, spec?: Record<string, unknown>) {
  const n = node();
  return {
    ...n,
    metadata: { ...n.metadata, ...metadata },
    ...(spec ? { spec } : {}),
    status: { addresses: [{ type: 'InternalIP', address: NODE_IP }, { type: 'InternalIP', address: NODE_IP6 }] },
  };
}

function hcService() {
  const s = service('hc', [HC_IP, HC_IP6], [HTTP], SHOP);
  s.spec.ports = [HTTP].map((p) => ({ name: p.name, port: p.port, targetPort: p.targetPort, protocol: p.protocol, nodePort: 30071 }));
  Object.assign(s.spec, { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: HC_PORT });
  return { ...s, status: { loadBalancer: { ingress: [{ ip: '198.51.100.71' }] } } };
}

type Where = 'here' | 'here, terminating' | 'other-node';

/** shop/hc's EndpointSlices, both families: backend i (1-based) placed as given. */
function hcSlices(placement: Where[]) {
  return (['IPv4', 'IPv6'] as const).map((family) => {
    const s = endpointSlice('hc', family, placement.map((_, k) => (family === 'IPv4' ? `10.244.${k + 1}.2` : `fd00:244:0:${k + 1}::2`)), [HTTP], SHOP);
    s.endpoints.forEach((e, k) => {
      e.nodeName = placement[k] === 'other-node' ? 'other-node' : e.nodeName;
      if (placement[k] === 'here, terminating') e.conditions = { ready: false, serving: true, terminating: true };
    });
    return s;
  });
}

/** The body upstream writes, spelled out (tabs, no trailing newline), not computed like the agent's. */
const hcBody = (n: number) =>
  `{\n\t"service": {\n\t\t"namespace": "${SHOP}",\n\t\t"name": "hc"\n\t},\n\t"localEndpoints": ${n},\n\t"serviceProxyHealthy": true\n}`;

interface Reply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** One GET from `ns` with curl (a fresh connection): the reply, or how the connection failed. */
async function get(topo: Topology, ns: string, url: string): Promise<Reply | string> {
  const r = await topo.exec(ns, ['curl', '-sS', '-g', '-i', '--max-time', '3', url], { allowFailure: true });
  if (r.code === 7) return 'refused';
  if (r.code === 28) return 'timeout';
  if (r.code !== 0) return `curl exit ${r.code}: ${r.stderr.trim()}`;
  const split = r.stdout.indexOf('\r\n\r\n');
  const head = r.stdout.slice(0, split).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of head.slice(1)) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(head[0].split(' ')[1]), headers, body: r.stdout.slice(split + 4) };
}

/** A health-check reply as the table shows it. */
function hcView(r: Reply | string) {
  if (typeof r === 'string') return r;
  return { status: r.status, contentType: r.headers['content-type'], nosniff: r.headers['x-content-type-options'],
    weight: r.headers['x-load-balancing-endpoint-weight'], body: r.body };
}
const hcWant = (status: number, n: number) =>
  ({ status, contentType: 'application/json', nosniff: 'nosniff', weight: String(n), body: hcBody(n) });

type Rows = Record<string, (topo: Topology) => Promise<unknown>>;

/**
 * Reads every row until all equal `want` or SETTLE_MS have passed (the agent picks up a
 * manifest change within its debounce and one sync); returns what was last seen.
 */
async function settle(topo: Topology, rows: Rows, want: Record<string, unknown>): Promise<Record<string, unknown>> {
  const deadline = Date.now() + SETTLE_MS;
  for (;;) {
    const seen: Record<string, unknown> = {};
    for (const [key, read] of Object.entries(rows)) seen[key] = await read(topo);
    if (isDeepStrictEqual(seen, want) || Date.now() > deadline) return seen;
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** The agent over shop/hc (local placement as given) and the Node with its addresses. */
async function bedFor(t: ExecutionContext, name: string, placement: Where[]): Promise<Cluster> {
  const c = await clusterFor(t, {
    name,
    extra: { 'node.yaml': [nodeObject()], 'hc.yaml': [hcService()], 'hc-endpoints.yaml': hcSlices(placement) },
  });
  t.teardown(async () => {
    if (t.passed) return;
    const ruleset = await c.topo.exec(c.topo.node, ['nft', 'list', 'ruleset'], { allowFailure: true });
    const listening = await c.topo.exec(c.topo.node, ['ss', '-Htlnp'], { allowFailure: true });
    t.log(`nft list ruleset (node namespace):\n${ruleset.stdout}${ruleset.stderr}`);
    t.log(`TCP listeners (node namespace):\n${listening.stdout}${listening.stderr}`);
  });
  await waitForServiceIP(c.topo, c.agent, HC_IP);
  await waitForServiceIP(c.topo, c.agent, HC_IP6);
  return c;
}

const HC_ROWS: Rows = {
  [`GET http://${NODE_IP}:${HC_PORT}/`]: async (topo) => hcView(await get(topo, topo.client, `http://${NODE_IP}:${HC_PORT}/`)),
  [`GET http://[${NODE_IP6}]:${HC_PORT}/healthz`]: async (topo) => hcView(await get(topo, topo.client, `http://[${NODE_IP6}]:${HC_PORT}/healthz`)),
  [`GET http://${NODE_IP}:${HC_PORT}/any/path?probe=1`]: async (topo) => hcView(await get(topo, topo.client, `http://${NODE_IP}:${HC_PORT}/any/path?probe=1`)),
  // "primary" node port addresses: the node's other addresses do not serve the check.
  [`GET http://10.244.1.1:${HC_PORT}/ (not a node IP)`]: async (topo) => hcView(await get(topo, topo.client, `http://10.244.1.1:${HC_PORT}/`)),
};
const hcAll = (v: unknown, notNodeIP: unknown = 'refused') =>
  Object.fromEntries(Object.keys(HC_ROWS).map((k) => [k, k.includes('not a node IP') ? notNodeIP : v]));

test.serial('healthCheckNodePort: the exact JSON and weight, 200 with local Ready endpoints, 503 with none, closed once the Service is gone', async (t) => {
  const bed = await bedFor(t, 'hcport', ['here', 'here', 'other-node']);
  const phases: Array<{ phase: string; change: () => Promise<void>; want: Record<string, unknown> }> = [
    { phase: 'backend-1, backend-2 local and Ready, backend-3 on another node', change: async () => {}, want: hcAll(hcWant(200, 2)) },
    { phase: 'backend-2 local but terminating: not counted', change: () => bed.manifests.write('hc-endpoints.yaml', ...hcSlices(['here', 'here, terminating', 'other-node'])), want: hcAll(hcWant(200, 1)) },
    { phase: 'every endpoint on another node', change: () => bed.manifests.write('hc-endpoints.yaml', ...hcSlices(['other-node', 'other-node', 'other-node'])), want: hcAll(hcWant(503, 0)) },
    { phase: 'a local Ready endpoint again', change: () => bed.manifests.write('hc-endpoints.yaml', ...hcSlices(['other-node', 'other-node', 'here'])), want: hcAll(hcWant(200, 1)) },
    {
      phase: 'the Service deleted',
      change: async () => {
        await bed.manifests.remove('hc.yaml');
        await waitForServiceIPGone(bed.topo, bed.agent, HC_IP);
      },
      want: hcAll('refused'),
    },
  ];
  // settle() stops at the first read that matches: each phase must change what is seen, or a
  // read from before the agent acted on the change would pass.
  phases.slice(1).forEach((p, k) => t.notDeepEqual(p.want, phases[k].want, `${p.phase} changes the expected answers`));
  const seen: Record<string, unknown> = {};
  const want: Record<string, unknown> = {};
  for (const p of phases) {
    await p.change();
    const got = await settle(bed.topo, HC_ROWS, p.want);
    for (const k of Object.keys(got)) {
      seen[`${p.phase}: ${k}`] = got[k];
      want[`${p.phase}: ${k}`] = p.want[k];
    }
  }
  t.deepEqual(seen, want, 'seen from the client (-) vs expected (+)');
});

/** /healthz or /livez as the table shows it: status, type, nodeEligible (or its absence). */
async function proxyHealthView(topo: Topology, path: string) {
  const r = await get(topo, topo.client, `http://${NODE_IP}:10256${path}`);
  if (typeof r === 'string') return r;
  let nodeEligible: unknown = 'not JSON';
  try {
    const body = JSON.parse(r.body);
    nodeEligible = 'nodeEligible' in body ? body.nodeEligible : 'absent';
  } catch { /* shown as 'not JSON' */ }
  return { status: r.status, contentType: r.headers['content-type'], nodeEligible, trailingNewline: r.body.endsWith('\n') };
}

const PROXY_ROWS: Rows = {
  [`GET http://${NODE_IP}:10256/healthz`]: (topo) => proxyHealthView(topo, '/healthz'),
  [`GET http://${NODE_IP}:10256/livez`]: (topo) => proxyHealthView(topo, '/livez'),
  // Node eligibility does not count for the per-Service check (backend-1 is local and Ready).
  [`GET http://${NODE_IP}:${HC_PORT}/ (shop/hc)`]: async (topo) => {
    const r = await get(topo, topo.client, `http://${NODE_IP}:${HC_PORT}/`);
    return typeof r === 'string' ? r : r.status;
  },
};
const proxyWant = (eligible: boolean) => ({
  [`GET http://${NODE_IP}:10256/healthz`]: { status: eligible ? 200 : 503, contentType: 'application/json', nodeEligible: eligible, trailingNewline: false },
  [`GET http://${NODE_IP}:10256/livez`]: { status: 200, contentType: 'application/json', nodeEligible: 'absent', trailingNewline: false },
  [`GET http://${NODE_IP}:${HC_PORT}/ (shop/hc)`]: 200,
});

test.serial('/healthz on 10256 answers 503 with nodeEligible false while the Node is being deleted; /livez stays 200', async (t) => {
  const bed = await bedFor(t, 'nodeelig', ['here', 'other-node', 'other-node']);
  const setNode = (n: object) => bed.manifests.write('node.yaml', n);
  const phases: Array<{ phase: string; node: object; eligible: boolean }> = [
    { phase: 'the Node as listed', node: nodeObject(), eligible: true },
    { phase: 'metadata.deletionTimestamp set', node: nodeObject({ deletionTimestamp: '2026-01-01T00:00:00Z', finalizers: ['example.com/hold'] }), eligible: false },
    { phase: 'deletionTimestamp gone again', node: nodeObject(), eligible: true },
    {
      phase: 'tainted ToBeDeletedByClusterAutoscaler',
      node: nodeObject({}, { taints: [{ key: 'ToBeDeletedByClusterAutoscaler', value: '1767225600', effect: 'NoSchedule' }] }),
      eligible: false,
    },
    { phase: 'another taint only', node: nodeObject({}, { taints: [{ key: 'example.com/other', effect: 'NoSchedule' }] }), eligible: true },
  ];
  phases.slice(1).forEach((p, k) => t.not(p.eligible, phases[k].eligible, `${p.phase} flips eligibility (see settle())`));
  const seen: Record<string, unknown> = {};
  const want: Record<string, unknown> = {};
  for (const p of phases) {
    await setNode(p.node);
    const w = proxyWant(p.eligible);
    const got = await settle(bed.topo, PROXY_ROWS, w);
    for (const k of Object.keys(got)) {
      seen[`${p.phase}: ${k}`] = got[k];
      want[`${p.phase}: ${k}`] = w[k];
    }
  }
  t.deepEqual(seen, want, 'seen from the client (-) vs expected (+)');
});
