// The kernel as the oracle: what the agent programs equals what `plan` renders, and a table
// deleted behind the agent's back comes back.
//
// Address plan: client 192.168.100.2 / fd00:100::2; backend i 10.244.i.2 / fd00:244:0:i::2
//   web 10.96.0.10 / fd00:96::10: 80/TCP -> 8080, 53/UDP -> 8053, endpoints backend-1..3
import test from 'ava';
import { isDeepStrictEqual } from 'node:util';
import { waitFor, type Topology } from '../../ts/demo/topology.js';
import { planText, waitForServiceIP } from '../helpers/agent.js';
import { clusterFor, WEB_IP, WEB_IP6, type ClusterOptions } from './cluster.js';
import { ALL_BACKENDS, checkFlows, topologyFor } from './flows.js';
import { endpointSlice, NODE_NAME, service, WEB_PORTS } from './manifests.js';

async function rulesetJson(topo: Topology, ns: string): Promise<{ nftables: object[] }> {
  return JSON.parse((await topo.exec(ns, ['nft', '-j', 'list', 'ruleset'])).stdout);
}

const KIND_ORDER = ['table', 'set', 'map', 'chain', 'rule'];
const kindOf = (item: object) => Object.keys(item)[0];

// Drops what differs between two kernels holding the same ruleset: handles, counter values,
// element order in (hash) sets and maps, and the order objects were created in. Rules keep
// their order inside a chain, which is meaningful.
function strip(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) {
    const items = value.map((v) => strip(v));
    return key === 'elem' || key === 'set' ? items.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))) : items;
  }
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (k === 'handle') continue;
      out[k] = key === 'counter' && (k === 'packets' || k === 'bytes') ? 0 : strip(v, k);
    }
    return out;
  }
  return value;
}

function canonicalRuleset(json: { nftables: object[] }): object[] {
  const items = json.nftables.filter((item) => kindOf(item) !== 'metainfo').map((item) => strip(item) as object);
  const sortKey = (item: object) => {
    const kind = kindOf(item);
    const body = (item as Record<string, any>)[kind];
    const name = kind === 'rule' ? body.chain : kind === 'table' ? '' : body.name;
    return [body.family, kind === 'table' ? body.name : body.table, KIND_ORDER.indexOf(kind), name];
  };
  return items.sort((a, b) => {
    const [ka, kb] = [sortKey(a), sortKey(b)];
    for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i] < kb[i] ? -1 : 1;
    return 0; // stable: rules of one chain keep their order
  });
}

/** Every shape of Service: NodePort, eTP Local, source ranges, affinity (IPv4: nft 1.0.6 cannot
 * load IPv6 affinity rules from text), a ServiceCIDR. NodePorts on every local address, so
 * `plan` in another namespace renders the same ruleset as the node. */
function everyShape(): ClusterOptions {
  const http = WEB_PORTS[0];
  const withPorts = (s: ReturnType<typeof service>, spec: Record<string, unknown>, nodePort: number) => {
    Object.assign(s.spec, spec, { ports: [{ ...s.spec.ports[0], nodePort }] });
    return s;
  };
  const eps = (name: string, v6 = true) => [
    { ...endpointSlice(name, 'IPv4', ['10.244.1.2', '10.244.2.2'], [http]), endpoints: [{ addresses: ['10.244.1.2'], nodeName: NODE_NAME, conditions: { ready: true } }, { addresses: ['10.244.2.2'], nodeName: 'other', conditions: { ready: true } }] },
    ...(v6 ? [endpointSlice(name, 'IPv6', ['fd00:244:0:1::2'], [http])] : []),
  ];
  const lb = (ip: string) => ({ status: { loadBalancer: { ingress: [{ ip }] } } });
  return {
    rulesetArgs: ['--nodeport-addresses', '0.0.0.0/0,::/0'],
    extra: {
      'np.yaml': [withPorts(service('np', ['10.96.0.60', 'fd00:96::60'], [http]), { type: 'NodePort' }, 30080), ...eps('np')],
      'local.yaml': [{ ...withPorts(service('local', ['10.96.0.61', 'fd00:96::61'], [http]), { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 32061 }, 30081), ...lb('198.51.100.61') }, ...eps('local')],
      'fw.yaml': [{ ...withPorts(service('fw', ['10.96.0.64'], [http]), { type: 'LoadBalancer', loadBalancerSourceRanges: ['203.0.113.0/24'] }, 30084), ...lb('198.51.100.64') }, ...eps('fw', false)],
      'sticky.yaml': [withPorts(service('sticky', ['10.96.0.65'], [http]), { type: 'NodePort', sessionAffinity: 'ClientIP', externalIPs: ['192.0.2.65'] }, 30085), ...eps('sticky', false)],
      'servicecidr.yaml': [{ apiVersion: 'networking.k8s.io/v1', kind: 'ServiceCIDR', metadata: { name: 'kubernetes' }, spec: { cidrs: ['10.96.0.0/16', 'fd00:96::/112'] } }],
    },
  };
}

for (const [what, opts] of [['the web Service', {}], ['every shape of Service', everyShape()]] as const) test.serial(`after programming ${what}, the kernel holds exactly what plan renders for the same inputs`, async (t) => {
  const { topo, config } = await clusterFor(t, { name: 'plan', ...opts });
  const scratch = await topologyFor(t, { backends: 0, name: 'planref' });
  const text = await planText(scratch, scratch.node, config);
  t.is((await scratch.exec(scratch.node, ['nft', 'list', 'ruleset'])).stdout.trim(), '', 'plan must not touch the kernel');
  await scratch.exec(scratch.node, ['nft', '-f', '-'], { input: text });
  const want = canonicalRuleset(await rulesetJson(scratch, scratch.node));
  t.true(want.length > 0, 'plan rendered an empty ruleset');

  // The agent may still be settling (a later sync, stale chains awaiting deletion): poll, then compare.
  let got: object[] = [];
  await waitFor('the node ruleset to equal the plan', async () => {
    got = canonicalRuleset(await rulesetJson(topo, topo.node));
    return isDeepStrictEqual(got, want);
  }, { timeoutMs: 15_000 }).catch(() => {});
  t.deepEqual(got, want);
});

test.serial('a table deleted by another process comes back at the next periodic sync', async (t) => {
  const { topo, agent } = await clusterFor(t, { name: 'tabledel', syncPeriod: '1s' });
  await topo.exec(topo.node, ['nft', 'delete', 'table', 'ip', 'kube-proxy']);
  await topo.exec(topo.node, ['nft', 'delete', 'table', 'ip6', 'kube-proxy']);
  await waitForServiceIP(topo, agent, WEB_IP);
  await waitForServiceIP(topo, agent, WEB_IP6);
  await checkFlows(t, topo, [
    { from: 'client', to: `${WEB_IP}:80`, proto: 'tcp', expect: ALL_BACKENDS(3), source: 'masqueraded', count: 30 },
    { from: 'client', to: `${WEB_IP}:53`, proto: 'udp', expect: ALL_BACKENDS(3), source: 'masqueraded', count: 10 },
    { from: 'client', to: `[${WEB_IP6}]:80`, proto: 'tcp', expect: ALL_BACKENDS(3), source: 'masqueraded', count: 10 },
  ]);
});
