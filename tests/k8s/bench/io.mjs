#!/usr/bin/env node
// The k8s bench's hands inside a namespace: one long-lived process, driven by JSON lines
// on stdin, answering one JSON line per command on stdout (in order of completion, with
// the command's id). Plain .mjs, so it starts fast and needs no build.
//
//   {id, op:'api', server, token, requests:[{method, path, body?}], concurrency?}
//       -> {id, ok, failed, firstError?, at}: every request sent; `at` when the last answered
//   {id, op:'until', host, port, want, timeoutMs?, pauseMs?}
//       -> {id, at, tries} once a new TCP connection is answered by backend `want` (tries
//          pauseMs apart, default 1: the resolution, and what keeps the prober off the CPU)
//          (at: wall-clock ms, performance.timeOrigin-based, comparable across processes)
//   {id, op:'stream', targets:[host], port, intervalMs}
//       -> a steady stream of new connections, round robin; {id, started} at once
//   {id, op:'stop-stream'} -> {id, ok, failed, errors}
//   {id, op:'metric', url, name, full?} -> {id, value, text?}: the largest sample of a metric (NaN if
//       absent) on a Prometheus text endpoint, and the whole page if `full`
import http from 'node:http';
import https from 'node:https';
import readline from 'node:readline';
import { tcpRequest } from '../../../ts/demo/client.mjs';

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const reply = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

const agent = new https.Agent({ keepAlive: true, maxSockets: 64, rejectUnauthorized: false });

function request(server, token, { method, path, body }) {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve) => {
    const req = https.request(new URL(path, server), {
      method,
      agent,
      headers: {
        Authorization: `Bearer ${token}`,
        Accept: 'application/json',
        ...(payload === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) }),
      },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (err) => resolve({ status: 0, text: String(err) }));
    });
    req.on('error', (err) => resolve({ status: 0, text: String(err) }));
    req.end(payload);
  });
}

async function api(cmd) {
  let next = 0;
  let ok = 0;
  let failed = 0;
  let firstError;
  const worker = async () => {
    while (next < cmd.requests.length) {
      const r = await request(cmd.server, cmd.token, cmd.requests[next++]);
      if (r.status >= 200 && r.status < 300) ok++;
      else {
        failed++;
        firstError ??= `${r.status} ${r.text.slice(0, 300)}`;
      }
    }
  };
  await Promise.all(Array.from({ length: cmd.concurrency ?? 1 }, worker));
  return { ok, failed, firstError, at: now() };
}

/** One request on a new connection: the responder's name, or an error word. */
async function probe(host, port, timeoutMs = 1000) {
  const r = await tcpRequest(host, port, timeoutMs);
  return r.ok ? { backend: r.body.split(' ')[0] } : { error: r.error };
}

async function until(cmd) {
  const deadline = now() + (cmd.timeoutMs ?? 120_000);
  for (let tries = 1; ; tries++) {
    const r = await probe(cmd.host, cmd.port);
    if (r.backend === cmd.want) return { at: now(), tries };
    if (now() > deadline) return { error: `timed out; last: ${r.backend ?? r.error}`, tries };
    // A refused connect returns at once: do not spin the CPU the proxies are measured on.
    await sleep(cmd.pauseMs ?? 1);
  }
}

let stream;
function startStream(cmd) {
  stream = { ok: 0, failed: 0, errors: {}, stop: false };
  const s = stream;
  void (async () => {
    for (let i = 0; !s.stop; i++) {
      const r = await probe(cmd.targets[i % cmd.targets.length], cmd.port);
      if (r.backend) s.ok++;
      else {
        s.failed++;
        s.errors[r.error] = (s.errors[r.error] ?? 0) + 1;
      }
      await sleep(cmd.intervalMs);
    }
    s.done?.();
  })();
  return { started: now() };
}

async function stopStream() {
  const s = stream;
  if (!s) return { ok: 0, failed: 0, errors: {} };
  await new Promise((resolve) => {
    s.done = resolve;
    s.stop = true;
  });
  return { ok: s.ok, failed: s.failed, errors: s.errors };
}

function metric(cmd) {
  return new Promise((resolve) => {
    http.get(cmd.url, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => {
        // The largest sample (kproxy's gauges carry ip_family: one line per family).
        const values = text.split('\n').filter((l) => l.startsWith(`${cmd.name} `) || l.startsWith(`${cmd.name}{`))
          .map((l) => Number(l.trim().split(/\s+/).pop()));
        resolve({ value: values.length ? Math.max(...values) : NaN, text: cmd.full ? text : undefined });
      });
    }).on('error', () => resolve({ value: NaN }));
  });
}

const OPS = { api, until, stream: startStream, 'stop-stream': stopStream, metric };

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const cmd = JSON.parse(line);
  Promise.resolve()
    .then(() => OPS[cmd.op](cmd))
    .then((r) => reply({ id: cmd.id, ...r }), (err) => reply({ id: cmd.id, error: String(err?.stack ?? err) }));
});
reply({ ready: true });
