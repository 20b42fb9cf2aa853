// Node addressing per family: nodeIPs from bindAddress or the Node, NodePort IPs from
// nodePortAddresses against the local interfaces (an injected list), and what the agent
// passes each proxier: on every full sync, and on a partial one only when it changed.
import test from 'ava';
import { nodeHostIPs, NodeAddressResolver, systemAddresses, type LocalAddress } from '../../ts/tracker/node-addressing.js';
import { scriptedAgent } from '../helpers/scripted.js';

const node = (addresses: Array<[string, string]>, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name: 'node-a' },
  status: { addresses: addresses.map(([type, address]) => ({ type, address })) },
  ...extra,
});

const IFACES: LocalAddress[] = [
  { interface: 'lo', address: '127.0.0.1' },
  { interface: 'lo', address: '::1' },
  { interface: 'eth0', address: '10.0.0.5' },
  { interface: 'eth0', address: 'fd00:0:0:0::5' },
  { interface: 'eth0', address: 'fe80::1' },
  { interface: 'eth1', address: '192.168.7.9' },
  { interface: 'cni0', address: '10.244.1.1' },
];

function resolver(nodePortAddresses: string[], bindAddress = '0.0.0.0', addresses: LocalAddress[] = IFACES) {
  const logs: string[] = [];
  const r = new NodeAddressResolver({ bindAddress, nodePortAddresses, addresses: () => addresses, log: (level, _f, msg) => logs.push(`${level}: ${msg}`) });
  return { r, logs, both: () => Object.fromEntries(r.resolve(['IPv4', 'IPv6'])) };
}

test('nodeHostIPs: InternalIPs before ExternalIPs, one per family, as GetNodeHostIPs', (t) => {
  t.deepEqual(nodeHostIPs(node([['Hostname', 'node-a'], ['ExternalIP', '203.0.113.5'], ['InternalIP', '10.0.0.5'], ['InternalIP', '10.0.0.6']])), ['10.0.0.5']);
  t.deepEqual(nodeHostIPs(node([['ExternalIP', '2001:db8::5'], ['InternalIP', '10.0.0.5']])), ['10.0.0.5', '2001:db8::5']);
  t.deepEqual(nodeHostIPs(node([['InternalIP', 'fd00:0::5'], ['InternalIP', 'bogus'], ['InternalIP', '10.0.0.5']])), ['fd00::5', '10.0.0.5']);
  t.deepEqual(nodeHostIPs(node([['Hostname', 'node-a']])), []);
  t.deepEqual(nodeHostIPs({ metadata: { name: 'node-a' } }), []);
  t.deepEqual(nodeHostIPs(undefined), []);
});

test('primary: the Node\'s IP of each family, where it is a local address', (t) => {
  const { r, both } = resolver(['primary']);
  r.onNode('ADDED', node([['InternalIP', '10.0.0.5'], ['InternalIP', 'fd00::5']]));
  t.deepEqual(both(), {
    IPv4: { nodePortIPs: ['10.0.0.5'], nodeIPs: ['10.0.0.5'] },
    IPv6: { nodePortIPs: ['fd00::5'], nodeIPs: ['fd00::5'] },
  });
  // Upstream turns primary into <ip>/32 and matches it against the interfaces.
  r.onNode('MODIFIED', node([['InternalIP', '10.9.9.9']]));
  t.deepEqual(both(), { IPv4: { nodePortIPs: [], nodeIPs: ['10.9.9.9'] }, IPv6: { nodePortIPs: [], nodeIPs: [] } });
});

test('no Node yet: no node IPs and no primary NodePort IPs, logged once', (t) => {
  const { r, logs, both } = resolver(['primary']);
  t.deepEqual(both(), { IPv4: { nodePortIPs: [], nodeIPs: [] }, IPv6: { nodePortIPs: [], nodeIPs: [] } });
  both();
  t.is(logs.filter((l) => l.includes('No Node object yet')).length, 1);
  // A deletion keeps the last known addresses.
  r.onNode('ADDED', node([['InternalIP', '10.0.0.5']]));
  r.onNode('DELETED', node([]));
  t.deepEqual(r.nodeIPs('IPv4'), ['10.0.0.5']);
});

test('a non-unspecified bindAddress is the node IP of its family only', (t) => {
  const { r, both } = resolver(['primary'], '192.168.7.9');
  r.onNode('ADDED', node([['InternalIP', '10.0.0.5'], ['InternalIP', 'fd00::5']]));
  t.deepEqual(both(), {
    IPv4: { nodePortIPs: ['192.168.7.9'], nodeIPs: ['192.168.7.9'] },
    IPv6: { nodePortIPs: ['fd00::5'], nodeIPs: ['fd00::5'] },
  });
  const v6 = resolver(['primary'], 'fd00:0::5');
  t.deepEqual(v6.r.nodeIPs('IPv6'), ['fd00::5'], 'canonical');
  t.deepEqual(v6.r.nodeIPs('IPv4'), [], 'no Node: nothing for the other family');
  for (const unspecified of ['0.0.0.0', '::']) {
    const u = resolver(['primary'], unspecified);
    u.r.onNode('ADDED', node([['InternalIP', '10.0.0.5']]));
    t.deepEqual(u.r.nodeIPs('IPv4'), ['10.0.0.5'], unspecified);
  }
});

test('primary never yields a loopback node IP', (t) => {
  const { r, both } = resolver(['primary'], '127.0.0.1');
  r.onNode('ADDED', node([['InternalIP', 'fd00::5']]));
  t.deepEqual(both().IPv4, { nodePortIPs: [], nodeIPs: ['127.0.0.1'] });
});

