// The tracer (tests/helpers/traced-cluster.ts, no kernel) against real packets: for a sample
// of packet-flow rows, the backends that really answer, how they saw the source, and the
// error a rejected connection ends in must be what the tracer predicts from the same objects.
//
// Address plan: client 192.168.100.2 / fd00:100::2 (outside the cluster CIDR)
//   backend i 10.244.i.2 / fd00:244:0:i::2, node 10.244.i.1 / fd00:244:0:i::1 on backend i's link
//   web   10.96.0.10 / fd00:96::10   80/TCP -> 8080, 53/UDP -> 8053, endpoints backend-1..3
//   solo  10.96.0.30 / fd00:96::30   80/TCP -> 8080, 53/UDP -> 8053, endpoint backend-2 only
//   empty 10.96.0.20 / fd00:96::20   80/TCP, 53/UDP, no endpoints
//   ext   10.96.0.40, externalIP 192.0.2.40      80/TCP, 53/UDP, endpoints backend-1..3
//   lb    10.96.0.41, LoadBalancer 198.51.100.41 80/TCP, 53/UDP, endpoint backend-3
//   itp   10.96.0.42, internalTrafficPolicy Local: backend-1 on this node, backend-2/3 on "other-node"
//   itp-remote 10.96.0.43, internalTrafficPolicy Local: backend-2/3 on "other-node" only
// A decoy responder on the node listens on every port the rows use: the Service ranges are
// routed to the node (SERVICE_CIDRS, local routes), so a packet kproxy neither DNATs nor
// rejects reaches it instead of failing (the node's own closed ports would look just like
// kproxy's reject). TCP then shows "node-decoy kept"; UDP shows "timeout", the decoy's answer
// coming from the node's link address, which the client's connected socket ignores. The
// tracer is told the same routing (localCidrs), so it walks the input hook as the kernel does.
import test, { type ExecutionContext } from 'ava';
import { readdir, readFile } from 'node:fs/promises';
import { isIPv6 } from 'node:net';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { CLUSTER_CIDRS, SERVICE_CIDRS, type FlowResult, type Topology } from '../../ts/demo/topology.js';
import type { TraceResult } from '../../ts/proxier/types.js';
import type { KubeObject } from '../../ts/sources/types.js';
import { waitWhileRunning } from '../helpers/agent.js';
import { tracedCluster, verdictCell, type TracedCluster } from '../helpers/traced-cluster.js';
import { clusterFor, WEB_IP, WEB_IP6, type Cluster } from './cluster.js';
import { destination, describeFlow, runFlow, senderAddress, type Flow, type Proto } from './flows.js';
import { endpointSlice, NODE_NAME, service } from './manifests.js';

const SOLO_IP = '10.96.0.30';
const SOLO_IP6 = 'fd00:96::30';
const EXT_CIP = '10.96.0.40';
const EXT_IP = '192.0.2.40';
const LB_CIP = '10.96.0.41';
const LB_IP = '198.51.100.41';
const ITP_IP = '10.96.0.42';
const ITP_REMOTE_IP = '10.96.0.43';
const EMPTY_IP = '10.96.0.20';
const EMPTY_IP6 = 'fd00:96::20';
/** Where the backends' responders listen (topology defaults): a DNAT elsewhere could not answer. */
const RESPONDER_PORT: Record<Proto, number> = { tcp: 8080, udp: 8053 };

type Group = 'answered' | 'no endpoints' | 'undefined port' | 'dropped';
/** What a group samples: the tracer's verdict for each of its rows must be of this kind. */
const KIND: Record<Group, 'DNAT' | 'REJECT' | 'DROP'> = { answered: 'DNAT', 'no endpoints': 'REJECT', 'undefined port': 'REJECT', dropped: 'DROP' };

/** count: new connections (or sockets) tried; 40 makes each of 3 backends show up (miss odds 3 * (2/3)^40). */
type Row = [group: Group, name: string, from: string, to: string, proto: Proto, count: number];

