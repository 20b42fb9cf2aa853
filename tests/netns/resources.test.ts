// Resource exhaustion on the real kernel: each resource runs out at least once, and each time the
// agent says so (log and kproxy_resource_exhausted_total or the mode's own counter), keeps what it
// had programmed, and recovers by itself once the resource is back. Never a crash or a wedge.
//   file descriptors: the running agent's RLIMIT_NOFILE is lowered below its open count (prlimit)
//   socket buffer:    the nf_tables monitor's receive buffer overflows (ENOBUFS) under a burst
//   set size cap:     the kernel refuses an element past a set's size (ENFILE)
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { systemTool } from '../../ts/system-tools.js';
import { listMap, metricValue, waitWhileRunning, type Agent } from '../helpers/agent.js';
import { clusterFor, WEB_IP } from './cluster.js';
import { service } from './manifests.js';

const openFds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

/** Lowers (or restores) the soft RLIMIT_NOFILE of the running agent; the hard limit stays. */
function setFdLimit(agent: Agent, soft: number | 'restore'): void {
  const pid = agent.process.pid!;
  const hard = /Max open files\s+\S+\s+(\S+)/.exec(execFileSync('cat', [`/proc/${pid}/limits`], { encoding: 'utf8' }))![1];
  execFileSync('prlimit', ['--pid', String(pid), `--nofile=${soft === 'restore' ? hard : soft}:`]);
}

const backendsIn = async (c: { topo: Parameters<typeof listMap>[0] }) =>
  [...new Set((await listMap(c.topo, 'ip', 'endpoint-addrs')).match(/10\.244\.\d+\.2/g) ?? [])].sort().join(',');

test.serial('file descriptors, nftables mode: a change read while out of fds is kept for later, not lost, and lands once fds are back', async (t) => {
  const c = await clusterFor(t, { name: 'fdnft' });
  t.is(await backendsIn(c), '10.244.1.2,10.244.2.2,10.244.3.2');
  const before = openFds(c.agent.process.pid!);
  // Below what it holds: every open(), socket() and accept() now fails with EMFILE.
  setFdLimit(c.agent, 8);
  await c.setWebEndpoints([2]);
  await waitWhileRunning(c.agent, 'the out-of-fds warning', async () => c.agent.logs().includes('out of file descriptors'));
  await new Promise((r) => setTimeout(r, 1500));
  t.is(await backendsIn(c), '10.244.1.2,10.244.2.2,10.244.3.2', 'while out of fds the programmed rules stay');
  const health = await c.topo.exec(c.topo.node, ['curl', '-s', '-m', '1', 'http://127.0.0.1:10256/livez'], { allowFailure: true });
  t.not(health.code, 0, 'the health server cannot accept meanwhile (the connection waits in its queue)');

  setFdLimit(c.agent, 'restore');
  await waitWhileRunning(c.agent, 'the change made while out of fds', async () => (await backendsIn(c)) === '10.244.2.2');
  t.is(await metricValue(c.topo, 'kproxy_resource_exhausted_total', { resource: 'file_descriptors', component: 'manifests' }) >= 1, true, 'counted');
  t.is(await metricValue(c.topo, 'kproxy_invalid_objects_total', { reason: 'read-error' }), 0, 'not blamed on the file');
  const livez = await c.topo.exec(c.topo.node, ['curl', '-sf', '-m', '2', 'http://127.0.0.1:10256/livez'], { allowFailure: true });
  t.is(livez.code, 0, 'the health server answers again');
  await c.setWebEndpoints([3]);
  await waitWhileRunning(c.agent, 'a later change', async () => (await backendsIn(c)) === '10.244.3.2');
  t.true(openFds(c.agent.process.pid!) <= before + 4, `no descriptors leaked (${before} before, ${openFds(c.agent.process.pid!)} after)`);
});

test.serial('file descriptors, userspace mode: accepts that fail with EMFILE are counted and the connection is served once fds are back', async (t) => {
  const c = await clusterFor(t, { name: 'fdus', mode: 'userspace' });
  t.true((await c.topo.tcpRequest(c.topo.client, WEB_IP, 80)).ok, 'relayed before');
  setFdLimit(c.agent, 8);
  const starved = await c.topo.tcpRequest(c.topo.client, WEB_IP, 80, { timeoutMs: 1500 });
  t.false(starved.ok, 'out of fds: the connection waits in the listen queue, unanswered');
  setFdLimit(c.agent, 'restore');
  await waitWhileRunning(c.agent, 'a relayed connection once fds are back', async () => (await c.topo.tcpRequest(c.topo.client, WEB_IP, 80)).ok);
  t.true(await metricValue(c.topo, 'kproxy_userspace_fd_exhausted_total') >= 1, 'the failed accepts were counted');
  t.is(c.agent.process.exitCode, null, 'the agent is still running');
});

