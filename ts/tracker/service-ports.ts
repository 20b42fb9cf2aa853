// Pure functions: a Service and its EndpointSlices -> ServicePort[] for one IP family, with
// the endpoints chosen for this node. Semantics follow upstream pkg/proxy (serviceport.go,
// endpointslicecache.go); the choice itself is model/endpoint-selection.ts.

import { canonicalIP, ipFamilyOf } from '../model/ip.js';
import { selectEndpoints } from '../model/endpoint-selection.js';
import { servicePortKey, type Endpoint, type IPFamily, type NodeInfo, type Protocol, type ServicePort } from '../model/types.js';
import { isObject, parseEndpointSlice, parseService, type OnInvalid, type ServiceInfo, type SliceInfo } from './validate.js';

export { servicePortKey };

/** A raw Service's ClusterIP of this family: spec.clusterIPs, falling back to spec.clusterIP. */
export function clusterIPForFamily(svc: Record<string, any>, family: IPFamily): string | undefined {
  const spec = isObject(svc.spec) ? svc.spec : {};
  const ips: unknown[] = Array.isArray(spec.clusterIPs) && spec.clusterIPs.length > 0 ? spec.clusterIPs : [spec.clusterIP];
  for (const ip of ips) {
    if (ipFamilyOf(ip) === family) return canonicalIP(ip as string);
  }
  return undefined;
}

/** The ServicePorts of a parsed Service in one family, without endpoints. */
export function servicePortHeads(info: ServiceInfo, family: IPFamily): ServicePort[] {
  const addrs = info.families[family];
  if (!addrs) return [];
  return info.ports.map((p) => ({
    key: servicePortKey(info.namespace, info.name, p.protocol, p.name),
    namespace: info.namespace,
    name: info.name,
    portName: p.name,
    protocol: p.protocol,
    family,
    type: info.type,
    clusterIP: addrs.clusterIP,
    port: p.port,
    nodePort: p.nodePort,
    externalIPs: addrs.externalIPs,
    loadBalancerVIPs: addrs.loadBalancerVIPs,
    loadBalancerSourceRanges: addrs.loadBalancerSourceRanges,
    sessionAffinity: info.sessionAffinity,
    stickyMaxAgeSeconds: info.stickyMaxAgeSeconds,
    externalPolicyLocal: info.externalPolicyLocal,
    internalPolicyLocal: info.internalPolicyLocal,
    healthCheckNodePort: info.healthCheckNodePort,
    trafficDistribution: info.trafficDistribution,
    endpoints: [],
    clusterEndpoints: [],
    localEndpoints: [],
  }));
}

/** Upstream Endpoint.String(): net.JoinHostPort(ip, port). Also the sort key. */
export function endpointString(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

const byName = (a: SliceInfo, b: SliceInfo) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/**
 * Every endpoint of one ServicePort in one family, whatever its conditions: slice ports are
 * matched by name and protocol (the EndpointSlice controller names them after the
 * ServicePort, resolving named targetPorts). Deduplicated by IP:port and sorted by it.
 */
export function endpointsForPort(slices: readonly SliceInfo[], family: IPFamily, portName: string, protocol: Protocol, nodeName: string | undefined): Endpoint[] {
  const byString = new Map<string, Endpoint>();
  // Slices in name order, so that ties resolve the same way on every run.
  const ordered = slices.length > 1 ? [...slices].sort(byName) : slices;
  for (const slice of ordered) {
    if (slice.addressType !== family) continue;
    for (const sp of slice.ports) {
      if (sp.name !== portName || sp.protocol !== protocol) continue;
      for (const se of slice.endpoints) {
        const s = endpointString(se.ip, sp.port);
        // The same IP:port in two slices: a non-terminating endpoint wins (IP reuse by a new pod).
        if (byString.has(s) && se.terminating) continue;
        const ep: Endpoint = { ip: se.ip, port: sp.port, ready: se.ready, serving: se.serving, terminating: se.terminating, isLocal: false };
        if (se.nodeName !== undefined) ep.nodeName = se.nodeName;
        if (se.zone !== undefined) ep.zone = se.zone;
        if (se.zoneHints !== undefined) ep.zoneHints = se.zoneHints;
        if (se.nodeHints !== undefined) ep.nodeHints = se.nodeHints;
        ep.isLocal = nodeName !== undefined && nodeName !== '' && se.nodeName === nodeName;
        byString.set(s, ep);
      }
    }
  }
  const keys = [...byString.keys()].sort();
  return keys.map((k) => byString.get(k)!);
}

/** All ServicePorts of a parsed Service and its parsed slices, for `node`, sorted by key. */
export function buildServicePorts(info: ServiceInfo, slices: readonly SliceInfo[], family: IPFamily, node: NodeInfo | undefined): ServicePort[] {
  const ports = servicePortHeads(info, family);
  for (const sp of ports) {
    sp.endpoints = endpointsForPort(slices, family, sp.portName, sp.protocol, node?.name);
    // Both lists, whatever the policies: each mode picks the list its rules use (a mode
    // without internalTrafficPolicy Local still programs the cluster endpoints).
    const sel = selectEndpoints(sp.endpoints, node);
    sp.clusterEndpoints = sel.clusterEndpoints;
    sp.localEndpoints = sel.localEndpoints;
  }
  return ports.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/**
 * Convenience over raw API objects: validates the Service and the slices (reporting
 * through onInvalid), keeps only the slices of this Service, and builds the ServicePorts.
 */
export function servicePortsFromObjects(svc: unknown, sliceObjs: readonly unknown[], family: IPFamily, onInvalid?: OnInvalid, node?: NodeInfo): ServicePort[] {
  const parsed = parseService(svc);
  for (const i of parsed.issues) onInvalid?.('Service', i.reason, i.ref);
  const info = parsed.info;
  if (!info) return [];
  const slices: SliceInfo[] = [];
  for (const obj of sliceObjs) {
    const ps = parseEndpointSlice(obj);
    for (const i of ps.issues) onInvalid?.('EndpointSlice', i.reason, i.ref);
    if (ps.info && ps.info.namespace === info.namespace && ps.info.serviceName === info.name) slices.push(ps.info);
  }
  return buildServicePorts(info, slices, family, node);
}
