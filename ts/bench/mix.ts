// The benchmark's mixed cluster (`npm run bench -- --mix`): of every 20 Services, 4 NodePort,
// 1 LoadBalancer with source ranges, 1 externalTrafficPolicy Local, 1 ClientIP affinity,
// 1 with topology hints, 12 plain ClusterIP. Deterministic: Service i is the same
// ServicePort in every run and at every cluster size, so 1k is a prefix of 10k.
import { readyEndpoint } from '../model/build.js';
import { policyUse, selectEndpoints } from '../model/endpoint-selection.js';
import { LABEL_TOPOLOGY_ZONE, servicePortKey, type Endpoint, type NodeInfo, type ServicePort } from '../model/types.js';
import type { NodeAddressing, Proxier, TracePacket } from '../proxier/types.js';

export type MixFeature = 'ClusterIP' | 'NodePort' | 'LoadBalancerSourceRanges' | 'ExternalTrafficPolicyLocal' | 'SessionAffinity' | 'Topology';

/** Every feature of the mix, plain ClusterIP first. */
export const MIX_FEATURES: readonly MixFeature[] = ['ClusterIP', 'NodePort', 'LoadBalancerSourceRanges', 'ExternalTrafficPolicyLocal', 'SessionAffinity', 'Topology'];

/** Service i's feature, by i mod 20: 0-3 NodePort (20%), 4 source ranges, 5 eTP Local, 6 affinity, 7 topology (5% each). */
export function featureOf(i: number): MixFeature {
  switch (i % 20) {
    case 0: case 1: case 2: case 3: return 'NodePort';
    case 4: return 'LoadBalancerSourceRanges';
    case 5: return 'ExternalTrafficPolicyLocal';
    case 6: return 'SessionAffinity';
    case 7: return 'Topology';
    default: return 'ClusterIP';
  }
}

export const MIX_NODE_NAME = 'node-1';
export const MIX_NODE_IP = '192.168.0.2';
export const MIX_ZONE = 'zone-a';
/** This node, for endpoint selection (its zone is what topology hints are matched against). */
export const MIX_NODE: NodeInfo = { name: MIX_NODE_NAME, labels: { [LABEL_TOPOLOGY_ZONE]: MIX_ZONE } };
/** What the syncs carry: NodePorts on the node IP only. */
export const MIX_ADDRESSING: NodeAddressing = { nodePortIPs: [MIX_NODE_IP], nodeIPs: [MIX_NODE_IP] };
/** A client outside the cluster, inside every Service's source ranges. */
export const MIX_CLIENT = '203.0.113.9';
/** A client outside the cluster and outside every source range. */
export const MIX_BLOCKED_CLIENT = '198.18.250.9';
/** The pod CIDR the benchmark's local detector uses. */
export const MIX_CLUSTER_CIDR = '10.64.0.0/10';

const ZONES = ['zone-a', 'zone-b', 'zone-c'];

/** Services of a feature with an index below i (the feature's own counter). */
function rankOf(i: number): number {
  const block = Math.floor(i / 20);
  const r = i % 20;
  return r < 4 ? block * 4 + r : block;
}

/**
 * NodePorts are allocated in index order from 30000: the NodePort Services and every second
 * eTP Local one (a NodePort Service) take one each; the LoadBalancers do not allocate one
 * (allocateLoadBalancerNodePorts: false), except a healthCheckNodePort for the eTP Local ones.
 * 10k Services need 2,500 of the default range's 2,768.
 */
function nodePortsOf(i: number): { nodePort: number; healthCheckNodePort: number } {
  const block = Math.floor(i / 20);
  const base = 30000 + block * 5; // 4 NodePort + 1 for the eTP Local Service of the block
  const f = featureOf(i);
  if (f === 'NodePort') return { nodePort: base + (i % 20), healthCheckNodePort: 0 };
  if (f === 'ExternalTrafficPolicyLocal') {
    const viaLB = block % 2 === 1;
    return viaLB ? { nodePort: 0, healthCheckNodePort: base + 4 } : { nodePort: base + 4, healthCheckNodePort: 0 };
  }
  return { nodePort: 0, healthCheckNodePort: 0 };
}

