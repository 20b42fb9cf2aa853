// The HTTP servers' limits (ts/server/limits.ts) over real sockets, for each server kind: the
// metrics server, the proxier health server and a per-Service health-check server. Only GET
// and HEAD; no bodies; headers capped; slow or idle clients closed by the timeouts while
// normal requests are answered; a flood held to the connection cap, after which the server
// answers again and the fds are back. The timeouts are shortened here; production values are
// DEFAULT_SERVER_LIMITS. Serial: the fd counts are this process's.
import test from 'ava';
import { connect, type Socket } from 'node:net';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { loadConfig } from '../../ts/config/index.js';
import { ProxyHealth } from '../../ts/server/health.js';
import { startHealthServer } from '../../ts/server/health-server.js';
import { DEFAULT_SERVER_LIMITS, type ServerLimits } from '../../ts/server/limits.js';
import { startMetricsServer } from '../../ts/server/metrics-server.js';
import { ServiceHealthServers } from '../../ts/server/service-health.js';
import { connected, fdCount, fdsBackTo, freePort, get, rawRequest } from '../helpers/raw-http.js';

interface Started {
  port: number;
  /** A normal request and what it answers. */
  path: string;
  status: number;
  body: string;
  close(): Promise<void>;
}

const KINDS: Array<{ name: string; start(limits: Partial<ServerLimits>): Promise<Started> }> = [
  {
    name: 'metrics server',
    async start(limits) {
      const s = await startMetricsServer({ address: '127.0.0.1:0', mode: 'nftables', registry: new Registry(), configz: () => ({}), limits });
      return { port: s.port, path: '/proxyMode', status: 200, body: 'nftables', close: () => s.close() };
    },
  },
  {
    name: 'health server',
    async start(limits) {
      const s = await startHealthServer({ address: '127.0.0.1:0', health: new ProxyHealth({ syncPeriodMs: 30_000 }), limits });
      return { port: s.port, path: '/livez', status: 200, body: '', close: () => s.close() };
    },
  },
  {
    name: 'service health-check server',
    async start(limits) {
      const servers = new ServiceHealthServers({ logger: pino({ level: 'silent' }), nodeIPs: () => ['127.0.0.1'], healthy: () => true, limits });
      const port = await freePort();
      servers.syncServices(new Map([['ns1/svc1', port]]));
      servers.syncEndpoints(new Map([['ns1/svc1', 1]]));
      await servers.whenIdle();
      return { port, path: '/', status: 200, body: '"localEndpoints": 1', close: () => servers.close() };
    },
  },
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test.serial('production limits are bounded and the metrics server binds 127.0.0.1 by default, as upstream', async (t) => {
  const l = DEFAULT_SERVER_LIMITS;
  t.true(l.headersTimeoutMs > 0 && l.headersTimeoutMs <= 30_000);
  t.true(l.requestTimeoutMs >= l.headersTimeoutMs && l.requestTimeoutMs <= 60_000);
  t.true(l.keepAliveTimeoutMs > 0 && l.socketIdleTimeoutMs > 0 && l.checkIntervalMs <= l.headersTimeoutMs);
  t.true(l.maxHeaderBytes <= 16 * 1024 && l.maxBodyBytes <= 64 * 1024 && l.maxConnections <= 1024);

  const config = loadConfig(['--manifests', '/unused']);
  t.is(config.metricsBindAddress, '127.0.0.1:10249');
  // The same host on a free port: its listening socket is on loopback only (/proc/net/tcp: 0100007F).
  const host = config.metricsBindAddress.slice(0, config.metricsBindAddress.lastIndexOf(':'));
  const s = await startMetricsServer({ address: `${host}:0`, mode: 'nftables', registry: new Registry(), configz: () => ({}) });
  try {
    t.is(s.host, '127.0.0.1');
    const { readFileSync } = await import('node:fs');
    const hexPort = s.port.toString(16).toUpperCase().padStart(4, '0');
    const listening = readFileSync('/proc/net/tcp', 'utf8').split('\n').filter((l) => l.includes(`:${hexPort} 00000000:0000 0A`));
    t.is(listening.length, 1);
    t.true(listening[0].trim().split(/\s+/)[1] === `0100007F:${hexPort}`, listening[0]);
    t.is((await get(s.port, '/proxyMode')).body, 'nftables');
  } finally {
    await s.close();
  }
});

for (const kind of KINDS) {
  test.serial(`${kind.name}: GET and HEAD answer as before; POST, PUT, DELETE, PATCH, OPTIONS are 405 with Allow`, async (t) => {
    const s = await kind.start({});
    try {
      const ok = await get(s.port, s.path);
      t.is(ok.status, s.status);
      t.true(ok.body.includes(s.body));
      const head = await get(s.port, s.path, 'HEAD');
      t.is(head.status, s.status);
      t.is(head.body, '', 'no body on HEAD');
      for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
        const r = await get(s.port, s.path, method);
        t.is(r.status, 405, method);
        t.is(r.headers.allow, 'GET, HEAD', method);
        t.is(r.body, 'Method Not Allowed\n', method);
      }
      // A POST with a body is refused without reading it, and its connection closed.
      const post = await rawRequest(s.port, `POST ${s.path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n`);
      t.is(post.status, 405);
      t.true(post.closed && post.ms < 2000, `closed after ${post.ms} ms`);
    } finally {
      await s.close();
    }
  });

  test.serial(`${kind.name}: headers over maxHeaderBytes are 431 and closed; under it, answered`, async (t) => {
    const s = await kind.start({ maxHeaderBytes: 4096 });
    try {
      const small = await rawRequest(s.port, `GET ${s.path} HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(2000)}\r\nConnection: close\r\n\r\n`);
      t.is(small.status, s.status);
      const big = await rawRequest(s.port, `GET ${s.path} HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(8000)}\r\n\r\n`);
      t.is(big.status, 431);
      t.true(big.closed);
      const many = await rawRequest(s.port, `GET ${s.path} HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 1000 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`);
      t.is(many.status, 431, 'many small headers count too (Node counts names and values)');
    } finally {
      await s.close();
    }
  });

  test.serial(`${kind.name}: a body over maxBodyBytes is 413 before it is sent; chunked is 413; a small one is tolerated`, async (t) => {
    const s = await kind.start({ maxBodyBytes: 1024 });
    try {
      // 64 MiB announced, pushed as fast as the server takes it: the 413 comes back and the
      // connection closes long before the body could be read.
      const total = 64 * 1024 * 1024;
      const socket = connect({ host: '127.0.0.1', port: s.port });
      let got = '';
      socket.on('data', (d) => (got += d.toString('latin1')));
      const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
      socket.on('error', () => {});
      await connected(socket);
      socket.write(`GET ${s.path} HTTP/1.1\r\nHost: x\r\nContent-Length: ${total}\r\n\r\n`);
      const chunk = Buffer.alloc(64 * 1024, 'b');
      const pump = () => {
        while (!socket.destroyed && socket.bytesWritten < total && socket.write(chunk));
      };
      socket.on('drain', pump);
      pump();
      const timeout = sleep(5000).then(() => 'timeout');
      t.not(await Promise.race([closed.then(() => 'closed'), timeout]), 'timeout', 'the server closed the connection');
      t.regex(got, /^HTTP\/1\.1 413 /);
      t.true(socket.bytesWritten < total / 4, `${socket.bytesWritten} bytes of ${total} got out before the close`);
      socket.destroy();

      const chunked = await rawRequest(s.port, `GET ${s.path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`);
      t.is(chunked.status, 413);
      t.true(chunked.closed);

      // Expect: 100-continue with a body over the cap: 413 and no invitation to send it.
      const expect = await rawRequest(s.port, `GET ${s.path} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 100000\r\n\r\n`);
      t.is(expect.status, 413);

      const small = await rawRequest(s.port, `GET ${s.path} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello`);
      t.is(small.status, s.status, 'a body within the cap is ignored');
    } finally {
      await s.close();
    }
  });

  test.serial(`${kind.name}: slowloris and idle connections are closed by the timeouts while a normal GET is answered`, async (t) => {
    const limits = { headersTimeoutMs: 600, requestTimeoutMs: 1000, socketIdleTimeoutMs: 10_000, keepAliveTimeoutMs: 300, checkIntervalMs: 100, maxConnections: 64 };
    const s = await kind.start(limits);
    const baseline = fdCount();
    const sockets: Socket[] = [];
    try {
      const started = Date.now();
      const closedAt: Promise<number>[] = [];
      for (let i = 0; i < 40; i++) {
        // resume(): a socket nobody reads may never notice the server's FIN.
        const socket = connect({ host: '127.0.0.1', port: s.port }).resume();
        sockets.push(socket);
        socket.on('error', () => {});
        closedAt.push(new Promise((resolve) => socket.on('close', () => resolve(Date.now() - started))));
        if (i % 4 === 1) continue; // idle: connects and sends nothing
        if (i % 4 === 3) {
          // stalls: part of a request, then silence
          socket.on('connect', () => socket.write(`GET ${s.path} HTTP/1.1\r\nHost: x\r\n`));
          continue;
        }
        socket.on('connect', () => {
          socket.write(`GET ${s.path} HTTP/1.1\r\nHost: x\r\nX-Slow: `);
          const timer = setInterval(() => socket.write('a'), 50);
          socket.on('close', () => clearInterval(timer));
        });
      }
      await Promise.all(sockets.map(connected));
      await sleep(200);
      const during = await get(s.port, s.path);
      t.is(during.status, s.status, 'answered during the attack');
      t.true(during.ms < 1000, `in ${during.ms} ms`);

      // A finished keep-alive request then idle: closed after keepAliveTimeoutMs.
      const keepAlive = await rawRequest(s.port, `GET ${s.path} HTTP/1.1\r\nHost: x\r\n\r\n`, 3000);
      t.is(keepAlive.status, s.status);
      t.true(keepAlive.closed && keepAlive.ms >= 200 && keepAlive.ms < 2000, `keep-alive closed after ${keepAlive.ms} ms`);

      const times = await Promise.race([Promise.all(closedAt), sleep(5000).then(() => undefined)]);
      const open = sockets.flatMap((x, i) => (x.destroyed ? [] : [`${i}:${['drip', 'idle', 'drip', 'stall'][i % 4]}:${x.readyState}`]));
      t.truthy(times, `every slow or idle connection was closed; open: ${open.join(' ')}`);
      if (times) {
        t.true(Math.min(...times) >= 400, `first closed at ${Math.min(...times)} ms`);
        t.true(Math.max(...times) < 3000, `last closed at ${Math.max(...times)} ms`);
        t.log(`${kind.name}: 40 slow, stalled or idle connections closed between ${Math.min(...times)} and ${Math.max(...times)} ms (headers timeout ${limits.headersTimeoutMs} ms)`);
      }
      t.is((await get(s.port, s.path)).status, s.status, 'answered after');
      t.true((await fdsBackTo(baseline)) <= baseline, 'fds back to baseline');
    } finally {
      for (const socket of sockets) socket.destroy();
      await s.close();
    }
  });

  test.serial(`${kind.name}: a connection flood is held to maxConnections; afterwards normal requests are answered and the fds are back`, async (t) => {
    const cap = 32;
    const s = await kind.start({ maxConnections: cap, headersTimeoutMs: 10_000, requestTimeoutMs: 10_000 });
    const baseline = fdCount();
    const sockets: Socket[] = [];
    try {
      // 1500 connections that never send a byte, opened in batches (the accept backlog is finite).
      for (let batch = 0; batch < 6; batch++) {
        const fresh = Array.from({ length: 250 }, () => connect({ host: '127.0.0.1', port: s.port }).resume().on('error', () => {}));
        sockets.push(...fresh);
        await Promise.all(fresh.map(connected));
      }
      await sleep(300);
      // The server's accepted sockets are this process's fds beyond the baseline and the clients'
      // own (a client may count as open while the kernel still holds its handshake unaccepted).
      const clients = () => sockets.filter((x) => !x.destroyed).length;
      let alive = fdCount() - baseline - clients();
      for (let i = 0; i < 20 && alive > cap; i++) {
        await sleep(100);
        alive = fdCount() - baseline - clients();
      }
      t.true(alive <= cap && alive > 0, `the server holds ${alive} of ${sockets.length} connections (cap ${cap})`);
      const whileFull = await get(s.port, s.path, 'GET', 1000);
      t.is(whileFull.status, 0, 'a request while the cap is full is refused');
      const peak = fdCount();
      for (const x of sockets) x.destroy();
      sockets.length = 0;

      // 2000 complete requests, 200 at a time, each on its own connection.
      const statuses = new Map<number, number>();
      let next = 0;
      const worker = async () => {
        while (next < 2000) {
          next++;
          const r = await get(s.port, s.path, 'GET', 5000);
          statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        }
      };
      await Promise.all(Array.from({ length: 200 }, worker));
      const answered = statuses.get(s.status) ?? 0;
      t.true(answered > 0);
      t.deepEqual([...statuses.keys()].filter((k) => k !== s.status && k !== 0), [], 'answers are the normal one or a refused connection');

      const after = await get(s.port, s.path);
      t.is(after.status, s.status, 'answered after the flood');
      t.true(after.body.includes(s.body));
      const fds = await fdsBackTo(baseline);
      t.true(fds <= baseline, `fds: ${baseline} before, ${peak} at the peak, ${fds} after`);
      t.log(`${kind.name}: ${alive}/1500 idle connections held (cap ${cap}); 2000 requests: ${answered} answered, ${statuses.get(0) ?? 0} refused; fds ${baseline} → ${peak} → ${fds}`);
    } finally {
      for (const x of sockets) x.destroy();
      await s.close();
    }
  });
}

