// A real Kubernetes control plane for tests: etcd and kube-apiserver v1.37.2 (built by
// scripts/build-k8s.sh into tests/k8s/bin), on 127.0.0.1 inside a test's network namespace,
// so that an agent in that namespace reaches them. No controller-manager runs: tests create
// EndpointSlices themselves and set status fields through the status subresource.
//
// Users (a static token file): `admin` (system:masters) for the harness, and kproxy's
// ServiceAccount, whose rights are exactly deploy/rbac.yaml's ClusterRole.
import type { ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT, waitFor, type NsProcess, type Topology } from '../../ts/demo/topology.js';

const run = promisify(execFile);

export const K8S_BIN = join(REPO_ROOT, 'tests/k8s/bin');
export const KPROXY_USER = 'system:serviceaccount:kube-system:kproxy';
/** Upstream kube-proxy's identity, bound to the apiserver's own system:node-proxier role. */
export const UPSTREAM_USER = 'system:serviceaccount:kube-system:kube-proxy';
type User = 'admin' | 'kproxy' | 'upstream';
const ETCD_PORT = 2379;
const ETCD_PEER_PORT = 2380;
const API_PORT = 6443;

/** True when scripts/build-k8s.sh has built the binaries. */
export function controlPlaneBuilt(): boolean {
  return ['etcd', 'kube-apiserver', 'kubectl'].every((b) => existsSync(join(K8S_BIN, b)));
}

export interface ControlPlane {
  /** https://127.0.0.1:6443, reachable from the namespace it runs in. */
  server: string;
  /** A kubeconfig file for `admin` or kproxy's ServiceAccount (at `via`, e.g. a forwarder, instead of `server`). */
  kubeconfig(user: User, via?: string): string;
  /** kubectl as `admin` (or `as`), run in the namespace; stdout. */
  kubectl(args: string[], opts?: { input?: string; as?: User; allowFailure?: boolean }): Promise<string>;
  /** Creates or replaces objects (`kubectl apply --server-side`); status fields then via `setStatus`. */
  apply(...objects: object[]): Promise<void>;
  /** Writes an object's status (Node addresses, LoadBalancer ingress) through the status subresource. */
  setStatus(resource: string, name: string, status: object, namespace?: string): Promise<void>;
  stopApiserver(): Promise<void>;
  startApiserver(): Promise<void>;
  stopEtcd(): Promise<void>;
  startEtcd(): Promise<void>;
  /** Compacts etcd at its current revision: older resourceVersions now answer 410 Gone. */
  compact(): Promise<void>;
  /** kube-apiserver's /metrics (since its last start). */
  metrics(): Promise<string>;
  /** The bearer token of a user (for clients that are not kubectl). */
  token(user: User): string;
  /** Logs of both, for a failing test. */
  logs(): string;
}

async function stopProcess(p: NsProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  // `ip netns exec` runs the binary in its own process group (spawnIn's detached): signal it all.
  try {
    process.kill(-p.pid!, 'SIGTERM');
  } catch {
    return;
  }
  const done = await Promise.race([p.exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 10_000))]);
  if (!done) {
    try {
      process.kill(-p.pid!, 'SIGKILL');
    } catch {}
    await p.exited;
  }
}

/** What the harness needs of its caller: ava's test context, or the bench's own. */
export type Teardowns = Pick<ExecutionContext, 'teardown' | 'log' | 'passed'>;

export interface ControlPlaneOptions {
  /** The namespace to run in (default: the topology's node). */
  ns?: string;
  /** More kube-apiserver flags. */
  apiserverArgs?: string[];
}

