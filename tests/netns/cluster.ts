// One node running the real agent over a topology, with the "web" Service of the address plan:
//   web   10.96.0.10 / fd00:96::10   http 80/TCP -> 8080, dns 53/UDP -> 8053
//   endpoints: backend i = 10.244.i.2 / fd00:244:0:i::2 (all ready, on this node)
import type { ExecutionContext } from 'ava';
import type { Topology } from '../../ts/demo/topology.js';
import { requireAgent, startAgent, waitForListener, waitForServiceIP, waitForServiceRule, waitForVirtualServer, type Agent, type AgentConfig } from '../helpers/agent.js';
import { topologyFor } from './flows.js';
import { endpointSlice, manifestDir, node, NODE_NAME, service, type ManifestDir } from './manifests.js';

export const WEB_IP = '10.96.0.10';
export const WEB_IP6 = 'fd00:96::10';

export interface Cluster {
  topo: Topology;
  manifests: ManifestDir;
  agent: Agent;
  config: AgentConfig;
  /** Rewrites the web EndpointSlices to list only these backends (1-based indexes). */
  setWebEndpoints(backends: number[]): Promise<void>;
}

export interface ClusterOptions {
  backends?: number;
  name?: string;
  syncPeriod?: string;
  /** Extra manifests, written before the agent starts. */
  extra?: Record<string, object[]>;
  /** Flags that shape the ruleset (AgentConfig.rulesetArgs). */
  rulesetArgs?: string[];
  /** The proxy mode (default nftables). */
  mode?: 'nftables' | 'iptables' | 'ipvs' | 'userspace';
  /** How long to wait for the first program (the VM's emulated CPU is slow). */
  readyTimeoutMs?: number;
  /** The agent runs under this command (AgentConfig.wrapper). */
  wrapper?: string[];
  /** Runs in the node namespace before the agent starts (what the kubelet would have set up). */
  beforeStart?: (topo: Topology) => Promise<void>;
}

export async function clusterFor(t: ExecutionContext, opts: ClusterOptions = {}): Promise<Cluster> {
  requireAgent();
  const backendCount = opts.backends ?? 3;
  const topo = await topologyFor(t, { backends: backendCount, name: opts.name ?? 'agent' });
  const manifests = await manifestDir(t);
  const setWebEndpoints = async (indexes: number[]) => {
    const chosen = indexes.map((i) => topo.backends[i - 1]);
    await manifests.write('web-endpoints.yaml',
      endpointSlice('web', 'IPv4', chosen.map((b) => b.v4)),
      endpointSlice('web', 'IPv6', chosen.map((b) => b.v6)));
  };
  await manifests.write('node.yaml', node());
  await manifests.write('web.yaml', service('web', [WEB_IP, WEB_IP6]));
  await setWebEndpoints(topo.backends.map((_, k) => k + 1));
  for (const [file, objects] of Object.entries(opts.extra ?? {})) await manifests.write(file, ...objects);

  const rulesetArgs = [...(opts.mode ? ['--proxy-mode', opts.mode] : []), ...(opts.rulesetArgs ?? [])];
  const config: AgentConfig = { manifestsDir: manifests.dir, hostname: NODE_NAME, syncPeriod: opts.syncPeriod, rulesetArgs, wrapper: opts.wrapper };
  await opts.beforeStart?.(topo);
  const agent = startAgent(topo, config);
  // On failure, the agent's own words are the first thing to read.
  t.teardown(() => {
    if (!t.passed) t.log(`agent output (tail):\n${agent.logs().slice(-3000)}`);
  });
  const ready = { iptables: waitForServiceRule, ipvs: waitForVirtualServer, userspace: waitForListener, nftables: waitForServiceIP }[opts.mode ?? 'nftables'];
  await ready(topo, agent, WEB_IP, opts.readyTimeoutMs);
  await ready(topo, agent, WEB_IP6, opts.readyTimeoutMs);
  return { topo, manifests, agent, config, setWebEndpoints };
}
