// Pure functions: a Service and its EndpointSlices -> ServicePortSpec[] for one IP family.
// Semantics follow upstream pkg/proxy (serviceport.go, endpointslicecache.go, topology.go).

import type { EndpointSpec, IPFamily, Protocol, ServicePortSpec } from '../dataplane/types.js';
import { servicePortKey } from '../dataplane/keys.js';
import {
  canonicalIP,
  ipFamilyOf,
  isObject,
  parseEndpointSlice,
  shouldSkipService,
  validateService,
  type OnInvalid,
  type SliceEndpoint,
  type SliceInfo,
} from './validate.js';

/** The Service's ClusterIP of this family: spec.clusterIPs, falling back to spec.clusterIP. */
export function clusterIPForFamily(svc: Record<string, any>, family: IPFamily): string | undefined {
  const spec = isObject(svc.spec) ? svc.spec : {};
  const ips: unknown[] = Array.isArray(spec.clusterIPs) && spec.clusterIPs.length > 0 ? spec.clusterIPs : [spec.clusterIP];
  for (const ip of ips) {
    if (ipFamilyOf(ip) === family) return canonicalIP(ip as string);
  }
  return undefined;
}

/** The ServicePorts of a (validated) Service in one family, endpoints left empty. */
export function servicePortHeads(svc: Record<string, any>, family: IPFamily): ServicePortSpec[] {
  if (!isObject(svc.metadata) || !isObject(svc.spec) || shouldSkipService(svc)) return [];
  const clusterIP = clusterIPForFamily(svc, family);
  if (!clusterIP) return [];
  const { namespace, name } = svc.metadata;
  const ports: unknown[] = Array.isArray(svc.spec.ports) ? svc.spec.ports : [];
  const out: ServicePortSpec[] = [];
  for (const p of ports) {
    if (!isObject(p)) continue;
    const protocol: Protocol = p.protocol ?? 'TCP';
    const portName: string = p.name ?? '';
    out.push({
      key: servicePortKey(namespace, name, protocol, portName),
      namespace,
      name,
      portName,
      protocol,
      clusterIP,
      port: p.port,
      endpoints: [],
    });
  }
  return out;
}

/** Upstream Endpoint.String(): net.JoinHostPort(ip, port). Also the sort key. */
export function endpointString(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

interface Candidate extends SliceEndpoint {
  port: number;
}

/**
 * The usable endpoints of one ServicePort: slice ports are matched by name and protocol
 * (the EndpointSlice controller names them after the ServicePort, resolving named
 * targetPorts). Ready endpoints are used; if there are none, the serving+terminating ones.
 */
export function endpointsForPort(slices: readonly SliceInfo[], family: IPFamily, portName: string, protocol: Protocol): EndpointSpec[] {
  const byString = new Map<string, Candidate>();
  // Slices in name order, so that ties resolve the same way on every run.
  const ordered = [...slices].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const slice of ordered) {
    if (slice.addressType !== family) continue;
    for (const sp of slice.ports) {
      if (sp.name !== portName || sp.protocol !== protocol) continue;
      for (const ep of slice.endpoints) {
        const s = endpointString(ep.ip, sp.port);
        // The same IP:port in two slices: a non-terminating endpoint wins (IP reuse by a new pod).
        if (!byString.has(s) || !ep.terminating) byString.set(s, { ...ep, port: sp.port });
      }
    }
  }
  const all = [...byString.entries()];
  let usable = all.filter(([, c]) => c.ready);
  if (usable.length === 0) usable = all.filter(([, c]) => c.serving && c.terminating);
  usable.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return usable.map(([, c]) => ({ ip: c.ip, port: c.port }));
}

/** All ServicePortSpecs of a validated Service and its parsed slices, sorted by key. */
export function buildServicePorts(svc: Record<string, any>, slices: readonly SliceInfo[], family: IPFamily): ServicePortSpec[] {
  const heads = servicePortHeads(svc, family);
  for (const h of heads) h.endpoints = endpointsForPort(slices, family, h.portName, h.protocol);
  return heads.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/**
 * Convenience over raw API objects: validates the Service and the slices (reporting
 * through onInvalid), keeps only the slices of this Service, and builds the specs.
 */
export function servicePortsFromObjects(svc: unknown, sliceObjs: readonly unknown[], family: IPFamily, onInvalid?: OnInvalid): ServicePortSpec[] {
  const issue = validateService(svc);
  if (issue) {
    onInvalid?.('Service', issue.reason, issue.ref);
    return [];
  }
  const s = svc as Record<string, any>;
  const slices: SliceInfo[] = [];
  for (const obj of sliceObjs) {
    const parsed = parseEndpointSlice(obj);
    for (const i of parsed.issues) onInvalid?.('EndpointSlice', i.reason, i.ref);
    const info = parsed.info;
    if (info && info.namespace === s.metadata.namespace && info.serviceName === s.metadata.name) slices.push(info);
  }
  return buildServicePorts(s, slices, family);
}
