// Which iptables backend the node uses, decided as upstream's image decides it (the
// iptables-wrappers DetectMode facts): the kubelet's KUBE-IPTABLES-HINT or KUBE-KUBELET-CANARY
// chain in iptables-nft's mangle table means nft; in iptables-legacy's tables, legacy; neither,
// nft. kproxy then runs that backend's tools by name, so it never writes to the backend the
// rest of the node is not using.
import type { Logger } from 'pino';
import type { IPFamily } from '../../model/types.js';
import { output, run } from './exec.js';

export type Backend = 'nft' | 'legacy';

export interface Tools {
  /** undefined: only the plain `iptables` is installed, and it decides. */
  backend?: Backend;
  why: string;
  /** iptables / ip6tables, of the backend: `iptables-nft`, `ip6tables-legacy-restore`, ... */
  tool(family: IPFamily, suffix?: '' | '-save' | '-restore'): string;
}

const KUBELET_CHAINS = /^:(KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY) /m;

function tools(backend: Backend | undefined, why: string): Tools {
  return {
    backend,
    why,
    tool: (family, suffix = '') => `${family === 'IPv4' ? 'iptables' : 'ip6tables'}${backend ? `-${backend}` : ''}${suffix}`,
  };
}

async function installed(cmd: string): Promise<boolean> {
  return (await run(cmd, ['--version'])).code === 0;
}

export async function detectBackend(): Promise<Tools> {
  const [nft, legacy] = await Promise.all([installed('iptables-nft'), installed('iptables-legacy')]);
  if (!nft && !legacy) return tools(undefined, 'neither iptables-nft nor iptables-legacy is installed: using iptables');
  if (!legacy) return tools('nft', 'only iptables-nft is installed');
  if (!nft) return tools('legacy', 'only iptables-legacy is installed');
  for (const family of ['IPv4', 'IPv6'] as const) {
    const cmd = `${family === 'IPv4' ? 'iptables' : 'ip6tables'}-nft-save`;
    if (KUBELET_CHAINS.test(await output(cmd, ['-t', 'mangle']))) return tools('nft', `the kubelet's chains are in ${cmd} -t mangle`);
  }
  // No `-t mangle` here: asking would make the kernel create the legacy table.
  for (const family of ['IPv4', 'IPv6'] as const) {
    const cmd = `${family === 'IPv4' ? 'iptables' : 'ip6tables'}-legacy-save`;
    if (KUBELET_CHAINS.test(await output(cmd, []))) return tools('legacy', `the kubelet's chains are in ${cmd}`);
  }
  return tools('nft', 'no kubelet chains in either backend: nft, the default');
}

let detected: Promise<Tools> | undefined;

/** The node's backend, detected once per process (both families' proxiers share it). */
export function nodeBackend(logger: Logger): Promise<Tools> {
  detected ??= detectBackend().then((t) => {
    logger.info({ backend: t.backend ?? 'iptables', why: t.why }, 'iptables backend');
    return t;
  });
  return detected;
}
