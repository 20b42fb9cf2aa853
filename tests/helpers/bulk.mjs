#!/usr/bin/env node
// A bulk TCP flow for the proxy tests, byte-exact and with a half-close:
//   node bulk.mjs serve PORT          sink: hashes what it reads until EOF, then answers
//                                     "<bytes> <sha256>\n" on the still-open direction and ends
//   node bulk.mjs send HOST PORT MB   sends MB MiB of deterministic bytes, half-closes, and prints
//                                     {"sent":N,"hash":H,"reply":"..."} (the reply read after the half-close)
import net from 'node:net';
import { createHash } from 'node:crypto';

const [mode, ...args] = process.argv.slice(2);

/** Chunk i of the stream: the same bytes on every run. */
function chunk(i) {
  const b = Buffer.alloc(1 << 20);
  let x = (i * 2654435761) >>> 0;
  for (let k = 0; k < b.length; k += 4) {
    x = (x * 1664525 + 1013904223) >>> 0;
    b.writeUInt32LE(x, k);
  }
  return b;
}

if (mode === 'serve') {
  const server = net.createServer((s) => {
    const h = createHash('sha256');
    let n = 0;
    s.on('data', (d) => {
      n += d.length;
      h.update(d);
    });
    s.on('end', () => s.end(`${n} ${h.digest('hex')}\n`));
    s.on('error', () => s.destroy());
  });
  server.listen({ port: Number(args[0]), host: '::', ipv6Only: false }, () => console.log('ready'));
} else if (mode === 'send') {
  const [host, port, mb] = [args[0], Number(args[1]), Number(args[2])];
  const h = createHash('sha256');
  const s = net.connect({ host, port });
  // A half-close that never reaches the backend leaves both sides waiting: give up, say so.
  setTimeout(() => {
    console.log(JSON.stringify({ error: 'no answer after the half-close', sent }));
    process.exit(1);
  }, 120_000).unref();
  let reply = '';
  let sent = 0;
  s.setEncoding('utf8');
  s.on('data', (d) => (reply += d));
  s.on('error', (e) => {
    console.log(JSON.stringify({ error: e.code ?? e.message, sent }));
    process.exit(1);
  });
  s.on('end', () => console.log(JSON.stringify({ sent, hash: h.digest('hex'), reply: reply.trim() })));
  s.on('connect', async () => {
    for (let i = 0; i < mb; i++) {
      const c = chunk(i);
      h.update(c);
      sent += c.length;
      if (!s.write(c)) await new Promise((r) => s.once('drain', r));
    }
    s.end(); // the half-close: the answer comes after it
  });
} else {
  console.error('usage: bulk.mjs serve PORT | send HOST PORT MB');
  process.exit(2);
}
