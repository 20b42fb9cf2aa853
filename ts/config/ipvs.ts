// IPVS mode's settings: the ipvs.* fields and --ipvs-* flags, validated as upstream's
// validateKubeProxyIPVSConfiguration (in ipvs mode only).
import { ConfigError } from './errors.js';
import { formatGoDuration } from './duration.js';
import { canonicalCIDR } from './validate.js';

/** A value plus the flag or field it came from, so errors can name what to fix. */
export interface Sourced<T> {
  value: T;
  from: string;
}

/** IPVS mode's settings: the ipvs.* fields, or the --ipvs-* flags (the periods are syncPeriodMs/minSyncPeriodMs). */
export interface IpvsConfig {
  /** '' means rr. */
  scheduler: string;
  /** Canonical CIDRs (host bits cleared). */
  excludeCIDRs: string[];
  strictARP: boolean;
  /** Whole seconds, truncated as upstream; 0 leaves the kernel's value. */
  tcpTimeoutS: number;
  tcpFinTimeoutS: number;
  udpTimeoutS: number;
}

/** The ipvs settings as read, each with where it came from. */
export interface IpvsSourced {
  scheduler: Sourced<string>;
  /** undefined when unset. */
  excludeCIDRs: Sourced<string[] | undefined>;
  strictARP: boolean;
  tcpTimeoutMs: Sourced<number>;
  tcpFinTimeoutMs: Sourced<number>;
  udpTimeoutMs: Sourced<number>;
}

export function describe(s: Sourced<unknown>, message: string): string {
  const shown = typeof s.value === 'number' && /period|Period|timeout|Timeout/.test(s.from) ? formatGoDuration(s.value) : JSON.stringify(s.value);
  return `${s.from}: ${message}, got ${shown}`;
}

/** The IPVS schedulers of the Linux kernel (net/netfilter/ipvs), for a warning only. */
const KERNEL_IPVS_SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh', 'twos'];
/** What can name a kernel scheduler: IP_VS_SCHEDNAME_MAXLEN is 16 with the NUL; it is loaded as module ip_vs_<name>. */
const SCHEDULER_NAME = /^[A-Za-z0-9_-]{1,15}$/;

/**
 * The ipvs settings, validated as upstream's validateKubeProxyIPVSConfiguration: in ipvs mode
 * only. Elsewhere a bad value is replaced by its default, with a warning. Upstream no longer
 * validates the scheduler against a list (kubernetes#114878: any scheduler the kernel has may be
 * used; kube-proxy fails at start otherwise), so only names no kernel scheduler can have are refused.
 */
export function resolveIpvs(s: IpvsSourced, ipvsMode: boolean, warnings: string[]): IpvsConfig {
  const problem = (flag: string, message: string): void => {
    if (ipvsMode) throw new ConfigError(flag, message);
    warnings.push(`${message} (ignored: ${flag} only applies in ipvs mode)`);
  };

  let scheduler = s.scheduler.value;
  if (scheduler !== '' && !SCHEDULER_NAME.test(scheduler)) {
    problem(s.scheduler.from, describe(s.scheduler, `must be the name of an IPVS scheduler (up to 15 letters, digits, '_' or '-': ${KERNEL_IPVS_SCHEDULERS.join(', ')}, ...), or empty for rr`));
    scheduler = '';
  } else if (ipvsMode && scheduler !== '' && !KERNEL_IPVS_SCHEDULERS.includes(scheduler)) {
    warnings.push(`${s.scheduler.from}: ${JSON.stringify(scheduler)} is not one of the Linux kernel's IPVS schedulers (${KERNEL_IPVS_SCHEDULERS.join(', ')}); ` +
      `as kube-proxy, kproxy accepts it, but the kernel must provide it (module ip_vs_${scheduler})`);
  }

  const excludeCIDRs: string[] = [];
  const name = s.excludeCIDRs.from;
  (s.excludeCIDRs.value ?? []).forEach((text, i) => {
    const cidr = canonicalCIDR(text);
    if (cidr === undefined) problem(name, `${name}[${i}]: ${JSON.stringify(text)} must be a valid CIDR (e.g. 10.0.0.0/8 or fd00::/64)`);
    else excludeCIDRs.push(cidr);
  });

  // Upstream hands the timeouts to the kernel as uint32(d.Seconds()): sub-second parts are dropped.
  const seconds = (t: Sourced<number>): number => {
    if (t.value < 0) {
      problem(t.from, describe(t, 'must be greater than or equal to 0'));
      return 0;
    }
    const ns = Math.round(t.value * 1e6);
    const whole = Math.trunc(ns / 1e9);
    if (ipvsMode && ns % 1e9 !== 0) {
      const kept = whole === 0 ? "0s, so the kernel's value is left as it is" : `${whole}s`;
      warnings.push(`${t.from}: ${formatGoDuration(t.value)} is truncated to whole seconds (${kept}), as kube-proxy does`);
    }
    return whole;
  };
  return {
    scheduler,
    excludeCIDRs,
    strictARP: s.strictARP,
    tcpTimeoutS: seconds(s.tcpTimeoutMs),
    tcpFinTimeoutS: seconds(s.tcpFinTimeoutMs),
    udpTimeoutS: seconds(s.udpTimeoutMs),
  };
}
