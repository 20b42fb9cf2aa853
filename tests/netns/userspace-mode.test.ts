// userspace mode's packet matrix and the rest (tests/netns/userspace-matrix.ts) on this kernel,
// which has no dummy driver: the Service addresses go on lo, marked as kproxy's.
import test from 'ava';
import { metricValue, waitWhileRunning } from '../helpers/agent.js';
import { clusterFor, WEB_IP, WEB_IP6 } from './cluster.js';
import { userspaceMatrix } from './userspace-matrix.js';

test.serial('the packet matrix in userspace mode, on lo, with no netfilter state', (t) => userspaceMatrix(t, 'lo'));

test.serial('userspace mode: --userspace-max-connections resets the connection over the cap, and counts it', async (t) => {
  const c = await clusterFor(t, { name: 'uscap', mode: 'userspace', rulesetArgs: ['--userspace-max-connections', '1'] });
  const held = await c.topo.holdTcp(c.topo.client, WEB_IP, 80);
  t.true(held.greeting.ok, 'the first connection is relayed');
  const over = await c.topo.tcpRequest(c.topo.client, WEB_IP, 80, { timeoutMs: 2000 });
  t.is(over.ok ? 'answered' : over.error, 'reset', 'the second, over the cap of 1, is reset');
  t.is(await metricValue(c.topo, 'kproxy_userspace_connections_failed_total', { service: 'default/web:http', ip_family: 'IPv4', reason: 'limit' }), 1);
  t.is(await metricValue(c.topo, 'kproxy_userspace_connections_active', { service: 'default/web:http', ip_family: 'IPv4' }), 1);
  await held.close();
  await waitWhileRunning(c.agent, 'a new connection once the first has ended', async () => (await c.topo.tcpRequest(c.topo.client, WEB_IP, 80)).ok);
});

test.serial('userspace mode: Service addresses removed from the link come back within about a second, and are counted', async (t) => {
  // A sync period far longer than the test: only the drift check can put them back.
  const c = await clusterFor(t, { name: 'usdrift', mode: 'userspace', syncPeriod: '10m' });
  const ours = async () => (await c.topo.exec(c.topo.node, ['ip', '-o', 'addr', 'show', 'dev', 'lo'])).stdout;
  const removed = [`${WEB_IP}/32`, `${WEB_IP6}/128`];
  for (const ip of removed) t.true((await ours()).includes(ip), `${ip} is on lo`);
  // Both at once: each family's monitor finds its own, a first repair each (none paced).
  for (const ip of removed) await c.topo.exec(c.topo.node, ['ip', 'addr', 'del', ip, 'dev', 'lo']);
  const start = performance.now();
  const figures: string[] = [];
  await waitWhileRunning(c.agent, 'both addresses back on lo', async () => {
    const now = await ours();
    for (const ip of removed) if (now.includes(ip) && !figures.some((f) => f.startsWith(ip))) figures.push(`${ip} back in ${((performance.now() - start) / 1000).toFixed(2)} s`);
    return figures.length === removed.length;
  }, 10_000);
  t.log(figures.join('; '));
  for (const ip of [WEB_IP, WEB_IP6]) t.true((await c.topo.tcpRequest(c.topo.client, ip, 80)).ok, `${ip} answers again`);
  t.is(await metricValue(c.topo, 'kproxy_userspace_drift_repairs_total'), 2, 'one repair per family');
  t.is(await metricValue(c.topo, 'kproxy_userspace_drift_repairs_delayed_total'), 0);
});
