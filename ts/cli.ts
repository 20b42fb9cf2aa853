// kproxy's command line: `kproxy [flags]` runs the proxy, `kproxy plan [flags]`
// prints the nft text it would program, `kproxy --cleanup` removes its tables.
import { existsSync, watch } from 'node:fs';
import pino from 'pino';
import { Agent } from './agent.js';
import { ConfigError, loadConfig, usage, type ProxyConfig } from './config/index.js';
import { DataplaneError, NftDataplane } from './dataplane/addon.js';
import type { IPFamily } from './dataplane/types.js';
import { createLogger, type Logger } from './log.js';
import { ManifestsSource } from './sources/manifests.js';
import type { Source } from './sources/types.js';
import { ChangeTracker } from './tracker/change-tracker.js';

/** Both families, unless this kernel has no IPv6 (then an ip6 table could never be programmed). */
const FAMILIES: IPFamily[] = existsSync('/proc/sys/net/ipv6') ? ['IPv4', 'IPv6'] : ['IPv4'];

function clusterCIDRFor(config: ProxyConfig, family: IPFamily): string | undefined {
  return config.clusterCIDRs.find((c) => c.includes(':') === (family === 'IPv6'));
}

function dataplanes(config: ProxyConfig, fake: boolean): NftDataplane[] {
  return FAMILIES.map(
    (family) =>
      new NftDataplane({
        family,
        clusterCIDR: clusterCIDRFor(config, family),
        masqueradeAll: config.masqueradeAll,
        masqueradeBit: config.masqueradeBit,
        fake,
      }),
  );
}

async function makeSource(config: ProxyConfig, logger: Logger): Promise<Source> {
  if (config.manifests) return new ManifestsSource({ dir: config.manifests, nodeName: config.hostnameOverride, logger });
  // Loaded only when used: @kubernetes/client-node costs ~30 MiB of heap.
  const { KubernetesSource } = await import('./sources/kubernetes.js');
  return new KubernetesSource({
    kubeconfig: config.kubeconfig || undefined,
    master: config.master || undefined,
    nodeName: config.hostnameOverride,
    resyncMs: config.configSyncPeriodMs,
    logger,
  });
}

/** Loads every object once, renders the rulesets with the in-memory fake, prints them. */
async function plan(config: ProxyConfig, logger: Logger): Promise<void> {
  const source = await makeSource(config, logger);
  const tracker = new ChangeTracker({
    families: FAMILIES,
    onInvalid: (kind, reason, ref) => logger.warn({ kind, reason, object: ref }, 'Skipping invalid object'),
  });
  await new Promise<void>((resolve, reject) => {
    source
      .start({
        onEvent: (kind, type, obj, old) => {
          if (kind !== 'Node') tracker.onEvent(kind, type, obj, old);
        },
        onSynced: () => resolve(),
        onInvalid: (kind, reason, ref) => logger.warn({ kind, reason, object: ref }, 'Skipping invalid object'),
      })
      .catch(reject);
  });
  await source.stop();
  const changes = tracker.drain();
  for (const dp of dataplanes(config, true)) {
    const c = changes.get(dp.family) ?? { upserts: [], deletes: [] };
    const report = await dp.sync({ full: true, upserts: c.upserts, deletes: c.deletes });
    for (const r of report.rejected) logger.warn({ key: r.key, reason: r.reason }, 'Skipping invalid ServicePort');
    process.stdout.write(`# kproxy plan: ${dp.family}\n${dp.render()}`);
  }
}

async function cleanup(config: ProxyConfig, logger: Logger): Promise<void> {
  for (const dp of dataplanes(config, false)) {
    await dp.cleanup();
    logger.info({ ipFamily: dp.family }, 'Deleted kproxy table');
  }
}

async function run(config: ProxyConfig, logger: Logger): Promise<void> {
  if (process.getuid?.() !== 0) logger.warn({}, 'Not running as root: programming nftables needs CAP_NET_ADMIN');
  const agent = new Agent({ config, logger, source: await makeSource(config, logger), dataplanes: dataplanes(config, false) });
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
  const isPlan = argv[0] === 'plan';
  let config: ProxyConfig;
  try {
    config = loadConfig(isPlan ? argv.slice(1) : argv);
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
  // plan prints nft text on stdout, so its logs go to stderr.
  const logger = createLogger(config.verbosity, isPlan ? pino.destination(2) : undefined);
  for (const w of config.warnings) logger.warn({}, w);
  try {
    if (isPlan) await plan(config, logger);
    else if (config.cleanup) await cleanup(config, logger);
    else await run(config, logger);
  } catch (e) {
    const code = e instanceof DataplaneError ? e.code : undefined;
    logger.fatal({ code, err: e instanceof Error ? e.message : String(e) }, 'kproxy failed');
    process.exit(1);
  }
}

await main(process.argv.slice(2));
