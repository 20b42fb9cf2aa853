// kube-proxy-compatible configuration: flags, or a KubeProxyConfiguration file, resolved into
// one ProxyConfig. Upstream semantics kept: with --config, most flags are ignored except -v,
// --hostname-override and --master (kproxy adds --cleanup and --manifests); zero values in the
// file mean "default"; the mode's sub-struct supplies the sync periods and masquerade settings
// (ipvs mode: the periods from ipvs.*, the masquerade settings from iptables.*).
// Deviation: mode "" means nftables (kproxy's default mode), not iptables.

import { hostname as osHostname } from 'node:os';
import { ConfigError } from './errors.js';
import { parseFlags } from './flags.js';
import { readConfigFile } from './file.js';
import { formatGoDuration } from './duration.js';
import { CONTENT_TYPES, PROTOBUF_CONTENT_TYPE, type RawConfig } from './defaults.js';
import { checkIP, parseClusterCIDRs, parseNodePortAddresses, validateHostPort } from './validate.js';
import { resolveIpvs, type IpvsConfig, type Sourced } from './ipvs.js';
import { rawUserspace, resolveUserspace, type UserspaceConfig } from './userspace.js';
import { checkFeatureGates, gateEnabled } from './feature-gates.js';
import { renderFlagz } from './flagz.js';
import { fail, fromFile, fromFlags, type Resolved } from './resolve.js';
import { rawConntrack, resolveConntrack, type ConntrackConfig } from './conntrack.js';

export type { IpvsConfig } from './ipvs.js';
export type { UserspaceConfig } from './userspace.js';
export type { ConntrackConfig } from './conntrack.js';

export { ConfigError } from './errors.js';
export { usage, flagsUsage, COMMANDS } from './flags.js';
export { formatGoDuration, parseGoDuration } from './duration.js';

/** Upstream's detect-local modes: how a proxier tells traffic from this node's pods. */
export type DetectLocalMode = 'ClusterCIDR' | 'NodeCIDR' | 'BridgeInterface' | 'InterfaceNamePrefix';
export const DETECT_LOCAL_MODES: readonly DetectLocalMode[] = ['ClusterCIDR', 'NodeCIDR', 'BridgeInterface', 'InterfaceNamePrefix'];

/** --logging-format / logging.format: klog-like text lines, or JSON (kproxy's default). */
export type LoggingFormat = 'json' | 'text';

/** The modes kproxy implements. */
export type ImplementedMode = 'nftables' | 'iptables' | 'ipvs' | 'userspace';


export interface ProxyConfig {
  mode: ImplementedMode;
  /** The --config file, when one was given (upstream exits when it changes). */
  configFile: string | undefined;
  /** "" means in-cluster configuration. */
  kubeconfig: string;
  /** "" means the kubeconfig's server. */
  master: string;
  /** Read Services and EndpointSlices in protobuf (clientConnection.contentType, the default), else JSON. */
  apiProtobuf: boolean;
  /** The node name: the override, or the hostname; trimmed and lower-cased. */
  hostnameOverride: string;
  clusterCIDRs: string[];
  bindAddress: string;
  /** "" disables the server. */
  metricsBindAddress: string;
  /** "" disables the server. */
  healthzBindAddress: string;
  syncPeriodMs: number;
  minSyncPeriodMs: number;
  masqueradeBit: number;
  masqueradeAll: boolean;
  /** iptables mode, IPv4: NodePorts on 127.0.0.1 (iptables.localhostNodePorts, default true). */
  localhostNodePorts: boolean;
  /** Set nf_conntrack_tcp_be_liberal at start (conntrack.tcpBeLiberal). */
  tcpBeLiberal: boolean;
  cleanup: boolean;
  /** --init-only: set the node up (sysctls, conntrack) and exit. */
  initOnly: boolean;
  /** --write-config-to FILE: write the effective configuration and exit. */
  writeConfigTo: string | undefined;
  /** --version: 'true' or 'raw' to print it and exit. */
  version: 'true' | 'raw' | undefined;
  verbosity: number;
  loggingFormat: LoggingFormat;
  /** The conntrack sysctls set at start (conntrack.*; 0 leaves one as it is). */
  conntrack: ConntrackConfig;
  /** Written to /proc/self/oom_score_adj at start (oomScoreAdj). */
  oomScoreAdj: number;
  /** featureGates as given (validated against upstream's names). */
  featureGates: Record<string, boolean>;
  /** The /flagz page. */
  flagz: string;
  configSyncPeriodMs: number;
  /** kproxy's own --manifests DIR: read objects from files instead of the API server. */
  manifests: string | undefined;
  detectLocalMode: DetectLocalMode;
  /** detectLocal.bridgeInterface (BridgeInterface mode); '' when unset. */
  bridgeInterface: string;
  /** detectLocal.interfaceNamePrefix (InterfaceNamePrefix mode); '' when unset. */
  interfaceNamePrefix: string;
  /** ['primary'] (unset in nftables mode, as upstream), canonical CIDRs, or ['0.0.0.0/0', '::/0'] (unset in iptables and ipvs modes). */
  nodePortAddresses: string[];
  /** ipvs mode's settings; outside ipvs mode they are parsed but not validated (as upstream), and unused. */
  ipvs: IpvsConfig;
  /** userspace mode's settings (udpIdleTimeout, the connection cap); unused in other modes. */
  userspace: UserspaceConfig;
  help: boolean;
  /** The effective KubeProxyConfiguration v1alpha1 object (YAML keys), served on /configz. */
  raw: RawConfig;
  warnings: string[];
}

