// The agent's status document over its metrics server, and `kproxy status` reading it: an
// agent on a scripted source with nftables mode's in-memory backend, so no root is needed.
import test from 'ava';
import { createServer } from 'node:net';
import type { NftablesProxier } from '../../ts/modes/nftables/proxier.js';
import { startMetricsServer, type RunningServer } from '../../ts/server/metrics-server.js';
import { agentURL, parseStatusArgs, statusCommand } from '../../ts/status/command.js';
import type { StatusDoc } from '../../ts/status/types.js';
import type { KubeObject } from '../../ts/sources/types.js';
import { scriptedAgent, type ScriptedAgent } from '../helpers/scripted.js';

const svc = (name: string, ip: string, spec: Record<string, unknown> = {}): KubeObject => ({
  apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'demo', name, uid: `u-${name}` },
  spec: { clusterIP: ip, clusterIPs: [ip], ports: [{ name: 'http', port: 80, protocol: 'TCP' }], ...spec },
});

const slice = (name: string, ips: string[]): KubeObject => ({
  apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
  metadata: { namespace: 'demo', name: `${name}-1`, labels: { 'kubernetes.io/service-name': name } },
  addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: ips.map((ip, i) => ({ addresses: [ip], nodeName: i === 0 ? 'node-a' : 'node-b', conditions: { ready: true } })),
});

async function running(t: { teardown(f: () => unknown): void }): Promise<{ s: ScriptedAgent; server: RunningServer; addr: string }> {
  const s = await scriptedAgent([], { families: ['IPv4'] });
  await s.start(() => {
    s.source.emit('Service', 'ADDED', svc('web', '10.96.0.10'));
    s.source.emit('EndpointSlice', 'ADDED', slice('web', ['10.244.1.2', '10.244.2.2', '10.244.2.3']));
    s.source.emit('Service', 'ADDED', svc('lonely', '10.96.0.11'));
    // Invalid: a port out of range is skipped and counted.
    s.source.emit('Service', 'ADDED', svc('broken', '10.96.0.12', { ports: [{ name: 'x', port: 70000, protocol: 'TCP' }] }));
  });
  const server = await startMetricsServer({ address: '127.0.0.1:0', mode: 'nftables', registry: s.agent.registry, configz: () => ({}), status: () => s.agent.statusDoc() });
  t.teardown(async () => {
    await server.close();
    await s.agent.stop();
  });
  return { s, server, addr: `127.0.0.1:${server.port}` };
}

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await statusCommand(argv, { out: (x) => (out += x), err: (x) => (err += x) });
  return { code, out, err };
}

