// kube-proxy's default values are accepted on the command line and in a config file, and
// mean what no flag (no field) means: a kube-proxy command line spelling out its defaults
// works unchanged. The table is upstream's (cmd/kube-proxy/app/options.go and component-base's
// logging flags, v1.37); the few that change what kproxy does are said so in `changes`.
import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type ProxyConfig } from '../../ts/config/index.js';

const load = (argv: string[]) => loadConfig(argv, { hostname: () => 'node-a' });
const base = load([]).raw;

// flag → upstream's default value; `changes`: the raw fields that then differ from no flag at all.
const FLAGS: Array<[string, string, Record<string, unknown>?]> = [
  ['bind-address', '0.0.0.0'],
  ['bind-address-hard-fail', 'false'],
  ['cleanup', 'false'],
  ['cluster-cidr', ''],
  ['config-sync-period', '15m0s'],
  ['conntrack-max-per-core', '32768'],
  ['conntrack-min', '131072'],
  ['conntrack-tcp-be-liberal', 'false'],
  ['conntrack-tcp-timeout-close-wait', '1h0m0s'],
  ['conntrack-tcp-timeout-established', '24h0m0s'],
  ['conntrack-udp-timeout', '0s'],
  ['conntrack-udp-timeout-stream', '0s'],
  ['detect-local-mode', 'ClusterCIDR'],
  ['feature-gates', ''],
  ['healthz-bind-address', '0.0.0.0:10256'],
  ['healthz-port', '10256'],
  ['hostname-override', ''],
  ['init-only', 'false'],
  ['iptables-localhost-nodeports', 'true'],
  ['iptables-masquerade-bit', '14'],
  ['iptables-min-sync-period', '1s'],
  ['iptables-sync-period', '30s'],
  ['ipvs-scheduler', ''],
  ['ipvs-strict-arp', 'false'],
  ['ipvs-tcp-timeout', '0s'],
  ['ipvs-tcpfin-timeout', '0s'],
  ['ipvs-udp-timeout', '0s'],
  ['kube-api-burst', '10'],
  ['kube-api-content-type', 'application/vnd.kubernetes.protobuf'],
  ['kube-api-qps', '5'],
  ['kubeconfig', ''],
  ['log-flush-frequency', '5s'],
  ['log-json-info-buffer-size', '0'],
  ['log-json-split-stream', 'false'],
  ['log-text-info-buffer-size', '0'],
  ['log-text-split-stream', 'false'],
  // Upstream's default format; kproxy's is json.
  ['logging-format', 'text', { logging: { ...base.logging, format: 'text' } }],
  ['masquerade-all', 'false'],
  ['master', ''],
  ['metrics-bind-address', '127.0.0.1:10249'],
  ['metrics-port', '10249'],
  ['nodeport-addresses', ''],
  ['oom-score-adj', '-999'],
  ['pod-bridge-interface', ''],
  ['pod-interface-name-prefix', ''],
  ['profiling', 'false'],
  // Upstream's default mode ("" is iptables there; nftables in kproxy).
  ['proxy-mode', 'iptables', { mode: 'iptables', nodePortAddresses: [] }],
  ['proxy-port-range', ''],
  ['show-hidden-metrics-for-version', ''],
  ['v', '0'],
  ['version', 'false'],
  ['vmodule', ''],
  ['write-config-to', ''],
];

for (const [flag, value, changes = {}] of FLAGS) {
  test(`--${flag}=${value} (kube-proxy's default) is accepted and means what no flag means`, (t) => {
    const config = load([`--${flag}=${value}`]);
    t.deepEqual(config.raw, { ...base, ...changes });
  });
}

test('all of kube-proxy\'s defaults on one command line', (t) => {
  const argv = FLAGS.filter(([f]) => f !== 'proxy-mode' && f !== 'logging-format').map(([f, v]) => `--${f}=${v}`);
  t.deepEqual(load(argv).raw, base);
});

// --- the config file: each field at upstream's default ---------------------------------------