const FLOWS: Row[] = [
  ['answered', 'ClusterIP TCP from outside the cluster: masqueraded', 'client', `${WEB_IP}:80`, 'tcp', 40],
  ['answered', 'ClusterIP UDP from outside the cluster: masqueraded', 'client', `${WEB_IP}:53`, 'udp', 40],
  ['answered', 'IPv6 ClusterIP TCP from outside: masqueraded', 'client', `[${WEB_IP6}]:80`, 'tcp', 40],
  ['answered', 'pod to pod: source kept; hairpin to itself: masqueraded', 'backend-1', `${WEB_IP}:80`, 'tcp', 40],
  ['answered', 'IPv6 UDP pod to pod kept, hairpin masqueraded', 'backend-3', `[${WEB_IP6}]:53`, 'udp', 40],
  ['answered', 'UDP pod to pod: source kept', 'backend-1', `${SOLO_IP}:53`, 'udp', 5],
  ['answered', 'hairpin only: the sole endpoint reaching itself', 'backend-2', `${SOLO_IP}:80`, 'tcp', 5],
  ['answered', 'IPv6 UDP hairpin only', 'backend-2', `[${SOLO_IP6}]:53`, 'udp', 5],
  ['answered', 'externalIP from outside: masqueraded (eTP Cluster)', 'client', `${EXT_IP}:80`, 'tcp', 40],
  ['answered', 'externalIP from a pod: masqueraded too', 'backend-1', `${EXT_IP}:53`, 'udp', 20],
  ['answered', 'LoadBalancer ingress IP from outside: masqueraded', 'client', `${LB_IP}:80`, 'tcp', 5],
  ['answered', 'internalTrafficPolicy Local: only the endpoint on this node', 'client', `${ITP_IP}:80`, 'tcp', 20],
  ['dropped', 'internalTrafficPolicy Local with no local endpoint: dropped, not rejected', 'client', `${ITP_REMOTE_IP}:80`, 'tcp', 2],
  ['no endpoints', 'no endpoints, TCP: reset at once', 'client', `${EMPTY_IP}:80`, 'tcp', 3],
  ['no endpoints', 'no endpoints, UDP: ICMP port unreachable', 'client', `${EMPTY_IP}:53`, 'udp', 3],
  ['no endpoints', 'IPv6 no endpoints, TCP from a pod', 'backend-2', `[${EMPTY_IP6}]:80`, 'tcp', 3],
  ['no endpoints', 'IPv6 no endpoints, UDP', 'client', `[${EMPTY_IP6}]:53`, 'udp', 3],
  ['undefined port', 'undefined port on a ClusterIP, TCP: reset at once', 'client', `${WEB_IP}:81`, 'tcp', 3],
  ['undefined port', 'IPv6 undefined port, TCP from a pod', 'backend-1', `[${WEB_IP6}]:81`, 'tcp', 3],
  ['undefined port', 'undefined port on a ClusterIP, UDP', 'client', `${WEB_IP}:81`, 'udp', 3],
  ['undefined port', 'wrong protocol on a ClusterIP port (UDP to a TCP port)', 'client', `${WEB_IP}:80`, 'udp', 3],
];

/** Ports the decoy listens on: every port a row sends to. */
const DECOY_PORTS = [...new Set(FLOWS.map(([, , , to]) => destination(to).port))];
/** The first SYN retransmit comes 1 s after the first SYN: a batch of rejected TCP attempts faster
 * than that was answered at the first SYN every time (and a timeout would show as "timeout"). */
const FAST_MS = 1000;

