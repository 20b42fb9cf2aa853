import test from 'ava';
import { get } from 'node:http';
import { Registry } from 'prom-client';
import { FakeClock } from '../../ts/runner/clock.js';
import { appendPortIfNeeded, joinHostPort, parseListenAddress, splitHostPort } from '../../ts/server/address.js';
import { ProxyHealth, formatGoTime, type NodeLike } from '../../ts/server/health.js';
import type { EventType } from '../../ts/sources/types.js';
import { createMetrics, NETWORK_PROGRAMMING_BUCKETS, SYNC_DURATION_BUCKETS } from '../../ts/server/metrics.js';
import { startMetricsServer } from '../../ts/server/metrics-server.js';
import { startHealthServer } from '../../ts/server/health-server.js';

const T0 = Date.UTC(2024, 0, 1); // 2024-01-01T00:00:00Z
const T0_TEXT = '2024-01-01T00:00:00Z';
const ZERO_TIME = '0001-01-01T00:00:00Z';
const READY_NODE: NodeLike = { metadata: {}, spec: { taints: [{ key: 'node-role.kubernetes.io/control-plane' }] } };

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function request(port: number, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    }).on('error', reject);
  });
}

// --- addresses ---------------------------------------------------------------------------------

const SPLITS: Array<[string, { host: string; port: string } | string]> = [
  ['127.0.0.1:10249', { host: '127.0.0.1', port: '10249' }],
  ['0.0.0.0:10256', { host: '0.0.0.0', port: '10256' }],
  ['[::1]:10249', { host: '::1', port: '10249' }],
  ['[::]:0', { host: '::', port: '0' }],
  [':10249', { host: '', port: '10249' }],
  ['127.0.0.1', 'missing port'],
  ['::1', 'too many colons'],
  ['[::1]', 'missing port'],
  ['[::1', "missing ']'"],
  ['[::1]x10', "unexpected character after ']'"],
];
for (const [addr, expected] of SPLITS) {
  test(`splitHostPort(${JSON.stringify(addr)})`, (t) => {
    if (typeof expected === 'string') {
      const err = t.throws(() => splitHostPort(addr));
      t.true(err.message.includes(expected), err.message);
    } else {
      t.deepEqual(splitHostPort(addr), expected);
    }
  });
}

