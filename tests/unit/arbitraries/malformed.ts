// fast-check generators for the validation property test: valid Services, EndpointSlices and
// Nodes, and malformed variants of them. Every generated event says what the agent must do
// with it: 'valid' (never counted, and programmed as given), 'counted' (the invalid-objects
// counter must move) or 'any' (garbage where kproxy may ignore it; it must only not crash
// nor leak into the model).
import fc from 'fast-check';
import type { EventType, Kind, KubeObject } from '../../../ts/sources/types.js';

export type Expect = 'valid' | 'counted' | 'any';

export interface GenEvent {
  kind: Kind;
  type: EventType;
  obj: KubeObject;
  old?: KubeObject;
  expect: Expect;
  /** Which mutation made it ('valid' for none): the report's breakdown. */
  label: string;
}

/** A valid Service as generated, with what the model must hold for it. */
export interface ServiceCase {
  obj: KubeObject;
  ns: string;
  name: string;
  /** family -> clusterIP, canonical. */
  clusterIPs: Partial<Record<'IPv4' | 'IPv6', string>>;
  ports: Array<{ name: string; protocol: 'TCP' | 'UDP' | 'SCTP'; port: number }>;
}

export const NODE_NAME = 'node-a';
const PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;

/** Nested 10k deep, built by a loop (a recursive generator would blow the stack itself). */
function deepObject(levels: number, asArray: boolean): unknown {
  let v: unknown = { leaf: 1 };
  for (let i = 0; i < levels; i++) v = asArray ? [v] : { a: v };
  // fast-check prints counterexamples recursively: print this one by its shape instead.
  Object.defineProperty(v, fc.toStringMethod, { value: () => `<${asArray ? 'array' : 'object'} nested ${levels} deep>`, enumerable: false });
  return v;
}
const DEEP_OBJECT = deepObject(10_000, false);
const DEEP_ARRAY = deepObject(10_000, true);
// Shared, not regenerated: 1 MiB strings built per object would make the run slow, not harsher.
const HUGE = 'a'.repeat(1 << 20);
const HUGE_DOTS = '1.'.repeat(1 << 19);
const HUGE_COLONS = 'f:'.repeat(1 << 19);

/** Characters that must never reach a ruleset, a comment or a restore line. */
const NASTY_CHARS = ['\u0000', '\n', '\r', '\t', ' ', '"', "'", ';', '#', '$', '`', '|', '&', '>', '<', '\\', '/', '*', '{', '}',
  '\u007f', '\u00e9', '\u202e', '\u200b', '\ud83d\ude00', '\ufeff', 'A', '.', '_', ':', '%'];

/** A string that is not a valid DNS label (contains a bad character, or is too long). */
export const badNameArb: fc.Arbitrary<string> = fc.oneof(
  fc.tuple(fc.stringMatching(/^[a-z0-9]{0,8}$/), fc.constantFrom(...NASTY_CHARS), fc.stringMatching(/^[a-z0-9]{0,8}$/)).map(([a, c, b]) => `${a}${c}${b}`),
  fc.constantFrom('-a', 'a-', '-', HUGE, 'a'.repeat(64), 'x'.repeat(254), 'UPPER', 'a..b', '$(reboot)', 'a;rm -rf /', 'a\nCOMMIT'),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }).filter((s) => !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(s)),
);

/** JSON values of no use as a string: numbers (NaN and infinities too: YAML has them), booleans, arrays, objects. */
export const notStringArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.double(), fc.integer(), fc.boolean(), fc.constantFrom(NaN, Infinity, -Infinity, -0, 1e300),
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 4 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
  fc.constantFrom(DEEP_OBJECT, DEEP_ARRAY),
);
/** Anything but a plain object (null included). */
export const notObjectArb: fc.Arbitrary<unknown> = fc.oneof(fc.constant(null), fc.string({ maxLength: 5 }), fc.double(), fc.boolean(), fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }), fc.constant(DEEP_ARRAY));
/** Any value at all, for fields where kproxy may ignore what it finds. */
export const anyValueArb: fc.Arbitrary<unknown> = fc.oneof(fc.jsonValue({ maxDepth: 3 }), notStringArb, badNameArb, fc.constant(undefined));

