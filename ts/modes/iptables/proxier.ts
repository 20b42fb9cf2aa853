// iptables mode behind the Proxier seam: the addon's IptablesRules holds the desired state and
// renders upstream's chains as `iptables-restore` input (every chain on a full sync, only the
// changed ones otherwise); this side applies it with the tool every node has
// (`iptables-restore --noflush -w`, one transaction per table) and keeps the jumps from the
// built-in chains, which kproxy shares with the rest of the node.
import type { Logger } from 'pino';
import { fromAddonError, ProxierError } from '../../addon/errors.js';
import { loadAddon, type NativeIptablesJump, type NativeIptablesRules } from '../../addon/native.js';
import { encodeServicePorts } from '../../addon/wire.js';
import type { IPFamily } from '../../model/types.js';
import { nativeNode, nativeOptions } from '../../proxier/addon-options.js';
import type { Feature, Proxier, ProxierOptions, SyncReport, SyncRequest, TraceResult } from '../../proxier/types.js';
import { readSysctl, ROUTE_LOCALNET, setSysctl, TCP_BE_LIBERAL } from '../../proxier/sysctl.js';
import { nodeBackend } from './backend.js';
import { output, run } from './exec.js';
import { iptablesMetrics, type IptablesMetrics } from './metrics.js';

/** Every Service feature upstream's iptables mode has. */
export const IPTABLES_FEATURES: ReadonlySet<Feature> = new Set<Feature>([
  'ClusterIP', 'NodePort', 'ExternalIPs', 'LoadBalancer', 'LoadBalancerSourceRanges', 'SessionAffinity',
  'ExternalTrafficPolicyLocal', 'InternalTrafficPolicyLocal', 'TopologyHints', 'TerminatingFallback', 'SCTP', 'SourceIPPreservation',
]);

/**
 * Tuning: nat KUBE-SERVICES dispatches through a tree of chains above this many rules (the
 * addon's default when unset). Tests set 0 to run the packet matrix through the tree.
 */
export const DISPATCH_ENV = 'KPROXY_IPTABLES_DISPATCH_ABOVE';

/** Tuning: the jump rules per restore on the nft backend (NFT_MAX_JUMPS when unset); tests set it low. */
export const MAX_JUMPS_ENV = 'KPROXY_IPTABLES_MAX_JUMPS';

/** A whole-number tuning variable, or undefined when unset. */
function tuning(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  if (!/^\d+$/.test(v)) throw new ProxierError('E_INVALID_OPTION', `${name} must be a whole number, not ${JSON.stringify(v)}`);
  return Number(v);
}

/** How long to wait for the xtables lock (upstream waits 5 s too). */
const LOCK_WAIT_S = '5';
/** A partial sync checks the built-in chains' jumps when the last check is older than this. */
const JUMP_CHECK_MS = 30_000;
const CANARY = 'KUBE-PROXY-CANARY';
/**
 * On the nft backend a sync is applied in restores of at most this many jump rules:
 * iptables-nft-restore's time grows with one input's jumps times the chains they jump to
 * (a full program at 10k Services x 10 endpoints: minutes as one input). Each restore keeps
 * every chain whole and its targets present (crates/kproxy-proxier/src/iptables/writer.rs).
 */
export const NFT_MAX_JUMPS = 2000;
/** A chain `--cleanup` removes, in iptables-save's output (KUBE-FIREWALL and KUBE-MARK-MASQ stay). */
const OWNED_IN_SAVE = /^:KUBE-(SERVICES|NODEPORTS|POSTROUTING|EXTERNAL-SERVICES|FORWARD|SVC-|SVL-|EXT-|FW-|SEP-)/m;

/** Whether NodePorts answer on an IPv4 loopback address: every local address, or one in 127/8. */
function reachesLoopback(node: SyncRequest['node']): boolean {
  return !node || node.nodePortIPs === 'all' || node.nodePortIPs.some((ip) => ip.startsWith('127.'));
}

interface Commands {
  ipt: string;
  save: string;
  restore: string;
}

/** The chain names in the kernel's nat table (the addon keeps only the ones this mode makes). */
async function natChains(save: string): Promise<string[]> {
  return natChainsIn(await output(save, ['-t', 'nat']));
}

/** The KUBE-* chains of the nat table in an iptables-save dump. */
function natChainsIn(dump: string): string[] {
  const nat = /^\*nat\n([\s\S]*?)^COMMIT$/m.exec(dump)?.[1] ?? '';
  return [...nat.matchAll(/^:(KUBE-\S+) /gm)].map((m) => m[1]);
}

