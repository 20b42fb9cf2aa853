// The conntrack settings kube-proxy applies at start (conntrack.* / --conntrack-*), upstream's
// defaults and validation: nf_conntrack_max from maxPerCore × CPUs with min as the floor, and
// four timeouts. 0 leaves a setting as the kernel has it. tcpBeLiberal is resolved in index.ts.
import { ConfigError } from './errors.js';
import { formatGoDuration, parseGoDuration } from './duration.js';
import { describe, type Sourced } from './ipvs.js';
import type { FlagValue } from './flags.js';

export interface ConntrackConfig {
  maxPerCore: number;
  min: number;
  tcpEstablishedTimeoutMs: number;
  tcpCloseWaitTimeoutMs: number;
  udpTimeoutMs: number;
  udpStreamTimeoutMs: number;
}

export const DEFAULT_CONNTRACK: ConntrackConfig = {
  maxPerCore: 32768,
  min: 131072,
  tcpEstablishedTimeoutMs: 24 * 3_600_000,
  tcpCloseWaitTimeoutMs: 3_600_000,
  udpTimeoutMs: 0,
  udpStreamTimeoutMs: 0,
};

export type ConntrackSourced = { [K in keyof ConntrackConfig]: Sourced<number> };

// Field, flag, and whether it is a duration.
const FIELDS: Array<[keyof ConntrackConfig, string, string, boolean]> = [
  ['maxPerCore', 'maxPerCore', 'conntrack-max-per-core', false],
  ['min', 'min', 'conntrack-min', false],
  ['tcpEstablishedTimeoutMs', 'tcpEstablishedTimeout', 'conntrack-tcp-timeout-established', true],
  ['tcpCloseWaitTimeoutMs', 'tcpCloseWaitTimeout', 'conntrack-tcp-timeout-close-wait', true],
  ['udpTimeoutMs', 'udpTimeout', 'conntrack-udp-timeout', true],
  ['udpStreamTimeoutMs', 'udpStreamTimeout', 'conntrack-udp-timeout-stream', true],
];

export function conntrackFromFlags(flags: ReadonlyMap<string, FlagValue>): ConntrackSourced {
  const out = {} as ConntrackSourced;
  for (const [key, , flag] of FIELDS) {
    out[key] = { value: (flags.get(flag) as number | undefined) ?? DEFAULT_CONNTRACK[key], from: `--${flag}` };
  }
  return out;
}

/** The fields are pointers upstream: null or absent is the default, an explicit 0 is 0. */
export function conntrackFromFile(file: Record<string, any>): ConntrackSourced {
  const c: Record<string, unknown> = file.conntrack ?? {};
  const out = {} as ConntrackSourced;
  for (const [key, field, , isDuration] of FIELDS) {
    const v = c[field];
    const value = v === undefined ? DEFAULT_CONNTRACK[key] : isDuration ? parseGoDuration(v as string) : (v as number);
    out[key] = { value, from: `conntrack.${field}` };
  }
  return out;
}

/** Upstream's validateKubeProxyConntrackConfiguration: nothing negative. */
export function resolveConntrack(s: ConntrackSourced): ConntrackConfig {
  const out = { ...DEFAULT_CONNTRACK };
  for (const [key] of FIELDS) {
    if (s[key].value < 0) throw new ConfigError(s[key].from, describe(s[key], 'must be greater than or equal to 0'));
    out[key] = s[key].value;
  }
  return out;
}

/** The settings in the config file's shape (YAML keys, Go durations). */
export function rawConntrack(c: ConntrackConfig): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  for (const [key, field, , isDuration] of FIELDS) out[field] = isDuration ? formatGoDuration(c[key]) : c[key];
  return out;
}
