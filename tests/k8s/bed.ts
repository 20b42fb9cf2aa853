// The bed the k8s suites share: a topology, a real control plane in its node namespace, the
// "web" Service and its EndpointSlices written through the API, and either proxy on it.
//   web 10.96.0.20 / fd00:96::20   80/TCP -> 8080, 53/UDP -> 8053; backend i 10.244.i.2 / fd00:244:0:i::2
import type { ExecutionContext } from 'ava';
import { join } from 'node:path';
import { CLUSTER_CIDRS, waitFor, type Topology } from '../../ts/demo/topology.js';
import { asAgent, startAgent, type Agent } from '../helpers/agent.js';
import { K8S_BIN, startControlPlane, type ControlPlane, type ControlPlaneOptions } from '../helpers/control-plane.js';
import { tally, topologyFor } from '../netns/flows.js';
import { endpointSlice, node, NODE_NAME, service } from '../netns/manifests.js';

export const WEB_IP = '10.96.0.20';
export const WEB_IP6 = 'fd00:96::20';
export const NODE_IP = '192.168.100.1';

export interface Bed {
  topo: Topology;
  cp: ControlPlane;
  /** Rewrites the web EndpointSlices (both families) to these backends. */
  setEndpoints(...backends: Topology['backends']): Promise<void>;
  /** The backends that answered 30 connections to ip:80 from the client, sorted, comma-joined. */
  answered(ip?: string): Promise<string>;
  /** Waits until answered(ip) is `want`. */
  until(what: string, want: string, timeoutMs?: number, ip?: string): Promise<void>;
}

export async function bedFor(t: ExecutionContext, name: string, cpOpts: ControlPlaneOptions = {}): Promise<Bed> {
  const topo = await topologyFor(t, { backends: 2, name });
  const cp = await startControlPlane(t, topo, cpOpts);
  await cp.apply(node());
  await cp.setStatus('node', NODE_NAME, { addresses: [{ type: 'InternalIP', address: NODE_IP }] });
  await cp.apply(service('web', [WEB_IP, WEB_IP6]));
  const setEndpoints = (...backends: Topology['backends']) =>
    cp.apply(endpointSlice('web', 'IPv4', backends.map((b) => b.v4)), endpointSlice('web', 'IPv6', backends.map((b) => b.v6)));
  await setEndpoints(...topo.backends);
  const answered = async (ip = WEB_IP) => Object.keys(tally(await topo.tcpRequests(topo.client, ip, 80, { count: 30 }))).sort().join();
  const until = async (what: string, want: string, timeoutMs = 30_000, ip = WEB_IP) => {
    await waitFor(what, async () => (await answered(ip)) === want, { timeoutMs });
  };
  return { topo, cp, setEndpoints, answered, until };
}

/** kproxy in the node namespace, on the API under its own ServiceAccount (through `server` if given). */
export function startKproxy(t: ExecutionContext, bed: Bed, opts: { server?: string } = {}): Agent {
  const agent = startAgent(bed.topo, { kubeconfig: bed.cp.kubeconfig('kproxy', opts.server), hostname: NODE_NAME, syncPeriod: '1s' });
  t.teardown(() => {
    if (!t.passed) t.log(`kproxy output (tail):\n${agent.logs().slice(-3000)}`);
  });
  return agent;
}

/** Upstream kube-proxy v1.37.2 in the node namespace, as system:node-proxier. */
export function spawnUpstream(bed: Pick<Bed, 'topo' | 'cp'>, mode: 'nftables' | 'iptables', extraArgs: string[] = []): Agent {
  // Upstream execs `nft` (and iptables) by name: under npm, node_modules/.bin comes first on
  // PATH, and @vercel/nft's `nft` is not nftables'.
  const path = (process.env.PATH ?? '').split(':').filter((d) => d && !d.includes('node_modules')).join(':');
  return asAgent(bed.topo.spawnIn(bed.topo.node, 'env', [`PATH=${path}:/usr/sbin:/sbin`, join(K8S_BIN, 'kube-proxy'),
    '--kubeconfig', bed.cp.kubeconfig('upstream'),
    '--proxy-mode', mode,
    '--hostname-override', NODE_NAME,
    '--cluster-cidr', CLUSTER_CIDRS.join(','),
    // A network namespace cannot raise the host's conntrack limits.
    '--conntrack-max-per-core', '0',
    '--metrics-bind-address', '127.0.0.1:10249',
    '--healthz-bind-address', '0.0.0.0:10256',
    '-v', '2',
    ...extraArgs,
  ]));
}

/** spawnUpstream, stopped (and its log shown on failure) when the test ends. */
export function startUpstream(t: ExecutionContext, bed: Pick<Bed, 'topo' | 'cp'>, mode: 'nftables' | 'iptables'): Agent {
  const agent = spawnUpstream(bed, mode);
  t.teardown(async () => {
    if (!t.passed) t.log(`kube-proxy output (tail):\n${agent.logs().slice(-3000)}`);
    await agent.stop();
  });
  return agent;
}
