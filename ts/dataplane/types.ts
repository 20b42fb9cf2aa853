// The contract between the agent and a dataplane (the Rust addon, or the fake).
// Plain data crosses it: per-family ServicePort specs in, a typed report out.

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export type IPFamily = 'IPv4' | 'IPv6';

/** One usable (Ready, deduplicated) endpoint of a ServicePort. */
export interface EndpointSpec {
  ip: string;
  port: number;
}

/**
 * One ServicePort in one IP family, ready to program.
 * The key is upstream's chain-name base: `${namespace}/${name}/${protocol lowercased}/${portName}`.
 */
export interface ServicePortSpec {
  key: string;
  namespace: string;
  name: string;
  portName: string;
  protocol: Protocol;
  clusterIP: string;
  port: number;
  endpoints: EndpointSpec[];
}

export interface SyncRequest {
  /**
   * Replace the whole table atomically. `upserts` is then the complete desired
   * state (anything else is dropped) and `deletes` is ignored.
   */
  full: boolean;
  upserts: ServicePortSpec[];
  /** Keys of ServicePorts that no longer exist in this family (partial syncs). */
  deletes: string[];
  /** Return the transaction as nft text in the report (debug logging). */
  explain?: boolean;
}

export interface RejectedSpec {
  key: string;
  reason: string;
}

export interface SyncReport {
  full: boolean;
  /** nftables objects (tables, chains, rules, sets, elements) sent. */
  objects: number;
  /** netlink messages and bytes sent in the batch. */
  messages: number;
  bytes: number;
  durationMs: number;
  /** Specs the dataplane refused; they never reach the kernel. */
  rejected: RejectedSpec[];
  /** The transaction as nft text, when the request asked to explain. */
  text?: string;
}

export interface Dataplane {
  readonly family: IPFamily;
  sync(req: SyncRequest): Promise<SyncReport>;
  /** Canonical sorted nft text of the desired ruleset. */
  render(): string;
  /** Delete kproxy's table(s) for this family; missing tables are fine. */
  cleanup(): Promise<void>;
}
