// deploy/ read as the kubelet and kproxy would read it: the ConfigMap's KubeProxyConfiguration
// through kproxy's own config loader (no warning, no error), and the DaemonSet wired to it
// (the --config path is a key of that ConfigMap, the probes are on the port the config binds,
// the node name comes from the downward API), with the least privilege the issue asks for.
// tests/k8s/deploy.test.ts applies the same files to a real API server and runs the agent.
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { loadConfig } from '../../ts/config/index.js';
import { configMount, findObject, loadDeploy, ruleTriples, type Obj } from '../helpers/deploy-manifests.js';

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
const { kustomization, objects } = loadDeploy();
const cm = findObject(objects, 'ConfigMap', 'kproxy');
const ds = findObject(objects, 'DaemonSet', 'kproxy');
const pod = ds.spec.template.spec;
const { container, mountPath } = configMount(ds, cm.metadata.name);

/** The value of `--name=value` in the container's args (the image's entrypoint is kproxy). */
function arg(name: string): string | undefined {
  const a = (container.args as string[]).find((x) => x.startsWith(`--${name}=`));
  return a?.slice(name.length + 3);
}

/** loadConfig on the ConfigMap's file, as the container starts it (args, NODE_NAME resolved). */
function loadShipped() {
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-deploy-'));
  try {
    const configPath = arg('config')!;
    const key = configPath.slice(mountPath.length + 1);
    const file = join(dir, key);
    writeFileSync(file, cm.data[key]);
    const argv = (container.args as string[]).map((a) => a.replace(configPath, file).replace('$(NODE_NAME)', 'Node-A'));
    return loadConfig(argv, { hostname: () => 'not-this-one' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('the ConfigMap\'s KubeProxyConfiguration loads through kproxy\'s config loader without a warning', (t) => {
  const config = loadShipped();
  t.deepEqual(config.warnings, []);
  t.is(config.mode, 'nftables');
  t.is(config.hostnameOverride, 'node-a', '--hostname-override=$(NODE_NAME) wins over the hostname, lower-cased');
  t.deepEqual(config.clusterCIDRs, ['10.244.0.0/16']);
  t.deepEqual(config.nodePortAddresses, ['primary']);
  t.is(config.healthzBindAddress, '0.0.0.0:10256');
  // Safe by default: /metrics and /configz are not on the node's addresses.
  t.is(config.metricsBindAddress, '127.0.0.1:10249');
  t.is(config.configFile !== undefined, true, 'kproxy watches the file (and exits when it changes)');
});

test('the DaemonSet starts kproxy on a key of its ConfigMap, and that file names the kubeconfig beside it', (t) => {
  const configPath = arg('config');
  t.truthy(configPath, `--config=... in ${JSON.stringify(container.args)}`);
  t.true(configPath!.startsWith(`${mountPath}/`), `${configPath} is under the ConfigMap's mount ${mountPath}`);
  t.truthy(cm.data[configPath!.slice(mountPath.length + 1)], 'the key exists in the ConfigMap');
  const config = loadShipped();
  t.true(config.kubeconfig.startsWith(`${mountPath}/`));
  const kubeconfig = parse(cm.data[config.kubeconfig.slice(mountPath.length + 1)]);
  t.is(kubeconfig.kind, 'Config');
  // The Pod's projected ServiceAccount token and CA, as kubeadm's kubeconfig.conf.
  t.is(kubeconfig.users[0].user.tokenFile, `${SA_DIR}/token`);
  t.is(kubeconfig.clusters[0].cluster['certificate-authority'], `${SA_DIR}/ca.crt`);
  t.is(pod.automountServiceAccountToken, true);
  // The mount is read-only; the kubelet projects it.
  t.is((container.volumeMounts as Obj[]).find((m) => m.mountPath === mountPath)!.readOnly, true);
});

test('the node name comes from the downward API into --hostname-override', (t) => {
  t.is(arg('hostname-override'), '$(NODE_NAME)');
  const env = (container.env as Obj[]).find((e) => e.name === 'NODE_NAME');
  t.deepEqual(env?.valueFrom, { fieldRef: { fieldPath: 'spec.nodeName' } });
});

test('the probes: liveness on /livez and readiness on /healthz, at the port healthzBindAddress binds', (t) => {
  const port = Number(loadShipped().healthzBindAddress.split(':').pop());
  t.like(container.livenessProbe, { httpGet: { path: '/livez', port } });
  t.like(container.readinessProbe, { httpGet: { path: '/healthz', port } });
  // The kubelet probes the pod's IP (the node's, with hostNetwork): no `host`, and a wildcard bind.
  t.is(container.livenessProbe.httpGet.host, undefined);
  t.true(loadShipped().healthzBindAddress.startsWith('0.0.0.0:'));
  const declared = (container.ports as Obj[]).find((p) => p.name === 'healthz');
  t.is(declared?.containerPort, port);
});

test('the pod: host network, node-critical, every taint tolerated, one node at a time', (t) => {
  t.is(pod.hostNetwork, true);
  t.is(pod.priorityClassName, 'system-node-critical');
  t.deepEqual(pod.tolerations, [{ operator: 'Exists' }]);
  t.deepEqual(ds.spec.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } });
  t.deepEqual(ds.spec.selector.matchLabels, ds.spec.template.metadata.labels);
});

test('the mounts each mode needs: /run/xtables.lock (FileOrCreate), /lib/modules read-only', (t) => {
  const volume = (path: string) => (pod.volumes as Obj[]).find((v) => v.hostPath?.path === path);
  const mount = (v: Obj | undefined) => (container.volumeMounts as Obj[]).find((m) => m.name === v?.name);
  const lock = volume('/run/xtables.lock');
  t.is(lock?.hostPath.type, 'FileOrCreate');
  t.is(mount(lock)?.mountPath, '/run/xtables.lock');
  t.not(mount(lock)?.readOnly, true, 'iptables takes the lock');
  const modules = volume('/lib/modules');
  t.is(mount(modules)?.mountPath, '/lib/modules');
  t.is(mount(modules)?.readOnly, true);
});

test('the container: the image\'s non-root user with NET_ADMIN only, not privileged', (t) => {
  t.is(container.image, 'kproxy:0.1.0');
  t.like(kustomization.images, [{ name: 'kproxy' }], 'kustomization.yaml can override the image');
  const sc = container.securityContext;
  t.like(sc, { runAsUser: 65532, runAsNonRoot: true, readOnlyRootFilesystem: true });
  t.not(sc.privileged, true);
  t.deepEqual(sc.capabilities, { drop: ['ALL'], add: ['NET_ADMIN'] });
  // The capability is a file capability of the image's node: no_new_privs would drop it.
  t.not(sc.allowPrivilegeEscalation, false);
});

test('RBAC: the DaemonSet\'s ServiceAccount is bound to a ClusterRole with exactly what kproxy uses', (t) => {
  const sa = findObject(objects, 'ServiceAccount');
  const role = findObject(objects, 'ClusterRole');
  const binding = findObject(objects, 'ClusterRoleBinding');
  t.is(pod.serviceAccountName, sa.metadata.name);
  t.is(sa.metadata.namespace, ds.metadata.namespace);
  t.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name });
  t.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: sa.metadata.namespace }]);
  // ts/sources/kubernetes.ts: four list+watch reflectors (the Node by field selector) and
  // events.k8s.io/v1 Event POSTs. tests/k8s/deploy.test.ts checks the same set against the
  // API server's audit log of a running agent.
  t.deepEqual(ruleTriples(role), [
    'create events.k8s.io/events',
    'list /nodes', 'list /services', 'list discovery.k8s.io/endpointslices', 'list networking.k8s.io/servicecidrs',
    'watch /nodes', 'watch /services', 'watch discovery.k8s.io/endpointslices', 'watch networking.k8s.io/servicecidrs',
  ]);
  t.true((role.rules as Obj[]).every((r) => !r.resourceNames && !r.nonResourceURLs && !r.verbs.includes('*') && !r.resources.includes('*')));
});

test('every object is namespaced to kube-system or cluster-scoped, and the kustomization lists them all', (t) => {
  t.is(kustomization.namespace, 'kube-system');
  for (const o of objects) {
    if (['ClusterRole', 'ClusterRoleBinding'].includes(o.kind)) t.is(o.metadata.namespace, undefined, o.kind);
    else t.is(o.metadata.namespace, 'kube-system', `${o.kind} ${o.metadata.name}`);
  }
  for (const kind of ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'DaemonSet']) t.true(objects.some((o) => o.kind === kind), kind);
});
