// Run by faults.test.ts inside a fresh network namespace, with KPROXY_FAULT_REJECT set: random
// syncs through the real nftables proxier, half of whose batches the kernel refuses at a random
// message. After each refused sync the kernel must hold exactly what it held before; after each
// accepted one, exactly the model (element for element, against the addon's fake fed the same
// syncs). Prints one JSON line of counts.
import { execFileSync } from 'node:child_process';
import pino from 'pino';
import { Registry } from 'prom-client';
import { NftablesProxier } from '../../ts/modes/nftables/proxier.js';
import { systemTool } from '../../ts/system-tools.js';
import { RandomCluster } from './fault-changes.js';

const REJECTIONS = Number(process.env.FAULT_REJECTIONS ?? 1000);
const cluster = new RandomCluster(Number(process.env.FAULT_SEED ?? 1));

const proxier = (fake: boolean) => new NftablesProxier({
  family: 'IPv4', localDetector: { mode: 'ClusterCIDR', cidr: '10.244.0.0/16' }, masqueradeAll: false, masqueradeBit: 14,
  fake, registry: new Registry(), logger: pino({ level: 'silent' }),
});
const kernel = proxier(false);
const model = proxier(true);

// nftables' nft, not node_modules/.bin's (@vercel/nft) that npm puts first on PATH.
const nft = (...args: string[]) => execFileSync(systemTool('nft'), args, { encoding: 'utf8' });
/** The kernel's table, exactly (handles included: a refused batch must not move even those). */
const snapshot = () => nft('-a', 'list', 'table', 'ip', 'kube-proxy');

/** Every set's and map's elements as "<set>: <element>" lines, sorted. */
function elementsOfDump(dump: string): string[] {
  const out: string[] = [];
  for (const m of dump.matchAll(/^add element ip kube-proxy (\S+) \{ (.*) \}$/gm)) out.push(`${m[1]}: ${m[2]}`);
  return out.sort();
}
function elementsOfKernel(): string[] {
  const out: string[] = [];
  const text = nft('list', 'table', 'ip', 'kube-proxy');
  for (const m of text.matchAll(/^\t(?:set|map) (\S+) \{[^}]*?elements = \{ ([^}]*?) \}/gms)) {
    for (const e of m[2].split(/,\s*/)) if (e.trim()) out.push(`${m[1]}: ${e.replace(/\s+/g, ' ').trim()}`);
  }
  return out.sort();
}

const counts = { syncs: 0, rejected: 0, accepted: 0, partialStates: 0, modelMismatches: 0, notFullAfterRejection: 0, changes: 0 };
const problems: string[] = [];
let pending = cluster.all();
let mustBeFull = false;
let retryFull = false;

while (counts.rejected < REJECTIONS) {
  const before = counts.syncs === 0 ? '' : snapshot();
  counts.syncs++;
  try {
    const r = await kernel.sync({ full: retryFull, ...pending });
    await model.sync({ full: retryFull, ...pending });
    retryFull = false;
    counts.accepted++;
    if (mustBeFull && !r.full) counts.notFullAfterRejection++;
    mustBeFull = false;
    const want = elementsOfDump(model.fakeDump());
    const got = elementsOfKernel();
    if (want.join('\n') !== got.join('\n')) {
      counts.modelMismatches++;
      if (problems.length < 3) problems.push(`after sync ${counts.syncs}: kernel has ${got.length} elements, the model ${want.length}:\n` +
        `${got.filter((e) => !want.includes(e)).slice(0, 5).join('\n')}\n---\n${want.filter((e) => !got.includes(e)).slice(0, 5).join('\n')}`);
    }
    pending = cluster.change();
    counts.changes++;
  } catch {
    counts.rejected++;
    if (counts.syncs > 1 && snapshot() !== before) {
      counts.partialStates++;
      if (problems.length < 3) problems.push(`sync ${counts.syncs}: refused, but the kernel changed`);
    }
    // As the agent does after a failure: the next sync is full, with the whole desired state.
    pending = cluster.all();
    retryFull = true;
    mustBeFull = true;
  }
}
console.log(JSON.stringify({ counts, problems }));
