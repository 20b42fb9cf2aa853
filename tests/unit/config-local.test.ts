// --nodeport-addresses / nodePortAddresses and the detect-local modes: parsing, upstream's
// defaults (primary in nftables mode, ClusterCIDR), validation errors naming the flag or
// field, and what /configz shows.
import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig, usage, type ProxyConfig } from '../../ts/config/index.js';

const load = (argv: string[]) => loadConfig(argv, { hostname: () => 'node-a' });
const pick = (c: ProxyConfig, keys: string[]) => Object.fromEntries(keys.map((k) => [k, (c as unknown as Record<string, unknown>)[k]]));

const FLAGS: Array<[string[], Partial<ProxyConfig>]> = [
  [[], { nodePortAddresses: ['primary'], detectLocalMode: 'ClusterCIDR', bridgeInterface: '', interfaceNamePrefix: '' }],
  [['--nodeport-addresses=10.0.0.0/8,fd00::/64'], { nodePortAddresses: ['10.0.0.0/8', 'fd00::/64'] }],
  // Host bits are cleared, as ParseCIDRSloppy's network.
  [['--nodeport-addresses', '10.1.2.3/8'], { nodePortAddresses: ['10.0.0.0/8'] }],
  // pflag's StringSlice: a repeated flag appends, fields may be quoted.
  [['--nodeport-addresses', '10.0.0.0/8', '--nodeport-addresses', 'fd00::/64'], { nodePortAddresses: ['10.0.0.0/8', 'fd00::/64'] }],
  [['--nodeport-addresses', '"10.0.0.0/8",192.168.0.0/16'], { nodePortAddresses: ['10.0.0.0/8', '192.168.0.0/16'] }],
  [['--nodeport-addresses', 'primary'], { nodePortAddresses: ['primary'] }],
  // Empty is unset: nftables mode's default.
  [['--nodeport-addresses='], { nodePortAddresses: ['primary'] }],
  [['--nodeport-addresses=0.0.0.0/0,::/0'], { nodePortAddresses: ['0.0.0.0/0', '::/0'] }],
  [['--detect-local-mode', 'NodeCIDR'], { detectLocalMode: 'NodeCIDR' }],
  [['--detect-local-mode=', '--cluster-cidr=10.244.0.0/16'], { detectLocalMode: 'ClusterCIDR', clusterCIDRs: ['10.244.0.0/16'] }],
  [['--detect-local-mode', 'BridgeInterface', '--pod-bridge-interface', 'cbr0'], { detectLocalMode: 'BridgeInterface', bridgeInterface: 'cbr0' }],
  [['--detect-local-mode=InterfaceNamePrefix', '--pod-interface-name-prefix=veth'], { detectLocalMode: 'InterfaceNamePrefix', interfaceNamePrefix: 'veth' }],
  // Only the mode that uses a name requires it.
  [['--pod-bridge-interface', 'cbr0'], { detectLocalMode: 'ClusterCIDR', bridgeInterface: 'cbr0' }],
];

for (const [argv, expected] of FLAGS) {
  test(`flags ${JSON.stringify(argv)}`, (t) => {
    t.deepEqual(pick(load(argv), Object.keys(expected)), expected as Record<string, unknown>);
  });
}

const FLAG_ERRORS: Array<[string[], string, string]> = [
  [['--nodeport-addresses=10.20.30.40'], '--nodeport-addresses', `--nodeport-addresses[0]: "10.20.30.40" must be a valid CIDR (e.g. 10.0.0.0/8 or fd00::/64), or the single string 'primary'`],
  [['--nodeport-addresses=10.0.0.0/8,1.2.3'], '--nodeport-addresses', '--nodeport-addresses[1]: "1.2.3" must be a valid CIDR'],
  [['--nodeport-addresses=10.0.0.0/8, 10.1.0.0/16'], '--nodeport-addresses', '[1]: " 10.1.0.0/16" must be a valid CIDR'],
  [['--nodeport-addresses=10.0.0.0/33'], '--nodeport-addresses', '"10.0.0.0/33" must be a valid CIDR'],
  [['--nodeport-addresses=all'], '--nodeport-addresses', `"all" must be a valid CIDR (e.g. 10.0.0.0/8 or fd00::/64), or the single string 'primary'`],
  [['--nodeport-addresses=primary,10.0.0.0/8'], '--nodeport-addresses', `--nodeport-addresses[0]: can't use both 'primary' and CIDRs`],
  [['--nodeport-addresses=127.0.0.1/32,primary'], '--nodeport-addresses', `--nodeport-addresses[1]: can't use both 'primary' and CIDRs`],
  [['--detect-local-mode=BridgeInterface'], '--pod-bridge-interface', '--pod-bridge-interface: must not be empty when --detect-local-mode is BridgeInterface'],
  [['--detect-local-mode=InterfaceNamePrefix', '--pod-interface-name-prefix='], '--pod-interface-name-prefix', 'must not be empty when --detect-local-mode is InterfaceNamePrefix'],
  [['--detect-local-mode=Foo'], '--detect-local-mode', '--detect-local-mode: unsupported value "Foo"; accepted: ClusterCIDR, NodeCIDR, BridgeInterface, InterfaceNamePrefix'],
  [['--detect-local-mode=nodecidr'], '--detect-local-mode', 'unsupported value "nodecidr"'],
];

for (const [argv, flag, message] of FLAG_ERRORS) {
  test(`flag error ${JSON.stringify(argv)}`, (t) => {
    const err = t.throws(() => load(argv), { instanceOf: ConfigError }) as ConfigError;
    t.is(err.flag, flag);
    t.true(err.message.includes(message), err.message);
  });
}

