// The conntrack reconciler's TS side, against a stand-in addon: the input it builds from the
// model, the two upstream metrics, and that no failure reaches the caller.
import test from 'ava';
import { Registry } from 'prom-client';
import type { NativeConntrackReport } from '../../ts/addon/native.js';
import { ConntrackReconciler, conntrackInput, type ConntrackNative } from '../../ts/conntrack/reconciler.js';
import { createLogger } from '../../ts/log.js';
import { clusterIPServicePort, readyEndpoint } from '../../ts/model/build.js';
import type { ServicePort } from '../../ts/model/types.js';
import { captureLines } from '../helpers/log-capture.js';

function capture() {
  const { lines, stream } = captureLines();
  return { lines, logger: createLogger(4, stream) };
}

const report = (over: Partial<NativeConntrackReport> = {}): NativeConntrackReport =>
  ({ flows: 5, stale: 2, deleted: 2, missing: 0, failed: 0, interrupted: false, durationMs: 250, ...over });

/** Records each call; answers with `answer` (a report, or an error to throw or reject with). */
function fakeNative(answer: (call: number) => NativeConntrackReport | Error | 'throw') {
  const calls: Array<{ family: string; services: string }> = [];
  const native: ConntrackNative = {
    reconcileConntrack(family, services) {
      calls.push({ family, services });
      const a = answer(calls.length);
      if (a === 'throw') throw new Error('{"code":"E_INVALID_OPTION","errno":null,"message":"sync throw"}');
      return a instanceof Error ? Promise.reject(a) : new Promise((r) => setTimeout(() => r(a), 5));
    },
  };
  return { native, calls };
}

const dns = (over: Partial<ServicePort> = {}) => clusterIPServicePort({
  namespace: 'kube-system', name: 'dns', portName: 'dns', protocol: 'UDP', clusterIP: '10.96.0.10', port: 53,
  endpoints: [readyEndpoint('10.244.1.2', 8053), readyEndpoint('10.244.2.2', 8053, { ready: false, serving: false, terminating: true })],
  ...over,
});

test('the input lists UDP ServicePorts of the family with their VIPs, NodePort and serving endpoints', (t) => {
  const sps: ServicePort[] = [
    dns({ externalIPs: ['203.0.113.9'], loadBalancerVIPs: ['198.51.100.1'], nodePort: 30053, type: 'LoadBalancer' }),
    // Serving but terminating still counts; not serving does not.
    dns({ name: 'term', clusterIP: '10.96.0.11', endpoints: [readyEndpoint('10.244.3.2', 53, { ready: false, serving: true, terminating: true })] }),
    dns({ name: 'none-serving', clusterIP: '10.96.0.12', endpoints: [readyEndpoint('10.244.4.2', 53, { serving: false })] }),
    dns({ name: 'empty', clusterIP: '10.96.0.13', endpoints: [] }),
    dns({ name: 'tcp', protocol: 'TCP', clusterIP: '10.96.0.14' }),
    dns({ name: 'v6', clusterIP: 'fd00:96::10', family: 'IPv6', endpoints: [readyEndpoint('fd00:244:0:1::2', 8053)] }),
  ];
  t.is(conntrackInput(sps, 'IPv4'), [
    '10.96.0.10,203.0.113.9,198.51.100.1 53 30053 10.244.1.2:8053',
    '10.96.0.11 53 0 10.244.3.2:53',
    '',
  ].join('\n'));
  t.is(conntrackInput(sps, 'IPv6'), 'fd00:96::10 53 0 [fd00:244:0:1::2]:8053\n');
  t.is(conntrackInput([], 'IPv4'), '');
});

test('no UDP ServicePort with serving endpoints: the table is not dumped at all', async (t) => {
  const { native, calls } = fakeNative(() => report());
  const r = new ConntrackReconciler({ family: 'IPv4', registry: new Registry(), logger: capture().logger, native });
  await r.reconcile([]);
  await r.reconcile([dns({ protocol: 'TCP' })]);
  t.deepEqual(calls, []);
  await r.reconcile([dns()]);
  t.is(calls.length, 1);
});

