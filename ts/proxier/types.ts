// THE SEAM between the agent and a proxy mode. The agent holds Proxier[] (one per IP family)
// and nothing else of a mode; a mode lives in ts/modes/<mode>/ and is loaded by registry.ts.
import type { Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { IpvsConfig } from '../config/ipvs.js';
import type { UserspaceConfig } from '../config/userspace.js';
import type { IPFamily, ServicePort } from '../model/types.js';

export type ProxyMode = 'nftables' | 'iptables' | 'ipvs' | 'userspace';

/** Service features a mode may or may not program; the agent warns per Service about the rest. */
export type Feature =
  | 'ClusterIP'
  | 'NodePort'
  | 'LoadBalancer'
  | 'LoadBalancerSourceRanges'
  | 'ExternalIPs'
  | 'SessionAffinity'
  | 'ExternalTrafficPolicyLocal'
  | 'InternalTrafficPolicyLocal'
  | 'TopologyHints'
  | 'TerminatingFallback'
  /** Ports of protocol SCTP. */
  | 'SCTP'
  /** Endpoints see the client's address (external traffic policy Local promises it). */
  | 'SourceIPPreservation';

export interface SyncRequest {
  /**
   * Replace the whole ruleset atomically. `upserts` is then the complete desired
   * state (anything else is dropped) and `deletes` is ignored.
   */
  full: boolean;
  upserts: ServicePort[];
  /** Keys of ServicePorts that no longer exist in this family (partial syncs). */
  deletes: string[];
  /** Return the transaction as the mode's text in the report (debug logging). */
  explain?: boolean;
  /** This family's node addressing; omitted means unchanged since the last sync. */
  node?: NodeAddressing;
  /**
   * This family's ServiceCIDR ranges (networking.k8s.io/v1 ServiceCIDR objects): traffic to
   * an IP in them that no Service has is dropped. Omitted means unchanged; [] means none.
   */
  serviceCIDRs?: string[];
}

/** Where this node accepts NodePorts, and what its own addresses are, for one family. */
export interface NodeAddressing {
  /**
   * The addresses NodePorts answer on (nodePortAddresses resolved against the Node and the
   * local interfaces, loopback excluded), or 'all': every local address except loopback.
   */
  nodePortIPs: string[] | 'all';
  /** The node's own IPs (bindAddress, else the Node object's): loadBalancerSourceRanges allow them. */
  nodeIPs: string[];
}

/** How a mode tells traffic from this node's pods (upstream's detect-local modes), per family. */
export type LocalDetector =
  | { mode: 'ClusterCIDR' | 'NodeCIDR'; cidr: string }
  | { mode: 'BridgeInterface'; interface: string }
  | { mode: 'InterfaceNamePrefix'; prefix: string };

export interface RejectedServicePort {
  key: string;
  reason: string;
}

export interface SyncReport {
  full: boolean;
  /** Kernel objects (tables, chains, rules, sets, elements, services...) sent. */
  objects: number;
  /** Messages and bytes sent to the kernel. */
  messages: number;
  bytes: number;
  durationMs: number;
  /** ServicePorts the mode refused; they never reach the kernel. */
  rejected: RejectedServicePort[];
  /** The transaction as text, when the request asked to explain. */
  text?: string;
  /** Mode-specific timings and counts for the sync log line (e.g. nftables: planMs, commitMs). */
  details?: Record<string, number>;
}

/** One packet for explain(): a new connection from `src` to `dst`:`port`. */
export interface TracePacket {
  src: string;
  dst: string;
  port: number;
  protocol: 'TCP' | 'UDP' | 'SCTP';
  /** Sent by the node itself (output path), not received from a pod or the network. */
  fromNode?: boolean;
  /** The interface a received packet came in on (detect-local by interface). */
  iif?: string;
  /**
   * Prefixes the node delivers to itself (input path), i.e. its own addresses (NodePorts,
   * `fib ... type local`). ClusterIPs are not local addresses: unmatched Service traffic is forwarded.
   */
  localCidrs?: string[];
}

export type TraceVerdict = 'DNAT' | 'DROP' | 'REJECT' | 'ACCEPT';

export interface TraceOutcome {
  verdict: TraceVerdict;
  /** "ip:port" (IPv6 in brackets) after DNAT. */
  endpoint?: string;
  masquerade: boolean;
  /** For REJECT: "tcp reset" or "icmp port-unreachable" (or the mode's wording). */
  rejectWith?: string;
}

export interface TraceResult {
  /** Every outcome the packet can have (one per endpoint the load balancer can pick), sorted. */
  outcomes: TraceOutcome[];
  /** upstream's ServicePortName, "ns/name:port", when a Service matched. */
  service?: string;
  /** The rules the packet passed, "chain: rule", in order (first outcome's path). */
  path: string[];
}

export interface Proxier {
  readonly mode: ProxyMode;
  readonly family: IPFamily;
  readonly features: ReadonlySet<Feature>;
  /** Programs the changes as one atomic transaction. Counts its failures in its own metrics. */
  sync(req: SyncRequest): Promise<SyncReport>;
  /** The desired ruleset as the mode's canonical text (golden tests, `plan`, debug). */
  render(): string;
  /** Traces one packet through the desired ruleset. */
  explain(packet: TracePacket): TraceResult;
  /**
   * Removes this mode's rules for this family; missing rules are fine. Says whether there were
   * any (true: something was deleted, false: nothing was there), or undefined when it cannot tell.
   */
  cleanup(): Promise<boolean | undefined>;
  /**
   * Watches for the mode's rules being changed by someone else (iptables' canary chains every
   * `intervalMs`; nftables' ruleset notifications) and calls `lost` when they are: the agent
   * then syncs, in full unless `full` is false (the mode itself knows what to repair). Returns
   * the stop function.
   */
  monitor?(lost: (why: string, full?: boolean) => void, intervalMs: number): () => void;
  /**
   * Readies the kernel before the first sync (IPVS: its modules and sysctls); a failure is fatal
   * at startup, with an error that says what is missing.
   */
  prepare?(): Promise<void>;
}

/** IPVS mode's settings (the ipvs.* fields and --ipvs-* flags), as the config resolves them. */
export type IpvsModeOptions = IpvsConfig;

/** What a mode's factory gets; everything with I/O is injected. */
export interface ProxierOptions {
  family: IPFamily;
  /** Pod traffic detection; none: no off-cluster masquerade rule and no pod short-circuit. */
  localDetector?: LocalDetector;
  masqueradeAll: boolean;
  masqueradeBit: number;
  /** iptables mode, IPv4: NodePorts on 127.0.0.1 (default true, as upstream). */
  localhostNodePorts?: boolean;
  /** IPVS mode's settings (defaults when unset). */
  ipvs?: IpvsModeOptions;
  /** userspace mode's settings (defaults when unset). */
  userspace?: UserspaceConfig;
  /** Program an in-memory fake with kernel semantics instead of the kernel. */
  fake: boolean;
  registry: Registry;
  logger: Logger;
}
