// What IPVS mode needs of the kernel before its first sync, as upstream's: the ip_vs modules
// (loaded with modprobe when missing) and its sysctls.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { release } from 'node:os';
import { promisify } from 'node:util';
import { ProxierError } from '../../addon/errors.js';
import type { Logger } from '../../log.js';
import { setSysctl } from '../../proxier/sysctl.js';
import type { IpvsModeOptions } from '../../proxier/types.js';

const run = promisify(execFile);
/** Present once ip_vs is loaded (or built in). */
const IPVS_PROC = '/proc/net/ip_vs';

async function modprobe(module: string): Promise<string | undefined> {
  try {
    await run('modprobe', ['--', module], { timeout: 30_000 });
    return undefined;
  } catch (e) {
    return ((e as { stderr?: string }).stderr || (e as Error).message).trim().split('\n')[0];
  }
}

/** Kernels before 5.9 stall reused source ports on conn_reuse_mode 1 (kubernetes #81775, #93297). */
export function needsConnReuseZero(kernel: string): boolean {
  const [major, minor] = kernel.split('.').map((n) => parseInt(n, 10));
  return major < 5 || (major === 5 && minor < 9);
}

/** Loads IPVS and its scheduler, or fails naming what would work instead. */
export async function ensureIpvs(opts: IpvsModeOptions, logger: Logger): Promise<void> {
  if (!existsSync(IPVS_PROC)) {
    const why = await modprobe('ip_vs');
    if (!existsSync(IPVS_PROC)) {
      throw new ProxierError('E_INVALID_OPTION', `IPVS mode needs the kernel's ip_vs module, and modprobe ip_vs failed (${why ?? 'no /proc/net/ip_vs after loading'}); the nftables and iptables modes need no IPVS`);
    }
    logger.info({ module: 'ip_vs' }, 'Loaded the kernel module');
  }
  const scheduler = opts.scheduler || 'rr';
  const why = await modprobe(`ip_vs_${scheduler}`);
  // Built in, or loaded on demand by the kernel: the first sync would say if it is missing.
  if (why) logger.warn({ module: `ip_vs_${scheduler}`, err: why }, 'Could not load the IPVS scheduler module');
}

/** Upstream's IPVS sysctls (pkg/proxy/ipvs/proxier.go). */
export async function ipvsSysctls(opts: IpvsModeOptions, logger: Logger): Promise<void> {
  await setSysctl('net/ipv4/vs/conntrack', '1', logger);
  if (needsConnReuseZero(release())) await setSysctl('net/ipv4/vs/conn_reuse_mode', '0', logger);
  await setSysctl('net/ipv4/vs/expire_nodest_conn', '1', logger);
  await setSysctl('net/ipv4/vs/expire_quiescent_template', '1', logger);
  await setSysctl('net/ipv4/ip_forward', '1', logger);
  if (opts.strictARP) {
    await setSysctl('net/ipv4/conf/all/arp_ignore', '1', logger);
    await setSysctl('net/ipv4/conf/all/arp_announce', '2', logger);
  }
}