/** Starts etcd and kube-apiserver in the node namespace of `topo`, waits for /readyz, and stops both at teardown. */
export async function startControlPlane(t: Teardowns, topo: Topology, opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const ns = opts.ns ?? topo.node;
  if (!controlPlaneBuilt()) throw new Error(`no Kubernetes binaries in ${K8S_BIN}: run scripts/build-k8s.sh`);
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-cp-'));
  const certDir = join(dir, 'certs');
  const server = `https://127.0.0.1:${API_PORT}`;
  const token = (who: string) => `${who}-${Math.random().toString(36).slice(2)}`;
  const tokens: Record<User, string> = { admin: token('admin'), kproxy: token('kproxy'), upstream: token('upstream') };
  writeFileSync(
    join(dir, 'tokens.csv'),
    `${tokens.admin},admin,admin,"system:masters"\n` +
      `${tokens.kproxy},${KPROXY_USER},kproxy,"system:serviceaccounts,system:serviceaccounts:kube-system"\n` +
      `${tokens.upstream},${UPSTREAM_USER},kube-proxy,"system:serviceaccounts,system:serviceaccounts:kube-system"\n`,
  );
  await run('openssl', ['genrsa', '-out', join(dir, 'sa.key'), '2048']);
  await run('openssl', ['rsa', '-in', join(dir, 'sa.key'), '-pubout', '-out', join(dir, 'sa.pub')]);
  await topo.exec(ns, ['ip', 'link', 'set', 'lo', 'up']);

  let etcd: NsProcess | undefined;
  let api: NsProcess | undefined;
  const etcdUrl = `http://127.0.0.1:${ETCD_PORT}`;
  const startEtcd = async () => {
    etcd = topo.spawnIn(ns, join(K8S_BIN, 'etcd'), [
      '--name', 'default', '--data-dir', join(dir, 'etcd'),
      '--listen-client-urls', etcdUrl, '--advertise-client-urls', etcdUrl,
      '--listen-peer-urls', `http://127.0.0.1:${ETCD_PEER_PORT}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${ETCD_PEER_PORT}`,
      '--initial-cluster', `default=http://127.0.0.1:${ETCD_PEER_PORT}`, '--log-level', 'warn',
    ]);
    await waitFor('etcd to be healthy', async () => {
      const r = await topo.exec(ns, ['curl', '-sf', `${etcdUrl}/health`], { allowFailure: true });
      return r.code === 0 && r.stdout.includes('true');
    }, { timeoutMs: 30_000 });
  };
  const startApiserver = async () => {
    api = topo.spawnIn(ns, join(K8S_BIN, 'kube-apiserver'), [
      '--etcd-servers', etcdUrl,
      '--bind-address', '127.0.0.1', '--advertise-address', '127.0.0.1', '--secure-port', String(API_PORT),
      '--cert-dir', certDir, '--endpoint-reconciler-type', 'none',
      '--service-account-issuer', 'https://kubernetes.default.svc.cluster.local',
      '--service-account-key-file', join(dir, 'sa.pub'), '--service-account-signing-key-file', join(dir, 'sa.key'),
      '--service-cluster-ip-range', '10.96.0.0/16,fd00:96::/108',
      '--authorization-mode', 'RBAC', '--token-auth-file', join(dir, 'tokens.csv'),
      ...(opts.apiserverArgs ?? []),
    ]);
    await waitFor('kube-apiserver to be ready', async () => {
      if (api!.exitCode !== null) throw new Error(`kube-apiserver exited ${api!.exitCode}:\n${api!.output().slice(-2000)}`);
      const r = await topo.exec(ns, ['curl', '-sk', '-o', '/dev/null', '-w', '%{http_code}', '-H', `Authorization: Bearer ${tokens.admin}`, `${server}/readyz`], { allowFailure: true });
      return r.stdout === '200';
    }, { timeoutMs: 60_000 });
  };
  t.teardown(async () => {
    if (!t.passed) t.log(`control plane (tail):\n${cp.logs().slice(-3000)}`);
    await stopProcess(api);
    await stopProcess(etcd);
    rmSync(dir, { recursive: true, force: true });
  });

  const kubeconfig = (user: User, via = server) => {
    const file = join(dir, via === server ? `${user}.kubeconfig` : `${user}-${new URL(via).port}.kubeconfig`);
    if (!existsSync(file)) {
      const ca = readFileSync(join(certDir, 'apiserver.crt')).toString('base64');
      writeFileSync(file, JSON.stringify({
        apiVersion: 'v1', kind: 'Config', 'current-context': user,
        clusters: [{ name: 'test', cluster: { server: via, 'certificate-authority-data': ca } }],
        users: [{ name: user, user: { token: tokens[user] } }],
        contexts: [{ name: user, context: { cluster: 'test', user } }],
      }));
    }
    return file;
  };
  const kubectl: ControlPlane['kubectl'] = async (args, opts = {}) => {
    const r = await topo.exec(ns, [join(K8S_BIN, 'kubectl'), '--kubeconfig', kubeconfig(opts.as ?? 'admin'), ...args], { input: opts.input, allowFailure: opts.allowFailure });
    return r.stdout;
  };
  const cp: ControlPlane = {
    server,
    kubeconfig,
    kubectl,
    apply: async (...objects) => {
      const input = objects.map((o) => JSON.stringify(o)).join('\n');
      await kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'], { input });
    },
    setStatus: async (resource, name, status, namespace) => {
      await kubectl(['patch', resource, name, ...(namespace ? ['-n', namespace] : []), '--subresource', 'status', '--type', 'merge', '-p', JSON.stringify({ status })]);
    },
    stopApiserver: () => stopProcess(api),
    startApiserver,
    stopEtcd: () => stopProcess(etcd),
    startEtcd,
    compact: async () => {
      const r = await topo.exec(ns, ['curl', '-sf', '-X', 'POST', `${etcdUrl}/v3/kv/range`, '-d', '{"key":"AA==","limit":1}']);
      const revision = JSON.parse(r.stdout).header.revision as string;
      await topo.exec(ns, ['curl', '-sf', '-X', 'POST', `${etcdUrl}/v3/kv/compaction`, '-d', JSON.stringify({ revision, physical: true })]);
    },
    metrics: async () => (await topo.exec(ns, ['curl', '-sfk', '-H', `Authorization: Bearer ${tokens.admin}`, `${server}/metrics`])).stdout,
    token: (user) => tokens[user],
    logs: () => `--- etcd\n${etcd?.output().slice(-1500) ?? ''}\n--- kube-apiserver\n${api?.output().slice(-3000) ?? ''}`,
  };
  await startEtcd();
  await startApiserver();
  // kproxy's rights: the ClusterRole and ServiceAccount of its DaemonSet manifest, once the
  // apiserver's own controller has made kube-system.
  await waitFor('kube-system to exist', async () => (await kubectl(['get', 'namespace', 'kube-system', '-o', 'name'], { allowFailure: true })).trim() !== '', { timeoutMs: 30_000 });
  await kubectl(['apply', '-f', join(REPO_ROOT, 'deploy/rbac.yaml')]);
  await cp.apply({
    apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'upstream-kube-proxy' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:node-proxier' },
    subjects: [{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: UPSTREAM_USER }],
  });
  return cp;
}
