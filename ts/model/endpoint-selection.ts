// The one place that decides which endpoints serve a ServicePort on this node: upstream's
// CategorizeEndpoints (pkg/proxy/topology.go). Every mode reads the result from the
// ServicePort instead of choosing for itself, so terminating fallback and topology behave
// the same whichever mode programs them.

import { LABEL_TOPOLOGY_ZONE, type Endpoint, type NodeInfo, type ServicePort } from './types.js';

export type TopologyMode = '' | 'PreferSameNode' | 'PreferSameZone';

/** Which policies a ServicePort ever uses; an unused policy gets no endpoints (as upstream's nil). */
export interface PolicyUse {
  cluster: boolean;
  local: boolean;
}

export interface EndpointSelection {
  /** Usable endpoints for Cluster policy, after topology; [] when Cluster policy is never used. */
  clusterEndpoints: Endpoint[];
  /** Usable local endpoints for Local policy; [] when Local policy is never used. */
  localEndpoints: Endpoint[];
  /** The union of both lists, in the input order: every endpoint this node may send to. */
  allReachableEndpoints: Endpoint[];
  /** Some usable endpoint exists anywhere in the cluster (even if none is reachable from here). */
  hasAnyEndpoints: boolean;
  /** The topology mode applied to clusterEndpoints. */
  topologyMode: TopologyMode;
}

const BOTH: PolicyUse = { cluster: true, local: true };

type Addressed = Pick<ServicePort, 'nodePort' | 'externalIPs' | 'loadBalancerVIPs'>;
type Policied = Addressed & Pick<ServicePort, 'internalPolicyLocal' | 'externalPolicyLocal'>;

/** Reachable by something other than the ClusterIP in this family (upstream's per-family ExternallyAccessible). */
export function externallyAccessible(sp: Addressed): boolean {
  return sp.nodePort !== 0 || sp.loadBalancerVIPs.length > 0 || sp.externalIPs.length > 0;
}

/** Cluster endpoints are needed for iTP=Cluster, and for any external traffic (eTP=Local short-circuits pods to them). */
export function usesClusterEndpoints(sp: Policied): boolean {
  return !sp.internalPolicyLocal || externallyAccessible(sp);
}

export function usesLocalEndpoints(sp: Policied): boolean {
  return sp.internalPolicyLocal || (sp.externalPolicyLocal && externallyAccessible(sp));
}

export function policyUse(sp: Policied): PolicyUse {
  return { cluster: usesClusterEndpoints(sp), local: usesLocalEndpoints(sp) };
}

/**
 * PreferSameNode when every Ready endpoint has node hints and one names this node; else
 * PreferSameZone when every Ready endpoint has zone hints and one names this node's zone;
 * else '' (all endpoints). Hints that exist but name neither this node nor its zone mean ''.
 */
export function topologyMode(endpoints: readonly Endpoint[], node: NodeInfo | undefined): TopologyMode {
  const nodeName = node?.name ?? '';
  const zone = node?.labels[LABEL_TOPOLOGY_ZONE] ?? '';
  let anyReady = false;
  let allNodeHints = true;
  let forNode = false;
  let allZoneHints = true;
  let forZone = false;
  for (const ep of endpoints) {
    if (!ep.ready) continue;
    anyReady = true;
    if (!ep.nodeHints || ep.nodeHints.length === 0) allNodeHints = false;
    else if (nodeName !== '' && ep.nodeHints.includes(nodeName)) forNode = true;
    if (!ep.zoneHints || ep.zoneHints.length === 0) allZoneHints = false;
    else if (zone !== '' && ep.zoneHints.includes(zone)) forZone = true;
  }
  if (!anyReady) return '';
  if (allNodeHints && forNode) return 'PreferSameNode';
  if (allZoneHints && forZone) return 'PreferSameZone';
  return '';
}

function availableForTopology(ep: Endpoint, mode: TopologyMode, node: NodeInfo | undefined): boolean {
  if (mode === 'PreferSameNode') return ep.nodeHints?.includes(node!.name) ?? false;
  if (mode === 'PreferSameZone') return ep.zoneHints?.includes(node!.labels[LABEL_TOPOLOGY_ZONE]) ?? false;
  return true;
}

