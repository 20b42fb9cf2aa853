// The packet matrix (tests/netns/matrix.ts) driven through a real kube-apiserver instead of
// manifests, for kproxy and for upstream kube-proxy v1.37.2 in one table. A row upstream fails
// is either one of kproxy's documented deviations (docs/design.md), listed in
// UPSTREAM_EXCEPTIONS with the reason, or a wrong row.
import test, { type ExecutionContext } from 'ava';
import { waitFor } from '../../ts/demo/topology.js';
import { startAgent, type Agent } from '../helpers/agent.js';
import { startControlPlane } from '../helpers/control-plane.js';
import { WEB_IP, WEB_IP6 } from '../netns/cluster.js';
import { topologyFor } from '../netns/flows.js';
import { endpointSlice, NODE_NAME, service } from '../netns/manifests.js';
import { checkRows, EXTRA, FLOWS, type Group } from '../netns/matrix.js';
import { outsideFor } from '../netns/outside.js';
import { startUpstream } from './bed.js';

/** Rows upstream is not held to, and why (each a deviation in docs/design.md). */
const INPUT_CHECK =
  'deviation 6: kproxy runs cluster-ips-check from filter-input too; this bed routes the Service ranges to the node, ' +
  'so upstream (forward and output only) never drops these and the node\'s own closed port answers "refused"';
const UPSTREAM_EXCEPTIONS: Record<string, string> = {
  'an unallocated IP in the ServiceCIDR, TCP: dropped': INPUT_CHECK,
  'an unallocated IP in the ServiceCIDR, UDP: dropped': INPUT_CHECK,
  'an unallocated IPv6 in the ServiceCIDR: dropped': INPUT_CHECK,
  'an unallocated IP from a pod: dropped': INPUT_CHECK,
};

const GROUPS = [...new Set(FLOWS.map((r) => r[0]))] as Group[];

async function matrixBed(t: ExecutionContext, name: string, proxy: 'kproxy' | 'upstream') {
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
    agent = startUpstream(t, { topo, cp }, 'nftables');
  }
  t.teardown(async () => {
    if (t.passed) return;
    const r = await topo.exec(topo.node, ['nft', 'list', 'ruleset'], { allowFailure: true });
    t.log(`nft list ruleset (node namespace):\n${r.stdout}${r.stderr}`);
  });
  // Everything is in once the NodePorts of both families are.
  await waitFor('the NodePorts in both families', async () => {
    if (agent.process.exitCode !== null) throw new Error(`${proxy} exited:\n${agent.logs().slice(-3000)}`);
    const lists = await Promise.all(['ip', 'ip6'].map((f) => topo.exec(topo.node, ['nft', 'list', 'table', f, 'kube-proxy'], { allowFailure: true })));
    return lists.every((r) => r.stdout.includes('30080'));
  }, { timeoutMs: 90_000 });
  return { topo, outside };
}

for (const proxy of ['kproxy', 'upstream'] as const) {
  test.serial(`the packet matrix through a real API server: ${proxy === 'kproxy' ? 'kproxy' : 'upstream kube-proxy (nftables)'}`, async (t) => {
    const bed = await matrixBed(t, `k8s-mx-${proxy.slice(0, 2)}`, proxy);
    await checkRows(t, bed, GROUPS, proxy === 'upstream' ? UPSTREAM_EXCEPTIONS : {});
    if (proxy === 'upstream') t.log(`rows upstream is not held to: ${Object.keys(UPSTREAM_EXCEPTIONS).length} (${INPUT_CHECK})`);
  });
}
