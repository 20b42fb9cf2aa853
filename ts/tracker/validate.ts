// Structural validation of Services and EndpointSlices before the tracker uses them.
// The API server validates too, but manifests files and odd clients do not, and a
// malformed object must cost us one skipped object, never a crash or a bad rule.

import { canonicalIP, ipFamilyOf, parseCIDR } from '../model/ip.js';
import type { Endpoint, IPFamily, Protocol, ServicePort, ServiceType, SessionAffinity } from '../model/types.js';
import { LABEL_SERVICE_NAME, shouldSkipService } from '../model/service-filter.js';

export { canonicalIP, ipFamilyOf, parseCIDR };

/** Stable short tokens: they end up in logs and metric labels. */
export type InvalidReason =
  | 'not-an-object'
  | 'missing-field'
  | 'bad-field'
  | 'bad-name'
  | 'name-too-long'
  | 'bad-cluster-ip'
  | 'port-out-of-range'
  | 'unknown-protocol'
  | 'duplicate-port'
  | 'unknown-address-type'
  | 'wrong-family'
  | 'bad-endpoint-ip'
  | 'bad-external-ip'
  | 'bad-ingress-ip'
  | 'bad-source-range'
  | 'bad-cidr';

export type OnInvalid = (kind: string, reason: string, ref: string) => void;

export interface Issue {
  reason: InvalidReason;
  /** "ns/name", with a "#field" suffix when only a part of the object is dropped. */
  ref: string;
}

export const ANNOTATION_TRIGGER_TIME = 'endpoints.kubernetes.io/last-change-trigger-time';

// Limits from apimachinery: DNS-1123/1035 labels are 63, subdomains 253.
const MAX_LABEL = 63;
const MAX_SUBDOMAIN = 253;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const PROTOCOLS: readonly string[] = ['TCP', 'UDP', 'SCTP'];
const SERVICE_TYPES: readonly string[] = ['ClusterIP', 'NodePort', 'LoadBalancer'];
/** apiserver defaults sessionAffinityConfig.clientIP.timeoutSeconds to 3 hours; 1 day is the maximum. */
export const DEFAULT_STICKY_MAX_AGE_SECONDS = 10800;
const MAX_STICKY_MAX_AGE_SECONDS = 86400;

export function isObject(v: unknown): v is Record<string, any> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Past a DNS name's length a name is invalid anyway; the rest would only grow log lines. */
const REF_PART = 256;
const refPart = (s: string) => (s.length > REF_PART ? `${s.slice(0, REF_PART)}…` : s);

/** "ns/name" for messages; tolerant of anything, and bounded. */
export function objectRef(obj: unknown): string {
  const md = isObject(obj) && isObject(obj.metadata) ? obj.metadata : {};
  const ns = typeof md.namespace === 'string' ? refPart(md.namespace) : '';
  const name = typeof md.name === 'string' ? refPart(md.name) : '<unnamed>';
  return ns ? `${ns}/${name}` : name;
}

function checkName(value: unknown, max: number, re: RegExp): InvalidReason | undefined {
  if (typeof value !== 'string' || value === '') return 'missing-field';
  if (value.length > max) return 'name-too-long';
  if (!re.test(value)) return 'bad-name';
  return undefined;
}

function isPortNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535;
}