/** Not an IP: near misses, zones, CIDRs, padding, wrong types, huge strings. */
export const badIPArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom('10.0.0.256', '1.2.3', '1.2.3.4.5', '10.0.0.1 ', ' 10.0.0.1', '10.0.0.1\n', '10.0.0.-1', '1.2.3.4/32', 'fe80::1%eth0', '::g', ':::1',
    '1:2:3:4:5:6:7:8:9', 'localhost', 'None', '0x0a000001', '10.0.0.1;reboot', '[::1]', '10.0.0.1:80', HUGE, HUGE_DOTS, HUGE_COLONS, '１.２.３.４'),
  fc.string({ maxLength: 12 }).filter((s) => !/^[0-9a-fA-F.:]+$/.test(s) && s !== '' && s !== 'None'),
  notStringArb,
);
export const badCIDRArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom('10.0.0.0/33', '10.0.0.0/-1', '10.0.0.0/', '/8', '10.0.0.0/8/8', '10.0.0.0/08', 'fd00::/129', '10.0.0.0/8;drop', '0.0.0.0/0 #', HUGE, '10.0.0.0/1e1'),
  badIPArb.filter((v) => v !== '1.2.3.4/32'),
);
/** Not a port number: out of range, fractional, NaN, strings, wrong types. */
export const badPortArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(-1, 65536, 1e9, 1.5, NaN, Infinity, -Infinity, '80', '0x50', true, [80], { port: 80 }, DEEP_OBJECT),
  fc.integer({ min: 65536 }), fc.integer({ max: -1 }), fc.double({ noInteger: true }),
);
/** Not a protocol kproxy knows (the API's are case-sensitive). */
export const badProtocolArb: fc.Arbitrary<unknown> = fc.oneof(fc.constantFrom('tcp', 'Udp', 'ICMP', 'TCP ', '', HUGE, 6), notStringArb);

// --- valid objects -----------------------------------------------------------------------

const labelArb = fc.stringMatching(/^[a-z]([-a-z0-9]{0,10}[a-z0-9])?$/);
const portNumberArb = fc.integer({ min: 1, max: 65535 });
const octet = fc.integer({ min: 0, max: 255 });
const ipv4Arb = fc.tuple(octet, octet).map(([a, b]) => `10.${a}.${b}.${(a ^ b) & 0xff || 1}`);
// Upper case and a zero group spelled out: the model must hold them canonical.
const ipv6Arb = fc.tuple(fc.integer({ min: 1, max: 0xffff }), fc.boolean()).map(([g, up]) => {
  const s = `fd00:0:0:0:0:0:${g.toString(16)}:1`;
  return up ? s.toUpperCase() : s;
});

/** A valid Service `ns/name` with unique port names and (port, protocol) pairs; the clusterIPs given canonical. */
export function serviceArb(ns: string, name: string, clusterIP4: string, clusterIP6: string): fc.Arbitrary<ServiceCase> {
  return fc
    .record({
      families: fc.constantFrom(['IPv4'], ['IPv6'], ['IPv4', 'IPv6'], ['IPv6', 'IPv4']) as fc.Arbitrary<Array<'IPv4' | 'IPv6'>>,
      type: fc.constantFrom('ClusterIP', 'NodePort', 'LoadBalancer', undefined),
      ports: fc.uniqueArray(fc.record({ name: labelArb, protocol: fc.constantFrom(...PROTOCOLS), port: portNumberArb }), {
        minLength: 1, maxLength: 3, selector: (p) => p.name,
      }).filter((ps) => new Set(ps.map((p) => `${p.protocol}/${p.port}`)).size === ps.length),
      affinity: fc.option(fc.integer({ min: 1, max: 86400 }), { nil: undefined }),
      policy: fc.constantFrom('Cluster', 'Local', undefined),
    })
    .map(({ families, type, ports, affinity, policy }) => {
      const ips = { IPv4: clusterIP4, IPv6: clusterIP6 };
      const clusterIPs = families.map((f) => ips[f]);
      const single = ports.length === 1 && ports[0].name.length % 2 === 0;
      const specPorts = ports.map((p, i) => ({
        // A lone port may be unnamed, as the API allows.
        ...(single ? {} : { name: p.name }),
        protocol: p.protocol,
        port: p.port,
        targetPort: p.port,
        ...(type === 'NodePort' || type === 'LoadBalancer' ? { nodePort: 30000 + ((p.port + i) % 2000) + i * 2000 } : {}),
      }));
      const spec: Record<string, unknown> = { clusterIP: clusterIPs[0], clusterIPs, ports: specPorts, ipFamilies: families };
      if (type) spec.type = type;
      if (affinity !== undefined) spec.sessionAffinity = 'ClientIP', spec.sessionAffinityConfig = { clientIP: { timeoutSeconds: affinity } };
      if (policy) spec.internalTrafficPolicy = policy;
      const obj: KubeObject = { apiVersion: 'v1', kind: 'Service', metadata: { namespace: ns, name, uid: `${ns}-${name}` }, spec };
      const canon: ServiceCase['clusterIPs'] = {};
      for (const f of families) canon[f] = ips[f];
      return { obj, ns, name, clusterIPs: canon, ports: ports.map((p) => ({ ...p, name: single ? '' : p.name })) };
    });
}

