// iptables mode behind the Proxier seam: the addon's IptablesRules holds the desired state and
// renders upstream's chains as `iptables-restore` input (every chain on a full sync, only the
// changed ones otherwise); this side applies it with the tool every node has
// (`iptables-restore --noflush -w`, one transaction per table) and keeps the jumps from the
// built-in chains, which kproxy shares with the rest of the node.
import { spawn } from 'node:child_process';
import type { Logger } from 'pino';
import { fromAddonError, ProxierError } from '../../addon/errors.js';
import { loadAddon, type NativeIptablesJump, type NativeIptablesRules } from '../../addon/native.js';
import { encodeServicePorts } from '../../addon/wire.js';
import type { IPFamily } from '../../model/types.js';
import { nativeNode, nativeOptions } from '../../proxier/addon-options.js';
import type { Feature, Proxier, ProxierOptions, SyncReport, SyncRequest, TraceResult } from '../../proxier/types.js';
import { iptablesMetrics, type IptablesMetrics } from './metrics.js';

/** Every Service feature upstream's iptables mode has. */
export const IPTABLES_FEATURES: ReadonlySet<Feature> = new Set<Feature>([
  'ClusterIP', 'NodePort', 'ExternalIPs', 'LoadBalancer', 'LoadBalancerSourceRanges', 'SessionAffinity',
  'ExternalTrafficPolicyLocal', 'InternalTrafficPolicyLocal', 'TopologyHints', 'TerminatingFallback',
]);

/**
 * Tuning: nat KUBE-SERVICES dispatches through a tree of chains above this many rules (the
 * addon's default when unset). Tests set 0 to run the packet matrix through the tree.
 */
export const DISPATCH_ENV = 'KPROXY_IPTABLES_DISPATCH_ABOVE';

function dispatchAbove(): number | undefined {
  const v = process.env[DISPATCH_ENV];
  if (v === undefined || v === '') return undefined;
  if (!/^\d+$/.test(v)) throw new ProxierError('E_INVALID_OPTION', `${DISPATCH_ENV} must be a whole number, not ${JSON.stringify(v)}`);
  return Number(v);
}

/** How long to wait for the xtables lock (upstream waits 5 s too). */
const LOCK_WAIT_S = '5';
/** A partial sync checks the built-in chains' jumps when the last check is older than this. */
const JUMP_CHECK_MS = 30_000;
const CANARY = 'KUBE-PROXY-CANARY';

interface Run {
  code: number | null;
  stderr: string;
}

/** Runs a tool with `input` on stdin; never rejects (a missing binary is code null). */
function run(cmd: string, args: string[], input = ''): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => resolve({ code: null, stderr: err.message }));
    child.on('close', (code) => resolve({ code, stderr }));
    child.stdin.on('error', () => {}); // the tool may exit before reading all of it
    child.stdin.end(input);
  });
}

/** A tool's stdout ('' when it fails). */
function output(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', () => resolve(''));
    child.on('close', (code) => resolve(code === 0 ? out : ''));
  });
}

/** The chain names in the kernel's nat table (the addon keeps only the ones this mode makes). */
async function natChains(tool: string): Promise<string[]> {
  const save = await output(`${tool}-save`, ['-t', 'nat']);
  return [...save.matchAll(/^:(KUBE-\S+) /gm)].map((m) => m[1]);
}

export class IptablesProxier implements Proxier {
  readonly mode = 'iptables' as const;
  readonly family: IPFamily;
  readonly features = IPTABLES_FEATURES;
  private readonly native: NativeIptablesRules;
  private readonly metrics: IptablesMetrics;
  private readonly logger: Logger;
  private readonly fake: boolean;
  /** iptables or ip6tables (Debian's alternatives pick the node's backend). */
  private readonly tool: string;
  private jumpsCheckedAt = -Infinity;
  /** A full restore has landed since the start or since the canary was last found gone. */
  private programmed = false;

  constructor(opts: ProxierOptions) {
    this.family = opts.family;
    this.metrics = iptablesMetrics(opts.registry);
    // Exported at 0 from the start, as upstream's.
    this.metrics.restoreFailuresTotal.inc({ ip_family: opts.family }, 0);
    this.metrics.partialRestoreFailuresTotal.inc({ ip_family: opts.family }, 0);
    this.logger = opts.logger;
    this.fake = opts.fake;
    this.tool = opts.family === 'IPv4' ? 'iptables' : 'ip6tables';
    const { IptablesRules } = loadAddon();
    try {
      this.native = new IptablesRules({ ...nativeOptions(opts), dispatchAbove: dispatchAbove() });
    } catch (e) {
      throw fromAddonError(e);
    }
  }

