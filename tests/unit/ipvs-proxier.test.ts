// IPVS mode behind the Proxier seam, on the addon's fakes (IPVS, kube-ipvs0 and the nftables
// table, each with the kernel's semantics): what a sync programs, what a change costs, graceful
// termination, and what it rejects. The real kernel is tests/vm/ipvs-mode.vmtest.ts.
import test from 'ava';
import pino from 'pino';
import { Registry } from 'prom-client';
import { clusterIPServicePort, readyEndpoint } from '../../ts/model/build.js';
import type { ServicePort } from '../../ts/model/types.js';
import { createProxiers } from '../../ts/proxier/registry.js';
import { IpvsProxier } from '../../ts/modes/ipvs/proxier.js';

function spec(name: string, clusterIP: string, endpoints: string[], over: Partial<ServicePort> = {}): ServicePort {
  const eps = endpoints.map((ip) => readyEndpoint(ip, 8080));
  return clusterIPServicePort({ namespace: 'ns', name, portName: 'http', protocol: 'TCP', clusterIP, port: 80, ...over, endpoints: eps, clusterEndpoints: eps });
}

const ipvs = (scheduler = '') =>
  new IpvsProxier({
    family: 'IPv4',
    localDetector: { mode: 'ClusterCIDR', cidr: '10.244.0.0/16' },
    masqueradeAll: false,
    masqueradeBit: 14,
    ipvs: { scheduler, excludeCIDRs: [], strictARP: false, tcpTimeoutS: 0, tcpFinTimeoutS: 0, udpTimeoutS: 0 },
    fake: true,
    registry: new Registry(),
    logger: pino({ level: 'silent' }),
  });

const node = { nodePortIPs: ['192.168.100.1'], nodeIPs: ['192.168.100.1'] };

test('a sync programs a virtual server per address and port, and the addresses on kube-ipvs0', async (t) => {
  const p = ipvs();
  const r = await p.sync({ full: true, upserts: [spec('a', '10.96.0.1', ['10.244.1.2', '10.244.2.2'], { type: 'NodePort', nodePort: 30001 })], deletes: [], node });
  t.true(r.full);
  t.deepEqual(r.rejected, []);
  t.is(r.details?.virtualServers, 2, 'the ClusterIP and the NodePort on the node IP');
  t.is(r.details?.realServers, 4);
  const text = p.render();
  for (const line of ['-A -t 10.96.0.1:80 -s rr', '-a -t 10.96.0.1:80 -r 10.244.1.2:8080 -m -w 1', '-A -t 192.168.100.1:30001 -s rr', '# kube-ipvs0\n10.96.0.1\n']) {
    t.true(text.includes(line), line);
  }
  t.false(/^192\.168\.100\.1$/m.test(text), 'the node IP is not put on kube-ipvs0');
  t.true(text.includes('add element ip kproxy-ipvs masquerade-nodeports { tcp . 30001 }'));
});

test('a one-endpoint change is two IPVS operations; the old TCP real server drains until idle', async (t) => {
  const p = ipvs();
  const many = Array.from({ length: 300 }, (_, i) => spec(`s${i}`, `10.96.${i >> 8}.${(i & 255) + 1}`, ['10.244.1.2', '10.244.2.2', '10.244.3.2']));
  await p.sync({ full: true, upserts: many, deletes: [], node });
  const r = await p.sync({ full: false, upserts: [spec('s0', '10.96.0.1', ['10.244.1.2', '10.244.2.2', '10.244.3.9'])], deletes: [] });
  t.false(r.full);
  t.is(r.details?.ipvsOps, 2, 'add 10.244.3.9, weight 0 for 10.244.3.2');
  t.is(r.details?.draining, 1);
  t.true(p.render().includes('-a -t 10.96.0.1:80 -r 10.244.3.9:8080 -m -w 1'));
  p.fakeSetConnections('10.96.0.1:80', 6, '10.244.3.2:8080', 1, 0);
  await p.reap();
  const again = await p.sync({ full: false, upserts: [], deletes: [] });
  t.is(again.details?.draining, 1, 'still draining with a connection open');
  p.fakeSetConnections('10.96.0.1:80', 6, '10.244.3.2:8080', 0, 0);
  await p.reap();
  t.is((await p.sync({ full: false, upserts: [], deletes: [] })).details?.draining, 0, 'deleted once idle');
});

test('session affinity is persistence with the timeout; the scheduler is the configured one', async (t) => {
  const p = ipvs('lc');
  await p.sync({ full: true, upserts: [spec('a', '10.96.0.1', ['10.244.1.2'], { sessionAffinity: 'ClientIP', stickyMaxAgeSeconds: 60 })], deletes: [], node });
  t.true(p.render().includes('-A -t 10.96.0.1:80 -s lc -p 60'));
});

test('refused IPVS operations are logged and counted, and the sync goes on (as upstream)', async (t) => {
  const registry = new Registry();
  const logs: string[] = [];
  const p = new IpvsProxier({
    family: 'IPv4', masqueradeAll: false, masqueradeBit: 14, fake: true, registry,
    ipvs: { scheduler: 'nope', excludeCIDRs: [], strictARP: false, tcpTimeoutS: 0, tcpFinTimeoutS: 0, udpTimeoutS: 0 },
    logger: pino({ level: 'error' }, { write: (l: string) => void logs.push(l) }),
  });
  const r = await p.sync({ full: true, upserts: [spec('a', '10.96.0.1', ['10.244.1.2'])], deletes: [], node });
  t.is(r.details?.virtualServers, 0);
  // ENOENT for the service (no such scheduler), then ESRCH for its real server.
  t.regex(logs.join(''), /"refused":2,"of":2.*"first":"-A -t 10\.96\.0\.1:80 -s nope","errno":2/);
  t.regex(await registry.metrics(), /kproxy_ipvs_operation_failures_total\{ip_family="IPv4"\} 2/);
});

test('the registry builds IPVS mode, one proxier per family', async (t) => {
  const list = await createProxiers('ipvs', ['IPv4', 'IPv6'], { masqueradeAll: false, masqueradeBit: 14, fake: true, registry: new Registry(), logger: pino({ level: 'silent' }) });
  t.deepEqual(list.map((p) => [p.mode, p.family]), [['ipvs', 'IPv4'], ['ipvs', 'IPv6']]);
  t.throws(() => list[0].explain({ src: '10.0.0.1', dst: '10.96.0.1', port: 80, protocol: 'TCP' }), { message: /not implemented in IPVS mode/ });
});
