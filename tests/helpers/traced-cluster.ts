// Kubernetes objects → tracker → a proxier on the in-memory fake, ready to explain():
// the kernel-free half of the packet-flow tables. Any mode can be traced this way.
import pino from 'pino';
import { Registry } from 'prom-client';
import type { IPFamily } from '../../ts/model/types.js';
import { localDetectors } from '../../ts/proxier/local-detector.js';
import { createProxiers, implementedModes } from '../../ts/proxier/registry.js';
import type { LocalDetector, Proxier, ProxyMode, TraceResult } from '../../ts/proxier/types.js';
import type { KubeObject } from '../../ts/sources/types.js';
import { ChangeTracker } from '../../ts/tracker/change-tracker.js';

export interface TracedCluster {
  proxiers: Map<IPFamily, Proxier>;
  invalid: string[];
  /**
   * Traces a new connection; the destination's family picks the proxier. localCidrs: what the
   * node delivers to itself (default: its node IPs); iif: the interface it came in on.
   */
  trace(src: string, dst: string, port: number, protocol: 'TCP' | 'UDP' | 'SCTP', fromNode?: boolean, localCidrs?: string[], iif?: string): TraceResult;
}

export interface TracedClusterOptions {
  mode?: ProxyMode;
  nodeName?: string;
  /** Pod CIDRs for a ClusterCIDR detector (default 10.244.0.0/16, fd00:244::/48). */
  clusterCIDRs?: string[];
  /** Another detect-local mode, for both families. */
  localDetector?: LocalDetector;
  objects: KubeObject[];
  /** The node's IPs (both families); NodePorts answer on them unless nodePortAll. */
  nodeIPs?: string[];
  nodePortAll?: boolean;
  serviceCIDRs?: string[];
}

export async function tracedCluster(o: TracedClusterOptions): Promise<TracedCluster> {
  const families: IPFamily[] = ['IPv4', 'IPv6'];
  const invalid: string[] = [];
  const tracker = new ChangeTracker({ families, nodeName: o.nodeName ?? 'node-1', onInvalid: (kind, reason, ref) => invalid.push(`${kind} ${reason} ${ref}`) });
  for (const obj of o.objects) tracker.onEvent(obj.kind as 'Service' | 'EndpointSlice' | 'Node', 'ADDED', obj);
  const list = await createProxiers(o.mode ?? 'nftables', families, {
    localDetectors: o.localDetector
      ? { IPv4: o.localDetector, IPv6: o.localDetector }
      : localDetectors(families, { mode: 'ClusterCIDR', clusterCIDRs: o.clusterCIDRs ?? ['10.244.0.0/16', 'fd00:244::/48'] }),
    masqueradeAll: false,
    masqueradeBit: 14,
    fake: true,
    registry: new Registry(),
    logger: pino({ level: 'silent' }),
  });
  const proxiers = new Map<IPFamily, Proxier>();
  for (const p of list) {
    const v6 = p.family === 'IPv6';
    const nodeIPs = (o.nodeIPs ?? []).filter((ip) => ip.includes(':') === v6);
    const report = await p.sync({
      full: true,
      upserts: tracker.all(p.family),
      deletes: [],
      node: { nodePortIPs: o.nodePortAll ? 'all' : nodeIPs, nodeIPs },
      serviceCIDRs: (o.serviceCIDRs ?? []).filter((c) => c.includes(':') === v6),
    });
    for (const r of report.rejected) invalid.push(`ServicePort ${r.key}: ${r.reason}`);
    proxiers.set(p.family, p);
  }
  return {
    proxiers,
    invalid,
    trace: (src, dst, port, protocol, fromNode = false, localCidrs, iif) =>
      proxiers.get(dst.includes(':') ? 'IPv6' : 'IPv4')!.explain({
        src, dst, port, protocol, fromNode, iif,
        localCidrs: localCidrs ?? (o.nodeIPs ?? []).map((ip) => (ip.includes(':') ? `${ip}/128` : `${ip}/32`)),
      }),
  };
}

/** A trace as a packet-flow table cell: "ip:port, ip:port" (sorted), or DROP / REJECT / ACCEPT. */
export function verdictCell(r: TraceResult): string {
  const dnat = r.outcomes.filter((o) => o.verdict === 'DNAT').map((o) => o.endpoint!);
  if (dnat.length === r.outcomes.length && dnat.length > 0) return [...new Set(dnat)].sort().join(', ');
  return [...new Set(r.outcomes.map((o) => (o.verdict === 'REJECT' ? `REJECT (${o.rejectWith})` : o.verdict)))].sort().join(' | ');
}

/** Whether every outcome is masqueraded ("yes"), none is ("no"), or it depends ("mixed"). */
export function masqueradeCell(r: TraceResult): 'yes' | 'no' | 'mixed' {
  const m = new Set(r.outcomes.map((o) => o.masquerade));
  return m.size > 1 ? 'mixed' : m.has(true) ? 'yes' : 'no';
}

/**
 * THE place for each mode's known exceptions to the shared packet-flow tables: row name →
 * the verdict that mode gives instead, and why. Every table runs in every implemented mode.
 */
export const MODE_EXCEPTIONS: Partial<Record<ProxyMode, Record<string, { verdict: string; why: string }>>> = {
  nftables: {},
};

/** The modes the shared tables run in. */
// iptables, IPVS and userspace modes have no tracer yet: their proof is the real-packet matrix
// (tests/netns/iptables-mode.test.ts, tests/netns/userspace-mode.test.ts; tests/vm/*.vmtest.ts in the VM).
const UNTRACED: readonly ProxyMode[] = ['iptables', 'ipvs', 'userspace'];
export const MODES: ProxyMode[] = implementedModes().filter((m) => !UNTRACED.includes(m));

/** The verdict `mode` must give for row `name`: the table's, unless the mode lists an exception. */
export function expectedIn(mode: ProxyMode, name: string, verdict: string): string {
  return MODE_EXCEPTIONS[mode]?.[name]?.verdict ?? verdict;
}