export interface LoadOptions {
  /** Injected for tests; defaults to os.hostname(). */
  hostname?: () => string;
}

// Flags that still apply when --config is given (the rest are ignored, with a warning).
const FLAGS_KEPT_WITH_CONFIG = new Set([
  'config', 'cleanup', 'master', 'hostname-override', 'v', 'logging-format', 'manifests', 'help', 'init-only', 'write-config-to', 'version',
]);


export function loadConfig(argv: string[], options: LoadOptions = {}): ProxyConfig {
  const flags = parseFlags(argv).values;
  const warnings: string[] = [];
  const configFile = flags.get('config') as string | undefined;
  const help = flags.get('help') === true;
  const useFile = configFile !== undefined && configFile !== '' && !help;

  let resolved: Resolved;
  if (useFile) {
    const loaded = readConfigFile(configFile);
    warnings.push(...loaded.warnings);
    resolved = fromFile(loaded.raw);
    for (const name of flags.keys()) {
      if (!FLAGS_KEPT_WITH_CONFIG.has(name)) {
        warnings.push(`flag --${name} is ignored because --config is set (as kube-proxy does); set it in the config file instead`);
      }
    }
  } else {
    resolved = fromFlags(flags);
  }

  // These flags win over the config file, as upstream.
  const verbosityFlag = flags.get('v') as number | undefined;
  if (verbosityFlag !== undefined) resolved.verbosity = { value: verbosityFlag, from: '-v' };
  const formatFlag = flags.get('logging-format') as string | undefined;
  if (formatFlag !== undefined) resolved.loggingFormat = { value: formatFlag, from: '--logging-format' };
  const overrideFlag = flags.get('hostname-override') as string | undefined;
  if (overrideFlag !== undefined && overrideFlag.length > 0) {
    if (overrideFlag.trim() === '') throw new ConfigError('--hostname-override', '--hostname-override: empty hostname-override is invalid');
    resolved.hostnameOverride = { value: overrideFlag, from: '--hostname-override' };
  }

  const config = finish(resolved, options, help);
  config.configFile = useFile ? configFile : undefined;
  config.master = (flags.get('master') as string | undefined) ?? '';
  config.cleanup = flags.get('cleanup') === true;
  config.initOnly = flags.get('init-only') === true;
  config.writeConfigTo = (flags.get('write-config-to') as string | undefined) || undefined;
  const version = flags.get('version');
  config.version = version === 'true' || version === 'raw' ? version : undefined;
  config.flagz = renderFlagz(flags);
  config.manifests = (flags.get('manifests') as string | undefined) || undefined;
  config.warnings = [...warnings, ...resolved.warnings];
  return config;
}