export class IptablesProxier implements Proxier {
  readonly mode = 'iptables' as const;
  readonly family: IPFamily;
  readonly features = IPTABLES_FEATURES;
  private readonly native: NativeIptablesRules;
  private readonly metrics: IptablesMetrics;
  private readonly logger: Logger;
  private readonly fake: boolean;
  /** This family's tools, of the node's backend (backend.ts), once detected. */
  private tools?: Commands;
  private jumpsCheckedAt = -Infinity;
  /** A full restore has landed since the start or since the canary was last found gone. */
  private programmed = false;
  /** IPv4 with --iptables-localhost-nodeports (route_localnet is set when NodePorts reach loopback). */
  private readonly localhostNodePorts: boolean;

  constructor(opts: ProxierOptions) {
    this.family = opts.family;
    this.metrics = iptablesMetrics(opts.registry);
    // Exported at 0 from the start, as upstream's.
    this.metrics.restoreFailuresTotal.inc({ ip_family: opts.family }, 0);
    this.metrics.partialRestoreFailuresTotal.inc({ ip_family: opts.family }, 0);
    this.logger = opts.logger;
    this.fake = opts.fake;
    const { IptablesRules } = loadAddon();
    try {
      // As upstream: nf_conntrack_tcp_be_liberal set (--conntrack-tcp-be-liberal) means no INVALID drop.
      const liberal = Number(readSysctl(TCP_BE_LIBERAL) ?? '0') !== 0;
      if (liberal) opts.logger.info({ ipFamily: opts.family }, 'nf_conntrack_tcp_be_liberal set, not installing DROP rules for INVALID packets');
      this.localhostNodePorts = opts.family === 'IPv4' && opts.localhostNodePorts !== false;
      this.native = new IptablesRules({
        ...nativeOptions(opts),
        dispatchAbove: tuning(DISPATCH_ENV),
        localhostNodePorts: this.localhostNodePorts,
        dropInvalid: !liberal,
      });
    } catch (e) {
      throw fromAddonError(e);
    }
  }

  private async commands(): Promise<Commands> {
    if (!this.tools) {
      const t = await nodeBackend(this.logger);
      this.tools = { ipt: t.tool(this.family), save: t.tool(this.family, '-save'), restore: t.tool(this.family, '-restore') };
      if (t.backend === 'nft') this.native.setChunking(tuning(MAX_JUMPS_ENV) ?? NFT_MAX_JUMPS);
    }
    return this.tools;
  }

  async sync(req: SyncRequest): Promise<SyncReport> {
    const started = performance.now();
    const cmd = this.fake ? undefined : await this.commands();
    const { text, rejected } = encodeServicePorts(req.upserts);
    // A full sync takes over what another run (or upstream kube-proxy) left: its stale chains go.
    if (req.full && cmd) this.native.adopt(await natChains(cmd.save));
    let plan;
    try {
      plan = this.native.plan({ full: req.full, upserts: text, deletes: req.deletes, node: nativeNode(req.node), serviceCidrs: req.serviceCIDRs });
    } catch (e) {
      throw fromAddonError(e);
    }
    const restoreStart = performance.now();
    // Nothing changed: nothing to write.
    for (const [k, input] of (cmd ? plan.restores : []).entries()) {
      const r = await run(cmd!.restore, ['--noflush', '-w', LOCK_WAIT_S], input);
      if (r.code !== 0) {
        this.native.committed(false);
        this.metrics.restoreFailuresTotal.inc({ ip_family: this.family });
        if (!plan.full) this.metrics.partialRestoreFailuresTotal.inc({ ip_family: this.family });
        const which = plan.restores.length > 1 ? ` (restore ${k + 1} of ${plan.restores.length})` : '';
        const err = new ProxierError('E_KERNEL_REJECTED', `${cmd!.restore} failed${which} (exit ${r.code}): ${r.stderr.trim().slice(0, 2000)}`);
        this.logger.error({ ipFamily: this.family, err: err.message }, 'Failed to execute iptables-restore');
        throw err;
      }
    }
    this.native.committed(true);
    if (plan.full) this.programmed = true;
    // The jumps live in chains the rest of the node shares (a firewall reload flushes them):
    // checked on full syncs, and on any sync once JUMP_CHECK_MS has passed.
    if (cmd && (req.full || performance.now() - this.jumpsCheckedAt > JUMP_CHECK_MS)) {
      await this.ensureChains(cmd.ipt, plan.ensureChains);
      await this.ensureJumps(cmd.ipt, plan.jumps);
      this.jumpsCheckedAt = performance.now();
    }
    // Only now: CVE-2020-8558's other half, KUBE-FIREWALL's martian drop and its jumps, is in place.
    if (cmd && req.full && this.localhostNodePorts && reachesLoopback(req.node)) await setSysctl(ROUTE_LOCALNET, '1', this.logger);
    const restoreMs = performance.now() - restoreStart;
    for (const [table, total, written] of [['filter', plan.filterTotal, plan.filterRules], ['nat', plan.natTotal, plan.natRules]] as const) {
      this.metrics.rulesTotal.set({ ip_family: this.family, table }, total);
      this.metrics.rulesLast.set({ ip_family: this.family, table }, written);
    }
    return {
      full: plan.full,
      objects: plan.chains + plan.rules,
      messages: plan.restores.length,
      bytes: plan.restores.reduce((n, r) => n + Buffer.byteLength(r), 0),
      durationMs: performance.now() - started,
      rejected: [...rejected, ...plan.rejected],
      text: req.explain ? plan.restores.join('') : undefined,
      details: { planMs: Number(plan.planMs.toFixed(3)), restoreMs: Number(restoreMs.toFixed(3)), chains: plan.chains, rules: plan.rules },
    };
  }

