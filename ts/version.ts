// kproxy's version (package.json's) and the kube-proxy release whose flags, config file,
// endpoints and metrics it follows (the one tests/k8s runs side by side).
import { readFileSync } from 'node:fs';

/** The kube-proxy minor release kproxy is compatible with. */
export const KUBE_PROXY_COMPATIBLE = 'v1.37';

/** package.json's version, read beside dist/ (or ts/ under tsx); "unknown" if it cannot be read. */
export function kproxyVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * `--version`: "kproxy v0.1.0 (kube-proxy v1.37 compatible)". `--version=raw` prints the same
 * facts in the shape of upstream's raw output (Go's %#v of version.Info), with kproxy's fields.
 */
export function versionText(raw: boolean): string {
  const v = kproxyVersion();
  if (!raw) return `kproxy v${v} (kube-proxy ${KUBE_PROXY_COMPATIBLE} compatible)\n`;
  const [major = '', minor = ''] = v.split('.');
  const fields: Array<[string, string]> = [
    ['Major', major], ['Minor', minor], ['GitVersion', `v${v}`], ['KubeProxyCompatible', KUBE_PROXY_COMPATIBLE],
    ['NodeVersion', process.version], ['Platform', `${process.platform}/${process.arch === 'x64' ? 'amd64' : process.arch}`],
  ];
  return `version.Info{${fields.map(([k, val]) => `${k}:${JSON.stringify(val)}`).join(', ')}}\n`;
}
