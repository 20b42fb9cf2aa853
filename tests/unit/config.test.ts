import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, formatGoDuration, loadConfig, parseGoDuration, usage, type ProxyConfig } from '../../ts/config/index.js';

const HOST = () => 'Node-A';
const load = (argv: string[]) => loadConfig(argv, { hostname: HOST });

const DEFAULTS: Partial<ProxyConfig> = {
  mode: 'nftables',
  configFile: undefined,
  kubeconfig: '',
  master: '',
  hostnameOverride: 'node-a',
  clusterCIDRs: [],
  bindAddress: '0.0.0.0',
  metricsBindAddress: '127.0.0.1:10249',
  healthzBindAddress: '0.0.0.0:10256',
  syncPeriodMs: 30_000,
  minSyncPeriodMs: 1_000,
  masqueradeBit: 14,
  masqueradeAll: false,
  cleanup: false,
  verbosity: 0,
  configSyncPeriodMs: 900_000,
  manifests: undefined,
  detectLocalMode: 'ClusterCIDR',
  bridgeInterface: '',
  interfaceNamePrefix: '',
  nodePortAddresses: ['primary'],
  help: false,
  warnings: [],
};

function pick(config: ProxyConfig, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((k) => [k, (config as unknown as Record<string, unknown>)[k]]));
}

// --- flags: argv → expected fields -------------------------------------------------------------

const FLAG_CASES: Array<[string[], Partial<ProxyConfig>]> = [
  [[], DEFAULTS],
  [['--proxy-mode=nftables'], { mode: 'nftables' }],
  [['--proxy-mode', ''], { mode: 'nftables' }],
  [['--iptables-sync-period', '1m30s', '--iptables-min-sync-period=500ms'], { syncPeriodMs: 90_000, minSyncPeriodMs: 500 }],
  [['--iptables-sync-period=1h'], { syncPeriodMs: 3_600_000 }],
  [['--iptables-min-sync-period=0'], { minSyncPeriodMs: 0 }],
  [['-v', '2'], { verbosity: 2 }],
  [['-v=3'], { verbosity: 3 }],
  [['--v=4'], { verbosity: 4 }],
  [['--v', '5'], { verbosity: 5 }],
  [['-v6'], { verbosity: 6 }],
  [['--masquerade-all'], { masqueradeAll: true }],
  [['--masquerade-all=false'], { masqueradeAll: false }],
  [['--masquerade-all=true', '--masquerade-all=0'], { masqueradeAll: false }],
  [['--cleanup'], { cleanup: true }],
  [['--cleanup=false'], { cleanup: false }],
  [['--hostname-override', 'My-Node'], { hostnameOverride: 'my-node' }],
  [['--hostname_override=Other'], { hostnameOverride: 'other' }],
  [['--hostname-override='], { hostnameOverride: 'node-a' }],
  [['--cluster-cidr=10.0.0.0/8'], { clusterCIDRs: ['10.0.0.0/8'] }],
  [['--cluster-cidr', '10.0.0.0/8,fd00:10::/48'], { clusterCIDRs: ['10.0.0.0/8', 'fd00:10::/48'] }],
  [['--healthz-bind-address=127.0.0.1'], { healthzBindAddress: '127.0.0.1:10256' }],
  [['--healthz-bind-address=::1'], { healthzBindAddress: '[::1]:10256' }],
  [['--healthz-bind-address', ''], { healthzBindAddress: '' }],
  [['--metrics-bind-address='], { metricsBindAddress: '' }],
  [['--metrics-bind-address=0.0.0.0:9999'], { metricsBindAddress: '0.0.0.0:9999' }],
  [['--metrics-bind-address=[::]:10249'], { metricsBindAddress: '[::]:10249' }],
  // Upstream defaults the listen addresses before flags are read, so they stay IPv4 here.
  [['--bind-address=::'], { bindAddress: '::', healthzBindAddress: '0.0.0.0:10256' }],
  [['--iptables-masquerade-bit=15'], { masqueradeBit: 15 }],
  [['--iptables-masquerade-bit', '0'], { masqueradeBit: 0 }],
  [['--config-sync-period=1m'], { configSyncPeriodMs: 60_000 }],
  [['--kubeconfig=/etc/kp/kubeconfig', '--master', 'https://10.0.0.1:6443'], { kubeconfig: '/etc/kp/kubeconfig', master: 'https://10.0.0.1:6443' }],
  [['--manifests', '/srv/manifests'], { manifests: '/srv/manifests' }],
  [['--detect-local-mode=ClusterCIDR'], { detectLocalMode: 'ClusterCIDR' }],
  [['--help'], { help: true }],
  [['-h'], { help: true }],
  [['--config='], { configFile: undefined }],
  [['--', ''], { mode: 'nftables' }],
];

