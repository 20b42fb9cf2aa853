import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, formatGoDuration, loadConfig, parseGoDuration, usage, type ProxyConfig } from '../../ts/config/index.js';

const HOST = () => 'Node-A';
const load = (argv: string[]) => loadConfig(argv, { hostname: HOST });

const DEFAULT_IPVS: ProxyConfig['ipvs'] = { scheduler: '', excludeCIDRs: [], strictARP: false, tcpTimeoutS: 0, tcpFinTimeoutS: 0, udpTimeoutS: 0 };
const ALL_LOCAL = ['0.0.0.0/0', '::/0'];

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
  ipvs: DEFAULT_IPVS,
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
  // ipvs mode: its periods from --ipvs-*, which default to the internal 30s / 1s (upstream's
  // processV1Alpha1Flags); the masquerade settings from --iptables-masquerade-bit / --masquerade-all;
  // unset --nodeport-addresses means every local address, as in iptables mode.
  [['--proxy-mode', 'ipvs'], {
    mode: 'ipvs', syncPeriodMs: 30_000, minSyncPeriodMs: 1_000, masqueradeBit: 14, masqueradeAll: false,
    nodePortAddresses: ALL_LOCAL, ipvs: DEFAULT_IPVS, warnings: [],
  }],
  [['--proxy-mode=ipvs', '--ipvs-sync-period=1m', '--ipvs-min-sync-period=0s'], { syncPeriodMs: 60_000, minSyncPeriodMs: 0 }],
  [['--proxy-mode=ipvs', '--ipvs-min-sync-period', '5s'], { syncPeriodMs: 30_000, minSyncPeriodMs: 5_000 }],
  [['--proxy-mode=ipvs', '--iptables-sync-period=5s', '--iptables-min-sync-period=2s'], {
    syncPeriodMs: 30_000, minSyncPeriodMs: 1_000, warnings: [
      'flag --iptables-sync-period has no effect in ipvs mode (as kube-proxy); use --ipvs-sync-period',
      'flag --iptables-min-sync-period has no effect in ipvs mode (as kube-proxy); use --ipvs-min-sync-period',
    ],
  }],
  [['--proxy-mode=ipvs', '--iptables-masquerade-bit=10', '--masquerade-all'], { masqueradeBit: 10, masqueradeAll: true }],
  [['--proxy-mode=ipvs', '--nodeport-addresses=10.1.2.3/16'], { nodePortAddresses: ['10.1.0.0/16'] }],
  [['--proxy-mode=ipvs', '--nodeport-addresses=primary'], { nodePortAddresses: ['primary'] }],
  [['--proxy-mode=ipvs', '--ipvs-scheduler=wlc'], { ipvs: { ...DEFAULT_IPVS, scheduler: 'wlc' } }],
  [['--proxy-mode=ipvs', '--ipvs_scheduler', 'mh'], { ipvs: { ...DEFAULT_IPVS, scheduler: 'mh' } }],
  [['--proxy-mode=ipvs', '--ipvs-scheduler='], { ipvs: DEFAULT_IPVS }],
  [['--proxy-mode=ipvs', '--ipvs-exclude-cidrs=10.1.2.3/8,fd00::1/64', '--ipvs-exclude-cidrs', '192.168.0.0/16'],
    { ipvs: { ...DEFAULT_IPVS, excludeCIDRs: ['10.0.0.0/8', 'fd00::/64', '192.168.0.0/16'] } }],
  [['--proxy-mode=ipvs', '--ipvs-exclude-cidrs='], { ipvs: DEFAULT_IPVS }],
  [['--proxy-mode=ipvs', '--ipvs-strict-arp'], { ipvs: { ...DEFAULT_IPVS, strictARP: true } }],
  [['--proxy-mode=ipvs', '--ipvs-strict-arp=false'], { ipvs: DEFAULT_IPVS }],
  [['--proxy-mode=ipvs', '--ipvs-tcp-timeout=15m', '--ipvs-tcpfin-timeout', '30s', '--ipvs-udp-timeout=1m30s'],
    { ipvs: { ...DEFAULT_IPVS, tcpTimeoutS: 900, tcpFinTimeoutS: 30, udpTimeoutS: 90 }, warnings: [] }],
  [['--proxy-mode=ipvs', '--ipvs-tcp-timeout=0.1m', '--ipvs-udp-timeout=0'], { ipvs: { ...DEFAULT_IPVS, tcpTimeoutS: 6 }, warnings: [] }],
  // Upstream hands the kernel uint32(d.Seconds()): sub-second parts are dropped, with a warning here.
  [['--proxy-mode=ipvs', '--ipvs-tcp-timeout=1.5s', '--ipvs-udp-timeout=500ms'], {
    ipvs: { ...DEFAULT_IPVS, tcpTimeoutS: 1, udpTimeoutS: 0 }, warnings: [
      '--ipvs-tcp-timeout: 1.5s is truncated to whole seconds (1s), as kube-proxy does',
      "--ipvs-udp-timeout: 500ms is truncated to whole seconds (0s, so the kernel's value is left as it is), as kube-proxy does",
    ],
  }],
  // Outside ipvs mode the --ipvs-* flags do nothing, as upstream; the --iptables-* periods apply.
  [['--proxy-mode=nftables', '--ipvs-sync-period=5s', '--iptables-sync-period=10s'], {
    mode: 'nftables', syncPeriodMs: 10_000,
    warnings: ['flag --ipvs-sync-period only applies in ipvs mode (as kube-proxy); it has no effect in nftables mode'],
  }],
];

