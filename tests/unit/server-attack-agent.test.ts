// The agent under attack on its own HTTP servers: the real agent loop with --manifests and the
// nftables fake, its metrics, health and health-check node port servers on 127.0.0.1, and a
// slowloris plus request flood from another process (tests/helpers/http-attack.mjs) against
// all three. Endpoint changes written to the manifests keep being programmed, and their
// event-to-rules latency (the status model's eventLatencyMs) is measured before and during the
// attack and logged; only generous sanity bounds are asserted on time. The servers keep
// answering, the attackers are closed by the timeouts, and the fds come back afterwards.
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { Agent } from '../../ts/agent.js';
import { prepare } from '../../ts/commands/run.js';
import { loadConfig } from '../../ts/config/index.js';
import type { StatusDoc } from '../../ts/status/types.js';
import { captureLines } from '../helpers/log-capture.js';
import { fdCount, fdsBackTo, freePort, get } from '../helpers/raw-http.js';

const NODE = 'test-node';
const ATTACKER = fileURLToPath(new URL('../helpers/http-attack.mjs', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** web (ClusterIP, `n` endpoints) and lb (LoadBalancer, eTP Local, one endpoint on this node). */
function cluster(n: number, hcPort: number): string {
  const slice = (svc: string, ips: string[], nodeName?: string) => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { namespace: 'default', name: `${svc}-x`, labels: { 'kubernetes.io/service-name': svc } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true }, nodeName })),
  });
  const items = [
    { apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'default', name: 'web', uid: 'u-web' },
      spec: { clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'], ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] } },
    slice('web', Array.from({ length: n }, (_, i) => `10.244.1.${i + 2}`)),
    { apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'default', name: 'lb', uid: 'u-lb' },
      spec: { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: hcPort, clusterIP: '10.96.0.11', clusterIPs: ['10.96.0.11'],
        ports: [{ name: 'http', port: 80, targetPort: 8080, nodePort: 30080, protocol: 'TCP' }] } },
    slice('lb', ['10.244.2.2'], NODE),
  ];
  return JSON.stringify({ apiVersion: 'v1', kind: 'List', items });
}

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  return `median ${s[Math.floor(s.length / 2)]} ms, max ${s.at(-1)} ms (n=${s.length})`;
}

