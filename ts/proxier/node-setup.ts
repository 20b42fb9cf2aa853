// What kube-proxy's server does to the node before its proxier starts (cmd/kube-proxy/app
// server_linux.go setupConntrack, conntrack.go, server.go's OOM adjuster): conntrack's table
// size and hash, its timeouts, tcp_be_liberal, and the process's oom_score_adj. Unlike
// upstream, which fails the start when a conntrack sysctl cannot be written, every step here
// is logged and skipped: a read-only /proc/sys (an unprivileged container) must not stop a
// proxy that can otherwise run. The file system is injected for tests.

import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import type { ConntrackConfig } from '../config/conntrack.js';
import { logV, type Logger } from '../log.js';

export const CONNTRACK_MAX = 'net/netfilter/nf_conntrack_max';
export const HASHSIZE_PATH = '/sys/module/nf_conntrack/parameters/hashsize';
export const CONNTRACK_TIMEOUTS: Array<[keyof ConntrackConfig, string]> = [
  ['tcpEstablishedTimeoutMs', 'net/netfilter/nf_conntrack_tcp_timeout_established'],
  ['tcpCloseWaitTimeoutMs', 'net/netfilter/nf_conntrack_tcp_timeout_close_wait'],
  ['udpTimeoutMs', 'net/netfilter/nf_conntrack_udp_timeout'],
  ['udpStreamTimeoutMs', 'net/netfilter/nf_conntrack_udp_timeout_stream'],
];
export { TCP_BE_LIBERAL as TCP_BE_LIBERAL_SYSCTL } from './sysctl.js';
import { TCP_BE_LIBERAL as TCP_BE_LIBERAL_SYSCTL } from './sysctl.js';

/** The files node setup reads and writes; real ones by default. */
export interface NodeFiles {
  read(path: string): string;
  write(path: string, value: string): void;
  /** CPUs to size the table by. */
  cpus(): number;
}

/** Online CPUs from /sys first, as upstream (a cpuset-limited view undercounts: kubernetes#99225). */
function onlineCPUs(read: (p: string) => string): number {
  try {
    let n = 0;
    for (const range of read('/sys/devices/system/cpu/online').trim().split(',')) {
      const [a, b = a] = range.split('-').map(Number);
      if (Number.isInteger(a) && Number.isInteger(b) && b >= a) n += b - a + 1;
    }
    if (n > 0) return n;
  } catch {
    // fall through
  }
  return Math.max(1, cpus().length);
}

const read = (path: string) => readFileSync(path, 'utf8');
export const REAL_FILES: NodeFiles = {
  read,
  write: (path, value) => writeFileSync(path, `${value}\n`),
  cpus: () => onlineCPUs(read),
};

/** nf_conntrack_max as upstream's getConntrackMax: maxPerCore × CPUs, at least min; 0 leaves it. */
export function conntrackMax(c: Pick<ConntrackConfig, 'maxPerCore' | 'min'>, ncpu: number): number {
  if (c.maxPerCore <= 0) return 0;
  return Math.max(c.maxPerCore * ncpu, c.min);
}

/** /sys mounted read-write, from /proc/self/mounts (upstream's isSysFSWritable). */
function sysfsWritable(files: NodeFiles): boolean {
  try {
    const line = files.read('/proc/self/mounts').split('\n').find((l) => l.split(' ')[1] === '/sys');
    return line !== undefined && line.split(' ')[3].split(',').includes('rw');
  } catch {
    return false;
  }
}

export interface SetupResult {
  /** Sysctls that do not exist yet (nf_conntrack not loaded): worth another try after the first sync. */
  missing: string[];
  /** Sysctls that could not be written (read-only /proc/sys, no privilege). */
  failed: string[];
}

