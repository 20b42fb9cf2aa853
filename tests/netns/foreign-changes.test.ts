// Foreign-change detection sees only foreign changes: with both families' proxiers in one
// agent, neither family's commits, nor another program's commits to its own tables, make a
// sync full; a change to kproxy's own table by someone else is repaired by a full sync of
// that family's table only.
//
// Address plan: client 192.168.100.2 / fd00:100::2; backend i 10.244.i.2 / fd00:244:0:i::2
//   web 10.96.0.10 / fd00:96::10: 80/TCP -> 8080, 53/UDP -> 8053, endpoints backend-1..3
//   10.96.99.99: a ClusterIP nobody defined, added to cluster-ips behind the agent's back
import test, { type ExecutionContext } from 'ava';
import type { Topology } from '../../ts/demo/topology.js';
import { waitWhileRunning, type Agent } from '../helpers/agent.js';
import { clusterFor, WEB_IP, WEB_IP6 } from './cluster.js';
import { ALL_BACKENDS, checkFlows } from './flows.js';

type Family = 'IPv4' | 'IPv6';
const FAMILIES: Family[] = ['IPv4', 'IPv6'];
const FOREIGN_IP = '10.96.99.99';

/** One "Synced proxy rules" log line. */
interface SyncLine {
  ipFamily: Family;
  full: boolean;
  objects: number;
  raw: string;
}

/** Every sync line still in the agent's output tail; anything that is not one (or is cut) is skipped. */
function syncLines(agent: Agent): SyncLine[] {
  const lines: SyncLine[] = [];
  for (const raw of agent.logs().split('\n')) {
    if (!raw.startsWith('{')) continue;
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(raw);
    } catch {
      continue; // the tail's first line may be cut, or stderr may have split a line
    }
    if (entry.msg !== 'Synced proxy rules') continue;
    if ((entry.ipFamily !== 'IPv4' && entry.ipFamily !== 'IPv6') || typeof entry.full !== 'boolean' || typeof entry.objects !== 'number') {
      throw new Error(`sync line without ipFamily/full/objects: ${raw}`);
    }
    lines.push({ ipFamily: entry.ipFamily, full: entry.full, objects: entry.objects, raw });
  }
  return lines;
}

/** The sync lines logged after `mark` (a line seen earlier; each carries its own time, so it is unique). */
function linesAfter(agent: Agent, mark: SyncLine | undefined): SyncLine[] {
  const lines = syncLines(agent);
  if (!mark) return lines;
  const at = lines.map((l) => l.raw).lastIndexOf(mark.raw);
  if (at < 0) throw new Error('the mark fell out of the agent output tail: too much logging to follow syncs');
  return lines.slice(at + 1);
}

const ofFamily = (lines: SyncLine[], family: Family) => lines.filter((l) => l.ipFamily === family);
const summary = (lines: SyncLine[]) => lines.map((l) => `${l.ipFamily} full=${l.full} objects=${l.objects}`).join('; ') || 'none';

/**
 * Waits until every sync that started has logged both families (each sync logs IPv4 and IPv6
 * once) and `done` holds for the lines after `mark`; returns those lines.
 */
async function syncsAfter(agent: Agent, mark: SyncLine | undefined, what: string,
  done: (lines: SyncLine[]) => boolean): Promise<SyncLine[]> {
  let seen: SyncLine[] = [];
  try {
    return await waitWhileRunning(agent, what, async () => {
      seen = linesAfter(agent, mark);
      const paired = ofFamily(seen, 'IPv4').length === ofFamily(seen, 'IPv6').length;
      return paired && done(seen) ? seen : undefined;
    }, 20_000);
  } catch (err) {
    throw new Error(`${(err as Error).message}\nsync lines so far: ${summary(seen)}`);
  }
}

/** Both families synced something (objects > 0) since the mark: an endpoint change reached each. */
const bothProgrammed = (lines: SyncLine[]) => FAMILIES.every((f) => ofFamily(lines, f).some((l) => l.objects > 0));