/** A valid EndpointSlice of `svc`, its ports named after the Service's. */
export function sliceArb(svc: ServiceCase, sliceName: string): fc.Arbitrary<KubeObject> {
  return fc
    .record({
      family: fc.constantFrom('IPv4', 'IPv6') as fc.Arbitrary<'IPv4' | 'IPv6'>,
      targetShift: fc.integer({ min: 0, max: 1000 }),
      endpoints: fc.array(
        fc.record({ ip4: ipv4Arb, ip6: ipv6Arb, ready: fc.option(fc.boolean(), { nil: undefined }), local: fc.boolean(), zone: fc.option(labelArb, { nil: undefined }) }),
        { maxLength: 4 },
      ),
    })
    .map(({ family, targetShift, endpoints }) => ({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { namespace: svc.ns, name: sliceName, labels: { 'kubernetes.io/service-name': svc.name } },
      addressType: family,
      ports: svc.ports.map((p) => ({ name: p.name, protocol: p.protocol, port: ((p.port + targetShift) % 65535) + 1 })),
      endpoints: endpoints.map((e) => ({
        addresses: [family === 'IPv4' ? e.ip4 : e.ip6],
        conditions: e.ready === undefined ? {} : { ready: e.ready },
        nodeName: e.local ? NODE_NAME : 'node-b',
        ...(e.zone ? { zone: e.zone } : {}),
      })),
    }));
}

/** Our Node, valid: addresses of both families and a zone label. */
export const nodeArb: fc.Arbitrary<KubeObject> = fc.record({ ip4: ipv4Arb, ip6: ipv6Arb, zone: labelArb }).map(({ ip4, ip6, zone }) => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name: NODE_NAME, labels: { 'topology.kubernetes.io/zone': zone, 'kubernetes.io/hostname': NODE_NAME } },
  status: { addresses: [{ type: 'InternalIP', address: ip4 }, { type: 'InternalIP', address: ip6 }, { type: 'Hostname', address: NODE_NAME }] },
}));

// --- mutations ---------------------------------------------------------------------------

/** A change to a valid object, and whether kproxy must count the result. */
export interface Mutation {
  label: string;
  expect: Expect;
  apply(obj: KubeObject): unknown;
}

const clone = (o: KubeObject): any => structuredClone(o);
/** Sets obj[path] (creating objects on the way) on a copy. */
function set(obj: KubeObject, path: (string | number)[], value: unknown): any {
  const c = clone(obj);
  let o = c;
  for (const k of path.slice(0, -1)) o = o[k] = typeof o[k] === 'object' && o[k] !== null ? o[k] : {};
  o[path.at(-1)!] = value;
  return c;
}
const m = (label: string, expect: Expect, arb: fc.Arbitrary<unknown>, apply: (o: KubeObject, v: any) => unknown): fc.Arbitrary<Mutation> =>
  arb.map((v) => ({ label, expect, apply: (o: KubeObject) => apply(o, v) }));

