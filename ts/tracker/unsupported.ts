// Service features the running mode does not program. Support differs per mode, so the
// mode's own Feature set decides; the operator is told, once per Service and feature,
// what is missing instead of finding out from packets.

import { shouldSkipService } from '../model/service-filter.js';
import type { Feature } from '../proxier/types.js';
import type { KubeObject } from '../sources/types.js';

const TOPOLOGY_ANNOTATIONS = ['service.kubernetes.io/topology-mode', 'service.kubernetes.io/topology-aware-hints'];

const isRecord = (v: unknown): v is Record<string, any> => typeof v === 'object' && v !== null && !Array.isArray(v);
const nonEmptyList = (v: unknown) => Array.isArray(v) && v.length > 0;

/**
 * The Features a raw Service uses, as far as the Service alone tells. TerminatingFallback
 * depends on endpoint conditions, not on the Service, so it is never reported from here.
 */
export function usedFeatures(svc: KubeObject): Feature[] {
  if (!isRecord(svc) || shouldSkipService(svc)) return [];
  const spec = isRecord(svc.spec) ? svc.spec : {};
  const ports: unknown[] = Array.isArray(spec.ports) ? spec.ports : [];
  const annotations = isRecord(svc.metadata) && isRecord(svc.metadata.annotations) ? svc.metadata.annotations : {};
  const externalIPs = nonEmptyList(spec.externalIPs);
  const used: Feature[] = ['ClusterIP'];
  // A LoadBalancer without allocated NodePorts (allocateLoadBalancerNodePorts: false) uses none.
  if (spec.type === 'NodePort' || ports.some((p) => isRecord(p) && typeof p.nodePort === 'number' && p.nodePort > 0)) used.push('NodePort');
  if (spec.type === 'LoadBalancer') used.push('LoadBalancer');
  if (spec.type === 'LoadBalancer' && nonEmptyList(spec.loadBalancerSourceRanges)) used.push('LoadBalancerSourceRanges');
  if (externalIPs) used.push('ExternalIPs');
  if (spec.sessionAffinity === 'ClientIP') used.push('SessionAffinity');
  const external = spec.type === 'NodePort' || spec.type === 'LoadBalancer' || externalIPs;
  if (external && spec.externalTrafficPolicy === 'Local') used.push('ExternalTrafficPolicyLocal');
  if (spec.internalTrafficPolicy === 'Local') used.push('InternalTrafficPolicyLocal');
  // The annotations ask the EndpointSlice controller for zone hints; any value but off does.
  const hinted = TOPOLOGY_ANNOTATIONS.some((a) => typeof annotations[a] === 'string' && !['', 'disabled'].includes(annotations[a].toLowerCase()));
  if (spec.trafficDistribution || hinted) used.push('TopologyHints');
  if (ports.some((p) => isRecord(p) && p.protocol === 'SCTP')) used.push('SCTP');
  if (external && spec.externalTrafficPolicy === 'Local') used.push('SourceIPPreservation');
  return used;
}

/** Why a missing feature matters, where the feature's name alone does not say. */
export const FEATURE_NOTES: Partial<Record<Feature, string>> = {
  SCTP: 'its SCTP ports are not proxied in this mode',
  SourceIPPreservation: "the proxy connects to endpoints from the node, so they see the node's address, not the client's",
};

/** What the Service uses and the mode does not support. */
export function unsupportedFeatures(svc: KubeObject, supported: ReadonlySet<Feature>): Feature[] {
  return usedFeatures(svc).filter((f) => !supported.has(f));
}

/** Remembers what was reported so each Service/feature pair is logged once. */
export class UnsupportedReporter {
  private readonly seen = new Set<string>();
  constructor(
    private readonly supported: ReadonlySet<Feature>,
    private readonly report: (ref: string, feature: Feature) => void,
  ) {}

  check(svc: KubeObject): void {
    // Strings only: a name that is an array 10k deep would overflow the stack in a template.
    const md = isRecord(svc) && isRecord(svc.metadata) ? svc.metadata : {};
    const ref = `${typeof md.namespace === 'string' ? md.namespace : 'default'}/${typeof md.name === 'string' ? md.name : '?'}`;
    for (const f of unsupportedFeatures(svc, this.supported)) {
      const key = `${ref}\u0000${f}`;
      if (this.seen.has(key)) continue;
      this.seen.add(key);
      this.report(ref, f);
    }
  }
}