function lbVIP(rank: number, feature: MixFeature): string {
  // 198.18.0.0/15 (benchmarking range): .0-.127 third octet for source-range LBs, .128+ for eTP Local.
  const hi = feature === 'LoadBalancerSourceRanges' ? 0 : 128;
  return `198.18.${hi + ((rank >> 8) & 127)}.${rank & 255}`;
}

function endpointIP(svc: number, ep: number, generation: number): string {
  // 10.{64+gen}.x.y: unique per (service, endpoint), a new address per generation.
  const n = svc * 64 + ep;
  return `10.${64 + (generation % 128)}.${(n >> 8) & 255}.${n & 255}`;
}

/**
 * Service i of the mix with `endpoints` ready endpoints; endpoint e has the address of
 * generation `generations[e]` (default 0; a one-endpoint change bumps one). Endpoint e runs on
 * node-(1 + e mod 5), so e = 0, 5 are on this node; topology endpoints are hinted for their
 * zone (e mod 3), so this node (zone-a) keeps e = 0, 3, 6, 9. The Cluster and Local endpoint
 * lists are what endpoint selection makes of that for this node.
 */
export function mixedServicePort(i: number, endpoints: number, generations: readonly number[] = []): ServicePort {
  const feature = featureOf(i);
  const rank = rankOf(i);
  const eps: Endpoint[] = Array.from({ length: endpoints }, (_, e) => {
    const nodeName = `node-${1 + (e % 5)}`;
    const zone = ZONES[e % 3];
    return readyEndpoint(endpointIP(i, e, generations[e] ?? 0), 8080, {
      nodeName,
      zone,
      isLocal: nodeName === MIX_NODE_NAME,
      ...(feature === 'Topology' ? { zoneHints: [zone] } : {}),
    });
  });
  const { nodePort, healthCheckNodePort } = nodePortsOf(i);
  const lb = feature === 'LoadBalancerSourceRanges' || (feature === 'ExternalTrafficPolicyLocal' && nodePort === 0);
  const base = {
    key: servicePortKey('bench', `svc-${i}`, 'TCP', 'http'),
    namespace: 'bench',
    name: `svc-${i}`,
    portName: 'http',
    protocol: 'TCP' as const,
    family: 'IPv4' as const,
    type: lb ? ('LoadBalancer' as const) : nodePort > 0 ? ('NodePort' as const) : ('ClusterIP' as const),
    clusterIP: `172.20.${i >> 8}.${i & 255}`,
    port: 80,
    nodePort,
    externalIPs: [],
    loadBalancerVIPs: lb ? [lbVIP(rank, feature)] : [],
    loadBalancerSourceRanges: feature === 'LoadBalancerSourceRanges' ? [`100.${64 + ((rank >> 8) & 63)}.${rank & 255}.0/24`, '203.0.113.0/24'] : [],
    sessionAffinity: feature === 'SessionAffinity' ? ('ClientIP' as const) : ('None' as const),
    stickyMaxAgeSeconds: feature === 'SessionAffinity' ? 10800 : 0,
    externalPolicyLocal: feature === 'ExternalTrafficPolicyLocal',
    internalPolicyLocal: false,
    healthCheckNodePort,
    trafficDistribution: feature === 'Topology' ? 'PreferClose' : '',
    endpoints: eps,
  };
  const sel = selectEndpoints(eps, MIX_NODE, policyUse(base));
  return { ...base, clusterEndpoints: sel.clusterEndpoints, localEndpoints: sel.localEndpoints };
}

export function mixedCluster(services: number, endpoints: number): ServicePort[] {
  return Array.from({ length: services }, (_, i) => mixedServicePort(i, endpoints));
}

/** Indices of the Services of each feature, in index order. */
export function indicesByFeature(services: number): Map<MixFeature, number[]> {
  const out = new Map<MixFeature, number[]>(MIX_FEATURES.map((f) => [f, []]));
  for (let i = 0; i < services; i++) out.get(featureOf(i))!.push(i);
  return out;
}

