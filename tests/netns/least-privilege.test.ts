// The agent as the DaemonSet and the systemd unit run it: uid 65532, CAP_NET_ADMIN alone (in
// every capability set, so that it survives exec as an ambient capability), and no_new_privs.
// The whole packet matrix of tests/netns/matrix.ts must pass in nftables mode, as under root.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { systemTool } from '../../ts/demo/topology.js';
import { waitWhileRunning } from '../helpers/agent.js';
import { clusterFor } from './cluster.js';
import { checkRows, EXTRA } from './matrix.js';
import { outsideFor } from './outside.js';

const UID = 65532;
const SETPRIV = [systemTool('setpriv'), `--reuid=${UID}`, `--regid=${UID}`, '--clear-groups',
  '--inh-caps=-all,+net_admin', '--ambient-caps=-all,+net_admin', '--bounding-set=-all,+net_admin', '--no-new-privs'];
/** CAP_NET_ADMIN is capability 12. */
const NET_ADMIN_ONLY = (1n << 12n).toString(16).padStart(16, '0');

test.serial(`as uid ${UID} with only CAP_NET_ADMIN and no_new_privs, every row of the packet matrix passes (nftables)`, async (t) => {
  const c = await clusterFor(t, { name: 'leastpriv', extra: EXTRA, wrapper: SETPRIV });
  // ip netns exec and setpriv both exec: the agent's pid is the one spawned.
  const status = readFileSync(`/proc/${c.agent.process.pid}/status`, 'utf8');
  t.regex(status, new RegExp(`^Uid:\\s+${UID}\\s+${UID}\\s+${UID}\\s+${UID}$`, 'm'));
  for (const set of ['CapEff', 'CapPrm', 'CapBnd', 'CapAmb']) t.is(new RegExp(`^${set}:\\s+(\\w+)$`, 'm').exec(status)?.[1], NET_ADMIN_ONLY, set);
  t.regex(status, /^NoNewPrivs:\s+1$/m);
  await waitWhileRunning(c.agent, 'the NodePorts in both families', async () => {
    const lists = await Promise.all(['ip', 'ip6'].map((f) => c.topo.exec(c.topo.node, ['nft', 'list', 'table', f, 'kube-proxy'], { allowFailure: true })));
    return lists.every((r) => r.stdout.includes('30080'));
  });
  const outside = await outsideFor(t, c.topo);
  await checkRows(t, { ...c, outside }, ['nodeport', 'local', 'external', 'ranges', 'servicecidr', 'topology']);
  // What it could not do as non-root, it said and went on (the conntrack sysctls are root's).
  t.is(c.agent.process.exitCode, null, c.agent.logs().slice(-2000));
});
