// `kproxy [flags]`: the proxy itself, and its one-shot forms (--cleanup, --init-only), plus
// what plan and trace share with it (the source, the local detectors, the proxiers).
import { existsSync, readFileSync, watch } from 'node:fs';
import { release } from 'node:os';
import { Registry } from 'prom-client';
import { Agent } from '../agent.js';
import { ProxierError } from '../addon/errors.js';
import type { ProxyConfig } from '../config/index.js';
import type { Logger } from '../log.js';
import type { IPFamily } from '../model/types.js';
import { localDetectors } from '../proxier/local-detector.js';
import { ConntrackReconciler } from '../conntrack/reconciler.js';
import { applyOomScoreAdj, hasNetAdmin, setupConntrack } from '../proxier/node-setup.js';
import { createProxiers, implementedModes } from '../proxier/registry.js';
import type { LocalDetector, Proxier, ProxyMode } from '../proxier/types.js';
import { EarlySource } from '../sources/early.js';
import { ManifestsSource } from '../sources/manifests.js';
import type { Source } from '../sources/types.js';
import { PodCIDRWatch, POD_CIDR_WAIT_MS } from '../tracker/pod-cidrs.js';

/** Both families, unless this kernel has no IPv6 (then an ip6 table could never be programmed). */
export const FAMILIES: IPFamily[] = existsSync('/proc/sys/net/ipv6') ? ['IPv4', 'IPv6'] : ['IPv4'];

/** Upstream's warning (its proxiers' words) when no cluster CIDR is given at all. */
export const NO_CLUSTER_CIDR = 'clusterCIDR not specified, unable to distinguish between internal and external traffic';

/** Each family's local traffic detector; a missing one is logged, as upstream does. */
export function detectors(config: ProxyConfig, logger: Logger, podCIDRs?: string[], families = FAMILIES): Partial<Record<IPFamily, LocalDetector>> {
  const found = localDetectors(families, {
    mode: config.detectLocalMode,
    clusterCIDRs: config.clusterCIDRs,
    podCIDRs,
    bridgeInterface: config.bridgeInterface,
    interfaceNamePrefix: config.interfaceNamePrefix,
  });
  if (config.detectLocalMode === 'ClusterCIDR' && config.clusterCIDRs.length === 0) {
    // Traffic from outside the cluster to a ClusterIP is then not masqueraded: say so loudly.
    logger.warn({ detectLocalMode: config.detectLocalMode }, `${NO_CLUSTER_CIDR}: traffic to ClusterIPs from outside the cluster is not masqueraded; set --cluster-cidr (clusterCIDR)`);
    return found;
  }
  for (const f of families) {
    if (!found[f]) logger.info({ ipFamily: f, detectLocalMode: config.detectLocalMode, clusterCIDRs: config.clusterCIDRs, podCIDRs }, 'No CIDR of this family for local traffic detection: no off-cluster masquerade in it');
  }
  return found;
}

export function proxiers(config: ProxyConfig, logger: Logger, fake: boolean, registry = new Registry(), local: Partial<Record<IPFamily, LocalDetector>> = {}): Promise<Proxier[]> {
  return createProxiers(config.mode, FAMILIES, {
    localDetectors: local,
    masqueradeAll: config.masqueradeAll,
    masqueradeBit: config.masqueradeBit,
    localhostNodePorts: config.localhostNodePorts,
    ipvs: config.ipvs,
    userspace: config.userspace,
    fake,
    registry,
    logger,
  });
}

async function makeSource(config: ProxyConfig, logger: Logger): Promise<Source> {
  if (config.manifests) return new ManifestsSource({ dir: config.manifests, nodeName: config.hostnameOverride, logger });
  // Loaded only when used: @kubernetes/client-node costs ~30 MiB of heap.
  const { KubernetesSource } = await import('../sources/kubernetes.js');
  return new KubernetesSource({
    kubeconfig: config.kubeconfig || undefined,
    master: config.master || undefined,
    nodeName: config.hostnameOverride,
    protobuf: config.apiProtobuf,
    resyncMs: config.configSyncPeriodMs,
    logger,
  });
}