test('CIDRs: the local addresses inside them, per family, loopback skipped and logged once', (t) => {
  const { r, logs, both } = resolver(['10.0.0.0/8', '127.0.0.0/8', 'fd00::/8', '::1/128']);
  r.onNode('ADDED', node([['InternalIP', '10.0.0.5']]));
  t.deepEqual(both(), {
    IPv4: { nodePortIPs: ['10.0.0.5', '10.244.1.1'], nodeIPs: ['10.0.0.5'] },
    IPv6: { nodePortIPs: ['fd00::5'], nodeIPs: [] },
  });
  both();
  t.deepEqual(logs.filter((l) => l.includes('loopback')).length, 2, 'once per loopback address');
});

test('0.0.0.0/0 or ::/0 means all; a family without a CIDR is all too, as upstream, with a warning', (t) => {
  const { logs, both } = resolver(['0.0.0.0/0', 'fd00::/64']);
  t.deepEqual(both(), { IPv4: { nodePortIPs: 'all', nodeIPs: [] }, IPv6: { nodePortIPs: ['fd00::5'], nodeIPs: [] } });
  const v4only = resolver(['192.168.0.0/16']);
  t.deepEqual(v4only.both(), { IPv4: { nodePortIPs: ['192.168.7.9'], nodeIPs: [] }, IPv6: { nodePortIPs: 'all', nodeIPs: [] } });
  v4only.both();
  t.is(v4only.logs.filter((l) => l.startsWith('warn: nodePortAddresses has no IPv6 CIDR')).length, 1);
  t.deepEqual(logs.filter((l) => l.includes('has no')), []);
});

test('the interfaces are listed once per resolve, and the real lister returns addresses', (t) => {
  let calls = 0;
  const r = new NodeAddressResolver({ bindAddress: '0.0.0.0', nodePortAddresses: ['10.0.0.0/8', 'fd00::/8'], addresses: () => (calls++, IFACES) });
  r.resolve(['IPv4', 'IPv6']);
  t.is(calls, 1);
  const real = systemAddresses();
  t.true(real.some((a) => a.address === '127.0.0.1' && a.interface.length > 0), 'os.networkInterfaces() has loopback');
});

test('the agent passes node addressing on full syncs and when it changed', async (t) => {
  const addresses = [...IFACES];
  const s = await scriptedAgent(['--nodeport-addresses', '10.0.0.0/8,fd00::/8'], { localAddresses: () => addresses });
  t.teardown(() => s.agent.stop());
  await s.start(() => s.source.emit('Node', 'ADDED', node([['InternalIP', '10.0.0.5'], ['InternalIP', 'fd00::5']])));
  const v4 = s.proxiers.get('IPv4')!;
  const v6 = s.proxiers.get('IPv6')!;
  t.true(v4.seen[0].full);
  t.deepEqual(v4.seen[0].node, { nodePortIPs: ['10.0.0.5', '10.244.1.1'], nodeIPs: ['10.0.0.5'] });
  t.deepEqual(v6.seen[0].node, { nodePortIPs: ['fd00::5'], nodeIPs: ['fd00::5'] });

  // Unchanged: omitted.
  await s.synced(() => s.source.emit('Service', 'ADDED', { apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'ns', name: 'a' }, spec: { clusterIP: '10.96.0.1', ports: [{ port: 80 }] } }));
  t.false(v4.seen.at(-1)!.full);
  t.false('node' in v4.seen.at(-1)!);
  t.false('node' in v6.seen.at(-1)!);

  // A new local address shows at the next sync (even a partial one), in its family only.
  addresses.push({ interface: 'eth2', address: '10.3.3.3' });
  await s.synced(() => s.source.emit('Service', 'DELETED', { metadata: { namespace: 'ns', name: 'a' } }));
  t.false(v4.seen.at(-1)!.full);
  t.deepEqual(v4.seen.at(-1)!.node?.nodePortIPs, ['10.0.0.5', '10.244.1.1', '10.3.3.3']);
  t.false('node' in v6.seen.at(-1)!);
  await s.synced(() => s.agent.forceFullSync());
  t.true(v6.seen.at(-1)!.full && v6.seen.at(-1)!.node !== undefined, 'a full sync always carries it');

  // The Node's IP changes: a partial sync carries the new nodeIPs.
  await s.synced(() => s.source.emit('Node', 'MODIFIED', node([['InternalIP', '10.3.3.3'], ['InternalIP', 'fd00::5']])));
  t.false(v4.seen.at(-1)!.full);
  t.deepEqual(v4.seen.at(-1)!.node, { nodePortIPs: ['10.0.0.5', '10.244.1.1', '10.3.3.3'], nodeIPs: ['10.3.3.3'] });
  t.false('node' in v6.seen.at(-1)!, 'IPv6 is unchanged');
  t.true(v4.render().includes('10.244.1.1'), 'the proxier got it');
  t.deepEqual(s.agent.nodeAddressing('IPv4'), v4.seen.at(-1)!.node, 'the agent tells others what it last resolved');
});

test('the agent with primary and no Node: empty addressing until the Node arrives', async (t) => {
  const s = await scriptedAgent([], { localAddresses: () => IFACES, families: ['IPv4'] });
  t.teardown(() => s.agent.stop());
  await s.start();
  const v4 = s.proxiers.get('IPv4')!;
  t.deepEqual(v4.seen[0].node, { nodePortIPs: [], nodeIPs: [] });
  await s.synced(() => s.source.emit('Node', 'ADDED', node([['InternalIP', '10.0.0.5']])));
  t.deepEqual(v4.seen.at(-1)!.node, { nodePortIPs: ['10.0.0.5'], nodeIPs: ['10.0.0.5'] });
});
