// Which local traffic detector each family's proxier gets (upstream's getLocalDetectors), and
// detectLocalMode NodeCIDR: the wait for the Node's podCIDRs, the events replayed to the agent
// afterwards, and the exit when the podCIDRs change (upstream's NodeManager).
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { IPFamily } from '../../ts/model/types.js';
import { localDetectorFor, localDetectors, type LocalDetectorConfig } from '../../ts/proxier/local-detector.js';
import { createProxiers } from '../../ts/proxier/registry.js';
import { EarlySource } from '../../ts/sources/early.js';
import { ManifestsSource } from '../../ts/sources/manifests.js';
import type { Kind, KubeObject } from '../../ts/sources/types.js';
import { PodCIDRWatch } from '../../ts/tracker/pod-cidrs.js';

const BOTH: IPFamily[] = ['IPv4', 'IPv6'];

const CASES: Array<[string, LocalDetectorConfig, ReturnType<typeof localDetectors>]> = [
  ['ClusterCIDR, dual-stack', { mode: 'ClusterCIDR', clusterCIDRs: ['10.244.0.0/16', 'fd00:244::/48'] },
    { IPv4: { mode: 'ClusterCIDR', cidr: '10.244.0.0/16' }, IPv6: { mode: 'ClusterCIDR', cidr: 'fd00:244::/48' } }],
  ['ClusterCIDR, one family: the other has none (upstream\'s no-op)', { mode: 'ClusterCIDR', clusterCIDRs: ['fd00:244::/48'] },
    { IPv6: { mode: 'ClusterCIDR', cidr: 'fd00:244::/48' } }],
  ['ClusterCIDR without a CIDR: none', { mode: 'ClusterCIDR', clusterCIDRs: [] }, {}],
  ['NodeCIDR takes the Node\'s podCIDRs, canonical', { mode: 'NodeCIDR', clusterCIDRs: ['10.244.0.0/16'], podCIDRs: ['10.244.1.7/24', 'fd00:244:0:1::/64'] },
    { IPv4: { mode: 'NodeCIDR', cidr: '10.244.1.0/24' }, IPv6: { mode: 'NodeCIDR', cidr: 'fd00:244:0:1::/64' } }],
  ['NodeCIDR: the first CIDR of each family, bad ones ignored', { mode: 'NodeCIDR', clusterCIDRs: [], podCIDRs: ['bogus', '10.244.2.0/24', '10.244.3.0/24'] },
    { IPv4: { mode: 'NodeCIDR', cidr: '10.244.2.0/24' } }],
  ['BridgeInterface serves both families', { mode: 'BridgeInterface', clusterCIDRs: ['10.244.0.0/16'], bridgeInterface: 'cbr0' },
    { IPv4: { mode: 'BridgeInterface', interface: 'cbr0' }, IPv6: { mode: 'BridgeInterface', interface: 'cbr0' } }],
  ['InterfaceNamePrefix serves both families', { mode: 'InterfaceNamePrefix', clusterCIDRs: [], interfaceNamePrefix: 'veth' },
    { IPv4: { mode: 'InterfaceNamePrefix', prefix: 'veth' }, IPv6: { mode: 'InterfaceNamePrefix', prefix: 'veth' } }],
];

for (const [name, cfg, expected] of CASES) {
  test(`localDetectors: ${name}`, (t) => {
    t.deepEqual(localDetectors(BOTH, cfg), expected);
  });
}

test('localDetectorFor: NodeCIDR before podCIDRs are known has none', (t) => {
  t.is(localDetectorFor('IPv4', { mode: 'NodeCIDR', clusterCIDRs: ['10.244.0.0/16'] }), undefined);
});

test('each family\'s proxier gets its detector', async (t) => {
  const render = async (cfg: LocalDetectorConfig) => {
    const list = await createProxiers('nftables', BOTH, {
      localDetectors: localDetectors(BOTH, cfg), masqueradeAll: false, masqueradeBit: 14, fake: true, registry: new Registry(), logger: pino({ level: 'silent' }),
    });
    for (const p of list) await p.sync({ full: true, upserts: [], deletes: [] });
    return Object.fromEntries(list.map((p) => [p.family, p.render()]));
  };
  const node = await render({ mode: 'NodeCIDR', clusterCIDRs: [], podCIDRs: ['10.244.1.0/24', 'fd00:244:0:1::/64'] });
  t.true(node.IPv4.includes('10.244.1.0/24'));
  t.true(node.IPv6.includes('fd00:244:0:1::/64'));
  const bridge = await render({ mode: 'BridgeInterface', clusterCIDRs: [], bridgeInterface: 'cbr0' });
  t.true(bridge.IPv4.includes('"cbr0"') && bridge.IPv6.includes('"cbr0"'));
});

const nodeObj = (podCIDRs?: string[], name = 'node-a'): KubeObject => ({ apiVersion: 'v1', kind: 'Node', metadata: { name }, spec: podCIDRs ? { podCIDRs } : {} });

function watch() {
  const exits: number[] = [];
  const w = new PodCIDRWatch({ nodeName: 'node-a', logger: pino({ level: 'silent' }), exit: (code) => exits.push(code) });
  return { w, exits };
}

