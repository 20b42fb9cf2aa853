// The agent on the API path, end to end with real packets: Services and
// EndpointSlices come from a fake API server (real list/watch wire protocol)
// running in the node namespace. Outages never remove rules; the watch comes
// back after an apiserver restart and later changes still land.
import test from 'ava';
import { CLUSTER_CIDRS, waitFor } from '../../ts/demo/topology.js';
import { AGENT_ENTRY, requireAgent, waitForServiceIP, waitForServiceIPGone, type Agent } from '../helpers/agent.js';
import { tally, topologyFor } from './flows.js';
import { endpointSlice, node, NODE_NAME, service } from './manifests.js';

const WEB_IP = '10.96.0.20';

test.serial('Services from the API server are proxied, survive an apiserver outage, and follow later changes', async (t) => {
  requireAgent();
  const topo = await topologyFor(t, { backends: 2, name: 'api' });
  const api = topo.spawnIn(topo.node, 'node', ['--import', 'tsx', 'tests/helpers/apiserver-main.ts']);
  let url = '';
  await waitFor('the fake API server to listen', async () => {
    url = /ready (\S+)/.exec(api.output())?.[1] ?? '';
    return url !== '';
  }, { timeoutMs: 20_000 });
  let sent = 0;
  const send = async (cmd: object) => {
    sent += 1;
    api.stdin!.write(`${JSON.stringify(cmd)}\n`);
    const want = sent;
    await waitFor('the API server to apply a command', async () => (api.output().match(/^done /gm)?.length ?? 0) >= want, { timeoutMs: 10_000 });
  };
  const [b1, b2] = topo.backends;
  await send({ op: 'upsert', resource: 'nodes', obj: node() });
  await send({ op: 'upsert', resource: 'services', obj: service('web', [WEB_IP]) });
  await send({ op: 'upsert', resource: 'endpointslices', obj: endpointSlice('web', 'IPv4', [b1.v4, b2.v4]) });

  const child = topo.spawnIn(topo.node, 'node', [
    ...AGENT_ENTRY,
    '--proxy-mode', 'nftables',
    '--master', url,
    '--cluster-cidr', CLUSTER_CIDRS.join(','),
    '--hostname-override', NODE_NAME,
    '--iptables-sync-period', '1s',
    '--metrics-bind-address', '127.0.0.1:10249',
    '-v', '2',
  ]);
  const agent: Agent = { process: child, logs: () => child.output(), signal: (s) => child.kill(s), stop: async () => void child.kill('SIGTERM') };
  t.teardown(() => {
    if (!t.passed) t.log(`agent output (tail):\n${agent.logs().slice(-3000)}`);
  });
  await waitForServiceIP(topo, agent, WEB_IP);
  const answered = async () => Object.keys(tally(await topo.tcpRequests(topo.client, WEB_IP, 80, { count: 40 }))).sort();
  t.deepEqual(await answered(), ['backend-1', 'backend-2'], 'both endpoints from the API answer');

  // The apiserver goes away: several sync periods later, nothing was removed.
  await send({ op: 'stop' });
  await new Promise((r) => setTimeout(r, 4000));
  t.deepEqual(await answered(), ['backend-1', 'backend-2'], 'rules stay while the API server is unreachable');

  // It comes back; the agent resumes watching and applies a change made afterwards.
  await send({ op: 'start' });
  await send({ op: 'upsert', resource: 'endpointslices', obj: endpointSlice('web', 'IPv4', [b2.v4]) });
  await waitFor('only backend-2 to answer', async () => (await answered()).join() === 'backend-2', { timeoutMs: 60_000 });

  await send({ op: 'remove', resource: 'services', namespace: 'default', name: 'web' });
  await waitForServiceIPGone(topo, agent, WEB_IP, 60_000);
  t.pass();
});