/**
 * The source and the proxiers. With detectLocalMode NodeCIDR the proxiers need the Node's
 * podCIDRs: the source starts first and they are waited for (a later change exits, as upstream).
 */
export async function prepare(config: ProxyConfig, logger: Logger, fake: boolean, waitMs: number, registry = new Registry()): Promise<{ source: Source; proxiers: Proxier[] }> {
  const source = await makeSource(config, logger);
  if (config.detectLocalMode !== 'NodeCIDR') return { source, proxiers: await proxiers(config, logger, fake, registry, detectors(config, logger)) };
  const watch = new PodCIDRWatch({ nodeName: config.hostnameOverride, logger });
  const early = new EarlySource(source, (kind, type, obj) => watch.onEvent(kind, type, obj));
  try {
    await early.begin();
    const podCIDRs = await watch.wait(waitMs);
    logger.info({ podCIDRs }, 'detectLocalMode NodeCIDR: local traffic is detected by the Node\'s podCIDRs');
    return { source: early, proxiers: await proxiers(config, logger, fake, registry, detectors(config, logger, podCIDRs)) };
  } catch (e) {
    await early.stop();
    throw e;
  }
}

/** Kernel modules whose absence means a mode has no rules here (and cleaning would load them). */
const MODE_MODULES: Partial<Record<ProxyMode, string[]>> = {
  nftables: ['nf_tables'],
  iptables: ['ip_tables', 'ip6_tables', 'nf_tables'],
  ipvs: ['ip_vs'],
};

/**
 * The mode may have rules on this node: one of its modules is loaded, or built in. Only a
 * kernel that says otherwise (/proc/modules and modules.builtin both readable, neither
 * naming one) skips the cleanup; built-in modules need not show in /sys/module.
 */
function mayHaveRules(mode: ProxyMode): boolean {
  const modules = MODE_MODULES[mode];
  if (!modules) return true;
  const read = (path: string) => { try { return readFileSync(path, 'utf8'); } catch { return undefined; } };
  const loaded = read('/proc/modules');
  const builtin = read(`/lib/modules/${release()}/modules.builtin`);
  if (loaded === undefined || builtin === undefined) return true;
  const names = new Set(loaded.split('\n').map((l) => l.split(' ')[0]));
  return modules.some((m) => names.has(m) || builtin.includes(`/${m}.ko`));
}

/** What one proxier's cleanup found, in the log: "Deleted" only when something was there. */
export function logCleanup(logger: Logger, mode: ProxyMode, family: IPFamily, removed: boolean | undefined): void {
  if (removed === true) logger.info({ ipFamily: family, mode }, 'Deleted the rules of this mode');
  else if (removed === false) logger.info({ ipFamily: family, mode }, 'No rules of this mode to delete');
  else logger.info({ ipFamily: family, mode }, 'Cleaned up the rules of this mode (whether any were there is not known)');
}

/** Deletes the rules of `modes`, each family; returns the failures (each logged). */
async function cleanupModes(config: ProxyConfig, logger: Logger, modes: ProxyMode[]): Promise<number> {
  let failed = 0;
  for (const mode of modes) {
    // A registry of its own: these proxiers never sync, and their metrics are not the agent's.
    try {
      for (const p of await proxiers({ ...config, mode: mode as ProxyConfig['mode'] }, logger, false, new Registry())) {
        logCleanup(logger, mode, p.family, await p.cleanup());
      }
    } catch (e) {
      failed++;
      logger.error({ mode, err: e instanceof Error ? e.message : String(e) }, 'Could not delete the rules of this mode');
    }
  }
  return failed;
}