for (const [argv, expected] of FLAG_CASES) {
  test(`flags ${JSON.stringify(argv)}`, (t) => {
    const config = load(argv);
    t.deepEqual(pick(config, Object.keys(expected)), expected as Record<string, unknown>);
  });
}

// --- flags: argv → ConfigError (flag, message fragment) --------------------------------------

// kube-proxy flags kproxy has no behaviour for: a value other than upstream's default is refused.
const NOT_IMPLEMENTED_FLAGS: Array<[string, string]> = [
  ['kube-api-qps', '50'], ['kube-api-burst', '100'], ['bind-address-hard-fail', 'true'], ['profiling', 'true'],
  ['show-hidden-metrics-for-version', '1.36'], ['vmodule', 'proxier=4'], ['log-flush-frequency', '1s'],
  ['log-text-split-stream', 'true'], ['log-text-info-buffer-size', '1Mi'], ['log-json-split-stream', 'true'],
  ['log-json-info-buffer-size', '1Mi'], ['healthz-port', '0'], ['metrics-port', '9999'], ['proxy-port-range', '30000-31000'],
];

const FLAG_ERRORS: Array<[string[], string, string]> = [
  [['--proxy-mode=foo'], '--proxy-mode', '--proxy-mode: unsupported value "foo"; accepted: nftables, iptables, ipvs, userspace'],
  [['--proxy-mode=IPVS'], '--proxy-mode', 'unsupported value "IPVS"'],
  [['--proxy-mode=userspace', '--udp-timeout=0s'], '--udp-timeout', '--udp-timeout: must be greater than 0, got 0s'],
  [['--proxy-mode=userspace', '--userspace-max-connections=-1'], '--userspace-max-connections', 'must be a whole number of connections'],
  [['--proxy-mode=ipvs', '--ipvs-sync-period=0s'], '--ipvs-sync-period', '--ipvs-sync-period: must be greater than 0, got 0s'],
  [['--proxy-mode=ipvs', '--ipvs-min-sync-period=-1s'], '--ipvs-min-sync-period', 'must be greater than or equal to 0, got -1s'],
  // The 1s default minimum (upstream's, by flags) is above this sync period.
  [['--proxy-mode=ipvs', '--ipvs-sync-period=500ms'], '--ipvs-min-sync-period',
    '--ipvs-min-sync-period: must not be greater than the sync period (500ms, from --ipvs-sync-period), got 1s'],
  [['--proxy-mode=ipvs', '--ipvs-scheduler=round robin'], '--ipvs-scheduler',
    `--ipvs-scheduler: must be the name of an IPVS scheduler (up to 15 letters, digits, '_' or '-': rr, wrr, lc,`],
  [['--proxy-mode=ipvs', '--ipvs-scheduler=../../evil'], '--ipvs-scheduler', 'got "../../evil"'],
  [['--proxy-mode=ipvs', '--ipvs-scheduler=averyveryverylongname'], '--ipvs-scheduler', 'must be the name of an IPVS scheduler'],
  [['--proxy-mode=ipvs', '--ipvs-exclude-cidrs=10.0.0.0/8,10.0.0.1'], '--ipvs-exclude-cidrs',
    '--ipvs-exclude-cidrs[1]: "10.0.0.1" must be a valid CIDR (e.g. 10.0.0.0/8 or fd00::/64)'],
  [['--proxy-mode=ipvs', '--ipvs-exclude-cidrs=10.0.0.0/8, 10.1.0.0/16'], '--ipvs-exclude-cidrs', '[1]: " 10.1.0.0/16" must be a valid CIDR'],
  [['--proxy-mode=ipvs', '--ipvs-exclude-cidrs=10.0.0.0/33'], '--ipvs-exclude-cidrs', '[0]: "10.0.0.0/33" must be a valid CIDR'],
  [['--proxy-mode=ipvs', '--ipvs-tcp-timeout=-1s'], '--ipvs-tcp-timeout', '--ipvs-tcp-timeout: must be greater than or equal to 0, got -1s'],
  [['--proxy-mode=ipvs', '--ipvs-tcpfin-timeout=-30s'], '--ipvs-tcpfin-timeout', '--ipvs-tcpfin-timeout: must be greater than or equal to 0, got -30s'],
  [['--proxy-mode=ipvs', '--ipvs-udp-timeout=-1m'], '--ipvs-udp-timeout', '--ipvs-udp-timeout: must be greater than or equal to 0, got -1m0s'],
  // Parse errors are fatal in any mode, as pflag's.
  [['--ipvs-tcp-timeout=300'], '--ipvs-tcp-timeout', 'invalid duration "300"'],
  [['--ipvs-strict-arp=maybe'], '--ipvs-strict-arp', 'invalid value "maybe"; accepted: true or false'],
  [['--ipvs-scheduler'], '--ipvs-scheduler', 'flag needs an argument: --ipvs-scheduler'],
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
  [['--profiling=true', '--bogus'], '--profiling', 'flag --profiling is not implemented yet by kproxy'],
  ...NOT_IMPLEMENTED_FLAGS.map(([f, v]): [string[], string, string] => [[`--${f}=${v}`], `--${f}`, `flag --${f} is not implemented yet by kproxy (only its default`]),
  [['--feature-gates=Bogus=true'], '--feature-gates', '--feature-gates: unrecognized feature gate: Bogus'],
  [['--feature-gates=WatchListClient'], '--feature-gates', 'malformed pair, expect string=bool'],
  [['--feature-gates=WatchListClient=maybe'], '--feature-gates', 'invalid value of WatchListClient'],
  [['--feature-gates=NFTablesProxyMode=false'], '--feature-gates', 'cannot set feature gate NFTablesProxyMode to false, feature is locked to true'],
  [['--proxy-mode=ipvs', '--feature-gates=KubeProxyIPVS=false'], '--feature-gates', 'ipvs mode is disabled by the feature gate KubeProxyIPVS=false'],
  [['--oom-score-adj=-1001'], '--oom-score-adj', 'must be within the range [-1000, 1000]'],
  [['--conntrack-max-per-core=-1'], '--conntrack-max-per-core', 'must be greater than or equal to 0, got -1'],
  [['--conntrack-min=-5'], '--conntrack-min', 'must be greater than or equal to 0'],
  [['--conntrack-udp-timeout=-1s'], '--conntrack-udp-timeout', 'must be greater than or equal to 0, got -1s'],
  [['--conntrack-tcp-timeout-established=1'], '--conntrack-tcp-timeout-established', 'invalid duration "1"'],
  [['--logging-format=xml'], '--logging-format', '--logging-format: unsupported value "xml"; accepted: text, json'],
  [['--version=maybe'], '--version', 'invalid value "maybe"; accepted: true, false or raw'],
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
  const [implemented, refused] = text.split('Recognised kube-proxy flags');
  for (const f of ['--ipvs-sync-period duration', '--ipvs-min-sync-period duration', '--ipvs-scheduler string', '--ipvs-exclude-cidrs strings',
    '--ipvs-strict-arp', '--ipvs-tcp-timeout duration', '--ipvs-tcpfin-timeout duration', '--ipvs-udp-timeout duration']) {
    t.true(implemented.includes(f), f);
  }
  t.false(refused.includes('--ipvs-'));
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
  // ipvs mode: the periods from ipvs.*, the masquerade settings from iptables.* (upstream's conversion).
  ['mode ipvs takes ipvs.* periods and iptables.* masquerade settings', `${HEADER}mode: ipvs
ipvs: {syncPeriod: 10s, minSyncPeriod: 2s}
iptables: {syncPeriod: 5s, minSyncPeriod: 1s, masqueradeBit: 12, masqueradeAll: true}
nftables: {syncPeriod: 7s, masqueradeBit: 20, masqueradeAll: false}
`, [], { mode: 'ipvs', syncPeriodMs: 10_000, minSyncPeriodMs: 2_000, masqueradeBit: 12, masqueradeAll: true, warnings: [] }],
  // ipvs.minSyncPeriod has no default (0s); unset nodePortAddresses is every local address.
  ['mode ipvs defaults', `${HEADER}mode: ipvs\n`, [], {
    mode: 'ipvs', syncPeriodMs: 30_000, minSyncPeriodMs: 0, masqueradeBit: 14, masqueradeAll: false,
    nodePortAddresses: ALL_LOCAL, ipvs: DEFAULT_IPVS, warnings: [],
  }],
  ['upstream defaulted dump in ipvs mode (zero values mean default)', UPSTREAM_DUMP.replace('mode: ""', 'mode: ipvs'), [], {
    mode: 'ipvs', syncPeriodMs: 30_000, minSyncPeriodMs: 0, masqueradeBit: 14, nodePortAddresses: ALL_LOCAL, ipvs: DEFAULT_IPVS, warnings: [],
  }],
  ['mode ipvs: nodePortAddresses given', `${HEADER}mode: ipvs\nnodePortAddresses: [primary]\n`, [], { nodePortAddresses: ['primary'] }],
  ['mode ipvs: every ipvs field', `${HEADER}mode: ipvs
ipvs:
  scheduler: lc
  excludeCIDRs: [10.9.8.7/8, "fd00:1::5/48"]
  strictARP: true
  tcpTimeout: 2h
  tcpFinTimeout: 2m
  udpTimeout: 45s
`, [], { ipvs: { scheduler: 'lc', excludeCIDRs: ['10.0.0.0/8', 'fd00:1::/48'], strictARP: true, tcpTimeoutS: 7200, tcpFinTimeoutS: 120, udpTimeoutS: 45 }, warnings: [] }],
  ['mode ipvs: excludeCIDRs [] and zero timeouts', `${HEADER}mode: ipvs\nipvs: {excludeCIDRs: [], tcpTimeout: 0s, udpTimeout: "0"}\n`, [], { ipvs: DEFAULT_IPVS }],
  ['mode ipvs: sub-second timeouts are truncated', `${HEADER}mode: ipvs\nipvs: {tcpFinTimeout: 2500ms}\n`, [], {
    ipvs: { ...DEFAULT_IPVS, tcpFinTimeoutS: 2 }, warnings: ['ipvs.tcpFinTimeout: 2.5s is truncated to whole seconds (2s), as kube-proxy does'],
  }],
  ['mode ipvs: -v, --hostname-override still apply, --ipvs-* flags do not', `${HEADER}mode: ipvs\n`, ['-v=2', '--ipvs-scheduler=sh'],
    { verbosity: 2, ipvs: DEFAULT_IPVS }],
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

test('ipvs mode: /configz shows the effective ipvs settings, and the periods under ipvs', (t) => {
  const flags = load(['--proxy-mode=ipvs', '--ipvs-sync-period=45s', '--ipvs-scheduler=wrr', '--ipvs-exclude-cidrs=10.1.2.3/8',
    '--ipvs-strict-arp', '--ipvs-tcp-timeout=1.5s', '--iptables-masquerade-bit=9', '--iptables-sync-period=5s']).raw;
  t.is(flags.mode, 'ipvs');
  t.deepEqual(flags.ipvs, {
    syncPeriod: '45s', minSyncPeriod: '1s', scheduler: 'wrr', excludeCIDRs: ['10.0.0.0/8'], strictARP: true,
    tcpTimeout: '1.5s', tcpFinTimeout: '0s', udpTimeout: '0s',
  });
  t.is(flags.iptables.masqueradeBit, 9);
  // --iptables-sync-period has no effect in ipvs mode: not shown as in force.
  t.is(flags.iptables.syncPeriod, '30s');
  t.deepEqual(flags.nodePortAddresses, []);
  const file = load(['--config', withFile(`${HEADER}mode: ipvs\nipvs: {syncPeriod: 0s, scheduler: sh}\niptables: {masqueradeAll: true}\n`)]).raw;
  t.deepEqual(file.ipvs, {
    syncPeriod: '30s', minSyncPeriod: '0s', scheduler: 'sh', excludeCIDRs: null, strictARP: false,
    tcpTimeout: '0s', tcpFinTimeout: '0s', udpTimeout: '0s',
  });
  t.is(file.iptables.masqueradeAll, true);
  t.is(file.iptables.masqueradeBit, 14);
  // Outside ipvs mode the ipvs struct is shown as given, with its defaults.
  t.deepEqual(load([]).raw.ipvs, {
    syncPeriod: '30s', minSyncPeriod: '0s', scheduler: '', excludeCIDRs: null, strictARP: false,
    tcpTimeout: '0s', tcpFinTimeout: '0s', udpTimeout: '0s',
  });
});

test('ipvs mode: a scheduler outside the kernel list is accepted with a warning (upstream no longer validates it)', (t) => {
  const config = load(['--proxy-mode=ipvs', '--ipvs-scheduler=my_sched']);
  t.is(config.ipvs.scheduler, 'my_sched');
  t.is(config.warnings.length, 1);
  t.regex(config.warnings[0], /^--ipvs-scheduler: "my_sched" is not one of the Linux kernel's IPVS schedulers \(rr, wrr, .*mh, twos\).*ip_vs_my_sched/);
  for (const s of ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'sh', 'dh', 'sed', 'nq', 'mh', 'fo', 'ovf', 'twos']) {
    const known = load(['--proxy-mode=ipvs', `--ipvs-scheduler=${s}`]);
    t.is(known.ipvs.scheduler, s);
    t.deepEqual(known.warnings, [], s);
  }
});

test('outside ipvs mode, ipvs values are not validated (as upstream): bad ones fall back to defaults with a warning', (t) => {
  const path = withFile(`${HEADER}mode: nftables
ipvs: {scheduler: "no such", excludeCIDRs: [10.0.0.0/8, bogus], strictARP: true, tcpTimeout: -1s, udpTimeout: 1.5s, syncPeriod: -1s, minSyncPeriod: 1h}
`);
  const config = load(['--config', path]);
  t.is(config.mode, 'nftables');
  t.is(config.syncPeriodMs, 30_000);
  t.deepEqual(config.ipvs, { scheduler: '', excludeCIDRs: ['10.0.0.0/8'], strictARP: true, tcpTimeoutS: 0, tcpFinTimeoutS: 0, udpTimeoutS: 1 });
  t.deepEqual(config.warnings, [
    `ipvs.scheduler: must be the name of an IPVS scheduler (up to 15 letters, digits, '_' or '-': rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos, ...), or empty for rr, got "no such" (ignored: ipvs.scheduler only applies in ipvs mode)`,
    'ipvs.excludeCIDRs[1]: "bogus" must be a valid CIDR (e.g. 10.0.0.0/8 or fd00::/64) (ignored: ipvs.excludeCIDRs only applies in ipvs mode)',
    'ipvs.tcpTimeout: must be greater than or equal to 0, got -1s (ignored: ipvs.tcpTimeout only applies in ipvs mode)',
  ]);
  const flags = load(['--proxy-mode=iptables', '--ipvs-tcp-timeout=-1s']);
  t.is(flags.ipvs.tcpTimeoutS, 0);
  t.is(flags.warnings.length, 2);
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
  const path = withFile(`${HEADER}resourceContainer: /kube-proxy\nconntrack: {max: null}\nfoo: 1\n`);
  const config = load(['--config', path]);
  t.is(config.warnings.length, 1);
  t.regex(config.warnings[0], /lenient decoding.*"resourceContainer", "conntrack\.max", "foo"/);
  t.false('foo' in config.raw);
});

test('userspace mode: --udp-timeout and the connection cap, or udpIdleTimeout and userspace.* in the file', (t) => {
  const flags = load(['--proxy-mode=userspace', '--udp-timeout=2s', '--userspace-max-connections=500']);
  t.is(flags.mode, 'userspace');
  t.deepEqual(flags.userspace, { udpIdleTimeoutMs: 2000, maxConnectionsPerService: 500 });
  t.is(flags.raw.udpIdleTimeout, '2s', '/configz shows them in userspace mode');
  t.deepEqual(load(['--proxy-mode=userspace']).userspace, { udpIdleTimeoutMs: 250, maxConnectionsPerService: 0 }, "upstream's 250ms");
  const nft = load(['--udp-timeout=0s']);
  t.is(nft.raw.udpIdleTimeout, undefined, 'outside userspace mode: not on /configz');
  t.regex(nft.warnings.join('\n'), /--udp-timeout: must be greater than 0.*only applies in userspace mode/);
  const path = withFile(`${HEADER}mode: userspace\nudpIdleTimeout: 1s\nuserspace: {maxConnectionsPerService: 64}\n`);
  const file = load(['--config', path]);
  t.deepEqual(file.userspace, { udpIdleTimeoutMs: 1000, maxConnectionsPerService: 64 });
  t.deepEqual(file.warnings, []);
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
  [`${HEADER}mode: kernelspace\n`, 'mode', 'mode: unsupported value "kernelspace"; accepted: nftables, iptables, ipvs'],
  [`${HEADER}mode: ipvs\nipvs: {scheduler: "r r"}\n`, 'ipvs.scheduler', 'ipvs.scheduler: must be the name of an IPVS scheduler'],
  [`${HEADER}mode: ipvs\nipvs: {excludeCIDRs: [10.0.0.0/8, 10.0.0.1]}\n`, 'ipvs.excludeCIDRs',
    'ipvs.excludeCIDRs[1]: "10.0.0.1" must be a valid CIDR (e.g. 10.0.0.0/8 or fd00::/64)'],
  [`${HEADER}mode: ipvs\nipvs: {excludeCIDRs: [primary]}\n`, 'ipvs.excludeCIDRs', 'ipvs.excludeCIDRs[0]: "primary" must be a valid CIDR'],
  [`${HEADER}mode: ipvs\nipvs: {tcpTimeout: -5s}\n`, 'ipvs.tcpTimeout', 'ipvs.tcpTimeout: must be greater than or equal to 0, got -5s'],
  [`${HEADER}mode: ipvs\nipvs: {tcpFinTimeout: -1ms}\n`, 'ipvs.tcpFinTimeout', 'ipvs.tcpFinTimeout: must be greater than or equal to 0, got -1ms'],
  [`${HEADER}mode: ipvs\nipvs: {udpTimeout: -1h}\n`, 'ipvs.udpTimeout', 'ipvs.udpTimeout: must be greater than or equal to 0, got -1h0m0s'],
  [`${HEADER}mode: ipvs\nipvs: {syncPeriod: -1s}\n`, 'ipvs.syncPeriod', 'ipvs.syncPeriod: must be greater than 0, got -1s'],
  [`${HEADER}mode: ipvs\nipvs: {minSyncPeriod: -1s}\n`, 'ipvs.minSyncPeriod', 'must be greater than or equal to 0, got -1s'],
  [`${HEADER}mode: ipvs\nipvs: {syncPeriod: 10s, minSyncPeriod: 1m}\n`, 'ipvs.minSyncPeriod', 'must not be greater than the sync period (10s, from ipvs.syncPeriod)'],
  // iptables.minSyncPeriod is not ipvs mode's.
  [`${HEADER}mode: ipvs\niptables: {masqueradeBit: 32}\n`, 'iptables.masqueradeBit', 'must be within the range [0, 31], got 32'],
  // Wrong types are fatal in any mode (strict decoding).
  [`${HEADER}ipvs: {excludeCIDRs: 10.0.0.0/8}\n`, 'ipvs.excludeCIDRs', 'ipvs.excludeCIDRs: must be a list of strings'],
  [`${HEADER}ipvs: {strictARP: "yes"}\n`, 'ipvs.strictARP', 'must be true or false'],
  [`${HEADER}ipvs: {tcpTimeout: 900}\n`, 'ipvs.tcpTimeout', 'must be a duration string such as "30s", got 900'],
  [`${HEADER}ipvs: {scheduler: 1}\n`, 'ipvs.scheduler', 'must be a string'],
  [`${HEADER}conntrack: {maxPerCore: -1}\n`, 'conntrack.maxPerCore', 'conntrack.maxPerCore: must be greater than or equal to 0, got -1'],
  [`${HEADER}conntrack: {udpTimeout: -30s}\n`, 'conntrack.udpTimeout', 'must be greater than or equal to 0, got -30s'],
  [`${HEADER}conntrack: {tcpCloseWaitTimeout: 3600}\n`, 'conntrack.tcpCloseWaitTimeout', 'must be a duration string'],
  [`${HEADER}featureGates: {Bogus: true}\n`, 'featureGates', 'featureGates: unrecognized feature gate: Bogus'],
  [`${HEADER}featureGates: {MultiCIDRServiceAllocator: false}\n`, 'featureGates', 'feature is locked to true'],
  [`${HEADER}featureGates: {WatchListClient: "no"}\n`, 'featureGates', 'must be a map of feature names to true/false'],
  [`${HEADER}oomScoreAdj: 1001\n`, 'oomScoreAdj', 'must be within the range [-1000, 1000], got 1001'],
  [`${HEADER}logging: {format: xml}\n`, 'logging.format', 'logging.format: unsupported value "xml"; accepted: text, json'],
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
