// kproxy's command line: `kproxy [flags]` runs the proxy (kube-proxy's flags), and a small
// table of commands sits beside it: plan (the rules it would program), trace (what they do to
// one connection), status (ask a running agent), help. `--cleanup`, `--init-only`,
// `--write-config-to` and `--version` are flags, as upstream's.
import { writeFileSync } from 'node:fs';
import pino from 'pino';
import { ProxierError } from './addon/errors.js';
import { ConfigError, loadConfig, type ProxyConfig } from './config/index.js';
import { parseFlags } from './config/flags.js';
import { helpFor } from './commands/usage.js';
import { createLogger } from './log.js';
import { parseTraceArgs, type TraceArgs } from './trace.js';
import { versionText } from './version.js';
import { yaml } from './yaml.js';

/** A command: its argv (after its name) in, the exit status out. */
type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  run: (argv) => proxyCommand('run', argv),
  plan: (argv) => proxyCommand('plan', argv),
  trace: (argv) => proxyCommand('trace', argv),
  // Loaded only for this command: it needs neither the agent nor the addon.
  status: async (argv) => (await import('./status/command.js')).statusCommand(argv),
  help: helpCommand,
};

/** The flags before "--". */
const flagArgs = (argv: string[]) => (argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv);

/** -h / --help among the flags: the command's help, whatever else is wrong. */
function asksForHelp(argv: string[]): boolean {
  return flagArgs(argv).some((a) => a === '-h' || a === '--help' || a === '--help=true');
}

/** --version[=raw|true|false], checked as the flag parser does; undefined when not asked. */
function asksForVersion(argv: string[]): 'true' | 'raw' | undefined {
  const given = flagArgs(argv).filter((a) => a === '--version' || a.startsWith('--version='));
  if (given.length === 0) return undefined;
  const v = parseFlags(given).values.get('version');
  return v === 'true' || v === 'raw' ? v : undefined;
}

async function helpCommand(argv: string[]): Promise<number> {
  const text = await helpFor(argv[0]);
  if (text === undefined) {
    process.stderr.write(`kproxy help: unknown command ${JSON.stringify(argv[0])}; the commands: plan, trace, status, help\n`);
    return 2;
  }
  process.stdout.write(text);
  return 0;
}

/** A usage error: said once, with where to look, exit status 2 (as pflag's callers). */
function usageError(command: string, e: ConfigError): number {
  const help = command === 'run' ? 'kproxy --help' : `kproxy ${command} --help`;
  process.stderr.write(`kproxy: ${e.message}\nRun '${help}' for the accepted flags.\n`);
  return 2;
}

/** --write-config-to: the effective configuration, as the YAML of a v1alpha1 file (upstream's). */
function writeConfig(config: ProxyConfig, file: string): void {
  writeFileSync(file, yaml().stringify(config.raw, { lineWidth: 0 }));
}

/** run, plan and trace: kube-proxy's flags (trace takes its own out first). */
async function proxyCommand(command: 'run' | 'plan' | 'trace', argv: string[]): Promise<number> {
  if (asksForHelp(argv)) return helpCommand([command]);
  let config: ProxyConfig;
  let traceArgs: TraceArgs | undefined;
  try {
    let rest = argv;
    // As upstream's verflag: --version answers before the config file is even read.
    const version = asksForVersion(argv);
    if (version) {
      process.stdout.write(versionText(version === 'raw'));
      return 0;
    }
    if (command === 'trace') ({ trace: traceArgs, rest } = parseTraceArgs(rest));
    config = loadConfig(rest);
  } catch (e) {
    if (e instanceof ConfigError) return usageError(command, e);
    throw e;
  }
  // plan and trace print their answer on stdout, so their logs go to stderr.
  const logger = createLogger(config.verbosity, { format: config.loggingFormat, dest: command === 'run' ? undefined : pino.destination(2) });
  for (const w of config.warnings) logger.warn({}, w);
  try {
    if (config.writeConfigTo) {
      writeConfig(config, config.writeConfigTo);
      logger.info({ file: config.writeConfigTo }, 'Wrote configuration');
      return 0;
    }
    // Loaded here: the commands pull in the agent and the addon, which help and status need not.
    const commands = await import('./commands/run.js');
    if (command === 'plan') await (await import('./commands/plan.js')).plan(config, logger);
    else if (command === 'trace') await (await import('./commands/plan.js')).trace(config, logger, traceArgs!);
    else if (config.cleanup) await commands.cleanup(config, logger);
    else if (config.initOnly) await commands.initOnly(config, logger);
    else await commands.run(config, logger);
    return 0;
  } catch (e) {
    if (closedStdout(e)) return 0;
    const code = e instanceof ProxierError ? e.code : undefined;
    logger.fatal({ code, err: e instanceof Error ? e.message : String(e) }, 'kproxy failed');
    return 1;
  }
}

/** `kproxy … | head` closed stdout early: that is not an error. */
function closedStdout(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED';
}

export async function main(argv: string[]): Promise<void> {
  // First of all: --help's text is long enough to meet a closed pipe too.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => process.exit(closedStdout(e) ? 0 : 1));
  const command = COMMANDS[argv[0]] ? argv[0] : undefined;
  const status = command ? await COMMANDS[command](argv.slice(1)) : await proxyCommand('run', argv);
  // A running proxy holds the process with its servers and sync loop; one-shots end when done.
  if (status !== 0) process.exit(status);
}

await main(process.argv.slice(2));
