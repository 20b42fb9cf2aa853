// The status page in a real browser (Debian's headless Chromium): an agent on a scripted
// source and nftables mode's in-memory backend, dual stack, after a few dozen syncs (one of
// them failed) and an invalid object. The DOM after load must list every Service port of the
// JSON document and hold both plots with a path per family through every sync; the screenshot
// (kept in tests/artifacts/) must show the plot lines in each family's colour.
import test from 'ava';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../ts/demo/topology.js';
import type { NftablesProxier } from '../../ts/modes/nftables/proxier.js';
import { startMetricsServer } from '../../ts/server/metrics-server.js';
import type { StatusDoc } from '../../ts/status/types.js';
import type { KubeObject } from '../../ts/sources/types.js';
import { browserMissing, browserRequired, chromium } from '../helpers/chromium.js';
import { countColour, decodePng } from '../helpers/png.js';
import { scriptedAgent } from '../helpers/scripted.js';

const ARTIFACTS = join(REPO_ROOT, 'tests', 'artifacts');
const CHANGES = 24;

const service = (name: string, n: number, spec: Record<string, unknown> = {}, status?: Record<string, unknown>): KubeObject => ({
  apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'shop', name, uid: `u-${name}` },
  spec: {
    clusterIP: `10.96.0.${n}`, clusterIPs: [`10.96.0.${n}`, `fd00:96::${n.toString(16)}`], ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'PreferDualStack',
    ports: [{ name: 'http', port: 80, protocol: 'TCP' }], ...spec,
  },
  ...(status ? { status } : {}),
});

