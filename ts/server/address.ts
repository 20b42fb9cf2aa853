// "host:port" handling with Go's net.SplitHostPort rules, so kube-proxy addresses
// ("0.0.0.0:10256", "[::1]:10249", "127.0.0.1:0") mean the same thing here.

import { isIP } from 'node:net';

export interface HostPort {
  host: string;
  port: number;
}

/** Go's net.SplitHostPort: brackets required around IPv6 hosts, the port may be any string. */
export function splitHostPort(addr: string): { host: string; port: string } {
  if (addr.startsWith('[')) {
    const end = addr.indexOf(']');
    if (end < 0) throw new Error(`address ${addr}: missing ']' in address`);
    if (end + 1 === addr.length) throw new Error(`address ${addr}: missing port in address`);
    if (addr[end + 1] !== ':') throw new Error(`address ${addr}: unexpected character after ']'`);
    const host = addr.slice(1, end);
    const port = addr.slice(end + 2);
    if (host.includes('[') || host.includes(']') || port.includes('[') || port.includes(']')) {
      throw new Error(`address ${addr}: unexpected '[' or ']' in address`);
    }
    return { host, port };
  }
  const colon = addr.lastIndexOf(':');
  if (colon < 0) throw new Error(`address ${addr}: missing port in address`);
  const host = addr.slice(0, colon);
  if (host.includes(':')) throw new Error(`address ${addr}: too many colons in address`);
  if (host.includes('[') || host.includes(']')) throw new Error(`address ${addr}: unexpected '[' or ']' in address`);
  return { host, port: addr.slice(colon + 1) };
}

/** Brackets IPv6 hosts: joinHostPort("::1", 10249) → "[::1]:10249". */
export function joinHostPort(host: string, port: number | string): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Parses a listen address: the host must be an IP (or empty for all interfaces), the port 0-65535. */
export function parseListenAddress(addr: string): HostPort {
  const { host, port } = splitHostPort(addr);
  if (host !== '' && isIP(host) === 0) throw new Error(`address ${addr}: "${host}" is not an IP address`);
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) {
    throw new Error(`address ${addr}: "${port}" is not a valid port`);
  }
  return { host, port: Number(port) };
}

/** Upstream's AppendPortIfNeeded: a bare IP gets the default port; anything else is left as is. */
export function appendPortIfNeeded(addr: string, port: number): string {
  try {
    splitHostPort(addr);
    return addr;
  } catch {
    return isIP(addr) === 0 ? addr : joinHostPort(addr, port);
  }
}
