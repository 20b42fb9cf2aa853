// Logging with pino, gated like klog's -v: a V(n) message shows when n ≤ -v. The pino level
// is the coarse gate (0-1 info, 2-3 debug, 4+ trace, so pino's own filtering still drops most
// calls early); logV checks the exact verbosity. Two formats, as kube-proxy's --logging-format:
// json (pino's lines, with klog's "v" field) and text (klog-like lines, made from pino's).

import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

export type PinoLevel = 'info' | 'debug' | 'trace';
export type LogFormat = 'json' | 'text';

/** The verbosity a logger was made with; children see it through their prototype. */
const VERBOSITY = Symbol('kproxy.verbosity');

/** The pino level that shows klog verbosity `v`. */
export function levelForVerbosity(v: number): PinoLevel {
  if (v >= 4) return 'trace';
  if (v >= 2) return 'debug';
  return 'info';
}

export interface LoggerOptions {
  format?: LogFormat;
  /** Where lines go (stdout by default). */
  dest?: DestinationStream;
}

/** A logger showing messages up to klog verbosity `verbosity`. */
export function createLogger(verbosity: number, options: LoggerOptions | DestinationStream = {}): Logger {
  const { format = 'json', dest } = 'write' in options ? { dest: options as DestinationStream } : (options as LoggerOptions);
  const opts = { level: levelForVerbosity(verbosity), base: { pid: process.pid } };
  // Synchronous: a fatal line must be out before process.exit().
  const target = dest ?? pino.destination({ fd: 1, sync: true });
  const logger = pino(opts, format === 'text' ? { write: (line: string) => target.write(klogLine(line)) } : target);
  (logger as unknown as Record<symbol, number>)[VERBOSITY] = verbosity;
  return logger;
}

/** Logs `msg` at klog verbosity `v` (adds a "v" field, as klog's JSON format does). */
export function logV(logger: Logger, v: number, fields: Record<string, unknown>, msg: string): void {
  const max = (logger as unknown as Record<symbol, number | undefined>)[VERBOSITY];
  if (max !== undefined && v > max) return;
  const level = v <= 1 ? 'info' : levelForVerbosity(v);
  logger[level]({ v, ...fields }, msg);
}

/** One line per proxy-rules sync, at -v=2 (debug), as kube-proxy logs "Syncing nftables rules". */
export function logSync(logger: Logger, fields: Record<string, unknown>, msg = 'Synced proxy rules'): void {
  logV(logger, 2, fields, msg);
}

// --- text format ---------------------------------------------------------------------------

// pino's fields that the klog header carries, or that klog's text has no place for.
const HEADER_FIELDS = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'v']);

/** klog's severity letter for a pino level. */
function severity(level: number): string {
  if (level >= 60) return 'F';
  if (level >= 50) return 'E';
  if (level >= 40) return 'W';
  return 'I';
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/**
 * One pino JSON line as klog's text: `I1202 09:30:00.123000   1234 kproxy] "msg" key="value"`.
 * klog puts file:line before the "]"; kproxy has no such thing to give, so it names itself.
 * Strings are quoted, numbers and booleans bare, objects as JSON, multi-line strings as klog's
 * `key=<` block, errors by their message.
 */
export function klogLine(json: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json);
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const t = new Date(typeof entry.time === 'number' ? entry.time : Date.now());
  const micros = pad(t.getMilliseconds(), 3) + '000';
  const header = `${severity(Number(entry.level))}${pad(t.getMonth() + 1)}${pad(t.getDate())} ` +
    `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}.${micros} ${String(entry.pid ?? process.pid).padStart(7)} kproxy]`;
  const parts = [header, JSON.stringify(String(entry.msg ?? ''))];
  for (const [key, value] of Object.entries(entry)) {
    if (HEADER_FIELDS.has(key) || value === undefined) continue;
    parts.push(`${key}=${klogValue(value)}`);
  }
  return `${parts.join(' ')}\n`;
}

function klogValue(value: unknown): string {
  if (typeof value === 'string') {
    if (!value.includes('\n')) return JSON.stringify(value);
    return `<\n${value.replace(/\n$/, '').split('\n').map((l) => `\t${l}`).join('\n')}\n >`;
  }
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value === null) return '<nil>';
  // pino's serialised Error: klog prints err="message".
  if (typeof value === 'object' && 'message' in value && 'stack' in value) return JSON.stringify(String((value as { message: unknown }).message));
  return JSON.stringify(value);
}
