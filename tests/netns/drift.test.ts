// Drift: another process changes kproxy's rules and the agent repairs them at once, from the
// kernel's ruleset notifications, not at the next periodic sync (the default 30 s here).
// Each row is done to one running agent in turn; then a fight (someone flushing the ruleset
// every 100 ms) must be paced, not looped on.
//
// Address plan: client 192.168.100.2 / fd00:100::2; backend i 10.244.i.2 / fd00:244:0:i::2
//   web 10.96.0.10 / fd00:96::10: 80/TCP -> 8080, 53/UDP -> 8053, endpoints backend-1..3
//   10.96.99.99: a ClusterIP nobody defined, added to cluster-ips behind the agent's back
import test from 'ava';
import type { Topology } from '../../ts/demo/topology.js';
import { clusterFor, WEB_IP, WEB_IP6 } from './cluster.js';
import { ALL_BACKENDS, checkFlows } from './flows.js';

const FOREIGN_IP = '10.96.99.99';
/** Far below the 30 s sync period: a repair this fast came from the notifications. */
const REPAIR_BOUND_MS = 10_000;

const nft = async (topo: Topology, args: string[]) => (await topo.exec(topo.node, ['nft', ...args], { allowFailure: true })).stdout;

/** kproxy's rules as the demo Service needs them, in both families. */
async function intact(topo: Topology): Promise<boolean> {
  const [v4, v6, ips] = await Promise.all([
    nft(topo, ['list', 'map', 'ip', 'kube-proxy', 'service-ips']),
    nft(topo, ['list', 'map', 'ip6', 'kube-proxy', 'service-ips']),
    nft(topo, ['list', 'set', 'ip', 'kube-proxy', 'cluster-ips']),
  ]);
  return v4.includes(`${WEB_IP} . tcp . 80 `) && v6.includes(`${WEB_IP6} . tcp . 80 `) && ips.includes(WEB_IP) && !ips.includes(FOREIGN_IP);
}

