// Full resyncs over an existing table are invisible to traffic: an established flow keeps
// working and no new connection fails while the agent rewrites everything.
//
// Address plan: client 192.168.100.2 / fd00:100::2; backend i 10.244.i.2 / fd00:244:0:i::2
//   web 10.96.0.10 / fd00:96::10: 80/TCP -> 8080, 53/UDP -> 8053, endpoints backend-1..3
import test from 'ava';
import type { HeldConnection } from '../../ts/demo/topology.js';
import { metricValue, startAgent, waitWhileRunning } from '../helpers/agent.js';
import { clusterFor, WEB_IP, WEB_IP6 } from './cluster.js';
import { assertAllAnswered, startTraffic } from './traffic.js';

const FULL_SYNCS = 'kubeproxy_sync_full_proxy_rules_duration_seconds_count';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** The echoed line, or what went wrong, so a broken flow fails an assertion rather than the test. */
const echo = (held: HeldConnection, line: string) => held.echo(line).catch((err: Error) => err.message);

test.serial('full resyncs on SIGHUP keep held flows and never fail a new connection', async (t) => {
  const { topo, agent } = await clusterFor(t, { name: 'sighup' });
  const held = await topo.holdTcp(topo.client, WEB_IP, 80);
  const held6 = await topo.holdTcp(topo.client, WEB_IP6, 80);
  t.like(held.greeting, { ok: true });
  t.like(held6.greeting, { ok: true });
  const { count: fullSyncsBefore } = await waitWhileRunning(agent, 'the metrics endpoint', async () => ({ count: await metricValue(topo, FULL_SYNCS) }));

  const stopTraffic = startTraffic(topo);
  for (let i = 0; i < 8; i++) {
    agent.signal('SIGHUP');
    await sleep(300);
    t.is(await echo(held, `ping-${i}`), `ping-${i}`, 'held IPv4 flow during resync');
    t.is(await echo(held6, `ping6-${i}`), `ping6-${i}`, 'held IPv6 flow during resync');
  }
  // Syncs are rate limited, so several SIGHUPs may make one sync; at least one must have run.
  await waitWhileRunning(agent, 'a full sync after SIGHUP', async () => await metricValue(topo, FULL_SYNCS) > fullSyncsBefore, 15_000);
  assertAllAnswered(t, await stopTraffic());
  t.is(agent.process.exitCode, null, 'the agent survived SIGHUP');
  t.is(await echo(held, 'after'), 'after');
  t.is(await echo(held6, 'after'), 'after');
  await held.close();
  await held6.close();
});

test.serial('restarting the agent keeps held flows and never fails a new connection', async (t) => {
  const { topo, agent, config } = await clusterFor(t, { name: 'restart' });
  const held = await topo.holdTcp(topo.client, WEB_IP, 80);
  t.like(held.greeting, { ok: true });

  const stopTraffic = startTraffic(topo);
  await sleep(500);
  // Like upstream, the rules stay in the kernel while no agent runs; the new one's first
  // (full) sync rewrites them over the existing table.
  await agent.stop();
  t.is(await echo(held, 'between agents'), 'between agents');
  const successor = startAgent(topo, config);
  t.teardown(() => successor.stop());
  await waitWhileRunning(successor, "the new agent's first full sync", async () => await metricValue(topo, FULL_SYNCS) > 0, 30_000);
  await sleep(500);
  assertAllAnswered(t, await stopTraffic());
  t.is(await echo(held, 'after restart'), 'after restart');
  await held.close();
});
