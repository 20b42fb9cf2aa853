// IPVS mode with real packets, inside the VM (tests/vm/lts-kernel.sh runs this file there with
// tests/vm/ava.config.mjs: this machine's kernel has no IPVS). The whole packet matrix
// (tests/netns/matrix.ts, the table every mode runs; this mode's exceptions are
// MODE_EXCEPTIONS.ipvs), then what the kernel holds read back against `kproxy plan`, graceful
// termination with a held connection, the mode switch both ways, and --cleanup.
import test from 'ava';
import { REPO_ROOT } from '../../ts/demo/topology.js';
import { AGENT_ENTRY, rulesetFlags, startAgent, waitForServiceIP, waitWhileRunning } from '../helpers/agent.js';
import { clusterFor, WEB_IP } from '../netns/cluster.js';
import { checkRows, EXTRA, FLOWS, MODE_EXCEPTIONS, type Group } from '../netns/matrix.js';
import { outsideFor } from '../netns/outside.js';

const GROUPS = [...new Set(FLOWS.map((r) => r[0]))] as Group[];
/** Under emulation the agent takes a minute or more to its first program. */
const READY_MS = 300_000;

/** The addresses `kproxy plan` puts on kube-ipvs0, both families (each "# kube-ipvs0" block). */
function planAddresses(plan: string): string[] {
  const out: string[] = [];
  let inBlock = false;
  for (const l of plan.split('\n')) {
    if (l === '# kube-ipvs0') inBlock = true;
    else if (inBlock && /^[0-9a-f:.]+$/.test(l)) out.push(`${l}/${l.includes(':') ? 128 : 32}`);
    else inBlock = false;
  }
  return out.sort();
}

/** ipvsadm-save's lines (plan, run on the node, puts NodePorts on the node's addresses too). */
function serviceLines(save: string): string[] {
  return save.split('\n').filter((l) => /^-[Aa] /.test(l)).sort();
}

