// userspace mode's settings: upstream's historical udpIdleTimeout (--udp-timeout, 250ms by
// default, as upstream's userspace proxier had it), and kproxy's own cap on a Service's
// active connections (userspace.maxConnectionsPerService, --userspace-max-connections).
import { ConfigError } from './errors.js';
import { formatGoDuration, parseGoDuration } from './duration.js';

export interface UserspaceConfig {
  udpIdleTimeoutMs: number;
  /** 0: no cap. */
  maxConnectionsPerService: number;
}

export const DEFAULT_UDP_IDLE_TIMEOUT_MS = 250;

export const DEFAULT_USERSPACE: UserspaceConfig = { udpIdleTimeoutMs: DEFAULT_UDP_IDLE_TIMEOUT_MS, maxConnectionsPerService: 0 };

/** The settings as read, each with where it came from (undefined: unset). */
export interface UserspaceSourced {
  udpIdleTimeoutMs: { value: number | undefined; from: string };
  maxConnectionsPerService: { value: number | undefined; from: string };
}

/** From the file: a top-level udpIdleTimeout duration and a userspace sub-struct. */
export function userspaceFromFile(file: Record<string, any>): UserspaceSourced {
  const t = file.udpIdleTimeout;
  if (t !== undefined && typeof t !== 'string') throw new ConfigError('udpIdleTimeout', 'udpIdleTimeout: must be a duration string such as "250ms"');
  const max = file.userspace?.maxConnectionsPerService;
  return {
    udpIdleTimeoutMs: { value: t === undefined ? undefined : parseGoDuration(t), from: 'udpIdleTimeout' },
    maxConnectionsPerService: { value: max, from: 'userspace.maxConnectionsPerService' },
  };
}

/** Validated in userspace mode; elsewhere unused (a bad value only warns, as the ipvs settings). */
export function resolveUserspace(s: UserspaceSourced, userspaceMode: boolean, warnings: string[]): UserspaceConfig {
  const out = { ...DEFAULT_USERSPACE };
  const problem = (from: string, message: string): void => {
    if (userspaceMode) throw new ConfigError(from, `${from}: ${message}`);
    warnings.push(`${from}: ${message} (ignored: it only applies in userspace mode)`);
  };
  const t = s.udpIdleTimeoutMs;
  if (t.value !== undefined) {
    if (t.value <= 0) problem(t.from, `must be greater than 0, got ${formatGoDuration(t.value)}`);
    else out.udpIdleTimeoutMs = t.value;
  }
  const m = s.maxConnectionsPerService;
  if (m.value !== undefined) {
    if (!Number.isInteger(m.value) || m.value < 0 || m.value > 0xffffffff) problem(m.from, `must be a whole number of connections, 0 for no cap, got ${JSON.stringify(m.value)}`);
    else out.maxConnectionsPerService = m.value;
  }
  return out;
}

/** The /configz view in userspace mode. */
export function rawUserspace(c: UserspaceConfig): Record<string, unknown> {
  return { udpIdleTimeout: formatGoDuration(c.udpIdleTimeoutMs), userspace: { maxConnectionsPerService: c.maxConnectionsPerService } };
}
