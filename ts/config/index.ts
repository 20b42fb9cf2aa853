// kube-proxy-compatible configuration: flags, or a KubeProxyConfiguration file, resolved into
// one ProxyConfig. Upstream semantics kept: with --config, most flags are ignored except -v,
// --hostname-override and --master (kproxy adds --cleanup and --manifests); zero values in the
// file mean "default"; the mode's sub-struct supplies the sync periods and masquerade settings
// (ipvs mode: the periods from ipvs.*, the masquerade settings from iptables.*).
// Deviation: mode "" means nftables (kproxy's default mode), not iptables.

import { hostname as osHostname } from 'node:os';
import { ConfigError } from './errors.js';
import { parseFlags, type FlagValue } from './flags.js';
import { readConfigFile } from './file.js';
import { formatGoDuration, parseGoDuration } from './duration.js';
import {
  DEFAULT_CONFIG_SYNC_PERIOD_MS, DEFAULT_HEALTHZ_PORT, DEFAULT_MASQUERADE_BIT, DEFAULT_METRICS_PORT,
  DEFAULT_MIN_SYNC_PERIOD_MS, DEFAULT_SYNC_PERIOD_MS, CONTENT_TYPES, defaultRawConfig, PROTOBUF_CONTENT_TYPE, type RawConfig,
} from './defaults.js';
import { canonicalCIDR, checkIP, checkIPPortFlag, parseClusterCIDRs, parseNodePortAddresses, validateHostPort } from './validate.js';
import { appendPortIfNeeded } from '../server/address.js';
import { describe, resolveIpvs, type IpvsConfig, type IpvsSourced, type Sourced } from './ipvs.js';
import { rawUserspace, resolveUserspace, userspaceFromFile, type UserspaceConfig, type UserspaceSourced } from './userspace.js';
import { checkFeatureGates, gateEnabled } from './feature-gates.js';
import { renderFlagz } from './flagz.js';
import { conntrackFromFile, conntrackFromFlags, rawConntrack, resolveConntrack, type ConntrackConfig, type ConntrackSourced } from './conntrack.js';

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

interface Resolved {
  raw: RawConfig;
  mode: Sourced<string>;
  kubeconfig: string;
  contentType: Sourced<string>;
  acceptContentTypes: string;
  hostnameOverride: Sourced<string>;
  clusterCIDR: Sourced<string>;
  detectLocalMode: Sourced<string>;
  bridgeInterface: Sourced<string>;
  interfaceNamePrefix: Sourced<string>;
  /** undefined when unset. */
  nodePortAddresses: Sourced<string[] | undefined>;
  bindAddress: Sourced<string>;
  healthzBindAddress: Sourced<string>;
  metricsBindAddress: Sourced<string>;
  syncPeriodMs: Sourced<number>;
  minSyncPeriodMs: Sourced<number>;
  masqueradeBit: Sourced<number>;
  masqueradeAll: boolean;
  localhostNodePorts: boolean;
  tcpBeLiberal: boolean;
  configSyncPeriodMs: Sourced<number>;
  verbosity: Sourced<number>;
  loggingFormat: Sourced<string>;
  conntrack: ConntrackSourced;
  oomScoreAdj: Sourced<number>;
  featureGates: Sourced<Record<string, boolean>>;
  /** Also show the effective periods under raw.iptables (the flags are named --iptables-*). */
  mirrorToIptables: boolean;
  ipvs: IpvsSourced;
  userspace: UserspaceSourced;
  /** Warnings found while resolving (flags without effect in the mode, truncated timeouts, ...). */
  warnings: string[];
}

// The flags that act in ipvs mode only; there, the --iptables-* periods do not apply.
const IPVS_FLAGS = [
  'ipvs-sync-period', 'ipvs-min-sync-period', 'ipvs-scheduler', 'ipvs-exclude-cidrs', 'ipvs-strict-arp',
  'ipvs-tcp-timeout', 'ipvs-tcpfin-timeout', 'ipvs-udp-timeout',
];
const IPTABLES_PERIOD_FLAGS = ['iptables-sync-period', 'iptables-min-sync-period'];