/** Whole-object and metadata mutations, shared by the namespaced kinds. */
function metadataMutations(nameOK: (s: string) => boolean): fc.Arbitrary<Mutation>[] {
  return [
    m('not-an-object', 'counted', notObjectArb, (_o, v) => v),
    m('metadata:not-object', 'counted', notObjectArb, (o, v) => ({ ...clone(o), metadata: v })),
    m('metadata:missing', 'counted', fc.constant(0), (o) => { const c = clone(o); delete c.metadata; return c; }),
    m('name:not-string', 'counted', notStringArb, (o, v) => set(o, ['metadata', 'name'], v)),
    m('name:bad', 'counted', badNameArb.filter((s) => !nameOK(s)), (o, v) => set(o, ['metadata', 'name'], v)),
    m('name:empty', 'counted', fc.constant(''), (o, v) => set(o, ['metadata', 'name'], v)),
    m('namespace:bad', 'counted', fc.oneof(badNameArb, notStringArb), (o, v) => set(o, ['metadata', 'namespace'], v)),
    m('annotations:garbage', 'any', anyValueArb, (o, v) => set(o, ['metadata', 'annotations'], v)),
    m('unknown-field:deep', 'any', fc.constantFrom(DEEP_OBJECT, DEEP_ARRAY), (o, v) => ({ ...clone(o), extra: v })),
  ];
}

const portIndex = (o: any) => 0 % Math.max(1, o.spec?.ports?.length ?? 1);