/** Returns the first problem of a Service, or undefined if it can be used. */
export function validateService(obj: unknown): Issue | undefined {
  if (!isObject(obj)) return { reason: 'not-an-object', ref: '<unknown>' };
  const ref = objectRef(obj);
  if (!isObject(obj.metadata)) return { reason: 'missing-field', ref };
  const bad = checkName(obj.metadata.namespace, MAX_LABEL, DNS1123_LABEL) ?? checkName(obj.metadata.name, MAX_LABEL, DNS1035_LABEL);
  if (bad) return { reason: bad, ref };
  if (!isObject(obj.spec)) return { reason: 'missing-field', ref: `${ref}#spec` };
  // Skipped Services need no further checks: nothing of them is programmed.
  if (shouldSkipService(obj)) return undefined;
  const spec = obj.spec;
  if (spec.type !== undefined && spec.type !== null && !SERVICE_TYPES.includes(spec.type)) return { reason: 'bad-field', ref: `${ref}#type` };

  if (typeof spec.clusterIP !== 'string' || !ipFamilyOf(spec.clusterIP)) return { reason: 'bad-cluster-ip', ref: `${ref}#clusterIP` };
  if (spec.clusterIPs !== undefined && spec.clusterIPs !== null) {
    const ips = spec.clusterIPs;
    if (!Array.isArray(ips) || ips.length === 0 || ips.length > 2) return { reason: 'bad-cluster-ip', ref: `${ref}#clusterIPs` };
    const families = ips.map(ipFamilyOf);
    if (families.some((f) => !f)) return { reason: 'bad-cluster-ip', ref: `${ref}#clusterIPs` };
    if (ips.length === 2 && families[0] === families[1]) return { reason: 'bad-cluster-ip', ref: `${ref}#clusterIPs` };
    // clusterIPs[0] is by definition the primary clusterIP.
    if (canonicalIP(ips[0]) !== canonicalIP(spec.clusterIP)) return { reason: 'bad-cluster-ip', ref: `${ref}#clusterIPs` };
  }
  // An allowlist: dropping a malformed entry could leave none, which would open the load
  // balancer to everyone, so a LoadBalancer is refused instead. Elsewhere they are unused.
  const ranges = spec.loadBalancerSourceRanges;
  if (spec.type === 'LoadBalancer' && ranges !== undefined && ranges !== null) {
    if (!Array.isArray(ranges)) return { reason: 'bad-source-range', ref: `${ref}#loadBalancerSourceRanges` };
    const i = ranges.findIndex((r) => !parseCIDR(r));
    if (i >= 0) return { reason: 'bad-source-range', ref: `${ref}#loadBalancerSourceRanges[${i}]` };
  }

  if (spec.ports === undefined || spec.ports === null) return undefined;
  if (!Array.isArray(spec.ports)) return { reason: 'bad-field', ref: `${ref}#ports` };
  const names = new Set<string>();
  // As the API's ValidateService: (protocol, port) and (protocol, nodePort) pairs are unique,
  // or two ServicePorts would claim the same address in the dataplane.
  const pairs = new Set<string>();
  for (let i = 0; i < spec.ports.length; i++) {
    const p = spec.ports[i];
    const pref = `${ref}#ports[${i}]`;
    if (!isObject(p)) return { reason: 'bad-field', ref: pref };
    if (p.port === undefined || p.port === null) return { reason: 'missing-field', ref: pref };
    if (!isPortNumber(p.port)) return { reason: 'port-out-of-range', ref: pref };
    if (p.protocol !== undefined && p.protocol !== null && !PROTOCOLS.includes(p.protocol)) return { reason: 'unknown-protocol', ref: pref };
    const name = p.name ?? '';
    if (typeof name !== 'string') return { reason: 'bad-field', ref: pref };
    // The API requires names once there is more than one port; keys would collide otherwise.
    if (name === '' && spec.ports.length > 1) return { reason: 'missing-field', ref: pref };
    if (name !== '') {
      const nbad = checkName(name, MAX_LABEL, DNS1123_LABEL);
      if (nbad) return { reason: nbad, ref: pref };
    }
    if (names.has(name)) return { reason: 'duplicate-port', ref: pref };
    names.add(name);
    const protocol = p.protocol ?? 'TCP';
    const port = `${protocol} port ${p.port}`;
    const nodePort = isPortNumber(p.nodePort) ? `${protocol} nodePort ${p.nodePort}` : undefined;
    if (pairs.has(port) || (nodePort && pairs.has(nodePort))) return { reason: 'duplicate-port', ref: pref };
    pairs.add(port);
    if (nodePort) pairs.add(nodePort);
  }
  return undefined;
}

/** One spec.ports entry, validated. */
export interface ServicePortInfo {
  name: string;
  protocol: Protocol;
  port: number;
  /** 0 when unset or malformed. */
  nodePort: number;
}

/** The addresses of one IP family in which the Service has a ClusterIP; all canonical. */
export type FamilyAddresses = Pick<ServicePort, 'clusterIP' | 'externalIPs' | 'loadBalancerVIPs' | 'loadBalancerSourceRanges'>;

