// iptables mode over time, with real packets: an endpoint change is a partial restore (it
// writes a few chains, not the ruleset); when someone flushes the tables (a firewalld
// reload), the canary chain's absence brings every rule back within a sync period; and
// starting in another mode removes this mode's rules, and the reverse, as upstream.
import test from 'ava';
import { metricValue, startAgent, waitForServiceIP, waitForServiceRule, waitWhileRunning } from '../helpers/agent.js';
import { clusterFor, WEB_IP, WEB_IP6 } from './cluster.js';
import { ALL_BACKENDS, checkFlows, tally } from './flows.js';
import { EXTRA, NODE_IP } from './matrix.js';

const TOTAL = 'kubeproxy_sync_proxy_rules_iptables_total';
const LAST = 'kubeproxy_sync_proxy_rules_iptables_last';

test.serial('an endpoint change writes only its chains, and traffic follows', async (t) => {
  const c = await clusterFor(t, { name: 'ipt-part', mode: 'iptables' });
  await checkFlows(t, c.topo, [{ from: 'client', to: `${WEB_IP}:80`, proto: 'tcp', expect: ALL_BACKENDS(3), count: 30 }]);
  await c.setWebEndpoints([1, 2]);
  await waitWhileRunning(c.agent, 'backend-3 to stop answering', async () => !tally(await c.topo.tcpRequests(c.topo.client, WEB_IP, 80, { count: 30 }))['backend-3']);
  await checkFlows(t, c.topo, [
    { from: 'client', to: `${WEB_IP}:80`, proto: 'tcp', expect: ['backend-1', 'backend-2'], count: 40 },
    { from: 'client', to: `${WEB_IP}:53`, proto: 'udp', expect: ['backend-1', 'backend-2'], count: 40 },
    { from: 'client', to: `[${WEB_IP6}]:80`, proto: 'tcp', expect: ['backend-1', 'backend-2'], count: 40 },
  ]);
  // The last restore wrote the web ServicePorts' KUBE-SVC chains (each: the masquerade rule and
  // two balancing rules), no KUBE-SEP (both stayed) and no filter rule: a handful of the rules.
  const ipv4 = { ip_family: 'IPv4' };
  const [total, last, filterLast] = await Promise.all([
    metricValue(c.topo, TOTAL, { ...ipv4, table: 'nat' }),
    metricValue(c.topo, LAST, { ...ipv4, table: 'nat' }),
    metricValue(c.topo, LAST, { ...ipv4, table: 'filter' }),
  ]);
  // (A periodic sync in between would have written nothing: 0.)
  t.true(last <= 6, `nat rules written by the last sync: ${last}`);
  t.true(total > 3 * last, `nat rules owned: ${total}`);
  t.is(filterLast, 0);
  t.is(await metricValue(c.topo, 'kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total', ipv4), 0);
});

test.serial('a flushed ruleset comes back in full (the canary)', async (t) => {
  const c = await clusterFor(t, { name: 'ipt-canary', mode: 'iptables', syncPeriod: '1s' });
  await checkFlows(t, c.topo, [{ from: 'client', to: `${WEB_IP}:80`, proto: 'tcp', expect: ALL_BACKENDS(3), count: 20 }]);
  // What a firewalld reload does to every table: rules flushed, user chains deleted.
  for (const table of ['nat', 'filter', 'mangle']) {
    await c.topo.exec(c.topo.node, ['sh', '-c', `iptables -t ${table} -F && iptables -t ${table} -X`]);
  }
  t.notRegex((await c.topo.exec(c.topo.node, ['iptables-save', '-t', 'nat'])).stdout, /KUBE-/, 'the flush took everything');
  await waitForServiceRule(c.topo, c.agent, WEB_IP, 15_000);
  await checkFlows(t, c.topo, [
    { from: 'client', to: `${WEB_IP}:80`, proto: 'tcp', expect: ALL_BACKENDS(3), count: 30 },
    { from: 'client', to: `${WEB_IP}:53`, proto: 'udp', expect: ALL_BACKENDS(3), count: 30 },
    // IPv6 was never touched, and still works.
    { from: 'client', to: `[${WEB_IP6}]:80`, proto: 'tcp', expect: ALL_BACKENDS(3), count: 30 },
  ]);
  t.regex(c.agent.logs(), /KUBE-PROXY-CANARY is gone/);
  // The jumps from the built-in chains came back with it.
  t.regex((await c.topo.exec(c.topo.node, ['iptables-save', '-t', 'nat'])).stdout, /^-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES$/m);
});