/** Sets an integer sysctl unless it already has the value; missing and failures are sorted out. */
function setIntSysctl(files: NodeFiles, name: string, value: number, logger: Logger, out: SetupResult): boolean {
  const path = `/proc/sys/${name}`;
  let current: string;
  try {
    current = files.read(path).trim();
  } catch {
    out.missing.push(name);
    return false;
  }
  if (current === String(value)) return true;
  try {
    files.write(path, String(value));
  } catch (e) {
    out.failed.push(name);
    logger.warn({ sysctl: name, value, current, err: e instanceof Error ? e.message : String(e) }, 'Could not set sysctl; leaving it as it is');
    return false;
  }
  logger.info({ entry: name, value }, 'Set sysctl');
  return true;
}

/** The conntrack part of upstream's platformSetup; tcpBeLiberal is set when true. */
export function setupConntrack(c: ConntrackConfig, tcpBeLiberal: boolean, logger: Logger, files: NodeFiles = REAL_FILES): SetupResult {
  const out: SetupResult = { missing: [], failed: [] };
  const max = conntrackMax(c, files.cpus());
  if (max > 0 && setIntSysctl(files, CONNTRACK_MAX, max, logger, out)) {
    logger.info({ nfConntrackMax: max }, 'Setting nf_conntrack_max');
    setHashsize(files, max, logger);
  }
  for (const [key, sysctl] of CONNTRACK_TIMEOUTS) {
    const seconds = Math.floor(c[key] / 1000);
    if (seconds > 0) setIntSysctl(files, sysctl, seconds, logger, out);
  }
  if (tcpBeLiberal) setIntSysctl(files, TCP_BE_LIBERAL_SYSCTL, 1, logger, out);
  if (out.missing.length > 0) {
    logger.warn({ sysctls: out.missing }, 'Conntrack sysctls not there yet (nf_conntrack not loaded); trying again after the first sync');
  }
  return out;
}

/**
 * Raises the conntrack hash table to max/4 when smaller (upstream: written only then, since
 * outside the initial network namespace the kernel refuses it). A read-only /sys is logged
 * with upstream's words and skipped.
 */
function setHashsize(files: NodeFiles, max: number, logger: Logger): void {
  let hashsize: number;
  try {
    hashsize = Number(files.read(HASHSIZE_PATH).trim());
  } catch {
    return;
  }
  if (hashsize >= Math.floor(max / 4)) return;
  if (!sysfsWritable(files)) {
    logger.warn({}, 'CRI error: /sys is read-only: cannot modify conntrack limits, problems may arise later (If running Docker, see docker issue #24000)');
    return;
  }
  try {
    files.write(HASHSIZE_PATH, String(Math.floor(max / 4)));
    logger.info({ conntrackHashsize: Math.floor(max / 4) }, 'Setting conntrack hashsize');
  } catch (e) {
    logger.warn({ err: e instanceof Error ? e.message : String(e) }, 'Could not set conntrack hashsize; leaving it as it is');
  }
}

/** As upstream's OOM adjuster: a failure is logged at V(2) and the start goes on. */
export function applyOomScoreAdj(value: number, logger: Logger, files: NodeFiles = REAL_FILES): boolean {
  try {
    files.write('/proc/self/oom_score_adj', String(value));
  } catch (e) {
    logV(logger, 2, { err: e instanceof Error ? e.message : String(e), value }, 'Failed to apply OOMScore');
    return false;
  }
  logV(logger, 2, { value }, 'Set oom_score_adj');
  return true;
}

// CAP_NET_ADMIN's bit in the capability sets (linux/capability.h).
const CAP_NET_ADMIN = 12n;

/**
 * Whether this process has CAP_NET_ADMIN in its effective set (/proc/self/status CapEff);
 * undefined when that cannot be read (not Linux, no /proc): then the kernel will say.
 */
export function hasNetAdmin(files: Pick<NodeFiles, 'read'> = REAL_FILES): boolean | undefined {
  try {
    const m = /^CapEff:\s*([0-9a-fA-F]+)$/m.exec(files.read('/proc/self/status'));
    if (!m) return undefined;
    return ((BigInt(`0x${m[1]}`) >> CAP_NET_ADMIN) & 1n) === 1n;
  } catch {
    return undefined;
  }
}
