// iptables mode with real packets: the whole packet matrix (tests/netns/matrix.ts, the table
// every mode runs; its exceptions for this mode are MODE_EXCEPTIONS.iptables), through the
// agent on manifests, in both families, on each of Debian's iptables backends: nft (the
// default), and legacy, which the agent picks because the kubelet's KUBE-IPTABLES-HINT is
// there (backend.ts). Here nat KUBE-SERVICES is always a dispatch tree (its threshold 0); the
// VM suite's demo runs upstream's flat layout, which small clusters keep. On the nft backend
// the agent applies each sync here in many small restores (KPROXY_IPTABLES_MAX_JUMPS), as it
// does at scale.
import test from 'ava';
import { REPO_ROOT } from '../../ts/demo/topology.js';
import { DISPATCH_ENV, MAX_JUMPS_ENV } from '../../ts/modes/iptables/proxier.js';
import { AGENT_ENTRY, waitWhileRunning } from '../helpers/agent.js';
import { clusterFor } from './cluster.js';
import { checkRows, EXTRA, FLOWS, MODE_EXCEPTIONS, type Group } from './matrix.js';
import { outsideFor } from './outside.js';

const GROUPS = [...new Set(FLOWS.map((r) => r[0]))] as Group[];
// Read by the agents this file starts (ava runs each file in its own process): the tree
// everywhere, and on the nft backend every sync in restores of at most 8 jump rules.
process.env[DISPATCH_ENV] = '0';
process.env[MAX_JUMPS_ENV] = '8';

for (const backend of ['nft', 'legacy'] as const) {
  test.serial(`the packet matrix in iptables mode, ${backend} backend`, async (t) => {
    const other = backend === 'nft' ? 'legacy' : 'nft';
    const c = await clusterFor(t, {
      name: `ipt-${backend}`,
      extra: EXTRA,
      mode: 'iptables',
      // What the kubelet leaves on a legacy node: its hint chain, in legacy's mangle table.
      beforeStart: backend === 'legacy'
        ? async (topo) => {
          for (const tool of ['iptables-legacy', 'ip6tables-legacy']) await topo.exec(topo.node, [tool, '-t', 'mangle', '-N', 'KUBE-IPTABLES-HINT']);
        }
        : undefined,
    });
    const outside = await outsideFor(t, c.topo);
    const save = async (tool: string) => (await c.topo.exec(c.topo.node, [tool], { allowFailure: true })).stdout;
    t.teardown(async () => {
      if (!t.passed) t.log(`iptables-${backend}-save (node namespace):\n${await save(`iptables-${backend}-save`)}\nip6tables-${backend}-save:\n${await save(`ip6tables-${backend}-save`)}`);
    });
    await waitWhileRunning(c.agent, 'the NodePorts in both families', async () => {
      const dumps = await Promise.all([`iptables-${backend}-save`, `ip6tables-${backend}-save`].map(save));
      return dumps.every((d) => d.includes('--dport 30080 -j KUBE-EXT-'));
    });
    t.regex(await save(`iptables-${backend}-save`), /^-A KUBE-SERVICES -d \S+ -m comment --comment "kproxy dispatch \S+" -j KUBE-SVC-[A-Z2-7]{16}$/m, 'KUBE-SERVICES dispatches');
    t.notRegex(await save(`iptables-${other}-save`), /KUBE-SERVICES/, `nothing written to the ${other} backend`);
    t.regex(c.agent.logs(), new RegExp(`"backend":"${backend}"`));
    await checkRows(t, { ...c, outside }, GROUPS, MODE_EXCEPTIONS.iptables);
    for (const [row, e] of Object.entries(MODE_EXCEPTIONS.iptables)) t.log(`${row}: ${e.outcome} (${e.why})`);
    // /proxyMode and the mode's own metrics, as upstream's.
    const mode = await c.topo.exec(c.topo.node, ['curl', '-sf', 'http://127.0.0.1:10249/proxyMode']);
    t.is(mode.stdout, 'iptables');
    const metrics = (await c.topo.exec(c.topo.node, ['curl', '-sf', 'http://127.0.0.1:10249/metrics'])).stdout;
    t.regex(metrics, /kubeproxy_sync_proxy_rules_iptables_total\{ip_family="IPv4",table="nat"\} [1-9]/);
    t.regex(metrics, /kubeproxy_sync_proxy_rules_iptables_restore_failures_total\{ip_family="IPv6"\} 0\n/);

    // --cleanup removes what upstream's CleanupLeftovers does, and nothing else: the
    // per-Service chains, KUBE-SERVICES, KUBE-NODEPORTS, KUBE-POSTROUTING, KUBE-EXTERNAL-SERVICES,
    // KUBE-FORWARD and their jumps. KUBE-FIREWALL (the kubelet's too) and KUBE-MARK-MASQ stay.
    await c.topo.exec(c.topo.node, [`iptables-${backend}`, '-A', 'INPUT', '-s', '198.18.0.1/32', '-j', 'ACCEPT']);
    await c.agent.stop();
    const r = await c.topo.exec(c.topo.node, ['sh', '-c', `cd ${REPO_ROOT} && node ${AGENT_ENTRY.join(' ')} --cleanup --proxy-mode iptables`], { allowFailure: true });
    t.is(r.code, 0, `${r.stdout}${r.stderr}`);
    for (const tool of [`iptables-${backend}-save`, `ip6tables-${backend}-save`]) {
      const after = await save(tool);
      const gone = /^:KUBE-(SVC|SVL|EXT|FW|SEP)-|^:KUBE-(SERVICES|NODEPORTS|POSTROUTING|EXTERNAL-SERVICES|FORWARD) |-j KUBE-(SERVICES|NODEPORTS|POSTROUTING|EXTERNAL-SERVICES|FORWARD|PROXY-FIREWALL|SVC-|EXT-|FW-|SEP-)/m;
      t.notRegex(after, gone, `${tool} after --cleanup`);
      t.regex(after, /-A INPUT -j KUBE-FIREWALL/, `${tool}: the kubelet's KUBE-FIREWALL stays, as upstream leaves it`);
    }
    t.regex(await save(`iptables-${backend}-save`), /-A INPUT -s 198\.18\.0\.1\/32 -j ACCEPT/, 'a rule kproxy does not own stays');
  });
}