/** A port nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

test('kproxy status prints the agent\'s Services, endpoints and programming', async (t) => {
  const { addr } = await running(t);
  const { code, out, err } = await run(['--metrics-address', addr]);
  t.is(err, '');
  t.is(code, 0);
  t.regex(out, new RegExp(`^kproxy nftables on node node-a \\(IPv4\\), up \\d+s, at http://${addr.replace(/\./g, '\\.')}$`, 'm'));
  t.regex(out, /^last sync: IPv4 \d+s ago \(full, [\d.]+ (ms|s)\)$/m);
  t.regex(out, /^errors: 0 · invalid objects: 1 \(Service [a-z-]+ 1\)/m);
  t.regex(out, /^demo\/lonely:http +ClusterIP 10\.96\.0\.11 +80\/TCP +0\/0\/0 +int:Cluster +no endpoints \(reject\) +\d+s ago$/m);
  t.regex(out, /^demo\/web:http +ClusterIP 10\.96\.0\.10 +80\/TCP +3\/0\/1 +int:Cluster +programmed +\d+s ago$/m);
  t.notRegex(out, /broken/);
});

test('kproxy status -o json is the agent\'s document; a change shows after its sync, with its latency', async (t) => {
  const { s, addr } = await running(t);
  await s.synced(() => s.source.emit('EndpointSlice', 'MODIFIED', slice('web', ['10.244.1.2'])));
  const { code, out } = await run(['-o', 'json', `--metrics-address=${addr}`]);
  t.is(code, 0);
  const doc = JSON.parse(out) as StatusDoc;
  t.is(doc.kind, 'KproxyStatus');
  t.is(doc.mode, 'nftables');
  t.true(doc.initialSyncDone);
  t.deepEqual(doc.services.map((x) => [x.service, x.endpoints.ready, x.programmed.state]), [['demo/lonely:http', 0, 'no-endpoints'], ['demo/web:http', 1, 'programmed']]);
  t.deepEqual(doc.syncs.map((x) => [x.full, x.ok, x.upserts]), [[true, true, 2], [false, true, 1]]);
  t.true(doc.syncs[1].eventLatencyMs! >= 0);
  t.deepEqual(doc.invalid.byReason.map((r) => r.kind), ['Service']);
  t.regex(doc.invalid.recent[0].ref, /demo\/broken/);
});

test('a failed sync shows in the status: the error, and the change as failed, until the retry', async (t) => {
  const { s, addr } = await running(t);
  const inner = s.proxiers.get('IPv4')!.inner as NftablesProxier;
  inner.fakeFailNext(1);
  await s.synced(() => s.source.emit('Service', 'ADDED', svc('new', '10.96.0.13')));
  const { out } = await run(['--metrics-address', addr]);
  t.regex(out, /^demo\/new:http +ClusterIP 10\.96\.0\.13 .* failed +never$/m);
  t.regex(out, /^errors: 1 /m);
  t.regex(out, /^Recent errors \(1 in all\):\n {2}\d+s ago {2}sync IPv4: .+$/m);
  t.regex(out, /^last sync: IPv4 \d+s ago \(partial, [\d.]+ ms, FAILED: kernel rejected .*\) \(last success \d+s ago\)$/m);
  // The retry (a full sync) programs it.
  await s.synced(() => s.agent.forceFullSync());
  const doc = JSON.parse((await run(['-o', 'json', '--metrics-address', addr])).out) as StatusDoc;
  t.is(doc.services.find((x) => x.name === 'new')?.programmed.state, 'no-endpoints');
  t.true(doc.lastSync.IPv4!.attempt!.ok);
});

test('the page and the JSON are served only with a status source; other paths stay 404', async (t) => {
  const { server } = await running(t);
  const base = `http://127.0.0.1:${server.port}`;
  const page = await fetch(`${base}/`);
  t.is(page.status, 200);
  t.is(page.headers.get('content-type'), 'text/html; charset=utf-8');
  const html = await page.text();
  t.regex(html, /<tr class="svc" data-service="demo\/web:http"/);
  const filtered = await (await fetch(`${base}/?q=lonely`)).text();
  t.notRegex(filtered, /data-service="demo\/web:http"/);
  t.regex(filtered, /data-service="demo\/lonely:http"/);
  t.is((await fetch(`${base}/statusz`)).status, 404, 'upstream\'s zpage name is not taken');
  const bare = await startMetricsServer({ address: '127.0.0.1:0', mode: 'nftables', registry: (await scriptedAgent()).agent.registry, configz: () => ({}) });
  t.teardown(() => bare.close());
  t.is((await fetch(`http://127.0.0.1:${bare.port}/`)).status, 404);
  const r = await run(['--metrics-address', `127.0.0.1:${bare.port}`]);
  t.is(r.code, 1);
  t.regex(r.err, /answered 404: not a kproxy agent, or one without the status page/);
});

test('no agent: a clear message naming the address and the flag, exit 1', async (t) => {
  const port = await freePort();
  const r = await run(['--metrics-address', `0.0.0.0:${port}`]);
  t.is(r.code, 1);
  t.is(r.out, '');
  t.regex(r.err, new RegExp(`^kproxy status: no kproxy agent answered at http://127\\.0\\.0\\.1:${port}: is it running\\? use --metrics-address \\(ECONNREFUSED`));
});

test('usage: flags, errors (exit 2) and addresses', async (t) => {
  t.like(parseStatusArgs([]), { address: '127.0.0.1:10249', output: 'table', timeoutMs: 5000 });
  t.like(parseStatusArgs(['-o', 'json', '--timeout', '2s']), { output: 'json', timeoutMs: 2000 });
  for (const bad of [['-o', 'yaml'], ['--bogus'], ['--metrics-address'], ['--timeout', '0'], ['--metrics-address', '1.2.3.4:99999']]) {
    const r = await run(bad);
    t.is(r.code, 2, bad.join(' '));
    t.regex(r.err, /^kproxy status: .+\nRun 'kproxy status --help' for usage\.\n$/);
  }
  const help = await run(['--help']);
  t.is(help.code, 0);
  t.regex(help.out, /^Usage: kproxy status /);
  t.is(agentURL('127.0.0.1:10249'), 'http://127.0.0.1:10249');
  t.is(agentURL('0.0.0.0:1'), 'http://127.0.0.1:1');
  t.is(agentURL('[::]:10249'), 'http://[::1]:10249');
  t.is(agentURL('::1'), 'http://[::1]:10249');
  t.is(agentURL('10.0.0.5'), 'http://10.0.0.5:10249');
  t.is(agentURL(':10249'), 'http://127.0.0.1:10249');
  t.is(agentURL('http://node:8080/'), 'http://node:8080');
});
