// This node's addressing per family, as upstream resolves it (cmd/kube-proxy/app/server.go
// detectNodeIPs, pkg/proxy/util/nodeport_addresses.go, nftables mode's NodePort IPs):
// - nodeIPs: a non-unspecified bindAddress for its family, else the Node's first InternalIP
//   (then ExternalIP) of the family (utilnode.GetNodeHostIPs). No Node yet: none.
// - nodePortIPs: `primary` is the family's node IP as a /32 or /128; CIDRs are matched against
//   the local interface addresses; a family without a CIDR, or a 0.0.0.0/0 or ::/0, is 'all'.
//   Loopback addresses are skipped, but IPv4's in iptables mode with localhost NodePorts.
import { networkInterfaces } from 'node:os';
import { canonicalIP, cidrContains, ipFamilyOf, isLoopbackIP, isUnspecifiedIP, parseCIDR } from '../model/ip.js';
import type { IPFamily } from '../model/types.js';
import type { NodeAddressing } from '../proxier/types.js';
import type { EventType, KubeObject } from '../sources/types.js';
import { isObject } from './validate.js';

export interface LocalAddress {
  interface: string;
  address: string;
}

/** Lists the node's interface addresses; injectable, the default reads os.networkInterfaces(). */
export type LocalAddresses = () => LocalAddress[];

export const systemAddresses: LocalAddresses = () =>
  Object.entries(networkInterfaces()).flatMap(([name, list]) => (list ?? []).map((a) => ({ interface: name, address: a.address })));

/** utilnode.GetNodeHostIPs: InternalIPs before ExternalIPs; the first, then the first of the other family. */
export function nodeHostIPs(node: unknown): string[] {
  const addresses = isObject(node) && isObject(node.status) && Array.isArray(node.status.addresses) ? node.status.addresses : [];
  const of = (type: string) =>
    addresses.filter((a: unknown) => isObject(a) && a.type === type && ipFamilyOf(a.address)).map((a: { address: string }) => canonicalIP(a.address));
  const all: string[] = [...of('InternalIP'), ...of('ExternalIP')];
  if (all.length === 0) return [];
  const other = all.find((ip) => ipFamilyOf(ip) !== ipFamilyOf(all[0]));
  return other ? [all[0], other] : [all[0]];
}

export interface NodeAddressResolverOptions {
  bindAddress: string;
  /** ['primary'] or CIDRs (config's nodePortAddresses). */
  nodePortAddresses: readonly string[];
  addresses?: LocalAddresses;
  /** IPv4 loopback addresses take NodePorts (iptables mode's localhost NodePorts); else skipped. */
  localhostNodePorts?: boolean;
  /** Called once per distinct situation worth telling the operator. */
  log?: (level: 'info' | 'warn', fields: Record<string, unknown>, msg: string) => void;
}

const hostCIDR = (ip: string) => `${ip}/${ipFamilyOf(ip) === 'IPv4' ? 32 : 128}`;

export class NodeAddressResolver {
  /** The Node's host IPs; undefined until a Node was seen. */
  private hostIPs: string[] | undefined;
  private readonly logged = new Set<string>();
  private readonly addresses: LocalAddresses;

  constructor(private readonly opts: NodeAddressResolverOptions) {
    this.addresses = opts.addresses ?? systemAddresses;
  }

  /** Our Node's events. A deletion keeps the last addresses: the node is going away anyway. */
  onNode(type: EventType, obj: KubeObject | undefined): void {
    if (type !== 'DELETED' && isObject(obj)) this.hostIPs = nodeHostIPs(obj);
  }

  nodeIPs(family: IPFamily): string[] {
    const bind = this.opts.bindAddress;
    if (ipFamilyOf(bind) === family && !isUnspecifiedIP(bind)) return [canonicalIP(bind)];
    if (this.hostIPs === undefined) {
      this.once('no-node', 'info', {}, 'No Node object yet: node IPs unknown, so primary NodePort addresses are none until it arrives');
      return [];
    }
    return this.hostIPs.filter((ip) => ipFamilyOf(ip) === family);
  }

  /** Each family's addressing, reading the local interfaces once. */
  resolve(families: readonly IPFamily[]): Map<IPFamily, NodeAddressing> {
    let local: LocalAddress[] | undefined;
    const list = () => (local ??= this.addresses());
    return new Map(families.map((f) => [f, { nodePortIPs: this.nodePortIPs(f, list), nodeIPs: this.nodeIPs(f) }]));
  }

  private nodePortIPs(family: IPFamily, list: () => LocalAddress[]): string[] | 'all' {
    let cidrs: string[];
    if (this.opts.nodePortAddresses.length === 1 && this.opts.nodePortAddresses[0] === 'primary') {
      cidrs = this.nodeIPs(family).filter((ip) => !isLoopbackIP(ip)).map(hostCIDR);
      if (cidrs.length === 0) return [];
    } else {
      cidrs = this.opts.nodePortAddresses.filter((c) => parseCIDR(c)?.family === family);
      if (cidrs.length === 0) {
        this.once(`all-${family}`, 'warn', { ipFamily: family, nodePortAddresses: this.opts.nodePortAddresses },
          `nodePortAddresses has no ${family} CIDR: ${family} NodePorts are accepted on every local address, as upstream`);
        return 'all';
      }
      if (cidrs.some((c) => c.endsWith('/0'))) return 'all';
    }
    const out = new Set<string>();
    for (const a of list()) {
      if (ipFamilyOf(a.address) !== family || !cidrs.some((c) => cidrContains(c, a.address))) continue;
      const ip = canonicalIP(a.address);
      if (isLoopbackIP(ip) && !(this.opts.localhostNodePorts && family === 'IPv4')) {
        this.once(`loopback-${ip}`, 'warn', { address: ip, interface: a.interface }, 'nodePortAddresses includes a loopback address; skipped (localhost NodePorts are IPv4 and iptables mode only)');
        continue;
      }
      out.add(ip);
    }
    return [...out].sort();
  }

  private once(key: string, level: 'info' | 'warn', fields: Record<string, unknown>, msg: string): void {
    if (this.logged.has(key)) return;
    this.logged.add(key);
    this.opts.log?.(level, fields, msg);
  }
}
