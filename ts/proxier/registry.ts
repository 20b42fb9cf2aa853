// Loads the chosen mode: the only place that names the mode folders. A new mode adds
// its folder under ts/modes/ and one entry here.
import { ProxierError } from '../addon/errors.js';
import type { IPFamily } from '../model/types.js';
import type { LocalDetector, Proxier, ProxierOptions, ProxyMode } from './types.js';

type Factory = (opts: ProxierOptions) => Proxier;

const MODES: Record<ProxyMode, (() => Promise<Factory>) | undefined> = {
  nftables: async () => (await import('../modes/nftables/proxier.js')).createNftablesProxier,
  iptables: async () => (await import('../modes/iptables/proxier.js')).createIptablesProxier,
  ipvs: async () => (await import('../modes/ipvs/proxier.js')).createIpvsProxier,
  userspace: async () => (await import('../modes/userspace/proxier.js')).createUserspaceProxier,
};

export function implementedModes(): ProxyMode[] {
  return (Object.keys(MODES) as ProxyMode[]).filter((m) => MODES[m] !== undefined);
}

/** One proxier per family, of `mode`; `localDetectors` gives each family's (see local-detector.ts). */
export async function createProxiers(
  mode: ProxyMode,
  families: readonly IPFamily[],
  base: Omit<ProxierOptions, 'family' | 'localDetector'> & { localDetectors?: Partial<Record<IPFamily, LocalDetector>> },
): Promise<Proxier[]> {
  const load = MODES[mode];
  if (!load) throw new ProxierError('E_INVALID_OPTION', `proxy mode "${mode}" is not implemented yet (implemented: ${implementedModes().join(', ')})`);
  const factory = await load();
  const { localDetectors, ...rest } = base;
  return families.map((family) => factory({ ...rest, family, localDetector: localDetectors?.[family] }));
}
