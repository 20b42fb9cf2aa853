// Run inside the VM (tests/vm/lts-kernel.sh), in a fresh network namespace: every rule shape
// nftables mode writes, through the life of ServicePorts that own chains (affinity recorders,
// source ranges), on the LTS kernel. Kernels before 6.2 release map references to chains
// lazily, so own chains are deleted a sync later; this proves those syncs commit there.
// Prints one "ok"/"not ok" line per step; exits 1 on any failure. (/usr/sbin/nft: under npx,
// node_modules/.bin has an unrelated `nft`.)
import { execFileSync } from 'node:child_process';
import pino from 'pino';
import { Registry } from 'prom-client';
import { clusterIPServicePort, readyEndpoint } from '../../ts/model/build.js';
import type { IPFamily, ServicePort } from '../../ts/model/types.js';
import { NftablesProxier } from '../../ts/modes/nftables/proxier.js';

let failed = 0;
function check(name: string, ok: boolean, detail = ''): void {
  console.log(`${ok ? 'ok' : 'not ok'} - lifecycle: ${name}${ok || !detail ? '' : ` (${detail})`}`);
  if (!ok) failed++;
}

function mix(family: IPFamily, eps: number, withAffinity: boolean): ServicePort[] {
  const v6 = family === 'IPv6';
  const ip = (n: number) => (v6 ? `fd00:96::${n.toString(16)}` : `10.96.0.${n}`);
  const ep = (n: number, local = false) => readyEndpoint(v6 ? `fd00:244::${n.toString(16)}` : `10.244.1.${n}`, 8080, { isLocal: local });
  const endpoints = Array.from({ length: eps }, (_, i) => ep(i + 2, i === 0));
  const base = { namespace: 'vm', portName: 'p', protocol: 'TCP' as const, family, port: 80, endpoints, clusterEndpoints: endpoints, localEndpoints: endpoints.filter((e) => e.isLocal) };
  const lbIP = v6 ? '2001:db8:1::10' : '198.51.100.10';
  const list = [
    clusterIPServicePort({ ...base, name: 'np', clusterIP: ip(10), type: 'NodePort', nodePort: 30010 }),
    clusterIPServicePort({ ...base, name: 'local', clusterIP: ip(11), type: 'LoadBalancer', nodePort: 30011, loadBalancerVIPs: [v6 ? '2001:db8:1::11' : '198.51.100.11'], externalPolicyLocal: true, healthCheckNodePort: 32011 }),
    clusterIPServicePort({ ...base, name: 'ranges', clusterIP: ip(12), type: 'LoadBalancer', nodePort: 30012, loadBalancerVIPs: [lbIP], loadBalancerSourceRanges: [v6 ? '2001:db8:2::/48' : '203.0.113.0/24'] }),
    // A range of every address: open to all (the kernel refuses a zero-length match).
    clusterIPServicePort({ ...base, name: 'open', clusterIP: ip(14), type: 'LoadBalancer', nodePort: 30014, loadBalancerVIPs: [v6 ? '2001:db8:1::14' : '198.51.100.14'], loadBalancerSourceRanges: [v6 ? '::/0' : '0.0.0.0/0'] }),
  ];
  if (withAffinity) {
    list.push(clusterIPServicePort({ ...base, name: 'sticky', clusterIP: ip(13), type: 'NodePort', nodePort: 30013, sessionAffinity: 'ClientIP', stickyMaxAgeSeconds: 30, externalPolicyLocal: true }));
  }
  return list;
}

/** `podCIDR`: the detector's range (a /0 makes every source a pod). */
async function lifecycle(family: IPFamily, podCIDR?: string): Promise<void> {
  const v6 = family === 'IPv6';
  const p = new NftablesProxier({
    family, masqueradeAll: false, masqueradeBit: 14, fake: false, registry: new Registry(), logger: pino({ level: 'silent' }),
    localDetector: { mode: 'ClusterCIDR', cidr: podCIDR ?? (v6 ? 'fd00:244::/48' : '10.244.0.0/16') },
  });
  const label = podCIDR ? `${family}, every source a pod (${podCIDR})` : family;
  const node = { nodePortIPs: [v6 ? '2001:db8::1' : '192.0.2.1'], nodeIPs: [v6 ? '2001:db8::1' : '192.0.2.1'] };
  const steps: [string, () => Promise<unknown>][] = [
    ['full sync of every shape', () => p.sync({ full: true, upserts: mix(family, 3, true), deletes: [], node, serviceCIDRs: [v6 ? 'fd00:96::/112' : '10.96.0.0/16'] })],
    ['an affinity ServicePort loses an endpoint (member elements only)', () => p.sync({ full: false, upserts: mix(family, 2, true), deletes: [] })],
    ['the affinity ServicePort goes (its recorder chains flushed)', () => p.sync({ full: false, upserts: [], deletes: ['vm/sticky/tcp/p'] })],
    ['a later sync deletes its chains', async () => {
      await new Promise((r) => setTimeout(r, 1500));
      return p.sync({ full: false, upserts: mix(family, 3, false), deletes: [] });
    }],
    ['it comes back under the same names', () => p.sync({ full: false, upserts: mix(family, 3, true), deletes: [] })],
    ['node addressing switches to every local address (full replace)', () => p.sync({ full: false, upserts: [], deletes: [], node: { ...node, nodePortIPs: 'all' } })],
  ];
  for (const [name, step] of steps) {
    try {
      const r = (await step()) as { full: boolean };
      check(`${label}: ${name}`, true);
      void r;
    } catch (e) {
      check(`${label}: ${name}`, false, (e as Error).message);
    }
  }
  try {
    const text = execFileSync('/usr/sbin/nft', ['list', 'table', v6 ? 'ip6' : 'ip', 'kube-proxy'], { encoding: 'utf8' });
    check(`${label}: nft lists the table`, ['sticky-', 'record-affinity', 'affinity-endpoints', 'firewall-', 'external-local-'].every((s) => text.includes(s)));
  } catch (e) {
    check(`${label}: nft lists the table`, false, (e as Error).message.split('\n')[0]);
  }
  await p.cleanup();
}

await lifecycle('IPv4');
await lifecycle('IPv6');
await lifecycle('IPv4', '0.0.0.0/0');
process.exit(failed ? 1 : 0);