test('PodCIDRWatch: waits until the Node has podCIDRs; other nodes and kinds do not count', async (t) => {
  const { w, exits } = watch();
  const waiting = w.wait(10_000);
  w.onEvent('Node', 'ADDED', nodeObj());
  w.onEvent('Node', 'ADDED', nodeObj(['10.9.0.0/24'], 'node-b'));
  w.onEvent('Service', 'ADDED', { metadata: { name: 'node-a' }, spec: { podCIDRs: ['x'] } });
  w.onEvent('Node', 'MODIFIED', nodeObj(['10.244.1.0/24', 'fd00:244:0:1::/64']));
  t.deepEqual(await waiting, ['10.244.1.0/24', 'fd00:244:0:1::/64']);
  // Unchanged podCIDRs (a resync, a label change) are fine.
  w.onEvent('Node', 'MODIFIED', nodeObj(['10.244.1.0/24', 'fd00:244:0:1::/64']));
  w.onEvent('Node', 'DELETED', nodeObj());
  t.deepEqual(exits, []);
});

test('PodCIDRWatch: a change after the proxiers were built exits with 1', async (t) => {
  const { w, exits } = watch();
  w.onEvent('Node', 'ADDED', nodeObj(['10.244.1.0/24']));
  t.deepEqual(await w.wait(0), ['10.244.1.0/24'], 'already known: no wait');
  w.onEvent('Node', 'MODIFIED', nodeObj(['10.244.2.0/24']));
  t.deepEqual(exits, [1]);
});

test('PodCIDRWatch: gives up after the timeout, saying why', async (t) => {
  const none = watch();
  await t.throwsAsync(none.w.wait(20), { message: 'detectLocalMode NodeCIDR: node "node-a" was not found (waited 0.02s)' });
  const empty = watch();
  empty.w.onEvent('Node', 'ADDED', nodeObj([]));
  await t.throwsAsync(empty.w.wait(20), { message: /node "node-a" does not have any PodCIDR allocated/ });
  t.deepEqual(empty.exits, []);
});

test('NodeCIDR end to end on --manifests: wait, replay to the agent\'s handler, exit on change', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-nodecidr-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const nodeYaml = (cidr: string) => `apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\nspec: {podCIDRs: ["${cidr}"]}\n`;
  await writeFile(join(dir, 'node.yaml'), nodeYaml('10.244.1.0/24'));
  await writeFile(join(dir, 'svc.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: ns}\nspec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}\n');
  const { w, exits } = watch();
  const source = new EarlySource(new ManifestsSource({ dir, nodeName: 'node-a' }), (kind, type, obj) => w.onEvent(kind, type, obj));
  t.teardown(() => source.stop());
  await source.begin();
  t.deepEqual(await w.wait(0), ['10.244.1.0/24']);

  // The agent attaches later and sees everything, in order, then the live stream.
  const seen: string[] = [];
  await source.start({
    onEvent: (kind: Kind, type, obj) => seen.push(`${type} ${kind} ${obj.metadata.name}`),
    onSynced: () => seen.push('synced'),
    onInvalid: () => {},
  });
  t.deepEqual(seen, ['ADDED Service web', 'ADDED Node node-a', 'synced']);
  await writeFile(join(dir, 'node.yaml'), nodeYaml('10.244.7.0/24'));
  const deadline = Date.now() + 10_000;
  while (exits.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  t.deepEqual(exits, [1]);
  t.is(seen.at(-1), 'MODIFIED Node node-a');
});

function kproxy(args: string[]) {
  const repo = fileURLToPath(new URL('../..', import.meta.url));
  return spawnSync(process.execPath, ['--import', 'tsx', 'ts/cli.ts', ...args], { cwd: repo, encoding: 'utf8', timeout: 60_000 });
}

test('kproxy plan with NodeCIDR uses the Node\'s podCIDRs, and fails without them', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-plan-nodecidr-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'svc.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: ns}\nspec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}\n');
  const plan = (extra: string[]) => kproxy(['plan', '--manifests', dir, '--hostname-override', 'node-a', ...extra]);
  const missing = plan(['--detect-local-mode', 'NodeCIDR']);
  t.is(missing.status, 1);
  t.regex(missing.stderr, /node \\"node-a\\" was not found/);
  await writeFile(join(dir, 'node.yaml'), 'apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\nspec: {podCIDRs: [10.244.1.0/24]}\n');
  const ok = plan(['--detect-local-mode', 'NodeCIDR', '--cluster-cidr', '10.244.0.0/16']);
  t.is(ok.status, 0, ok.stderr);
  t.true(ok.stdout.includes('ip saddr != 10.244.1.0/24'), 'the Node\'s CIDR, not the cluster\'s');
  t.false(ok.stdout.includes('10.244.0.0/16'));
  const bridge = plan(['--detect-local-mode', 'BridgeInterface', '--pod-bridge-interface', 'cbr0']);
  t.is(bridge.status, 0, bridge.stderr);
  t.true(bridge.stdout.includes('iifname != "cbr0"'));
});