/**
 * What the tracker keeps of a proxied Service: only the fields that shape rules, normalised;
 * the Service-wide fields mean what they mean on the model's ServicePort.
 */
export interface ServiceInfo
  extends Pick<ServicePort, 'namespace' | 'name' | 'type' | 'sessionAffinity' | 'stickyMaxAgeSeconds' | 'externalPolicyLocal'
    | 'internalPolicyLocal' | 'healthCheckNodePort' | 'trafficDistribution'> {
  ports: ServicePortInfo[];
  families: Partial<Record<IPFamily, FamilyAddresses>>;
}

export interface ParsedService {
  /** Undefined when the Service is unusable (the last issue says why) or skipped. */
  info?: ServiceInfo;
  /** Valid, but never proxied (headless, ExternalName, another proxy's). */
  skipped: boolean;
  issues: Issue[];
}

/** A list of IPs (externalIPs); bad entries are dropped with an issue, duplicates silently. */
function parseIPList(raw: unknown, ref: string, reason: InvalidReason, issues: Issue[]): string[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    issues.push({ reason: 'bad-field', ref });
    return [];
  }
  const out = new Set<string>();
  raw.forEach((ip, i) => {
    if (ipFamilyOf(ip)) out.add(canonicalIP(ip));
    else issues.push({ reason, ref: `${ref}[${i}]` });
  });
  return [...out];
}

/** VIP-mode ingress IPs; hostname-only and ipMode Proxy entries are not ours to program. */
function parseIngress(status: unknown, ref: string, issues: Issue[]): string[] {
  // A status or loadBalancer of the wrong shape hides the ingress IPs: said, not ignored.
  const lb = isObject(status) ? status.loadBalancer : undefined;
  const shapeless = (v: unknown) => v !== undefined && v !== null && !isObject(v);
  if (shapeless(status) || shapeless(lb)) {
    issues.push({ reason: 'bad-field', ref: ref.replace(/\.loadBalancer\.ingress$/, shapeless(status) ? '' : '.loadBalancer') });
    return [];
  }
  const raw = isObject(lb) ? lb.ingress : undefined;
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    issues.push({ reason: 'bad-field', ref });
    return [];
  }
  const out = new Set<string>();
  raw.forEach((ing, i) => {
    const iref = `${ref}[${i}]`;
    if (!isObject(ing)) return void issues.push({ reason: 'bad-field', ref: iref });
    if (ing.ip === undefined || ing.ip === null || ing.ip === '') return;
    if (!ipFamilyOf(ing.ip)) return void issues.push({ reason: 'bad-ingress-ip', ref: iref });
    if (ing.ipMode === 'Proxy') return;
    if (ing.ipMode !== undefined && ing.ipMode !== null && ing.ipMode !== 'VIP') return void issues.push({ reason: 'bad-field', ref: `${iref}.ipMode` });
    out.add(canonicalIP(ing.ip));
  });
  return [...out];
}

/** A Local/Cluster policy field; anything else counts as Cluster, with an issue. */
function isLocalPolicy(v: unknown, ref: string, issues: Issue[]): boolean {
  if (v === undefined || v === null || v === 'Cluster') return false;
  if (v === 'Local') return true;
  issues.push({ reason: 'bad-field', ref });
  return false;
}

/**
 * Validates a Service and reduces it to ServiceInfo. Structural problems (validateService)
 * refuse it; a malformed optional field drops only that field, with an issue.
 */
