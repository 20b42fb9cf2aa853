// Structural validation of Services and EndpointSlices before the tracker uses them.
// The API server validates too, but manifests files and odd clients do not, and a
// malformed object must cost us one skipped object, never a crash or a bad rule.

import { isIPv4, isIPv6 } from 'node:net';
import type { IPFamily, Protocol } from '../dataplane/types.js';

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
  | 'bad-endpoint-ip';

export type OnInvalid = (kind: string, reason: string, ref: string) => void;

export interface Issue {
  reason: InvalidReason;
  /** "ns/name", with a "#field" suffix when only a part of the object is dropped. */
  ref: string;
}

export const LABEL_SERVICE_NAME = 'kubernetes.io/service-name';
export const LABEL_SERVICE_PROXY_NAME = 'service.kubernetes.io/service-proxy-name';
export const LABEL_HEADLESS = 'service.kubernetes.io/headless';
export const ANNOTATION_TRIGGER_TIME = 'endpoints.kubernetes.io/last-change-trigger-time';

// Limits from apimachinery: DNS-1123/1035 labels are 63, subdomains 253.
const MAX_LABEL = 63;
const MAX_SUBDOMAIN = 253;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const PROTOCOLS: readonly string[] = ['TCP', 'UDP', 'SCTP'];

export function isObject(v: unknown): v is Record<string, any> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The family of a literal IP, or undefined if it is not one (zones are refused). */
export function ipFamilyOf(ip: unknown): IPFamily | undefined {
  if (typeof ip !== 'string' || ip.includes('%')) return undefined;
  if (isIPv4(ip)) return 'IPv4';
  if (isIPv6(ip)) return 'IPv6';
  return undefined;
}

/** Canonical text form (RFC 5952 for IPv6), as upstream's net.IP.String() prints it. */
export function canonicalIP(ip: string): string {
  if (!isIPv6(ip)) return ip;
  const host = new URL(`http://[${ip}]/`).hostname;
  return host.slice(1, -1);
}

/** "ns/name" for messages; tolerant of anything. */
export function objectRef(obj: unknown): string {
  const md = isObject(obj) && isObject(obj.metadata) ? obj.metadata : {};
  const ns = typeof md.namespace === 'string' ? md.namespace : '';
  const name = typeof md.name === 'string' ? md.name : '<unnamed>';
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

/** Headless, ExternalName and other-proxy Services are valid but never proxied. */
export function shouldSkipService(svc: Record<string, any>): boolean {
  const labels = isObject(svc.metadata?.labels) ? svc.metadata.labels : {};
  if (LABEL_SERVICE_PROXY_NAME in labels || LABEL_HEADLESS in labels) return true;
  const spec = isObject(svc.spec) ? svc.spec : {};
  if (spec.type === 'ExternalName') return true;
  return spec.clusterIP === undefined || spec.clusterIP === null || spec.clusterIP === '' || spec.clusterIP === 'None';
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

  if (spec.ports === undefined || spec.ports === null) return undefined;
  if (!Array.isArray(spec.ports)) return { reason: 'bad-field', ref: `${ref}#ports` };
  const names = new Set<string>();
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
  }
  return undefined;
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

export interface SliceEndpoint {
  /** addresses[0], canonical. */
  ip: string;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
}

export interface ParsedSlice {
  /** Undefined when the slice as a whole is unusable. */
  info?: SliceInfo;
  /** Everything dropped, whole slice or parts of it. */
  issues: Issue[];
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
    endpoints.push({
      ip: canonicalIP(ip),
      ready: c.ready !== false,
      serving: c.serving !== false,
      terminating: c.terminating === true,
    });
  }

  const rawTrigger = isObject(md.annotations) ? md.annotations[ANNOTATION_TRIGGER_TIME] : undefined;
  const t = typeof rawTrigger === 'string' ? Date.parse(rawTrigger) : NaN;
  const info: SliceInfo = { namespace: md.namespace, name: md.name, serviceName, addressType, ports, endpoints };
  if (!Number.isNaN(t)) info.triggerTime = t;
  return { info, issues };
}
