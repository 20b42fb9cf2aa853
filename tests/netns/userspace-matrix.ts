// userspace mode with real packets: the whole packet matrix (tests/netns/matrix.ts, the table
// every mode runs; this mode's exceptions are MODE_EXCEPTIONS.userspace), through the agent on
// manifests, in both families; then no netfilter state at all, the drift check, changes that
// leave held connections alone, refusal without endpoints, and --cleanup. Run here on lo (this kernel has
// no dummy driver: tests/netns/userspace-mode.test.ts) and in the VM on the dummy link
// kproxy-vips (tests/vm/userspace-mode.vmtest.ts).
import type { ExecutionContext } from 'ava';
import { REPO_ROOT } from '../../ts/demo/topology.js';
import { AGENT_ENTRY, metricValue, waitWhileRunning } from '../helpers/agent.js';
import { clusterFor, WEB_IP } from './cluster.js';
import { checkRows, EXTRA, FLOWS, MODE_EXCEPTIONS, NODE_IP, type Group } from './matrix.js';
import { outsideFor } from './outside.js';

const GROUPS = [...new Set(FLOWS.map((r) => r[0]))] as Group[];

/** Which link holds the Service addresses: lo here (no dummy driver), kproxy-vips in the VM. */
export type VipLink = 'lo' | 'kproxy-vips';

/**
 * The matrix and the rest in userspace mode; `link` is where the addresses must be. Under
 * emulation (the VM), `readyTimeoutMs` gives the agent time to its first program.
 */
