// kproxy's command line: `kproxy [flags]` runs the proxy, `kproxy plan [flags]` prints
// the rules it would program, `kproxy trace [flags] --from IP --to IP:PORT/PROTO` says
// what those rules do to one connection, `kproxy --cleanup` removes its rules.
import { existsSync, readFileSync, watch } from 'node:fs';
import { release } from 'node:os';
import { Registry } from 'prom-client';
import pino from 'pino';
import { Agent } from './agent.js';
import { ProxierError } from './addon/errors.js';
import { ConfigError, loadConfig, usage, type ProxyConfig } from './config/index.js';
import { createLogger, type Logger } from './log.js';
import type { IPFamily } from './model/types.js';
import { localDetectors } from './proxier/local-detector.js';
import { ConntrackReconciler } from './conntrack/reconciler.js';
import { createProxiers, implementedModes } from './proxier/registry.js';
import { setSysctl, TCP_BE_LIBERAL } from './proxier/sysctl.js';
import type { LocalDetector, Proxier, ProxyMode } from './proxier/types.js';
import { EarlySource } from './sources/early.js';
import { ManifestsSource } from './sources/manifests.js';
import type { Source } from './sources/types.js';
import { PodCIDRWatch, POD_CIDR_WAIT_MS } from './tracker/pod-cidrs.js';
import { parseTraceArgs, printTrace, type TraceArgs } from './trace.js';

/** Both families, unless this kernel has no IPv6 (then an ip6 table could never be programmed). */
const FAMILIES: IPFamily[] = existsSync('/proc/sys/net/ipv6') ? ['IPv4', 'IPv6'] : ['IPv4'];

/** Each family's local traffic detector; a family without one is logged, as upstream does. */
function detectors(config: ProxyConfig, logger: Logger, podCIDRs?: string[]): Partial<Record<IPFamily, LocalDetector>> {
  const found = localDetectors(FAMILIES, {
    mode: config.detectLocalMode,
    clusterCIDRs: config.clusterCIDRs,
    podCIDRs,
    bridgeInterface: config.bridgeInterface,
    interfaceNamePrefix: config.interfaceNamePrefix,
  });
  for (const f of FAMILIES) {
    if (!found[f]) logger.info({ ipFamily: f, detectLocalMode: config.detectLocalMode, clusterCIDRs: config.clusterCIDRs, podCIDRs }, 'No CIDR of this family for local traffic detection: no off-cluster masquerade in it');
  }
  return found;
}

function proxiers(config: ProxyConfig, logger: Logger, fake: boolean, registry = new Registry(), local: Partial<Record<IPFamily, LocalDetector>> = {}): Promise<Proxier[]> {
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
  const { KubernetesSource } = await import('./sources/kubernetes.js');
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
async function prepare(config: ProxyConfig, logger: Logger, fake: boolean, waitMs: number, registry = new Registry()): Promise<{ source: Source; proxiers: Proxier[] }> {
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

/**
 * Loads every object once and programs the in-memory fakes with them, through the same
 * agent loop as `run` (one full sync), for `plan` and `trace`.
 */
async function loadIntoFakes(config: ProxyConfig, logger: Logger): Promise<Proxier[]> {
  // A manifests source has read its files once started; an API server gets a while to list the Node.
  const { source, proxiers: fakes } = await prepare(config, logger, true, config.manifests ? 0 : 30_000);
  const agent = new Agent({ config: { ...config, metricsBindAddress: '', healthzBindAddress: '' }, logger, source, proxiers: fakes, serviceHealth: false });
  const synced = agent.nextSync();
  await agent.start();
  await synced;
  await agent.stop();
  return fakes;
}

/** Prints the rulesets kproxy would program, as the mode's canonical text. */
async function plan(config: ProxyConfig, logger: Logger): Promise<void> {
  for (const p of await loadIntoFakes(config, logger)) process.stdout.write(`# kproxy plan: ${config.mode} ${p.family}\n${p.render()}`);
}

/** Says what the rules do to one new connection, and why. */
async function trace(config: ProxyConfig, logger: Logger, args: TraceArgs): Promise<void> {
  const family: IPFamily = args.to.host.includes(':') ? 'IPv6' : 'IPv4';
  const p = (await loadIntoFakes(config, logger)).find((x) => x.family === family);
  if (!p) throw new ProxierError('E_INVALID_OPTION', `no ${family} proxier on this node`);
  const packet = { src: args.from, dst: args.to.host, port: args.to.port, protocol: args.to.protocol, fromNode: args.fromNode, localCidrs: args.localCidrs };
  process.stdout.write(printTrace(packet, p.explain(packet), args.json));
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

/** Deletes the rules of `modes`, each family; returns the failures (each logged). */
async function cleanupModes(config: ProxyConfig, logger: Logger, modes: ProxyMode[]): Promise<number> {
  let failed = 0;
  for (const mode of modes) {
    // A registry of its own: these proxiers never sync, and their metrics are not the agent's.
    try {
      for (const p of await proxiers({ ...config, mode: mode as ProxyConfig['mode'] }, logger, false, new Registry())) {
        await p.cleanup();
        logger.info({ ipFamily: p.family, mode }, 'Deleted the rules of this mode, if any');
      }
    } catch (e) {
      failed++;
      logger.error({ mode, err: e instanceof Error ? e.message : String(e) }, 'Could not delete the rules of this mode');
    }
  }
  return failed;
}

/** As upstream's --cleanup: every mode's rules go. */
async function cleanup(config: ProxyConfig, logger: Logger): Promise<void> {
  if ((await cleanupModes(config, logger, implementedModes())) > 0) throw new ProxierError('E_KERNEL_REJECTED', 'some rules could not be deleted');
}

async function run(config: ProxyConfig, logger: Logger): Promise<void> {
  if (process.getuid?.() !== 0) logger.warn({}, 'Not running as root: programming the kernel needs CAP_NET_ADMIN');
  // As upstream's server: set before the proxiers start (iptables mode reads it).
  if (config.tcpBeLiberal) await setSysctl(TCP_BE_LIBERAL, '1', logger);
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

export async function main(argv: string[]): Promise<void> {
  const command = argv[0] === 'plan' || argv[0] === 'trace' ? argv[0] : 'run';
  let config: ProxyConfig;
  let traceArgs: TraceArgs | undefined;
  try {
    let rest = command === 'run' ? argv : argv.slice(1);
    if (command === 'trace') ({ trace: traceArgs, rest } = parseTraceArgs(rest));
    config = loadConfig(rest);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`kproxy: ${e.message}\nRun 'kproxy --help' for the accepted flags.\n`);
      process.exit(2);
    }
    throw e;
  }
  if (config.help) {
    process.stdout.write(usage());
    return;
  }
  // `kproxy plan | head` closes stdout early: that is not an error.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => process.exit(e.code === 'EPIPE' ? 0 : 1));
  // plan and trace print their answer on stdout, so their logs go to stderr.
  const logger = createLogger(config.verbosity, command === 'run' ? undefined : pino.destination(2));
  for (const w of config.warnings) logger.warn({}, w);
  try {
    if (command === 'plan') await plan(config, logger);
    else if (command === 'trace') await trace(config, logger, traceArgs!);
    else if (config.cleanup) await cleanup(config, logger);
    else await run(config, logger);
  } catch (e) {
    const code = e instanceof ProxierError ? e.code : undefined;
    logger.fatal({ code, err: e instanceof Error ? e.message : String(e) }, 'kproxy failed');
    process.exit(1);
  }
}

await main(process.argv.slice(2));
