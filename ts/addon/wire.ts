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

const UNSAFE = /[\t\n\r ]/;

export interface WireRejected {
  key: string;
  reason: string;
}

const ipPort = (e: Endpoint) => `${e.ip},${e.port}`;

function endpointToken(e: Endpoint, cluster: Set<string>, local: Set<string>): string {
  const id = ipPort(e);
  let flags = '';
  if (e.ready) flags += 'R';
  if (e.serving) flags += 'S';
  if (e.terminating) flags += 'T';
  if (e.isLocal) flags += 'N';
  if (cluster.has(id)) flags += 'C';
  if (local.has(id)) flags += 'L';
  return `${id},${flags}`;
}

/** `endpoints`, plus any selected endpoint missing from it (the selection is what gets programmed). */
function allEndpoints(sp: ServicePort): Endpoint[] {
  const seen = new Set(sp.endpoints.map(ipPort));
  const extra = [...sp.clusterEndpoints, ...sp.localEndpoints].filter((e) => !seen.has(ipPort(e)) && seen.add(ipPort(e)));
  return extra.length ? [...sp.endpoints, ...extra] : sp.endpoints;
}

function row(sp: ServicePort): string[] {
  const cluster = new Set(sp.clusterEndpoints.map(ipPort));
  const local = new Set(sp.localEndpoints.map(ipPort));
  let eps = '';
  for (const e of allEndpoints(sp)) eps += (eps ? ' ' : '') + endpointToken(e, cluster, local);
  return [
    sp.key, sp.namespace, sp.name, sp.portName, sp.protocol, sp.type, sp.clusterIP, String(sp.port), String(sp.nodePort),
    sp.externalIPs.join(' '), sp.loadBalancerVIPs.join(' '), sp.loadBalancerSourceRanges.join(' '), sp.sessionAffinity,
    String(sp.stickyMaxAgeSeconds), sp.externalPolicyLocal ? '1' : '0', sp.internalPolicyLocal ? '1' : '0',
    String(sp.healthCheckNodePort), sp.trafficDistribution, eps,
  ];
}

function unsafeValue(sp: ServicePort): boolean {
  const scalars = [sp.key, sp.namespace, sp.name, sp.portName, sp.protocol, sp.type, sp.clusterIP, sp.sessionAffinity, sp.trafficDistribution];
  if (scalars.some((v) => UNSAFE.test(v))) return true;
  const lists = [sp.externalIPs, sp.loadBalancerVIPs, sp.loadBalancerSourceRanges];
  if (lists.some((l) => l.some((v) => v === '' || UNSAFE.test(v)))) return true;
  return allEndpoints(sp).some((e) => UNSAFE.test(e.ip) || e.ip.includes(','));
}

/** Encodes ServicePorts; one that cannot be written safely is refused, not mangled. */
export function encodeServicePorts(sps: readonly ServicePort[]): { text: string; rejected: WireRejected[] } {
  const lines = [HEADER];
  const rejected: WireRejected[] = [];
  for (const sp of sps) {
    if (unsafeValue(sp)) {
      rejected.push({ key: sp.key.replace(/[\t\n\r]/g, ' '), reason: 'a field contains a tab, space or newline' });
      continue;
    }
    lines.push(row(sp).join('\t'));
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
  const m = /^kproxy-wire (\d+)$/.exec(magic.trim());
  if (!m) throw new Error(`not a kproxy wire header: ${JSON.stringify(magic.slice(0, 40))}`);
  if (Number(m[1]) !== WIRE_VERSION) throw new Error(`wire version ${m[1]} is not supported (this side reads ${WIRE_VERSION})`);
  for (const req of ['key', 'protocol', 'clusterIP', 'port']) {
    if (!names.includes(req)) throw new Error(`wire header lacks the required column "${req}"`);
  }
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
