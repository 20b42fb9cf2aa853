import test from 'ava';
import {
  hasAnyEndpoints,
  policyUse,
  reachableEndpoints,
  selectEndpoints,
  type PolicyUse,
  type TopologyMode,
} from '../../ts/model/endpoint-selection.js';
import type { Endpoint, NodeInfo, ServicePort } from '../../ts/model/types.js';

// Address plan: endpoints 10.180.0.x; this node is node-a in zone-a.
const NODE: NodeInfo = { name: 'node-a', labels: { 'topology.kubernetes.io/zone': 'zone-a' } };
const NO_ZONE: NodeInfo = { name: 'node-a', labels: {} };

type Opts = Partial<Omit<Endpoint, 'ip' | 'port'>> & { zh?: string[]; nh?: string[] };

/** Endpoint 10.180.0.<n>:80, Ready and remote unless told otherwise. */
function ep(n: number, o: Opts = {}): Endpoint {
  const { zh, nh, ...rest } = o;
  const e: Endpoint = { ip: `10.180.0.${n}`, port: 80, ready: true, serving: true, terminating: false, isLocal: false, ...rest };
  if (zh) e.zoneHints = zh;
  if (nh) e.nodeHints = nh;
  return e;
}
const TERM = { ready: false, serving: true, terminating: true }; // serving + terminating
const LOCAL = { isLocal: true, nodeName: 'node-a' };

interface Row {
  name: string;
  endpoints: Endpoint[];
  node: NodeInfo | undefined;
  use?: PolicyUse;
  cluster: number[];
  local: number[];
  /** Defaults to the union of cluster and local. */
  reachable?: number[];
  any: boolean;
  mode?: TopologyMode;
}

const rows: Row[] = [
  { name: 'no endpoints', endpoints: [], node: NODE, cluster: [], local: [], any: false },
  { name: 'all ready', endpoints: [ep(1), ep(2, LOCAL), ep(3)], node: NODE, cluster: [1, 2, 3], local: [2], any: true },
  { name: 'some not ready', endpoints: [ep(1), ep(2, { ready: false, serving: false }), ep(3, LOCAL)], node: NODE, cluster: [1, 3], local: [3], any: true },
  { name: 'not ready but serving and not terminating is unusable', endpoints: [ep(1, { ready: false })], node: NODE, cluster: [], local: [], any: false },
  {
    name: 'none ready: serving+terminating fallback',
    endpoints: [ep(1, TERM), ep(2, { ready: false, serving: false, terminating: true }), ep(3, { ready: false, serving: true })],
    node: NODE, cluster: [1], local: [], any: true,
  },
  { name: 'no fallback while one is ready', endpoints: [ep(1, TERM), ep(2)], node: NODE, cluster: [2], local: [], any: true },
  { name: 'terminating but not serving is excluded', endpoints: [ep(1, { ready: false, serving: false, terminating: true })], node: NODE, cluster: [], local: [], any: false },
  { name: 'local falls back alone: cluster Ready, local terminating', endpoints: [ep(1), ep(2, { ...TERM, ...LOCAL })], node: NODE, cluster: [1], local: [2], any: true },
  { name: 'local Ready wins over local terminating', endpoints: [ep(1, LOCAL), ep(2, { ...TERM, ...LOCAL })], node: NODE, cluster: [1], local: [1], any: true },
  { name: 'both fall back', endpoints: [ep(1, TERM), ep(2, { ...TERM, ...LOCAL })], node: NODE, cluster: [1, 2], local: [2], any: true },
  { name: 'no local endpoints: local empty, still some anywhere', endpoints: [ep(1)], node: NODE, cluster: [1], local: [], any: true },
  {
    name: 'zone hints match: cluster narrowed, local not',
    endpoints: [ep(1, { zh: ['zone-a'] }), ep(2, { zh: ['zone-b'], ...LOCAL }), ep(3, { zh: ['zone-a', 'zone-c'] })],
    node: NODE, cluster: [1, 3], local: [2], reachable: [1, 2, 3], any: true, mode: 'PreferSameZone',
  },
  {
    name: 'zone hints for other zones only: all',
    endpoints: [ep(1, { zh: ['zone-b'] }), ep(2, { zh: ['zone-c'] })],
    node: NODE, cluster: [1, 2], local: [], any: true, mode: '',
  },
  { name: 'partial zone hints: all', endpoints: [ep(1, { zh: ['zone-a'] }), ep(2)], node: NODE, cluster: [1, 2], local: [], any: true, mode: '' },
  { name: 'empty zone hint list counts as none', endpoints: [ep(1, { zh: ['zone-a'] }), ep(2, { zh: [] })], node: NODE, cluster: [1, 2], local: [], any: true, mode: '' },
  {
    name: 'only Ready endpoints need hints',
    endpoints: [ep(1, { zh: ['zone-a'] }), ep(2, { zh: ['zone-b'] }), ep(3, { ready: false, serving: false })],
    node: NODE, cluster: [1], local: [], any: true, mode: 'PreferSameZone',
  },
  {
    name: 'hints ignored when nothing is Ready: terminating fallback uses all',
    endpoints: [ep(1, { ...TERM, zh: ['zone-a'] }), ep(2, { ...TERM, zh: ['zone-b'] })],
    node: NODE, cluster: [1, 2], local: [], any: true, mode: '',
  },
  {
    name: 'node hints for this node: PreferSameNode over zone',
    endpoints: [ep(1, { nh: ['node-a'], zh: ['zone-a'] }), ep(2, { nh: ['node-b'], zh: ['zone-a'] })],
    node: NODE, cluster: [1], local: [], any: true, mode: 'PreferSameNode',
  },
  {
    name: 'node hints for other nodes only: zone hints decide',
    endpoints: [ep(1, { nh: ['node-b'], zh: ['zone-a'] }), ep(2, { nh: ['node-c'], zh: ['zone-a'] }), ep(3, { nh: ['node-c'], zh: ['zone-b'] })],
    node: NODE, cluster: [1, 2], local: [], any: true, mode: 'PreferSameZone',
  },
  {
    name: 'partial node hints: zone hints decide',
    endpoints: [ep(1, { nh: ['node-a'], zh: ['zone-b'] }), ep(2, { zh: ['zone-a'] })],
    node: NODE, cluster: [2], local: [], any: true, mode: 'PreferSameZone',
  },
  {
    name: 'node label missing: zone hints ignored',
    endpoints: [ep(1, { zh: ['zone-a'] }), ep(2, { zh: ['zone-b'] })],
    node: NO_ZONE, cluster: [1, 2], local: [], any: true, mode: '',
  },
  {
    name: 'node label missing: node hints still apply',
    endpoints: [ep(1, { nh: ['node-a'] }), ep(2, { nh: ['node-b'] })],
    node: NO_ZONE, cluster: [1], local: [], any: true, mode: 'PreferSameNode',
  },
  {
    name: 'no node info: no topology, local still from isLocal',
    endpoints: [ep(1, { nh: ['node-a'], zh: ['zone-a'] }), ep(2, { nh: ['node-b'], zh: ['zone-b'], ...LOCAL })],
    node: undefined, cluster: [1, 2], local: [2], any: true, mode: '',
  },
  {
    name: 'Cluster policy unused (iTP Local, ClusterIP only)',
    endpoints: [ep(1), ep(2, LOCAL)], node: NODE, use: { cluster: false, local: true }, cluster: [], local: [2], any: true,
  },
  {
    name: 'Cluster policy unused, no local endpoints: some still exist elsewhere',
    endpoints: [ep(1)], node: NODE, use: { cluster: false, local: true }, cluster: [], local: [], any: true,
  },
  { name: 'Local policy unused', endpoints: [ep(1), ep(2, LOCAL)], node: NODE, use: { cluster: true, local: false }, cluster: [1, 2], local: [], any: true },
];