export const serviceMutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  ...metadataMutations((s) => /^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(s) && s.length <= 63),
  m('spec:not-object', 'counted', notObjectArb.filter((v) => v !== null), (o, v) => ({ ...clone(o), spec: v })),
  m('type:bad', 'counted', fc.oneof(badNameArb, notStringArb), (o, v) => set(o, ['spec', 'type'], v)),
  m('clusterIP:bad', 'counted', badIPArb.filter((v) => v !== 'None'), (o, v) => { const c = set(o, ['spec', 'clusterIP'], v); delete c.spec.clusterIPs; return c; }),
  m('clusterIPs:bad', 'counted', fc.oneof(badIPArb.map((v) => [v]), notStringArb.filter((v) => !Array.isArray(v) || v.length > 0), fc.constant([])), (o, v) => set(o, ['spec', 'clusterIPs'], v)),
  m('clusterIPs:same-family', 'counted', fc.constant(0), (o) => set(o, ['spec', 'clusterIPs'], [o.spec.clusterIP, o.spec.clusterIP])),
  m('ports:not-array', 'counted', notStringArb.filter((v) => !Array.isArray(v)), (o, v) => set(o, ['spec', 'ports'], v)),
  m('port:not-object', 'counted', notObjectArb, (o, v) => set(o, ['spec', 'ports', portIndex(o)], v)),
  m('port:bad-number', 'counted', badPortArb, (o, v) => set(o, ['spec', 'ports', portIndex(o), 'port'], v)),
  m('port:bad-protocol', 'counted', badProtocolArb, (o, v) => set(o, ['spec', 'ports', portIndex(o), 'protocol'], v)),
  m('port:bad-name', 'counted', fc.oneof(badNameArb, notStringArb), (o, v) => set(o, ['spec', 'ports', portIndex(o), 'name'], v)),
  m('port:duplicate-name', 'counted', fc.constant(0), (o: any) => {
    const c = clone(o);
    c.spec.ports = [...c.spec.ports, { ...c.spec.ports[0], port: (c.spec.ports[0].port % 65535) + 1 }];
    c.spec.ports[0].name ??= 'p', c.spec.ports.at(-1).name = c.spec.ports[0].name;
    return c;
  }),
  m('port:duplicate-number', 'counted', fc.constant(0), (o: any) => {
    const c = clone(o);
    c.spec.ports = [...c.spec.ports, { ...c.spec.ports[0], name: 'zz-dup', nodePort: undefined }];
    c.spec.ports[0].name ??= 'p';
    return c;
  }),
  m('port:bad-nodePort', 'counted', badPortArb, (o, v) => set(o, ['spec', 'ports', portIndex(o), 'nodePort'], v)),
  m('externalIPs:bad', 'counted', fc.oneof(badIPArb.map((v) => [v]), notStringArb.filter((v) => !Array.isArray(v))), (o, v) => set(o, ['spec', 'externalIPs'], v)),
  m('sourceRanges:bad', 'counted', fc.oneof(badCIDRArb.map((v) => [v]), notStringArb.filter((v) => !Array.isArray(v))), (o, v) => set(o, ['spec', 'loadBalancerSourceRanges'], v)),
  m('status:not-object', 'counted', notObjectArb.filter((v) => v !== null), (o, v) => ({ ...clone(o), status: v })),
  m('status.loadBalancer:not-object', 'counted', notObjectArb.filter((v) => v !== null), (o, v) => set(o, ['status', 'loadBalancer'], v)),
  m('ingress:bad', 'counted', fc.oneof(notObjectArb.filter((v) => v !== null).map((v) => [v]), badIPArb.filter((v) => v !== '').map((ip) => [{ ip }]), notStringArb.filter((v) => !Array.isArray(v))),
    (o, v) => set(o, ['status', 'loadBalancer', 'ingress'], v)),
  m('sessionAffinity:bad', 'counted', fc.oneof(badNameArb, notStringArb), (o, v) => set(o, ['spec', 'sessionAffinity'], v)),
  m('affinityTimeout:bad', 'counted', badPortArb.filter((v) => !(Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 86400)), (o, v) => set(set(o, ['spec', 'sessionAffinity'], 'ClientIP'), ['spec', 'sessionAffinityConfig', 'clientIP', 'timeoutSeconds'], v)),
  m('affinityConfig:not-object', 'counted', notObjectArb.filter((v) => v !== null), (o, v) => set(set(o, ['spec', 'sessionAffinity'], 'ClientIP'), ['spec', 'sessionAffinityConfig'], v)),
  m('trafficPolicy:bad', 'counted', fc.tuple(fc.constantFrom('externalTrafficPolicy', 'internalTrafficPolicy'), fc.oneof(badNameArb, notStringArb)),
    (o, [f, v]) => set(set(o, ['spec', 'type'], 'NodePort'), ['spec', f], v)),
  m('healthCheckNodePort:bad', 'counted', badPortArb, (o, v) => {
    const c = set(o, ['spec', 'type'], 'LoadBalancer');
    c.spec.externalTrafficPolicy = 'Local';
    c.spec.healthCheckNodePort = v;
    return c;
  }),
  m('trafficDistribution:bad', 'counted', fc.oneof(badNameArb.filter((s) => !/^[A-Za-z]*$/.test(s)), notStringArb), (o, v) => set(o, ['spec', 'trafficDistribution'], v)),
  m('selector:garbage', 'any', anyValueArb, (o, v) => set(o, ['spec', 'selector'], v)),
  m('labels:garbage', 'any', fc.oneof(notObjectArb, fc.dictionary(badNameArb, anyValueArb, { maxKeys: 3 })), (o, v) => set(o, ['metadata', 'labels'], v)),
  m('field:any', 'any', fc.tuple(fc.constantFrom('type', 'clusterIP', 'clusterIPs', 'ports', 'externalIPs', 'sessionAffinity', 'ipFamilies', 'ipFamilyPolicy', 'loadBalancerClass'), anyValueArb),
    (o, [f, v]) => set(o, ['spec', f], v)),
);

