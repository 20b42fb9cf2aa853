// Kubernetes objects for the agent's --manifests directory, one object per .yaml file.
import type { ExecutionContext } from 'ava';
import { chmod, mkdtemp, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { isIPv6 } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';

export interface ServicePortDef {
  name: string;
  port: number;
  targetPort: number;
  protocol: 'TCP' | 'UDP';
}

/** The ports every suite's "web" Service uses; the responders listen on the target ports. */
export const WEB_PORTS: ServicePortDef[] = [
  { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' },
  { name: 'dns', port: 53, targetPort: 8053, protocol: 'UDP' },
];

export const NODE_NAME = 'test-node';

/** This node, as --hostname-override names it (kube-proxy reads its labels and health from it). */
export function node(name = NODE_NAME) {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'kubernetes.io/hostname': name } } };
}

/** A ClusterIP Service; one or two clusterIPs (dual stack, IPv4 first or IPv6 first). */
export function service(name: string, clusterIPs: string[], ports = WEB_PORTS, namespace = 'default') {
  const families = clusterIPs.map((ip) => (isIPv6(ip) ? 'IPv6' : 'IPv4'));
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: {
      type: 'ClusterIP',
      clusterIP: clusterIPs[0],
      clusterIPs,
      ipFamilies: families,
      ipFamilyPolicy: clusterIPs.length > 1 ? 'RequireDualStack' : 'SingleStack',
      ports: ports.map((p) => ({ name: p.name, port: p.port, targetPort: p.targetPort, protocol: p.protocol })),
    },
  };
}

/** An EndpointSlice of one family for a Service, every address ready on this node. */
export function endpointSlice(serviceName: string, family: 'IPv4' | 'IPv6', addresses: string[], ports = WEB_PORTS,
  namespace = 'default') {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: `${serviceName}-${family.toLowerCase()}`,
      namespace,
      labels: { 'kubernetes.io/service-name': serviceName },
    },
    addressType: family,
    ports: ports.map((p) => ({ name: p.name, port: p.targetPort, protocol: p.protocol })),
    endpoints: addresses.map((address) => ({
      addresses: [address],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: NODE_NAME,
    })),
  };
}

export interface ManifestDir {
  dir: string;
  /** Writes (or atomically replaces) one file holding the given objects. */
  write(file: string, ...objects: object[]): Promise<void>;
  remove(file: string): Promise<void>;
}

/** A temp manifests directory, removed when the test ends. */
export async function manifestDir(t: ExecutionContext): Promise<ManifestDir> {
  const root = await mkdtemp(join(tmpdir(), 'kproxy-netns-'));
  // mkdtemp makes it 0700: an agent run as a non-root user must be able to read it too.
  await chmod(root, 0o755);
  const dir = join(root, 'manifests');
  const staging = join(root, 'staging');
  await mkdir(dir);
  await mkdir(staging);
  t.teardown(() => rm(root, { recursive: true, force: true }));
  return {
    dir,
    async write(file, ...objects) {
      // Staged outside the watched directory, then renamed in: the agent never reads half a file.
      await writeFile(join(staging, file), objects.map((o) => stringify(o)).join('---\n'));
      await rename(join(staging, file), join(dir, file));
    },
    remove: (file) => rm(join(dir, file)),
  };
}