const servingTerminating = (ep: Endpoint) => ep.serving && ep.terminating;

/**
 * The endpoints that pass `keep`. At 10k Services the lists are long-lived, so the common
 * outcomes share arrays instead of copying: all kept is the input itself, none kept is one
 * frozen empty list. Callers never mutate selections.
 */
const NONE: Endpoint[] = Object.freeze([]) as unknown as Endpoint[];
function keepOnly(endpoints: readonly Endpoint[], keep: (ep: Endpoint) => boolean): Endpoint[] {
  const kept = endpoints.filter(keep);
  if (kept.length === 0) return NONE;
  return kept.length === endpoints.length ? (endpoints as Endpoint[]) : kept;
}

/**
 * Splits a ServicePort's endpoints (deduplicated, in the order the caller wants kept) into the
 * Cluster and Local policy sets for `node`. Usable means Ready; with no Ready endpoint, the
 * Serving+Terminating ones, for Cluster and Local independently. Topology narrows Cluster only.
 */
export function selectEndpoints(endpoints: readonly Endpoint[], node: NodeInfo | undefined, use: PolicyUse = BOTH): EndpointSelection {
  const out: EndpointSelection = { clusterEndpoints: NONE, localEndpoints: NONE, allReachableEndpoints: NONE, hasAnyEndpoints: false, topologyMode: '' };
  if (endpoints.length === 0) return out;

  if (use.cluster) {
    out.topologyMode = topologyMode(endpoints, node);
    out.clusterEndpoints = keepOnly(endpoints, (ep) => ep.ready && availableForTopology(ep, out.topologyMode, node));
    // Topology already fell back to '' if no Ready endpoint matched it: an empty list here
    // means nothing is Ready anywhere.
    if (out.clusterEndpoints.length === 0) out.clusterEndpoints = keepOnly(endpoints, servingTerminating);
    if (out.clusterEndpoints.length > 0) out.hasAnyEndpoints = true;
  }

  if (use.local) {
    let localReady = false;
    let localServingTerminating = false;
    for (const ep of endpoints) {
      if (ep.ready) {
        out.hasAnyEndpoints = true;
        if (ep.isLocal) localReady = true;
      } else if (servingTerminating(ep)) {
        out.hasAnyEndpoints = true;
        if (ep.isLocal) localServingTerminating = true;
      }
    }
    if (localReady) out.localEndpoints = keepOnly(endpoints, (ep) => ep.isLocal && ep.ready);
    else if (localServingTerminating) out.localEndpoints = keepOnly(endpoints, (ep) => ep.isLocal && servingTerminating(ep));
  }

  out.allReachableEndpoints = union(endpoints, out.clusterEndpoints, out.localEndpoints);
  return out;
}

/** Members of a or b, in the order of `all`; IP:port identifies (the lists may be copies). */
function union(all: readonly Endpoint[], a: Endpoint[], b: Endpoint[]): Endpoint[] {
  if (b.length === 0) return a;
  if (a.length === 0) return b;
  const members = new Set<string>();
  for (const ep of a) members.add(`${ep.ip}|${ep.port}`);
  const before = members.size;
  for (const ep of b) members.add(`${ep.ip}|${ep.port}`);
  if (members.size === before) return a;
  return all.filter((ep) => members.has(`${ep.ip}|${ep.port}`));
}

/** The ServicePort's reachable endpoints (union of its Cluster and Local sets), for modes that need them. */
export function reachableEndpoints(sp: Pick<ServicePort, 'endpoints' | 'clusterEndpoints' | 'localEndpoints'>): Endpoint[] {
  return union(sp.endpoints, sp.clusterEndpoints, sp.localEndpoints);
}

/** Upstream's hasAnyEndpoints for a built ServicePort: a usable endpoint exists somewhere in the cluster. */
export function hasAnyEndpoints(sp: Policied & Pick<ServicePort, 'endpoints' | 'clusterEndpoints'>): boolean {
  if (sp.clusterEndpoints.length > 0) return true;
  return usesLocalEndpoints(sp) && sp.endpoints.some((ep) => ep.ready || servingTerminating(ep));
}
