// JSON logging with pino, levelled like klog's -v: 0-1 info, 2-3 debug, 4+ trace.
// Code logs "at -v=N" through logV so the mapping lives in one place.

import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

export type PinoLevel = 'info' | 'debug' | 'trace';

/** The pino level that shows klog verbosity `v`. */
export function levelForVerbosity(v: number): PinoLevel {
  if (v >= 4) return 'trace';
  if (v >= 2) return 'debug';
  return 'info';
}

/** A JSON logger showing messages up to klog verbosity `verbosity`; writes to stdout unless `dest` is given. */
export function createLogger(verbosity: number, dest?: DestinationStream): Logger {
  const options = { level: levelForVerbosity(verbosity), base: { pid: process.pid } };
  return dest ? pino(options, dest) : pino(options);
}

/** Logs `msg` at klog verbosity `v` (adds a "v" field, as klog's JSON format does). */
export function logV(logger: Logger, v: number, fields: Record<string, unknown>, msg: string): void {
  const level = v <= 1 ? 'info' : levelForVerbosity(v);
  logger[level]({ v, ...fields }, msg);
}

/** One line per proxy-rules sync, at -v=2 (debug), as kube-proxy logs "Syncing nftables rules". */
export function logSync(logger: Logger, fields: Record<string, unknown>, msg = 'Synced proxy rules'): void {
  logV(logger, 2, fields, msg);
}