test.serial('starting in another mode removes the rules of this one, and the reverse', async (t) => {
  const c = await clusterFor(t, { name: 'ipt-switch', mode: 'iptables' });
  const natSave = async () => (await c.topo.exec(c.topo.node, ['iptables-save', '-t', 'nat'])).stdout;
  const tables = async () => (await c.topo.exec(c.topo.node, ['nft', 'list', 'tables'])).stdout;
  t.regex(await natSave(), /^:KUBE-SERVICES /m);
  await c.agent.stop();

  // nftables mode (the default) takes over: the iptables rules go before it programs its own.
  const nft = startAgent(c.topo, { ...c.config, rulesetArgs: [] });
  t.teardown(() => nft.stop());
  await waitForServiceIP(c.topo, nft, WEB_IP);
  t.notRegex(await natSave(), /KUBE-(SERVICES|SVC-|SEP-)/, 'the iptables mode rules are gone');
  t.regex(await tables(), /^table ip kube-proxy$/m);
  await checkFlows(t, c.topo, [{ from: 'client', to: `${WEB_IP}:80`, proto: 'tcp', expect: ALL_BACKENDS(3), count: 20 }]);
  await nft.stop();

  // And back: iptables mode deletes the kube-proxy nftables tables.
  const ipt = startAgent(c.topo, c.config);
  t.teardown(() => ipt.stop());
  await waitForServiceRule(c.topo, ipt, WEB_IP);
  t.notRegex(await tables(), /kube-proxy/, 'the nftables mode tables are gone');
  await checkFlows(t, c.topo, [
    { from: 'client', to: `${WEB_IP}:80`, proto: 'tcp', expect: ALL_BACKENDS(3), count: 20 },
    { from: 'client', to: `[${WEB_IP6}]:80`, proto: 'tcp', expect: ALL_BACKENDS(3), count: 20 },
  ]);
});

test.serial('without localhost NodePorts 127.0.0.1 refuses; with tcp_be_liberal no INVALID drop', async (t) => {
  const c = await clusterFor(t, {
    name: 'ipt-opts',
    mode: 'iptables',
    extra: EXTRA,
    rulesetArgs: ['--iptables-localhost-nodeports=false', '--conntrack-tcp-be-liberal'],
  });
  const sysctl = async (name: string) => (await c.topo.exec(c.topo.node, ['sysctl', '-n', name])).stdout.trim();
  t.is(await sysctl('net.netfilter.nf_conntrack_tcp_be_liberal'), '1', 'set by --conntrack-tcp-be-liberal');
  t.is(await sysctl('net.ipv4.conf.all.route_localnet'), '0', 'left alone without localhost NodePorts');
  await waitWhileRunning(c.agent, 'the NodePort', async () => (await c.topo.exec(c.topo.node, ['iptables-save'])).stdout.includes('--dport 30080 -j KUBE-EXT-'));
  const save = (await c.topo.exec(c.topo.node, ['iptables-save'])).stdout;
  t.notRegex(save, /block incoming localnet connections/);
  t.notRegex(save, /--ctstate INVALID/);
  t.regex(save, /^-A KUBE-SERVICES ! -d 127\.0\.0\.0\/8 -m comment --comment "kubernetes service nodeports;/m);
  await checkFlows(t, c.topo, [
    { from: 'node', to: '127.0.0.1:30080', proto: 'tcp', expect: 'refused', count: 2 },
    { from: 'client', to: `${NODE_IP}:30080`, proto: 'tcp', expect: ALL_BACKENDS(3), count: 30 },
  ]);
});
