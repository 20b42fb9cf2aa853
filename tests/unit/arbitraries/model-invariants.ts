// An invariant checker for what the agent hands a proxier, written apart from ts/model/ip.ts
// and ts/tracker/validate.ts on purpose: a bug there must not be mirrored here.
import type { Endpoint, IPFamily, ServicePort } from '../../../ts/model/types.js';
import type { NodeAddressing } from '../../../ts/proxier/types.js';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** What may appear in a field that ends up in rule text (ruleset comments, restore lines, the wire). */
const RULE_TEXT = /^[A-Za-z0-9.:/-]*$/;
const OCTET = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const IPV4 = new RegExp(`^${OCTET}(\\.${OCTET}){3}$`);

function ipv4Bytes(s: string): number[] | undefined {
  return IPV4.test(s) ? s.split('.').map(Number) : undefined;
}

function ipv6Bytes(s: string): number[] | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(s) || s.length > 45) return undefined;
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const groups = (h: string): number[] | undefined => {
    if (h === '') return [];
    const out: number[] = [];
    const parts = h.split(':');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      if (i === parts.length - 1 && p.includes('.')) {
        const b = ipv4Bytes(p);
        if (!b) return undefined;
        out.push((b[0] << 8) | b[1], (b[2] << 8) | b[3]);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) out.push(parseInt(p, 16));
      else return undefined;
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = [...head, ...new Array(halves.length === 2 ? missing : 0).fill(0), ...tail];
  return all.flatMap((g) => [g >> 8, g & 0xff]);
}