export const sliceMutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  ...metadataMutations((s) => /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(s) && s.length <= 253),
  m('service-name:bad', 'counted', fc.oneof(badNameArb, notStringArb, fc.constant(undefined)), (o, v) => set(o, ['metadata', 'labels', 'kubernetes.io/service-name'], v)),
  m('labels:not-object', 'counted', notObjectArb, (o, v) => set(o, ['metadata', 'labels'], v)),
  m('addressType:bad', 'counted', fc.oneof(fc.constantFrom('ipv4', 'IPV6', 'IPv5', '', HUGE), notStringArb, fc.constant(null)), (o, v) => ({ ...clone(o), addressType: v })),
  m('endpoints:not-array', 'counted', notStringArb.filter((v) => !Array.isArray(v)), (o, v) => ({ ...clone(o), endpoints: v })),
  m('ports:not-array', 'counted', notStringArb.filter((v) => !Array.isArray(v)), (o, v) => ({ ...clone(o), ports: v })),
  m('port:not-object', 'counted', notObjectArb.filter((v) => v !== null), (o, v) => set(o, ['ports', 0], v)),
  m('port:bad-number', 'counted', badPortArb, (o, v) => set(o, ['ports', 0, 'port'], v)),
  m('port:bad-protocol', 'counted', badProtocolArb, (o, v) => set(o, ['ports', 0, 'protocol'], v)),
  m('port:bad-name', 'counted', fc.oneof(badNameArb, notStringArb, fc.constant(null)), (o, v) => set(o, ['ports', 0, 'name'], v)),
  m('endpoint:not-object', 'counted', notObjectArb, (o, v) => ({ ...clone(o), endpoints: [v] })),
  m('endpoint:bad-addresses', 'counted', fc.oneof(fc.constant([]), notStringArb.filter((v) => !Array.isArray(v)), badIPArb.map((v) => [v])), (o, v) => ({ ...clone(o), endpoints: [{ addresses: v }] })),
  m('endpoint:wrong-family', 'counted', fc.constant(0), (o: any) => ({ ...clone(o), endpoints: [{ addresses: [o.addressType === 'IPv4' ? 'fd00::1' : '10.1.2.3'] }] })),
  m('endpoint:bad-field', 'counted', fc.tuple(fc.constantFrom('nodeName', 'zone', 'hints'), notStringArb.filter((v) => typeof v !== 'object' || v === null || Array.isArray(v))),
    (o: any, [f, v]) => ({ ...clone(o), endpoints: [{ addresses: [o.addressType === 'IPv4' ? '10.9.9.9' : 'fd00::99'], [f]: v }] })),
  m('endpoint:bad-hints', 'counted', fc.tuple(fc.constantFrom('forZones', 'forNodes'), fc.oneof(notStringArb.filter((v) => !Array.isArray(v)), fc.constant([{ name: '' }]), fc.constant([5]))),
    (o: any, [f, v]) => ({ ...clone(o), endpoints: [{ addresses: [o.addressType === 'IPv4' ? '10.9.9.8' : 'fd00::98'], hints: { [f]: v } }] })),
  m('endpoint:bad-conditions', 'counted', fc.oneof(notObjectArb.filter((v) => v !== null), fc.record({ ready: notStringArb.filter((v) => typeof v !== 'boolean') })),
    (o: any, v) => ({ ...clone(o), endpoints: [{ addresses: [o.addressType === 'IPv4' ? '10.9.9.7' : 'fd00::97'], conditions: v }] })),
  m('endpoint:any', 'any', fc.tuple(fc.constantFrom('addresses', 'conditions', 'nodeName', 'zone', 'hints', 'targetRef'), anyValueArb),
    (o: any, [f, v]) => set(o, ['endpoints', 0, f], v)),
);

export const nodeMutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  m('not-an-object', 'counted', notObjectArb, (_o, v) => v),
  m('metadata:not-object', 'counted', notObjectArb, (o, v) => ({ ...clone(o), metadata: v })),
  m('name:not-string', 'counted', fc.oneof(notStringArb, fc.constant('')), (o, v) => set(o, ['metadata', 'name'], v)),
  m('labels:not-object', 'counted', notObjectArb.filter((v) => v !== null), (o, v) => set(o, ['metadata', 'labels'], v)),
  m('label:not-string', 'counted', notStringArb, (o, v) => set(o, ['metadata', 'labels', 'topology.kubernetes.io/zone'], v)),
  m('addresses:garbage', 'any', fc.oneof(anyValueArb, fc.array(fc.record({ type: fc.constantFrom('InternalIP', 'ExternalIP', 5), address: badIPArb }), { maxLength: 3 })),
    (o, v) => set(o, ['status', 'addresses'], v)),
  m('taints:garbage', 'any', anyValueArb, (o, v) => set(o, ['spec', 'taints'], v)),
  m('unknown-field:deep', 'any', fc.constantFrom(DEEP_OBJECT, DEEP_ARRAY), (o, v) => ({ ...clone(o), status: { ...clone(o).status, deep: v } })),
);