const EXTRA = {
  'solo.yaml': [
    service('solo', [SOLO_IP, SOLO_IP6]),
    endpointSlice('solo', 'IPv4', ['10.244.2.2']),
    endpointSlice('solo', 'IPv6', ['fd00:244:0:2::2']),
  ],
  'empty.yaml': [service('empty', [EMPTY_IP, EMPTY_IP6]), endpointSlice('empty', 'IPv4', []), endpointSlice('empty', 'IPv6', [])],
  'ext.yaml': [
    (() => {
      const s = service('ext', [EXT_CIP]);
      (s.spec as Record<string, unknown>).externalIPs = [EXT_IP];
      return s;
    })(),
    endpointSlice('ext', 'IPv4', ['10.244.1.2', '10.244.2.2', '10.244.3.2']),
  ],
  'itp.yaml': [
    withSpec(service('itp', [ITP_IP]), { internalTrafficPolicy: 'Local' }),
    onNodes(endpointSlice('itp', 'IPv4', ['10.244.1.2', '10.244.2.2', '10.244.3.2']), [NODE_NAME, 'other-node', 'other-node']),
    withSpec(service('itp-remote', [ITP_REMOTE_IP]), { internalTrafficPolicy: 'Local' }),
    onNodes(endpointSlice('itp-remote', 'IPv4', ['10.244.2.2', '10.244.3.2']), ['other-node', 'other-node']),
  ],
  'lb.yaml': [
    (() => {
      const s = service('lb', [LB_CIP]);
      Object.assign(s.spec, { type: 'LoadBalancer', allocateLoadBalancerNodePorts: false });
      return { ...s, status: { loadBalancer: { ingress: [{ ip: LB_IP }] } } };
    })(),
    endpointSlice('lb', 'IPv4', ['10.244.3.2']),
  ],
};

/** The slice with its endpoints placed on these nodes, in order. */
function onNodes<T extends { endpoints: Array<{ nodeName?: string }> }>(slice: T, nodes: string[]): T {
  slice.endpoints.forEach((e, i) => (e.nodeName = nodes[i]));
  return slice;
}

function withSpec<T extends { spec?: object }>(obj: T, extra: Record<string, unknown>): T {
  Object.assign(obj.spec ?? {}, extra);
  return obj;
}

/** The tracer over exactly the objects the agent reads: its manifests directory, parsed again. */
async function tracerFor(c: Cluster): Promise<TracedCluster> {
  const objects: KubeObject[] = [];
  for (const file of (await readdir(c.manifests.dir)).sort()) {
    const docs = parseAllDocuments(await readFile(join(c.manifests.dir, file), 'utf8'));
    for (const doc of docs) if (doc.contents) objects.push(doc.toJS() as KubeObject);
  }
  return tracedCluster({ objects, nodeName: NODE_NAME, clusterCIDRs: CLUSTER_CIDRS });
}

/** The name the responder at `ip` answers with; anything else is named by its address. */
function nameOf(topo: Topology, ip: string): string {
  return topo.backends.find((b) => b.v4 === ip || b.v6 === ip)?.name ?? ip;
}

/**
 * What the tracer predicts, in what a test can observe: "<backend> masqueraded|kept" per
 * endpoint, or the error a client sees ("refused" for both a TCP reset and an ICMP unreachable).
 */
function predicted(topo: Topology, flow: Flow, trace: TraceResult): string[] {
  const seen = trace.outcomes.map((o) => {
    switch (o.verdict) {
      case 'DNAT': {
        const { host, port } = destination(o.endpoint!);
        const name = port === RESPONDER_PORT[flow.proto] ? nameOf(topo, host) : `${o.endpoint} (nothing listens)`;
        return `${name} ${o.masquerade ? 'masqueraded' : 'kept'}`;
      }
      case 'REJECT': return 'refused';
      case 'DROP': return 'timeout';
      // Untouched: the node's own stack delivers it to the decoy (whose UDP answers are lost, see above).
      default: return flow.proto === 'tcp' ? 'node-decoy kept' : 'timeout';
    }
  });
  return [...new Set(seen)].sort();
}

/** What the packets did, in the same words. */
function observed(topo: Topology, flow: Flow, results: FlowResult[]): string[] {
  const v6 = isIPv6(destination(flow.to).host);
  const seen = results.map((r) => {
    if (!r.ok) return r.error;
    const backend = topo.backends.find((b) => b.name === r.backend);
    const how = r.source === (v6 ? backend?.nodeV6 : backend?.nodeV4) ? 'masqueraded'
      : r.source === senderAddress(topo, flow.from, v6) ? 'kept' : `seen from ${r.source}`;
    return `${r.backend} ${how}`;
  });
  return [...new Set(seen)].sort();
}

