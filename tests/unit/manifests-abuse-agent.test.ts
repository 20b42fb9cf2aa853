// Issue 12, end to end: the real agent (--manifests, nftables fake) over a directory holding
// every kind of abuse at once (a 1 GB sparse file, a symlink loop, a FIFO, a socket, a link to
// /dev/zero, a non-UTF-8 name, a file being appended to, 10k other files). It stays up, keeps
// programming its valid Services, logs each skip once, and its RSS stays bounded (logged).
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { Agent } from '../../ts/agent.js';
import { prepare } from '../../ts/commands/run.js';
import { loadConfig } from '../../ts/config/index.js';
import { captureLines } from '../helpers/log-capture.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;

const service = (name: string, ip: string) =>
  JSON.stringify({
    apiVersion: 'v1', kind: 'List', items: [
      { apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'default', name }, spec: { clusterIP: ip, clusterIPs: [ip], ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] } },
      { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { namespace: 'default', name: `${name}-x`, labels: { 'kubernetes.io/service-name': name } },
        addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }], endpoints: [{ addresses: ['10.244.1.2'], conditions: { ready: true } }] },
    ],
  });

test('the agent stays up and serves its valid Services with every abuse file present; RSS bounded', async (t) => {
  t.timeout(240_000);
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-abuse-agent-'));
  writeFileSync(join(dir, 'web.json'), service('web', '10.96.0.10'));
  writeFileSync(join(dir, 'huge.yaml'), '');
  truncateSync(join(dir, 'huge.yaml'), 1024 ** 3);
  symlinkSync('loop-b.yaml', join(dir, 'loop-a.yaml'));
  symlinkSync('loop-a.yaml', join(dir, 'loop-b.yaml'));
  execFileSync('mkfifo', [join(dir, 'fifo.yaml')]);
  const sock = createServer();
  await new Promise<void>((r) => sock.listen(join(dir, 'sock.yaml'), () => r()));
  symlinkSync('/dev/zero', join(dir, 'zero.yaml'));
  writeFileSync(Buffer.concat([Buffer.from(dir + '/bad-'), Buffer.from([0xff]), Buffer.from('.yaml')]), service('mangled', '10.96.0.99'));
  for (let i = 0; i < 10_000; i++) {
    writeFileSync(join(dir, `cm${String(i).padStart(5, '0')}.yaml`), `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm${i}, namespace: default}\ndata: {k: v}\n`);
  }
  writeFileSync(join(dir, 'busy.yaml'), service('busy', '10.96.0.12'));

  const config = loadConfig(['--manifests', dir, '--proxy-mode', 'nftables', '--cluster-cidr', '10.244.0.0/16', '--hostname-override', 'test-node',
    '--metrics-bind-address', '', '--healthz-bind-address', '', '--iptables-min-sync-period', '0s', '--iptables-sync-period', '1h']);
  const { lines, stream } = captureLines();
  const logger = pino({ level: 'info' }, stream);
  const registry = new Registry();
  const { source, proxiers } = await prepare(config, logger, true, 0, registry);
  const agent = new Agent({ config, logger, source, proxiers, registry, serviceHealth: false });
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  const first = agent.nextSync();
  await agent.start();
  await first;
  const startMs = performance.now() - t0;
  t.teardown(async () => {
    await agent.stop();
    sock.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const services = () => agent.statusDoc().services.map((s) => s.service).sort();
  t.deepEqual(services(), ['default/busy:http', 'default/web:http']);

  // A writer appending to busy.yaml (valid YAML comments) while full rescans are forced by
  // fs events on a name that is not a manifest's; a new Service is added meanwhile.
  let peak = process.memoryUsage().rss;
  const writer = setInterval(() => appendFileSync(join(dir, 'busy.yaml'), '\n# still writing'), 2);
  try {
    for (let i = 0; i < 4; i++) {
      writeFileSync(join(dir, `poke-${i}.txt`), 'x');
      await sleep(1500);
      peak = Math.max(peak, process.memoryUsage().rss);
    }
    writeFileSync(join(dir, 'api.json'), service('api', '10.96.0.11'));
    for (let i = 0; i < 100 && !services().includes('default/api:http'); i++) await sleep(100);
  } finally {
    clearInterval(writer);
  }
  t.deepEqual(services(), ['default/api:http', 'default/busy:http', 'default/web:http'], 'the valid Services are programmed; the abuse is not');
  // busy.yaml may be caught mid-write several times in a row on a loaded machine: that one may vary.
  const skips = lines.filter((l) => l.msg === 'Skipping invalid object' && l.reason !== 'changing-while-read').map((l) => `${l.kind} ${l.reason} ${l.object}`);
  t.deepEqual(skips.sort(), [
    'File bad-file-name bad-\\xff.yaml: name is not valid UTF-8',
    'File not-a-regular-file fifo.yaml: FIFO',
    'File not-a-regular-file sock.yaml: socket',
    'File not-a-regular-file zero.yaml: device or other',
    'File symlink-loop loop-a.yaml: too many levels of symbolic links',
    'File symlink-loop loop-b.yaml: too many levels of symbolic links',
    `File too-large huge.yaml: ${1024 ** 3} bytes, cap 2097152`,
  ], 'each skip logged once, across four full rescans');
  const counted = (await registry.getSingleMetric('kproxy_invalid_objects_total')!.get()).values.filter((v) => v.labels.reason !== 'changing-while-read').reduce((n, v) => n + v.value, 0);
  t.is(counted, 7, 'and counted once');
  const rss = process.memoryUsage().rss;
  t.log(`10k files + abuse: first sync ${startMs.toFixed(0)} ms; RSS ${mib(rss0)} before start, peak ${mib(peak)}, ${mib(rss)} after 4 full rescans`);
  t.true(peak - rss0 < 300 * 2 ** 20, `RSS grew by ${mib(peak - rss0)}`);
});