test('parseListenAddress validates host and port', (t) => {
  t.deepEqual(parseListenAddress('[::1]:10249'), { host: '::1', port: 10249 });
  t.deepEqual(parseListenAddress('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
  t.throws(() => parseListenAddress('localhost:80'), { message: /not an IP address/ });
  t.throws(() => parseListenAddress('1.2.3.4:65536'), { message: /not a valid port/ });
  t.throws(() => parseListenAddress('1.2.3.4:http'), { message: /not a valid port/ });
});

test('appendPortIfNeeded and joinHostPort follow upstream', (t) => {
  t.is(appendPortIfNeeded('0.0.0.0', 10256), '0.0.0.0:10256');
  t.is(appendPortIfNeeded('::', 10256), '[::]:10256');
  t.is(appendPortIfNeeded('1.2.3.4:99', 10256), '1.2.3.4:99');
  t.is(appendPortIfNeeded('[::1]', 10256), '[::1]', 'invalid input is left for validation to reject');
  t.is(appendPortIfNeeded('', 10256), '');
  t.is(joinHostPort('::1', 1), '[::1]:1');
  t.is(joinHostPort('10.0.0.1', 1), '10.0.0.1:1');
});

// --- metrics -------------------------------------------------------------------------------------

test('metric names, types, labels and help match upstream', async (t) => {
  const registry = new Registry();
  const m = createMetrics(registry, { defaultMetrics: false });
  m.syncProxyRulesDuration.observe({ ip_family: 'IPv4' }, 0.002);
  m.noLocalEndpointsTotal.set({ ip_family: 'IPv4', traffic_policy: 'internal' }, 2);
  m.proxyHealthzTotal.inc({ code: '200' });
  m.invalidObjectsTotal.inc({ kind: 'Service', reason: 'bad-port' });
  const text = await registry.metrics();
  const expected: Array<[string, string, string]> = [
    ['kubeproxy_sync_proxy_rules_duration_seconds', 'histogram', 'SyncProxyRules latency in seconds'],
    ['kubeproxy_sync_full_proxy_rules_duration_seconds', 'histogram', 'SyncProxyRules latency in seconds for full resyncs'],
    ['kubeproxy_sync_partial_proxy_rules_duration_seconds', 'histogram', 'SyncProxyRules latency in seconds for partial resyncs'],
    ['kubeproxy_network_programming_duration_seconds', 'histogram', 'In Cluster Network Programming Latency in seconds'],
    ['kubeproxy_sync_proxy_rules_last_timestamp_seconds', 'gauge', 'The last time proxy rules were successfully synced'],
    ['kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds', 'gauge', 'The last time a sync of proxy rules was queued'],
    ['kubeproxy_sync_proxy_rules_endpoint_changes_pending', 'gauge', 'Pending proxy rules Endpoint changes'],
    ['kubeproxy_sync_proxy_rules_service_changes_pending', 'gauge', 'Pending proxy rules Service changes'],
    ['kubeproxy_sync_proxy_rules_endpoint_changes_total', 'counter', 'Cumulative proxy rules Endpoint changes'],
    ['kubeproxy_sync_proxy_rules_service_changes_total', 'counter', 'Cumulative proxy rules Service changes'],
    ['kubeproxy_sync_proxy_rules_no_local_endpoints_total', 'gauge', 'Number of services with a Local traffic policy and no endpoints'],
    ['kubeproxy_proxy_healthz_total', 'counter', 'Cumulative proxy healthz HTTP status'],
    ['kubeproxy_proxy_livez_total', 'counter', 'Cumulative proxy livez HTTP status'],
  ];
  for (const [name, type, help] of expected) {
    t.true(text.includes(`# HELP ${name} [ALPHA] ${help}\n# TYPE ${name} ${type}\n`), name);
  }
  // Mode metrics belong to the modes (tests/unit/nftables-proxier.test.ts).
  t.false(text.includes('nftables'), 'the shared metrics name no mode');
  t.true(text.includes('# TYPE kproxy_invalid_objects_total counter'));
  t.true(text.includes('kproxy_invalid_objects_total{kind="Service",reason="bad-port"} 1'));
  t.true(text.includes('kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="0.001",ip_family="IPv4"} 0'));
  t.true(text.includes('kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="0.002",ip_family="IPv4"} 1'));
  t.true(text.includes('kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="16.384",ip_family="IPv4"} 1'));
  t.true(text.includes('kubeproxy_sync_proxy_rules_no_local_endpoints_total{ip_family="IPv4",traffic_policy="internal"} 2'));
  t.true(text.includes('kubeproxy_proxy_healthz_total{code="200"} 1'));
});

test('histogram buckets are upstream\'s', (t) => {
  t.is(SYNC_DURATION_BUCKETS.length, 15);
  t.is(SYNC_DURATION_BUCKETS[0], 0.001);
  t.is(SYNC_DURATION_BUCKETS[14], 16.384);
  t.is(NETWORK_PROGRAMMING_BUCKETS.length, 2 + 59 + 12 + 7);
  t.deepEqual(NETWORK_PROGRAMMING_BUCKETS.slice(0, 4), [0.25, 0.5, 1, 2]);
  for (const b of [59, 60, 65, 115, 120, 150, 300]) t.true(NETWORK_PROGRAMMING_BUCKETS.includes(b), String(b));
  t.false(NETWORK_PROGRAMMING_BUCKETS.includes(61));
  t.is(NETWORK_PROGRAMMING_BUCKETS.at(-1), 300);
});

test('default process metrics are registered', async (t) => {
  const registry = new Registry();
  createMetrics(registry);
  const text = await registry.metrics();
  t.true(text.includes('process_cpu_user_seconds_total'));
  t.true(text.includes('process_start_time_seconds'));
});

// --- health model --------------------------------------------------------------------------------

function healthAt(startMs = T0) {
  const clock = new FakeClock(startMs);
  return { clock, health: new ProxyHealth({ syncPeriodMs: 30_000, clock }) };
}

test('formatGoTime is RFC3339Nano in UTC with trailing zeros trimmed', (t) => {
  t.is(formatGoTime(undefined), ZERO_TIME);
  t.is(formatGoTime(T0), T0_TEXT);
  t.is(formatGoTime(T0 + 1), '2024-01-01T00:00:00.001Z');
  t.is(formatGoTime(T0 + 120), '2024-01-01T00:00:00.12Z');
  t.is(formatGoTime(T0 + 1500), '2024-01-01T00:00:01.5Z');
  t.is(formatGoTime(T0 + 0.5), '2024-01-01T00:00:00.0005Z');
});

test('before any sync and without a Node: livez and healthz 200 (eligible while starting, as upstream)', (t) => {
  const { health } = healthAt();
  t.is(health.healthTimeoutMs, 60_000);
  t.deepEqual(health.status('livez'), {
    code: 200,
    body: `{"lastUpdated":"${T0_TEXT}","currentTime":"${T0_TEXT}","healthy":true}`,
  });
  t.deepEqual(health.status('healthz'), {
    code: 200,
    body: `{"lastUpdated":"${T0_TEXT}","currentTime":"${T0_TEXT}","nodeEligible":true,"healthy":true}`,
  });
});

test('unhealthy and ineligible: healthz 503 keeps the real lastUpdated (zero before any sync)', async (t) => {
  const { clock, health } = healthAt();
  health.syncNode({ metadata: { deletionTimestamp: T0_TEXT } });
  t.deepEqual(health.status('healthz'), {
    code: 503,
    body: `{"lastUpdated":"${ZERO_TIME}","currentTime":"${T0_TEXT}","nodeEligible":false,"healthy":true}`,
  });
  await clock.advance(1);
  t.is(health.status('livez').code, 200, 'livez ignores the node');
});

test('healthy dual-stack: 200 with lastUpdated rewritten to now and per-family status', async (t) => {
  const { clock, health } = healthAt();
  health.updated('IPv6');
  health.updated('IPv4');
  health.syncNode(READY_NODE);
  await clock.advance(1_500);
  const now = '2024-01-01T00:00:01.5Z';
  t.deepEqual(health.status('healthz'), {
    code: 200,
    body: `{"lastUpdated":"${now}","currentTime":"${now}","nodeEligible":true,"healthy":true,` +
      `"status":{"IPv4":{"lastUpdated":"${T0_TEXT}","healthy":true},"IPv6":{"lastUpdated":"${T0_TEXT}","healthy":true}}}`,
  });
  t.deepEqual(health.status('livez'), {
    code: 200,
    body: `{"lastUpdated":"${now}","currentTime":"${now}","healthy":true,` +
      `"status":{"IPv4":{"lastUpdated":"${T0_TEXT}","healthy":true},"IPv6":{"lastUpdated":"${T0_TEXT}","healthy":true}}}`,
  });
});

test('a change queued for healthTimeout (2 × syncPeriod) makes its family unhealthy until updated', async (t) => {
  const { clock, health } = healthAt();
  health.updated('IPv4');
  health.updated('IPv6');
  health.syncNode(READY_NODE);
  await clock.advance(1_000);
  health.queued('IPv4');
  await clock.advance(30_000);
  health.queued('IPv4'); // only the oldest pending change counts
  await clock.advance(29_999);
  t.true(health.isHealthy());
  await clock.advance(1);
  t.false(health.isHealthy());
  const now = '2024-01-01T00:01:01Z';
  const status = `"status":{"IPv4":{"lastUpdated":"${T0_TEXT}","healthy":false},"IPv6":{"lastUpdated":"${T0_TEXT}","healthy":true}}`;
  t.deepEqual(health.status('healthz'), {
    code: 503,
    body: `{"lastUpdated":"${T0_TEXT}","currentTime":"${now}","nodeEligible":true,"healthy":false,${status}}`,
  });
  t.deepEqual(health.status('livez'), {
    code: 503,
    body: `{"lastUpdated":"${T0_TEXT}","currentTime":"${now}","healthy":false,${status}}`,
  });
  health.updated('IPv4');
  t.is(health.status('healthz').code, 200);
  t.is(health.status('livez').code, 200);
});

test('a queued change for a family that never synced does not count (as upstream)', async (t) => {
  const { clock, health } = healthAt();
  health.updated('IPv4');
  health.queued('IPv6');
  await clock.advance(120_000);
  t.true(health.isHealthy());
});

const DELETING: NodeLike = { metadata: { name: 'node-a', deletionTimestamp: '2024-01-01T00:00:00Z' } };
const TAINTED: NodeLike = { metadata: { name: 'node-a' }, spec: { taints: [{ key: 'ToBeDeletedByClusterAutoscaler' }] } };
type NodeEvent = [EventType, NodeLike | undefined, NodeLike?];

// [name, Node events in order, eligible after them]
const NODES: Array<[string, NodeEvent[], boolean]> = [
  ['no Node event yet (e.g. --manifests without a Node)', [], true],
  ['ready node', [['ADDED', READY_NODE]], true],
  ['node without spec', [['ADDED', { metadata: {} }]], true],
  ['deleting node', [['MODIFIED', DELETING]], false],
  ['node tainted by the cluster autoscaler', [['ADDED', TAINTED]], false],
  ['taint removed again: any other event makes it eligible', [['ADDED', TAINTED], ['MODIFIED', READY_NODE]], true],
  ['deleted with a deletionTimestamp', [['ADDED', READY_NODE], ['DELETED', DELETING]], false],
  ['deleted as it was: decided from its last state (upstream SyncNode)', [['ADDED', READY_NODE], ['DELETED', READY_NODE]], true],
  ['bare DELETED decided from the previous version', [['ADDED', TAINTED], ['DELETED', {}, TAINTED]], false],
  ['unusable event changes nothing', [['ADDED', TAINTED], ['MODIFIED', undefined]], false],
];
for (const [name, events, eligible] of NODES) {
  test(`eligibility: ${name}`, (t) => {
    const { health } = healthAt();
    health.updated('IPv4');
    for (const [type, node, old] of events) health.onNodeEvent(type, node, old);
    t.is(health.nodeEligible(), eligible);
    t.is(health.status('healthz').code, eligible ? 200 : 503);
    t.is(health.status('livez').code, 200, 'livez ignores the node');
    t.true(health.status('healthz').body.includes(`"nodeEligible":${eligible}`));
  });
}

// --- health server over HTTP -------------------------------------------------------------------

test('health server: /healthz and /livez bodies, headers, codes and counters', async (t) => {
  const { clock, health } = healthAt();
  const registry = new Registry();
  const metrics = createMetrics(registry, { defaultMetrics: false });
  const server = await startHealthServer({ address: '127.0.0.1:0', health, metrics });
  try {
    health.updated('IPv4');
    health.syncNode(TAINTED);
    let reply = await request(server.port, '/healthz');
    t.is(reply.status, 503);
    t.is(reply.headers['content-type'], 'application/json');
    t.is(reply.headers['x-content-type-options'], 'nosniff');
    t.is(reply.body, `{"lastUpdated":"${T0_TEXT}","currentTime":"${T0_TEXT}","nodeEligible":false,"healthy":true,` +
      `"status":{"IPv4":{"lastUpdated":"${T0_TEXT}","healthy":true}}}`);
    t.is(reply.headers['content-length'], String(Buffer.byteLength(reply.body)));

    health.syncNode(READY_NODE);
    await clock.advance(2_000);
    reply = await request(server.port, '/healthz');
    t.is(reply.status, 200);
    t.is(reply.body, `{"lastUpdated":"2024-01-01T00:00:02Z","currentTime":"2024-01-01T00:00:02Z","nodeEligible":true,"healthy":true,` +
      `"status":{"IPv4":{"lastUpdated":"${T0_TEXT}","healthy":true}}}`);
    t.false(reply.body.endsWith('\n'));

    reply = await request(server.port, '/livez?x=1');
    t.is(reply.status, 200);
    t.false(reply.body.includes('nodeEligible'));

    const text = await registry.metrics();
    t.true(text.includes('kubeproxy_proxy_healthz_total{code="503"} 1'));
    t.true(text.includes('kubeproxy_proxy_healthz_total{code="200"} 1'));
    t.true(text.includes('kubeproxy_proxy_livez_total{code="200"} 1'));

    for (const path of ['/', '/healthz/', '/livez/x', '/metrics', '/readyz']) {
      reply = await request(server.port, path);
      t.is(reply.status, 404, path);
      t.is(reply.body, '404 page not found\n');
    }
  } finally {
    await server.close();
  }
});

// --- metrics server over HTTP ------------------------------------------------------------------

test('metrics server: /proxyMode, /healthz, /configz, /metrics and 404s', async (t) => {
  const registry = new Registry();
  const metrics = createMetrics(registry, { defaultMetrics: false });
  metrics.serviceChangesTotal.inc(3);
  const config = { apiVersion: 'kubeproxy.config.k8s.io/v1alpha1', kind: 'KubeProxyConfiguration', mode: 'nftables' };
  const server = await startMetricsServer({ address: '127.0.0.1:0', mode: 'nftables', registry, configz: () => config });
  try {
    t.true(server.port > 0);
    let reply = await request(server.port, '/proxyMode');
    t.is(reply.status, 200);
    t.is(reply.body, 'nftables');
    t.is(reply.headers['content-type'], 'text/plain; charset=utf-8');
    t.is(reply.headers['x-content-type-options'], 'nosniff');
    t.is(reply.headers['content-length'], '8');

    reply = await request(server.port, '/healthz');
    t.is(reply.status, 200);
    t.is(reply.body, 'ok');
    t.is(reply.headers['content-type'], 'text/plain; charset=utf-8');
    t.is(reply.headers['x-content-type-options'], 'nosniff');

    reply = await request(server.port, '/healthz?verbose');
    t.is(reply.body, '[+]ping ok\nhealthz check passed\n');

    reply = await request(server.port, '/healthz/ping');
    t.is(reply.status, 200);
    t.is(reply.body, 'ok');

    reply = await request(server.port, '/configz');
    t.is(reply.status, 200);
    t.is(reply.headers['content-type'], 'application/json');
    t.is(reply.body, JSON.stringify({ 'kubeproxy.config.k8s.io': config }));

    reply = await request(server.port, '/metrics');
    t.is(reply.status, 200);
    t.is(reply.headers['content-type'], registry.contentType);
    t.true(reply.body.includes('kubeproxy_sync_proxy_rules_service_changes_total 3'));

    for (const path of ['/livez', '/', '/metrics/', '/proxymode']) {
      reply = await request(server.port, path);
      t.is(reply.status, 404, path);
      t.is(reply.body, '404 page not found\n');
      t.is(reply.headers['content-type'], 'text/plain; charset=utf-8');
    }
  } finally {
    await server.close();
  }
});

test('servers reject a malformed address and a busy port', async (t) => {
  const registry = new Registry();
  await t.throwsAsync(startMetricsServer({ address: 'nonsense', mode: 'nftables', registry, configz: () => ({}) }));
  const { health } = healthAt();
  const first = await startHealthServer({ address: '127.0.0.1:0', health });
  try {
    await t.throwsAsync(startHealthServer({ address: `127.0.0.1:${first.port}`, health }), { code: 'EADDRINUSE' });
  } finally {
    await first.close();
  }
});

test('servers listen on IPv6 addresses', async (t) => {
  const { health } = healthAt();
  const server = await startHealthServer({ address: '[::1]:0', health });
  try {
    t.is(server.host, '::1');
    t.true(server.port > 0);
  } finally {
    await server.close();
  }
});
