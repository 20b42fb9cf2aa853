// `kproxy plan` and `kproxy trace`: the objects loaded once into the modes' in-memory fakes,
// through the same agent loop as `run` (one full sync); nothing touches the kernel.
import { Agent } from '../agent.js';
import { ProxierError } from '../addon/errors.js';
import type { ProxyConfig } from '../config/index.js';
import type { Logger } from '../log.js';
import type { IPFamily } from '../model/types.js';
import type { Feature, Proxier } from '../proxier/types.js';
import { EarlySource } from '../sources/early.js';
import { printTrace, type TraceArgs } from '../trace.js';
import { FEATURE_NOTES, UnsupportedReporter } from '../tracker/unsupported.js';
import { prepare } from './run.js';

export interface Loaded {
  proxiers: Proxier[];
  /** Service features the mode does not program: "ns/name uses Feature". */
  unsupported: Array<{ service: string; feature: Feature }>;
}

/** Loads every object once and programs the fakes with them (one full sync). */
async function loadIntoFakes(config: ProxyConfig, logger: Logger): Promise<Loaded> {
  // A manifests source has read its files once started; an API server gets a while to list the Node.
  const { source, proxiers: fakes } = await prepare(config, logger, true, config.manifests ? 0 : 30_000);
  // The agent warns about these on stderr too; plan also says so beside the rules it prints.
  const unsupported: Loaded['unsupported'] = [];
  const supported = new Set(fakes.flatMap((p) => [...p.features]).filter((f) => fakes.every((p) => p.features.has(f))));
  const reporter = new UnsupportedReporter(supported, (service, feature) => unsupported.push({ service, feature }));
  const tapped = new EarlySource(source, (kind, type, obj) => {
    if (kind === 'Service' && type !== 'DELETED') reporter.check(obj);
  });
  const agent = new Agent({ config: { ...config, metricsBindAddress: '', healthzBindAddress: '' }, logger, source: tapped, proxiers: fakes, serviceHealth: false });
  const synced = agent.nextSync();
  await agent.start();
  await synced;
  await agent.stop();
  return { proxiers: fakes, unsupported };
}

/** The plan's comment lines for what the mode leaves out. */
export function unsupportedComments(mode: string, list: Loaded['unsupported']): string {
  return list.map(({ service, feature }) => {
    const note = FEATURE_NOTES[feature];
    return `# warning: ${service} uses ${feature}, which ${mode} mode does not program${note ? ` (${note})` : ''}\n`;
  }).join('');
}

/** Prints the rulesets kproxy would program, as the mode's canonical text. */
export async function plan(config: ProxyConfig, logger: Logger): Promise<void> {
  const { proxiers, unsupported } = await loadIntoFakes(config, logger);
  process.stdout.write(unsupportedComments(config.mode, unsupported));
  for (const p of proxiers) process.stdout.write(`# kproxy plan: ${config.mode} ${p.family}\n${p.render()}`);
}

/** Says what the rules do to one new connection, and why. */
export async function trace(config: ProxyConfig, logger: Logger, args: TraceArgs): Promise<void> {
  const family: IPFamily = args.to.host.includes(':') ? 'IPv6' : 'IPv4';
  const p = (await loadIntoFakes(config, logger)).proxiers.find((x) => x.family === family);
  if (!p) throw new ProxierError('E_INVALID_OPTION', `no ${family} proxier on this node`);
  const packet = { src: args.from, dst: args.to.host, port: args.to.port, protocol: args.to.protocol, fromNode: args.fromNode, localCidrs: args.localCidrs };
  process.stdout.write(printTrace(packet, p.explain(packet), args.json));
}
