// Events, as upstream's events.k8s.io/v1 recorder posts them: the Starting Event on the Node
// at startup, FailedToStartServiceHealthcheck on a Service, against the fake API server
// (which checks them as the API server does); dedup, retries; manifests only log them.
import test from 'ava';
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Agent } from '../../ts/agent.js';
import { loadConfig } from '../../ts/config/index.js';
import { EarlySource } from '../../ts/sources/early.js';
import { eventBody, failedToStartServiceHealthcheckEvent, microTime, startingEvent } from '../../ts/sources/events.js';
import { KubernetesSource, type KubernetesSourceOptions } from '../../ts/sources/kubernetes.js';
import { ManifestsSource } from '../../ts/sources/manifests.js';
import { FakeApiServer, waitFor } from '../helpers/fake-apiserver.js';

// 2026-12-01T11:19:03.123Z
const NOW = Date.UTC(2026, 11, 1, 11, 19, 3, 123);

async function setup(t: { teardown(f: () => unknown): void }, opts: Partial<KubernetesSourceOptions> = {}) {
  const fake = new FakeApiServer();
  await fake.start();
  let now = NOW;
  const source = new KubernetesSource({
    nodeName: 'node-a',
    logger: pino({ level: 'silent' }),
    endpoint: fake.endpoint(),
    backoff: { initialMs: 5, maxMs: 40 },
    events: { hostname: 'host-1', intervalMs: 5, now: () => now },
    ...opts,
  });
  t.teardown(async () => {
    await source.stop();
    await fake.stop();
  });
  return { fake, source, advance: (ms: number) => (now += ms) };
}

test('microTime has microseconds, as metav1.MicroTime', (t) => {
  t.is(microTime(NOW), '2026-12-01T11:19:03.123000Z');
});

test('Starting: posted on the Node as upstream\'s birthCry, in "default"', async (t) => {
  const { fake, source } = await setup(t);
  await source.recordEvent(startingEvent('node-a'));
  t.is(fake.events.length, 1);
  const { namespace, body } = fake.events[0];
  t.is(namespace, 'default');
  t.regex(body.metadata.name, /^node-a\.[0-9a-f]+$/);
  t.is(body.metadata.name, `node-a.${(BigInt(NOW) * 1_000_000n).toString(16)}`);
  t.deepEqual(body, {
    apiVersion: 'events.k8s.io/v1',
    kind: 'Event',
    metadata: { name: body.metadata.name, namespace: 'default' },
    eventTime: '2026-12-01T11:19:03.123000Z',
    reportingController: 'kube-proxy',
    reportingInstance: 'kube-proxy-host-1',
    action: 'StartKubeProxy',
    reason: 'Starting',
    regarding: { apiVersion: 'v1', kind: 'Node', name: 'node-a' },
    note: '',
    type: 'Normal',
  });
});

test('FailedToStartServiceHealthcheck: a Warning on the Service, in its namespace', async (t) => {
  const { fake, source } = await setup(t);
  const e = failedToStartServiceHealthcheckEvent('shop', 'web', 'node-a', 30123, 'listen tcp :30123: bind: address already in use');
  await source.recordEvent(e);
  t.is(fake.events.length, 1);
  const { namespace, body } = fake.events[0];
  t.is(namespace, 'shop');
  t.like(body, {
    metadata: { namespace: 'shop' },
    type: 'Warning',
    reason: 'FailedToStartServiceHealthcheck',
    action: 'Listen',
    regarding: { apiVersion: 'v1', kind: 'Service', namespace: 'shop', name: 'web' },
    note: 'node node-a failed to start healthcheck "shop/web" on port 30123: listen tcp :30123: bind: address already in use',
    reportingController: 'kube-proxy',
  });
  t.regex(body.metadata.name, /^web\./);
});