export async function userspaceMatrix(t: ExecutionContext, link: VipLink, readyTimeoutMs?: number): Promise<void> {
  const c = await clusterFor(t, { name: 'userspace', extra: EXTRA, mode: 'userspace', readyTimeoutMs });
  const outside = await outsideFor(t, c.topo);
  const node = (cmd: string[]) => c.topo.exec(c.topo.node, cmd, { allowFailure: true });
  await waitWhileRunning(c.agent, 'the NodePorts in both families', async () => {
    const ss = (await node(['ss', '-Hltn'])).stdout;
    return ss.includes(`${NODE_IP}:30080`) && ss.includes('[fd00:100::1]:30080');
  }, readyTimeoutMs);
  await checkRows(t, { ...c, outside }, GROUPS, MODE_EXCEPTIONS.userspace);
  for (const [row, e] of Object.entries(MODE_EXCEPTIONS.userspace)) t.log(`${row}: ${e.outcome} (${e.why})`);

  // No nftables table, no iptables rule: the proxy listens on the addresses themselves.
  t.is((await node(['nft', 'list', 'ruleset'])).stdout.trim(), '', 'no nftables state in the node namespace');
  for (const tool of ['iptables-legacy-save', 'ip6tables-legacy-save']) t.notRegex((await node([tool])).stdout, /KUBE-/, tool);
  // On lo they are marked with IFA_PROTO (this iproute2 does not print it; --cleanup below tells them apart).
  const held = (await node(['ip', '-o', 'addr', 'show', 'dev', link])).stdout;
  t.regex(held, /inet 198\.51\.100\.63\/32 /, `an LB IP on ${link}`);
  t.regex(held, /inet6 2001:db8:2::71\/128 /, `an IPv6 external IP on ${link}`);
  t.regex(c.agent.logs(), new RegExp(`"link":"${link === 'lo' ? 'lo \\(no dummy driver\\)' : 'kproxy-vips \\(dummy\\)'}"`), 'the agent says which link');
  await node(['ip', 'addr', 'add', '198.18.0.9/32', 'dev', 'lo']); // the host's own

  const mode = await node(['curl', '-sf', 'http://127.0.0.1:10249/proxyMode']);
  t.is(mode.stdout, 'userspace');
  const accepted = await metricValue(c.topo, 'kproxy_userspace_connections_accepted_total', { service: 'default/web:http', ip_family: 'IPv4' });
  t.true(accepted >= 40, `web's accepted connections: ${accepted}`);
  t.true(await metricValue(c.topo, 'kproxy_userspace_connections_failed_total', { service: 'default/fw:http', reason: 'source_range' }) >= 2);
  t.true(await metricValue(c.topo, 'kproxy_userspace_endpoint_connect_duration_seconds_count', { service: 'default/web:http' }) >= 40);

  // Drift: the link deleted (kproxy-vips) or an address taken off it (lo) by someone else;
  // the drift check finds it and a full sync puts it back, long before the sync period.
  await node(link === 'lo' ? ['ip', 'addr', 'del', '198.51.100.63/32', 'dev', 'lo'] : ['ip', 'link', 'del', 'kproxy-vips']);
  const removed = performance.now();
  await waitWhileRunning(c.agent, `198.51.100.63 back on ${link}`, async () => /inet 198\.51\.100\.63\/32 /.test((await node(['ip', '-o', 'addr', 'show', 'dev', link])).stdout), readyTimeoutMs ?? 10_000);
  t.log(`${link === 'lo' ? 'an address taken off lo' : 'kproxy-vips deleted'}: back in ${((performance.now() - removed) / 1000).toFixed(2)} s`);
  t.true(await metricValue(c.topo, 'kproxy_userspace_drift_repairs_total', { ip_family: 'IPv4' }) >= 1, 'repaired by the drift check');
  await waitWhileRunning(c.agent, 'the LB IP answering again', async () => (await c.topo.tcpRequest(c.topo.client, '198.51.100.63', 80, { timeoutMs: 1500 })).ok);

  // An endpoint leaves: no new connection reaches it, a held one runs on to its end.
  const conn = await c.topo.holdTcp(c.topo.client, WEB_IP, 80);
  t.true(conn.greeting.ok);
  const heldBy = conn.greeting.ok ? conn.greeting.backend : '?';
  const rest = [1, 2, 3].filter((i) => `backend-${i}` !== heldBy);
  await c.setWebEndpoints(rest);
  await waitWhileRunning(c.agent, `${heldBy} out of web's pool`, async () => {
    const r = await c.topo.tcpRequests(c.topo.client, WEB_IP, 80, { count: 12 });
    return r.every((x) => x.ok && x.backend !== heldBy);
  });
  t.is(await conn.echo('still here'), 'still here', 'the held connection outlives its endpoint\'s removal');
  await conn.close();

  // Every endpoint gone: the port refuses at once, it never accepts and hangs.
  await c.setWebEndpoints([]);
  await waitWhileRunning(c.agent, 'web refusing', async () => {
    const r = await c.topo.tcpRequest(c.topo.client, WEB_IP, 80, { timeoutMs: 1500 });
    return !r.ok && r.error === 'refused';
  });
  const udp = await c.topo.udpRequest(c.topo.client, WEB_IP, 53, { timeoutMs: 1500 });
  t.is(udp.ok ? 'answered' : udp.error, 'refused', 'UDP without endpoints: ICMP port unreachable');

  // --cleanup takes kproxy's addresses off lo, and only those (or deletes kproxy-vips).
  await c.agent.stop();
  const r = await node(['sh', '-c', `cd ${REPO_ROOT} && node ${AGENT_ENTRY.join(' ')} --cleanup --proxy-mode userspace`]);
  t.is(r.code, 0, `${r.stdout}${r.stderr}`);
  const after = (await node(['ip', '-o', 'addr', 'show', 'dev', 'lo'])).stdout;
  t.notRegex(after, /198\.51\.100\.63|2001:db8:2::71|10\.96\.0\.10\//, 'no kproxy address left on lo');
  t.regex(after, /inet 127\.0\.0\.1\/8/, 'lo keeps its own');
  t.regex(after, /inet 198\.18\.0\.9\/32/, 'and an address the host added');
  t.not((await node(['ip', 'link', 'show', 'kproxy-vips'])).code, 0, 'no kproxy-vips link');
}
