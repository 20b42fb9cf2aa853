import test from 'ava';
import { UnsupportedReporter, unsupportedFeatures } from '../../ts/tracker/unsupported.js';

const svc = (spec: Record<string, unknown>) => ({ metadata: { namespace: 'ns', name: 's' }, spec: { clusterIP: '10.96.0.1', ...spec } });

const cases: [string, Record<string, unknown>, RegExp[]][] = [
  ['plain ClusterIP', {}, []],
  ['NodePort', { type: 'NodePort' }, [/NodePort/]],
  ['affinity and external IPs', { sessionAffinity: 'ClientIP', externalIPs: ['1.2.3.4'] }, [/externalIPs/, /sessionAffinity/]],
  ['internal Local policy', { internalTrafficPolicy: 'Local' }, [/internalTrafficPolicy/]],
];

for (const [what, spec, want] of cases) {
  test(`unsupported features: ${what}`, (t) => {
    const got = unsupportedFeatures(svc(spec));
    t.is(got.length, want.length);
    for (const re of want) t.true(got.some((g) => re.test(g)), `${re}`);
  });
}

test('each Service/feature pair is reported once', (t) => {
  const seen: string[] = [];
  const r = new UnsupportedReporter((ref, f) => seen.push(`${ref} ${f}`));
  r.check(svc({ type: 'LoadBalancer' }));
  r.check(svc({ type: 'LoadBalancer' }));
  r.check(svc({ type: 'LoadBalancer', sessionAffinity: 'ClientIP' }));
  t.is(seen.length, 2);
});
