// Service features this slice of kproxy does not program yet. Traffic to the
// ClusterIP still works; the operator is told, once per Service and feature,
// what is missing instead of finding out from packets.
import type { KubeObject } from '../sources/types.js';

export function unsupportedFeatures(svc: KubeObject): string[] {
  const spec = svc?.spec ?? {};
  const out: string[] = [];
  if (spec.type === 'NodePort' || spec.type === 'LoadBalancer') out.push(`type ${spec.type} (only its ClusterIP is programmed)`);
  if (Array.isArray(spec.externalIPs) && spec.externalIPs.length > 0) out.push('externalIPs');
  if (spec.sessionAffinity === 'ClientIP') out.push('sessionAffinity ClientIP');
  if (spec.internalTrafficPolicy === 'Local') out.push('internalTrafficPolicy Local (all endpoints are used)');
  if (spec.trafficDistribution) out.push(`trafficDistribution ${spec.trafficDistribution}`);
  return out;
}

/** Remembers what was reported so each Service/feature pair is logged once. */
export class UnsupportedReporter {
  private readonly seen = new Set<string>();
  constructor(private readonly report: (ref: string, feature: string) => void) {}

  check(svc: KubeObject): void {
    const ref = `${svc?.metadata?.namespace ?? 'default'}/${svc?.metadata?.name ?? '?'}`;
    for (const f of unsupportedFeatures(svc)) {
      const key = `${ref}\u0000${f}`;
      if (this.seen.has(key)) continue;
      this.seen.add(key);
      this.report(ref, f);
    }
  }
}
