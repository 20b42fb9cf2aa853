// Loads the chosen mode: the only place that names the mode folders. A new mode adds
// its folder under ts/modes/ and one entry here.
import { ProxierError } from '../addon/errors.js';
import type { Proxier, ProxierOptions, ProxyMode } from './types.js';

type Factory = (opts: ProxierOptions) => Proxier;

const MODES: Record<ProxyMode, (() => Promise<Factory>) | undefined> = {
  nftables: async () => (await import('../modes/nftables/proxier.js')).createNftablesProxier,
  iptables: undefined,
  ipvs: undefined,
  userspace: undefined,
};

export function implementedModes(): ProxyMode[] {
  return (Object.keys(MODES) as ProxyMode[]).filter((m) => MODES[m] !== undefined);
}

/** One proxier per family, of `mode`. */
export async function createProxiers(mode: ProxyMode, families: readonly ProxierOptions['family'][], base: Omit<ProxierOptions, 'family' | 'clusterCIDR'> & { clusterCIDRs: readonly string[] }): Promise<Proxier[]> {
  const load = MODES[mode];
  if (!load) throw new ProxierError('E_INVALID_OPTION', `proxy mode "${mode}" is not implemented yet (implemented: ${implementedModes().join(', ')})`);
  const factory = await load();
  const { clusterCIDRs, ...rest } = base;
  return families.map((family) =>
    factory({ ...rest, family, clusterCIDR: clusterCIDRs.find((c) => c.includes(':') === (family === 'IPv6')) }),
  );
}