/** RFC 5952 text of 16 bytes. */
function formatIPv6(b: number[]): string {
  const g = Array.from({ length: 8 }, (_, i) => (b[2 * i] << 8) | b[2 * i + 1]);
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) (best = i), (bestLen = j - i);
    i = j === i ? i + 1 : j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  return best < 0 ? hex(g) : `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

/** Why `ip` is not a canonical literal IP of `family`, or undefined. */
export function ipProblem(ip: unknown, family: IPFamily): string | undefined {
  if (typeof ip !== 'string') return `not a string: ${typeof ip}`;
  if (family === 'IPv4') return ipv4Bytes(ip) ? undefined : `not an IPv4 address: ${JSON.stringify(ip.slice(0, 60))}`;
  const b = ipv6Bytes(ip);
  if (!b) return `not an IPv6 address: ${JSON.stringify(ip.slice(0, 60))}`;
  return formatIPv6(b) === ip ? undefined : `IPv6 address not canonical: ${ip}`;
}

function cidrProblem(c: unknown, family: IPFamily): string | undefined {
  if (typeof c !== 'string') return 'CIDR not a string';
  const m = /^([^/]+)\/(0|[1-9][0-9]{0,2})$/.exec(c);
  if (!m) return `not a CIDR: ${JSON.stringify(c.slice(0, 60))}`;
  const bad = ipProblem(m[1], family);
  if (bad) return bad;
  const bits = Number(m[2]);
  const bytes = family === 'IPv4' ? ipv4Bytes(m[1])! : ipv6Bytes(m[1])!;
  if (bits > bytes.length * 8) return `prefix too long: ${c}`;
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - 8 * i));
    if (bytes[i] & ~(0xff << (8 - keep)) & 0xff) return `host bits set: ${c}`;
  }
  return undefined;
}

const isPort = (v: unknown, min: number) => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= 65535;
const epId = (e: Endpoint) => `${e.ip}|${e.port}`;

function endpointProblems(e: Endpoint, family: IPFamily, where: string): string[] {
  const out: string[] = [];
  const ip = ipProblem(e.ip, family);
  if (ip) out.push(`${where}: ${ip}`);
  if (!isPort(e.port, 1)) out.push(`${where}: port ${String(e.port)}`);
  for (const f of ['ready', 'serving', 'terminating', 'isLocal'] as const) if (typeof e[f] !== 'boolean') out.push(`${where}: ${f} not boolean`);
  // Free text, but only ever compared (selection), never written into rules.
  for (const f of ['nodeName', 'zone'] as const) if (e[f] !== undefined && typeof e[f] !== 'string') out.push(`${where}: ${f} not a string`);
  for (const f of ['zoneHints', 'nodeHints'] as const) {
    const h = e[f];
    if (h !== undefined && (!Array.isArray(h) || h.length === 0 || h.some((x) => typeof x !== 'string' || x === ''))) out.push(`${where}: bad ${f}`);
  }
  return out;
}

/** Every problem of one ServicePort handed to the `family` proxier. */
export function servicePortProblems(sp: ServicePort, family: IPFamily): string[] {
  const out: string[] = [];
  const at = typeof sp.key === 'string' ? sp.key.slice(0, 80) : '<key?>';
  const bad = (msg: string) => out.push(`${at}: ${msg}`);
  if (typeof sp.namespace !== 'string' || !DNS1123_LABEL.test(sp.namespace)) bad('namespace not a DNS-1123 label');
  if (typeof sp.name !== 'string' || !DNS1035_LABEL.test(sp.name)) bad('name not a DNS-1035 label');
  if (typeof sp.portName !== 'string' || (sp.portName !== '' && !DNS1123_LABEL.test(sp.portName))) bad('port name not a DNS-1123 label');
  if (!['TCP', 'UDP', 'SCTP'].includes(sp.protocol)) bad(`protocol ${String(sp.protocol)}`);
  if (sp.key !== `${sp.namespace}/${sp.name}/${String(sp.protocol).toLowerCase()}/${sp.portName}`) bad('key does not match its fields');
  if (sp.family !== family) bad(`family ${sp.family} handed to the ${family} proxier`);
  if (!['ClusterIP', 'NodePort', 'LoadBalancer'].includes(sp.type)) bad(`type ${String(sp.type)}`);
  const cip = ipProblem(sp.clusterIP, family);
  if (cip) bad(`clusterIP: ${cip}`);
  if (!isPort(sp.port, 1)) bad(`port ${String(sp.port)}`);
  if (!isPort(sp.nodePort, 0)) bad(`nodePort ${String(sp.nodePort)}`);
  if (!isPort(sp.healthCheckNodePort, 0)) bad(`healthCheckNodePort ${String(sp.healthCheckNodePort)}`);
  for (const [f, list] of [['externalIPs', sp.externalIPs], ['loadBalancerVIPs', sp.loadBalancerVIPs]] as const) {
    if (!Array.isArray(list)) bad(`${f} not a list`);
    else for (const ip of list) { const p = ipProblem(ip, family); if (p) bad(`${f}: ${p}`); }
  }
  if (!Array.isArray(sp.loadBalancerSourceRanges)) bad('loadBalancerSourceRanges not a list');
  else for (const c of sp.loadBalancerSourceRanges) { const p = cidrProblem(c, family); if (p) bad(`loadBalancerSourceRanges: ${p}`); }
  if (sp.sessionAffinity === 'None') { if (sp.stickyMaxAgeSeconds !== 0) bad('sticky time without affinity'); }
  else if (sp.sessionAffinity === 'ClientIP') { if (!Number.isInteger(sp.stickyMaxAgeSeconds) || sp.stickyMaxAgeSeconds < 1 || sp.stickyMaxAgeSeconds > 86400) bad(`sticky time ${sp.stickyMaxAgeSeconds}`); }
  else bad(`sessionAffinity ${String(sp.sessionAffinity)}`);
  if (typeof sp.externalPolicyLocal !== 'boolean' || typeof sp.internalPolicyLocal !== 'boolean') bad('policy flags not boolean');
  if (typeof sp.trafficDistribution !== 'string' || !/^[A-Za-z]*$/.test(sp.trafficDistribution)) bad('trafficDistribution');
  // Belt and braces over the checks above: nothing that reaches rule text holds a control
  // character, a quote, a blank, `;`, `#` or a shell metacharacter.
  const text = [sp.key, sp.namespace, sp.name, sp.portName, sp.protocol, sp.type, sp.clusterIP, sp.sessionAffinity, sp.trafficDistribution,
    ...(sp.externalIPs ?? []), ...(sp.loadBalancerVIPs ?? []), ...(sp.loadBalancerSourceRanges ?? [])];
  for (const s of text) if (typeof s !== 'string' || !RULE_TEXT.test(s)) bad(`unsafe rule text ${JSON.stringify(String(s).slice(0, 40))}`);
  if (!Array.isArray(sp.endpoints) || !Array.isArray(sp.clusterEndpoints) || !Array.isArray(sp.localEndpoints)) {
    bad('endpoint lists missing');
    return out;
  }
  const ids = new Set<string>();
  sp.endpoints.forEach((e, i) => {
    out.push(...endpointProblems(e, family, `${at} endpoints[${i}]`));
    if (ids.has(epId(e))) bad(`endpoint ${epId(e)} twice`);
    ids.add(epId(e));
  });
  for (const e of [...sp.clusterEndpoints, ...sp.localEndpoints]) if (!ids.has(epId(e))) bad(`selected endpoint ${epId(e)} is not one of the endpoints`);
  return out;
}

/** Problems across one family's ServicePorts: keys and, per Service, ports and NodePorts unique. */
export function modelProblems(sps: Iterable<ServicePort>, family: IPFamily): string[] {
  const out: string[] = [];
  const keys = new Set<string>();
  const ports = new Set<string>();
  for (const sp of sps) {
    out.push(...servicePortProblems(sp, family));
    if (keys.has(sp.key)) out.push(`${sp.key}: twice`);
    keys.add(sp.key);
    const svc = `${sp.namespace}/${sp.name}`;
    const p = `${svc} ${sp.protocol} port ${sp.port}`;
    if (ports.has(p)) out.push(`${p}: two ServicePorts of one Service share it`);
    ports.add(p);
    if (sp.nodePort !== 0) {
      const n = `${svc} ${sp.protocol} nodePort ${sp.nodePort}`;
      if (ports.has(n)) out.push(`${n}: two ServicePorts of one Service share it`);
      ports.add(n);
    }
  }
  return out;
}

export function nodeAddressingProblems(node: NodeAddressing, family: IPFamily): string[] {
  const out: string[] = [];
  for (const ip of node.nodeIPs) { const p = ipProblem(ip, family); if (p) out.push(`nodeIPs: ${p}`); }
  if (node.nodePortIPs !== 'all') for (const ip of node.nodePortIPs) { const p = ipProblem(ip, family); if (p) out.push(`nodePortIPs: ${p}`); }
  return out;
}
