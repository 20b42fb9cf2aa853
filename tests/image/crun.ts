// Running an image with crun, as a kubelet would run the DaemonSet's pod: unpacked by umoci,
// as the image's user, with CAP_NET_ADMIN in the bounding set only, a read-only root, and
// the host network of the given namespace (hostNetwork, inside a test namespace).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface BundleOptions {
  args: string[];
  /** A named network namespace (ip netns) to join, as hostNetwork joins the node's. */
  netns?: string;
  /** Read-only bind mounts, host path → container path. */
  mounts?: Record<string, string>;
}

/** Unpacks `tag` from an OCI archive into dir/bundle (umoci) and returns the bundle path. */
export function unpack(archive: string, tag: string, dir: string): string {
  const layout = join(dir, 'layout');
  mkdirSync(layout, { recursive: true });
  execFileSync('tar', ['-xf', archive, '-C', layout]);
  const bundle = join(dir, 'bundle');
  execFileSync('umoci', ['unpack', '--image', `${layout}:${tag}`, bundle], { stdio: ['ignore', 'ignore', 'pipe'] });
  copyFileSync(join(bundle, 'config.json'), join(bundle, 'config.image.json'));
  return bundle;
}

/** Writes config.json: the image's entrypoint with args after it, and the pod-like settings. */
export function configure(bundle: string, opts: BundleOptions): void {
  const file = join(bundle, 'config.json');
  const spec = JSON.parse(readFileSync(join(bundle, 'config.image.json'), 'utf8'));
  spec.process.terminal = false;
  spec.process.args = [...spec.process.args, ...opts.args];
  // The DaemonSet's securityContext: drop ALL, add NET_ADMIN; allowPrivilegeEscalation stays
  // true, since the capability reaches uid 65532 through node's file capability.
  spec.process.capabilities = { bounding: ['CAP_NET_ADMIN'], effective: [], inheritable: [], permitted: [], ambient: [] };
  spec.process.noNewPrivileges = false;
  spec.root.readonly = true;
  if (opts.netns) {
    spec.linux.namespaces = spec.linux.namespaces.map((ns: { type: string }) => ns.type === 'network' ? { type: 'network', path: `/run/netns/${opts.netns}` } : ns);
  }
  for (const [host, ctr] of Object.entries(opts.mounts ?? {})) {
    spec.mounts.push({ destination: ctr, type: 'bind', source: host, options: ['rbind', 'ro'] });
  }
  writeFileSync(file, JSON.stringify(spec, null, 1));
}

// crun 1.8 refuses a hybrid cgroup layout with any controller on the v2 hierarchy (this
// host's /sys/fs/cgroup/unified has hugetlb); in a private mount namespace without that
// mount it sees plain v1, and the container runs with no cgroup of its own.
const CRUN = ['-m', 'sh', '-c', 'umount /sys/fs/cgroup/unified 2>/dev/null; exec crun --cgroup-manager=disabled "$@"', 'crun'];

/** A crun command run to completion. */
export function crun(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('unshare', [...CRUN, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `crun run` in the background; the container's output is kept for diagnostics. */
export function crunRun(bundle: string, id: string) {
  const child = spawn('unshare', [...CRUN, 'run', '--bundle', bundle, id], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, output: () => output };
}

/** The container's init process, as the host sees it. */
export function containerPid(id: string): number {
  const r = crun(['state', id]);
  if (r.code !== 0) throw new Error(`crun state ${id}: ${r.stderr}`);
  return JSON.parse(r.stdout).pid;
}