export function parseService(obj: unknown): ParsedService {
  const fatal = validateService(obj);
  if (fatal) return { skipped: false, issues: [fatal] };
  const svc = obj as Record<string, any>;
  if (shouldSkipService(svc)) return { skipped: true, issues: [] };
  const ref = objectRef(svc);
  const spec = svc.spec;
  const issues: Issue[] = [];
  const type: ServiceType = spec.type ?? 'ClusterIP';

  const ports: ServicePortInfo[] = [];
  (Array.isArray(spec.ports) ? spec.ports : []).forEach((p: Record<string, any>, i: number) => {
    let nodePort = 0;
    if (p.nodePort !== undefined && p.nodePort !== null && p.nodePort !== 0) {
      if (isPortNumber(p.nodePort)) nodePort = p.nodePort;
      else issues.push({ reason: 'port-out-of-range', ref: `${ref}#ports[${i}].nodePort` });
    }
    ports.push({ name: p.name ?? '', protocol: p.protocol ?? 'TCP', port: p.port, nodePort });
  });

  const externalIPs = parseIPList(spec.externalIPs, `${ref}#externalIPs`, 'bad-external-ip', issues);
  const ingress = parseIngress(svc.status, `${ref}#status.loadBalancer.ingress`, issues);
  const ranges: Array<{ family: IPFamily; cidr: string }> = [];
  const rawRanges = spec.loadBalancerSourceRanges ?? [];
  if (!Array.isArray(rawRanges)) issues.push({ reason: 'bad-source-range', ref: `${ref}#loadBalancerSourceRanges` });
  else {
    rawRanges.forEach((r, i) => {
      const c = parseCIDR(r);
      if (c) ranges.push(c);
      else issues.push({ reason: 'bad-source-range', ref: `${ref}#loadBalancerSourceRanges[${i}]` });
    });
  }
  const clusterIPs: unknown[] = Array.isArray(spec.clusterIPs) ? spec.clusterIPs : [spec.clusterIP];
  const families: Partial<Record<IPFamily, FamilyAddresses>> = {};
  for (const ip of clusterIPs) {
    const family = ipFamilyOf(ip)!;
    families[family] = {
      clusterIP: canonicalIP(ip as string),
      externalIPs: externalIPs.filter((e) => ipFamilyOf(e) === family),
      loadBalancerVIPs: ingress.filter((e) => ipFamilyOf(e) === family),
      loadBalancerSourceRanges: [...new Set(ranges.filter((r) => r.family === family).map((r) => r.cidr))],
    };
  }

  let sessionAffinity: SessionAffinity = 'None';
  let stickyMaxAgeSeconds = 0;
  if (spec.sessionAffinity === 'ClientIP') {
    sessionAffinity = 'ClientIP';
    stickyMaxAgeSeconds = DEFAULT_STICKY_MAX_AGE_SECONDS;
    const cfg = spec.sessionAffinityConfig;
    const clientIP = isObject(cfg) ? cfg.clientIP : undefined;
    const t = isObject(clientIP) ? clientIP.timeoutSeconds : undefined;
    // A config of the wrong shape falls back to the default timeout, with an issue.
    if ((cfg !== undefined && cfg !== null && !isObject(cfg)) || (clientIP !== undefined && clientIP !== null && !isObject(clientIP))) {
      issues.push({ reason: 'bad-field', ref: `${ref}#sessionAffinityConfig` });
    } else if (typeof t === 'number' && Number.isInteger(t) && t >= 1 && t <= MAX_STICKY_MAX_AGE_SECONDS) stickyMaxAgeSeconds = t;
    else if (t !== undefined && t !== null) issues.push({ reason: 'bad-field', ref: `${ref}#sessionAffinityConfig.clientIP.timeoutSeconds` });
  } else if (spec.sessionAffinity !== undefined && spec.sessionAffinity !== null && spec.sessionAffinity !== 'None') {
    issues.push({ reason: 'bad-field', ref: `${ref}#sessionAffinity` });
  }

  // apiservice.ExternallyAccessible: the type, or externalIPs of any family.
  const externallyAccessible = type !== 'ClusterIP' || externalIPs.length > 0;
  const externalPolicyLocal = isLocalPolicy(spec.externalTrafficPolicy, `${ref}#externalTrafficPolicy`, issues) && externallyAccessible;
  const internalPolicyLocal = isLocalPolicy(spec.internalTrafficPolicy, `${ref}#internalTrafficPolicy`, issues);

  let healthCheckNodePort = 0;
  const hc = spec.healthCheckNodePort;
  if (type === 'LoadBalancer' && externalPolicyLocal && hc !== undefined && hc !== null && hc !== 0) {
    if (isPortNumber(hc)) healthCheckNodePort = hc;
    else issues.push({ reason: 'port-out-of-range', ref: `${ref}#healthCheckNodePort` });
  }

  let trafficDistribution = '';
  // Upstream's values are single words (PreferClose, PreferSameZone, PreferSameNode); anything
  // else could not cross the wire and means nothing to kube-proxy either.
  if (typeof spec.trafficDistribution === 'string' && /^[A-Za-z]*$/.test(spec.trafficDistribution)) trafficDistribution = spec.trafficDistribution;
  else if (spec.trafficDistribution !== undefined && spec.trafficDistribution !== null) issues.push({ reason: 'bad-field', ref: `${ref}#trafficDistribution` });

  const info: ServiceInfo = {
    namespace: svc.metadata.namespace,
    name: svc.metadata.name,
    type,
    ports,
    families,
    sessionAffinity,
    stickyMaxAgeSeconds,
    externalPolicyLocal,
    internalPolicyLocal,
    healthCheckNodePort,
    trafficDistribution,
  };
  return { info, skipped: false, issues };
}

