// Steady traffic to the web Service (both families, TCP and UDP) while something happens to
// the agent, and the check that not one connection of it failed.
import type { ExecutionContext } from 'ava';
import type { FlowResult, Topology } from '../../ts/demo/topology.js';
import { WEB_IP, WEB_IP6 } from './cluster.js';
import { tally } from './flows.js';

/** Opens new connections back to back until stopped; returns every outcome. */
function keepConnecting(topo: Topology, ip: string, port: number, proto: 'tcp' | 'udp', pace: Pace) {
  let stopping = false;
  const results: FlowResult[] = [];
  const request = proto === 'tcp' ? topo.tcpRequests : topo.udpRequests;
  // A failure names its flow and when its batch began, so the tally says what failed, and when.
  const flow = `${proto} ${ip}:${port}`;
  const began = performance.now();
  const running = (async () => {
    while (!stopping) {
      try {
        const at = ((performance.now() - began) / 1000).toFixed(1);
        // 3 s per request, split over a UDP request's sends.
        const attempts = proto === 'udp' ? pace.udpAttempts ?? 1 : 1;
        const batch = await request(topo.client, ip, port, { count: pace.count, intervalMs: pace.intervalMs, attempts, timeoutMs: 3000 / attempts });
        results.push(...batch.map((r) => (r.ok ? r : { ...r, error: `${flow} ${r.error}, batch from ${at} s` })));
      } catch (err) {
        // The client itself died (say, killed by teardown after a failed assertion): stop quietly.
        results.push({ ok: false, error: `client died: ${(err as Error).message.slice(0, 200)}` });
        return;
      }
    }
  })();
  return async () => {
    stopping = true;
    await running;
    return results;
  };
}

/** Connections per client run, and the pause between them. */
export interface Pace {
  count: number;
  intervalMs: number;
  /** Sends per UDP request (default 1): a resolver's retry, for tests where one may be lost. */
  udpAttempts?: number;
}

export function startTraffic(topo: Topology, loopsPerFlow = 1, pace: Pace = { count: 25, intervalMs: 5 }) {
  const loops = Array.from({ length: loopsPerFlow }, () => [
    keepConnecting(topo, WEB_IP, 80, 'tcp', pace),
    keepConnecting(topo, WEB_IP, 53, 'udp', pace),
    keepConnecting(topo, WEB_IP6, 80, 'tcp', pace),
  ]).flat();
  return async () => (await Promise.all(loops.map((stop) => stop()))).flat();
}

/** No failed connection, and enough of them that the syncs surely overlapped some. */
export function assertAllAnswered(t: ExecutionContext, results: FlowResult[]) {
  const counts = tally(results);
  const failures = Object.fromEntries(Object.entries(counts).filter(([key]) => key.startsWith('error:')));
  t.deepEqual(failures, {}, `outcomes: ${JSON.stringify(counts)}`);
  t.true(results.length >= 75, `only ${results.length} connections were tried`);
}