test.serial('IPVS mode: the packet matrix, the kernel read back, graceful termination, mode switches, cleanup', async (t) => {
  const c = await clusterFor(t, {
    name: 'ipvs', extra: EXTRA, mode: 'ipvs', readyTimeoutMs: READY_MS,
    rulesetArgs: ['--ipvs-tcp-timeout', '901s', '--ipvs-udp-timeout', '301s', '--ipvs-strict-arp'],
    // nftables mode's leftovers, which an IPVS agent removes at start (a mode switch).
    beforeStart: async (topo) => void (await topo.exec(topo.node, ['nft', 'add', 'table', 'ip', 'kube-proxy'])),
  });
  const outside = await outsideFor(t, c.topo);
  const sh = async (cmd: string) => (await c.topo.exec(c.topo.node, ['sh', '-c', cmd], { allowFailure: true })).stdout;
  t.teardown(async () => {
    if (!t.passed) t.log(`ipvsadm -Ln:\n${await sh('ipvsadm -Ln')}\nkube-ipvs0:\n${await sh('ip addr show kube-ipvs0')}\nnft:\n${await sh('nft list table ip kproxy-ipvs')}`);
  });
  // Every ServicePort of the plan is programmed (the last manifests written): eTP Local's LB IP.
  await waitWhileRunning(c.agent, 'the eTP Local LoadBalancer IP', async () => (await sh('ipvsadm -Ln -t 198.51.100.72:80')).includes('10.244'), READY_MS);

  await checkRows(t, { ...c, outside }, GROUPS, MODE_EXCEPTIONS.ipvs);
  for (const [row, e] of Object.entries(MODE_EXCEPTIONS.ipvs)) t.log(`${row}: ${e.outcome} (${e.why})`);

  // The kernel holds what the model says: ipvsadm-save against `kproxy plan` on the same manifests.
  const plan = await c.topo.exec(c.topo.node, ['sh', '-c', `cd ${REPO_ROOT} && node ${AGENT_ENTRY.join(' ')} plan ${rulesetFlags(c.config).join(' ')} 2>/dev/null`]);
  t.deepEqual(serviceLines(await sh('ipvsadm-save -n')), serviceLines(plan.stdout), 'ipvsadm-save (-) vs kproxy plan (+)');
  const onDummy = [...(await sh('ip -o addr show dev kube-ipvs0')).matchAll(/ inet6? (\S+)/g)].map((m) => m[1]).sort();
  t.deepEqual(onDummy, planAddresses(plan.stdout), 'kube-ipvs0 (-) vs kproxy plan (+)');
  t.true(onDummy.length > 20, 'kube-ipvs0 holds the Service addresses');
  const dummy = await sh('ip addr show kube-ipvs0');
  for (const ip of ['10.96.0.10/32', 'fd00:96::10/128', '198.51.100.61/32', '192.0.2.63/32', '2001:db8:2::71/128']) t.true(dummy.includes(`inet${ip.includes(':') ? '6' : ''} ${ip}`), `kube-ipvs0 holds ${ip}`);
  t.false(dummy.includes('192.168.100.1'), 'node IPs stay off kube-ipvs0');
  t.regex(await sh('ipvsadm -Ln -t 10.96.0.65:80'), /persistent 2\b/, 'ClientIP affinity is IPVS persistence with the Service\'s timeout');
  t.regex(await sh('ipvsadm -Ln -t 192.168.100.1:30081'), /-> 10\.244\.1\.2:8080 +Masq +1 /, 'an eTP Local NodePort has its local endpoint');
  t.is(await sh('curl -sf http://127.0.0.1:10249/proxyMode'), 'ipvs');
  // upstream's KUBE-IPVS-FILTER: what the node listens on is not reached through a Service
  // address, only through its own; the node reaches its own source-ranged LoadBalancer IP.
  const listener = c.topo.spawnIn(c.topo.node, 'node', ['-e', "require('net').createServer((s) => s.end('HTTP/1.0 200 OK\\r\\n\\r\\nhost\\n')).listen(2222)"]);
  t.teardown(() => void listener.kill());
  await waitWhileRunning(c.agent, 'the host listener', async () => (await c.topo.tcpRequest(c.topo.client, '192.168.100.1', 2222, { timeoutMs: 2000 })).ok, 60_000);
  t.is((await c.topo.tcpRequest(c.topo.client, WEB_IP, 2222, { timeoutMs: 3000 })).error, 'refused', 'a host port through a ClusterIP is refused');
  t.is((await c.topo.tcpRequest(c.topo.client, '198.51.100.61', 2222, { timeoutMs: 3000 })).error, 'refused', '... and through a LoadBalancer IP');
  t.true((await c.topo.tcpRequests(c.topo.node, '198.51.100.64', 80, { count: 5, timeoutMs: 5000 })).every((r) => r.ok), 'the node reaches its source-ranged LoadBalancer IP');
  t.regex(await sh('curl -sf http://127.0.0.1:10249/metrics'), /kproxy_ipvs_virtual_servers\{ip_family="IPv4"\} [1-9]/);
  t.regex(await sh('ipvsadm -L --timeout'), /901 120 301/, '--ipvs-tcp-timeout and --ipvs-udp-timeout (tcpfin left as it was)');
  t.notRegex(await sh('nft list tables'), /table ip kube-proxy\b/, 'nftables mode\'s leftover table was removed at start');
  for (const [k, v] of [['net/ipv4/conf/all/arp_ignore', '1'], ['net/ipv4/conf/all/arp_announce', '2'], ['net/ipv4/vs/conntrack', '1'], ['net/ipv4/vs/expire_nodest_conn', '1'], ['net/ipv4/vs/expire_quiescent_template', '1']]) {
    t.is((await sh(`cat /proc/sys/${k}`)).trim(), v, k);
  }

  // Drift between syncs (the sync period is 30 s): a deleted or edited virtual server of
  // kproxy's is put back within about a second, and counted.
  for (const [what, cmd, back] of [
    ['deleted', `ipvsadm -D -t ${WEB_IP}:80`, (l: string) => / rr\b/.test(l) && /10\.244\.\d\.2:8080/.test(l)],
    ['given another scheduler', `ipvsadm -E -t ${WEB_IP}:80 -s wrr`, (l: string) => / rr\b/.test(l)],
  ] as const) {
    await sh(cmd);
    const changed = performance.now();
    await waitWhileRunning(c.agent, `the virtual server ${what}, put back`, async () => back(await sh(`ipvsadm -Ln -t ${WEB_IP}:80`)), READY_MS);
    t.log(`virtual server ${what} → put back in ${((performance.now() - changed) / 1000).toFixed(2)} s`);
  }
  t.regex(await sh('curl -sf http://127.0.0.1:10249/metrics'), /kproxy_ipvs_drift_repairs_total\{ip_family="IPv4"\} [2-9]/, 'both repairs counted');

  // Graceful termination: the endpoint a held connection uses leaves; it drains at weight 0,
  // the held connection keeps working, and new connections go elsewhere.
  const held = await c.topo.holdTcp(c.topo.client, WEB_IP, 80);
  t.true(held.greeting.ok, 'a connection is held');
  const gone = held.greeting.backend ?? '';
  const index = Number(gone.split('-')[1]);
  await c.setWebEndpoints([1, 2, 3].filter((i) => i !== index));
  const rs = `10.244.${index}.2:8080`;
  await waitWhileRunning(c.agent, `${rs} at weight 0`, async () => new RegExp(`-> ${rs.replaceAll('.', '\\.')} +Masq +0 `).test(await sh(`ipvsadm -Ln -t ${WEB_IP}:80`)), READY_MS);
  t.is(await held.echo('still here', 10_000), 'still here', 'the held connection to the draining endpoint works');
  const fresh = await c.topo.tcpRequests(c.topo.client, WEB_IP, 80, { count: 20, timeoutMs: 5000 });
  t.false(fresh.some((r) => r.backend === gone), `new connections avoid ${gone}`);
  t.true(fresh.every((r) => r.ok), 'new connections are answered');
  await held.close();
  // UDP real servers go at once.
  t.notRegex(await sh(`ipvsadm -Ln -u ${WEB_IP}:53`), new RegExp(`10\\.244\\.${index}\\.2:8053`), 'the UDP real server is deleted at once');

  // A mode switch: an nftables agent removes kproxy's virtual servers, kube-ipvs0 and its
  // table at start; a foreign virtual server stays. Then --cleanup (every mode) leaves it too.
  await c.agent.stop();
  // (Added once the IPVS agent is gone: it would delete a virtual server it does not want.)
  await sh('ipvsadm -A -t 203.0.113.99:80 -s rr');
  const nft = startAgent(c.topo, { ...c.config, rulesetArgs: [] });
  t.teardown(() => nft.stop());
  await waitForServiceIP(c.topo, nft, WEB_IP, READY_MS);
  t.is((await sh('ipvsadm-save -n')).trim(), '-A -t 203.0.113.99:80 -s rr', 'only the foreign virtual server is left');
  t.not((await c.topo.exec(c.topo.node, ['ip', 'link', 'show', 'kube-ipvs0'], { allowFailure: true })).code, 0, 'kube-ipvs0 is gone');
  t.notRegex(await sh('nft list tables'), /kproxy-ipvs/, 'the IPVS table is gone');
  await nft.stop();
  const r = await c.topo.exec(c.topo.node, ['sh', '-c', `cd ${REPO_ROOT} && node ${AGENT_ENTRY.join(' ')} --cleanup`], { allowFailure: true });
  t.is(r.code, 0, `${r.stdout}${r.stderr}`);
  t.is((await sh('ipvsadm-save -n')).trim(), '-A -t 203.0.113.99:80 -s rr', '--cleanup leaves the foreign virtual server');
  t.notRegex(await sh('nft list tables'), /kube-proxy|kproxy-ipvs/, '--cleanup removes every mode\'s table');
});