/** What the tracker keeps of an EndpointSlice: only the fields that shape rules. */
export interface SliceInfo {
  namespace: string;
  name: string;
  serviceName: string;
  addressType: IPFamily | 'FQDN';
  ports: SlicePort[];
  endpoints: SliceEndpoint[];
  /** endpoints.kubernetes.io/last-change-trigger-time in epoch ms, if present and parseable. */
  triggerTime?: number;
}

export interface SlicePort {
  name: string;
  protocol: Protocol;
  port: number;
}

/**
 * An endpoint of a slice: the model's Endpoint before it meets a port and this node. ip is
 * addresses[0], canonical; the optional fields are absent (not undefined) when unset or
 * dropped as malformed, and hint lists are non-empty when present ("no hints" upstream).
 */
export type SliceEndpoint = Omit<Endpoint, 'port' | 'isLocal'>;

export interface ParsedSlice {
  /** Undefined when the slice as a whole is unusable. */
  info?: SliceInfo;
  /** Everything dropped, whole slice or parts of it. */
  issues: Issue[];
}

/** A non-empty string field, or undefined when unset; anything else is dropped with an issue. */
function optionalString(v: unknown, ref: string, issues: Issue[]): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v === 'string') return v;
  issues.push({ reason: 'bad-field', ref });
  return undefined;
}

/** hints.forZones / forNodes: [{name}], as names; a malformed list is dropped whole (partial hints would skew topology). */
function hintNames(v: unknown, ref: string, issues: Issue[]): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((h) => isObject(h) && typeof h.name === 'string' && h.name !== '')) {
    issues.push({ reason: 'bad-field', ref });
    return undefined;
  }
  return v.length > 0 ? v.map((h) => h.name as string) : undefined;
}

/**
 * Validates an EndpointSlice and reduces it to SliceInfo. A bad endpoint or port drops
 * only itself; bad metadata, addressType or list shapes drop the slice.
 */