  async sync(req: SyncRequest): Promise<SyncReport> {
    const started = performance.now();
    const { text, rejected } = encodeServicePorts(req.upserts);
    // A full sync takes over what another run (or upstream kube-proxy) left: its stale chains go.
    if (req.full && !this.fake) this.native.adopt(await natChains(this.tool));
    let plan;
    try {
      plan = this.native.plan({ full: req.full, upserts: text, deletes: req.deletes, node: nativeNode(req.node), serviceCidrs: req.serviceCIDRs });
    } catch (e) {
      throw fromAddonError(e);
    }
    const restoreStart = performance.now();
    // Nothing changed: nothing to write.
    if (!this.fake && plan.restore !== '') {
      const r = await run(`${this.tool}-restore`, ['--noflush', '-w', LOCK_WAIT_S], plan.restore);
      if (r.code !== 0) {
        this.native.committed(false);
        this.metrics.restoreFailuresTotal.inc({ ip_family: this.family });
        if (!plan.full) this.metrics.partialRestoreFailuresTotal.inc({ ip_family: this.family });
        const err = new ProxierError('E_KERNEL_REJECTED', `${this.tool}-restore failed (exit ${r.code}): ${r.stderr.trim().slice(0, 2000)}`);
        this.logger.error({ ipFamily: this.family, err: err.message }, 'Failed to execute iptables-restore');
        throw err;
      }
    }
    this.native.committed(true);
    if (plan.full) this.programmed = true;
    // The jumps live in chains the rest of the node shares (a firewall reload flushes them):
    // checked on full syncs, and on any sync once JUMP_CHECK_MS has passed.
    if (!this.fake && (req.full || performance.now() - this.jumpsCheckedAt > JUMP_CHECK_MS)) {
      await this.ensureJumps(plan.jumps);
      this.jumpsCheckedAt = performance.now();
    }
    const restoreMs = performance.now() - restoreStart;
    for (const [table, total, written] of [['filter', plan.filterTotal, plan.filterRules], ['nat', plan.natTotal, plan.natRules]] as const) {
      this.metrics.rulesTotal.set({ ip_family: this.family, table }, total);
      this.metrics.rulesLast.set({ ip_family: this.family, table }, written);
    }
    return {
      full: plan.full,
      objects: plan.chains + plan.rules,
      messages: 1,
      bytes: Buffer.byteLength(plan.restore),
      durationMs: performance.now() - started,
      rejected: [...rejected, ...plan.rejected],
      text: req.explain ? plan.restore : undefined,
      details: { planMs: Number(plan.planMs.toFixed(3)), restoreMs: Number(restoreMs.toFixed(3)), chains: plan.chains, rules: plan.rules },
    };
  }

  /** Each jump missing from its built-in chain goes on top, so that they end in the listed order. */
  private async ensureJumps(jumps: NativeIptablesJump[]): Promise<void> {
    for (const j of [...jumps].reverse()) {
      const check = await run(this.tool, ['-w', LOCK_WAIT_S, '-t', j.table, '-C', j.chain, ...j.args]);
      if (check.code === 0) continue;
      // 1 is "no such rule"; anything else (the lock, a bad rule) must not add a duplicate.
      if (check.code !== 1) throw new ProxierError('E_KERNEL_REJECTED', `${this.tool} -t ${j.table} -C ${j.chain} (exit ${check.code}): ${check.stderr.trim()}`);
      const add = await run(this.tool, ['-w', LOCK_WAIT_S, '-t', j.table, '-I', j.chain, '1', ...j.args]);
      if (add.code !== 0) throw new ProxierError('E_KERNEL_REJECTED', `${this.tool} -t ${j.table} -I ${j.chain}: ${add.stderr.trim()}`);
    }
  }

  render(): string {
    return this.native.render();
  }

  /**
   * As upstream's canary: KUBE-PROXY-CANARY in mangle, nat and filter holds no rule and no one
   * else writes it, so when it is gone, someone flushed the tables (a firewalld reload) and
   * the next sync must be full. Checked once the first restore has landed.
   */
  monitor(lost: (why: string) => void, intervalMs: number): () => void {
    if (this.fake) return () => {};
    let busy = false;
    const timer = setInterval(() => {
      if (busy || !this.programmed) return;
      busy = true;
      void this.canaryGone()
        .then((table) => {
          if (table) {
            this.programmed = false;
            lost(`${this.tool} -t ${table}: ${CANARY} is gone`);
          }
        })
        .finally(() => (busy = false));
    }, intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  /** The first table whose canary chain is missing. */
  private async canaryGone(): Promise<string | undefined> {
    for (const table of ['mangle', 'nat', 'filter']) {
      const r = await run(this.tool, ['-w', LOCK_WAIT_S, '-t', table, '-S', CANARY]);
      // 1 is "no chain by that name"; anything else (the lock) proves nothing.
      if (r.code === 1) return table;
    }
    return undefined;
  }

  explain(): TraceResult {
    throw new ProxierError('E_INVALID_OPTION', 'tracing is not implemented in iptables mode yet');
  }

  /** As upstream's CleanupLeftovers: its jumps, its chains and every per-Service chain go. */
  async cleanup(): Promise<void> {
    if (this.fake) return;
    const { jumps, restore } = this.native.cleanup(await natChains(this.tool));
    // The jumps first: a chain still referenced cannot be deleted.
    for (const j of jumps) {
      while ((await run(this.tool, ['-w', LOCK_WAIT_S, '-t', j.table, '-D', j.chain, ...j.args])).code === 0);
    }
    const r = await run(`${this.tool}-restore`, ['--noflush', '-w', LOCK_WAIT_S], restore);
    if (r.code !== 0) throw new ProxierError('E_KERNEL_REJECTED', `${this.tool}-restore (cleanup) failed: ${r.stderr.trim()}`);
  }
}

export function createIptablesProxier(opts: ProxierOptions): IptablesProxier {
  return new IptablesProxier(opts);
}