interface Baseline {
  /** The last sync line so far: what the next step's lines come after. */
  mark: SyncLine;
  /** Objects of the first (full) sync of each family: what a whole table costs. */
  fullObjects: Record<Family, number>;
}

/** After the initial sync: both families logged a full first sync, and nothing is in flight. */
async function initialSync(agent: Agent): Promise<Baseline> {
  const lines = await syncsAfter(agent, undefined, 'the initial sync of both families', (l) => l.length >= 2);
  const fullObjects = {} as Record<Family, number>;
  for (const family of FAMILIES) {
    const first = ofFamily(lines, family)[0];
    if (!first.full || first.objects <= 0) throw new Error(`the first ${family} sync was not a full one: ${summary(lines)}`);
    fullObjects[family] = first.objects;
  }
  return { mark: lines[lines.length - 1], fullObjects };
}

/**
 * Asserts every line after the mark is a partial sync, and the endpoint change cost each
 * family under half its whole table (a partial sync in name only would not); returns the new mark.
 */
function assertPartial(t: ExecutionContext, base: Baseline, lines: SyncLine[], label: string): SyncLine {
  for (const family of FAMILIES) {
    const mine = ofFamily(lines, family);
    t.deepEqual(mine.filter((l) => l.full).map((l) => l.raw), [], `${label}: ${family} must stay partial (${summary(lines)})`);
    const largest = Math.max(...mine.map((l) => l.objects));
    t.true(largest > 0 && largest < base.fullObjects[family] / 2,
      `${label}: ${family} sent ${largest} objects; a whole table is ${base.fullObjects[family]} (${summary(lines)})`);
  }
  return lines[lines.length - 1];
}

async function nft(topo: Topology, ...args: string[]): Promise<string> {
  return (await topo.exec(topo.node, ['nft', ...args])).stdout;
}

// Endpoint sets stepped through by the tests; each differs from the one before.
const STEPS = [[1, 2], [2, 3], [1, 3], [1, 2, 3]];

test.serial("one family's commits never look foreign to the other: endpoint changes stay partial in both", async (t) => {
  const c = await clusterFor(t, { name: 'fcboth' });
  const base = await initialSync(c.agent);
  let mark = base.mark;
  for (const step of STEPS) {
    await c.setWebEndpoints(step);
    const lines = await syncsAfter(c.agent, mark, `the sync of endpoints ${step}`, bothProgrammed);
    mark = assertPartial(t, base, lines, `endpoints ${step}`);
  }
  await checkFlows(t, c.topo, [
    { from: 'client', to: `${WEB_IP}:80`, proto: 'tcp', expect: ALL_BACKENDS(3), count: 30 },
    { from: 'client', to: `[${WEB_IP6}]:80`, proto: 'tcp', expect: ALL_BACKENDS(3), count: 30 },
  ]);
});

// Rounds of commits by a CNI-like neighbour to its own tables, one batch per command.
const NEIGHBOUR_ROUNDS: string[][] = [
  ['add table ip other-cni', 'add chain ip other-cni c', 'add table ip6 other-cni', 'add chain ip6 other-cni c'],
  ['add rule ip6 other-cni c counter', 'add chain ip other-cni d\nadd chain ip6 other-cni d'], // the last: one batch, both families
  ['delete chain ip other-cni d', 'delete chain ip6 other-cni d', 'flush chain ip other-cni c'],
];