function finish(r: Resolved, options: LoadOptions, help: boolean): ProxyConfig {
  const mode = checkMode(r.mode);
  const detectLocalMode = checkDetectLocalMode(r.detectLocalMode);
  checkDetectLocal(detectLocalMode, r);
  const npaGiven = r.nodePortAddresses.value ?? [];
  // Unset means "primary" in nftables mode but every local address in iptables and ipvs modes, as upstream.
  const npaAll = mode !== 'nftables' && npaGiven.length === 0;
  const nodePortAddresses = npaAll ? [...ALL_ADDRESSES] : parseNodePortAddresses(npaGiven, r.nodePortAddresses.from);
  const ipvs = resolveIpvs(r.ipvs, mode === 'ipvs', r.warnings);
  const userspace = resolveUserspace(r.userspace, mode === 'userspace', r.warnings);
  const clusterCIDRs = parseClusterCIDRs(r.clusterCIDR.value, r.clusterCIDR.from);
  if (r.syncPeriodMs.value <= 0) fail(r.syncPeriodMs, 'must be greater than 0');
  if (r.minSyncPeriodMs.value < 0) fail(r.minSyncPeriodMs, 'must be greater than or equal to 0');
  if (r.minSyncPeriodMs.value > r.syncPeriodMs.value) {
    fail(r.minSyncPeriodMs, `must not be greater than the sync period (${formatGoDuration(r.syncPeriodMs.value)}, from ${r.syncPeriodMs.from})`);
  }
  if (r.masqueradeBit.value < 0 || r.masqueradeBit.value > 31) fail(r.masqueradeBit, 'must be within the range [0, 31]');
  if (r.configSyncPeriodMs.value <= 0) fail(r.configSyncPeriodMs, 'must be greater than 0');
  if (r.verbosity.value < 0) fail(r.verbosity, 'must be a non-negative integer');
  const loggingFormat = checkLoggingFormat(r.loggingFormat);
  const conntrack = resolveConntrack(r.conntrack);
  if (r.oomScoreAdj.value < -1000 || r.oomScoreAdj.value > 1000) fail(r.oomScoreAdj, 'must be within the range [-1000, 1000]');
  const featureGates = checkFeatureGates(r.featureGates.value, r.featureGates.from);
  if (mode === 'ipvs' && !gateEnabled(featureGates, 'KubeProxyIPVS')) {
    throw new ConfigError(r.featureGates.from, `${r.featureGates.from}: ipvs mode is disabled by the feature gate KubeProxyIPVS=false`);
  }
  if (!CONTENT_TYPES.includes(r.contentType.value)) fail(r.contentType, `must be ${PROTOBUF_CONTENT_TYPE} or application/json`);
  checkIP(r.bindAddress.value, r.bindAddress.from);
  if (r.healthzBindAddress.value !== '') validateHostPort(r.healthzBindAddress.value, r.healthzBindAddress.from);
  if (r.metricsBindAddress.value !== '') validateHostPort(r.metricsBindAddress.value, r.metricsBindAddress.from);

  const override = r.hostnameOverride.value.trim().toLowerCase();
  if (r.hostnameOverride.value !== '' && override === '') fail(r.hostnameOverride, 'empty hostname is invalid');
  const nodeName = override || (options.hostname ?? osHostname)().trim().toLowerCase();
  if (nodeName === '') throw new ConfigError('--hostname-override', '--hostname-override: empty hostname is invalid; set --hostname-override');

  const raw = r.raw;
  raw.mode = mode;
  raw.clientConnection.kubeconfig = r.kubeconfig;
  raw.clientConnection.contentType = r.contentType.value;
  raw.hostnameOverride = override;
  raw.clusterCIDR = r.clusterCIDR.value;
  raw.detectLocalMode = detectLocalMode;
  raw.detectLocal = { bridgeInterface: r.bridgeInterface.value, interfaceNamePrefix: r.interfaceNamePrefix.value };
  raw.nodePortAddresses = npaAll ? [] : [...nodePortAddresses];
  raw.bindAddress = r.bindAddress.value;
  raw.healthzBindAddress = r.healthzBindAddress.value;
  raw.metricsBindAddress = r.metricsBindAddress.value;
  raw.configSyncPeriod = formatGoDuration(r.configSyncPeriodMs.value);
  raw.logging.verbosity = r.verbosity.value;
  raw.logging.format = loggingFormat;
  raw.featureGates = { ...featureGates };
  raw.oomScoreAdj = r.oomScoreAdj.value;
  const effective = {
    masqueradeBit: r.masqueradeBit.value,
    masqueradeAll: r.masqueradeAll,
    syncPeriod: formatGoDuration(r.syncPeriodMs.value),
    minSyncPeriod: formatGoDuration(r.minSyncPeriodMs.value),
  };
  // The configured timeouts (as upstream's /configz), not the whole seconds they are truncated to.
  const rawIpvs = {
    scheduler: ipvs.scheduler,
    excludeCIDRs: r.ipvs.excludeCIDRs.value === undefined ? null : [...ipvs.excludeCIDRs],
    strictARP: ipvs.strictARP,
    tcpTimeout: formatGoDuration(Math.max(0, r.ipvs.tcpTimeoutMs.value)),
    tcpFinTimeout: formatGoDuration(Math.max(0, r.ipvs.tcpFinTimeoutMs.value)),
    udpTimeout: formatGoDuration(Math.max(0, r.ipvs.udpTimeoutMs.value)),
  };
  if (mode === 'ipvs') {
    raw.ipvs = { ...raw.ipvs, ...rawIpvs, syncPeriod: effective.syncPeriod, minSyncPeriod: effective.minSyncPeriod };
    raw.iptables = { ...raw.iptables, masqueradeBit: effective.masqueradeBit, masqueradeAll: effective.masqueradeAll };
  } else {
    raw.ipvs = { ...raw.ipvs, ...rawIpvs };
    raw.nftables = { ...raw.nftables, ...effective };
    if (r.mirrorToIptables || mode === 'iptables') raw.iptables = { ...raw.iptables, ...effective };
  }
  raw.iptables = { ...raw.iptables, localhostNodePorts: r.localhostNodePorts };
  raw.conntrack = { ...raw.conntrack, ...rawConntrack(conntrack), tcpBeLiberal: r.tcpBeLiberal };
  // Not upstream fields since its userspace mode went: shown in userspace mode only.
  if (mode === 'userspace') Object.assign(raw, rawUserspace(userspace));

  return {
    mode,
    configFile: undefined,
    kubeconfig: r.kubeconfig,
    master: '',
    // As client-go: acceptContentTypes, when set, is what is asked for; its first type is preferred.
    apiProtobuf: (r.acceptContentTypes || r.contentType.value).split(',')[0].trim() === PROTOBUF_CONTENT_TYPE,
    hostnameOverride: nodeName,
    clusterCIDRs,
    bindAddress: r.bindAddress.value,
    metricsBindAddress: r.metricsBindAddress.value,
    healthzBindAddress: r.healthzBindAddress.value,
    syncPeriodMs: r.syncPeriodMs.value,
    minSyncPeriodMs: r.minSyncPeriodMs.value,
    masqueradeBit: r.masqueradeBit.value,
    masqueradeAll: r.masqueradeAll,
    localhostNodePorts: r.localhostNodePorts,
    tcpBeLiberal: r.tcpBeLiberal,
    cleanup: false,
    initOnly: false,
    writeConfigTo: undefined,
    version: undefined,
    verbosity: r.verbosity.value,
    loggingFormat,
    conntrack,
    oomScoreAdj: r.oomScoreAdj.value,
    featureGates,
    flagz: '',
    configSyncPeriodMs: r.configSyncPeriodMs.value,
    manifests: undefined,
    detectLocalMode,
    bridgeInterface: r.bridgeInterface.value,
    interfaceNamePrefix: r.interfaceNamePrefix.value,
    nodePortAddresses,
    ipvs,
    userspace,
    help,
    raw,
    warnings: [],
  };
}

