// IPVS mode on a kernel without IPVS (this machine's: ip_vs is not built): the agent tries
// modprobe ip_vs, as upstream does, then exits at startup with an error that says so and names
// the modes that work. The mode itself runs in the VM (tests/vm/ipvs-mode.vmtest.ts).
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { startAgent } from '../helpers/agent.js';
import { topologyFor } from './flows.js';
import { manifestDir, node, NODE_NAME } from './manifests.js';

test('without IPVS in the kernel, IPVS mode exits at startup and says which modes work', async (t) => {
  const hasIpvs = existsSync('/proc/net/ip_vs') || spawnSync('modprobe', ['-n', 'ip_vs']).status === 0;
  if (hasIpvs) {
    // Then this kernel can run the mode: the VM suite's matrix is its proof, not this test.
    t.log('this kernel has IPVS: nothing to check here');
    t.pass();
    return;
  }
  const topo = await topologyFor(t, { backends: 1, name: 'noipvs' });
  const manifests = await manifestDir(t);
  await manifests.write('node.yaml', node());
  const agent = startAgent(topo, { manifestsDir: manifests.dir, hostname: NODE_NAME, rulesetArgs: ['--proxy-mode', 'ipvs'] });
  t.teardown(() => agent.stop());
  const code = await Promise.race([agent.process.exited, new Promise((r) => setTimeout(() => r('still running'), 60_000))]);
  t.not(code, 0, 'the agent exits with a failure');
  t.not(code, 'still running', 'the agent exits');
  t.regex(agent.logs(), /IPVS mode needs the kernel's ip_vs module, and modprobe ip_vs failed/);
  t.regex(agent.logs(), /the nftables and iptables modes need no IPVS/);
  // Nothing half-made was left behind.
  t.notRegex((await topo.exec(topo.node, ['ip', 'link'])).stdout, /kube-ipvs0/);
  t.notRegex((await topo.exec(topo.node, ['nft', 'list', 'tables'])).stdout, /kproxy-ipvs/);
});
