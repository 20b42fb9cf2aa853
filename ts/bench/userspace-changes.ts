// userspace mode's change latency, in the namespace the caller runs in: a full program of N
// ClusterIP Services x M endpoints (N listeners, N addresses), then K one-endpoint changes,
// each a partial sync as the agent sends it. Reported: the full program's time, and each
// change's time from the sync call until the proxy serves the new pool (the addon's own clock,
// durationMs, which ends after the swap), p50 and p99.
import { Registry } from 'prom-client';
import pino from 'pino';
import { clusterIPServicePort, readyEndpoint } from '../model/build.js';
import type { ServicePort } from '../model/types.js';
import { createProxiers } from '../proxier/registry.js';

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

function servicePort(i: number, endpoints: number, bumped = -1, generation = 0): ServicePort {
  // 10.100.0.0/16 and up: clear of the bench's VIP; endpoints need not exist (nothing connects).
  const ip = `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
  return clusterIPServicePort({
    namespace: 'bench', name: `svc-${i}`, portName: 'http', protocol: 'TCP', clusterIP: ip, port: 80,
    endpoints: Array.from({ length: endpoints }, (_, e) => readyEndpoint(`10.250.${e}.${e === bumped ? 1 + (generation % 250) : 0}`, 8080)),
  });
}

export async function measureChanges(services: number, endpoints: number, changes: number): Promise<string[]> {
  const [p] = await createProxiers('userspace', ['IPv4'], {
    masqueradeAll: false, masqueradeBit: 14, fake: false, registry: new Registry(), logger: pino({ level: 'silent' }),
  });
  try {
    const all = Array.from({ length: services }, (_, i) => servicePort(i, endpoints));
    const t0 = performance.now();
    const full = await p.sync({ full: true, upserts: all, deletes: [], node: { nodePortIPs: [], nodeIPs: [] } });
    const fullMs = performance.now() - t0;
    if (full.rejected.length > 0) throw new Error(`rejected: ${full.rejected[0].reason}`);
    const inAddon: number[] = [];
    const roundTrip: number[] = [];
    for (let k = 0; k < changes; k++) {
      const i = (k * 7919) % services;
      const t = performance.now();
      const r = await p.sync({ full: false, upserts: [servicePort(i, endpoints, k % endpoints, k + 1)], deletes: [] });
      roundTrip.push(performance.now() - t);
      inAddon.push(r.durationMs);
    }
    const ms = (x: number) => `${x.toFixed(3)} ms`;
    return [
      `change latency, userspace mode: ${services} Services x ${endpoints} endpoints`,
      `  full program (${full.details?.frontends} listeners, ${full.details?.addressesAdded} addresses): ${(fullMs / 1000).toFixed(2)} s`,
      `  one-endpoint change, ${changes} of them: in the addon p50 ${ms(quantile(inAddon, 0.5))}, p99 ${ms(quantile(inAddon, 0.99))}; ` +
        `sync call round trip p50 ${ms(quantile(roundTrip, 0.5))}, p99 ${ms(quantile(roundTrip, 0.99))}`,
    ];
  } finally {
    await p.cleanup();
  }
}