test.serial("another program's commits to its own tables do not make syncs full", async (t) => {
  const c = await clusterFor(t, { name: 'fcother' });
  const base = await initialSync(c.agent);
  let mark = base.mark;
  for (const [round, commands] of NEIGHBOUR_ROUNDS.entries()) {
    for (const command of commands) await c.topo.exec(c.topo.node, ['nft', '-f', '-'], { input: `${command}\n` });
    const step = STEPS[round];
    await c.setWebEndpoints(step);
    const label = `endpoints ${step} after other-cni's commits round ${round + 1}`;
    mark = assertPartial(t, base, await syncsAfter(c.agent, mark, `the sync of ${label}`, bothProgrammed), label);
  }
  // The neighbour's tables are left as they were.
  t.regex(await nft(c.topo, 'list', 'table', 'ip', 'other-cni'), /chain c \{/);
  t.regex(await nft(c.topo, 'list', 'table', 'ip6', 'other-cni'), /chain c \{[^}]*counter/);
});

test.serial("a change to kproxy's own table by someone else is repaired by a full sync of that family only", async (t) => {
  const c = await clusterFor(t, { name: 'fcown' });
  const base = await initialSync(c.agent);
  const clusterIPs = () => nft(c.topo, 'list', 'set', 'ip', 'kube-proxy', 'cluster-ips');

  // IPv4: an element nobody asked for.
  await nft(c.topo, 'add', 'element', 'ip', 'kube-proxy', 'cluster-ips', `{ ${FOREIGN_IP} }`);
  t.true((await clusterIPs()).includes(FOREIGN_IP), 'the foreign element went in');
  await c.setWebEndpoints([1, 2]);
  let lines = await syncsAfter(c.agent, base.mark, 'the sync after the foreign IPv4 element', bothProgrammed);
  t.like(ofFamily(lines, 'IPv4')[0], { full: true }, `the next IPv4 sync repairs the table (${summary(lines)})`);
  t.deepEqual(ofFamily(lines, 'IPv6').filter((l) => l.full).map((l) => l.raw), [], `IPv6 stays partial (${summary(lines)})`);
  const set = await clusterIPs();
  t.false(set.includes(FOREIGN_IP), `the foreign element is gone:\n${set}`);
  t.true(set.includes(WEB_IP), `the web ClusterIP is still there:\n${set}`);
  await checkFlows(t, c.topo, [
    { from: 'client', to: `${WEB_IP}:80`, proto: 'tcp', expect: ['backend-1', 'backend-2'], count: 30 },
    { from: 'client', to: `${WEB_IP}:53`, proto: 'udp', expect: ['backend-1', 'backend-2'], count: 10 },
  ]);
  // Repaired means clean again: the next change is partial in both families.
  await c.setWebEndpoints([2, 3]);
  lines = await syncsAfter(c.agent, lines[lines.length - 1], 'the sync after the repair', bothProgrammed);
  const mark = assertPartial(t, base, lines, 'endpoints 2,3 after the repair');

  // IPv6, the other way round: one of kproxy's own elements deleted.
  await nft(c.topo, 'delete', 'element', 'ip6', 'kube-proxy', 'service-ips', `{ ${WEB_IP6} . tcp . 80 }`);
  const serviceIPs6 = () => nft(c.topo, 'list', 'map', 'ip6', 'kube-proxy', 'service-ips');
  t.false((await serviceIPs6()).includes(`${WEB_IP6} . tcp . 80 `), 'the element was deleted');
  await c.setWebEndpoints([1, 3]);
  lines = await syncsAfter(c.agent, mark, 'the sync after the deleted IPv6 element', bothProgrammed);
  t.like(ofFamily(lines, 'IPv6')[0], { full: true }, `the next IPv6 sync repairs the table (${summary(lines)})`);
  t.deepEqual(ofFamily(lines, 'IPv4').filter((l) => l.full).map((l) => l.raw), [], `IPv4 stays partial (${summary(lines)})`);
  const map6 = await serviceIPs6();
  t.true(map6.includes(`${WEB_IP6} . tcp . 80 `), `the deleted element is back:\n${map6}`);
  await checkFlows(t, c.topo, [
    { from: 'client', to: `[${WEB_IP6}]:80`, proto: 'tcp', expect: ['backend-1', 'backend-3'], count: 30 },
    { from: 'client', to: `${WEB_IP}:80`, proto: 'tcp', expect: ['backend-1', 'backend-3'], count: 30 },
  ]);
});