test('a pass records its duration and deleted flows under the family label', async (t) => {
  const registry = new Registry();
  const { native, calls } = fakeNative(() => report({ deleted: 3, durationMs: 250 }));
  const { logger } = capture();
  const r = new ConntrackReconciler({ family: 'IPv4', registry, logger, native });
  await r.reconcile([dns()]);
  t.deepEqual(calls, [{ family: 'IPv4', services: '10.96.0.10 53 0 10.244.1.2:8053\n' }]);
  const text = await registry.metrics();
  t.regex(text, /kubeproxy_conntrack_reconciler_deleted_entries_total\{ip_family="IPv4"\} 3/);
  t.regex(text, /kubeproxy_conntrack_reconciler_sync_duration_seconds_count\{ip_family="IPv4"\} 1/);
  t.regex(text, /kubeproxy_conntrack_reconciler_sync_duration_seconds_sum\{ip_family="IPv4"\} 0.25/);
  t.regex(text, /kubeproxy_conntrack_reconciler_sync_duration_seconds_bucket\{le="0.256",ip_family="IPv4"\} 1/);
  t.regex(text, /kubeproxy_conntrack_reconciler_sync_duration_seconds_bucket\{le="0.128",ip_family="IPv4"\} 0/);
});

test('both families share one registry', async (t) => {
  const registry = new Registry();
  const { native } = fakeNative(() => report({ deleted: 1 }));
  const { logger } = capture();
  const v4 = new ConntrackReconciler({ family: 'IPv4', registry, logger, native });
  const v6 = new ConntrackReconciler({ family: 'IPv6', registry, logger, native });
  const dns6 = dns({ family: 'IPv6', clusterIP: 'fd00:96::10', endpoints: [readyEndpoint('fd00:244:0:1::2', 8053)] });
  await Promise.all([v4.reconcile([dns()]), v6.reconcile([dns6])]);
  const text = await registry.metrics();
  t.regex(text, /deleted_entries_total\{ip_family="IPv4"\} 1/);
  t.regex(text, /deleted_entries_total\{ip_family="IPv6"\} 1/);
});

for (const [name, answer] of [
  ['rejects', new Error('{"code":"E_KERNEL_REJECTED","errno":1,"message":"kernel refused the conntrack dump"}')],
  ['throws synchronously', 'throw'],
] as const) {
  test(`an addon that ${name} is logged, not thrown, and the next pass runs`, async (t) => {
    const registry = new Registry();
    const { native, calls } = fakeNative((n) => (n === 1 ? answer : report()));
    const { lines, logger } = capture();
    const r = new ConntrackReconciler({ family: 'IPv4', registry, logger, native });
    await t.notThrowsAsync(r.reconcile([dns()]));
    const failure = lines.find((l) => l.msg === 'Failed to reconcile conntrack entries');
    t.truthy(failure);
    t.is(failure?.code, answer === 'throw' ? 'E_INVALID_OPTION' : 'E_KERNEL_REJECTED');
    t.notRegex(await registry.metrics(), /sync_duration_seconds_count\{ip_family="IPv4"\} [1-9]/);
    await r.reconcile([dns()]);
    t.is(calls.length, 2);
    t.regex(await registry.metrics(), /sync_duration_seconds_count\{ip_family="IPv4"\} 1/);
  });
}

test('deletes the kernel refused are logged as errors and the rest still counted', async (t) => {
  const registry = new Registry();
  const { native } = fakeNative(() => report({ deleted: 4, failed: 2, failedErrno: 16 }));
  const { lines, logger } = capture();
  await new ConntrackReconciler({ family: 'IPv4', registry, logger, native }).reconcile([dns()]);
  const line = lines.find((l) => l.msg === 'Failed to clear all conntrack entries');
  t.like(line, { failed: 2, errno: 16, entriesDeleted: 4 });
  t.regex(await registry.metrics(), /deleted_entries_total\{ip_family="IPv4"\} 4/);
});

test('calls during a pass coalesce into one more pass with the latest ServicePorts', async (t) => {
  const registry = new Registry();
  const { native, calls } = fakeNative(() => report());
  const { logger } = capture();
  const r = new ConntrackReconciler({ family: 'IPv4', registry, logger, native });
  const first = r.reconcile([dns()]);
  const second = r.reconcile([dns({ clusterIP: '10.96.0.20' })]);
  const third = r.reconcile([dns({ clusterIP: '10.96.0.30' })]);
  await Promise.all([first, second, third]);
  t.deepEqual(calls.map((c) => c.services.split(' ')[0]), ['10.96.0.10', '10.96.0.30']);
  await r.reconcile([dns({ clusterIP: '10.96.0.40' })]);
  t.is(calls.length, 3, 'a call after the passes finished runs again');
});