export function parseEndpointSlice(obj: unknown): ParsedSlice {
  if (!isObject(obj)) return { issues: [{ reason: 'not-an-object', ref: '<unknown>' }] };
  const ref = objectRef(obj);
  const fail = (reason: InvalidReason, suffix = ''): ParsedSlice => ({ issues: [{ reason, ref: ref + suffix }] });
  const md = obj.metadata;
  if (!isObject(md)) return fail('missing-field');
  const bad = checkName(md.namespace, MAX_LABEL, DNS1123_LABEL) ?? checkName(md.name, MAX_SUBDOMAIN, DNS1123_SUBDOMAIN);
  if (bad) return fail(bad);
  const serviceName = isObject(md.labels) ? md.labels[LABEL_SERVICE_NAME] : undefined;
  const sbad = checkName(serviceName, MAX_LABEL, DNS1035_LABEL);
  if (sbad) return fail(sbad, `#labels.${LABEL_SERVICE_NAME}`);
  const addressType = obj.addressType;
  if (addressType === undefined || addressType === null) return fail('missing-field', '#addressType');
  if (addressType !== 'IPv4' && addressType !== 'IPv6' && addressType !== 'FQDN') return fail('unknown-address-type', '#addressType');
  const rawEps = obj.endpoints ?? [];
  const rawPorts = obj.ports ?? [];
  if (!Array.isArray(rawEps)) return fail('bad-field', '#endpoints');
  if (!Array.isArray(rawPorts)) return fail('bad-field', '#ports');

  const issues: Issue[] = [];
  const ports: SlicePort[] = [];
  for (let i = 0; i < rawPorts.length; i++) {
    const p = rawPorts[i];
    const pref = `${ref}#ports[${i}]`;
    if (!isObject(p)) { issues.push({ reason: 'bad-field', ref: pref }); continue; }
    // Upstream skips nil or zero ports silently ("all ports" is not implemented).
    if (p.port === undefined || p.port === null || p.port === 0) continue;
    if (!isPortNumber(p.port)) { issues.push({ reason: 'port-out-of-range', ref: pref }); continue; }
    const protocol = p.protocol ?? 'TCP';
    if (!PROTOCOLS.includes(protocol)) { issues.push({ reason: 'unknown-protocol', ref: pref }); continue; }
    // A nil name is skipped upstream; "" is the unnamed port.
    if (p.name === undefined || p.name === null) { issues.push({ reason: 'missing-field', ref: `${pref}.name` }); continue; }
    if (typeof p.name !== 'string') { issues.push({ reason: 'bad-field', ref: `${pref}.name` }); continue; }
    if (p.name !== '') {
      const nbad = checkName(p.name, MAX_LABEL, DNS1123_LABEL);
      if (nbad) { issues.push({ reason: nbad, ref: `${pref}.name` }); continue; }
    }
    ports.push({ name: p.name, protocol: protocol as Protocol, port: p.port });
  }

  const endpoints: SliceEndpoint[] = [];
  // FQDN slices are never proxied: their addresses are not checked.
  for (let i = 0; addressType !== 'FQDN' && i < rawEps.length; i++) {
    const ep = rawEps[i];
    const eref = `${ref}#endpoints[${i}]`;
    if (!isObject(ep) || !Array.isArray(ep.addresses) || ep.addresses.length === 0) {
      issues.push({ reason: 'missing-field', ref: eref });
      continue;
    }
    const ip = ep.addresses[0];
    const family = ipFamilyOf(ip);
    if (!family) { issues.push({ reason: 'bad-endpoint-ip', ref: eref }); continue; }
    if (family !== addressType) { issues.push({ reason: 'wrong-family', ref: eref }); continue; }
    const c = isObject(ep.conditions) ? ep.conditions : {};
    // Upstream's nil defaults stand in for a malformed condition too, but it is counted.
    if (ep.conditions !== undefined && ep.conditions !== null && !isObject(ep.conditions)) issues.push({ reason: 'bad-field', ref: `${eref}.conditions` });
    for (const k of ['ready', 'serving', 'terminating']) {
      if (c[k] !== undefined && c[k] !== null && typeof c[k] !== 'boolean') issues.push({ reason: 'bad-field', ref: `${eref}.conditions.${k}` });
    }
    const out: SliceEndpoint = {
      ip: canonicalIP(ip),
      ready: c.ready !== false,
      serving: c.serving !== false,
      terminating: c.terminating === true,
    };
    const nodeName = optionalString(ep.nodeName, `${eref}.nodeName`, issues);
    if (nodeName !== undefined) out.nodeName = nodeName;
    const zone = optionalString(ep.zone, `${eref}.zone`, issues);
    if (zone !== undefined) out.zone = zone;
    if (ep.hints !== undefined && ep.hints !== null) {
      if (!isObject(ep.hints)) issues.push({ reason: 'bad-field', ref: `${eref}.hints` });
      else {
        const zoneHints = hintNames(ep.hints.forZones, `${eref}.hints.forZones`, issues);
        if (zoneHints) out.zoneHints = zoneHints;
        const nodeHints = hintNames(ep.hints.forNodes, `${eref}.hints.forNodes`, issues);
        if (nodeHints) out.nodeHints = nodeHints;
      }
    }
    endpoints.push(out);
  }

  const rawTrigger = isObject(md.annotations) ? md.annotations[ANNOTATION_TRIGGER_TIME] : undefined;
  const t = typeof rawTrigger === 'string' ? Date.parse(rawTrigger) : NaN;
  const info: SliceInfo = { namespace: md.namespace, name: md.name, serviceName, addressType, ports, endpoints };
  if (!Number.isNaN(t)) info.triggerTime = t;
  return { info, issues };
}