/** A new connection the path measurement sends to a Service of `feature` (that `fits`). */
export interface MixProbe {
  label: string;
  feature: MixFeature;
  fits?: (sp: ServicePort) => boolean;
  packet(sp: ServicePort): TracePacket;
}

const local = [`${MIX_NODE_IP}/32`];
/** A pod of the cluster CIDR (no endpoint has this address). */
const POD = '10.100.0.9';
const toClusterIP = (sp: ServicePort): TracePacket => ({ src: POD, dst: sp.clusterIP, port: sp.port, protocol: 'TCP', localCidrs: local });
const toVIP = (sp: ServicePort, src: string): TracePacket => ({ src, dst: sp.loadBalancerVIPs[0], port: sp.port, protocol: 'TCP', localCidrs: local });
const toNodePort = (sp: ServicePort, src: string): TracePacket => ({ src, dst: MIX_NODE_IP, port: sp.nodePort, protocol: 'TCP', localCidrs: local });

/** One probe per feature and entry point (source ranges: an allowed and a blocked client). */
export const MIX_PROBES: readonly MixProbe[] = [
  { label: 'ClusterIP, from a pod', feature: 'ClusterIP', packet: toClusterIP },
  { label: 'NodePort, from outside', feature: 'NodePort', packet: (sp) => toNodePort(sp, MIX_CLIENT) },
  { label: 'LB source ranges, allowed client', feature: 'LoadBalancerSourceRanges', packet: (sp) => toVIP(sp, MIX_CLIENT) },
  { label: 'LB source ranges, blocked client', feature: 'LoadBalancerSourceRanges', packet: (sp) => toVIP(sp, MIX_BLOCKED_CLIENT) },
  { label: 'eTP Local LB IP, from outside', feature: 'ExternalTrafficPolicyLocal', fits: (sp) => sp.loadBalancerVIPs.length > 0, packet: (sp) => toVIP(sp, MIX_CLIENT) },
  { label: 'eTP Local NodePort, from outside', feature: 'ExternalTrafficPolicyLocal', fits: (sp) => sp.nodePort > 0, packet: (sp) => toNodePort(sp, MIX_CLIENT) },
  { label: 'eTP Local LB IP, from a pod', feature: 'ExternalTrafficPolicyLocal', fits: (sp) => sp.loadBalancerVIPs.length > 0, packet: (sp) => toVIP(sp, POD) },
  { label: 'ClientIP affinity, new client', feature: 'SessionAffinity', packet: toClusterIP },
  { label: 'topology hints, from a pod', feature: 'Topology', packet: toClusterIP },
];

/** Each chain's rule count, from the mode's ruleset text (`add rule <family> <table> <chain> ...`). */
export function chainRuleCounts(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^add rule \S+ \S+ (\S+) /.exec(line);
    if (m) counts.set(m[1], (counts.get(m[1]) ?? 0) + 1);
  }
  return counts;
}

/** What one new connection costs in the desired ruleset, as the tracer walks it. */
export interface PathCost {
  /** Rules whose matches all held (TraceResult.path; the first outcome's path). */
  rulesFired: number;
  /** Set and map references (`@name`: lookups, and affinity's update) in those rules. */
  lookups: number;
  /**
   * Every rule of every chain the packet entered (a chain on the path or jumped to from it):
   * a bound on the rules the kernel evaluates, matched or not.
   */
  rulesInChainsEntered: number;
  verdict: string;
}

/** Traces `packet` through `proxier`'s desired ruleset; `rules` from chainRuleCounts(proxier.render()). */
export function pathCost(proxier: Proxier, packet: TracePacket, rules: ReadonlyMap<string, number>): PathCost {
  const r = proxier.explain(packet);
  let lookups = 0;
  const entered = new Set<string>();
  for (const step of r.path) {
    // "table chain: rule"
    const m = /^\S+ (\S+): (.*)$/.exec(step);
    if (!m) throw new Error(`unexpected trace step ${JSON.stringify(step)}`);
    entered.add(m[1]);
    for (const j of m[2].matchAll(/\b(?:jump|goto) (\S+)/g)) entered.add(j[1]);
    lookups += (m[2].match(/@[^\s,{}]+/g) ?? []).length;
  }
  let rulesInChainsEntered = 0;
  for (const c of entered) rulesInChainsEntered += rules.get(c) ?? 0;
  const verdicts = [...new Set(r.outcomes.map((o) => `${o.verdict}${o.masquerade ? '+masq' : ''}`))].sort();
  return { rulesFired: r.path.length, lookups, rulesInChainsEntered, verdict: verdicts.join('|') || 'none' };
}

