// Manifest changes seen through packets: endpoints removed, Service deleted, no endpoints.
//
// Address plan: client 192.168.100.2 / fd00:100::2; backend i 10.244.i.2 / fd00:244:0:i::2
//   web   10.96.0.10 / fd00:96::10   80/TCP -> 8080, 53/UDP -> 8053, endpoints backend-1..3
//   empty 10.96.0.20 / fd00:96::20   80/TCP -> 8080, 53/UDP -> 8053, no endpoints
// The node routes 10.96.0.0/16 and fd00:96::/64 to itself (SERVICE_CIDRS in topology.ts), so a
// ClusterIP that nothing DNATs any more meets the node's closed ports: refused, at once.
import test from 'ava';
import { waitForServiceIPGone, waitWhileRunning } from '../helpers/agent.js';
import { clusterFor, WEB_IP, WEB_IP6 } from './cluster.js';
import { ALL_BACKENDS, checkFlows, tally, type Flow } from './flows.js';
import { endpointSlice, service } from './manifests.js';

const EMPTY_IP = '10.96.0.20';
const EMPTY_IP6 = 'fd00:96::20';
// Short client timeouts: a rejection shows up as refused; only a silent drop would become a timeout.
// Not shorter than ~1 s though: an ICMP reject that races the client's own connect() is dropped
// by its kernel (TcpExtLockDroppedIcmps), and only the SYN retransmit a second later hears it.
const FAST = 3000;

test.serial('removing an endpoint stops new connections from reaching it', async (t) => {
  const { topo, agent, setWebEndpoints } = await clusterFor(t, { name: 'epremove' });
  await setWebEndpoints([1, 2]);
  // Converged when a batch large enough to hit backend-3 (odds of a miss ~ (2/3)^30) no longer does.
  await waitWhileRunning(agent, 'backend-3 to stop answering', async () => {
    const counts = tally(await topo.tcpRequests(topo.client, WEB_IP, 80, { count: 30 }));
    return !counts['backend-3'];
  });
  const flows: Flow[] = [
    { from: 'client', to: `${WEB_IP}:80`, proto: 'tcp', expect: ['backend-1', 'backend-2'], count: 60 },
    { from: 'client', to: `${WEB_IP}:53`, proto: 'udp', expect: ['backend-1', 'backend-2'], count: 60 },
    { from: 'client', to: `[${WEB_IP6}]:80`, proto: 'tcp', expect: ['backend-1', 'backend-2'], count: 60 },
    { from: 'backend-3', to: `${WEB_IP}:80`, proto: 'tcp', expect: ['backend-1', 'backend-2'], count: 30 },
  ];
  await checkFlows(t, topo, flows);
  // Both remaining endpoints still share the load.
  t.deepEqual(Object.keys(tally(await topo.tcpRequests(topo.client, WEB_IP, 80, { count: 60 }))).sort(), ['backend-1', 'backend-2']);
});

test.serial('deleting the Service makes its connections fail fast', async (t) => {
  const { topo, agent, manifests } = await clusterFor(t, { name: 'svcdelete' });
  await checkFlows(t, topo, [
    { from: 'client', to: `${WEB_IP}:80`, proto: 'tcp', expect: ALL_BACKENDS(3), count: 10 },
  ]);
  await manifests.remove('web.yaml');
  await waitForServiceIPGone(topo, agent, WEB_IP);
  await waitForServiceIPGone(topo, agent, WEB_IP6);
  const flows: Flow[] = [
    { from: 'client', to: `${WEB_IP}:80`, proto: 'tcp', expect: 'refused', count: 5, timeoutMs: FAST },
    { from: 'client', to: `${WEB_IP}:53`, proto: 'udp', expect: 'refused', count: 5, timeoutMs: FAST },
    { from: 'client', to: `[${WEB_IP6}]:80`, proto: 'tcp', expect: 'refused', count: 5, timeoutMs: FAST },
    { from: 'client', to: `[${WEB_IP6}]:53`, proto: 'udp', expect: 'refused', count: 5, timeoutMs: FAST },
    { from: 'backend-1', to: `${WEB_IP}:80`, proto: 'tcp', expect: 'refused', count: 5, timeoutMs: FAST },
  ];
  await checkFlows(t, topo, flows);
});

test.serial('a Service with no endpoints rejects at once', async (t) => {
  // empty.yaml is there from the start, so the first sync (which programmed web) has it too.
  const { topo, agent } = await clusterFor(t, {
    name: 'noeps',
    extra: {
      'empty.yaml': [
        service('empty', [EMPTY_IP, EMPTY_IP6]),
        endpointSlice('empty', 'IPv4', []),
        endpointSlice('empty', 'IPv6', []),
      ],
    },
  });
  // A decoy listening on the node: if kproxy did not reject, the node's own stack would answer
  // (the Service range is routed to the node), so only kproxy's reject yields "refused".
  const decoy = topo.spawnIn(topo.node, 'node', ['ts/demo/responder.mjs', '--name', 'node-decoy', '--tcp', '80', '--udp', '53']);
  await waitWhileRunning(agent, 'the decoy on the node', async () => /^ready$/m.test(decoy.output()), 10_000);
  const flows: Flow[] = [
    { from: 'client', to: `${EMPTY_IP}:80`, proto: 'tcp', expect: 'refused', count: 5, timeoutMs: FAST },
    { from: 'client', to: `${EMPTY_IP}:53`, proto: 'udp', expect: 'refused', count: 5, timeoutMs: FAST },
    { from: 'client', to: `[${EMPTY_IP6}]:80`, proto: 'tcp', expect: 'refused', count: 5, timeoutMs: FAST },
    { from: 'client', to: `[${EMPTY_IP6}]:53`, proto: 'udp', expect: 'refused', count: 5, timeoutMs: FAST },
    { from: 'backend-2', to: `${EMPTY_IP}:80`, proto: 'tcp', expect: 'refused', count: 5, timeoutMs: FAST },
    // The neighbour with endpoints is unaffected.
    { from: 'client', to: `${WEB_IP}:80`, proto: 'tcp', expect: ALL_BACKENDS(3), count: 10 },
  ];
  await checkFlows(t, topo, flows);
});
