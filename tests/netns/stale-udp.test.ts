// A stale UDP flow moves to the new endpoint: the agent's conntrack reconciler, end to end.
// A client keeps one UDP 5-tuple alive (fixed source port, a datagram every 200 ms) to a
// ClusterIP while the manifests swap the Service's endpoint A (backend-1) for B (backend-2).
// The kernel NATs a flow once, at its first packet: the conntrack entry, refreshed by every
// datagram, would keep sending to A for as long as the client keeps talking (the UDP timeout
// never runs out), and A's responder keeps running throughout. So only the reconciler deleting
// the entry after the sync can make the next datagram reach B.
//
// Address plan (ts/demo/topology.ts): client 192.168.100.2 / fd00:100::2, source port 40053 (both)
//   flip  10.96.0.70 / fd00:96::70   dns 53/UDP -> 8053
//         phase 1: backend-1 (A); phase 2: A and backend-2 (B); phase 3: B only
// Phase 2 is the control: A still serves, so its flow must stay (upstream deletes only flows
// whose reply source is no serving endpoint), and nothing is deleted.
import test, { type ExecutionContext } from 'ava';
import { createInterface } from 'node:readline';
import { GiveUp, REPO_ROOT, type NsProcess, type Topology } from '../../ts/demo/topology.js';
import { listMap, metricValue, waitWhileRunning, type Agent } from '../helpers/agent.js';
import { clusterFor } from './cluster.js';
import { endpointSlice, service, WEB_PORTS } from './manifests.js';

const DNS = WEB_PORTS[1];
const SOURCE_PORT = 40053;
const INTERVAL_MS = 200;
// Each wait, the families in parallel: the worst case stays inside ava's 120 s test timeout,
// and far below any UDP conntrack timeout (30 s unreplied, 120 s stream), so that only a
// deletion can move the flow.
const WAIT_MS = 12_000;
const FAMILIES = [
  { family: 'IPv4', nft: 'ip', conntrack: 'ipv4', vip: '10.96.0.70', backend: (i: number) => `10.244.${i}.2` },
  { family: 'IPv6', nft: 'ip6', conntrack: 'ipv6', vip: 'fd00:96::70', backend: (i: number) => `fd00:244:0:${i}::2` },
] as const;
type Fam = (typeof FAMILIES)[number];

const hostPort = (ip: string, port: number) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);

const flipSlices = (backends: number[]) =>
  FAMILIES.map((f) => endpointSlice('flip', f.family, backends.map((i) => f.backend(i)), [DNS]));

/** The long-lived flow (tests/helpers/udp-pinger.mjs): every answer and error, in order. */
interface Pinger {
  events: Array<{ reply?: string; error?: string }>;
  process: NsProcess;
}

function startPinger(t: ExecutionContext, topo: Topology, f: Fam): Pinger {
  const spec = { host: f.vip, port: DNS.port, sourcePort: SOURCE_PORT, intervalMs: INTERVAL_MS };
  const child = topo.spawnIn(topo.client, 'node', [`${REPO_ROOT}tests/helpers/udp-pinger.mjs`, JSON.stringify(spec)]);
  const pinger: Pinger = { events: [], process: child };
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const event = JSON.parse(line);
    if (!event.ready) pinger.events.push(event);
  });
  let stopping = false;
  void child.exited.then((code) => {
    if (!stopping) pinger.events.push({ error: `pinger exited (${code}): ${child.output().trim()}` });
  });
  t.teardown(() => {
    stopping = true;
    child.kill('SIGKILL');
  });
  return pinger;
}

/** The backends (or errors) of the answers from index `from` on, in order, repeats folded. */
function run(p: Pinger, from: number): string[] {
  const seen = p.events.slice(from).map((e) => (e.reply ? e.reply.split(' ')[0] : `error:${e.error}`));
  return seen.filter((s, k) => k === 0 || seen[k - 1] !== s);
}

/**
 * Polls (bounded: WAIT_MS) until `done`; a timeout is not an error, as the table then shows
 * what was seen instead, but the agent exiting is.
 */
