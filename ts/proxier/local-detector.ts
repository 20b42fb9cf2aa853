// Which LocalDetector each family's proxier gets, as upstream's getLocalDetectors
// (cmd/kube-proxy/app/server_linux.go): ClusterCIDR and NodeCIDR take that family's first
// CIDR (none: no detector, upstream's no-op one); the interface modes serve both families.
import { parseCIDR } from '../model/ip.js';
import type { IPFamily } from '../model/types.js';
import type { LocalDetector } from './types.js';

export interface LocalDetectorConfig {
  mode: LocalDetector['mode'];
  clusterCIDRs: readonly string[];
  /** The Node's spec.podCIDRs (NodeCIDR mode). */
  podCIDRs?: readonly string[];
  bridgeInterface?: string;
  interfaceNamePrefix?: string;
}

export function localDetectorFor(family: IPFamily, c: LocalDetectorConfig): LocalDetector | undefined {
  switch (c.mode) {
    case 'ClusterCIDR':
    case 'NodeCIDR': {
      const cidrs = c.mode === 'ClusterCIDR' ? c.clusterCIDRs : (c.podCIDRs ?? []);
      const cidr = cidrs.map(parseCIDR).find((p) => p?.family === family)?.cidr;
      return cidr === undefined ? undefined : { mode: c.mode, cidr };
    }
    case 'BridgeInterface':
      return c.bridgeInterface ? { mode: 'BridgeInterface', interface: c.bridgeInterface } : undefined;
    case 'InterfaceNamePrefix':
      return c.interfaceNamePrefix ? { mode: 'InterfaceNamePrefix', prefix: c.interfaceNamePrefix } : undefined;
  }
}

/** One detector per family; a family without one is missing from the result. */
export function localDetectors(families: readonly IPFamily[], c: LocalDetectorConfig): Partial<Record<IPFamily, LocalDetector>> {
  const out: Partial<Record<IPFamily, LocalDetector>> = {};
  for (const f of families) {
    const d = localDetectorFor(f, c);
    if (d) out[f] = d;
  }
  return out;
}