  /** Chains the jumps need that kproxy does not write (the kubelet's KUBE-FIREWALL in IPv6). */
  private async ensureChains(ipt: string, chains: { table: string; chain: string }[]): Promise<void> {
    for (const c of chains) {
      const r = await run(ipt, ['-w', LOCK_WAIT_S, '-t', c.table, '-N', c.chain]);
      // 1: it exists already (or the lock); the -C of the jumps tells.
      if (r.code !== 0 && r.code !== 1) throw new ProxierError('E_KERNEL_REJECTED', `${ipt} -t ${c.table} -N ${c.chain} (exit ${r.code}): ${r.stderr.trim()}`);
    }
  }

  /** Each jump missing from its built-in chain goes on top, so that they end in the listed order. */
  private async ensureJumps(ipt: string, jumps: NativeIptablesJump[]): Promise<void> {
    for (const j of [...jumps].reverse()) {
      const check = await run(ipt, ['-w', LOCK_WAIT_S, '-t', j.table, '-C', j.chain, ...j.args]);
      if (check.code === 0) continue;
      // 1 is "no such rule"; anything else (the lock, a bad rule) must not add a duplicate.
      if (check.code !== 1) throw new ProxierError('E_KERNEL_REJECTED', `${ipt} -t ${j.table} -C ${j.chain} (exit ${check.code}): ${check.stderr.trim()}`);
      const add = await run(ipt, ['-w', LOCK_WAIT_S, '-t', j.table, '-I', j.chain, '1', ...j.args]);
      if (add.code !== 0) throw new ProxierError('E_KERNEL_REJECTED', `${ipt} -t ${j.table} -I ${j.chain}: ${add.stderr.trim()}`);
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
        .then((gone) => {
          if (gone) {
            this.programmed = false;
            lost(`${gone}: ${CANARY} is gone`);
          }
        })
        .finally(() => (busy = false));
    }, intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  /** The first table whose canary chain is missing, as `<tool> -t <table>`. */
  private async canaryGone(): Promise<string | undefined> {
    const { ipt } = await this.commands();
    for (const table of ['mangle', 'nat', 'filter']) {
      const r = await run(ipt, ['-w', LOCK_WAIT_S, '-t', table, '-S', CANARY]);
      // Gone, or its whole table with it; 4 (the lock, resources) and a missing tool prove nothing.
      if (r.code !== 0 && r.code !== 4 && r.code !== null) return `${ipt} -t ${table}`;
    }
    return undefined;
  }

  explain(): TraceResult {
    throw new ProxierError('E_INVALID_OPTION', 'tracing is not implemented in iptables mode yet');
  }

  /** As upstream's CleanupLeftovers: its jumps, its chains and every per-Service chain go. */
  async cleanup(): Promise<boolean> {
    if (this.fake) return false;
    const { ipt, save, restore: restoreCmd } = await this.commands();
    // Nothing of this mode's (or upstream's) here: nothing to run (another mode's startup calls
    // this). The whole dump: asking for one table would make the legacy backend create it.
    const dump = await output(save, []);
    if (!OWNED_IN_SAVE.test(dump)) return false;
    const { jumps, restore } = this.native.cleanup(natChainsIn(dump));
    // The jumps first: a chain still referenced cannot be deleted.
    for (const j of jumps) {
      while ((await run(ipt, ['-w', LOCK_WAIT_S, '-t', j.table, '-D', j.chain, ...j.args])).code === 0);
    }
    const r = await run(restoreCmd, ['--noflush', '-w', LOCK_WAIT_S], restore);
    if (r.code !== 0) throw new ProxierError('E_KERNEL_REJECTED', `${restoreCmd} (cleanup) failed: ${r.stderr.trim()}`);
    return true;
  }
}

export function createIptablesProxier(opts: ProxierOptions): IptablesProxier {
  return new IptablesProxier(opts);
}
