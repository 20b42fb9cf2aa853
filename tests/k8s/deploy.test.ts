// deploy/ against a real kube-apiserver v1.37.2 (tests/helpers/control-plane.ts), on one control
// plane: `kubectl apply -k deploy/` creates every object (the DaemonSet passes the API's
// validation; no kubelet runs it), then kproxy runs as that DaemonSet would start it, with
// its ConfigMap's files and a real ServiceAccount token (TokenRequest, `kubectl create token`),
// and proxies packets. The API server's audit log shows what the agent asked for: exactly the
// ClusterRole's rules, none refused. `kubectl auth can-i` checks the role is no wider.
import test from 'ava';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { CLUSTER_CIDRS } from '../../ts/demo/topology.js';
import { AGENT_ENTRY, asAgent, waitForServiceIP } from '../helpers/agent.js';
import { KPROXY_USER } from '../helpers/control-plane.js';
import { configMount, DEPLOY_DIR, findObject, ruleTriples, type Obj } from '../helpers/deploy-manifests.js';
import { NODE_NAME } from '../netns/manifests.js';
import { bedFor, NODE_IP, WEB_IP, WEB_IP6 } from './bed.js';

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** The admin asking on kproxy's behalf (impersonation). */
const AS_KPROXY = ['--as', KPROXY_USER];

/** Audit every request of kproxy's ServiceAccount, and nothing else. */
const AUDIT_POLICY = {
  apiVersion: 'audit.k8s.io/v1', kind: 'Policy', omitStages: ['RequestReceived'],
  rules: [{ level: 'Metadata', users: [KPROXY_USER] }, { level: 'None' }],
};

// [verb, resource, namespace or '-A' or '' (cluster-scoped), allowed]
const CAN_I: Array<[string, string, string, boolean]> = [
  ['list', 'services', '-A', true], ['watch', 'services', '-A', true],
  ['list', 'endpointslices.discovery.k8s.io', '-A', true], ['watch', 'endpointslices.discovery.k8s.io', '-A', true],
  ['list', 'nodes', '', true], ['watch', 'nodes', '', true],
  ['list', 'servicecidrs.networking.k8s.io', '', true], ['watch', 'servicecidrs.networking.k8s.io', '', true],
  ['create', 'events.events.k8s.io', 'default', true],
  // Not what kproxy does, whatever upstream's system:node-proxier grants.
  ['get', 'nodes', '', false], ['list', 'endpoints', '-A', false], ['patch', 'events.events.k8s.io', 'default', false],
  ['get', 'secrets', 'kube-system', false], ['list', 'secrets', '-A', false], ['get', 'configmaps', 'kube-system', false],
  ['update', 'services', 'default', false], ['patch', 'services', 'default', false], ['update', 'services/status', 'default', false],
  ['delete', 'pods', 'kube-system', false], ['create', 'pods', 'kube-system', false],
  ['update', 'nodes', '', false], ['patch', 'nodes/status', '', false],
  ['create', 'endpointslices.discovery.k8s.io', 'default', false], ['delete', 'servicecidrs.networking.k8s.io', '', false],
  ['create', 'serviceaccounts/token', 'kube-system', false], ['impersonate', 'users', '', false],
];

