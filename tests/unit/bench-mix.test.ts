// The benchmark's mixed cluster (ts/bench/mix.ts): its proportions and the shape of each
// feature's ServicePorts, and that a new connection's path through the desired ruleset does
// not depend on the number of Services. Structure only: nothing here looks at a clock.
import test from 'ava';
import pino from 'pino';
import { Registry } from 'prom-client';
import {
  chainRuleCounts, featureOf, indicesByFeature, mixedCluster, mixedServicePort, MIX_ADDRESSING, MIX_CLUSTER_CIDR, MIX_FEATURES,
  MIX_PROBES, pathCost, probeSample, upstreamShapedText,
} from '../../ts/bench/mix.js';
import { NftablesProxier } from '../../ts/modes/nftables/proxier.js';

test('10k Services: 20% NodePort, 5% each of source ranges, eTP Local, affinity and topology, the rest plain', (t) => {
  const counts = Object.fromEntries([...indicesByFeature(10000)].map(([f, l]) => [f, l.length]));
  t.deepEqual(counts, {
    ClusterIP: 6000, NodePort: 2000, LoadBalancerSourceRanges: 500, ExternalTrafficPolicyLocal: 500, SessionAffinity: 500, Topology: 500,
  });
});

test('the mix is deterministic and a smaller cluster is a prefix of a larger one', (t) => {
  t.deepEqual(mixedCluster(1000, 10), mixedCluster(10000, 10).slice(0, 1000));
});

test('each feature has the fields the issue asks for, and the others keep the defaults', (t) => {
  const specs = mixedCluster(10000, 10);
  for (const [i, sp] of specs.entries()) {
    const f = featureOf(i);
    t.is(sp.endpoints.length, 10);
    t.is(sp.type, f === 'NodePort' || (f === 'ExternalTrafficPolicyLocal' && sp.nodePort > 0) ? 'NodePort' : f === 'LoadBalancerSourceRanges' || f === 'ExternalTrafficPolicyLocal' ? 'LoadBalancer' : 'ClusterIP');
    t.is(sp.nodePort > 0, f === 'NodePort' || (f === 'ExternalTrafficPolicyLocal' && sp.loadBalancerVIPs.length === 0));
    t.is(sp.loadBalancerSourceRanges.length, f === 'LoadBalancerSourceRanges' ? 2 : 0);
    t.is(sp.loadBalancerVIPs.length, sp.type === 'LoadBalancer' ? 1 : 0);
    t.is(sp.externalPolicyLocal, f === 'ExternalTrafficPolicyLocal');
    t.is(sp.sessionAffinity, f === 'SessionAffinity' ? 'ClientIP' : 'None');
    t.is(sp.stickyMaxAgeSeconds, f === 'SessionAffinity' ? 10800 : 0);
    t.is(sp.endpoints.every((e) => e.zoneHints !== undefined), f === 'Topology');
    // Endpoint selection: topology narrows to this node's zone (e = 0, 3, 6, 9); eTP Local
    // gets the endpoints on this node (e = 0, 5); nothing else narrows anything.
    t.deepEqual(sp.clusterEndpoints.map((e) => sp.endpoints.indexOf(e)), f === 'Topology' ? [0, 3, 6, 9] : [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    t.deepEqual(sp.localEndpoints.map((e) => sp.endpoints.indexOf(e)), f === 'ExternalTrafficPolicyLocal' ? [0, 5] : []);
    if (f === 'ExternalTrafficPolicyLocal') t.true(sp.localEndpoints.every((e) => e.isLocal && e.nodeName === 'node-1'));
  }
  // Half the eTP Local Services are reached through an LB IP, half through a NodePort.
  const etp = specs.filter((_, i) => featureOf(i) === 'ExternalTrafficPolicyLocal');
  t.is(etp.filter((sp) => sp.loadBalancerVIPs.length > 0).length, 250);
});

test('NodePorts (health checks included) are unique and fit the default range at 10k; VIPs are unique', (t) => {
  const specs = mixedCluster(10000, 10);
  const ports = specs.flatMap((sp) => [sp.nodePort, sp.healthCheckNodePort].filter((p) => p > 0));
  t.is(new Set(ports).size, ports.length);
  t.true(ports.every((p) => p >= 30000 && p <= 32767));
  const vips = specs.flatMap((sp) => [sp.clusterIP, ...sp.loadBalancerVIPs]);
  t.is(new Set(vips).size, vips.length);
});

test('a one-endpoint change moves exactly one endpoint address', (t) => {
  const before = mixedServicePort(7, 10);
  const after = mixedServicePort(7, 10, [0, 0, 0, 1]);
  t.deepEqual(before.endpoints.map((e, k) => e.ip !== after.endpoints[k].ip), [false, false, false, true, false, false, false, false, false, false]);
});

test('upstream-shaped text: every feature brings its upstream chains', (t) => {
  const text = upstreamShapedText(mixedCluster(20, 10), MIX_CLUSTER_CIDR, ['192.168.0.2']);
  const chains = (prefix: string) => text.split('\n').filter((l) => new RegExp(`^add chain ip kube-proxy ${prefix}-\\w+-bench/`).test(l)).length;
  t.is(chains('service'), 20);
  t.is(chains('external'), 6); // 4 NodePort, 1 source ranges, 1 eTP Local
  t.is(chains('local'), 1);
  t.is(chains('firewall'), 1);
  t.is(text.split('\n').filter((l) => l.startsWith('add set ip kube-proxy affinity-')).length, 10);
  t.is(text.split('\n').filter((l) => l.startsWith('add element ip kube-proxy service-nodeports')).length, 5);
});

test('a new connection takes the same path at 100 and at 400 Services, for every feature', async (t) => {
  const traced = async (n: number) => {
    const p = new NftablesProxier({
      family: 'IPv4', localDetector: { mode: 'ClusterCIDR', cidr: MIX_CLUSTER_CIDR }, masqueradeAll: false, masqueradeBit: 14, fake: true,
      registry: new Registry(), logger: pino({ level: 'silent' }),
    });
    const specs = mixedCluster(n, 10);
    const r = await p.sync({ full: true, upserts: specs, deletes: [], node: MIX_ADDRESSING });
    t.deepEqual(r.rejected, []);
    const rules = chainRuleCounts(p.render());
    return MIX_PROBES.map((probe, k) => probeSample(probe, specs, 3, k + 1).map((sp) => pathCost(p, probe.packet(sp), rules)));
  };
  const [small, large] = [await traced(100), await traced(400)];
  t.is(small.length, MIX_PROBES.length);
  for (const [k, probe] of MIX_PROBES.entries()) {
    t.true(MIX_FEATURES.includes(probe.feature));
    const all = [...small[k], ...large[k]];
    t.true(all.every((c) => c.rulesFired > 0), probe.label);
    t.deepEqual(new Set(all.map((c) => JSON.stringify(c))).size, 1, probe.label);
  }
  // The blocked client is dropped by the firewall; every other probe reaches an endpoint.
  t.deepEqual(MIX_PROBES.map((p, k) => small[k][0].verdict.startsWith('DNAT') ? 'DNAT' : small[k][0].verdict),
    MIX_PROBES.map((p) => (p.label.includes('blocked') ? 'DROP' : 'DNAT')));
});