/** Without CAP_NET_ADMIN nothing can be programmed: fail at once, with the reason, not every sync. */
export function requireNetAdmin(): void {
  if (hasNetAdmin() === false) {
    throw new ProxierError('E_KERNEL_REJECTED', 'kproxy needs CAP_NET_ADMIN to program the kernel, and this process does not have it ' +
      '(CapEff in /proc/self/status): run it as root, or grant the capability (a container: securityContext.capabilities.add: [NET_ADMIN]; ' +
      'systemd: AmbientCapabilities=CAP_NET_ADMIN)', 1 /* EPERM */);
  }
}

/** As upstream's --cleanup: every mode's rules go. */
export async function cleanup(config: ProxyConfig, logger: Logger): Promise<void> {
  requireNetAdmin();
  if ((await cleanupModes(config, logger, implementedModes())) > 0) throw new ProxierError('E_KERNEL_REJECTED', 'some rules could not be deleted');
}

/** The steps that need full root, as upstream's server before its proxier runs. */
function setupNode(config: ProxyConfig, logger: Logger) {
  return setupConntrack(config.conntrack, config.tcpBeLiberal, logger);
}

/**
 * --init-only: conntrack's sysctls, and each proxier's kernel preparation (IPVS: its modules
 * and sysctls), then exit, so that the proxy itself can run with CAP_NET_ADMIN alone.
 */
export async function initOnly(config: ProxyConfig, logger: Logger): Promise<void> {
  requireNetAdmin();
  setupNode(config, logger);
  for (const p of await proxiers(config, logger, false, new Registry())) await p.prepare?.();
  logger.info({ mode: config.mode }, 'Node initialised (--init-only); exiting');
}

export async function run(config: ProxyConfig, logger: Logger): Promise<void> {
  requireNetAdmin();
  // As upstream's server: before the proxiers start (iptables mode reads tcp_be_liberal).
  const setup = setupNode(config, logger);
  applyOomScoreAdj(config.oomScoreAdj, logger);
  // Upstream's checkBadConfig: unset in iptables and ipvs modes means every local address.
  if (config.mode !== 'nftables' && config.raw.nodePortAddresses?.length === 0) {
    logger.error({ err: 'nodePortAddresses is unset; NodePort connections will be accepted on all local IPs. Consider using `--nodeport-addresses primary`' },
      'Kube-proxy configuration may be incomplete or incorrect');
  }
  const registry = new Registry();
  const { source, proxiers: list } = await prepare(config, logger, false, POD_CIDR_WAIT_MS, registry);
  // userspace mode does no NAT: no conntrack entry of its making can go stale.
  const conntrack = config.mode === 'userspace' ? {} : Object.fromEntries(list.map((p) => [p.family, new ConntrackReconciler({ family: p.family, registry, logger })]));
  // The mode's kernel parts (IPVS: its modules and sysctls): missing ones end the start here.
  for (const p of list) await p.prepare?.();
  // As upstream's platformCleanup: the other modes' rules go (best effort), so that two never
  // both catch the same traffic. A mode whose modules are not loaded has none, and cleaning
  // would load them (userspace mode runs where netfilter is missing).
  await cleanupModes(config, logger, implementedModes().filter((m) => m !== config.mode && mayHaveRules(m)));
  const agent = new Agent({ config, logger, registry, source, proxiers: list, announce: true, conntrack });
  // The first sync loads nf_conntrack, and with it the sysctls that were not there yet.
  if (setup.missing.length > 0) void agent.nextSync().then(() => setupNode(config, logger), () => undefined);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'Stopping; rules stay in place');
    agent.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    logger.info({}, 'SIGHUP: replacing the rulesets with a full sync');
    agent.forceFullSync();
  });
  if (config.configFile) {
    // As upstream: a changed config file ends the process so its supervisor restarts it.
    watch(config.configFile, () => {
      logger.error({ file: config.configFile }, 'Config file changed; exiting so kproxy restarts with it');
      process.exit(1);
    });
  }
  logger.info({ mode: config.mode, families: FAMILIES, node: config.hostnameOverride, source: config.manifests ? `manifests ${config.manifests}` : 'kubernetes' }, 'Starting kproxy');
  await agent.start();
}