for (const [argv, expected] of FLAG_CASES) {
  test(`flags ${JSON.stringify(argv)}`, (t) => {
    const config = load(argv);
    t.deepEqual(pick(config, Object.keys(expected)), expected as Record<string, unknown>);
  });
}

// --- flags: argv → ConfigError (flag, message fragment) --------------------------------------

const NOT_IMPLEMENTED_FLAGS = [
  'write-config-to', 'init-only', 'feature-gates', 'kube-api-qps', 'kube-api-burst',
  'bind-address-hard-fail', 'profiling', 'show-hidden-metrics-for-version',
  'ipvs-sync-period', 'ipvs-min-sync-period', 'ipvs-scheduler', 'ipvs-exclude-cidrs', 'ipvs-strict-arp',
  'ipvs-tcp-timeout', 'ipvs-tcpfin-timeout', 'ipvs-udp-timeout', 'oom-score-adj', 'conntrack-max-per-core', 'conntrack-min', 'conntrack-tcp-timeout-established',
  'conntrack-tcp-timeout-close-wait', 'conntrack-udp-timeout', 'conntrack-udp-timeout-stream',
  'vmodule', 'logging-format', 'healthz-port', 'metrics-port', 'proxy-port-range',
];

const FLAG_ERRORS: Array<[string[], string, string]> = [
  [['--proxy-mode=foo'], '--proxy-mode', '--proxy-mode: unsupported value "foo"; accepted: nftables, iptables (ipvs: not implemented yet)'],
  [['--proxy-mode', 'ipvs'], '--proxy-mode', 'mode "ipvs" is not implemented yet by kproxy'],
  [['--bogus'], '--bogus', 'unknown flag --bogus'],
  [['--bogus=1'], '--bogus', 'unknown flag --bogus'],
  [['-x'], '-x', "unknown shorthand flag 'x' in -x"],
  [['-config=/x'], '-config', 'long flags take two dashes: --config=/x'],
  [['--config'], '--config', 'flag needs an argument: --config'],
  [['-v'], '-v', 'flag needs an argument: -v'],
  [['-v', 'abc'], '-v', 'invalid value "abc"; accepted: an integer'],
  [['-v=-1'], '-v', 'must be a non-negative integer'],
  [['stray'], 'stray', 'kproxy does not take any arguments, got ["stray"]'],
  [['--cleanup', 'false'], 'false', 'does not take any arguments'],
  [['--', 'after'], 'after', 'does not take any arguments'],
  [['--iptables-sync-period=abc'], '--iptables-sync-period', 'invalid duration "abc"; accepted: a Go duration such as 30s'],
  [['--iptables-sync-period=30'], '--iptables-sync-period', 'invalid duration "30"'],
  [['--iptables-sync-period=0s'], '--iptables-sync-period', 'must be greater than 0'],
  [['--iptables-min-sync-period=-1s'], '--iptables-min-sync-period', 'must be greater than or equal to 0'],
  [['--iptables-min-sync-period=1m'], '--iptables-min-sync-period', 'must not be greater than the sync period (30s'],
  [['--iptables-masquerade-bit=32'], '--iptables-masquerade-bit', 'must be within the range [0, 31]'],
  [['--iptables-masquerade-bit=x'], '--iptables-masquerade-bit', 'accepted: an integer'],
  [['--masquerade-all=maybe'], '--masquerade-all', 'invalid value "maybe"; accepted: true or false'],
  [['--config-sync-period=0s'], '--config-sync-period', 'must be greater than 0'],
  [['--cluster-cidr=10.0.0.0/8,10.1.0.0/16'], '--cluster-cidr', 'at most one CIDR per IP family'],
  [['--cluster-cidr=10.0.0.0/33'], '--cluster-cidr', '"10.0.0.0/33" is not a valid CIDR block'],
  [['--cluster-cidr=10.0.0.0/8,'], '--cluster-cidr', '"" is not a valid CIDR block'],
  [['--cluster-cidr=10.0.0.0/8,fd00::/8,10.1.0.0/16'], '--cluster-cidr', 'single CIDR or a dual-stack pair'],
  [['--bind-address=foo'], '--bind-address', '"foo" is not a valid IP address'],
  [['--healthz-bind-address=foo:1'], '--healthz-bind-address', '"foo" must be a valid IP'],
  [['--healthz-bind-address=foo'], '--healthz-bind-address', 'must be IP:port'],
  [['--metrics-bind-address=1.2.3.4:0'], '--metrics-bind-address', 'must be a valid port in 1-65535'],
  [['--metrics-bind-address=1.2.3.4:99999'], '--metrics-bind-address', 'must be a valid port'],
  [['--metrics-bind-address=:10249'], '--metrics-bind-address', '"" must be a valid IP'],
  [['--hostname-override=  '], '--hostname-override', 'empty hostname-override is invalid'],
  [['--detect-local-mode=Foo'], '--detect-local-mode', 'unsupported value "Foo"'],
  [['--config=/nonexistent/kproxy.yaml'], '--config', 'cannot read config file /nonexistent/kproxy.yaml'],
  // The first bad argument wins, as pflag stops there.
  [['--conntrack-min=1', '--bogus'], '--conntrack-min', 'flag --conntrack-min is not implemented yet by kproxy'],
  ...NOT_IMPLEMENTED_FLAGS.map((f): [string[], string, string] => [[`--${f}=1`], `--${f}`, `flag --${f} is not implemented yet by kproxy`]),
  [['--ipvs_scheduler', 'rr'], '--ipvs-scheduler', 'flag --ipvs-scheduler is not implemented yet by kproxy'],
];