async function bounded(agent: Agent, what: string, done: () => Promise<boolean> | boolean): Promise<void> {
  await waitWhileRunning(agent, what, async () => done(), WAIT_MS).catch((err) => {
    if (err instanceof GiveUp) throw err;
  });
}

/** The node's UDP conntrack entries from the pinger's port: "origDst -> replySrc". */
async function entries(topo: Topology, f: Fam): Promise<string[]> {
  const { stdout } = await topo.exec(topo.node, ['conntrack', '-L', '-f', f.conntrack, '-p', 'udp', '--orig-port-src', String(SOURCE_PORT)], { allowFailure: true });
  return stdout.split('\n').filter(Boolean).map((line) => {
    const kv = [...line.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1], m[2]] as const);
    const get = (k: string, nth: number) => kv.filter(([key]) => key === k)[nth]?.[1] ?? '?';
    return `${hostPort(get('dst', 0), Number(get('dport', 0)))} -> ${hostPort(get('src', 1), Number(get('sport', 1)))}`;
  }).sort();
}

/** flip's endpoints in the family's endpoint-addrs map, as "backend-i" (what the last sync programmed). */
async function programmed(topo: Topology, f: Fam): Promise<string[]> {
  const map = await listMap(topo, f.nft, 'endpoint-addrs');
  const found = new Set<string>();
  for (const m of map.matchAll(new RegExp(`${f.vip.replace(/[.:]/g, '\\$&')} \\. udp \\. 53 \\. \\d+ : (\\S+) \\. 8053`, 'g'))) {
    found.add(`backend-${[1, 2].find((i) => f.backend(i) === m[1]) ?? m[1]}`);
  }
  return [...found].sort();
}

const metric = (topo: Topology, name: string, f: Fam) => metricValue(topo, `kubeproxy_conntrack_reconciler_${name}`, { ip_family: f.family });

