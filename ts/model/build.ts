// Builders for model values with upstream's defaults, for benchmarks and tests that
// make ServicePorts directly instead of from Kubernetes objects.
import { servicePortKey, type Endpoint, type IPFamily, type Protocol, type ServicePort } from './types.js';

/** A ready, serving endpoint on another node. */
export function readyEndpoint(ip: string, port: number, over: Partial<Endpoint> = {}): Endpoint {
  return { ip, port, ready: true, serving: true, terminating: false, isLocal: false, ...over };
}

export interface ServicePortFields {
  namespace: string;
  name: string;
  portName: string;
  protocol: Protocol;
  clusterIP: string;
  port: number;
  /** Every endpoint; unless given, all of them serve cluster traffic and the local ones local traffic. */
  endpoints?: Endpoint[];
}

/** A ClusterIP ServicePort with defaults for everything not given. */
export function clusterIPServicePort(f: ServicePortFields & Partial<ServicePort>): ServicePort {
  const endpoints = f.endpoints ?? [];
  const family: IPFamily = f.clusterIP.includes(':') ? 'IPv6' : 'IPv4';
  return {
    key: servicePortKey(f.namespace, f.name, f.protocol, f.portName),
    family,
    type: 'ClusterIP',
    nodePort: 0,
    externalIPs: [],
    loadBalancerVIPs: [],
    loadBalancerSourceRanges: [],
    sessionAffinity: 'None',
    stickyMaxAgeSeconds: 0,
    externalPolicyLocal: false,
    internalPolicyLocal: false,
    healthCheckNodePort: 0,
    trafficDistribution: '',
    clusterEndpoints: endpoints,
    localEndpoints: endpoints.filter((e) => e.isLocal),
    ...f,
    endpoints,
  };
}