for (const [argv, flag, fragment] of FLAG_ERRORS) {
  test(`flag error ${JSON.stringify(argv)}`, (t) => {
    const err = t.throws(() => load(argv), { instanceOf: ConfigError }) as ConfigError;
    t.is(err.flag, flag);
    t.true(err.message.includes(fragment), err.message);
  });
}

test('raw (for /configz) is the effective v1alpha1 object with camelCase keys', (t) => {
  const { raw } = load(['--iptables-sync-period=1m30s', '--hostname-override=N1', '--cluster-cidr=10.0.0.0/8', '-v=2']);
  t.is(raw.apiVersion, 'kubeproxy.config.k8s.io/v1alpha1');
  t.is(raw.kind, 'KubeProxyConfiguration');
  t.is(raw.mode, 'nftables');
  t.is(raw.hostnameOverride, 'n1');
  t.is(raw.clusterCIDR, '10.0.0.0/8');
  t.is(raw.configSyncPeriod, '15m0s');
  t.deepEqual(raw.nftables, { masqueradeBit: 14, masqueradeAll: false, syncPeriod: '1m30s', minSyncPeriod: '1s' });
  t.is(raw.iptables.syncPeriod, '1m30s');
  t.is(raw.iptables.localhostNodePorts, true);
  t.is(raw.logging.verbosity, 2);
  t.is(raw.metricsBindAddress, '127.0.0.1:10249');
  t.is(raw.clientConnection.contentType, 'application/vnd.kubernetes.protobuf');
});

