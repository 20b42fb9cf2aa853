// The mode-neutral model: what every proxier programs. Read-only plain data, built by the
// tracker from Services, EndpointSlices and the Node, after upstream's pkg/proxy
// ServicePort and Endpoint interfaces (serviceport.go, endpoint.go).

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export type IPFamily = 'IPv4' | 'IPv6';
export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer';
export type SessionAffinity = 'None' | 'ClientIP';

/** One endpoint of a ServicePort (addresses[0] of an EndpointSlice endpoint, with the slice port). */
export interface Endpoint {
  ip: string;
  port: number;
  /** Conditions, with upstream's nil defaults applied (ready/serving true, terminating false). */
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  /** endpoint.nodeName; undefined when unset. */
  nodeName?: string;
  /** endpoint.zone; undefined when unset. */
  zone?: string;
  /** hints.forZones[].name; undefined when the endpoint has no zone hints. */
  zoneHints?: string[];
  /** hints.forNodes[].name; undefined when the endpoint has no node hints. */
  nodeHints?: string[];
  /** nodeName equals this node's name. */
  isLocal: boolean;
}

/**
 * One ServicePort in one IP family, with its endpoints and the selection made for this node.
 * Every field of upstream's BaseServicePortInfo is here, already filtered to the family.
 */
export interface ServicePort {
  /** Upstream's chain-name base: `${namespace}/${name}/${protocol lowercased}/${portName}`. */
  key: string;
  namespace: string;
  name: string;
  portName: string;
  protocol: Protocol;
  family: IPFamily;
  type: ServiceType;
  clusterIP: string;
  port: number;
  /** 0 when the port has none. */
  nodePort: number;
  /** spec.externalIPs of this family, canonical. */
  externalIPs: string[];
  /** status.loadBalancer.ingress[].ip of this family, except ipMode Proxy, canonical. */
  loadBalancerVIPs: string[];
  /** spec.loadBalancerSourceRanges of this family, as CIDRs. */
  loadBalancerSourceRanges: string[];
  sessionAffinity: SessionAffinity;
  /** sessionAffinityConfig.clientIP.timeoutSeconds (default 10800); 0 without ClientIP affinity. */
  stickyMaxAgeSeconds: number;
  /** externalTrafficPolicy Local, on a Service that is externally accessible. */
  externalPolicyLocal: boolean;
  /** internalTrafficPolicy Local. */
  internalPolicyLocal: boolean;
  /** spec.healthCheckNodePort when the Service needs one (LoadBalancer with eTP Local); else 0. */
  healthCheckNodePort: number;
  /** spec.trafficDistribution, '' when unset. */
  trafficDistribution: string;
  /** Every known endpoint of this family, deduplicated (non-terminating wins), sorted by IP:port. */
  endpoints: Endpoint[];
  /**
   * The endpoints for cluster-policy traffic: usable ones, after topology (endpoint-selection.ts).
   * Computed whatever the policies; a mode uses it where the port's traffic follows Cluster
   * policy (usesClusterEndpoints). hasAnyEndpoints() tells "no endpoints anywhere" (reject)
   * from "none for this policy" (drop).
   */
  clusterEndpoints: Endpoint[];
  /** The endpoints for local-policy traffic: usable local ones, computed whatever the policies. */
  localEndpoints: Endpoint[];
}

/** What endpoint selection reads from this node's Node object. */
export interface NodeInfo {
  name: string;
  /** Node labels; topology.kubernetes.io/zone gives the zone. */
  labels: Record<string, string>;
}

export const LABEL_TOPOLOGY_ZONE = 'topology.kubernetes.io/zone';

/** Upstream's chain-name base for a ServicePort, and its key everywhere: ns/name/proto/portName. */
export function servicePortKey(namespace: string, name: string, protocol: Protocol, portName: string): string {
  return `${namespace}/${name}/${protocol.toLowerCase()}/${portName}`;
}