/** nodePortAddresses that take every local address, in both families. */
const ALL_ADDRESSES = ['0.0.0.0/0', '::/0'];

function checkMode(mode: Sourced<string>): ImplementedMode {
  const name = mode.from;
  switch (mode.value) {
    case '':
    case 'nftables':
      return 'nftables';
    case 'iptables':
      return 'iptables';
    case 'ipvs':
      return 'ipvs';
    case 'userspace':
      return 'userspace';
    default:
      throw new ConfigError(name, `${name}: unsupported value ${JSON.stringify(mode.value)}; accepted: nftables, iptables, ipvs, userspace`);
  }
}

/** "" is kproxy's default, JSON (upstream's is text). */
function checkLoggingFormat(format: Sourced<string>): LoggingFormat {
  if (format.value === '' || format.value === 'json') return 'json';
  if (format.value === 'text') return 'text';
  throw new ConfigError(format.from, `${format.from}: unsupported value ${JSON.stringify(format.value)}; accepted: text, json`);
}

/** "" means ClusterCIDR, as upstream's platformApplyDefaults. */
function checkDetectLocalMode(mode: Sourced<string>): DetectLocalMode {
  if (mode.value === '') return 'ClusterCIDR';
  if ((DETECT_LOCAL_MODES as readonly string[]).includes(mode.value)) return mode.value as DetectLocalMode;
  throw new ConfigError(mode.from, `${mode.from}: unsupported value ${JSON.stringify(mode.value)}; accepted: ${DETECT_LOCAL_MODES.join(', ')}`);
}

/** Upstream's validateDetectLocalConfiguration: the interface modes need their name. */
function checkDetectLocal(mode: DetectLocalMode, r: Resolved): void {
  const needed = mode === 'BridgeInterface' ? r.bridgeInterface : mode === 'InterfaceNamePrefix' ? r.interfaceNamePrefix : undefined;
  if (needed && needed.value === '') {
    throw new ConfigError(needed.from, `${needed.from}: must not be empty when ${r.detectLocalMode.from} is ${mode}`);
  }
}