test('usage lists implemented and not-implemented flags', (t) => {
  const text = usage();
  t.true(text.includes('--iptables-sync-period duration'));
  t.true(text.includes('-v, --v int'));
  t.true(text.includes('--conntrack-max-per-core'));
});

// --- config file: contents (+ argv) → expected fields ----------------------------------------

const dir = mkdtempSync(join(tmpdir(), 'kproxy-config-'));
let fileCount = 0;
function withFile(contents: string, ext = 'yaml'): string {
  const path = join(dir, `config-${fileCount++}.${ext}`);
  writeFileSync(path, contents);
  return path;
}

const HEADER = 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n';

// A defaulted v1alpha1 dump, as `kube-proxy --write-config-to` (and kubeadm) produce.
const UPSTREAM_DUMP = `${HEADER}bindAddress: 0.0.0.0
bindAddressHardFail: false
clientConnection:
  acceptContentTypes: ""
  burst: 10
  contentType: application/vnd.kubernetes.protobuf
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
  qps: 5
clusterCIDR: 10.244.0.0/16
configSyncPeriod: 15m0s
conntrack:
  maxPerCore: null
  min: null
  tcpBeLiberal: false
  tcpCloseWaitTimeout: null
  tcpEstablishedTimeout: null
  udpStreamTimeout: 0s
  udpTimeout: 0s
detectLocal:
  bridgeInterface: ""
  interfaceNamePrefix: ""
detectLocalMode: ""
enableProfiling: false
healthzBindAddress: ""
hostnameOverride: ""
iptables:
  localhostNodePorts: null
  masqueradeAll: false
  masqueradeBit: null
  minSyncPeriod: 0s
  syncPeriod: 0s
ipvs:
  excludeCIDRs: null
  minSyncPeriod: 0s
  scheduler: ""
  strictARP: false
  syncPeriod: 0s
  tcpFinTimeout: 0s
  tcpTimeout: 0s
  udpTimeout: 0s
logging:
  flushFrequency: 0
  options:
    json:
      infoBufferSize: "0"
    text:
      infoBufferSize: "0"
  verbosity: 0
metricsBindAddress: ""
mode: ""
nftables:
  masqueradeAll: false
  masqueradeBit: null
  minSyncPeriod: 0s
  syncPeriod: 0s
nodePortAddresses: null
oomScoreAdj: null
portRange: ""
showHiddenMetricsForVersion: ""
winkernel:
  enableDSR: false
  forwardHealthCheckVip: false
  networkName: ""
  rootHnsEndpointName: ""
  sourceVip: ""
`;

