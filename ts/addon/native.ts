// The only module that loads the native addon (native/index.cjs, built by napi-rs).
// Each mode's binding class is declared here as the addon exports it.
import { createRequire } from 'node:module';
import { ProxierError } from './errors.js';

export interface NativeSyncRequest {
  full: boolean;
  /** Wire text (ts/addon/wire.ts). */
  upserts: string;
  deletes: string[];
  explain?: boolean;
  /** Node addressing; omitted: unchanged. */
  node?: { nodePortAll: boolean; nodePortIps: string[]; nodeIps: string[] };
  /** ServiceCIDR ranges; omitted: unchanged. */
  serviceCidrs?: string[];
}

export interface NativeSyncReport {
  full: boolean;
  objects: number;
  messages: number;
  bytes: number;
  durationMs: number;
  planMs: number;
  commitMs: number;
  rejected: { key: string; reason: string }[];
  text?: string | null;
  /** The best-effort transaction after the sync (stale chains, affinity purges) failed. */
  cleanupFailed: boolean;
  /** A `syncNow` left its after-commit work (stale chains, affinity purges) for `afterCommit`. */
  afterCommitPending: boolean;
}

export interface NativeNftablesProxier {
  sync(req: NativeSyncRequest): Promise<NativeSyncReport>;
  /** `sync` on the calling thread (small partial syncs); null: declined (use `sync`), nothing changed. */
  syncNow(req: NativeSyncRequest): NativeSyncReport | null;
  /** The after-commit work a `syncNow` left, on the pool; true if it failed. */
  afterCommit(): Promise<boolean>;
  render(): string;
  /** TraceResult as JSON. */
  explain(src: string, dst: string, port: number, protocol: string, fromNode: boolean, iif: string, localCidrs: string[]): string;
  fakeDump(): string;
  fakeDeleteTable(): void;
  fakeFailNext(errno: number): void;
  cleanup(): Promise<void>;
  /** Another process changed this family's table since the last sync (null: no notifications). */
  foreignChangePending(): boolean | null;
  /** Times (per process) the notifications' socket buffer overflowed and they were lost. */
  monitorOverflows(): number;
}

/** A rule in a built-in chain: `iptables -t table -I chain ...args`. */
export interface NativeIptablesJump { table: string; chain: string; args: string[] }

export interface NativeIptablesPlan {
  /** `iptables-restore --noflush` inputs, applied in turn: the chains to write and to delete (none when nothing changed). */
  restores: string[];
  /** Every chain written (a full sync, or the first after a failed restore). */
  full: boolean;
  jumps: NativeIptablesJump[];
  /** Chains to make exist before the jumps (never flushed). */
  ensureChains: { table: string; chain: string }[];
  rejected: { key: string; reason: string }[];
  /** Chains written and deleted; rules written. */
  chains: number;
  rules: number;
  filterRules: number;
  natRules: number;
  /** Rules owned after this sync. */
  filterTotal: number;
  natTotal: number;
  planMs: number;
}

export interface NativeIptablesRules {
  plan(req: NativeSyncRequest): NativeIptablesPlan;
  committed(ok: boolean): void;
  /** Splits each plan into restores of at most `maxJumps` jump rules (0: one restore). */
  setChunking(maxJumps: number): void;
  render(): string;
  /** Per-Service chains found in the nat table (iptables-save): deleted by the next restore unless wanted. */
  adopt(natChains: string[]): void;
  /** `--cleanup`: the jumps to delete first, then the restore that removes the chains. */
  cleanup(natChains: string[]): { jumps: NativeIptablesJump[]; restore: string };
}

/** One IPVS sync (crates/kproxy-napi/src/ipvs.rs). */
export interface NativeIpvsReport {
  full: boolean;
  objects: number;
  ipvsOps: number;
  ipvsFailed: number;
  /** The first refused operation: its errno and the operation in ipvsadm's syntax. */
  firstErrno?: number | null;
  firstFailed?: string | null;
  tableOps: number;
  /** A sync with no changes found and repaired this many differences in the kernel. */
  driftRepaired: number;
  bytes: number;
  addressesAdded: number;
  addressesDeleted: number;
  /** Address changes on kube-ipvs0 the kernel refused. */
  addressesFailed: number;
  services: number;
  destinations: number;
  draining: number;
  durationMs: number;
  /** A full sync's time: table batch, kube-ipvs0's addresses, IPVS dumps, IPVS operations. */
  phasesMs: number[];
  rejected: { key: string; reason: string }[];
  text?: string | null;
}

export interface NativeIpvsProxier {
  sync(req: NativeSyncRequest): Promise<NativeIpvsReport>;
  /** Deletes draining real servers whose connections have ended. */
  reap(): Promise<NativeIpvsReport>;
  /** The first difference between the kernel's virtual servers (or the table) and the last sync's result; '' when none. */
  drift(): Promise<string>;
  cleanup(): Promise<NativeIpvsReport>;
  render(): string;
  /** Throws unless the kernel has the configured scheduler (upstream's start-up check). */
  probeScheduler(): void;
  /** IPVS's TCP, TCP FIN and UDP timeouts in seconds; 0 leaves one as it is. */
  setTimeouts(tcp: number, tcpFin: number, udp: number): void;
  /** Test hook for the fake: one real server's connection counts. */
  fakeSetConnections(service: string, protocol: number, dest: string, active: number, inactive: number): void;
}

