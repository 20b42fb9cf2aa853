// Every Service type and policy with real packets through the real agent on manifests: the
// table of tests/netns/matrix.ts (its header has the address plan), and ClientIP affinity, in
// nftables mode and in userspace mode (the proxy's own affinity table; the matrix itself runs
// in userspace mode in tests/netns/userspace-matrix.ts).
import test, { type ExecutionContext } from 'ava';
import { GiveUp } from '../../ts/demo/topology.js';
import { waitWhileRunning } from '../helpers/agent.js';
import { clusterFor, type Cluster } from './cluster.js';
import { destination, tally } from './flows.js';
import { NODE_NAME } from './manifests.js';
import {
  checkRows, EXTRA, HTTP, KEEP_IP, line, namespace, NODE_IP, NODE_IP6, observed, only, PATHS, slices, STICKY6_IP6, STICKY_IP, STICKY_TIMEOUT_S, STLOCAL_LB,
  STLOCAL_NODEPORT,
} from './matrix.js';
import { outsideFor } from './outside.js';

interface Bed extends Cluster {
  outside: string;
}

type Mode = 'nftables' | 'userspace';

/** The agent over every manifest above, the outside namespace, the ruleset logged on failure. */
async function bedFor(t: ExecutionContext, name: string, mode: Mode = 'nftables'): Promise<Bed> {
  const c = await clusterFor(t, { name, extra: EXTRA, mode });
  const outside = await outsideFor(t, c.topo);
  if (mode === 'userspace') {
    await waitWhileRunning(c.agent, 'the NodePorts in both families', async () => {
      const ss = (await c.topo.exec(c.topo.node, ['ss', '-Hltn'])).stdout;
      return ss.includes(`${NODE_IP}:30080`) && ss.includes(`[${NODE_IP6}]:30080`);
    });
    return { ...c, outside };
  }
  t.teardown(async () => {
    if (t.passed) return;
    let ruleset = await c.topo.exec(c.topo.node, ['nft', 'list', 'ruleset'], { allowFailure: true });
    if (ruleset.code !== 0) ruleset = await c.topo.exec(c.topo.node, ['nft', '-j', 'list', 'ruleset'], { allowFailure: true });
    t.log(`nft list ruleset (node namespace):\n${ruleset.stdout}${ruleset.stderr}`);
  });
  // The first sync holds everything; NodePorts need the Node's addresses, so wait for them too.
  await waitWhileRunning(c.agent, 'the NodePorts in both families', async () => {
    const lists = await Promise.all(['ip', 'ip6'].map((f) => c.topo.exec(c.topo.node, ['nft', 'list', 'table', f, 'kube-proxy'], { allowFailure: true })));
    const broken = lists.find((r) => r.code !== 0 && !/No such file/.test(r.stderr));
    if (broken) throw new GiveUp(`nft cannot list the kube-proxy tables: ${broken.stderr.trim()}`);
    return lists.every((r) => r.stdout.includes('30080'));
  });
  return { ...c, outside };
}

test.serial('NodePorts from outside, IPv4 and IPv6, TCP and UDP: every endpoint, masqueraded', async (t) => {
  await checkRows(t, await bedFor(t, 'svct-nodeport'.slice(0, 14)), ['nodeport']);
});

test.serial('externalTrafficPolicy Local: local endpoints with the client IP kept, a drop when none is local', async (t) => {
  await checkRows(t, await bedFor(t, 'svct-local'.slice(0, 14)), ['local']);
});

test.serial('a LoadBalancer ingress IP and an externalIP reach the endpoints', async (t) => {
  await checkRows(t, await bedFor(t, 'svct-external'.slice(0, 14)), ['external']);
});

test.serial('loadBalancerSourceRanges: an allowed source connects, any other is dropped', async (t) => {
  await checkRows(t, await bedFor(t, 'svct-ranges'.slice(0, 14)), ['ranges']);
});

test.serial('topology hints and the terminating fallback, applied to real traffic', async (t) => {
  await checkRows(t, await bedFor(t, 'svct-topology'.slice(0, 14)), ['topology']);
});

test.serial('ServiceCIDR: an unallocated IP is dropped while a real ClusterIP works', async (t) => {
  await checkRows(t, await bedFor(t, 'svct-servicecidr'.slice(0, 14)), ['servicecidr']);
});