const FILE_CASES: Array<[string, string, string[], Partial<ProxyConfig>]> = [
  ['minimal file', HEADER, [], { ...DEFAULTS, warnings: undefined, configFile: undefined }],
  ['upstream defaulted dump (zero values mean default)', UPSTREAM_DUMP, [], {
    kubeconfig: '/var/lib/kube-proxy/kubeconfig.conf', clusterCIDRs: ['10.244.0.0/16'],
    healthzBindAddress: '0.0.0.0:10256', metricsBindAddress: '127.0.0.1:10249',
    syncPeriodMs: 30_000, minSyncPeriodMs: 1_000, masqueradeBit: 14, warnings: [],
  }],
  ['mode nftables takes nftables.*', `${HEADER}mode: nftables
nftables: {syncPeriod: 10s, minSyncPeriod: 2s, masqueradeBit: 16, masqueradeAll: true}
iptables: {syncPeriod: 5s, masqueradeBit: 3}
`, [], { syncPeriodMs: 10_000, minSyncPeriodMs: 2_000, masqueradeBit: 16, masqueradeAll: true }],
  ['mode "" takes iptables.* (upstream default mode)', `${HEADER}mode: ""
iptables: {syncPeriod: 45s, minSyncPeriod: 3s, masqueradeBit: 0, masqueradeAll: true}
nftables: {syncPeriod: 5s}
`, [], { mode: 'nftables', syncPeriodMs: 45_000, minSyncPeriodMs: 3_000, masqueradeBit: 0, masqueradeAll: true }],
  ['IPv6 bindAddress moves the default listen addresses', `${HEADER}bindAddress: "::"\n`, [],
    { bindAddress: '::', healthzBindAddress: '[::]:10256', metricsBindAddress: '[::1]:10249' }],
  ['a bare healthz IP gets the default port', `${HEADER}healthzBindAddress: 127.0.0.1\nmetricsBindAddress: 0.0.0.0:9100\n`, [],
    { healthzBindAddress: '127.0.0.1:10256', metricsBindAddress: '0.0.0.0:9100' }],
  ['hostname, CIDRs, configSyncPeriod, verbosity', `${HEADER}hostnameOverride: Worker-1
clusterCIDR: 10.0.0.0/8,fd00::/64
configSyncPeriod: 1m
logging: {verbosity: 3, format: json}
`, [], { hostnameOverride: 'worker-1', clusterCIDRs: ['10.0.0.0/8', 'fd00::/64'], configSyncPeriodMs: 60_000, verbosity: 3 }],
  ['-v and --hostname-override win over the file', `${HEADER}hostnameOverride: file-name\nlogging: {verbosity: 3}\n`,
    ['-v', '1', '--hostname-override', 'Flag-Name'], { hostnameOverride: 'flag-name', verbosity: 1 }],
  ['--master, --cleanup and --manifests still apply', HEADER, ['--master=https://api:6443', '--cleanup', '--manifests=/m'],
    { master: 'https://api:6443', cleanup: true, manifests: '/m', warnings: [] }],
  ['the NFTablesProxyMode gate is accepted', `${HEADER}featureGates: {NFTablesProxyMode: true}\n`, [], { mode: 'nftables' }],
  ['conntrack "leave as is" and default values are accepted', `${HEADER}conntrack: {maxPerCore: 0, min: 131072, tcpEstablishedTimeout: 24h0m0s, tcpCloseWaitTimeout: 1h}\n`, [],
    { mode: 'nftables' }],
  ['nodePortAddresses [primary] is the nftables default', `${HEADER}nodePortAddresses: [primary]\n`, [], { mode: 'nftables' }],
];

for (const [name, contents, argv, expected] of FILE_CASES) {
  test(`config file: ${name}`, (t) => {
    const path = withFile(contents);
    const config = load(['--config', path, ...argv]);
    const keys = Object.keys(expected).filter((k) => (expected as Record<string, unknown>)[k] !== undefined || k === 'manifests');
    t.deepEqual(pick(config, keys), Object.fromEntries(keys.map((k) => [k, (expected as Record<string, unknown>)[k]])));
    t.is(config.configFile, path);
  });
}

test('iptables mode: --proxy-mode iptables or mode: iptables, its periods from the iptables struct, shown in /configz', (t) => {
  const flags = load(['--proxy-mode', 'iptables', '--iptables-sync-period', '10s']);
  t.is(flags.mode, 'iptables');
  t.is(flags.raw.mode, 'iptables');
  t.is(flags.raw.iptables.syncPeriod, '10s');
  // Unset nodePortAddresses: every local address in iptables mode (upstream's default), shown unset.
  t.deepEqual(flags.nodePortAddresses, ['0.0.0.0/0', '::/0']);
  t.deepEqual(flags.raw.nodePortAddresses, []);
  t.deepEqual(load(['--proxy-mode', 'iptables', '--nodeport-addresses', 'primary']).nodePortAddresses, ['primary']);
  t.deepEqual(load(['--proxy-mode', 'nftables']).nodePortAddresses, ['primary']);
  const file = load(['--config', withFile(`${HEADER}mode: iptables\niptables: {syncPeriod: 20s, minSyncPeriod: 2s}\n`)]);
  t.is(file.mode, 'iptables');
  t.is(file.syncPeriodMs, 20_000);
  t.is(file.minSyncPeriodMs, 2_000);
});

