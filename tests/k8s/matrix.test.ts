// The packet matrix (tests/netns/matrix.ts) driven through a real kube-apiserver instead of
// manifests, for kproxy and for upstream kube-proxy v1.37.2 in one table. A row upstream fails
// is either one of kproxy's documented deviations (docs/design.md), listed in
// UPSTREAM_EXCEPTIONS with the reason, or a wrong row.
import test, { type ExecutionContext } from 'ava';
import { waitFor, type Topology } from '../../ts/demo/topology.js';
import { startAgent, type Agent } from '../helpers/agent.js';
import { startControlPlane } from '../helpers/control-plane.js';
import { WEB_IP, WEB_IP6 } from '../netns/cluster.js';
import { topologyFor } from '../netns/flows.js';
import { endpointSlice, NODE_NAME, service } from '../netns/manifests.js';
import { checkRows, EXTRA, FLOWS, MODE_EXCEPTIONS, type Group, type RowException } from '../netns/matrix.js';
import { outsideFor } from '../netns/outside.js';
import { startUpstream } from './bed.js';

/**
 * Where upstream answers otherwise, per mode: what it does, and why (each a deviation in
 * docs/design.md). These rows are checked against upstream's outcome, not skipped.
 */
const INPUT_CHECK =
  'deviation 6: kproxy runs cluster-ips-check from filter-input too; this bed routes the Service ranges to the node, ' +
  'so upstream (forward and output only) never drops these and the node\'s own closed port answers "refused"';
const refusedRows = (why: string): Record<string, RowException> => Object.fromEntries([
  'an unallocated IP in the ServiceCIDR, TCP: dropped',
  'an unallocated IP in the ServiceCIDR, UDP: dropped',
  'an unallocated IPv6 in the ServiceCIDR: dropped',
  'an unallocated IP from a pod: dropped',
].map((row) => [row, { outcome: 'refused', why }]));
const UPSTREAM_EXCEPTIONS: Record<'nftables' | 'iptables', Record<string, RowException>> = {
  nftables: refusedRows(INPUT_CHECK),
  // Upstream's iptables mode answers as kproxy's does: the mode's own list.
  iptables: MODE_EXCEPTIONS.iptables,
};

const GROUPS = [...new Set(FLOWS.map((r) => r[0]))] as Group[];

type Proxy = 'kproxy' | 'nftables' | 'iptables';
const LABEL: Record<Proxy, string> = { kproxy: 'kproxy', nftables: 'upstream kube-proxy (nftables)', iptables: 'upstream kube-proxy (iptables)' };

/** The NodePort is programmed in both families: then everything is. */
async function nodePortsProgrammed(topo: Topology, proxy: Proxy): Promise<boolean> {
  const dumps = proxy === 'iptables'
    ? [['iptables-save', '-t', 'nat'], ['ip6tables-save', '-t', 'nat']]
    : [['nft', 'list', 'table', 'ip', 'kube-proxy'], ['nft', 'list', 'table', 'ip6', 'kube-proxy']];
  const out = await Promise.all(dumps.map((cmd) => topo.exec(topo.node, cmd, { allowFailure: true })));
  return out.every((r) => r.stdout.includes('30080'));
}

async function matrixBed(t: ExecutionContext, name: string, proxy: Proxy) {
  const topo = await topologyFor(t, { backends: 3, name });
  const outside = await outsideFor(t, topo);
  const cp = await startControlPlane(t, topo);
  const objects: any[] = [
    service('web', [WEB_IP, WEB_IP6]),
    endpointSlice('web', 'IPv4', topo.backends.map((b) => b.v4)),
    endpointSlice('web', 'IPv6', topo.backends.map((b) => b.v6)),
    // The apiserver made the default ServiceCIDR from its flags (10.96.0.0/16, fd00:96::/108).
    ...Object.values(EXTRA).flat().filter((o: any) => o.kind !== 'ServiceCIDR'),
  ];
  // Status goes through the status subresource: apply drops it.
  await cp.apply(...objects.map(({ status, ...o }) => o));
  for (const o of objects.filter((x) => x.status)) {
    await cp.setStatus(o.kind.toLowerCase(), o.metadata.name, o.status, o.metadata.namespace);
  }
  let agent: Agent;
  if (proxy === 'kproxy') {
    agent = startAgent(topo, { kubeconfig: cp.kubeconfig('kproxy'), hostname: NODE_NAME, syncPeriod: '1s' });
    t.teardown(() => {
      if (!t.passed) t.log(`kproxy output (tail):\n${agent.logs().slice(-3000)}`);
    });
  } else {
    agent = startUpstream(t, { topo, cp }, proxy);
  }
  t.teardown(async () => {
    if (t.passed) return;
    const dump = proxy === 'iptables' ? ['iptables-save'] : ['nft', 'list', 'ruleset'];
    const r = await topo.exec(topo.node, dump, { allowFailure: true });
    t.log(`${dump.join(' ')} (node namespace):\n${r.stdout}${r.stderr}`);
  });
  await waitFor('the NodePorts in both families', async () => {
    if (agent.process.exitCode !== null) throw new Error(`${proxy} exited:\n${agent.logs().slice(-3000)}`);
    return nodePortsProgrammed(topo, proxy);
  }, { timeoutMs: 90_000 });
  return { topo, outside };
}

for (const proxy of ['kproxy', 'nftables', 'iptables'] as const) {
  test.serial(`the packet matrix through a real API server: ${LABEL[proxy]}`, async (t) => {
    const bed = await matrixBed(t, `k8s-mx-${proxy.slice(0, 2)}`, proxy);
    const exceptions = proxy === 'kproxy' ? {} : UPSTREAM_EXCEPTIONS[proxy];
    await checkRows(t, bed, GROUPS, exceptions);
    for (const [row, e] of Object.entries(exceptions)) t.log(`${row}: ${e.outcome} (${e.why})`);
  });
}