test.serial('deploy/: applied to a real API server, its DaemonSet\'s kproxy proxies under exactly the RBAC it ships', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-deploy-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const auditLog = join(dir, 'audit.log');
  writeFileSync(join(dir, 'audit-policy.json'), JSON.stringify(AUDIT_POLICY));
  // --allow-privileged as kubeadm sets it (components/privileged's DaemonSet is refused without).
  const bed = await bedFor(t, 'k8s-deploy', {
    apiserverArgs: ['--audit-policy-file', join(dir, 'audit-policy.json'), '--audit-log-path', auditLog, '--allow-privileged=true'],
  });
  const { cp } = bed;

  // The harness applied deploy/rbac.yaml for the other suites: remove it, so that the
  // kustomization is seen creating everything.
  await cp.kubectl(['delete', '-f', join(DEPLOY_DIR, 'rbac.yaml'), '--wait']);
  const built = parseAllDocuments(await cp.kubectl(['kustomize', DEPLOY_DIR])).map((d) => d.toJS() as Obj);
  const applied = await cp.kubectl(['apply', '-k', DEPLOY_DIR]);
  for (const o of built) {
    const group = o.apiVersion.includes('/') ? `.${o.apiVersion.split('/')[0]}` : '';
    const ref = `${o.kind.toLowerCase()}${group}/${o.metadata.name}`;
    t.true(applied.includes(`${ref} created`), `${ref} created:\n${applied}`);
    const ns = o.metadata.namespace ? ['-n', o.metadata.namespace] : [];
    const got = JSON.parse(await cp.kubectl(['get', `${o.kind.toLowerCase()}${group}`, o.metadata.name, ...ns, '-o', 'json']));
    t.is(got.metadata.uid !== undefined, true, `${ref} is stored`);
  }
  const role = findObject(built, 'ClusterRole');
  // The privileged component builds and passes the API's validation too.
  const overlay = join(dir, 'overlay');
  mkdirSync(overlay);
  const base = relative(overlay, DEPLOY_DIR);
  writeFileSync(join(overlay, 'kustomization.yaml'), `resources: [${base}]\ncomponents: [${base}/components/privileged]\n`);
  t.regex(await cp.kubectl(['apply', '--dry-run=server', '-k', overlay]), /daemonset\.apps\/kproxy (configured|unchanged) \(server dry run\)/);

  // What the kubelet would do for the pod: the ServiceAccount's token and CA in SA_DIR, the
  // ConfigMap's keys under its mount, $(NODE_NAME) from spec.nodeName. Here the pod's paths
  // map into `dir`, and the placeholders become this cluster's.
  const ds = JSON.parse(await cp.kubectl(['get', 'daemonset', 'kproxy', '-n', 'kube-system', '-o', 'json']));
  const cm = JSON.parse(await cp.kubectl(['get', 'configmap', 'kproxy', '-n', 'kube-system', '-o', 'json']));
  const { container, mountPath } = configMount(ds, cm.metadata.name);
  const saDir = join(dir, 'sa');
  const mountDir = join(dir, 'config');
  mkdirSync(saDir);
  mkdirSync(mountDir);
  const token = (await cp.kubectl(['create', 'token', 'kproxy', '-n', 'kube-system', '--duration', '1h'])).trim();
  t.regex(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'a JWT from the TokenRequest API');
  writeFileSync(join(saDir, 'token'), token);
  const admin = JSON.parse(readFileSync(cp.kubeconfig('admin'), 'utf8'));
  writeFileSync(join(saDir, 'ca.crt'), Buffer.from(admin.clusters[0].cluster['certificate-authority-data'], 'base64'));
  const inPod = (text: string) => text.replaceAll(SA_DIR, saDir).replaceAll(mountPath, mountDir);
  const placeholders: Array<[RegExp, string]> = [[/https:\/\/control-plane\.invalid:6443/g, cp.server], [/^(\s*clusterCIDR:).*$/m, `$1 ${CLUSTER_CIDRS.join(',')}`]];
  for (const [key, text] of Object.entries(cm.data as Record<string, string>)) {
    let file = inPod(text);
    for (const [from, to] of placeholders) file = file.replace(from, to);
    writeFileSync(join(mountDir, key), file);
  }
  t.regex(readFileSync(join(mountDir, 'kubeconfig.conf'), 'utf8'), new RegExp(`server: ${cp.server}`));
  const env = Object.fromEntries((container.env as Obj[]).map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath === 'spec.nodeName' ? NODE_NAME : e.value]));
  const args = (container.args as string[]).map((a) => inPod(a).replace(/\$\((\w+)\)/g, (_, name) => env[name]));
  const agent = asAgent(bed.topo.spawnIn(bed.topo.node, 'node', [...AGENT_ENTRY, ...args]));
  t.teardown(async () => {
    if (!t.passed) t.log(`kproxy ${args.join(' ')} (tail):\n${agent.logs().slice(-4000)}`);
    await agent.stop();
  });

  // It proxies: real packets to the web Service, and a change through the API.
  await waitForServiceIP(bed.topo, agent, WEB_IP, 60_000);
  await waitForServiceIP(bed.topo, agent, WEB_IP6, 60_000);
  t.is(await bed.answered(), 'backend-1,backend-2', 'IPv4: both endpoints answer');
  t.is(await bed.answered(WEB_IP6), 'backend-1,backend-2', 'IPv6: both endpoints answer');
  await bed.setEndpoints(bed.topo.backends[1]);
  await bed.until('only backend-2 to answer', 'backend-2');
  const starting = JSON.parse(await cp.kubectl(['get', 'events.v1.events.k8s.io', '-n', 'default', '-o', 'json'])).items
    .filter((e: Obj) => e.reason === 'Starting' && e.regarding?.name === NODE_NAME);
  t.is(starting.length, 1, 'the Starting Event on the Node, created by the ServiceAccount');

  // The probes, as the kubelet sends them (to the pod's IP: the node's, host network); the
  // metrics port is not on the node's address.
  for (const probe of [container.livenessProbe, container.readinessProbe]) {
    const r = await bed.topo.exec(bed.topo.client, ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${NODE_IP}:${probe.httpGet.port}${probe.httpGet.path}`], { allowFailure: true });
    t.is(r.stdout, '200', `${probe.httpGet.path} on ${NODE_IP}:${probe.httpGet.port}`);
  }
  const metrics = await bed.topo.exec(bed.topo.client, ['curl', '-s', '-m', '2', `http://${NODE_IP}:10249/metrics`], { allowFailure: true });
  t.not(metrics.code, 0, '10249 answers on loopback only');
  const logs = agent.logs();
  t.notRegex(logs, /forbidden|"status":403\b|HTTP 403\b/i, 'no request was forbidden');
  t.notRegex(logs, /lenient decoding|is ignored because --config|not implemented/i, 'the config file was taken whole');
  const warnings = logs.split('\n').filter((l) => /^\{"level":(40|50|60)\b/.test(l));
  t.deepEqual(warnings, [], 'no warning or error logged');

  // The audit log: every request of the ServiceAccount (a real token: it carries a credential
  // id), none refused, and together exactly the ClusterRole's rules.
  const entries = readFileSync(auditLog, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Obj)
    .filter((e) => e.user?.username === KPROXY_USER && !e.impersonatedUser && e.objectRef);
  t.true(entries.length > 0, 'the agent\'s requests are in the audit log');
  t.true(entries.every((e) => (e.user.extra?.['authentication.kubernetes.io/credential-id'] ?? []).some((id: string) => id.startsWith('JTI='))), 'a bound ServiceAccount token, not the static one');
  const refused = entries.filter((e) => e.responseStatus?.code >= 400 && e.responseStatus?.code !== 404);
  t.deepEqual(refused.map((e) => `${e.verb} ${e.requestURI} ${e.responseStatus.code}`), []);
  const used = [...new Set(entries.map((e) => `${e.verb} ${e.objectRef.apiGroup ?? ''}/${e.objectRef.resource}`))].sort();
  t.deepEqual(used, ruleTriples(role), 'kproxy used every verb the ClusterRole grants, and no other');

  // And nothing more is granted.
  const answers = await Promise.all(CAN_I.map(async ([verb, resource, ns]) => {
    const scope = ns === '-A' ? ['-A'] : ns ? ['-n', ns] : [];
    return (await cp.kubectl(['auth', 'can-i', verb, resource, ...scope, ...AS_KPROXY], { allowFailure: true })).trim();
  }));
  t.deepEqual(CAN_I.map(([verb, resource, ns], i) => `${verb} ${resource} ${ns}: ${answers[i]}`), CAN_I.map(([verb, resource, ns, allowed]) => `${verb} ${resource} ${ns}: ${allowed ? 'yes' : 'no'}`));
});