const last = (eps: Endpoint[]) => eps.map((e) => Number(e.ip.split('.')[3]));

for (const row of rows) {
  test(`selectEndpoints: ${row.name}`, (t) => {
    const sel = selectEndpoints(row.endpoints, row.node, row.use);
    t.deepEqual(last(sel.clusterEndpoints), row.cluster, 'cluster');
    t.deepEqual(last(sel.localEndpoints), row.local, 'local');
    const union = row.reachable ?? [...new Set([...row.cluster, ...row.local])].sort((a, b) => a - b);
    t.deepEqual(last(sel.allReachableEndpoints), union, 'reachable');
    t.is(sel.hasAnyEndpoints, row.any, 'hasAnyEndpoints');
    if (row.mode !== undefined) t.is(sel.topologyMode, row.mode, 'topology mode');
  });
}

test('selectEndpoints keeps the input order and objects', (t) => {
  const eps = [ep(3), ep(1, LOCAL), ep(2)];
  const sel = selectEndpoints(eps, NODE);
  t.deepEqual(last(sel.clusterEndpoints), [3, 1, 2]);
  t.is(sel.localEndpoints[0], eps[1]);
});

/** A ServicePort with only the fields the policy helpers read. */
function sp(patch: Partial<ServicePort>): ServicePort {
  return { nodePort: 0, externalIPs: [], loadBalancerVIPs: [], internalPolicyLocal: false, externalPolicyLocal: false, endpoints: [], clusterEndpoints: [], localEndpoints: [], ...patch } as ServicePort;
}

// [name, ServicePort fields, uses cluster, uses local]
const policyRows: Array<[string, Partial<ServicePort>, boolean, boolean]> = [
  ['ClusterIP', {}, true, false],
  ['iTP Local', { internalPolicyLocal: true }, false, true],
  ['iTP Local with a NodePort: external traffic needs Cluster', { internalPolicyLocal: true, nodePort: 30001 }, true, true],
  ['eTP Local NodePort', { externalPolicyLocal: true, nodePort: 30001 }, true, true],
  ['eTP Local with an external IP of this family', { externalPolicyLocal: true, externalIPs: ['192.168.99.11'] }, true, true],
  ['eTP Local with nothing external in this family', { externalPolicyLocal: true }, true, false],
  ['eTP Local LoadBalancer VIP', { externalPolicyLocal: true, loadBalancerVIPs: ['1.2.3.4'] }, true, true],
];
for (const [name, patch, cluster, local] of policyRows) {
  test(`policyUse: ${name}`, (t) => {
    t.deepEqual(policyUse(sp(patch)), { cluster, local });
  });
}

test('hasAnyEndpoints and reachableEndpoints on a built ServicePort', (t) => {
  const eps = [ep(1), ep(2, { ...TERM, ...LOCAL })];
  const itpLocal = sp({ internalPolicyLocal: true, endpoints: eps, localEndpoints: [eps[1]] });
  t.true(hasAnyEndpoints(itpLocal));
  t.false(hasAnyEndpoints(sp({ endpoints: [ep(1, { ready: false, serving: false })] })));
  t.true(hasAnyEndpoints(sp({ endpoints: [eps[0]], clusterEndpoints: [eps[0]] })));
  // Copies (as after a JSON round trip) still merge by IP:port.
  const copy = JSON.parse(JSON.stringify({ endpoints: eps, clusterEndpoints: [eps[0]], localEndpoints: [eps[1], eps[0]] }));
  t.deepEqual(last(reachableEndpoints(copy)), [1, 2]);
});
