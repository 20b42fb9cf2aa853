// ClusterIP traffic through the real agent: spread, protocols, families, source addresses.
//
// Address plan: client 192.168.100.2 / fd00:100::2 (outside the cluster CIDR)
//   backend i 10.244.i.2 / fd00:244:0:i::2, node 10.244.i.1 / fd00:244:0:i::1 on backend i's link
//   web 10.96.0.10 / fd00:96::10: 80/TCP -> 8080, 53/UDP -> 8053, endpoints backend-1..3
import test from 'ava';
import { clusterFor, WEB_IP, WEB_IP6 } from './cluster.js';
import { ALL_BACKENDS, checkFlows, tally, type Flow } from './flows.js';

const BACKENDS = ALL_BACKENDS(3);

test.serial('TCP through a ClusterIP reaches every backend, each with a fair share', async (t) => {
  const { topo } = await clusterFor(t, { name: 'spread' });
  const results = await topo.tcpRequests(topo.client, WEB_IP, 80, { count: 300 });
  const counts = tally(results);
  t.deepEqual(Object.keys(counts).sort(), BACKENDS, `answers: ${JSON.stringify(counts)}`);
  // Loose statistical bound: with uniform choice each backend gets ~100 of 300; 45 is far out.
  for (const backend of BACKENDS) t.true(counts[backend] >= 45, `${backend}: ${counts[backend]} of 300`);
});

test.serial('UDP, IPv6 and dual-stack flows from outside the cluster are answered and masqueraded', async (t) => {
  const { topo } = await clusterFor(t, { name: 'families' });
  const flows: Flow[] = [
    { from: 'client', to: `${WEB_IP}:80`, proto: 'tcp', expect: BACKENDS, source: 'masqueraded', count: 30 },
    { from: 'client', to: `${WEB_IP}:53`, proto: 'udp', expect: BACKENDS, source: 'masqueraded', count: 30 },
    { from: 'client', to: `[${WEB_IP6}]:80`, proto: 'tcp', expect: BACKENDS, source: 'masqueraded', count: 30 },
    { from: 'client', to: `[${WEB_IP6}]:53`, proto: 'udp', expect: BACKENDS, source: 'masqueraded', count: 30 },
  ];
  await checkFlows(t, topo, flows);
  // With 30 tries each, every backend shows up (a miss has odds of about 3 * (2/3)^30).
  const seen = tally(await topo.tcpRequests(topo.client, WEB_IP6, 80, { count: 30 }));
  t.deepEqual(Object.keys(seen).sort(), BACKENDS, JSON.stringify(seen));
});

// Who the backend sees, by where the flow comes from and where it lands.
interface SourceRow {
  from: string;
  to: string;
  /** Loop until a connection lands here (bounded). */
  landsOn: string;
  sees: string;
  why: string;
}
const SOURCE_TABLE: SourceRow[] = [
  { from: 'client', to: WEB_IP, landsOn: 'backend-2', sees: '10.244.2.1', why: 'outside the cluster CIDR: masqueraded' },
  { from: 'client', to: WEB_IP6, landsOn: 'backend-3', sees: 'fd00:244:0:3::1', why: 'outside the cluster CIDR: masqueraded' },
  { from: 'backend-1', to: WEB_IP, landsOn: 'backend-2', sees: '10.244.1.2', why: 'pod to pod: source kept' },
  { from: 'backend-1', to: WEB_IP6, landsOn: 'backend-3', sees: 'fd00:244:0:1::2', why: 'pod to pod: source kept' },
  { from: 'backend-1', to: WEB_IP, landsOn: 'backend-1', sees: '10.244.1.1', why: 'hairpin: masqueraded so replies return' },
  { from: 'backend-2', to: WEB_IP6, landsOn: 'backend-2', sees: 'fd00:244:0:2::1', why: 'hairpin: masqueraded so replies return' },
];

test.serial('masquerade from outside, source kept inside the cluster, hairpin works', async (t) => {
  const { topo } = await clusterFor(t, { name: 'sources' });
  for (const row of SOURCE_TABLE) {
    const ns = row.from === 'client' ? topo.client : topo.backends.find((b) => b.name === row.from)!.ns;
    let landed: { backend: string; source: string } | undefined;
    const failures: string[] = [];
    for (let attempt = 0; attempt < 10 && !landed; attempt++) {
      for (const r of await topo.tcpRequests(ns, row.to, 80, { count: 20 })) {
        if (!r.ok) failures.push(r.error);
        else if (r.backend === row.landsOn) landed ??= r;
      }
    }
    const label = `${row.from} -> ${row.to}:80 landing on ${row.landsOn} (${row.why})`;
    t.deepEqual(failures, [], label);
    t.is(landed?.source, row.sees, label);
  }
});