const slice = (svc: string, family: 'IPv4' | 'IPv6', count: number, gen = 0, port = svc === 'edge' ? 'https' : 'http'): KubeObject => ({
  apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
  metadata: { namespace: 'shop', name: `${svc}-${family.toLowerCase()}`, labels: { 'kubernetes.io/service-name': svc } },
  addressType: family, ports: [{ name: port, port: 8080, protocol: 'TCP' }],
  endpoints: Array.from({ length: count }, (_, i) => ({
    addresses: [family === 'IPv4' ? `10.244.${i % 3}.${10 + i + gen}` : `fd00:244::${(16 + i + gen).toString(16)}`],
    nodeName: i % 3 === 0 ? 'node-a' : 'node-b',
    conditions: { ready: i !== 1, serving: true, terminating: i === 1 },
  })),
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('the status page renders in headless Chromium: the Services table and both plots', async (t) => {
  const missing = browserMissing();
  if (missing) {
    if (browserRequired()) return t.fail(`KPROXY_TEST_BROWSER is set but ${missing}`);
    t.log(`skipped: ${missing}; set KPROXY_TEST_BROWSER=1 to make this a failure`);
    return t.pass();
  }
  t.timeout(180_000);
  const s = await scriptedAgent();
  await s.start(() => {
    s.source.emit('Service', 'ADDED', service('web', 10));
    s.source.emit('Service', 'ADDED', service('api', 11, { type: 'NodePort', externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }] }));
    s.source.emit('Service', 'ADDED', service('cart', 12, { sessionAffinity: 'ClientIP', internalTrafficPolicy: 'Local' }));
    s.source.emit('Service', 'ADDED', service('edge', 13, { type: 'LoadBalancer', loadBalancerSourceRanges: ['203.0.113.0/24'], ports: [{ name: 'https', port: 443, protocol: 'TCP', nodePort: 30443 }] },
      { loadBalancer: { ingress: [{ ip: '198.51.100.13' }] } }));
    s.source.emit('Service', 'ADDED', service('dns', 14, { ports: [{ name: 'dns', port: 53, protocol: 'UDP' }, { name: 'dns-tcp', port: 53, protocol: 'TCP' }] }));
    s.source.emit('Service', 'ADDED', service('idle', 15));
    s.source.emit('Service', 'ADDED', { ...service('bad', 16), spec: { clusterIP: 'not-an-ip', ports: [{ port: 80 }] } });
    for (const name of ['web', 'api', 'cart', 'edge']) for (const f of ['IPv4', 'IPv6'] as const) s.source.emit('EndpointSlice', 'ADDED', slice(name, f, 3));
  });
  t.teardown(() => s.agent.stop());
  // Endpoint churn, spread over time so the plots have a time axis; one sync fails.
  for (let i = 1; i <= CHANGES; i++) {
    if (i === CHANGES / 2) (s.proxiers.get('IPv6')!.inner as NftablesProxier).fakeFailNext(1);
    await s.synced(() => s.source.emit('EndpointSlice', 'MODIFIED', slice(i % 2 ? 'web' : 'api', i % 3 ? 'IPv4' : 'IPv6', 2 + (i % 4), i)));
    await sleep(15);
  }
  await s.synced(() => s.agent.forceFullSync());

  const server = await startMetricsServer({ address: '127.0.0.1:0', mode: 'nftables', registry: s.agent.registry, configz: () => ({}), status: () => s.agent.statusDoc() });
  t.teardown(() => server.close());
  const url = `http://127.0.0.1:${server.port}/`;
  const doc = (await (await fetch(`${url}kproxy/status.json`)).json()) as StatusDoc;
  t.true(doc.services.length >= 12, `${doc.services.length} Service ports`);
  t.true(doc.errors.total >= 1 && doc.invalid.total >= 1);

  const dom = await chromium(url, ['--dump-dom', '--virtual-time-budget=2000']);
  // The table: every Service port of the document, once, in its order.
  const listed = [...dom.matchAll(/<tr class="svc" data-service="([^"]+)" data-family="(IPv[46])"/g)].map((m) => `${m[1]} ${m[2]}`);
  t.deepEqual(listed, doc.services.map((x) => `${x.service} ${x.family}`));
  t.regex(dom, /no endpoints \(reject\)/);
  t.regex(dom, /LoadBalancer<\/span><code>198\.51\.100\.13<\/code>/);
  // The plots: two SVGs; sync duration has a path per family through each of its syncs.
  t.is((dom.match(/<svg class="plot"/g) ?? []).length, 2);
  const paths = [...dom.matchAll(/<path class="series" data-series="([^"]+)" data-points="(\d+)" d="([^"]+)"/g)];
  const byName = new Map(paths.map((m) => [m[1], { n: Number(m[2]), d: m[3] }]));
  for (const f of ['IPv4', 'IPv6'] as const) {
    const syncs = doc.syncs.filter((r) => r.family === f).length;
    const p = byName.get(f);
    if (!p) return t.fail(`no ${f} duration path in ${[...byName.keys()].join(', ')}`);
    t.is(p.n, syncs);
    t.is(p.d.split(/[ML]/).filter(Boolean).length, syncs, `${f}: one point per sync`);
    t.true(syncs > CHANGES / 2, `${f}: ${syncs} syncs`);
    const lat = byName.get(`${f} event→rules`);
    t.truthy(lat, `${f} latency path`);
    t.true(lat!.n >= 2, `${f}: latency points`);
  }
  t.regex(dom, /<path class="failed"/, 'the failed sync is marked');
  t.regex(dom, /injected failure/, 'its error is listed');

  mkdirSync(ARTIFACTS, { recursive: true });
  const shot = join(ARTIFACTS, 'status-page.png');
  await chromium(url, [`--screenshot=${shot}`, '--window-size=1280,1000', '--hide-scrollbars', '--virtual-time-budget=2000']);
  if (process.env.KPROXY_TEST_FULL_PAGE) await chromium(url, [`--screenshot=${join(ARTIFACTS, 'status-page-full.png')}`, '--window-size=1280,2600', '--hide-scrollbars']);
  const img = decodePng(readFileSync(shot));
  t.deepEqual([img.width, img.height], [1280, 1000]);
  // Each family's colour: the legend squares are 2 × 100 pixels, the lines and dots far more.
  const blue = countColour(img, '#2563eb');
  const orange = countColour(img, '#d97706');
  t.log(`screenshot ${shot}: ${blue} IPv4-blue and ${orange} IPv6-orange pixels`);
  t.true(orange > 400, `IPv6 plot lines drawn (${orange} pixels)`);
  t.true(blue > 400, `IPv4 plot lines drawn (${blue} pixels)`);
});
