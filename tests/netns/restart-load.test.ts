// Restart under load, in each kernel mode this host has (IPVS mode is in tests/vm; userspace mode
// relays in the agent's process, so its connections end with it, docs/design.md):
// the agent is stopped and started 20 times while new connections flow
// to the web Service (IPv4 and IPv6 TCP, IPv4 UDP, several loops each) and its endpoints
// churn; not one connection may fail, and held flows (one per family) must survive it all.
// A UDP request may resend once, as a resolver does: as upstream's, the stale-flow reconciler
// deletes the flows to a removed endpoint after the commit, and a reply still in flight to
// one (these backends live on) comes back un-NATed and is lost. RESTARTS=<n> runs more.
import test from 'ava';
import { metricValue, startAgent, waitWhileRunning, type Agent } from '../helpers/agent.js';
import { clusterFor, WEB_IP, WEB_IP6 } from './cluster.js';
import { assertAllAnswered, startTraffic } from './traffic.js';

const RESTARTS = Number(process.env.RESTARTS ?? 20);
const FULL_SYNCS = 'kubeproxy_sync_full_proxy_rules_duration_seconds_count';
const CONNTRACK_PASSES = 'kubeproxy_conntrack_reconciler_sync_duration_seconds_count';
const CONNTRACK_DELETED = 'kubeproxy_conntrack_reconciler_deleted_entries_total';
// Endpoint sets cycled through while restarting; every set keeps at least one backend.
const CHURN = [[1, 2, 3], [1, 2], [2, 3], [3], [1, 3], [1]];

for (const mode of ['nftables', 'iptables'] as const) test.serial(`${mode}: ${RESTARTS} restarts under load with churning endpoints: no failed connection, no held flow dropped`, async (t) => {
  t.timeout(600_000);
  const c = await clusterFor(t, { name: `rst${mode.slice(0, 3)}`, mode });
  const held = await c.topo.holdTcp(c.topo.client, WEB_IP, 80);
  const held6 = await c.topo.holdTcp(c.topo.client, WEB_IP6, 80);
  t.like(held.greeting, { ok: true });
  t.like(held6.greeting, { ok: true });
  let agent: Agent = c.agent;
  t.teardown(() => agent.stop());
  const started = performance.now();
  const stopTraffic = startTraffic(c.topo, 2, { count: 200, intervalMs: 0, udpAttempts: 2 });
  let staleDeleted = 0;
  const stops: number[] = [];
  const starts: number[] = [];
  const stoppedAt: string[] = [];
  // Once the IPv4 reconciler's first pass has run, what it deleted is final for this agent.
  const ipv4 = { ip_family: 'IPv4' };
  const countStale = async (what: string) => {
    await waitWhileRunning(agent, `${what}: the first conntrack pass`, async () => await metricValue(c.topo, CONNTRACK_PASSES, ipv4) > 0, 30_000);
    staleDeleted += await metricValue(c.topo, CONNTRACK_DELETED, ipv4);
  };
  for (let i = 0; i < RESTARTS; i++) {
    await countStale(i ? `restart ${i}` : 'the first agent');
    await c.setWebEndpoints(CHURN[i % CHURN.length]);
    const stopping = performance.now();
    stoppedAt.push(((stopping - started) / 1000).toFixed(1));
    await agent.stop();
    stops.push(performance.now() - stopping);
    // No agent: the rules stay in the kernel, as upstream's do; the churn waits for the next one.
    await c.setWebEndpoints(CHURN[(i + 1) % CHURN.length]);
    const starting = performance.now();
    agent = startAgent(c.topo, c.config);
    const next = agent;
    await waitWhileRunning(next, `restart ${i + 1}: the first full sync`, async () => await metricValue(c.topo, FULL_SYNCS) > 0, 30_000);
    starts.push(performance.now() - starting);
    // A dropped flow is reset or never answers; a late answer on a busy machine is not a drop.
    t.is(await held.echo(`ping-${i}`, 5000).catch((e: Error) => e.message), `ping-${i}`, `held IPv4 flow after restart ${i + 1}`);
    t.is(await held6.echo(`ping6-${i}`, 5000).catch((e: Error) => e.message), `ping6-${i}`, `held IPv6 flow after restart ${i + 1}`);
  }
  await countStale(`restart ${RESTARTS}`);
  const results = await stopTraffic();
  const seconds = (performance.now() - started) / 1000;
  const worst = (ms: number[]) => `max ${(Math.max(...ms) / 1000).toFixed(2)} s, median ${(ms.sort((a, b) => a - b)[ms.length >> 1] / 1000).toFixed(2)} s`;
  t.log(`${RESTARTS} restarts in ${seconds.toFixed(1)} s; ${results.length} new connections (${(results.length / seconds).toFixed(0)}/s)`);
  t.log(`stop: ${worst(stops)}; start to first full sync: ${worst(starts)}`);
  if (results.some((r) => !r.ok)) t.log(`agent stopped at (s): ${stoppedAt.join(' ')}`);
  assertAllAnswered(t, results);
  // Each reply lost that way is one flow the reconcilers deleted.
  const resent = results.filter((r) => r.ok && r.retried).length;
  t.log(`stale UDP flows deleted: ${staleDeleted}; requests answered on a resend: ${resent}`);
  t.true(resent <= staleDeleted, 'more resends than deleted flows: something else lost UDP replies');
  await held.close();
  await held6.close();
});