test.serial('socketIdleTimeoutMs closes a connection with no bytes either way, before a longer headers timeout', async (t) => {
  const s = await KINDS[0].start({ headersTimeoutMs: 10_000, requestTimeoutMs: 10_000, socketIdleTimeoutMs: 400 });
  try {
    const r = await rawRequest(s.port, '', 3000);
    t.true(r.closed && r.ms >= 300 && r.ms < 2000, `closed after ${r.ms} ms`);
  } finally {
    await s.close();
  }
});

test.serial('the per-Service health-check servers share one connection budget', async (t) => {
  const servers = new ServiceHealthServers({ logger: pino({ level: 'silent' }), nodeIPs: () => ['127.0.0.1'], healthy: () => true, limits: { maxConnections: 8 } });
  const [a, b] = [await freePort(), await freePort()];
  servers.syncServices(new Map([['ns/a', a], ['ns/b', b]]));
  servers.syncEndpoints(new Map([['ns/a', 1], ['ns/b', 1]]));
  await servers.whenIdle();
  const held = Array.from({ length: 8 }, () => connect({ host: '127.0.0.1', port: a }).resume().on('error', () => {}));
  try {
    await Promise.all(held.map(connected));
    await sleep(200);
    t.is((await get(b, '/', 'GET', 1000)).status, 0, 'Service b has no slot while a holds them all');
    for (const x of held) x.destroy();
    await sleep(100);
    t.is((await get(b, '/')).status, 200);
  } finally {
    for (const x of held) x.destroy();
    await servers.close();
  }
});
