// The wire that carries ServicePorts across N-API (see crates/kproxy-proxier/src/wire.rs):
// a header `kproxy-wire 1` + column names, then one tab-separated line per ServicePort.
// Lists are space-separated; an endpoint is `ip,port,flags` with flags from RSTNCL
// (Ready, Serving, Terminating, on this Node, in Cluster endpoints, in Local endpoints).
import type { Endpoint, ServicePort } from '../model/types.js';

export const WIRE_VERSION = 1;

/** The columns this side writes, in order. The Rust side resolves them by name. */
export const COLUMNS = [
  'key', 'namespace', 'name', 'portName', 'protocol', 'type', 'clusterIP', 'port', 'nodePort',
  'externalIPs', 'loadBalancerVIPs', 'loadBalancerSourceRanges', 'sessionAffinity', 'stickyMaxAgeSeconds',
  'externalPolicyLocal', 'internalPolicyLocal', 'healthCheckNodePort', 'trafficDistribution', 'endpoints',
] as const;

export const HEADER = `kproxy-wire ${WIRE_VERSION}\t${COLUMNS.join('\t')}`;

// A scalar field must not hold a separator; list items neither hold one nor are empty.
/** An IP made only of what a canonical IP can be made of (hex digits, `:`, `.`): an endpoint
 * token must not gain commas or spaces. A loop, not a regex: it runs once per endpoint. */
function ipChars(ip: string): boolean {
  if (ip.length === 0) return false;
  for (let k = 0; k < ip.length; k++) {
    const c = ip.charCodeAt(k);
    const ok = (c >= 0x30 && c <= 0x3a) || c === 0x2e || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
    if (!ok) return false;
  }
  return true;
}

export interface WireRejected {
  key: string;
  reason: string;
}

const ipPort = (e: Endpoint) => `${e.ip},${e.port}`;

/** The flags string for every combination of the six bits, built once. */
const FLAGS = Array.from({ length: 64 }, (_, b) => [...'RSTNCL'].filter((_, k) => b & (1 << k)).join(''));
const CLUSTER_BIT = 16;
const LOCAL_BIT = 32;

/**
 * Adds `bit` to marks[i] for each of `all` in `chosen`. The selection keeps the endpoints'
 * order and objects, so one forward walk suffices; false when `chosen` is not such a subsequence.
 */
function markByIdentity(marks: Uint8Array, all: readonly Endpoint[], chosen: readonly Endpoint[], bit: number): boolean {
  let j = 0;
  for (let i = 0; i < all.length && j < chosen.length; i++) {
    if (all[i] === chosen[j]) {
      marks[i] |= bit;
      j++;
    }
  }
  return j === chosen.length;
}

/** `endpoints` plus any selected endpoint missing from it, marked by IP:port (hand-built models). */
function markById(sp: ServicePort): { eps: Endpoint[]; marks: Uint8Array } {
  const byId = new Map<string, number>();
  const eps: Endpoint[] = [];
  for (const e of [...sp.endpoints, ...sp.clusterEndpoints, ...sp.localEndpoints]) {
    if (!byId.has(ipPort(e))) byId.set(ipPort(e), eps.push(e) - 1);
  }
  const marks = new Uint8Array(eps.length);
  for (const e of sp.clusterEndpoints) marks[byId.get(ipPort(e))!] |= CLUSTER_BIT;
  for (const e of sp.localEndpoints) marks[byId.get(ipPort(e))!] |= LOCAL_BIT;
  return { eps, marks };
}

/** The endpoints column, or undefined if an address could corrupt it. */
function endpointsColumn(sp: ServicePort): string | undefined {
  let eps: readonly Endpoint[] = sp.endpoints;
  let marks: Uint8Array = new Uint8Array(eps.length);
  if (!markByIdentity(marks, eps, sp.clusterEndpoints, CLUSTER_BIT) || !markByIdentity(marks, eps, sp.localEndpoints, LOCAL_BIT)) {
    ({ eps, marks } = markById(sp));
  }
  const out = new Array<string>(eps.length);
  for (let i = 0; i < eps.length; i++) {
    const e = eps[i];
    if (!ipChars(e.ip)) return undefined;
    const bits = marks[i] | (e.ready ? 1 : 0) | (e.serving ? 2 : 0) | (e.terminating ? 4 : 0) | (e.isLocal ? 8 : 0);
    out[i] = `${e.ip},${e.port},${FLAGS[bits]}`;
  }
  return out.join(' ');
}

