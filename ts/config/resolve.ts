// The two ways in: kube-proxy's flags, or a KubeProxyConfiguration file (merged over the
// defaults, zero values restored as upstream's defaulting does), each resolved into one
// Resolved: every setting with where it came from, for index.ts to check and finish.

import { ConfigError } from './errors.js';
import type { FlagValue } from './flags.js';
import { parseGoDuration } from './duration.js';
import {
  DEFAULT_CONFIG_SYNC_PERIOD_MS, DEFAULT_HEALTHZ_PORT, DEFAULT_MASQUERADE_BIT, DEFAULT_METRICS_PORT,
  DEFAULT_MIN_SYNC_PERIOD_MS, DEFAULT_SYNC_PERIOD_MS, defaultRawConfig, PROTOBUF_CONTENT_TYPE, type RawConfig,
} from './defaults.js';
import { checkIP, checkIPPortFlag } from './validate.js';
import { appendPortIfNeeded } from '../server/address.js';
import { describe, type IpvsSourced, type Sourced } from './ipvs.js';
import { userspaceFromFile, type UserspaceSourced } from './userspace.js';
import { conntrackFromFile, conntrackFromFlags, type ConntrackSourced } from './conntrack.js';

export interface Resolved {
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

export function fromFlags(flags: Map<string, FlagValue>): Resolved {
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

export function fromFile(file: RawConfig): Resolved {
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

/** A setting's error, named by where it came from. */
export function fail(s: Sourced<unknown>, message: string): never {
  throw new ConfigError(s.from, describe(s, message));
}