/** `count` Services of the probe's kind among the first `services`, spread pseudo-randomly (fixed seed). */
export function probeSample(probe: MixProbe, specs: readonly ServicePort[], count: number, seed = 1): ServicePort[] {
  const candidates = specs.filter((sp, i) => featureOf(i) === probe.feature && (probe.fits?.(sp) ?? true));
  let x = seed >>> 0 || 1;
  const out: ServicePort[] = [];
  for (let k = 0; k < Math.min(count, candidates.length); k++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out.push(candidates[x % candidates.length]);
  }
  return out;
}

/** An upstream-style chain id: unique per index, 8 base-36 characters. */
const hashOf = (i: number) => i.toString(36).toUpperCase().padStart(8, 'X');

/**
 * The same cluster in upstream kube-proxy's nftables shape, for `nft -f`: a `service-` chain per
 * ServicePort with a numgen vmap (an anonymous map) over an `endpoint-` chain per endpoint;
 * externally reachable ones an `external-` chain (eTP Cluster: masquerade, then the service
 * chain; eTP Local: pods and the node short-circuit to the service chain, the rest goes to a
 * `local-` chain over the local endpoints); NodePorts in `service-nodeports`; source ranges a
 * `firewall-` chain (`ip saddr != { ranges } drop`) from `firewall-ips`; ClientIP affinity a
 * timeout set per endpoint, checked in the service chain and updated in the endpoint chain.
 * For plain ClusterIP Services this is the text the benchmark has always used. Base chains
 * and the no-endpoint / cluster-ips checks are left out (the same few rules whatever N).
 */
