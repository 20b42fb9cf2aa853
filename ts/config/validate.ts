// Value checks shared by flags and the config file, worded after upstream's validation.go.

import { isIP } from 'node:net';
import { ConfigError } from './errors.js';
import { parseCIDR } from '../model/ip.js';
import { splitHostPort } from '../server/address.js';

/** Returns 4 or 6 for a valid CIDR ("10.0.0.0/8", "fd00::/48"), undefined otherwise. */
export function cidrFamily(text: string): 4 | 6 | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const family = isIP(text.slice(0, slash));
  const bits = text.slice(slash + 1);
  if (family === 0 || text.slice(0, slash).includes('%') || !/^\d{1,3}$/.test(bits)) return undefined;
  if (Number(bits) > (family === 4 ? 32 : 128)) return undefined;
  return family as 4 | 6;
}

/** A comma-separated single CIDR or dual-stack pair, as --cluster-cidr / clusterCIDR take. */
export function parseClusterCIDRs(text: string, name: string): string[] {
  if (text === '') return [];
  const cidrs = text.split(',');
  const example = 'e.g. 10.100.0.0/16,fde4:8dba:82e1::/48';
  if (cidrs.length > 2) {
    throw new ConfigError(name, `${name}: must be either a single CIDR or a dual-stack pair of CIDRs (${example}), got ${JSON.stringify(text)}`);
  }
  const families = cidrs.map((c) => {
    const family = cidrFamily(c);
    if (family === undefined) {
      throw new ConfigError(name, `${name}: ${JSON.stringify(c)} is not a valid CIDR block (e.g. 10.100.0.0/16 or fde4:8dba:82e1::/48)`);
    }
    return family;
  });
  if (families.length === 2 && families[0] === families[1]) {
    throw new ConfigError(name, `${name}: at most one CIDR per IP family is accepted (${example}), got ${JSON.stringify(text)}`);
  }
  return cidrs;
}

/**
 * nodePortAddresses / --nodeport-addresses, as upstream's validateKubeProxyNodePortAddress:
 * CIDRs, or the single string "primary". Empty means primary (nftables mode's default).
 * CIDRs come back canonical.
 */
export function parseNodePortAddresses(list: readonly string[], name: string): string[] {
  if (list.length === 0) return [NODE_PORT_ADDRESSES_PRIMARY];
  return list.map((text, i) => {
    if (text === NODE_PORT_ADDRESSES_PRIMARY) {
      if (list.length !== 1) throw new ConfigError(name, `${name}[${i}]: can't use both 'primary' and CIDRs, got ${JSON.stringify(list)}`);
      return text;
    }
    const cidr = text === text.trim() ? parseCIDR(text) : undefined;
    if (!cidr) {
      throw new ConfigError(name, `${name}[${i}]: ${JSON.stringify(text)} must be a valid CIDR (e.g. 10.0.0.0/8 or fd00::/64), or the single string 'primary'`);
    }
    return cidr.cidr;
  });
}

export const NODE_PORT_ADDRESSES_PRIMARY = 'primary';

/** A CIDR in canonical form (host bits cleared, as ParseCIDRSloppy's network), or undefined if it is not one. */
export function canonicalCIDR(text: string): string | undefined {
  return text === text.trim() ? parseCIDR(text)?.cidr : undefined;
}

/** Upstream validateHostPort: "IP:port" with a valid IP and a port in 1-65535. */
export function validateHostPort(addr: string, name: string): void {
  let host: string;
  let port: string;
  try {
    ({ host, port } = splitHostPort(addr));
  } catch {
    throw new ConfigError(name, `${name}: must be IP:port (e.g. 0.0.0.0:10256 or [::]:10256), got ${JSON.stringify(addr)}`);
  }
  if (isIP(host) === 0) throw new ConfigError(name, `${name}: ${JSON.stringify(host)} must be a valid IP (in IP:port ${JSON.stringify(addr)})`);
  if (!/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
    throw new ConfigError(name, `${name}: ${JSON.stringify(port)} must be a valid port in 1-65535 (in IP:port ${JSON.stringify(addr)})`);
  }
}

/** Upstream IPPortVar: the flag takes "", an IP, or IP:port. */
export function checkIPPortFlag(value: string, name: string): void {
  if (value === '' || isIP(value) !== 0) return;
  validateHostPort(value, name);
}

export function checkIP(value: string, name: string): void {
  if (isIP(value) === 0) throw new ConfigError(name, `${name}: ${JSON.stringify(value)} is not a valid IP address`);
}
