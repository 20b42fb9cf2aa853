#!/usr/bin/env node
// A tiny backend for the demo and the netns tests. Plain .mjs so it starts fast (no tsx).
//
//   node responder.mjs --name backend-1 --tcp 8080 [--tcp N ...] --udp 8053 [--udp N ...]
//
// Every reply names the backend and the peer address it saw, so a test can tell
// which endpoint a flow reached and whether its source was masqueraded:
//   TCP, a request ending in a blank line (HTTP-ish, curl works)
//                          -> "HTTP/1.0 200 OK ... <name> from <peer>\n", then close
//   TCP, first line "ECHO" -> "<name> from <peer>\n", then echoes every line (held flows)
//   UDP, any datagram      -> "<name> from <peer>"
// Listens on IPv4 and IPv6 separately (ipv6Only), so peers never show up as ::ffff:a.b.c.d.
// Prints "ready" on stdout once every socket is bound.
import net from 'node:net';
import dgram from 'node:dgram';

function parseArgs(argv) {
  const opts = { name: 'backend', tcp: [], udp: [] };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`missing value for ${flag}`);
    if (flag === '--name') opts.name = value;
    else if (flag === '--tcp') opts.tcp.push(Number(value));
    else if (flag === '--udp') opts.udp.push(Number(value));
    else throw new Error(`unknown flag ${flag}`);
  }
  return opts;
}

const plainAddress = (addr) => (addr?.startsWith('::ffff:') ? addr.slice(7) : addr ?? '?');

function serveTcp(name, port, host) {
  const server = net.createServer((socket) => {
    const greeting = `${name} from ${plainAddress(socket.remoteAddress)}`;
    let pending = '';
    let echoing = false;
    let requested = false;
    socket.setEncoding('utf8');
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk) => {
      pending += chunk;
      let newline;
      while ((newline = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, newline).replace(/\r$/, '');
        pending = pending.slice(newline + 1);
        if (echoing) {
          socket.write(`${line}\n`);
        } else if (line === 'ECHO' && !requested) {
          echoing = true;
          socket.write(`${greeting}\n`);
        } else if (line !== '') {
          requested = true; // request line or header: answer at the blank line, so no unread data turns close into RST
        } else if (requested) {
          const body = `${greeting}\n`;
          socket.end(`HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
          return;
        }
      }
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, ipv6Only: host === '::' }, () => resolve(server));
  });
}

function serveUdp(name, port, type) {
  const socket = dgram.createSocket({ type, ipv6Only: type === 'udp6' });
  socket.on('message', (_msg, peer) => {
    socket.send(`${name} from ${plainAddress(peer.address)}`, peer.port, peer.address);
  });
  socket.on('error', (err) => console.error(`udp ${port}: ${err.message}`));
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, type === 'udp6' ? '::' : '0.0.0.0', () => resolve(socket));
  });
}

const opts = parseArgs(process.argv.slice(2));
await Promise.all([
  ...opts.tcp.flatMap((port) => [serveTcp(opts.name, port, '0.0.0.0'), serveTcp(opts.name, port, '::')]),
  ...opts.udp.flatMap((port) => [serveUdp(opts.name, port, 'udp4'), serveUdp(opts.name, port, 'udp6')]),
]);
process.stdout.write('ready\n');
// Exit quietly when the topology tears down.
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