function fromFlags(flags: Map<string, FlagValue>): Resolved {
  const raw = defaultRawConfig();
  const get = <T extends FlagValue>(name: string, fallback: T): Sourced<T> =>
    flags.has(name) ? { value: flags.get(name) as T, from: `--${name}` } : { value: fallback, from: `--${name}` };

  const bindAddress = get('bind-address', raw.bindAddress as string);
  if (flags.has('bind-address')) checkIP(bindAddress.value, '--bind-address');
  // Upstream fills in a missing port after the flags are parsed (no --config only).
  const address = (name: string, fallback: string, port: number): Sourced<string> => {
    const s = get(name, fallback);
    checkIPPortFlag(s.value, s.from);
    return { value: appendPortIfNeeded(s.value, port), from: s.from };
  };
  // Upstream (processV1Alpha1Flags): in ipvs mode the --ipvs-* periods replace the --iptables-*
  // ones. Both flags default to the internal default, iptables' 30s / 1s, so ipvs mode's
  // minimum period is 1s by flags (the file's ipvs.minSyncPeriod defaults to 0s).
  const modeName = (flags.get('proxy-mode') as string | undefined) || 'nftables';
  const ipvsMode = modeName === 'ipvs';
  const periods = ipvsMode ? 'ipvs' : 'iptables';
  const warnings: string[] = [];
  for (const name of ipvsMode ? IPTABLES_PERIOD_FLAGS : IPVS_FLAGS) {
    if (!flags.has(name)) continue;
    warnings.push(ipvsMode
      ? `flag --${name} has no effect in ipvs mode (as kube-proxy); use --${name.replace('iptables-', 'ipvs-')}`
      : `flag --${name} only applies in ipvs mode (as kube-proxy); it has no effect in ${modeName} mode`);
  }
  return {
    raw,
    mode: get('proxy-mode', ''),
    kubeconfig: (flags.get('kubeconfig') as string | undefined) ?? '',
    contentType: get('kube-api-content-type', PROTOBUF_CONTENT_TYPE),
    acceptContentTypes: '',
    hostnameOverride: { value: '', from: '--hostname-override' },
    clusterCIDR: get('cluster-cidr', ''),
    detectLocalMode: get('detect-local-mode', ''),
    bridgeInterface: get('pod-bridge-interface', ''),
    interfaceNamePrefix: get('pod-interface-name-prefix', ''),
    nodePortAddresses: { value: flags.get('nodeport-addresses') as string[] | undefined, from: '--nodeport-addresses' },
    bindAddress,
    healthzBindAddress: address('healthz-bind-address', raw.healthzBindAddress, DEFAULT_HEALTHZ_PORT),
    metricsBindAddress: address('metrics-bind-address', raw.metricsBindAddress, DEFAULT_METRICS_PORT),
    syncPeriodMs: get(`${periods}-sync-period`, DEFAULT_SYNC_PERIOD_MS),
    minSyncPeriodMs: get(`${periods}-min-sync-period`, DEFAULT_MIN_SYNC_PERIOD_MS),
    masqueradeBit: get('iptables-masquerade-bit', DEFAULT_MASQUERADE_BIT),
    masqueradeAll: flags.get('masquerade-all') === true,
    localhostNodePorts: flags.get('iptables-localhost-nodeports') !== false,
    tcpBeLiberal: flags.get('conntrack-tcp-be-liberal') === true,
    configSyncPeriodMs: get('config-sync-period', DEFAULT_CONFIG_SYNC_PERIOD_MS),
    verbosity: { value: 0, from: '-v' },
    loggingFormat: { value: '', from: '--logging-format' },
    conntrack: conntrackFromFlags(flags),
    oomScoreAdj: get('oom-score-adj', -999),
    featureGates: get('feature-gates', {}),
    mirrorToIptables: !ipvsMode,
    ipvs: {
      scheduler: get('ipvs-scheduler', ''),
      excludeCIDRs: { value: flags.get('ipvs-exclude-cidrs') as string[] | undefined, from: '--ipvs-exclude-cidrs' },
      strictARP: flags.get('ipvs-strict-arp') === true,
      tcpTimeoutMs: get('ipvs-tcp-timeout', 0),
      tcpFinTimeoutMs: get('ipvs-tcpfin-timeout', 0),
      udpTimeoutMs: get('ipvs-udp-timeout', 0),
    },
    userspace: {
      udpIdleTimeoutMs: { value: flags.get('udp-timeout') as number | undefined, from: '--udp-timeout' },
      maxConnectionsPerService: { value: flags.get('userspace-max-connections') as number | undefined, from: '--userspace-max-connections' },
    },
    warnings,
  };
}

