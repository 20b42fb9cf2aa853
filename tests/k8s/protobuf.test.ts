// kproxy reads Services and EndpointSlices in protobuf, as upstream does. Here a real
// kube-apiserver v1.37.2 holds every object of the packet matrix and a few more (each field the
// schemas name, set and unset), and what kproxy's protobuf decoder makes of each list and watch
// must equal the server's own JSON for the same objects, field by field (schemas.ts).
import test from 'ava';
import { join } from 'node:path';
import { REPO_ROOT } from '../../ts/demo/topology.js';
import type { MessageSchema } from '../../ts/sources/protobuf/decode.js';
import { ENDPOINT_SLICE, SERVICE } from '../../ts/sources/protobuf/schemas.js';
import { usedFeatures } from '../../ts/tracker/unsupported.js';
import { parseEndpointSlice, parseService } from '../../ts/tracker/validate.js';
import { startControlPlane } from '../helpers/control-plane.js';
import { topologyFor } from '../netns/flows.js';
import { endpointSlice, node, service } from '../netns/manifests.js';
import { EXTRA } from '../netns/matrix.js';

/** The JSON object cut down to the fields a schema names: what the decoder must give. */
function project(v: any, schema: MessageSchema): any {
  const out: any = {};
  for (const f of Object.values(schema)) {
    // JSON writes an empty list as null (endpoints: null): protobuf writes nothing.
    if (!(f.name in v) || v[f.name] === null) continue;
    const x = v[f.name];
    if (f.kind === 'message') out[f.name] = f.repeated ? x.map((e: any) => project(e, f.message!)) : project(x, f.message!);
    else out[f.name] = x;
  }
  return out;
}

/** Fields the matrix leaves unset or set one way only. */
function more(): any[] {
  const port = { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' as const };
  const base = service('pb-lb', ['10.96.0.200'], [port]);
  const lb: any = {
    ...base,
    metadata: { ...base.metadata, annotations: { 'service.kubernetes.io/topology-mode': 'Auto' } },
    spec: {
      ...base.spec, type: 'LoadBalancer', externalTrafficPolicy: 'Local', internalTrafficPolicy: 'Local', trafficDistribution: 'PreferSameZone',
      sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 77 } }, loadBalancerSourceRanges: ['203.0.113.0/24'],
    },
  };
  lb.status = { loadBalancer: { ingress: [{ ip: '198.51.100.9', ipMode: 'Proxy' }, { ip: '198.51.100.10' }, { hostname: 'lb.example' }] } };
  const slice: any = endpointSlice('pb-lb', 'IPv4', ['10.244.1.2', '10.244.2.2', '10.244.3.2'], [port]);
  slice.endpoints[0] = { ...slice.endpoints[0], nodeName: 'n1', zone: 'zone-a', hints: { forZones: [{ name: 'zone-a' }], forNodes: [{ name: 'n1' }] } };
  slice.endpoints[1] = { ...slice.endpoints[1], conditions: { ready: false, serving: true, terminating: true } };
  slice.endpoints[2] = { addresses: ['10.244.3.2'], conditions: {} };
  slice.ports = [{ port: 8080, protocol: 'TCP' }, { name: 'dns', port: 8053, protocol: 'UDP' }];
  return [lb, slice];
}

test.serial('protobuf lists and watches from a real API server decode to its JSON, for every field kproxy reads', async (t) => {
  const topo = await topologyFor(t, { backends: 3, name: 'k8s-pb' });
  const cp = await startControlPlane(t, topo);
  const objects: any[] = [node(), ...Object.values(EXTRA).flat().filter((o: any) => o.kind !== 'ServiceCIDR'), ...more()];
  await cp.apply(...objects.map(({ status, ...o }) => o));
  for (const o of objects.filter((x) => x.status)) await cp.setStatus(o.kind.toLowerCase(), o.metadata.name, o.status, o.metadata.namespace);

  const r = await topo.exec(topo.node, ['node', '--import', 'tsx', join(REPO_ROOT, 'tests/k8s/protobuf/dump.ts'), cp.kubeconfig('kproxy')]);
  const got = JSON.parse(r.stdout);
  for (const [name, schema] of [['services', SERVICE], ['endpointslices', ENDPOINT_SLICE]] as const) {
    const json = got[`${name}/json/list`];
    t.true(json.length >= 10, `${name}: the matrix's objects are there (${json.length})`);
    t.deepEqual(got[`${name}/protobuf/list`], json.map((o: any) => project(o, schema)), `${name}: list`);
    const watched = (enc: string) => got[`${name}/${enc}/watch`].map((e: any) => ({ type: e.type, object: project(e.object, schema) }));
    t.deepEqual(watched('protobuf'), watched('json'), `${name}: watch events`);
    t.true(got[`${name}/protobuf/watch`].every((e: any) => e.object.kind && e.object.apiVersion), `${name}: watch objects carry kind and apiVersion`);
    // What the consumers conclude, field read or not: a field they read that the schema misses shows here.
    const verdicts = (objs: any[]) => objs.map((o) => (name === 'services' ? { ...parseService(o), features: usedFeatures(o) } : parseEndpointSlice(o)));
    t.deepEqual(verdicts(got[`${name}/protobuf/list`]), verdicts(json), `${name}: validation and features`);
  }
  // Some fields must really have gone through (a schema that reads nothing would pass the above).
  const lb = got['services/protobuf/list'].find((s: any) => s.metadata.name === 'pb-lb');
  t.is(lb.spec.sessionAffinityConfig.clientIP.timeoutSeconds, 77);
  t.deepEqual(lb.status.loadBalancer.ingress.map((i: any) => i.ipMode ?? i.hostname), ['Proxy', 'VIP', 'lb.example']);
  const slice = got['endpointslices/protobuf/list'].find((s: any) => s.metadata.name === 'pb-lb-ipv4');
  t.deepEqual(slice.endpoints[0].hints, { forZones: [{ name: 'zone-a' }], forNodes: [{ name: 'n1' }] });
  t.deepEqual(slice.endpoints[1].conditions, { ready: false, serving: true, terminating: true });
  // kproxy's role may not get single Services: the refusal is a protobuf Status.
  t.like(got.refused, { status: 403, encoding: 'protobuf', json: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Forbidden', code: 403 } });
  t.regex(got.refused.json.message, /^services "none" is forbidden: User "system:serviceaccount:kube-system:kproxy" cannot get/);
});
