#!/usr/bin/env node
// Client side of the demo and the netns tests, run inside a namespace with
// `ip netns exec <ns> node client.mjs '<json spec>'`. Plain .mjs so it starts fast.
//
// spec: { mode: 'tcp' | 'udp', host, port, count?, timeoutMs?, intervalMs?, attempts? }
//   -> prints one JSON line {"results":[{ok:true, body, retried?} | {ok:false, error}, ...]}
//   attempts (UDP only, default 1): sends per request on the same socket, each waiting
//   timeoutMs, as a resolver retries; an answer to a resend carries `retried`.
// spec: { mode: 'hold', host, port, timeoutMs? }
//   -> opens a TCP connection in the responder's ECHO mode and keeps it open:
//      prints {"event":"open","body":...}, then echoes each stdin line through the
//      connection, printing {"event":"echo","line":...}; {"event":"error"|"closed"} at the end.
import net from 'node:net';
import dgram from 'node:dgram';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';

// errno codes -> the words the tests' flow tables use.
const ERRORS = {
  ECONNREFUSED: 'refused',
  ECONNRESET: 'reset',
  EPIPE: 'reset',
  EHOSTUNREACH: 'unreachable',
  ENETUNREACH: 'unreachable',
  ETIMEDOUT: 'timeout',
};
const describe = (err) => ERRORS[err?.code] ?? err?.code ?? String(err?.message ?? err);

/** One HTTP-ish request on a new connection: {ok: true, body} or {ok: false, error}. */
export function tcpRequest(host, port, timeoutMs) {
  return new Promise((resolve) => {
    let received = '';
    const socket = net.connect({ host, port });
    const finish = (result) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish({ ok: false, error: 'timeout' }), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write('GET / HTTP/1.0\r\n\r\n'));
    socket.on('data', (chunk) => (received += chunk));
    socket.on('error', (err) => finish({ ok: false, error: describe(err) }));
    socket.on('end', () => {
      const split = received.indexOf('\r\n\r\n');
      if (split < 0) finish({ ok: false, error: received ? 'bad-response' : 'closed' });
      else finish({ ok: true, body: received.slice(split + 4).trim() });
    });
  });
}

// A connected UDP socket, so an ICMP port-unreachable comes back as ECONNREFUSED.
function udpRequest(host, port, timeoutMs, attempts = 1) {
  return new Promise((resolve) => {
    const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    let sent = 0;
    let timer;
    const finish = (result) => {
      clearTimeout(timer);
      socket.close();
      resolve(result);
    };
    const send = () => {
      sent++;
      timer = setTimeout(() => (sent < attempts ? send() : finish({ ok: false, error: 'timeout' })), timeoutMs);
      socket.send('hello', (err) => err && finish({ ok: false, error: describe(err) }));
    };
    socket.on('message', (msg) => finish({ ok: true, body: msg.toString('utf8').trim(), ...(sent > 1 ? { retried: sent - 1 } : {}) }));
    socket.on('error', (err) => finish({ ok: false, error: describe(err) }));
    socket.connect(port, host, send);
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function batch(spec) {
  const results = [];
  const timeoutMs = spec.timeoutMs ?? 2000;
  for (let i = 0; i < (spec.count ?? 1); i++) {
    if (i > 0 && spec.intervalMs) await sleep(spec.intervalMs);
    results.push(await (spec.mode === 'udp' ? udpRequest(spec.host, spec.port, timeoutMs, spec.attempts) : tcpRequest(spec.host, spec.port, timeoutMs)));
  }
  process.stdout.write(`${JSON.stringify({ results })}\n`);
}

function hold(spec) {
  const emit = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);
  const socket = net.connect({ host: spec.host, port: spec.port });
  const timer = setTimeout(() => {
    emit({ event: 'error', error: 'timeout' });
    process.exit(1);
  }, spec.timeoutMs ?? 2000);
  let pending = '';
  let opened = false;
  socket.setEncoding('utf8');
  socket.on('connect', () => socket.write('ECHO\n'));
  socket.on('data', (chunk) => {
    pending += chunk;
    let newline;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (!opened) {
        opened = true;
        clearTimeout(timer);
        emit({ event: 'open', body: line });
      } else {
        emit({ event: 'echo', line });
      }
    }
  });
  socket.on('error', (err) => {
    emit({ event: 'error', error: describe(err) });
    process.exit(1);
  });
  socket.on('close', () => {
    emit({ event: 'closed' });
    process.exit(0);
  });
  readline.createInterface({ input: process.stdin }).on('line', (line) => socket.write(`${line}\n`));
  process.stdin.on('end', () => socket.end());
}

// Run as a script (not imported for tcpRequest).
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const spec = JSON.parse(process.argv[2] ?? '{}');
  if (spec.mode === 'hold') hold(spec);
  else if (spec.mode === 'tcp' || spec.mode === 'udp') await batch(spec);
  else {
    console.error(`usage: client.mjs '{"mode":"tcp"|"udp"|"hold","host":...,"port":...}'`);
    process.exit(2);
  }
}
