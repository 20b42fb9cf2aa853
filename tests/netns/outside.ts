// A second "outside" namespace on its own link to the node, for flows that need a source
// address other than the client's (loadBalancerSourceRanges: one allowed, one denied source):
//
//   outside (203.0.113.2, 2001:db8:113::2) ──eth0──to-out── node (203.0.113.1, 2001:db8:113::1)
//
// Routed like the client: everything via the node. It doubles as the node's upstream router:
// the node's default routes point to it, and what the node forwards to it (an address no one
// here has, e.g. a LoadBalancer IP nothing DNATed) comes back as ICMP "host unreachable".
// So a packet the node forwards shows up as "unreachable" and one a rule dropped as
// "timeout", where without a default route the node itself would answer "unreachable" before
// its forward hook (where upstream's and kproxy's no-endpoint drops sit) ever saw it.
// Removed when the test ends (t.teardown runs last-registered first, so it is gone before the
// topology checks for leftovers).
import type { ExecutionContext } from 'ava';
import { run, type Topology } from '../../ts/demo/topology.js';

export const OUTSIDE_LINK = { v4: '203.0.113.2', v6: '2001:db8:113::2', nodeV4: '203.0.113.1', nodeV6: '2001:db8:113::1' };

/** Creates the outside namespace of `topo` and returns its name. */
export async function outsideFor(t: ExecutionContext, topo: Topology): Promise<string> {
  const ns = `${topo.prefix}-out`;
  await run('ip', ['netns', 'add', ns]);
  t.teardown(async () => {
    const pids = await run('ip', ['netns', 'pids', ns], { allowFailure: true });
    for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
      try { process.kill(Number(pid), 'SIGKILL'); } catch { /* already gone */ }
    }
    const del = await run('ip', ['netns', 'del', ns], { allowFailure: true });
    if (del.code !== 0 && !/No such file/.test(del.stderr)) throw new Error(`could not delete ${ns}: ${del.stderr.trim()}`);
  });
  const ip = (where: string, ...args: string[]) => run('ip', ['-n', where, ...args]);
  const L = OUTSIDE_LINK;
  await ip(ns, 'link', 'set', 'lo', 'up');
  await topo.exec(ns, ['sysctl', '-q', '-w', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0',
    'net.ipv4.icmp_ratelimit=0', 'net.ipv6.icmp.ratelimit=0', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
  await ip(topo.node, 'link', 'add', 'to-out', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
  await ip(topo.node, 'addr', 'add', `${L.nodeV4}/24`, 'dev', 'to-out');
  await ip(topo.node, '-6', 'addr', 'add', `${L.nodeV6}/64`, 'dev', 'to-out', 'nodad');
  await ip(topo.node, 'link', 'set', 'to-out', 'up');
  await ip(ns, 'addr', 'add', `${L.v4}/24`, 'dev', 'eth0');
  await ip(ns, '-6', 'addr', 'add', `${L.v6}/64`, 'dev', 'eth0', 'nodad');
  await ip(ns, 'link', 'set', 'eth0', 'up');
  await ip(ns, 'route', 'add', 'default', 'via', L.nodeV4);
  await ip(ns, '-6', 'route', 'add', 'default', 'via', L.nodeV6);
  // As the node's router: packets forwarded from the node (in on eth0) find no route; its own
  // traffic, and the ICMP errors it sends, use the main table (via the node).
  for (const v of ['-4', '-6']) {
    await ip(ns, v, 'rule', 'add', 'iif', 'eth0', 'lookup', '100');
    await ip(ns, v, 'route', 'add', 'unreachable', 'default', 'table', '100');
  }
  await ip(topo.node, 'route', 'add', 'default', 'via', L.v4);
  await ip(topo.node, '-6', 'route', 'add', 'default', 'via', L.v6);
  return ns;
}
