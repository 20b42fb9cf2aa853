// Literal IPs and CIDRs as upstream reads and prints them (k8s.io/utils/net, net.IP.String()).
// Used by the tracker to validate and canonicalise; mode-neutral, so modes may use it too.

import { isIPv4, isIPv6 } from 'node:net';
import type { IPFamily } from './types.js';

/** The family of a literal IP, or undefined if it is not one (zones are refused). */
export function ipFamilyOf(ip: unknown): IPFamily | undefined {
  if (typeof ip !== 'string' || ip.includes('%')) return undefined;
  if (isIPv4(ip)) return 'IPv4';
  if (isIPv6(ip)) return 'IPv6';
  return undefined;
}

/** Canonical text form (RFC 5952 for IPv6), as upstream's net.IP.String() prints it. */
export function canonicalIP(ip: string): string {
  // IPv4 (no colon) is its own canonical form: skip isIPv6's long regex, run once per endpoint.
  if (!ip.includes(':') || !isIPv6(ip)) return ip;
  const host = new URL(`http://[${ip}]/`).hostname;
  return host.slice(1, -1);
}

/** The 4 or 16 bytes of a valid literal IP of `family`. */
function ipBytes(ip: string, family: IPFamily): number[] {
  if (family === 'IPv4') return ip.split('.').map(Number);
  // canonicalIP leaves only hex groups (no dotted tail), with at most one "::".
  const [head, tail] = canonicalIP(ip).split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.flatMap((g) => {
    const v = parseInt(g, 16);
    return [v >> 8, v & 0xff];
  });
}

function bytesToIP(bytes: number[], family: IPFamily): string {
  if (family === 'IPv4') return bytes.join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  return canonicalIP(groups.join(':'));
}

/**
 * A CIDR in upstream's canonical form (net.IPNet.String(): host bits cleared), with its
 * family; undefined when it is not one. Surrounding blanks are allowed, as the API allows them.
 */
export function parseCIDR(text: unknown): { family: IPFamily; cidr: string } | undefined {
  if (typeof text !== 'string') return undefined;
  const s = text.trim();
  const slash = s.indexOf('/');
  const family = slash > 0 ? ipFamilyOf(s.slice(0, slash)) : undefined;
  const bits = s.slice(slash + 1);
  if (!family || !/^(0|[1-9][0-9]{0,2})$/.test(bits)) return undefined;
  const prefix = Number(bits);
  if (prefix > (family === 'IPv4' ? 32 : 128)) return undefined;
  const bytes = ipBytes(s.slice(0, slash), family);
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    bytes[i] &= (0xff << (8 - keep)) & 0xff;
  }
  return { family, cidr: `${bytesToIP(bytes, family)}/${prefix}` };
}

/** Whether `ip` (a literal IP) lies in `cidr`; false across families or for invalid input. */
export function cidrContains(cidr: string, ip: string): boolean {
  const net = parseCIDR(cidr);
  const family = ipFamilyOf(ip);
  if (!net || !family || net.family !== family) return false;
  const [base, bits] = net.cidr.split('/');
  const a = ipBytes(base, family);
  const b = ipBytes(ip, family);
  const prefix = Number(bits);
  for (let i = 0; i < a.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    const mask = (0xff << (8 - keep)) & 0xff;
    if ((a[i] & mask) !== (b[i] & mask)) return false;
  }
  return true;
}

/** 127.0.0.0/8 or ::1, as Go's net.IP.IsLoopback. */
export function isLoopbackIP(ip: string): boolean {
  return cidrContains('127.0.0.0/8', ip) || (ipFamilyOf(ip) === 'IPv6' && canonicalIP(ip) === '::1');
}

/** 0.0.0.0 or ::, as Go's net.IP.IsUnspecified. */
export function isUnspecifiedIP(ip: string): boolean {
  const family = ipFamilyOf(ip);
  return family !== undefined && ipBytes(ip, family).every((b) => b === 0);
}