test('config file: JSON works too', (t) => {
  const path = withFile(JSON.stringify({
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1', kind: 'KubeProxyConfiguration', mode: 'nftables',
    nftables: { syncPeriod: '1m' }, clientConnection: { kubeconfig: '/kc' },
  }), 'json');
  const config = load([`--config=${path}`]);
  t.is(config.syncPeriodMs, 60_000);
  t.is(config.kubeconfig, '/kc');
});

// Services and EndpointSlices are read in protobuf unless JSON is asked for, as client-go;
// /configz shows the contentType in force. '@...' is a config file with that body.
const PB = 'application/vnd.kubernetes.protobuf';
const CONTENT_TYPES: Array<[string, string[], boolean, string]> = [
  ['the default', [], true, PB],
  ['--kube-api-content-type application/json', ['--kube-api-content-type', 'application/json'], false, 'application/json'],
  ['--kube-api-content-type=' + PB, ['--kube-api-content-type=' + PB], true, PB],
  ['a file without clientConnection', ['--config', '@'], true, PB],
  ['clientConnection.contentType: application/json', ['--config', '@clientConnection: {contentType: application/json}'], false, 'application/json'],
  ['clientConnection.contentType: ""', ['--config', '@clientConnection: {contentType: ""}'], true, PB],
  ['clientConnection.acceptContentTypes: application/json', ['--config', '@clientConnection: {acceptContentTypes: application/json}'], false, PB],
  ['acceptContentTypes: protobuf, then JSON', ['--config', `@clientConnection: {contentType: application/json, acceptContentTypes: "${PB},application/json"}`], true, 'application/json'],
];
for (const [name, argv, protobuf, shown] of CONTENT_TYPES) {
  test(`API content type: ${name} -> ${protobuf ? 'protobuf' : 'JSON'}`, (t) => {
    const config = load(argv.map((a) => (a.startsWith('@') ? withFile(`${HEADER}${a.slice(1)}\n`) : a)));
    t.is(config.apiProtobuf, protobuf);
    t.is(config.raw.clientConnection.contentType, shown);
  });
}

test('API content type: anything else is refused with the accepted values', (t) => {
  const err = t.throws(() => load(['--kube-api-content-type', 'application/yaml']), { instanceOf: ConfigError });
  t.is(err?.message, '--kube-api-content-type: must be application/vnd.kubernetes.protobuf or application/json, got "application/yaml"');
  const file = withFile(`${HEADER}clientConnection: {contentType: text/plain}\n`);
  t.throws(() => load(['--config', file]), { instanceOf: ConfigError, message: /clientConnection\.contentType/ });
});

test('config file: other flags are ignored with a warning', (t) => {
  const path = withFile(`${HEADER}mode: nftables\n`);
  const config = load(['--config', path, '--proxy-mode=ipvs', '--iptables-sync-period=5s']);
  t.is(config.syncPeriodMs, 30_000);
  t.deepEqual(config.warnings, [
    'flag --proxy-mode is ignored because --config is set (as kube-proxy does); set it in the config file instead',
    'flag --iptables-sync-period is ignored because --config is set (as kube-proxy does); set it in the config file instead',
  ]);
});

test('config file: unknown fields fall back to lenient decoding with a warning', (t) => {
  const path = withFile(`${HEADER}udpIdleTimeout: 250ms\nconntrack: {max: null}\nfoo: 1\n`);
  const config = load(['--config', path]);
  t.is(config.warnings.length, 1);
  t.regex(config.warnings[0], /lenient decoding.*"udpIdleTimeout", "conntrack\.max", "foo"/);
  t.false('foo' in config.raw);
});