test.serial('socket buffer: a burst of notifications overflows the nftables monitor (ENOBUFS); the drift hidden in it is still repaired at once, and counted', async (t) => {
  const c = await clusterFor(t, { name: 'nobufs', wrapper: ['env', 'KPROXY_NFT_MONITOR_BUFFER_BYTES=0'] });
  const repairsBefore = await metricValue(c.topo, 'kproxy_nftables_drift_repairs_total');
  // A foreign transaction of 100k elements into a table of its own (~6 MB of notifications, past
  // the kernel's default buffer, to which KPROXY_NFT_MONITOR_BUFFER_BYTES=0 leaves the monitor),
  // then at once, the buffer still full, kproxy's service-ips map flushed: that notification is
  // lost (unless a drain slips in between), and the generation ledger must tell.
  const elements = Array.from({ length: 100_000 }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`).join(', ');
  const file = join(mkdtempSync(join(tmpdir(), 'kproxy-burst-')), 'burst.nft');
  writeFileSync(file, `table ip other {\n  set burst { type ipv4_addr; size 131072; elements = { ${elements} } }\n}\n`);
  t.teardown(() => rmSync(dirname(file), { recursive: true, force: true }));
  // Spelled out: under npm, `nft` on PATH is @vercel/nft.
  const nft = systemTool('nft');
  await c.topo.exec(c.topo.node, ['sh', '-c', `${nft} -f ${file} && ${nft} flush map ip kube-proxy service-ips`]);
  const flushedAt = performance.now();
  await waitWhileRunning(c.agent, 'service-ips repaired', async () => (await listMap(c.topo, 'ip', 'service-ips')).includes(`${WEB_IP} . `), 10_000);
  t.log(`flushed (hidden in the overflow) → repaired: ${((performance.now() - flushedAt) / 1000).toFixed(2)} s`);
  await waitWhileRunning(c.agent, 'the overflow counted', async () =>
    (await metricValue(c.topo, 'kproxy_resource_exhausted_total', { resource: 'socket_buffer', component: 'nftables-monitor' })) >= 1, 5000);
  t.regex(c.agent.logs(), /nftables notifications were lost/);
  t.true(await metricValue(c.topo, 'kproxy_nftables_drift_repairs_total') > repairsBefore, 'repaired as drift, not at the next periodic sync');
  t.true((await c.topo.tcpRequest(c.topo.client, WEB_IP, 80)).ok, 'traffic flows');
  await c.setWebEndpoints([1]);
  await waitWhileRunning(c.agent, 'a later change', async () => (await backendsIn(c)) === '10.244.1.2');
});

test.serial('set size cap: an element past a set\'s cap is refused by the kernel (ENFILE); the error says the set is full, it is counted, and the full sync that follows resizes the set', async (t) => {
  // KPROXY_FAULT_SET_SIZE=8: sets sized from 8 elements up, and the planner's own guard off, as
  // if it had miscounted; otherwise a partial sync that would pass a cap becomes a full one.
  const c = await clusterFor(t, { name: 'setcap', wrapper: ['env', 'KPROXY_FAULT_SET_SIZE=8'] });
  const ips = Array.from({ length: 12 }, (_, i) => `10.96.1.${i + 1}`);
  await c.manifests.write('more.yaml', ...ips.map((ip, i) => service(`more-${i}`, [ip])));
  // With no endpoints, each lands in no-endpoint-services (and its ClusterIP in cluster-ips).
  await waitWhileRunning(c.agent, 'all 12 new Services programmed', async () => {
    const m = await listMap(c.topo, 'ip', 'no-endpoint-services');
    return ips.every((ip) => m.includes(`${ip} . `));
  });
  t.true(await metricValue(c.topo, 'kproxy_resource_exhausted_total', { resource: 'set_size', component: 'nftables' }) >= 1, 'counted');
  t.true(await metricValue(c.topo, 'kubeproxy_sync_proxy_rules_nftables_sync_failures_total', { ip_family: 'IPv4' }) >= 1);
  t.regex(c.agent.logs(), /add element ip kube-proxy [\w-]+`: Too many open files in system \(errno 23\): the set is full/, 'named for what it is');
  const clusterIps = (await c.topo.exec(c.topo.node, [systemTool('nft'), 'list', 'set', 'ip', 'kube-proxy', 'cluster-ips'])).stdout;
  t.regex(clusterIps, /size 32\b/, 'resized from the true count (13 ClusterIPs: twice that, rounded up to a power of two)');
  t.true((await c.topo.tcpRequest(c.topo.client, WEB_IP, 80)).ok, 'traffic flows');
});
