// The few sysctls kproxy sets or reads, as upstream does (per network namespace).
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { ProxierError } from '../addon/errors.js';
import type { Logger } from '../log.js';

export const TCP_BE_LIBERAL = 'net/netfilter/nf_conntrack_tcp_be_liberal';
export const ROUTE_LOCALNET = 'net/ipv4/conf/all/route_localnet';

/** The sysctl's value, or undefined when it does not exist (nf_conntrack not loaded). */
export function readSysctl(name: string): string | undefined {
  try {
    return readFileSync(`/proc/sys/${name}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Sets `name` to `value` unless it already is; a failure is an error that names it. */
export async function setSysctl(name: string, value: string, logger: Logger): Promise<void> {
  if (readSysctl(name) === value) return;
  try {
    await writeFile(`/proc/sys/${name}`, `${value}\n`);
  } catch (e) {
    throw new ProxierError('E_KERNEL_REJECTED', `cannot set sysctl ${name}=${value}: ${e instanceof Error ? e.message : String(e)}`);
  }
  logger.info({ sysctl: name, value }, 'Set sysctl');
}