const dir = mkdtempSync(join(tmpdir(), 'kproxy-config-local-'));
let n = 0;
const file = (body: string) => {
  const path = join(dir, `c${n++}.yaml`);
  writeFileSync(path, `apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n${body}`);
  return path;
};

const FILES: Array<[string, Partial<ProxyConfig>]> = [
  ['', { nodePortAddresses: ['primary'], detectLocalMode: 'ClusterCIDR' }],
  ['nodePortAddresses: null\n', { nodePortAddresses: ['primary'] }],
  ['nodePortAddresses: []\n', { nodePortAddresses: ['primary'] }],
  ['nodePortAddresses: [primary]\n', { nodePortAddresses: ['primary'] }],
  ['nodePortAddresses: [10.0.0.0/8, "fd00::/64"]\n', { nodePortAddresses: ['10.0.0.0/8', 'fd00::/64'] }],
  ['detectLocalMode: NodeCIDR\n', { detectLocalMode: 'NodeCIDR' }],
  ['detectLocalMode: ""\n', { detectLocalMode: 'ClusterCIDR' }],
  ['detectLocalMode: BridgeInterface\ndetectLocal: {bridgeInterface: cbr0}\n', { detectLocalMode: 'BridgeInterface', bridgeInterface: 'cbr0' }],
  ['detectLocalMode: InterfaceNamePrefix\ndetectLocal: {interfaceNamePrefix: cali}\n', { detectLocalMode: 'InterfaceNamePrefix', interfaceNamePrefix: 'cali' }],
];

for (const [body, expected] of FILES) {
  test(`config file ${JSON.stringify(body.trim())}`, (t) => {
    t.deepEqual(pick(load(['--config', file(body)]), Object.keys(expected)), expected as Record<string, unknown>);
  });
}

const FILE_ERRORS: Array<[string, string, string]> = [
  ['detectLocalMode: BridgeInterface\n', 'detectLocal.bridgeInterface', 'detectLocal.bridgeInterface: must not be empty when detectLocalMode is BridgeInterface'],
  ['detectLocalMode: InterfaceNamePrefix\ndetectLocal: {bridgeInterface: cbr0}\n', 'detectLocal.interfaceNamePrefix', 'must not be empty when detectLocalMode is InterfaceNamePrefix'],
  ['detectLocalMode: Bogus\n', 'detectLocalMode', 'detectLocalMode: unsupported value "Bogus"; accepted: ClusterCIDR, NodeCIDR'],
  ['nodePortAddresses: [10.0.0.0/8, 10.0.0.1]\n', 'nodePortAddresses', 'nodePortAddresses[1]: "10.0.0.1" must be a valid CIDR'],
  ['nodePortAddresses: [primary, 10.0.0.0/8]\n', 'nodePortAddresses', `nodePortAddresses[0]: can't use both 'primary' and CIDRs`],
  ['nodePortAddresses: primary\n', 'nodePortAddresses', 'must be a list of strings'],
  ['detectLocal: {bridgeInterface: 1}\n', 'detectLocal.bridgeInterface', 'must be a string'],
];

for (const [body, flag, message] of FILE_ERRORS) {
  test(`config file error ${JSON.stringify(body.trim())}`, (t) => {
    const err = t.throws(() => load(['--config', file(body)]), { instanceOf: ConfigError }) as ConfigError;
    t.is(err.flag, flag);
    t.true(err.message.includes(message), err.message);
  });
}

test('with --config, the flags are ignored with a warning, as upstream', (t) => {
  const c = load(['--config', file('detectLocalMode: NodeCIDR\n'), '--detect-local-mode=ClusterCIDR', '--nodeport-addresses=10.0.0.0/8']);
  t.is(c.detectLocalMode, 'NodeCIDR');
  t.deepEqual(c.nodePortAddresses, ['primary']);
  t.is(c.warnings.length, 2);
  t.regex(c.warnings.join('\n'), /--detect-local-mode is ignored[\s\S]*--nodeport-addresses is ignored/);
});

test('/configz shows the effective detect-local and nodePortAddresses settings', (t) => {
  const defaults = load([]).raw;
  t.is(defaults.detectLocalMode, 'ClusterCIDR');
  t.deepEqual(defaults.detectLocal, { bridgeInterface: '', interfaceNamePrefix: '' });
  t.deepEqual(defaults.nodePortAddresses, ['primary']);
  const raw = load(['--detect-local-mode=InterfaceNamePrefix', '--pod-interface-name-prefix=veth', '--nodeport-addresses=10.1.2.3/16']).raw;
  t.is(raw.detectLocalMode, 'InterfaceNamePrefix');
  t.deepEqual(raw.detectLocal, { bridgeInterface: '', interfaceNamePrefix: 'veth' });
  t.deepEqual(raw.nodePortAddresses, ['10.1.0.0/16']);
  const fromFile = load(['--config', file('detectLocalMode: BridgeInterface\ndetectLocal: {bridgeInterface: cbr0}\nnodePortAddresses: ["::/0"]\n')]).raw;
  t.is(fromFile.detectLocalMode, 'BridgeInterface');
  t.deepEqual(fromFile.detectLocal, { bridgeInterface: 'cbr0', interfaceNamePrefix: '' });
  t.deepEqual(fromFile.nodePortAddresses, ['::/0']);
});

test('--help lists the flags as implemented', (t) => {
  const text = usage();
  const [implemented, refused] = text.split('Recognised kube-proxy flags');
  for (const f of ['--nodeport-addresses strings', '--detect-local-mode string', '--pod-bridge-interface string', '--pod-interface-name-prefix string']) {
    t.true(implemented.includes(f), f);
  }
  for (const f of ['--nodeport-addresses', '--pod-bridge-interface', '--pod-interface-name-prefix']) t.false(refused.includes(f), f);
});
