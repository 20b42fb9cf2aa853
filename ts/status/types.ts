// The status document the agent serves at /kproxy/status.json, and that `kproxy status` and
// the page at / render. Plain data, mode-neutral: it says what the model asked for and what
// the proxier did with it, never how a mode spells it in the kernel.
import type { IPFamily, ServicePort, SessionAffinity } from '../model/types.js';

/** Where the metrics server serves the document (kproxy's own path: upstream's /statusz is a zpage). */
export const STATUS_JSON_PATH = '/kproxy/status.json';

/** Bumped when a field changes meaning or goes away (additions keep it). */
export const STATUS_VERSION = 1;

/** What became of a ServicePort in its family's last successful sync. */
export type ProgramState =
  /** In the rules, with endpoints to send to. */
  | 'programmed'
  /** In the rules, but no endpoint anywhere: new connections are rejected. */
  | 'no-endpoints'
  /** Changed or new since the last successful sync: the next one programs it. */
  | 'pending'
  /** The proxier refused it (it never reached the kernel); see detail. */
  | 'refused'
  /** The family's last sync failed; the retry replaces the whole ruleset. */
  | 'failed';

export interface EndpointCounts {
  /** Every endpoint of this family the EndpointSlices list (deduplicated). */
  total: number;
  ready: number;
  /** Terminating ones (serving or not): kept for the serving-terminating fallback. */
  terminating: number;
  /** On this node. */
  local: number;
  /** Chosen for Cluster policy traffic on this node (after topology). */
  cluster: number;
  /** Chosen for Local policy traffic (usable local ones). */
  localUsable: number;
}

/** The ServicePort's own fields, as the model has them. */
type PortFields = 'namespace' | 'name' | 'portName' | 'protocol' | 'family' | 'type' | 'clusterIP' | 'port'
  | 'nodePort' | 'externalIPs' | 'loadBalancerSourceRanges' | 'healthCheckNodePort';

export interface ServiceStatus extends Pick<ServicePort, PortFields> {
  /** Upstream's ServicePortName: "ns/name:portName", or "ns/name" for an unnamed port. */
  service: string;
  loadBalancerIPs: string[];
  endpoints: EndpointCounts;
  policy: {
    internal: 'Cluster' | 'Local';
    /** '' when nothing outside the ClusterIP reaches it (no NodePort, external or LB IP). */
    external: 'Cluster' | 'Local' | '';
    affinity: SessionAffinity;
    /** 0 without ClientIP affinity. */
    affinityTimeoutSeconds: number;
    /** spec.trafficDistribution, '' when unset. */
    trafficDistribution: string;
  };
  programmed: {
    state: ProgramState;
    /** Why, when it is not plainly programmed (or what drops part of its traffic). */
    detail: string;
    /** Epoch ms of the sync that last programmed this ServicePort as it is now; absent if none. */
    at?: number;
  };
}

export interface SyncRecord {
  /** Epoch ms when the sync ended. */
  at: number;
  family: IPFamily;
  full: boolean;
  durationMs: number;
  ok: boolean;
  error?: string;
  /** ServicePorts handed to the proxier (a full sync: all of them) and keys deleted. */
  upserts: number;
  deletes: number;
  /** ServicePorts the proxier refused. */
  refused: number;
  /** From the first event the agent received after the previous sync to these rules in place. */
  eventLatencyMs?: number;
  /** From the EndpointSlice's last-change-trigger-time to these rules (network programming latency). */
  triggerLatencyMs?: number;
}

export interface ErrorRecord {
  at: number;
  /** What failed: "sync IPv4", "metrics server", ... */
  source: string;
  message: string;
}

export interface InvalidRecord {
  kind: string;
  reason: string;
  /** The object (and field) it was about. */
  ref: string;
  count: number;
  firstAt: number;
  lastAt: number;
}

export interface StatusDoc {
  kind: 'KproxyStatus';
  version: typeof STATUS_VERSION;
  generatedAt: number;
  mode: string;
  node: string;
  families: IPFamily[];
  startedAt: number;
  /** Services and EndpointSlices listed and the first sync attempted. */
  initialSyncDone: boolean;
  /** Each family's last sync attempt, and its last successful one. */
  lastSync: Partial<Record<IPFamily, { attempt?: SyncRecord; success?: SyncRecord }>>;
  /** Services with changes not yet programmed (the pending metrics' numbers). */
  pending: { services: number; endpoints: number };
  /** Oldest first, at most the recorder's capacity. */
  syncs: SyncRecord[];
  errors: { total: number; recent: ErrorRecord[] };
  invalid: {
    total: number;
    byReason: { kind: string; reason: string; count: number }[];
    /** Most recently seen last. */
    recent: InvalidRecord[];
  };
  /** One per ServicePort and family, sorted by service, protocol, family. */
  services: ServiceStatus[];
}