/** The string holds a tab, newline, carriage return or space (a separator of the wire). */
function hasSeparator(v: string): boolean {
  for (let k = 0; k < v.length; k++) {
    const c = v.charCodeAt(k);
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) return true;
  }
  return false;
}

function safeList(l: readonly string[]): boolean {
  for (const v of l) if (v === '' || hasSeparator(v)) return false;
  return true;
}

/**
 * Names reach iptables-restore's quoted --comment (at most 256 bytes, or the whole restore
 * fails) and nft's comments. The addon refuses quotes, blanks and control characters but not
 * length, so this side lets only what validation passes cross: DNS names, at DNS lengths.
 */
const NAME = /^[a-z0-9.-]{0,253}$/;
const KEY = /^[a-z0-9./-]{1,256}$/;

function row(sp: ServicePort): string | undefined {
  const scalars = [sp.key, sp.namespace, sp.name, sp.portName, sp.protocol, sp.type, sp.clusterIP, sp.sessionAffinity, sp.trafficDistribution];
  for (const v of scalars) if (hasSeparator(v)) return undefined;
  if (!NAME.test(sp.namespace) || !NAME.test(sp.name) || !NAME.test(sp.portName) || !KEY.test(sp.key)) return undefined;
  if (!safeList(sp.externalIPs) || !safeList(sp.loadBalancerVIPs) || !safeList(sp.loadBalancerSourceRanges)) return undefined;
  const eps = endpointsColumn(sp);
  if (eps === undefined) return undefined;
  return [
    sp.key, sp.namespace, sp.name, sp.portName, sp.protocol, sp.type, sp.clusterIP, sp.port, sp.nodePort,
    sp.externalIPs.join(' '), sp.loadBalancerVIPs.join(' '), sp.loadBalancerSourceRanges.join(' '), sp.sessionAffinity,
    sp.stickyMaxAgeSeconds, sp.externalPolicyLocal ? '1' : '0', sp.internalPolicyLocal ? '1' : '0', sp.healthCheckNodePort,
    sp.trafficDistribution, eps,
  ].join('\t');
}

/** Encodes ServicePorts; one that cannot be written safely is refused, not mangled. */
export function encodeServicePorts(sps: readonly ServicePort[]): { text: string; rejected: WireRejected[] } {
  const lines = [HEADER];
  const rejected: WireRejected[] = [];
  for (const sp of sps) {
    const line = row(sp);
    // The key goes to logs and the status page: clipped, control characters as spaces.
    if (line === undefined) rejected.push({ key: sp.key.slice(0, 256).replace(/[\x00-\x1f\x7f]/g, ' '), reason: 'a field contains a tab, space or newline, or a name is not a DNS name' });
    else lines.push(line);
  }
  return { text: lines.join('\n'), rejected };
}

/** A decoded endpoint, as both codecs print it in the shared fixtures. */
export interface WireEndpoint {
  ip: string;
  port: number;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  isLocal: boolean;
  cluster: boolean;
  local: boolean;
}

export type WireRecord = Omit<ServicePort, 'family' | 'endpoints' | 'clusterEndpoints' | 'localEndpoints' | 'type' | 'protocol' | 'sessionAffinity'> & {
  type: string;
  protocol: string;
  sessionAffinity: string;
  endpoints: WireEndpoint[];
};

