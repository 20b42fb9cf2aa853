// userspace mode's packet matrix and the rest (tests/netns/userspace-matrix.ts) on this kernel,
// which has no dummy driver: the Service addresses go on lo, marked as kproxy's.
import test from 'ava';
import { metricValue, waitWhileRunning } from '../helpers/agent.js';
import { clusterFor, WEB_IP } from './cluster.js';
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