test('config file: duplicate keys fall back to lenient decoding with a warning', (t) => {
  const path = withFile(`${HEADER}configSyncPeriod: 1m\nconfigSyncPeriod: 2m\n`);
  const config = load(['--config', path]);
  t.is(config.configSyncPeriodMs, 120_000);
  t.regex(config.warnings[0], /lenient decoding/);
});

test('config file: raw keeps the file and shows effective values', (t) => {
  const path = withFile(`${HEADER}mode: ""\niptables: {syncPeriod: 45s}\nclientConnection: {kubeconfig: /kc, qps: 0}\n`);
  const { raw } = load(['--config', path]);
  t.is(raw.mode, 'nftables');
  t.is(raw.iptables.syncPeriod, '45s');
  t.is(raw.nftables.syncPeriod, '45s');
  t.is(raw.clientConnection.kubeconfig, '/kc');
  t.is(raw.clientConnection.qps, 5);
  t.is(raw.conntrack.maxPerCore, 32768);
});

const FILE_ERRORS: Array<[string, string, string]> = [
  [`${HEADER}mode: ipvs\n`, 'mode', 'mode: mode "ipvs" is not implemented yet by kproxy; accepted: nftables, iptables'],
  [`${HEADER}mode: kernelspace\n`, 'mode', 'unsupported value "kernelspace"'],
  [`${HEADER}ipvs: {scheduler: rr}\n`, 'ipvs.scheduler', 'field ipvs.scheduler is not implemented yet by kproxy (got "rr"; accepted: "")'],
  [`${HEADER}conntrack: {maxPerCore: 65536}\n`, 'conntrack.maxPerCore', 'field conntrack.maxPerCore is not implemented yet'],
  [`${HEADER}conntrack: {udpTimeout: 30s}\n`, 'conntrack.udpTimeout', 'accepted: 0s'],
  [`${HEADER}featureGates: {AllAlpha: true}\n`, 'featureGates', 'field featureGates is not implemented yet'],
  [`${HEADER}oomScoreAdj: -500\n`, 'oomScoreAdj', 'accepted: -999'],
  [`${HEADER}enableProfiling: true\n`, 'enableProfiling', 'not implemented yet'],
  [`${HEADER}bindAddressHardFail: true\n`, 'bindAddressHardFail', 'not implemented yet'],
  [`${HEADER}detectLocalMode: Bogus\n`, 'detectLocalMode', 'unsupported value "Bogus"'],
  [`${HEADER}nftables: {syncPeriod: 30}\n`, 'nftables.syncPeriod', 'must be a duration string such as "30s", got 30'],
  [`${HEADER}nftables: {syncPeriod: soon}\n`, 'nftables.syncPeriod', 'must be a duration string'],
  [`${HEADER}mode: nftables\nnftables: {masqueradeBit: 40}\n`, 'nftables.masqueradeBit', 'must be within the range [0, 31]'],
  [`${HEADER}mode: nftables\nnftables: {syncPeriod: 30s, minSyncPeriod: 1m}\n`, 'nftables.minSyncPeriod', 'must not be greater than the sync period'],
  [`${HEADER}configSyncPeriod: -1s\n`, 'configSyncPeriod', 'must be greater than 0'],
  [`${HEADER}mode: nftables\niptables: {masqueradeBit: -1}\n`, 'iptables.masqueradeBit', 'must be within the range [0, 31], got -1'],
  [`${HEADER}hostnameOverride: "  "\n`, 'hostnameOverride', 'empty hostname is invalid'],
  [`${HEADER}masqueradeAll: yes\niptables: {masqueradeAll: "yes"}\n`, 'iptables.masqueradeAll', 'must be true or false'],
  [`${HEADER}clusterCIDR: 10.0.0.0/8,10.1.0.0/16\n`, 'clusterCIDR', 'at most one CIDR per IP family'],
  [`${HEADER}metricsBindAddress: foo\n`, 'metricsBindAddress', 'must be IP:port'],
  [`${HEADER}bindAddress: foo\n`, 'bindAddress', 'not a valid IP address'],
  [`${HEADER}clientConnection: []\n`, 'clientConnection', 'must be an object'],
  ['apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: Foo\n', '--config', 'kind must be KubeProxyConfiguration, got "Foo"'],
  ['kind: KubeProxyConfiguration\n', '--config', 'apiVersion: unsupported value ""; accepted: kubeproxy.config.k8s.io/v1alpha1'],
  ['apiVersion: kubeproxy.config.k8s.io/v1alpha2\nkind: KubeProxyConfiguration\n', '--config', 'unsupported value "kubeproxy.config.k8s.io/v1alpha2"'],
  ['- a\n- b\n', '--config', 'expected a KubeProxyConfiguration object'],
  [`${HEADER}mode: [unclosed\n`, '--config', 'failed to decode'],
];