test('the agent keeps programming changes while its servers are under slowloris and flood; latency logged', async (t) => {
  t.timeout(120_000);
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-attack-'));
  const [hcPort, metricsPort, healthPort] = [await freePort(), await freePort(), await freePort()];
  const write = (n: number) => {
    writeFileSync(join(dir, 'cluster.json.tmp'), cluster(n, hcPort));
    renameSync(join(dir, 'cluster.json.tmp'), join(dir, 'cluster.json'));
  };
  write(1);
  const config = loadConfig([
    '--manifests', dir, '--proxy-mode', 'nftables', '--cluster-cidr', '10.244.0.0/16', '--hostname-override', NODE,
    '--metrics-bind-address', `127.0.0.1:${metricsPort}`, '--healthz-bind-address', `127.0.0.1:${healthPort}`, '--nodeport-addresses', '127.0.0.0/8',
    '--iptables-min-sync-period', '0s', '--iptables-sync-period', '1h',
  ]);
  const { lines, stream } = captureLines();
  const logger = pino({ level: 'info' }, stream);
  const registry = new Registry();
  const { source, proxiers } = await prepare(config, logger, true, 0, registry);
  const limits = { headersTimeoutMs: 1000, requestTimeoutMs: 2000, socketIdleTimeoutMs: 2000, checkIntervalMs: 200, maxConnections: 64 };
  const agent = new Agent({ config, logger, source, proxiers, registry, serverLimits: limits });
  const first = agent.nextSync();
  await agent.start();
  t.teardown(async () => {
    await agent.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await first;

  // The servers are up once the agent logs them.
  for (let i = 0; i < 100 && lines.filter((l) => l.msg === 'Serving').length < 2; i++) await sleep(50);
  for (let i = 0; i < 100 && (await get(hcPort, '/')).status !== 200; i++) await sleep(50);
  t.is((await get(hcPort, '/')).status, 200, 'the health-check node port is served');

  const doc = async (): Promise<StatusDoc> => JSON.parse((await get(metricsPort, '/kproxy/status.json', 'GET', 5000)).body) as StatusDoc;
  let endpoints = 1;
  // One endpoint change through the manifests: from the write to the sync that programmed it.
  const change = async (): Promise<{ wallMs: number; eventMs: number }> => {
    endpoints = (endpoints % 4) + 1;
    const started = Date.now();
    write(endpoints);
    for (;;) {
      await Promise.race([agent.nextSync(), sleep(20_000)]);
      if (Date.now() - started > 20_000) throw new Error(`no sync within 20 s of the change: ${JSON.stringify(agent.statusDoc().syncs.slice(-3))} ${JSON.stringify(lines.slice(-5))}`);
      const rec = agent.statusDoc().syncs.find((r) => r.family === 'IPv4' && r.at >= started && r.ok && r.upserts > 0 && r.eventLatencyMs !== undefined);
      if (rec) return { wallMs: rec.at - started, eventMs: rec.eventLatencyMs! };
    }
  };
  const run = async (n: number) => {
    const wall: number[] = [];
    const event: number[] = [];
    for (let i = 0; i < n; i++) {
      const r = await change();
      wall.push(r.wallMs);
      event.push(r.eventMs);
      await sleep(100);
    }
    return { wall, event };
  };

  const before = await run(8);
  const baselineFds = fdCount();

  const attacker = spawn(process.execPath, [ATTACKER, JSON.stringify({ ports: [metricsPort, healthPort, hcPort], slow: 40, flood: 20, byteEveryMs: 100 })], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  attacker.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => attacker.on('exit', () => resolve()));
  try {
    await sleep(2500); // past a headers timeout, so the slowloris has been closed and reopened
    const during = await run(16);
    const peakFds = fdCount();
    const answers = await Promise.all([get(healthPort, '/livez', 'GET', 5000), get(hcPort, '/', 'GET', 5000), get(metricsPort, '/proxyMode', 'GET', 5000)]);
    t.log(`normal GETs during the attack: ${answers.map((a) => `${a.status} in ${a.ms} ms`).join(', ')} (0 = refused while the cap was full)`);
    t.true(answers.some((a) => a.status === 200), 'the servers keep answering during the attack');
    const status = await doc();
    t.true(status.initialSyncDone);
    attacker.stdin.end();
    await exited;
    const attack = JSON.parse(out.trim()) as { slowOpened: number; slowClosedByServer: number; floodAnswered: number; floodRefused: number; statuses: Record<string, number> };
    t.log(`before the attack: write-to-rules ${stats(before.wall)}; event-to-rules ${stats(before.event)}`);
    t.log(`during the attack: write-to-rules ${stats(during.wall)}; event-to-rules ${stats(during.event)}`);
    t.log(`attacker: ${JSON.stringify(attack)}; agent fds ${baselineFds} before, ${peakFds} during`);
    t.true(attack.slowClosedByServer > 0, 'the timeouts closed slowloris connections');
    t.true(attack.floodAnswered > 0);
    t.true(Math.max(...during.wall) < 10_000, 'every change programmed within 10 s during the attack');

    const fds = await fdsBackTo(baselineFds, 10_000);
    t.true(fds <= baselineFds, `agent fds back to ${fds} (baseline ${baselineFds})`);
    t.is((await get(healthPort, '/livez')).status, 200);
    t.is((await get(metricsPort, '/proxyMode')).body, 'nftables');
    t.is((await get(hcPort, '/')).status, 200);
    const after = await run(3);
    t.log(`after the attack: write-to-rules ${stats(after.wall)}; event-to-rules ${stats(after.event)}`);
  } finally {
    if (attacker.exitCode === null) attacker.kill();
  }
});