function fromFile(file: RawConfig): Resolved {
  const raw = mergeOver(defaultRawConfig(), file);
  restoreZeroDefaults(raw);
  const mode = (file.mode as string | undefined) ?? '';
  // The mode's sub-struct supplies the periods and masquerade settings; "" is upstream's iptables,
  // so its settings carry over. ipvs mode has its own periods but iptables' masquerade settings
  // (upstream's v1alpha1 conversion).
  const struct = mode === 'nftables' ? 'nftables' : 'iptables';
  const periodStruct = mode === 'ipvs' ? 'ipvs' : struct;
  const sub: RawConfig = file[struct] ?? {};
  const periodSub: RawConfig = file[periodStruct] ?? {};
  const ipvs: RawConfig = file.ipvs ?? {};
  // Upstream range-checks iptables.masqueradeBit whatever the mode.
  const iptablesBit = file.iptables?.masqueradeBit;
  if (iptablesBit !== undefined && (iptablesBit < 0 || iptablesBit > 31)) {
    fail({ value: iptablesBit, from: 'iptables.masqueradeBit' }, 'must be within the range [0, 31]');
  }
  const duration = (value: string | undefined, fallback: number): number => {
    const ms = value === undefined ? 0 : parseGoDuration(value);
    return ms === 0 ? fallback : ms;
  };
  // Upstream derives the default listen addresses from bindAddress's family.
  const bindAddress: string = file.bindAddress || '0.0.0.0';
  const v6 = bindAddress.includes(':');
  const address = (value: string | undefined, v4Host: string, v6Host: string, port: number): string =>
    value ? appendPortIfNeeded(value, port) : `${v6 ? v6Host : v4Host}:${port}`;
  return {
    raw,
    mode: { value: mode, from: 'mode' },
    kubeconfig: file.clientConnection?.kubeconfig ?? '',
    contentType: { value: file.clientConnection?.contentType || PROTOBUF_CONTENT_TYPE, from: 'clientConnection.contentType' },
    acceptContentTypes: file.clientConnection?.acceptContentTypes ?? '',
    hostnameOverride: { value: file.hostnameOverride ?? '', from: 'hostnameOverride' },
    clusterCIDR: { value: file.clusterCIDR ?? '', from: 'clusterCIDR' },
    detectLocalMode: { value: file.detectLocalMode ?? '', from: 'detectLocalMode' },
    bridgeInterface: { value: file.detectLocal?.bridgeInterface ?? '', from: 'detectLocal.bridgeInterface' },
    interfaceNamePrefix: { value: file.detectLocal?.interfaceNamePrefix ?? '', from: 'detectLocal.interfaceNamePrefix' },
    nodePortAddresses: { value: file.nodePortAddresses, from: 'nodePortAddresses' },
    bindAddress: { value: bindAddress, from: 'bindAddress' },
    healthzBindAddress: { value: address(file.healthzBindAddress, '0.0.0.0', '[::]', DEFAULT_HEALTHZ_PORT), from: 'healthzBindAddress' },
    metricsBindAddress: { value: address(file.metricsBindAddress, '127.0.0.1', '[::1]', DEFAULT_METRICS_PORT), from: 'metricsBindAddress' },
    syncPeriodMs: { value: duration(periodSub.syncPeriod, DEFAULT_SYNC_PERIOD_MS), from: `${periodStruct}.syncPeriod` },
    // ipvs.minSyncPeriod has no default: 0s stays 0s.
    minSyncPeriodMs: {
      value: duration(periodSub.minSyncPeriod, periodStruct === 'ipvs' ? 0 : DEFAULT_MIN_SYNC_PERIOD_MS),
      from: `${periodStruct}.minSyncPeriod`,
    },
    masqueradeBit: { value: sub.masqueradeBit ?? DEFAULT_MASQUERADE_BIT, from: `${struct}.masqueradeBit` },
    masqueradeAll: sub.masqueradeAll ?? false,
    // The iptables sub-struct's, whatever the mode (it only acts in iptables mode).
    localhostNodePorts: file.iptables?.localhostNodePorts ?? true,
    tcpBeLiberal: file.conntrack?.tcpBeLiberal ?? false,
    configSyncPeriodMs: { value: duration(file.configSyncPeriod, DEFAULT_CONFIG_SYNC_PERIOD_MS), from: 'configSyncPeriod' },
    verbosity: { value: file.logging?.verbosity ?? 0, from: 'logging.verbosity' },
    loggingFormat: { value: file.logging?.format ?? '', from: 'logging.format' },
    conntrack: conntrackFromFile(file),
    oomScoreAdj: { value: file.oomScoreAdj ?? -999, from: 'oomScoreAdj' },
    featureGates: { value: file.featureGates ?? {}, from: 'featureGates' },
    mirrorToIptables: periodStruct === 'iptables',
    ipvs: {
      scheduler: { value: ipvs.scheduler ?? '', from: 'ipvs.scheduler' },
      excludeCIDRs: { value: ipvs.excludeCIDRs, from: 'ipvs.excludeCIDRs' },
      strictARP: ipvs.strictARP ?? false,
      tcpTimeoutMs: { value: duration(ipvs.tcpTimeout, 0), from: 'ipvs.tcpTimeout' },
      tcpFinTimeoutMs: { value: duration(ipvs.tcpFinTimeout, 0), from: 'ipvs.tcpFinTimeout' },
      udpTimeoutMs: { value: duration(ipvs.udpTimeout, 0), from: 'ipvs.udpTimeout' },
    },
    userspace: userspaceFromFile(file),
    warnings: [],
  };
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

function fail(s: Sourced<unknown>, message: string): never {
  throw new ConfigError(s.from, describe(s, message));
}



// Fields where upstream's defaulting treats the zero value as unset (non-pointer Go fields).
const ZERO_IS_DEFAULT = [
  'bindAddress', 'healthzBindAddress', 'metricsBindAddress', 'detectLocalMode',
  'clientConnection.contentType', 'clientConnection.qps', 'clientConnection.burst',
];
const ZERO_DURATION_IS_DEFAULT = [
  'iptables.syncPeriod', 'iptables.minSyncPeriod', 'ipvs.syncPeriod', 'nftables.syncPeriod', 'nftables.minSyncPeriod',
  'configSyncPeriod',
];

function restoreZeroDefaults(raw: RawConfig): void {
  const defaults = defaultRawConfig();
  const restore = (path: string, isZero: (v: unknown) => boolean) => {
    const keys = path.split('.');
    const last = keys.pop() as string;
    const parent = keys.reduce<RawConfig | undefined>((o, k) => o?.[k], raw);
    const fallback = keys.reduce<RawConfig>((o, k) => o[k], defaults)[last];
    if (parent && isZero(parent[last])) parent[last] = fallback;
  };
  for (const path of ZERO_IS_DEFAULT) restore(path, (v) => v === '' || v === 0);
  for (const path of ZERO_DURATION_IS_DEFAULT) restore(path, (v) => typeof v === 'string' && parseGoDuration(v) === 0);
}

/** Deep-merges a decoded file over the defaults; objects merge, everything else replaces. */
function mergeOver(base: RawConfig, over: RawConfig): RawConfig {
  const out: RawConfig = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    const bothObjects = isPlainObject(current) && isPlainObject(value);
    out[key] = bothObjects ? mergeOver(current, value) : value;
  }
  return out;
}

function isPlainObject(v: unknown): v is RawConfig {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