test('the same event again within 6 minutes is not posted again; later it is', async (t) => {
  const { fake, source, advance } = await setup(t);
  const e = failedToStartServiceHealthcheckEvent('shop', 'web', 'node-a', 30123, 'in use');
  await source.recordEvent(e);
  advance(60_000);
  await source.recordEvent(e);
  await source.recordEvent({ ...e, note: 'another error' });
  t.is(fake.events.length, 2, 'a different note is another event');
  advance(6 * 60_000);
  await source.recordEvent(e);
  t.is(fake.events.length, 3);
  t.not(fake.events[0].body.metadata.name, fake.events[2].body.metadata.name);
});

test('an unreachable API server is retried; a refused event is not', async (t) => {
  const { fake, source } = await setup(t);
  fake.dropEventPosts = 2;
  await source.recordEvent(startingEvent('node-a'));
  t.is(fake.eventPostAttempts, 3);
  t.is(fake.events.length, 1);
  // 422 from validation: client-go gives up at once.
  await source.recordEvent({ ...startingEvent('node-a'), reason: 'x'.repeat(129) });
  t.is(fake.eventPostAttempts, 4);
  t.is(fake.events.length, 1);
  // It gives up after its tries, and never rejects.
  fake.dropEventPosts = 100;
  await t.notThrowsAsync(source.recordEvent(failedToStartServiceHealthcheckEvent('a', 'b', 'node-a', 1, 'e')));
  t.is(fake.eventPostAttempts, 4 + 12);
});

test('a note over the API server\'s 1 kB limit is cut to fit', (t) => {
  const body = eventBody({ ...startingEvent('n'), note: 'é'.repeat(600) }, { nowMs: NOW, hostname: 'h', seq: 0 });
  t.is(Buffer.byteLength(body.note as string), 1024);
});

test('the agent records Starting once its source started, only when asked to (not for plan/trace)', async (t) => {
  const { fake, source } = await setup(t);
  const config = loadConfig(['--hostname-override', 'Node-A', '--metrics-bind-address=', '--healthz-bind-address=']);
  const agent = new Agent({ config, logger: pino({ level: 'silent' }), source, proxiers: [], announce: true });
  await agent.start();
  t.teardown(() => agent.stop());
  await waitFor(() => fake.events.length === 1, 'the Starting event');
  t.like(fake.events[0].body, { reason: 'Starting', action: 'StartKubeProxy', type: 'Normal', regarding: { kind: 'Node', name: 'node-a' } });

  const other = new KubernetesSource({ nodeName: 'node-a', logger: pino({ level: 'silent' }), endpoint: fake.endpoint(), backoff: { initialMs: 5, maxMs: 40 } });
  const quiet = new Agent({ config, logger: pino({ level: 'silent' }), source: other, proxiers: [] });
  await quiet.start();
  t.teardown(() => quiet.stop());
  // The agent's sink: what the health-check servers use.
  quiet.recordEvent(failedToStartServiceHealthcheckEvent('ns', 'svc', 'node-a', 1, 'e'));
  await waitFor(() => fake.events.length === 2, 'the warning');
  t.deepEqual(fake.events.map((e) => e.body.reason), ['Starting', 'FailedToStartServiceHealthcheck']);
});

test('--manifests: events are logged, and EarlySource forwards them', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-events-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const lines: Array<{ level: string; obj: any; msg?: string }> = [];
  const log = (level: string) => (obj: object, msg?: string) => lines.push({ level, obj, msg });
  const manifests = new ManifestsSource({ dir, logger: { debug: log('debug'), info: log('info'), warn: log('warn') } });
  const source = new EarlySource(manifests);
  await source.recordEvent(startingEvent('node-a'));
  await source.recordEvent(failedToStartServiceHealthcheckEvent('ns', 'svc', 'node-a', 30000, 'in use'));
  t.deepEqual(lines.map((l) => [l.level, l.msg, l.obj.event.reason]), [
    ['info', 'Event', 'Starting'],
    ['warn', 'Event', 'FailedToStartServiceHealthcheck'],
  ]);
  t.deepEqual(lines[1].obj.event.regarding, { apiVersion: 'v1', kind: 'Service', namespace: 'ns', name: 'svc' });
});