const HEADER = 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n';
const dir = mkdtempSync(join(tmpdir(), 'kproxy-defaults-'));
let n = 0;
const fromFile = (yaml: string): ProxyConfig => {
  const path = join(dir, `c${n++}.yaml`);
  writeFileSync(path, HEADER + yaml);
  return load(['--config', path]);
};
const fileBase = fromFile('').raw;

const FIELDS: Array<[string, Record<string, unknown>?]> = [
  ['conntrack: {maxPerCore: 32768, min: 131072}'],
  ['conntrack: {tcpEstablishedTimeout: 24h0m0s, tcpCloseWaitTimeout: 1h0m0s}'],
  ['conntrack: {udpTimeout: 0s, udpStreamTimeout: 0s, tcpBeLiberal: false}'],
  ['oomScoreAdj: -999'],
  ['featureGates: {}'],
  ['logging: {verbosity: 0}'],
  ['logging: {format: text}', { logging: { ...fileBase.logging, format: 'text' } }],
  ['logging: {format: ""}'],
  ['clientConnection: {qps: 5, burst: 10}'],
  ['enableProfiling: false'],
  ['bindAddressHardFail: false'],
  ['showHiddenMetricsForVersion: ""'],
];

for (const [yaml, changes = {}] of FIELDS) {
  test(`config file ${yaml} (kube-proxy's default) means what the field left out means`, (t) => {
    t.deepEqual(fromFile(`${yaml}\n`).raw, { ...fileBase, ...changes });
  });
}

// --- values other than the defaults do what they say ------------------------------------------

test('conntrack and oom flags reach the config, and /configz shows them', (t) => {
  const c = load(['--conntrack-max-per-core=0', '--conntrack-min=1000', '--conntrack-tcp-timeout-established=12h',
    '--conntrack-udp-timeout=30s', '--oom-score-adj=-500', '--feature-gates=WatchListClient=false', '--feature-gates', 'ComponentFlagz=true']);
  t.deepEqual(c.conntrack, { maxPerCore: 0, min: 1000, tcpEstablishedTimeoutMs: 12 * 3_600_000, tcpCloseWaitTimeoutMs: 3_600_000, udpTimeoutMs: 30_000, udpStreamTimeoutMs: 0 });
  t.is(c.oomScoreAdj, -500);
  t.like(c.raw.conntrack, { maxPerCore: 0, min: 1000, tcpEstablishedTimeout: '12h0m0s', udpTimeout: '30s' });
  t.is(c.raw.oomScoreAdj, -500);
  // As upstream's /configz: the gates as given, repeated flags merged.
  t.deepEqual(c.raw.featureGates, { WatchListClient: false, ComponentFlagz: true });
});

test('the config file\'s conntrack, oomScoreAdj, featureGates and logging.format', (t) => {
  const c = fromFile('conntrack: {maxPerCore: 0, udpStreamTimeout: 2m}\noomScoreAdj: 0\nfeatureGates: {WatchListClient: false}\nlogging: {format: text}\n');
  t.like(c.conntrack, { maxPerCore: 0, min: 131072, udpStreamTimeoutMs: 120_000 });
  t.is(c.oomScoreAdj, 0);
  t.deepEqual(c.featureGates, { WatchListClient: false });
  t.is(c.loggingFormat, 'text');
});

test('logging flags win over the file, as upstream; other flags are ignored with --config', (t) => {
  const path = join(dir, 'logging.yaml');
  writeFileSync(path, `${HEADER}logging: {format: json, verbosity: 1}\noomScoreAdj: 5\n`);
  const c = load(['--config', path, '--logging-format=text', '-v=3', '--oom-score-adj=7', '--init-only', '--write-config-to=/tmp/x']);
  t.is(c.loggingFormat, 'text');
  t.is(c.verbosity, 3);
  t.is(c.oomScoreAdj, 5);
  t.true(c.initOnly);
  t.is(c.writeConfigTo, '/tmp/x');
  t.deepEqual(c.warnings, ['flag --oom-score-adj is ignored because --config is set (as kube-proxy does); set it in the config file instead']);
});
