// Run by faults.test.ts inside a fresh network namespace, with KPROXY_FAULT_REJECT set: random
// syncs through the real iptables proxier, half of which carry a line iptables-restore refuses,
// in one of its restores. FAULT_BACKEND=nft (a few jump rules per restore, so that a sync goes
// in several restores) or legacy (one restore per sync, chosen through the kubelet's hint). A restore is one transaction per table, so after a refused sync each chain
// must be whole: as before the sync, or as the model after it. After each accepted sync the
// kernel holds exactly the model's render; the sync after a refusal is full. Prints one JSON
// line of counts.
import { execFileSync } from 'node:child_process';
import pino from 'pino';
import { Registry } from 'prom-client';
import { IptablesProxier, MAX_JUMPS_ENV } from '../../ts/modes/iptables/proxier.js';
import { nodeBackend } from '../../ts/modes/iptables/backend.js';
import { output } from '../../ts/modes/iptables/exec.js';
import { RandomCluster } from './fault-changes.js';

const SYNCS = Number(process.env.FAULT_SYNCS ?? 400);
const cluster = new RandomCluster(Number(process.env.FAULT_SEED ?? 1));
process.env[MAX_JUMPS_ENV] ??= '40';
const BACKEND = process.env.FAULT_BACKEND ?? 'nft';
if (BACKEND === 'legacy') execFileSync('iptables-legacy', ['-t', 'mangle', '-N', 'KUBE-IPTABLES-HINT']);

const logger = pino({ level: 'silent' });
const proxier = (fake: boolean) => new IptablesProxier({
  family: 'IPv4', localDetector: { mode: 'ClusterCIDR', cidr: '10.244.0.0/16' }, masqueradeAll: false, masqueradeBit: 14,
  fake, registry: new Registry(), logger,
});
const kernel = proxier(false);
const model = proxier(true);
const tools = await nodeBackend(logger);
if (tools.backend !== BACKEND) throw new Error(`the ${BACKEND} backend was asked for, ${tools.backend} was detected`);
const save = tools.tool('IPv4', '-save');

/** "table/chain" → its rules in order, for every chain declared (built-in ones too). */
type Chains = Map<string, string[]>;

function chainsOf(dump: string): Chains {
  const chains: Chains = new Map();
  let table = '';
  for (const line of dump.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1);
    else if (line.startsWith(':')) chains.set(`${table}/${line.slice(1).split(' ')[0]}`, []);
    else if (line.startsWith('-A ')) chains.get(`${table}/${line.split(' ')[1]}`)?.push(line);
  }
  return chains;
}

// Every table at once: in this namespace only kproxy writes (the render's mangle, filter, nat),
// besides the hint.
const kernelChains = async () => {
  const chains = chainsOf(await output(save, []));
  chains.delete('mangle/KUBE-IPTABLES-HINT');
  return chains;
};
const BUILTIN = /\/(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING)$/;
const same = (a: string[] | undefined, b: string[] | undefined) => a !== undefined && b !== undefined && a.join('\n') === b.join('\n');

/** What differs between the kernel and the model: chains missing, extra or unequal. */
function differences(got: Chains, want: Chains): string[] {
  const out: string[] = [];
  for (const [k, rules] of want) if (!same(got.get(k), rules)) out.push(`${k}: kernel ${JSON.stringify(got.get(k) ?? 'missing')}, model ${JSON.stringify(rules)}`);
  for (const k of got.keys()) if (!want.has(k)) out.push(`${k}: in the kernel only`);
  return out;
}

const counts = { syncs: 0, rejected: 0, accepted: 0, multiRestore: 0, brokenChains: 0, modelMismatches: 0, notFullAfterRejection: 0 };
const problems: string[] = [];
let pending = cluster.all();
let full = true;
let mustBeFull = false;
while (counts.syncs < SYNCS) {
  const before = await kernelChains();
  counts.syncs++;
  await model.sync({ full, ...pending });
  const want = chainsOf(model.render());
  try {
    const r = await kernel.sync({ full, ...pending });
    counts.accepted++;
    if (r.messages > 1) counts.multiRestore++;
    if (mustBeFull && !r.full) counts.notFullAfterRejection++;
    mustBeFull = false;
    full = false;
    const diff = differences(await kernelChains(), want);
    if (diff.length) {
      counts.modelMismatches++;
      if (problems.length < 3) problems.push(`after sync ${counts.syncs}:\n${diff.slice(0, 5).join('\n')}`);
    }
    pending = cluster.change();
  } catch {
    counts.rejected++;
    // Each chain whole, old or new; none that neither version has.
    const after = await kernelChains();
    // A built-in chain of a table that did not exist yet was empty.
    const old = (k: string) => before.get(k) ?? (BUILTIN.test(k) ? [] : undefined);
    const broken = [...after].filter(([k, rules]) => !same(rules, old(k)) && !same(rules, want.get(k))).map(([k]) => k);
    if (broken.length) {
      counts.brokenChains += broken.length;
      if (problems.length < 3) problems.push(`sync ${counts.syncs}: refused, and these chains are neither old nor new: ${broken.slice(0, 5).join(', ')}`);
    }
    // As the agent does after a failure: the next sync is full, with the whole desired state.
    pending = cluster.all();
    full = true;
    mustBeFull = true;
  }
}
console.log(JSON.stringify({ counts, problems }));
