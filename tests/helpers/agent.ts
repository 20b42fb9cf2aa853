// How the netns suites run the real agent. The command lives here, in one place, so that
// a change to the CLI (entry point, flag names) is one edit.
import { existsSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { resolve } from 'node:path';
import { CLUSTER_CIDRS, GiveUp, REPO_ROOT, waitFor, type NsProcess, type Topology } from '../../ts/demo/topology.js';

/**
 * `node <AGENT_ENTRY...> <flags>`: the agent from its TypeScript sources. KPROXY_AGENT_ENTRY
 * (space-separated node arguments, e.g. "dist/cli.js") runs another build of it instead.
 */
export const AGENT_ENTRY = process.env.KPROXY_AGENT_ENTRY?.split(/\s+/).filter(Boolean) ?? ['--import', 'tsx', 'ts/cli.ts'];

export interface AgentConfig {
  /** The manifests source; or `kubeconfig`, the Kubernetes source. */
  manifestsDir?: string;
  kubeconfig?: string;
  /** --iptables-sync-period, e.g. '1s' (it also drives nftables mode, as upstream). */
  syncPeriod?: string;
  hostname?: string;
  extraArgs?: string[];
  /** Flags that shape the ruleset: given to the agent and to `plan` alike. */
  rulesetArgs?: string[];
  /** A command the agent runs under (e.g. setpriv and its flags): it execs node with the agent's args. */
  wrapper?: string[];
}

/** Flags that decide the ruleset: shared by the running agent and `plan`. */
export function rulesetFlags(cfg: AgentConfig): string[] {
  return [
    '--proxy-mode', 'nftables',
    ...(cfg.manifestsDir ? ['--manifests', cfg.manifestsDir] : []),
    ...(cfg.kubeconfig ? ['--kubeconfig', cfg.kubeconfig] : []),
    '--cluster-cidr', CLUSTER_CIDRS.join(','),
    '--hostname-override', cfg.hostname ?? 'test-node',
    ...(cfg.rulesetArgs ?? []),
  ];
}

export function agentFlags(cfg: AgentConfig): string[] {
  return [
    ...rulesetFlags(cfg),
    '--metrics-bind-address', '127.0.0.1:10249',
    '--healthz-bind-address', '0.0.0.0:10256',
    ...(cfg.syncPeriod ? ['--iptables-sync-period', cfg.syncPeriod] : []),
    '-v', '2',
    ...(cfg.extraArgs ?? []),
  ];
}

export interface Agent {
  process: NsProcess;
  /** Everything the agent printed so far (tail). */
  logs(): string;
  signal(sig: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL if it lingers. */
  stop(): Promise<void>;
}

/** Fails with a clear message when the agent's entry point is not there (yet). */
export function requireAgent(): void {
  const entry = resolve(REPO_ROOT, AGENT_ENTRY[AGENT_ENTRY.length - 1]);
  if (!existsSync(entry)) throw new Error(`${entry} does not exist yet: the agent CLI is needed for this suite`);
}

/** Starts the agent inside the topology's node namespace (killed by topology.destroy()). */
export function startAgent(topo: Topology, cfg: AgentConfig): Agent {
  requireAgent();
  const [cmd, ...pre] = cfg.wrapper?.length ? [...cfg.wrapper, process.execPath] : ['node'];
  return asAgent(topo.spawnIn(topo.node, cmd, [...pre, ...AGENT_ENTRY, ...agentFlags(cfg)]));
}

/** A proxy process (kproxy or upstream's) as the suites drive it. */
export function asAgent(child: NsProcess): Agent {
  return {
    process: child,
    logs: () => child.output(),
    signal: (sig) => child.kill(sig),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await child.exited;
      clearTimeout(timer);
    },
  };
}

/** Runs `plan` (the canonical nft text for the same inputs) inside ns and returns its stdout. */
export async function planText(topo: Topology, ns: string, cfg: AgentConfig): Promise<string> {
  requireAgent();
  const { stdout } = await topo.exec(ns, ['node', ...AGENT_ENTRY, 'plan', ...rulesetFlags(cfg)]);
  return stdout;
}

const familyOf = (ip: string) => (isIPv6(ip) ? 'ip6' : 'ip');

/** `nft list map <family> kube-proxy <map>` in the node namespace; '' when it does not exist. */
export async function listMap(topo: Topology, family: 'ip' | 'ip6', map: string): Promise<string> {
  const result = await topo.exec(topo.node, ['nft', 'list', 'map', family, 'kube-proxy', map], { allowFailure: true });
  return result.code === 0 ? result.stdout : '';
}

function failIfExited(agent: Agent): void {
  if (agent.process.exitCode !== null || agent.process.signalCode !== null) {
    throw new GiveUp(`the agent exited (${agent.process.exitCode ?? agent.process.signalCode}):\n${agent.logs().slice(-4000)}`);
  }
}

/** Waits until `ip` (a ClusterIP) is in the service-ips map of its family's table. */
export async function waitForServiceIP(topo: Topology, agent: Agent, ip: string, timeoutMs = 30_000): Promise<void> {
  await waitFor(`${ip} in ${familyOf(ip)} kube-proxy service-ips`, async () => {
    failIfExited(agent);
    return (await listMap(topo, familyOf(ip), 'service-ips')).includes(`${ip} . `);
  }, { timeoutMs });
}

/** iptables mode: waits until a nat rule captures `ip` (iptables-save of its family, either backend). */
export async function waitForServiceRule(topo: Topology, agent: Agent, ip: string, timeoutMs = 30_000): Promise<void> {
  const v6 = familyOf(ip) === 'ip6';
  await waitFor(`${ip} in ${v6 ? 'ip6tables' : 'iptables'} KUBE-SERVICES`, async () => {
    failIfExited(agent);
    // Either backend's (the agent picks the node's, backend.ts).
    const dumps = await Promise.all(['nft', 'legacy'].map((b) => topo.exec(topo.node, [`${v6 ? 'ip6tables' : 'iptables'}-${b}-save`, '-t', 'nat'], { allowFailure: true })));
    const r = { stdout: dumps.map((d) => d.stdout).join('\n') };
    // Straight in KUBE-SERVICES, or in one of its dispatch chains (KUBE-SVC- named), to a Service chain.
    return new RegExp(`^-A KUBE-(SERVICES|SVC-[A-Z2-7]{16}) -d ${ip.replaceAll('.', '\\.')}/${v6 ? 128 : 32} .* -j KUBE-(SVC|SVL|EXT|FW)-`, 'm').test(r.stdout);
  }, { timeoutMs });
}

/** IPVS mode: waits until IPVS has a virtual server on `ip` port `port` (TCP). */
export async function waitForVirtualServer(topo: Topology, agent: Agent, ip: string, timeoutMs = 30_000, port = 80): Promise<void> {
  const vs = isIPv6(ip) ? `[${ip}]:${port}` : `${ip}:${port}`;
  await waitFor(`IPVS virtual server ${vs}`, async () => {
    failIfExited(agent);
    return (await topo.exec(topo.node, ['ipvsadm', '-Ln', '-t', vs], { allowFailure: true })).code === 0;
  }, { timeoutMs });
}

/** Waits until a TCP socket listens on `ip`:`port` in the node namespace (userspace mode's frontends). */
export async function waitForListener(topo: Topology, agent: Agent, ip: string, timeoutMs = 30_000, port = 80): Promise<void> {
  const at = isIPv6(ip) ? `[${ip}]:${port}` : `${ip}:${port}`;
  await waitFor(`a listener on ${at}`, async () => {
    failIfExited(agent);
    const ss = await topo.exec(topo.node, ['ss', '-Hltn'], { allowFailure: true });
    return ss.stdout.split('\n').some((l) => l.split(/\s+/).includes(at));
  }, { timeoutMs });
}

/** Waits until `ip` is gone from the service-ips map of its family's table. */
export async function waitForServiceIPGone(topo: Topology, agent: Agent, ip: string, timeoutMs = 30_000): Promise<void> {
  await waitFor(`${ip} to leave ${familyOf(ip)} kube-proxy service-ips`, async () => {
    failIfExited(agent);
    const map = await listMap(topo, familyOf(ip), 'service-ips');
    return map !== '' && !map.includes(`${ip} . `);
  }, { timeoutMs });
}

/** Polls a condition while making sure the agent is still alive. */
export function waitWhileRunning<T>(agent: Agent, what: string, check: () => Promise<T | undefined | false>, timeoutMs = 30_000) {
  return waitFor(what, async () => {
    failIfExited(agent);
    return check();
  }, { timeoutMs });
}

/** Sum of a metric's samples (all label sets matching `labels`) from the agent's /metrics. */
export async function metricValue(topo: Topology, name: string, labels: Record<string, string> = {}): Promise<number> {
  const { stdout } = await topo.exec(topo.node, ['curl', '-sf', 'http://127.0.0.1:10249/metrics']);
  let sum = 0;
  for (const line of stdout.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!match || match[1] !== name) continue;
    if (Object.entries(labels).every(([k, v]) => (match[2] ?? '').includes(`${k}="${v}"`))) sum += Number(match[3]);
  }
  return sum;
}
