// `kproxy status`: asks a running agent for its status document on the metrics port and
// prints it as a table (or as the JSON). Loaded by the CLI only for this command, so it
// imports neither the agent nor the addon.
import { get } from 'node:http';
import { appendPortIfNeeded, joinHostPort, splitHostPort } from '../server/address.js';
import { renderTable } from './table.js';
import { STATUS_JSON_PATH, STATUS_VERSION, type StatusDoc } from './types.js';

export const DEFAULT_METRICS_ADDRESS = '127.0.0.1:10249';
const DEFAULT_TIMEOUT_MS = 5000;

export function statusUsage(): string {
  return `Usage: kproxy status [--metrics-address ADDRESS] [-o table|json] [--timeout SECONDS]

Shows what a running kproxy agent programs: each Service port with its VIPs, endpoints
(ready/terminating/local), traffic policies and whether the proxier programmed it, then
the last syncs, errors and invalid objects. It reads ${STATUS_JSON_PATH} on the agent's
metrics port; the same is on the page at / there.

Flags:
  --metrics-address ADDRESS  the agent's --metrics-bind-address: host:port, a bare IP
                             (port 10249) or an http:// URL; 0.0.0.0 and :: mean this
                             host (default ${DEFAULT_METRICS_ADDRESS})
  -o, --output FORMAT        table (default) or json (the document as the agent serves it)
      --timeout SECONDS      how long to wait for the agent (default ${DEFAULT_TIMEOUT_MS / 1000})
  -h, --help                 this text

Exit status: 0 when shown, 1 when no agent answered, 2 for a usage error.
`;
}

export interface StatusArgs {
  address: string;
  output: 'table' | 'json';
  timeoutMs: number;
  help: boolean;
}

export class UsageError extends Error {}

export function parseStatusArgs(argv: readonly string[]): StatusArgs {
  const args: StatusArgs = { address: DEFAULT_METRICS_ADDRESS, output: 'table', timeoutMs: DEFAULT_TIMEOUT_MS, help: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const name = eq > 0 ? a.slice(0, eq) : a;
    const value = (): string => {
      const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined || v === '') throw new UsageError(`${name} needs a value`);
      return v;
    };
    if (name === '-h' || name === '--help') args.help = true;
    else if (name === '--metrics-address' || name === '--metrics-bind-address') args.address = value();
    else if (name === '-o' || name === '--output') {
      const v = value();
      if (v !== 'table' && v !== 'json') throw new UsageError(`${name} must be table or json, not "${v}"`);
      args.output = v;
    } else if (name === '--timeout') {
      const v = Number(value().replace(/s$/, ''));
      if (!(v > 0)) throw new UsageError(`--timeout must be a positive number of seconds`);
      args.timeoutMs = v * 1000;
    } else throw new UsageError(`unknown flag or argument "${a}"`);
  }
  return args;
}

/** The base URL for a --metrics-address: a bind-all address means this host's loopback. */
export function agentURL(address: string): string {
  if (/^https?:\/\//.test(address)) return address.replace(/\/+$/, '');
  let hp: { host: string; port: string };
  try {
    hp = splitHostPort(appendPortIfNeeded(address, 10249));
  } catch (e) {
    throw new UsageError(`--metrics-address ${address}: ${(e as Error).message}`);
  }
  if (!/^\d{1,5}$/.test(hp.port) || Number(hp.port) > 65535) throw new UsageError(`--metrics-address ${address}: "${hp.port}" is not a port`);
  const host = hp.host === '' || hp.host === '0.0.0.0' ? '127.0.0.1' : hp.host === '::' ? '::1' : hp.host;
  return `http://${joinHostPort(host, hp.port)}`;
}

export class AgentUnreachable extends Error {}

/** GETs the status document; an AgentUnreachable error says what to try. */
export function fetchStatus(base: string, timeoutMs: number): Promise<{ doc: StatusDoc; body: string }> {
  const url = `${base}${STATUS_JSON_PATH}`;
  return new Promise((resolve, reject) => {
    const fail = (why: string) => reject(new AgentUnreachable(`no kproxy agent answered at ${base}: is it running? use --metrics-address (${why})`));
    const req = get(url, { timeout: timeoutMs, headers: { Accept: 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (e) => fail(e.message));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) return fail(`GET ${STATUS_JSON_PATH} answered ${res.statusCode}: not a kproxy agent, or one without the status page`);
        let doc: StatusDoc;
        try {
          doc = JSON.parse(body) as StatusDoc;
        } catch {
          return fail(`GET ${STATUS_JSON_PATH} did not return JSON`);
        }
        if (doc?.kind !== 'KproxyStatus') return fail(`GET ${STATUS_JSON_PATH} returned something other than a kproxy status document`);
        if (doc.version !== STATUS_VERSION) return fail(`the agent's status document is version ${doc.version}; this kproxy reads version ${STATUS_VERSION}`);
        resolve({ doc, body });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs / 1000}s`)));
    req.on('error', (e: NodeJS.ErrnoException) => fail(e.code ? `${e.code}: ${e.message}` : e.message));
  });
}

export interface StatusIO {
  out: (s: string) => void;
  err: (s: string) => void;
}

const STDIO: StatusIO = { out: (s) => void process.stdout.write(s), err: (s) => void process.stderr.write(s) };

/** Runs `kproxy status ARGS`; returns the exit code. */
export async function statusCommand(argv: string[], io: StatusIO = STDIO): Promise<number> {
  let args: StatusArgs;
  let base: string;
  try {
    args = parseStatusArgs(argv);
    if (args.help) {
      io.out(statusUsage());
      return 0;
    }
    base = agentURL(args.address);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`kproxy status: ${e.message}\nRun 'kproxy status --help' for usage.\n`);
    return 2;
  }
  try {
    const { doc } = await fetchStatus(base, args.timeoutMs);
    io.out(args.output === 'json' ? `${JSON.stringify(doc, null, 2)}\n` : renderTable(doc, base));
    return 0;
  } catch (e) {
    if (!(e instanceof AgentUnreachable)) throw e;
    io.err(`kproxy status: ${e.message}\n`);
    return 1;
  }
}