for (const [contents, flag, fragment] of FILE_ERRORS) {
  test(`config file error ${JSON.stringify(contents.replace(HEADER, '').trim())}`, (t) => {
    const path = withFile(contents);
    const err = t.throws(() => load(['--config', path]), { instanceOf: ConfigError }) as ConfigError;
    t.is(err.flag, flag);
    t.true(err.message.includes(fragment), err.message);
  });
}

// --- Go durations ------------------------------------------------------------------------------

const DURATIONS: Array<[string, number]> = [
  ['0', 0], ['0s', 0], ['30s', 30_000], ['1m30s', 90_000], ['500ms', 500], ['1h', 3_600_000],
  ['1.5h', 5_400_000], ['2h22m', 8_520_000], ['.5s', 500], ['1us', 0.001], ['1µs', 0.001], ['100ns', 0.0001],
  ['-1s', -1000], ['+2s', 2000], ['1h0m0s', 3_600_000],
];
for (const [text, ms] of DURATIONS) {
  test(`parseGoDuration(${JSON.stringify(text)})`, (t) => {
    t.true(Math.abs(parseGoDuration(text) - ms) < 1e-9);
  });
}
for (const bad of ['', '30', 's', '1x', '1.5', '--1s', '1s2']) {
  test(`parseGoDuration rejects ${JSON.stringify(bad)}`, (t) => {
    t.throws(() => parseGoDuration(bad));
  });
}

const FORMATS: Array<[number, string]> = [
  [0, '0s'], [30_000, '30s'], [1_000, '1s'], [90_000, '1m30s'], [900_000, '15m0s'], [3_600_000, '1h0m0s'],
  [86_400_000, '24h0m0s'], [500, '500ms'], [1_500, '1.5s'], [0.5, '500µs'], [-2_000, '-2s'],
];
for (const [ms, text] of FORMATS) {
  test(`formatGoDuration(${ms})`, (t) => {
    t.is(formatGoDuration(ms), text);
  });
}

test('localhost NodePorts and tcp_be_liberal: flags and file, shown on /configz', (t) => {
  const defaults = load([]);
  t.true(defaults.localhostNodePorts);
  t.false(defaults.tcpBeLiberal);
  const flags = load(['--iptables-localhost-nodeports=false', '--conntrack-tcp-be-liberal']);
  t.false(flags.localhostNodePorts);
  t.true(flags.tcpBeLiberal);
  t.false(flags.raw.iptables.localhostNodePorts);
  t.true(flags.raw.conntrack.tcpBeLiberal);
  const path = withFile(`${HEADER}mode: iptables\niptables: {localhostNodePorts: false}\nconntrack: {tcpBeLiberal: true}\n`);
  const file = load(['--config', path]);
  t.false(file.localhostNodePorts);
  t.true(file.tcpBeLiberal);
});
