import test from 'ava';
import type { Feature } from '../../ts/proxier/types.js';
import { UnsupportedReporter, unsupportedFeatures, usedFeatures } from '../../ts/tracker/unsupported.js';

const svc = (spec: Record<string, unknown>, metadata: Record<string, unknown> = {}) => ({
  metadata: { namespace: 'ns', name: 's', ...metadata },
  spec: { clusterIP: '10.96.0.1', ...spec },
});

/** What the nftables slice supported before the other features arrived. */
const CLUSTER_IP_ONLY: ReadonlySet<Feature> = new Set<Feature>(['ClusterIP', 'TerminatingFallback']);
const EVERYTHING: ReadonlySet<Feature> = new Set<Feature>([
  'ClusterIP', 'NodePort', 'LoadBalancer', 'LoadBalancerSourceRanges', 'ExternalIPs', 'SessionAffinity',
  'ExternalTrafficPolicyLocal', 'InternalTrafficPolicyLocal', 'TopologyHints', 'TerminatingFallback', 'SCTP', 'SourceIPPreservation',
]);

// [name, spec, metadata, unsupported by a ClusterIP-only mode]
const cases: Array<[string, Record<string, unknown>, Record<string, unknown>, Feature[]]> = [
  ['plain ClusterIP', {}, {}, []],
  ['NodePort', { type: 'NodePort' }, {}, ['NodePort']],
  ['LoadBalancer with NodePorts', { type: 'LoadBalancer', ports: [{ port: 80, nodePort: 30080 }] }, {}, ['NodePort', 'LoadBalancer']],
  ['LoadBalancer without NodePorts', { type: 'LoadBalancer', allocateLoadBalancerNodePorts: false, ports: [{ port: 80 }] }, {}, ['LoadBalancer']],
  ['LoadBalancer with source ranges', { type: 'LoadBalancer', allocateLoadBalancerNodePorts: false, loadBalancerSourceRanges: ['10.0.0.0/8'] }, {}, ['LoadBalancer', 'LoadBalancerSourceRanges']],
  ['affinity and external IPs', { sessionAffinity: 'ClientIP', externalIPs: ['1.2.3.4'] }, {}, ['ExternalIPs', 'SessionAffinity']],
  ['internal Local policy', { internalTrafficPolicy: 'Local' }, {}, ['InternalTrafficPolicyLocal']],
  ['external Local policy on a NodePort', { type: 'NodePort', externalTrafficPolicy: 'Local' }, {}, ['NodePort', 'ExternalTrafficPolicyLocal', 'SourceIPPreservation']],
  ['an SCTP port', { ports: [{ port: 80, protocol: 'TCP' }, { port: 9, protocol: 'SCTP' }] }, {}, ['SCTP']],
  ['external Local policy on a plain ClusterIP means nothing', { externalTrafficPolicy: 'Local' }, {}, []],
  ['trafficDistribution', { trafficDistribution: 'PreferClose' }, {}, ['TopologyHints']],
  ['topology-mode annotation', {}, { annotations: { 'service.kubernetes.io/topology-mode': 'Auto' } }, ['TopologyHints']],
  ['topology-mode Disabled', {}, { annotations: { 'service.kubernetes.io/topology-mode': 'Disabled' } }, []],
  ['headless Services are not proxied', { clusterIP: 'None', type: 'NodePort' }, {}, []],
  ['ExternalName Services are not proxied', { type: 'ExternalName', externalIPs: ['1.2.3.4'] }, {}, []],
];

for (const [what, spec, metadata, want] of cases) {
  test(`unsupported features: ${what}`, (t) => {
    t.deepEqual(unsupportedFeatures(svc(spec, metadata), CLUSTER_IP_ONLY), want);
    t.deepEqual(unsupportedFeatures(svc(spec, metadata), EVERYTHING), [], 'a mode supporting everything reports nothing');
  });
}

test('used features always include ClusterIP for a proxied Service; never TerminatingFallback', (t) => {
  t.deepEqual(usedFeatures(svc({ sessionAffinity: 'ClientIP' })), ['ClusterIP', 'SessionAffinity']);
  t.deepEqual(unsupportedFeatures(svc({}), new Set()), ['ClusterIP']);
  t.deepEqual(usedFeatures(null as any), []);
});

test('each Service/feature pair is reported once, for the given mode only', (t) => {
  const seen: string[] = [];
  const r = new UnsupportedReporter(new Set<Feature>(['ClusterIP', 'NodePort']), (ref, f) => seen.push(`${ref} ${f}`));
  r.check(svc({ type: 'LoadBalancer', ports: [{ port: 80, nodePort: 30080 }] }));
  r.check(svc({ type: 'LoadBalancer', ports: [{ port: 80, nodePort: 30080 }] }));
  r.check(svc({ type: 'LoadBalancer', sessionAffinity: 'ClientIP' }));
  t.deepEqual(seen, ['ns/s LoadBalancer', 'ns/s SessionAffinity']);
});

test('a name or namespace that is not a string is never stringified (a deeply nested array overflowed the stack)', (t) => {
  let deep: unknown = [];
  for (let i = 0; i < 10_000; i++) deep = [deep];
  const seen: string[] = [];
  const r = new UnsupportedReporter(new Set<Feature>(), (ref, f) => seen.push(`${ref} ${f}`));
  const s = svc({});
  t.notThrows(() => r.check({ ...s, metadata: { namespace: deep, name: deep } }));
  t.deepEqual(seen, ['default/? ClusterIP']);
});