for (const mode of ['nftables', 'userspace'] as const) {
  // nftables mode keeps the titles and names these tests always had.
  const [title, prefix] = mode === 'nftables' ? ['', 'svct'] : ['userspace mode: ', 'svus'];

  test.serial(`${title}ClientIP affinity: one client sticks to one backend, and picks anew after timeoutSeconds idle`, async (t) => {
    const bed = await bedFor(t, `${prefix}-sticky`, mode);
    /** A burst of new connections, back to back (far inside the timeout): every answer counted. */
    const burst = async (ns: string, count: number) => tally(await bed.topo.tcpRequests(ns, STICKY_IP, 80, { count }));

    // Without affinity, 30 connections on one of 3 backends has odds of 3 * (1/3)^30.
    const first = await burst(bed.topo.client, 30);
    t.truthy(only(first), `30 connections from the client: ${JSON.stringify(first)}`);
    const other = await burst(bed.outside, 30);
    t.truthy(only(other), `30 connections from a second client: ${JSON.stringify(other)}`);

    // Idle for longer than timeoutSeconds, then a new burst: the client's entry has expired, so
    // the backend is picked anew (1 in 3 it is the same one). Bounded: with expiry working, ten
    // rounds all on one backend have odds of (1/3)^10; without it, they always are.
    const backends = new Set([only(first)]);
    const rounds: Array<Record<string, number>> = [];
    for (let round = 0; round < 10 && backends.size < 2; round++) {
      await new Promise((r) => setTimeout(r, STICKY_TIMEOUT_S * 1000 + 1500));
      const counts = await burst(bed.topo.client, 5);
      rounds.push(counts);
      t.truthy(only(counts), `a burst after the timeout sticks again: ${JSON.stringify(counts)}`);
      backends.add(only(counts));
    }
    t.true(backends.size >= 2, `after each idle period the client still landed on ${[...backends].join(', ')}; rounds: ${JSON.stringify(rounds)}`);
  });

  test.serial(`${title}ClientIP affinity: when one backend leaves, only its clients move`, async (t) => {
    const bed = await bedFor(t, `${prefix}-keep`, mode);
    const burst = async (ns: string) => tally(await bed.topo.tcpRequests(ns, KEEP_IP, 80, { count: 5 }));
    // Five clients (the two outside namespaces and the three pods), each stuck to one backend.
    const clients = [bed.topo.client, bed.outside, ...bed.topo.backends.map((b) => b.ns)];
    const before = new Map<string, string | undefined>();
    for (const ns of clients) before.set(ns, only(await burst(ns)));
    t.true([...before.values()].every(Boolean), `each client sticks: ${JSON.stringify([...before])}`);
    // The backend with the fewest clients leaves (so most clients must stay where they are).
    const load = (b: string) => [...before.values()].filter((v) => v === b).length;
    const leaving = [...bed.topo.backends].sort((a, b) => load(a.name) - load(b.name))[0];
    const staying = bed.topo.backends.filter((b) => b !== leaving).map((b) => Number(b.name.split('-')[1]));
    const placement = Object.fromEntries(staying.map((i) => [i, NODE_NAME]));
    await bed.manifests.write('keep.yaml', EXTRA['keep.yaml'][0], ...slices('keep', placement, [HTTP], ['IPv4']));
    await waitWhileRunning(bed.agent, `${leaving.name} out of the keep Service`, async () => {
      if (mode === 'nftables') {
        const r = await bed.topo.exec(bed.topo.node, ['nft', 'list', 'table', 'ip', 'kube-proxy'], { allowFailure: true });
        return !r.stdout.includes(`keep/tcp/http__${leaving.v4}/`);
      }
      // No ruleset to read: the leaving backend's own clients must move once the change is in.
      const its = clients.filter((ns) => before.get(ns) === leaving.name);
      for (const ns of its) if ((await burst(ns))[leaving.name]) return false;
      return true;
    });
    const after = new Map<string, string | undefined>();
    for (const ns of clients) after.set(ns, only(await burst(ns)));
    const want = new Map([...before].map(([ns, b]) => [ns, b === leaving.name ? 'moved' : b]));
    const seen = new Map([...after].map(([ns, b]) => [ns, before.get(ns) === leaving.name && b && b !== leaving.name ? 'moved' : b]));
    // With the map flushed instead, each staying client keeps its backend only 1 time in 2.
    t.deepEqual([...seen], [...want], `before ${JSON.stringify([...before])}, ${leaving.name} left`);
    t.true(clients.some((ns) => before.get(ns) !== leaving.name), 'some client had another backend');
  });

  test.serial(`${title}ClientIP affinity on an IPv6 ClusterIP: each client sticks to one backend`, async (t) => {
    const bed = await bedFor(t, `${prefix}-sticky6`, mode);
    // Without affinity, 30 connections on one of 3 backends has odds of 3 * (1/3)^30.
    const seen: Record<string, string> = {};
    const want: Record<string, string> = {};
    for (const [who, ns] of [['client', bed.topo.client], ['outside', bed.outside]]) {
      const counts = tally(await bed.topo.tcpRequests(ns, STICKY6_IP6, 80, { count: 30 }));
      seen[who] = line(counts);
      want[who] = `${only(counts) ?? 'one backend'} x30`;
    }
    t.deepEqual(seen, want, `30 connections from each client to [${STICKY6_IP6}]:80`);
  });

  test.serial(`${title}ClientIP affinity holds across a Service's paths: NodePort, then externalIP, then ClusterIP`, async (t) => {
    const bed = await bedFor(t, `${prefix}-paths`, mode);
    // Four off-node clients (each namespace's IPv4 and IPv6 address). Each first lands on some
    // backend B through the NodePort; its bursts through the externalIP and the ClusterIP (which
    // the node routes for off-node clients too) must land on B as well. Without the entries the
    // recorder writes for the other paths, each later path picks its own backend (and sticks to
    // it): B again 1 time in 3 per path, so all four clients pass by luck with odds (1/9)^4.
    const clients: Array<[string, string, boolean]> = [
      ['client', bed.topo.client, false], ['outside', bed.outside, false], ['client IPv6', bed.topo.client, true], ['outside IPv6', bed.outside, true],
    ];
    const seen: Record<string, string> = {};
    const want: Record<string, string> = {};
    for (const [who, ns, v6] of clients) {
      const a = v6 ? PATHS.v6 : PATHS.v4;
      const node = v6 ? `[${NODE_IP6}]` : NODE_IP;
      const paths = [`${node}:${PATHS.nodePort}`, `${v6 ? `[${a.external}]` : a.external}:80`, `${v6 ? `[${a.cluster}]` : a.cluster}:80`];
      let first: string | undefined;
      for (const to of paths) {
        const { host, port } = destination(to);
        const counts = tally(await bed.topo.tcpRequests(ns, host, port, { count: 10 }));
        first ??= only(counts) ?? 'one backend';
        seen[`${who} -> ${to}`] = line(counts);
        want[`${who} -> ${to}`] = `${first} x10`;
      }
    }
    t.deepEqual(seen, want, 'each client\'s bursts, in order: NodePort, externalIP, ClusterIP');
  });

  test.serial(`${title}ClientIP affinity with externalTrafficPolicy Local: one local endpoint, ${mode === 'userspace' ? 'seen from the node' : 'the client IP kept'}, on the LB IP and the NodePort`, async (t) => {
    const bed = await bedFor(t, `${prefix}-stlocal`, mode);
    // backend-1/2 are local, backend-3 is not (its namespace still answers, so a stray pick shows).
    // Four off-node clients (each namespace's IPv4 and IPv6 address). Without affinity, 30
    // connections on one of the two local endpoints has odds of 2 * (1/2)^30. The NodePort burst
    // then must land on the same endpoint (the LB IP's recorder writes the NodePort's local map
    // too); without that entry it would pick anew, the same one 1 time in 2 (all four: 1 in 16).
    const seen: Record<string, string> = {};
    const want: Record<string, string> = {};
    for (const [who, v6] of [['client', false], ['outside', false], ['client', true], ['outside', true]] as const) {
      const ns = namespace(bed, who);
      const lbIP = v6 ? STLOCAL_LB.v6 : STLOCAL_LB.v4;
      const nodeIP = v6 ? NODE_IP6 : NODE_IP;
      const lb = await bed.topo.tcpRequests(ns, lbIP, 80, { count: 30 });
      const np = await bed.topo.tcpRequests(ns, nodeIP, STLOCAL_NODEPORT, { count: 10 });
      const b = only(tally(lb));
      // userspace mode: the node's address, never the client's (MODE_EXCEPTIONS.userspace's reason).
      const how = mode === 'userspace' ? 'masqueraded' : 'kept';
      const expect = b && ['backend-1', 'backend-2'].includes(b) ? `${b} ${how}` : `backend-1 or backend-2 ${how}`;
      const [lbTo, npTo] = v6 ? [`[${lbIP}]:80`, `[${nodeIP}]:${STLOCAL_NODEPORT}`] : [`${lbIP}:80`, `${nodeIP}:${STLOCAL_NODEPORT}`];
      seen[`${who} -> ${lbTo}`] = observed(bed.topo, who, v6, lb).join(', ');
      seen[`${who} -> ${npTo}`] = observed(bed.topo, who, v6, np).join(', ');
      want[`${who} -> ${lbTo}`] = expect;
      want[`${who} -> ${npTo}`] = expect;
    }
    t.deepEqual(seen, want, 'each client: LB IP burst, then NodePort burst');
  });
}