/** One userspace sync (crates/kproxy-napi/src/userspace.rs). */
export interface NativeUserspaceReport {
  full: boolean;
  objects: number;
  services: number;
  frontends: number;
  opened: number;
  closed: number;
  /** Frontends wanted but not listening (address in use, say): retried at every sync. */
  listenFailed: number;
  firstErrno?: number | null;
  firstFailed?: string | null;
  addressesAdded: number;
  addressesDeleted: number;
  addressesFailed: number;
  driftRepaired: number;
  /** ServicePorts of a protocol the mode cannot proxy (SCTP), by name. */
  skipped: string[];
  /** Which link holds the Service addresses. */
  link?: string | null;
  durationMs: number;
  rejected: { key: string; reason: string }[];
  text?: string | null;
}

/** One Service's counters in the userspace proxy; `failed` by failureReasons, buckets cumulative. */
export interface NativeUserspaceStats {
  service: string;
  accepted: number;
  active: number;
  failed: number[];
  connectErrors: number;
  bytesIn: number;
  bytesOut: number;
  connectBuckets: number[];
  connectCount: number;
  connectSum: number;
}

export interface NativeUserspaceProxier {
  sync(req: NativeSyncRequest): Promise<NativeUserspaceReport>;
  /** The Service addresses missing from the link, in words; '' when none is (or a full sync is due). */
  drift(): Promise<string>;
  cleanup(): Promise<NativeUserspaceReport>;
  render(): string;
  stats(): NativeUserspaceStats[];
  engineStats(): { fdExhausted: number; acceptErrors: number; lastError?: string | null };
}

/** One conntrack reconcile pass (crates/kproxy-napi/src/conntrack.rs). */
export interface NativeConntrackReport { flows: number; stale: number; deleted: number; missing: number; failed: number; failedErrno?: number | null; interrupted: boolean; durationMs: number }

export interface NativeModule {
  NftablesProxier: new (opts: {
    family: string;
    /** detect-local: mode ('ClusterCIDR', 'NodeCIDR', 'BridgeInterface', 'InterfaceNamePrefix') and its CIDR or name. */
    localDetector?: { mode: string; value: string };
    masqueradeAll?: boolean;
    masqueradeBit?: number;
    fake?: boolean;
  }) => NativeNftablesProxier;
  IptablesRules: new (opts: {
    family: string;
    localDetector?: { mode: string; value: string };
    masqueradeAll?: boolean;
    masqueradeBit?: number;
    /** nat KUBE-SERVICES becomes a dispatch tree above this many rules. */
    dispatchAbove?: number;
    /** The benchmark's baseline: partial syncs write every shared chain, as upstream's do. */
    upstreamPartial?: boolean;
    /** IPv4 NodePorts on 127.0.0.1, with KUBE-FIREWALL's martian drop (default true). */
    localhostNodePorts?: boolean;
    /** KUBE-FORWARD's conntrack-INVALID drop (default true). */
    dropInvalid?: boolean;
  }) => NativeIptablesRules;
  IpvsProxier: new (opts: {
    family: string;
    localDetector?: { mode: string; value: string };
    masqueradeAll?: boolean;
    masqueradeBit?: number;
    /** '' or unset: rr. */
    scheduler?: string;
    excludeCidrs?: string[];
    fake?: boolean;
    /** The fake's node addresses, where NodePorts answer when they answer on every address. */
    fakeNodeAddresses?: string[];
  }) => NativeIpvsProxier;
  UserspaceProxier: new (opts: {
    family: string;
    localDetector?: { mode: string; value: string };
    /** Active connections per Service; 0: no cap. */
    maxConnectionsPerService?: number;
    udpIdleTimeoutMs?: number;
    threads?: number;
    bufferBytes?: number;
    fake?: boolean;
    fakeNodeAddresses?: string[];
  }) => NativeUserspaceProxier;
  userspaceConstants(): { failureReasons: string[]; connectBuckets: number[] };
  /** services: one UDP ServicePort per line, `VIPS PORT NODEPORT ENDPOINTS` (ts/conntrack/reconciler.ts). */
  reconcileConntrack(family: string, services: string): Promise<NativeConntrackReport>;
}

let native: NativeModule | undefined;

export function loadAddon(): NativeModule {
  if (!native) {
    const require = createRequire(import.meta.url);
    try {
      native = require('../../native/index.cjs') as NativeModule;
    } catch (e) {
      throw new ProxierError(
        'E_ADDON_MISSING',
        // From npm, the addon is in a platform package (npm/<platform>/), an optional dependency.
        `the kproxy proxier addon did not load (${(e as Error).message.split('\n')[0]}); in a checkout, run: npm run build; `
          + `installed from npm, kproxy-${process.platform}-${process.arch}-gnu must be installed with it (not --omit=optional)`,
      );
    }
  }
  return native;
}