/** Starts the decoy on the node and waits for it. */
async function startDecoy(c: Cluster): Promise<void> {
  const args = ['ts/demo/responder.mjs', '--name', 'node-decoy', ...DECOY_PORTS.flatMap((p) => ['--tcp', String(p), '--udp', String(p)])];
  const decoy = c.topo.spawnIn(c.topo.node, 'node', args);
  await waitWhileRunning(c.agent, 'the decoy on the node', async () => {
    if (decoy.exitCode !== null) throw new Error(`the decoy exited: ${decoy.output()}`);
    return /^ready$/m.test(decoy.output());
  }, 10_000);
}

/**
 * Runs every row and compares all of them at once, so a failure lists each row where the
 * kernel and the tracer differ (with the tracer's path), not just the first.
 */
async function checkRows(t: ExecutionContext, rows: Row[]): Promise<void> {
  const c = await clusterFor(t, { name: 'tracer', extra: EXTRA });
  const tracer = await tracerFor(c);
  t.deepEqual(tracer.invalid, [], 'the tracer took every manifest');
  await startDecoy(c);
  const kernel: Record<string, string[]> = {};
  const traced: Record<string, string[]> = {};
  const paths: Record<string, string> = {};
  const wrongKind: string[] = [];
  for (const [group, name, from, to, proto, count] of rows) {
    const flow: Flow = { from, to, proto, expect: [], count, timeoutMs: 3000 };
    const { host, port } = destination(to);
    const trace = tracer.trace(senderAddress(c.topo, from, isIPv6(host)), host, port, proto === 'tcp' ? 'TCP' : 'UDP', false, SERVICE_CIDRS);
    const key = `${name}: ${describeFlow(flow)}`;
    if (!trace.outcomes.length || trace.outcomes.some((o) => o.verdict !== KIND[group])) wrongKind.push(`${key}: ${verdictCell(trace)}`);
    paths[key] = `${key}\n  tracer: ${verdictCell(trace)}\n  ${trace.path.join('\n  ')}`;

    const started = Date.now();
    const results = await runFlow(c.topo, flow);
    const elapsed = Date.now() - started;
    kernel[key] = observed(c.topo, flow, results);
    traced[key] = predicted(c.topo, flow, trace);
    // A TCP reset answers the first SYN: the whole batch is over before any retransmit.
    if (trace.outcomes.some((o) => o.rejectWith === 'tcp reset')) {
      kernel[key].push(elapsed < FAST_MS ? 'at once' : `after ${elapsed} ms`);
      traced[key].push('at once');
    }
  }
  t.deepEqual(wrongKind, [], 'rows whose tracer verdict is not the kind their group samples');
  const differing = Object.keys(kernel).filter((k) => JSON.stringify(kernel[k]) !== JSON.stringify(traced[k]));
  t.deepEqual(kernel, traced, `kernel (-) vs tracer (+); the tracer's paths where they differ:\n${differing.map((k) => paths[k]).join('\n')}`);
}

const rowsOf = (group: Group) => FLOWS.filter((r) => r[0] === group);

test.serial('answered rows: the backends that answer and the sources they see are what the tracer predicts', async (t) => {
  await checkRows(t, rowsOf('answered'));
});

test.serial('no-endpoint rows: TCP is reset at once and UDP refused, as the tracer predicts', async (t) => {
  await checkRows(t, rowsOf('no endpoints'));
});

test.serial('undefined-port rows: undefined ports and wrong protocols on a ClusterIP are rejected, as the tracer predicts', async (t) => {
  await checkRows(t, rowsOf('undefined port'));
});

test.serial('dropped rows: a policy that leaves no endpoint drops silently, as the tracer predicts', async (t) => {
  await checkRows(t, rowsOf('dropped'));
});
