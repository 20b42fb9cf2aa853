#!/usr/bin/env node
// One long-lived UDP flow for the netns tests, run inside a namespace with
// `ip netns exec <ns> node udp-pinger.mjs '<json spec>'`: a socket bound to a FIXED source
// port and connected to host:port sends a datagram every intervalMs until it is killed, so
// the 5-tuple (and its conntrack entry, refreshed by every datagram) never changes.
//
// spec: { host, port, sourcePort, intervalMs? }
//   -> one JSON line per event: {"reply":"<backend> from <peer>"} or {"error":"refused"|...}
//      (an ICMP error on the connected socket), after {"ready":true} once bound.
import dgram from 'node:dgram';
import net from 'node:net';

const spec = JSON.parse(process.argv[2] ?? '{}');
const emit = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);
// ipv6Only: an IPv4 and an IPv6 pinger share the source port number.
const v6 = net.isIPv6(spec.host);
const socket = dgram.createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: v6 });
let ready = false;
socket.on('message', (msg) => emit({ reply: msg.toString('utf8').trim() }));
// Before the flow is up (bind, connect) an error ends the pinger; after, ECONNREFUSED and
// the like are reported and the flow goes on with the next datagram.
socket.on('error', (err) => {
  emit({ error: err.code === 'ECONNREFUSED' ? 'refused' : err.code ?? String(err.message) });
  if (!ready) process.exit(1);
});
socket.bind(spec.sourcePort, () => {
  socket.connect(spec.port, spec.host, () => {
    ready = true;
    emit({ ready: true });
    const send = () => socket.send('ping', (err) => err && emit({ error: err.code ?? String(err.message) }));
    send();
    setInterval(send, spec.intervalMs ?? 200);
  });
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
