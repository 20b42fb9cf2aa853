// kproxy's iptables ruleset and upstream kube-proxy's, on one node: upstream's --cleanup removes
// all of kproxy's chains, dispatch tree included, and upstream in iptables mode takes over
// from kproxy (its stale-chain deletion knows kproxy's chains, so its restores keep working
// as Services come and go). The dispatch chains are named KUBE-SVC- for exactly this.
import test from 'ava';
import { join } from 'node:path';
import { waitFor } from '../../ts/demo/topology.js';
import { DISPATCH_ENV } from '../../ts/modes/iptables/proxier.js';
import { startAgent, waitForServiceRule } from '../helpers/agent.js';
import { K8S_BIN } from '../helpers/control-plane.js';
import { endpointSlice, NODE_NAME, service } from '../netns/manifests.js';
import { bedFor, spawnUpstream, WEB_IP } from './bed.js';

// The tree from the first rule on (ava runs each file in its own process).
process.env[DISPATCH_ENV] = '0';
const EXTRA_SERVICES = 40;

test.serial('upstream kube-proxy cleans up and takes over kproxy\'s iptables rules, dispatch tree included', async (t) => {
  const bed = await bedFor(t, 'k8s-ipt-ho');
  const { topo, cp } = bed;
  // Enough ClusterIPs in one prefix for KUBE-SERVICES to dispatch.
  for (let i = 0; i < EXTRA_SERVICES; i++) {
    await cp.apply(service(`svc-${i}`, [`10.96.1.${i + 1}`]), endpointSlice(`svc-${i}`, 'IPv4', [topo.backends[0].v4]));
  }
  const save = async () => (await topo.exec(topo.node, ['iptables-save'])).stdout;
  const path = (process.env.PATH ?? '').split(':').filter((d) => d && !d.includes('node_modules')).join(':');
  const kproxy = async () => {
    const agent = startAgent(topo, { kubeconfig: cp.kubeconfig('kproxy'), hostname: NODE_NAME, syncPeriod: '1s', rulesetArgs: ['--proxy-mode', 'iptables'] });
    t.teardown(() => agent.stop());
    await waitForServiceRule(topo, agent, '10.96.1.40', 60_000);
    await waitForServiceRule(topo, agent, WEB_IP, 60_000);
    t.regex(await save(), /--comment "kproxy dispatch /, 'KUBE-SERVICES dispatches');
    t.is(await bed.answered(), 'backend-1,backend-2');
    await agent.stop();
  };

  // 1. kproxy's rules, then upstream's --cleanup: nothing of kproxy's stays.
  await kproxy();
  const r = await topo.exec(topo.node, ['env', `PATH=${path}:/usr/sbin:/sbin`, join(K8S_BIN, 'kube-proxy'), '--cleanup'], { allowFailure: true });
  t.is(r.code, 0, `${r.stdout}${r.stderr}`);
  t.notRegex(await save(), /KUBE-(SVC|SVL|EXT|FW|SEP)-|KUBE-SERVICES|kproxy dispatch/, 'upstream --cleanup removed every chain of kproxy\'s');

  // 2. kproxy's rules again, then upstream in iptables mode on the same node.
  await kproxy();
  const upstream = spawnUpstream(bed, 'iptables');
  t.teardown(() => upstream.stop());
  await waitFor('upstream\'s flat KUBE-SERVICES, kproxy\'s tree gone', async () => {
    const s = await save();
    return s.includes(`-A KUBE-SERVICES -d ${WEB_IP}/32`) && !s.includes('kproxy dispatch');
  }, { timeoutMs: 60_000 });
  t.is(await bed.answered(), 'backend-1,backend-2');
  // A Service goes: upstream's restore deletes its chains, so kproxy's leftovers must not block it.
  await cp.kubectl(['delete', 'service', 'svc-3']);
  await waitFor('upstream to delete svc-3\'s rules', async () => !(await save()).includes('default/svc-3:'), { timeoutMs: 30_000 });
  t.is(await bed.answered(), 'backend-1,backend-2');
  t.notRegex(upstream.logs(), /Failed to execute iptables-restore/, 'every upstream restore landed');
});