async function metric(topo: Topology, name: string): Promise<number> {
  const text = (await topo.exec(topo.node, ['curl', '-sf', 'http://127.0.0.1:10249/metrics'])).stdout;
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}\\{[^}]*\\} (\\d+)$`, 'gm'))) sum += Number(m[1]);
  return sum;
}

/** Milliseconds until the rules are intact again, or undefined after `boundMs`. */
async function timeToRepair(topo: Topology, boundMs: number): Promise<number | undefined> {
  const start = performance.now();
  while (performance.now() - start < boundMs) {
    if (await intact(topo)) return performance.now() - start;
    await new Promise((r) => setTimeout(r, 20));
  }
  return undefined;
}

interface Drift {
  what: string;
  /** nft commands, run in the node namespace as another process would. */
  commands: string[][];
  /** The change took (checked before timing the repair). */
  took: (topo: Topology) => Promise<boolean>;
}

const DRIFTS: Drift[] = [
  { what: 'nft flush ruleset', commands: [['flush', 'ruleset']], took: async (topo) => !(await nft(topo, ['list', 'tables'])).includes('kube-proxy') },
  { what: 'nft delete table ip kube-proxy', commands: [['delete', 'table', 'ip', 'kube-proxy']], took: async (topo) => !(await nft(topo, ['list', 'tables'])).includes('table ip kube-proxy') },
  { what: 'nft delete table ip6 kube-proxy', commands: [['delete', 'table', 'ip6', 'kube-proxy']], took: async (topo) => !(await nft(topo, ['list', 'tables'])).includes('table ip6 kube-proxy') },
  { what: 'a deleted element (ip6 service-ips)', commands: [['delete', 'element', 'ip6', 'kube-proxy', 'service-ips', `{ ${WEB_IP6} . tcp . 80 }`]],
    took: async (topo) => !(await nft(topo, ['list', 'map', 'ip6', 'kube-proxy', 'service-ips'])).includes(`${WEB_IP6} . tcp . 80 `) },
  { what: 'a foreign element (ip cluster-ips)', commands: [['add', 'element', 'ip', 'kube-proxy', 'cluster-ips', `{ ${FOREIGN_IP} }`]],
    took: async (topo) => (await nft(topo, ['list', 'set', 'ip', 'kube-proxy', 'cluster-ips'])).includes(FOREIGN_IP) },
];

test.serial('drift is repaired from the ruleset notifications, well inside the sync period, for each kind of change', async (t) => {
  const c = await clusterFor(t, { name: 'drift' });
  t.true(await intact(c.topo), 'programmed before any drift');
  // The first syncs' own notifications settle before counting.
  await new Promise((r) => setTimeout(r, 500));
  const figures: string[] = [];
  for (const drift of DRIFTS) {
    const before = await metric(c.topo, 'kproxy_nftables_drift_repairs_total');
    for (const args of drift.commands) await c.topo.exec(c.topo.node, ['nft', ...args]);
    // Either it is still there to see, or the repair (counted) already undid it: the poll may beat the check.
    t.true(await drift.took(c.topo) || (await metric(c.topo, 'kproxy_nftables_drift_repairs_total')) > before, `${drift.what}: the change took`);
    const ms = await timeToRepair(c.topo, REPAIR_BOUND_MS);
    t.not(ms, undefined, `${drift.what}: not repaired within ${REPAIR_BOUND_MS} ms (the periodic sync is 30 s)\n${c.agent.logs().slice(-2000)}`);
    figures.push(`${drift.what}: repaired in ${ms?.toFixed(0)} ms`);
    t.true((await metric(c.topo, 'kproxy_nftables_drift_repairs_total')) > before, `${drift.what}: counted as a drift repair`);
    await checkFlows(t, c.topo, [
      { from: 'client', to: `${WEB_IP}:80`, proto: 'tcp', expect: ALL_BACKENDS(3), count: 15 },
      { from: 'client', to: `[${WEB_IP6}]:80`, proto: 'tcp', expect: ALL_BACKENDS(3), count: 15 },
    ]);
    // Past the pacing's first gap (1 s), so that each row is a first repair, not a fight.
    await new Promise((r) => setTimeout(r, 1200));
  }
  t.log(figures.join('\n'));
});

test.serial('a fight (the ruleset flushed every 100 ms) is paced and counted, and repaired once it stops', async (t) => {
  const c = await clusterFor(t, { name: 'fight' });
  await new Promise((r) => setTimeout(r, 500));
  const repairsBefore = await metric(c.topo, 'kproxy_nftables_drift_repairs_total');
  const FIGHT_MS = 6000;
  const start = performance.now();
  let flushes = 0;
  while (performance.now() - start < FIGHT_MS) {
    await c.topo.exec(c.topo.node, ['nft', 'flush', 'ruleset']);
    flushes++;
    await new Promise((r) => setTimeout(r, 100));
  }
  const repairs = (await metric(c.topo, 'kproxy_nftables_drift_repairs_total')) - repairsBefore;
  const delayed = await metric(c.topo, 'kproxy_nftables_drift_repairs_delayed_total');
  t.log(`${flushes} flushes in ${FIGHT_MS} ms: ${repairs} repairs (per family), ${delayed} delayed`);
  // Unpaced, each flush would cost a full sync per family; paced, the gaps double from 1 s.
  t.true(repairs >= 2, `repairs happened during the fight (${repairs})`);
  t.true(repairs <= 2 * 5, `paced: at most 5 repairs per family in ${FIGHT_MS} ms, got ${repairs} for ${flushes} flushes`);
  t.true(delayed > 0, 'the paced repairs are counted');
  // Once the other side stops, the next paced repair (at most one gap, ≤ 8 s here) restores it.
  const ms = await timeToRepair(c.topo, 20_000);
  t.not(ms, undefined, `not repaired after the fight\n${c.agent.logs().slice(-2000)}`);
  t.log(`repaired ${ms?.toFixed(0)} ms after the last flush`);
  t.is(c.agent.process.exitCode, null, 'the agent is still running');
});
