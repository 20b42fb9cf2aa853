import type { Protocol } from './types.js';

/** Upstream's chain-name base for a ServicePort: ns/name/proto/portName. */
export function servicePortKey(namespace: string, name: string, protocol: Protocol, portName: string): string {
  return `${namespace}/${name}/${protocol.toLowerCase()}/${portName}`;
}