export function upstreamShapedText(specs: readonly ServicePort[], clusterCIDR: string, nodePortIPs: readonly string[] = []): string {
  const out = [
    'add table ip kube-proxy { comment "rules for kube-proxy" ; }',
    'add chain ip kube-proxy mark-for-masquerade',
    'add rule ip kube-proxy mark-for-masquerade mark set mark or 0x4000',
    'add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }',
    'add chain ip kube-proxy services',
    'add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips',
  ];
  const anyNodePort = specs.some((s) => s.nodePort > 0);
  const anyFirewall = specs.some((s) => s.loadBalancerSourceRanges.length > 0 && s.loadBalancerVIPs.length > 0);
  if (anyNodePort) {
    out.push(
      'add set ip kube-proxy nodeport-ips { type ipv4_addr ; }',
      ...nodePortIPs.map((ip) => `add element ip kube-proxy nodeport-ips { ${ip} }`),
      'add map ip kube-proxy service-nodeports { type inet_proto . inet_service : verdict ; }',
      'add rule ip kube-proxy services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports',
    );
  }
  if (anyFirewall) {
    out.push(
      'add map ip kube-proxy firewall-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }',
      'add chain ip kube-proxy firewall-check',
      'add rule ip kube-proxy firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips',
    );
  }
  const proto = (s: ServicePort) => s.protocol.toLowerCase();
  specs.forEach((s, i) => {
    const h = hashOf(i);
    const svcChain = `service-${h}-${s.key}`;
    out.push(`add chain ip kube-proxy ${svcChain}`);
    out.push(`add rule ip kube-proxy ${svcChain} ip daddr ${s.clusterIP} ip saddr != ${clusterCIDR} jump mark-for-masquerade`);
    // Endpoint chains for every endpoint this node may send to (cluster and local), once each.
    const reachable = [...new Map([...s.clusterEndpoints, ...s.localEndpoints].map((e) => [`${e.ip}/${e.port}`, e])).values()];
    const affinity = s.sessionAffinity === 'ClientIP';
    const epChain = new Map<string, string>();
    for (const e of reachable) {
      const name = `endpoint-${h}-${s.key}__${e.ip}/${e.port}`;
      epChain.set(`${e.ip}/${e.port}`, name);
      out.push(`add chain ip kube-proxy ${name}`);
      out.push(`add rule ip kube-proxy ${name} ip saddr ${e.ip} jump mark-for-masquerade`);
      if (affinity) {
        out.push(`add set ip kube-proxy affinity-${h}-${e.ip}/${e.port} { type ipv4_addr ; flags dynamic,timeout ; timeout ${s.stickyMaxAgeSeconds}s ; }`);
        out.push(`add rule ip kube-proxy ${name} update @affinity-${h}-${e.ip}/${e.port} { ip saddr }`);
      }
      out.push(`add rule ip kube-proxy ${name} meta l4proto ${proto(s)} dnat to ${e.ip}:${e.port}`);
    }
    const vmap = (eps: readonly Endpoint[]) => eps.map((e, j) => `${j} : goto ${epChain.get(`${e.ip}/${e.port}`)}`).join(' , ');
    if (affinity) {
      for (const e of s.clusterEndpoints) out.push(`add rule ip kube-proxy ${svcChain} ip saddr @affinity-${h}-${e.ip}/${e.port} goto ${epChain.get(`${e.ip}/${e.port}`)}`);
    }
    if (s.clusterEndpoints.length > 0) out.push(`add rule ip kube-proxy ${svcChain} numgen random mod ${s.clusterEndpoints.length} vmap { ${vmap(s.clusterEndpoints)} }`);
    out.push(`add element ip kube-proxy service-ips { ${s.clusterIP} . ${proto(s)} . ${s.port} : goto ${svcChain} }`);

    if (s.nodePort === 0 && s.loadBalancerVIPs.length === 0 && s.externalIPs.length === 0) return;
    const extChain = `external-${h}-${s.key}`;
    out.push(`add chain ip kube-proxy ${extChain}`);
    if (s.externalPolicyLocal) {
      const localChain = `local-${h}-${s.key}`;
      out.push(`add chain ip kube-proxy ${localChain}`);
      if (s.localEndpoints.length > 0) out.push(`add rule ip kube-proxy ${localChain} numgen random mod ${s.localEndpoints.length} vmap { ${vmap(s.localEndpoints)} }`);
      else out.push(`add rule ip kube-proxy ${localChain} drop`);
      out.push(
        `add rule ip kube-proxy ${extChain} ip saddr ${clusterCIDR} goto ${svcChain}`,
        `add rule ip kube-proxy ${extChain} fib saddr type local jump mark-for-masquerade`,
        `add rule ip kube-proxy ${extChain} fib saddr type local goto ${svcChain}`,
        `add rule ip kube-proxy ${extChain} goto ${localChain}`,
      );
    } else {
      out.push(`add rule ip kube-proxy ${extChain} jump mark-for-masquerade`, `add rule ip kube-proxy ${extChain} goto ${svcChain}`);
    }
    if (s.nodePort > 0) out.push(`add element ip kube-proxy service-nodeports { ${proto(s)} . ${s.nodePort} : goto ${extChain} }`);
    for (const vip of [...s.externalIPs, ...s.loadBalancerVIPs]) out.push(`add element ip kube-proxy service-ips { ${vip} . ${proto(s)} . ${s.port} : goto ${extChain} }`);
    if (s.loadBalancerSourceRanges.length > 0 && s.loadBalancerVIPs.length > 0) {
      const fwChain = `firewall-${h}-${s.key}`;
      out.push(`add chain ip kube-proxy ${fwChain}`);
      out.push(`add rule ip kube-proxy ${fwChain} ip saddr != { ${s.loadBalancerSourceRanges.join(' , ')} } drop`);
      for (const vip of s.loadBalancerVIPs) out.push(`add element ip kube-proxy firewall-ips { ${vip} . ${proto(s)} . ${s.port} : goto ${fwChain} }`);
    }
  });
  return out.join('\n') + '\n';
}
