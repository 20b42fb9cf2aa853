// Smoke test of the test bed itself (topology, responder, client), with no agent involved:
// a small hand-written nft ruleset in the node namespace stands in for kproxy.
import test from 'ava';
import { createTopology, listNamespaces } from '../../ts/demo/topology.js';
import { ALL_BACKENDS, checkFlows, tally, topologyFor, type Flow } from './flows.js';

// Address plan (see ts/demo/topology.ts): client 192.168.100.2 / fd00:100::2,
// backend i 10.244.i.2 / fd00:244:0:i::2, node 10.244.i.1 / fd00:244:0:i::1 on backend i's link.
const VIP = '10.96.0.10';
const VIP6 = 'fd00:96::10';
const DROPPED_VIP = '10.96.0.11';
const UNUSED_VIP = '10.96.0.12';
const BACKENDS = ALL_BACKENDS(3);

// DNAT VIP:80 -> backends:8080 (TCP) and VIP:53 -> backends:8053 (UDP), masquerade what comes
// from outside 10.244.0.0/16 and hairpin flows (marked in the endpoint chain), drop
// DROPPED_VIP: the shape of what kproxy programs, in miniature.
const endpointChains = (family: 'ip' | 'ip6', addr: (i: number) => string) =>
  [1, 2, 3].map((i) => {
    const hairpin = `${family} saddr ${addr(i).replace(/[[\]]/g, '')} meta mark set 0x4000`;
    return `
  chain tcp-ep${i} { ${hairpin}; meta l4proto tcp dnat to ${addr(i)}:8080; }
  chain udp-ep${i} { ${hairpin}; meta l4proto udp dnat to ${addr(i)}:8053; }`;
  }).join('');
const vmap = (proto: string) => `numgen random mod 3 vmap { 0 : goto ${proto}-ep1, 1 : goto ${proto}-ep2, 2 : goto ${proto}-ep3 }`;
const HAND_WRITTEN_RULESET = `
table ip smoke {${endpointChains('ip', (i) => `10.244.${i}.2`)}
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr ${VIP} tcp dport 80 ${vmap('tcp')}
    ip daddr ${VIP} udp dport 53 ${vmap('udp')}
  }
  chain input {
    type filter hook input priority filter; policy accept;
    ip daddr ${DROPPED_VIP} drop
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ct status dnat ip saddr != 10.244.0.0/16 masquerade
    meta mark 0x4000 masquerade
  }
}
table ip6 smoke {${endpointChains('ip6', (i) => `[fd00:244:0:${i}::2]`)}
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip6 daddr ${VIP6} tcp dport 80 ${vmap('tcp')}
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ct status dnat ip6 saddr != fd00:244::/48 masquerade
    meta mark 0x4000 masquerade
  }
}
`;

test.serial('direct flows reach each backend with the source kept', async (t) => {
  const topo = await topologyFor(t, { backends: 3, name: 'smoke' });
  t.is((await listNamespaces(topo.prefix)).length, 5);
  await checkFlows(t, topo, [
    { from: 'client', to: '10.244.1.2:8080', proto: 'tcp', expect: ['backend-1'], source: 'kept' },
    { from: 'client', to: '[fd00:244:0:2::2]:8080', proto: 'tcp', expect: ['backend-2'], source: 'kept' },
    { from: 'client', to: '10.244.3.2:8053', proto: 'udp', expect: ['backend-3'], source: 'kept' },
    { from: 'client', to: '[fd00:244:0:3::2]:8053', proto: 'udp', expect: ['backend-3'], source: 'kept' },
    { from: 'backend-1', to: '10.244.2.2:8080', proto: 'tcp', expect: ['backend-2'], source: 'kept' },
    { from: 'client', to: '10.244.1.2:9999', proto: 'tcp', expect: 'refused' },
    { from: 'client', to: '10.244.1.2:9999', proto: 'udp', expect: 'refused' },
    { from: 'client', to: '10.97.0.1:80', proto: 'tcp', expect: 'unreachable' }, // no route on the node
  ]);
});

test.serial('a hand-written DNAT ruleset spreads, masquerades and drops', async (t) => {
  const topo = await topologyFor(t, { backends: 3, name: 'smoke' });
  await topo.exec(topo.node, ['nft', '-f', '-'], { input: HAND_WRITTEN_RULESET });
  const flows: Flow[] = [
    { from: 'client', to: `${VIP}:80`, proto: 'tcp', expect: BACKENDS, source: 'masqueraded', count: 20 },
    { from: 'client', to: `${VIP}:53`, proto: 'udp', expect: BACKENDS, source: 'masqueraded', count: 10 },
    { from: 'client', to: `[${VIP6}]:80`, proto: 'tcp', expect: BACKENDS, source: 'masqueraded', count: 10 },
    { from: 'backend-1', to: `${VIP}:80`, proto: 'tcp', expect: BACKENDS, count: 20 },
    { from: 'client', to: `${DROPPED_VIP}:80`, proto: 'tcp', expect: 'timeout', timeoutMs: 500 },
    // The node owns the Service range: an address nothing DNATs meets its closed ports.
    { from: 'client', to: `${UNUSED_VIP}:80`, proto: 'tcp', expect: 'refused' },
    { from: 'client', to: `${UNUSED_VIP}:53`, proto: 'udp', expect: 'refused' },
    { from: 'client', to: '[fd00:96::12]:80', proto: 'tcp', expect: 'refused' },
    { from: 'client', to: '[fd00:96::12]:53', proto: 'udp', expect: 'refused' },
  ];
  await checkFlows(t, topo, flows);

  const spread = tally(await topo.tcpRequests(topo.client, VIP, 80, { count: 300 }));
  t.deepEqual(Object.keys(spread).sort(), BACKENDS, JSON.stringify(spread));
  for (const backend of BACKENDS) t.true(spread[backend] >= 45, `${backend} got ${spread[backend]} of 300`);
});

test.serial('a held connection keeps echoing', async (t) => {
  const topo = await topologyFor(t, { backends: 1, name: 'smoke' });
  const held = await topo.holdTcp(topo.client, '10.244.1.2', 8080);
  t.like(held.greeting, { ok: true, backend: 'backend-1', source: '192.168.100.2' });
  t.is(await held.echo('one'), 'one');
  t.is(await held.echo('two'), 'two');
  await held.close();
});

test.serial('destroy removes every namespace and child, and can be called twice', async (t) => {
  const topo = await createTopology({ backends: 2, name: 'smoke' });
  const sleeper = topo.spawnIn(topo.client, 'sleep', ['600']);
  t.is((await listNamespaces(topo.prefix)).length, 4);
  await topo.destroy();
  await topo.destroy();
  t.deepEqual(await listNamespaces(topo.prefix), []);
  t.not(await sleeper.exited, 0);
});

test.serial('a failed build cleans up after itself', async (t) => {
  // The same TCP port twice makes the responder fail to bind (EADDRINUSE).
  const err = await t.throwsAsync(createTopology({ backends: 1, name: 'smokefail', ports: { tcp: [8080, 8080] } }));
  t.regex(err!.message, /responder exited/);
  const stale = await listNamespaces('kp-smokefail-');
  t.deepEqual(stale, []);
});
