import test from 'ava';
import { request as httpRequest } from 'node:http';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { pino } from 'pino';
import { clusterIPServicePort, readyEndpoint } from '../../ts/model/build.js';
import { FakeClock } from '../../ts/runner/clock.js';
import { serviceHealthBody, serviceHealthMaps, ServiceHealthServers, type ListenFn, type ServiceHealthOptions, type ServiceName } from '../../ts/server/service-health.js';
import { captureLines } from '../helpers/log-capture.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(port: number, path = '/', host = '127.0.0.1', method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host, port, path, method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function refused(port: number, host = '127.0.0.1'): Promise<boolean> {
  try {
    await get(port, '/', host);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ECONNREFUSED';
  }
}

/** A port that is free right now (on "::", so on both families). */
async function freePort(): Promise<number> {
  const server = await occupy(0, '::');
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function occupy(port: number, host = '127.0.0.1'): Promise<NetServer> {
  return new Promise((resolve, reject) => {
    const server = createNetServer();
    server.once('error', reject);
    server.listen({ port, host }, () => resolve(server));
  });
}

function capture() {
  const { lines, stream } = captureLines();
  return { lines, logger: pino({ level: 'debug' }, stream) };
}

function make(over: Partial<ServiceHealthOptions> = {}) {
  const log = capture();
  const state = { healthy: true };
  const errors: Array<{ svc: ServiceName; port: number; err: Error }> = [];
  const clock = new FakeClock();
  const servers = new ServiceHealthServers({
    logger: log.logger,
    nodeIPs: () => ['127.0.0.1'],
    healthy: () => state.healthy,
    onListenError: (svc, port, err) => errors.push({ svc, port, err }),
    retryMs: 1000,
    clock,
    ...over,
  });
  return { servers, state, errors, clock, log };
}

const EXPECTED_BODY = '{\n\t"service": {\n\t\t"namespace": "ns1",\n\t\t"name": "svc1"\n\t},\n\t"localEndpoints": 1,\n\t"serviceProxyHealthy": true\n}';

test('serviceHealthBody is upstream\'s tab-indented JSON without a trailing newline', (t) => {
  t.is(serviceHealthBody({ namespace: 'ns1', name: 'svc1' }, 1, true), EXPECTED_BODY);
  t.is(serviceHealthBody({ namespace: 'a', name: 'b' }, 0, false), '{\n\t"service": {\n\t\t"namespace": "a",\n\t\t"name": "b"\n\t},\n\t"localEndpoints": 0,\n\t"serviceProxyHealthy": false\n}');
});

test('answers any path with the exact body, headers and 200/503 transitions', async (t) => {
  const { servers, state } = make();
  const port = await freePort();
  servers.syncServices(new Map([['ns1/svc1', port]]));
  await servers.whenIdle();

  let r = await get(port);
  t.is(r.status, 503, 'no endpoints reported yet');
  t.is(r.headers['x-load-balancing-endpoint-weight'], '0');
  t.true(r.body.includes('"localEndpoints": 0'));

  servers.syncEndpoints(new Map([['ns1/svc1', 1]]));
  for (const path of ['/', '/healthz', '/any/thing?x=1']) {
    r = await get(port, path);
    t.is(r.status, 200, path);
    t.is(r.body, EXPECTED_BODY, path);
    t.is(r.headers['content-type'], 'application/json');
    t.is(r.headers['x-content-type-options'], 'nosniff');
    t.is(r.headers['x-load-balancing-endpoint-weight'], '1');
    t.is(r.headers['content-length'], String(Buffer.byteLength(EXPECTED_BODY)));
  }
  // Upstream answers any method; kproxy only GET and HEAD (load balancers probe with GET).
  const post = await get(port, '/x', '127.0.0.1', 'POST');
  t.is(post.status, 405, 'only GET and HEAD');
  t.is(post.headers.allow, 'GET, HEAD');

  state.healthy = false;
  r = await get(port);
  t.is(r.status, 503, 'an unhealthy proxier fails every Service');
  t.true(r.body.endsWith('"localEndpoints": 1,\n\t"serviceProxyHealthy": false\n}'));
  t.is(r.headers['x-load-balancing-endpoint-weight'], '1');

  state.healthy = true;
  servers.syncEndpoints(new Map([['ns1/other', 3]]));
  r = await get(port);
  t.is(r.status, 503, 'a Service missing from the endpoints map has 0');
  t.is(r.headers['x-load-balancing-endpoint-weight'], '0');
  await servers.close();
});

test('opens and closes servers as Services come and go, and follows a port change', async (t) => {
  const { servers } = make();
  const [p1, p2, p3] = [await freePort(), await freePort(), await freePort()];
  servers.syncEndpoints(new Map([['ns1/svc1', 2], ['ns2/svc2', 1]]));
  servers.syncServices(new Map([['ns1/svc1', p1]]));
  await servers.whenIdle();
  t.is((await get(p1)).status, 200);
  t.true(await refused(p2));

  servers.syncServices(new Map([['ns1/svc1', p1], ['ns2/svc2', p2]]));
  await servers.whenIdle();
  const r2 = await get(p2);
  t.is(r2.status, 200);
  t.true(r2.body.includes('"namespace": "ns2",\n\t\t"name": "svc2"'));
  t.is(r2.headers['x-load-balancing-endpoint-weight'], '1');

  servers.syncServices(new Map([['ns2/svc2', p2]]));
  await servers.whenIdle();
  t.true(await refused(p1), 'a removed Service closes its server');
  t.is((await get(p2)).status, 200, 'the other one is left alone');

  servers.syncServices(new Map([['ns2/svc2', p3]]));
  await servers.whenIdle();
  t.true(await refused(p2), 'the old port closes');
  t.is((await get(p3)).status, 200, 'the new port opens');

  // A port handed from one Service to another in one sync: closed before it is reopened.
  servers.syncServices(new Map([['ns1/svc1', p3]]));
  await servers.whenIdle();
  t.true((await get(p3)).body.includes('"name": "svc1"'));
  await servers.close();
});

test('a failed listen is logged, reported once, retried, and succeeds once the port is free', async (t) => {
  const { servers, errors, clock, log } = make();
  const port = await freePort();
  const blocker = await occupy(port);
  servers.syncEndpoints(new Map([['ns1/svc1', 1]]));
  t.notThrows(() => servers.syncServices(new Map([['ns1/svc1', port]])));
  await servers.whenIdle();

  t.is(errors.length, 1);
  t.deepEqual(errors[0]?.svc, { namespace: 'ns1', name: 'svc1' });
  t.is(errors[0]?.port, port);
  t.is((errors[0]?.err as NodeJS.ErrnoException).code, 'EADDRINUSE');
  const failures = log.lines.filter((l) => l.msg === 'Failed to start healthcheck');
  t.is(failures.length, 1);
  t.is(failures[0]?.level, 50, 'logged at error');
  t.is(failures[0]?.service, 'ns1/svc1');
  t.is(clock.pendingTimers(), 1, 'a retry is armed');

  await clock.advance(1000);
  await servers.whenIdle();
  t.is(log.lines.filter((l) => l.msg === 'Healthcheck still failing to start').length, 1, 'retried');
  t.is(errors.length, 1, 'the same failure is not reported again');
  t.is(clock.pendingTimers(), 1);

  await new Promise<void>((resolve) => blocker.close(() => resolve()));
  await clock.advance(1000);
  await servers.whenIdle();
  const r = await get(port);
  t.is(r.status, 200, 'the counts given while it was failing are used');
  t.is(clock.pendingTimers(), 0, 'no retry once open');
  t.is(errors.length, 1);
  await servers.close();
});

test('an injected listen error (EACCES) is reported, and a half-open Service is closed again', async (t) => {
  const opened: string[] = [];
  const closed: string[] = [];
  let fail = true;
  const listen: ListenFn = async (host, port) => {
    if (fail && host === '10.0.0.2') throw Object.assign(new Error(`listen EACCES ${host}:${port}`), { code: 'EACCES' });
    opened.push(`${host}:${port}`);
    return { close: async () => void closed.push(`${host}:${port}`) };
  };
  const { servers, errors, clock } = make({ listen, nodeIPs: () => ['10.0.0.2', '10.0.0.1'] });
  servers.syncServices(new Map([['ns/a', 30000]]));
  await servers.whenIdle();
  t.deepEqual(opened, ['10.0.0.1:30000']);
  t.deepEqual(closed, ['10.0.0.1:30000'], 'all or nothing, as upstream');
  t.is(errors.length, 1);
  t.is((errors[0]?.err as NodeJS.ErrnoException).code, 'EACCES');

  fail = false;
  servers.syncServices(new Map([['ns/a', 30000]]));
  await servers.whenIdle();
  t.deepEqual(opened, ['10.0.0.1:30000', '10.0.0.1:30000', '10.0.0.2:30000'], 'a sync retries at once');
  t.is(clock.pendingTimers(), 0);
  t.is(errors.length, 1);
  await servers.close();
  t.deepEqual(closed.slice(1).sort(), ['10.0.0.1:30000', '10.0.0.2:30000']);
});

test('a change of node IPs reopens on the new addresses; none means the family wildcard', async (t) => {
  const opened: string[] = [];
  const closed: string[] = [];
  let ips: string[] | 'all' = ['10.0.0.1'];
  const listen: ListenFn = async (host, port) => {
    opened.push(`${host}:${port}`);
    return { close: async () => void closed.push(`${host}:${port}`) };
  };
  const { servers } = make({ listen, nodeIPs: () => ips });
  servers.syncServices(new Map([['ns/a', 30000]]));
  await servers.whenIdle();
  servers.syncServices(new Map([['ns/a', 30000]]));
  await servers.whenIdle();
  t.deepEqual(opened, ['10.0.0.1:30000'], 'an unchanged Service is left alone');
  ips = 'all';
  servers.syncServices(new Map([['ns/a', 30000]]));
  await servers.whenIdle();
  t.deepEqual(closed, ['10.0.0.1:30000']);
  t.deepEqual(opened, ['10.0.0.1:30000', '0.0.0.0:30000']);
  await servers.close();

  const v6: string[] = [];
  const six = make({ family: 'IPv6', nodeIPs: () => [], listen: async (host) => (v6.push(host), { close: async () => {} }) });
  six.servers.syncServices(new Map([['ns/a', 30000]]));
  await six.servers.whenIdle();
  t.deepEqual(v6, ['::']);
  await six.servers.close();
});

test('IPv4 and IPv6 instances share a port on their wildcards, each with its own family\'s count', async (t) => {
  const port = await freePort();
  const v4 = make({ nodeIPs: () => 'all' });
  const v6 = make({ family: 'IPv6', nodeIPs: () => 'all' });
  for (const [inst, count] of [[v4, 2], [v6, 1]] as const) {
    inst.servers.syncEndpoints(new Map([['ns1/svc1', count]]));
    inst.servers.syncServices(new Map([['ns1/svc1', port]]));
    await inst.servers.whenIdle();
  }
  t.deepEqual([...v4.errors, ...v6.errors], [], 'no EADDRINUSE between the families');
  t.is((await get(port, '/', '127.0.0.1')).headers['x-load-balancing-endpoint-weight'], '2');
  t.is((await get(port, '/', '::1')).headers['x-load-balancing-endpoint-weight'], '1');
  await v4.servers.close();
  await v6.servers.close();
});

test('close() closes every server, stops retrying and ignores later syncs', async (t) => {
  const { servers, clock } = make();
  const [p1, p2, p3] = [await freePort(), await freePort(), await freePort()];
  const blocker = await occupy(p3);
  servers.syncServices(new Map([['ns/a', p1], ['ns/b', p2], ['ns/c', p3]]));
  await servers.whenIdle();
  t.is((await get(p1)).status, 503);
  t.is((await get(p2)).status, 503);
  t.is(clock.pendingTimers(), 1);
  await servers.close();
  t.true(await refused(p1));
  t.true(await refused(p2));
  t.is(clock.pendingTimers(), 0);
  servers.syncServices(new Map([['ns/a', p1]]));
  await servers.whenIdle();
  t.true(await refused(p1));
  await new Promise<void>((resolve) => blocker.close(() => resolve()));
});

test('serviceHealthMaps: healthCheckNodePort per Service, local ready endpoints counted once per IP', (t) => {
  const local = (ip: string, port: number, over = {}) => readyEndpoint(ip, port, { isLocal: true, nodeName: 'me', ...over });
  const lb = { type: 'LoadBalancer' as const, externalPolicyLocal: true, healthCheckNodePort: 31000 };
  const ports = [
    clusterIPServicePort({ namespace: 'ns1', name: 'svc1', portName: 'http', protocol: 'TCP', clusterIP: '10.96.0.1', port: 80, ...lb,
      endpoints: [local('10.0.0.1', 8080), local('10.0.0.2', 8080, { ready: false, serving: true, terminating: true }), readyEndpoint('10.0.1.1', 8080)] }),
    clusterIPServicePort({ namespace: 'ns1', name: 'svc1', portName: 'https', protocol: 'TCP', clusterIP: '10.96.0.1', port: 443, ...lb,
      endpoints: [local('10.0.0.1', 8443), local('10.0.0.3', 8443)] }),
    clusterIPServicePort({ namespace: 'ns1', name: 'svc2', portName: '', protocol: 'TCP', clusterIP: '10.96.0.2', port: 80, ...lb, healthCheckNodePort: 31001,
      endpoints: [local('10.0.0.9', 80, { ready: false, serving: false })] }),
    clusterIPServicePort({ namespace: 'ns1', name: 'plain', portName: '', protocol: 'TCP', clusterIP: '10.96.0.3', port: 80, endpoints: [local('10.0.0.5', 80)] }),
  ];
  const { services, localEndpoints } = serviceHealthMaps(ports);
  t.deepEqual([...services], [['ns1/svc1', 31000], ['ns1/svc2', 31001]]);
  // 10.0.0.1 on both ports is one endpoint; terminating, remote and non-ready ones do not count.
  t.deepEqual([...localEndpoints], [['ns1/svc1', 2]]);
});
