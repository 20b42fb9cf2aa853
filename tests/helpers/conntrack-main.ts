// Runs one ConntrackReconciler pass in the current network namespace (tests start it with
// `ip netns exec`): argv[2] is JSON {family, servicePorts}. Prints one JSON line
// {metrics, logs}: the registry's text and the reconciler's log lines.
import { Writable } from 'node:stream';
import { Registry } from 'prom-client';
import { ConntrackReconciler } from '../../ts/conntrack/reconciler.js';
import { createLogger } from '../../ts/log.js';
import type { IPFamily, ServicePort } from '../../ts/model/types.js';

const { family, servicePorts } = JSON.parse(process.argv[2]) as { family: IPFamily; servicePorts: ServicePort[] };
const logs: unknown[] = [];
const stream = new Writable({
  write(chunk: Buffer, _enc, done) {
    for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) logs.push(JSON.parse(line));
    done();
  },
});
const registry = new Registry();
const reconciler = new ConntrackReconciler({ family, registry, logger: createLogger(4, stream) });
await reconciler.reconcile(servicePorts);
process.stdout.write(`${JSON.stringify({ metrics: await registry.metrics(), logs })}\n`);