test.serial('a UDP flow on one 5-tuple moves from a removed endpoint to the new one after the sync', async (t) => {
  const c = await clusterFor(t, {
    name: 'staleudp',
    backends: 2,
    extra: { 'flip.yaml': [service('flip', FAMILIES.map((f) => f.vip), [DNS])], 'flip-endpoints.yaml': flipSlices([1]) },
  });
  const { topo, agent } = c;
  const pingers = new Map(FAMILIES.map((f) => [f.family, startPinger(t, topo, f)]));
  t.teardown(async () => {
    if (t.passed) return;
    const ruleset = await topo.exec(topo.node, ['nft', 'list', 'ruleset'], { allowFailure: true });
    const ct = await topo.exec(topo.node, ['conntrack', '-L', '-p', 'udp'], { allowFailure: true });
    t.log(`nft list ruleset (node namespace):\n${ruleset.stdout}${ruleset.stderr}`);
    t.log(`conntrack -L -p udp (node namespace):\n${ct.stdout}${ct.stderr}`);
    for (const [family, p] of pingers) t.log(`${family} pinger events: ${JSON.stringify(p.events)}`);
  });

  const seen: Record<string, unknown> = {};
  const want: Record<string, unknown> = {};
  const row = (key: string, got: unknown, expected: unknown) => {
    seen[key] = got;
    want[key] = expected;
  };
  const each = (fn: (f: Fam, p: Pinger) => Promise<void>) => Promise.all(FAMILIES.map((f) => fn(f, pingers.get(f.family)!)));
  const perFamily = async (name: string) => new Map(await Promise.all(FAMILIES.map(async (f) => [f.family, await metric(topo, name, f)] as const)));
  const flow = (f: Fam, backend: number) => [`${hostPort(f.vip, 53)} -> ${hostPort(f.backend(backend), 8053)}`];
  /** Writes flip's endpoints, then waits until each family's sync programmed them and a reconciler pass ran after. */
  const change = async (phase: string, backends: number[]) => {
    const passes = await perFamily('sync_duration_seconds_count');
    await c.manifests.write('flip-endpoints.yaml', ...flipSlices(backends));
    const names = backends.map((i) => `backend-${i}`);
    await each(async (f) => {
      const passed = async () => (await metric(topo, 'sync_duration_seconds_count', f)) > passes.get(f.family)!;
      await bounded(agent, `${f.family} flip endpoints ${names.join(', ')} and a reconciler pass after them`, async () =>
        isSame(await programmed(topo, f), names) && passed());
      row(`${phase}: ${f.family} programmed`, await programmed(topo, f), names);
      row(`${phase}: ${f.family} reconciler passes since the change (sync_duration_seconds_count)`, (await passed()) ? 'some' : 'none', 'some');
    });
  };
  /** Waits until `count` more events arrived on p. */
  const more = (f: Fam, p: Pinger, count: number) => {
    const mark = p.events.length;
    return bounded(agent, `${count} more ${f.family} answers`, () => p.events.length - mark >= count);
  };

  // Phase 1: A only. The flow settles on A; the kernel holds one entry for it.
  await each(async (f, p) => {
    await bounded(agent, `${f.family} answers from A`, () => p.events.length >= 5);
    row(`A only: ${f.family} answers`, run(p, 0), ['backend-1']);
    row(`A only: ${f.family} conntrack`, await entries(topo, f), flow(f, 1));
  });

  // Phase 2 (control): A and B. A still serves: the flow stays on A for 15 more datagrams
  // after the sync and its reconciler pass, and nothing is deleted.
  let before = await perFamily('deleted_entries_total');
  let marks = new Map(FAMILIES.map((f) => [f.family, pingers.get(f.family)!.events.length]));
  await change('A and B', [1, 2]);
  await each(async (f, p) => {
    await more(f, p, 15);
    row(`A and B: ${f.family} answers since the change`, run(p, marks.get(f.family)!), ['backend-1']);
    row(`A and B: ${f.family} conntrack`, await entries(topo, f), flow(f, 1));
    row(`A and B: ${f.family} deleted_entries_total increase`, (await metric(topo, 'deleted_entries_total', f)) - before.get(f.family)!, 0);
  });

  // Phase 3: B only. The same 5-tuple's next datagrams are answered by B, and only by B.
  before = await perFamily('deleted_entries_total');
  marks = new Map(FAMILIES.map((f) => [f.family, pingers.get(f.family)!.events.length]));
  await change('B only', [2]);
  await each(async (f, p) => {
    const mark = marks.get(f.family)!;
    await bounded(agent, `${f.family} answers from B`, () => run(p, mark).at(-1) === 'backend-2');
    const moved = p.events.length;
    await more(f, p, 10);
    // A until the sync (if a datagram went out before it), then B: no errors, no way back to A.
    const since = run(p, mark);
    row(`B only: ${f.family} answers since the change`, since, since[0] === 'backend-1' ? ['backend-1', 'backend-2'] : ['backend-2']);
    row(`B only: ${f.family} answers once moved`, run(p, moved), ['backend-2']);
    row(`B only: ${f.family} conntrack`, await entries(topo, f), flow(f, 2));
    // A was never stopped: its pod still answers when asked directly.
    const direct = await topo.udpRequest(topo.client, f.backend(1), 8053);
    row(`B only: ${f.family} A's pod asked directly`, direct.ok ? direct.backend : direct.error, 'backend-1');
    let increase = 0;
    await bounded(agent, `${f.family} deleted_entries_total to go up`, async () => {
      increase = (await metric(topo, 'deleted_entries_total', f)) - before.get(f.family)!;
      return increase > 0;
    });
    // Exactly the one entry: nothing else in the node points at flip (no other flows were made).
    row(`B only: ${f.family} kubeproxy_conntrack_reconciler_deleted_entries_total increase`, increase, 1);
  });
  t.deepEqual(seen, want, 'kernel and agent (-) vs expected (+)');
});

function isSame(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, k) => x === b[k]);
}
