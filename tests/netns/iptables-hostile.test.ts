// Hostile names never reach iptables-restore. The manifests source has none of the API
// server's validation, so these objects arrive as written: names and port names that would
// end a comment, start a line or add an option. Each is skipped, logged and counted; nothing
// of them is in the kernel; the valid Service next to them works. (The addon refuses such
// names too, a second line: crates/kproxy-proxier/src/service.rs.)
import test from 'ava';
import { metricValue, waitWhileRunning } from '../helpers/agent.js';
import { clusterFor, WEB_IP } from './cluster.js';
import { ALL_BACKENDS, checkFlows } from './flows.js';
import { endpointSlice, service, WEB_PORTS } from './manifests.js';

const INJECTIONS = [
  'evil" -j ACCEPT',
  'evil\n-A INPUT -j DROP',
  'evil\nCOMMIT\n*filter\n-A INPUT -j DROP',
  'evil -m comment --comment x',
  `${'a'.repeat(70)}`,
];

function hostileObjects() {
  const objects: object[] = [];
  INJECTIONS.forEach((name, i) => {
    const ip = `10.96.0.${200 + i}`;
    objects.push(service(name, [ip]), endpointSlice(name, 'IPv4', ['10.244.1.2']));
  });
  // A valid Service with a hostile port name, and one in a hostile namespace.
  const port = { ...WEB_PORTS[0], name: 'http" -j DROP' };
  objects.push(service('portname', ['10.96.0.210'], [port]), endpointSlice('portname', 'IPv4', ['10.244.1.2'], [port]));
  objects.push(service('inns', ['10.96.0.211'], WEB_PORTS, 'default\n*nat'), endpointSlice('inns', 'IPv4', ['10.244.1.2'], WEB_PORTS, 'default\n*nat'));
  return objects;
}

test.serial('hostile names through the manifests source never reach iptables-restore', async (t) => {
  const c = await clusterFor(t, { name: 'ipt-hostile', mode: 'iptables', extra: { 'hostile.yaml': hostileObjects() } });
  await waitWhileRunning(c.agent, 'the hostile objects to be counted', async () => (await metricValue(c.topo, 'kproxy_invalid_objects_total')) >= INJECTIONS.length);
  const dumps = await Promise.all(['iptables-save', 'ip6tables-save'].map(async (tool) => (await c.topo.exec(c.topo.node, [tool])).stdout));
  for (const dump of dumps) {
    t.notRegex(dump, /evil|portname|inns|-j DROP"|10\.96\.0\.2[01]\d/, 'nothing of the hostile objects is in the kernel');
    t.notRegex(dump, /^-A INPUT -j (DROP|ACCEPT)$/m);
    // Every comment is one of kproxy's own, whole and closed.
    for (const line of dump.split('\n').filter((l) => l.includes('--comment'))) t.regex(line, /--comment "[^"\n]*"( |$)/);
  }
  t.regex(c.agent.logs(), /Skipping invalid object/);
  await checkFlows(t, c.topo, [{ from: 'client', to: `${WEB_IP}:80`, proto: 'tcp', expect: ALL_BACKENDS(3), count: 20 }]);
});
