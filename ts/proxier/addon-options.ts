// The proxier types in the addon's shapes, for every mode's binding.
import type { NativeSyncRequest } from '../addon/native.js';
import type { LocalDetector, NodeAddressing, ProxierOptions } from './types.js';

/** The addon's form of a detector: mode and its CIDR or interface name. */
export function detectorOption(d: LocalDetector | undefined): { mode: string; value: string } | undefined {
  if (!d) return undefined;
  switch (d.mode) {
    case 'ClusterCIDR':
    case 'NodeCIDR':
      return { mode: d.mode, value: d.cidr };
    case 'BridgeInterface':
      return { mode: d.mode, value: d.interface };
    case 'InterfaceNamePrefix':
      return { mode: d.mode, value: d.prefix };
  }
}

/** A sync request's node addressing as the addon takes it. */
export function nativeNode(node: NodeAddressing | undefined): NativeSyncRequest['node'] {
  return node && { nodePortAll: node.nodePortIPs === 'all', nodePortIps: node.nodePortIPs === 'all' ? [] : node.nodePortIPs, nodeIps: node.nodeIPs };
}

/** The options every mode's binding takes the same way. */
export function nativeOptions(opts: ProxierOptions): { family: string; localDetector?: { mode: string; value: string }; masqueradeAll: boolean; masqueradeBit: number } {
  return { family: opts.family, localDetector: detectorOption(opts.localDetector), masqueradeAll: opts.masqueradeAll, masqueradeBit: opts.masqueradeBit };
}