const isU32 = (v: string) => /^\d+$/.test(v) && Number(v) <= 0xffffffff;
const num = (v: string, what: string): number => {
  if (v === '') return 0;
  if (!isU32(v)) throw new Error(`bad ${what} ${JSON.stringify(v)}`);
  return Number(v);
};
const bool = (v: string, what: string): boolean => {
  if (v === '' || v === '0') return false;
  if (v === '1') return true;
  throw new Error(`bad ${what} ${JSON.stringify(v)}, want 0 or 1`);
};
const list = (v: string): string[] => v.split(' ').filter((s) => s !== '');

function decodeEndpoint(tok: string): WireEndpoint {
  const parts = tok.split(',');
  if (parts.length < 2) throw new Error(`malformed endpoint ${JSON.stringify(tok)}`);
  const [ip, port, ...rest] = parts;
  const flags = rest.join(',');
  const bad = [...flags].find((c) => !'RSTNCL'.includes(c));
  if (bad !== undefined) throw new Error(`malformed endpoint ${JSON.stringify(tok)}: unknown flag ${JSON.stringify(bad)}`);
  if (!isU32(port)) throw new Error(`bad endpoint port ${JSON.stringify(port)}`);
  return {
    ip, port: Number(port), ready: flags.includes('R'), serving: flags.includes('S'), terminating: flags.includes('T'),
    isLocal: flags.includes('N'), cluster: flags.includes('C'), local: flags.includes('L'),
  };
}

/** Decodes wire text the way the Rust side does (tests and debugging). */
export function decodeServicePorts(text: string): { records: WireRecord[]; rejected: WireRejected[] } {
  const lines = text.split('\n').filter((l) => l !== '');
  if (lines.length === 0) return { records: [], rejected: [] };
  const [magic, ...names] = lines[0].split('\t');
  const m = /^kproxy-wire (\d+)$/.exec(magic);
  if (!m) throw new Error(`not a kproxy wire header: ${JSON.stringify(magic.slice(0, 40))}`);
  if (Number(m[1]) !== WIRE_VERSION) throw new Error(`wire version ${m[1]} is not supported (this side reads ${WIRE_VERSION})`);
  for (const req of ['key', 'protocol', 'clusterIP', 'port', 'endpoints']) {
    if (!names.includes(req)) throw new Error(`wire header lacks the required column "${req}"`);
  }
  const dup = names.findIndex((n, i) => names.indexOf(n) !== i);
  if (dup >= 0) throw new Error(`wire header names column "${names[dup]}" twice (at ${dup})`);
  const col = new Map(names.map((n, i) => [n, i]));
  const records: WireRecord[] = [];
  const rejected: WireRejected[] = [];
  for (const line of lines.slice(1)) {
    const f = line.split('\t');
    const g = (n: string) => f[col.get(n) ?? -1] ?? '';
    try {
      if (f.length !== names.length) throw new Error(`malformed record: ${f.length} fields, the header has ${names.length}`);
      records.push({
        key: g('key'), namespace: g('namespace'), name: g('name'), portName: g('portName'), protocol: g('protocol'),
        type: g('type'), clusterIP: g('clusterIP'), port: num(g('port'), 'port'), nodePort: num(g('nodePort'), 'nodePort'),
        externalIPs: list(g('externalIPs')), loadBalancerVIPs: list(g('loadBalancerVIPs')),
        loadBalancerSourceRanges: list(g('loadBalancerSourceRanges')), sessionAffinity: g('sessionAffinity'),
        stickyMaxAgeSeconds: num(g('stickyMaxAgeSeconds'), 'stickyMaxAgeSeconds'),
        externalPolicyLocal: bool(g('externalPolicyLocal'), 'externalPolicyLocal'),
        internalPolicyLocal: bool(g('internalPolicyLocal'), 'internalPolicyLocal'),
        healthCheckNodePort: num(g('healthCheckNodePort'), 'healthCheckNodePort'), trafficDistribution: g('trafficDistribution'),
        endpoints: list(g('endpoints')).map(decodeEndpoint),
      });
    } catch (e) {
      rejected.push({ key: g('key').slice(0, 256), reason: (e as Error).message });
    }
  }
  return { records, rejected };
}
