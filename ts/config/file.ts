// Reads a KubeProxyConfiguration v1alpha1 file (YAML or JSON). Like kube-proxy: a strict decode
// first; unknown or duplicate fields fall back to a lenient decode with a warning. Wrong types
// are fatal. Known fields kproxy does not implement are accepted only at their default (or
// "leave as is") values; anything else is a ConfigError naming the field.

import { readFileSync } from 'node:fs';
import { yaml } from '../yaml.js';
import { ConfigError, notImplemented } from './errors.js';
import { parseGoDuration } from './duration.js';
import { API_VERSION, CONTENT_TYPES, KIND, type RawConfig } from './defaults.js';

type FieldType = 'string' | 'bool' | 'int' | 'float' | 'duration' | 'stringList' | 'boolMap' | 'object' | 'any';

interface FieldSpec {
  type: FieldType;
  fields?: Schema;
  /** When set, a non-null value must pass or the field is "not implemented yet". */
  accept?: (value: any) => boolean;
  acceptText?: string;
}
type Schema = Record<string, FieldSpec>;

const ok: FieldSpec['accept'] = () => true;
const str = (accept = ok, acceptText?: string): FieldSpec => ({ type: 'string', accept, acceptText });
const bool = (accept = ok, acceptText?: string): FieldSpec => ({ type: 'bool', accept, acceptText });
const int = (accept = ok, acceptText?: string): FieldSpec => ({ type: 'int', accept, acceptText });
const dur = (accept = ok, acceptText?: string): FieldSpec => ({ type: 'duration', accept, acceptText });

const onlyFalse = bool((v) => v === false, 'false');
const onlyEmpty = str((v) => v === '', '""');

const SCHEMA: Schema = {
  apiVersion: str(),
  kind: str(),
  // Validated against upstream's gate names in feature-gates.ts.
  featureGates: { type: 'boolMap' },
  clientConnection: {
    type: 'object',
    fields: {
      kubeconfig: str(),
      acceptContentTypes: str(),
      contentType: str((v) => v === '' || CONTENT_TYPES.includes(v), 'application/vnd.kubernetes.protobuf or application/json'),
      qps: { type: 'float', accept: (v) => v === 0 || v === 5, acceptText: '5 (the default)' },
      burst: int((v) => v === 0 || v === 10, '10 (the default)'),
    },
  },
  logging: {
    type: 'object',
    fields: {
      // Validated in index.ts (text or json).
      format: str(),
      flushFrequency: { type: 'any' },
      verbosity: int(),
      vmodule: { type: 'any', accept: (v) => (Array.isArray(v) ? v.length === 0 : v === ''), acceptText: 'empty' },
      options: { type: 'any' },
    },
  },
  hostnameOverride: str(),
  bindAddress: str(),
  healthzBindAddress: str(),
  metricsBindAddress: str(),
  bindAddressHardFail: onlyFalse,
  enableProfiling: onlyFalse,
  showHiddenMetricsForVersion: onlyEmpty,
  mode: str(),
  iptables: {
    type: 'object',
    fields: {
      masqueradeBit: int(),
      masqueradeAll: bool(),
      // iptables mode and IPv4 only.
      localhostNodePorts: bool(),
      snatNodeInternalIP: onlyFalse,
      syncPeriod: dur(),
      minSyncPeriod: dur(),
    },
  },
  ipvs: {
    type: 'object',
    fields: {
      syncPeriod: dur(),
      minSyncPeriod: dur(),
      // Validated in index.ts, in ipvs mode only (as upstream).
      scheduler: str(),
      excludeCIDRs: { type: 'stringList' },
      strictARP: bool(),
      tcpTimeout: dur(),
      tcpFinTimeout: dur(),
      udpTimeout: dur(),
    },
  },
  nftables: {
    type: 'object',
    fields: { masqueradeBit: int(), masqueradeAll: bool(), syncPeriod: dur(), minSyncPeriod: dur() },
  },
  // Windows only: ignored on Linux, as upstream does.
  winkernel: { type: 'any' },
  windowsRunAsService: { type: 'any' },
  detectLocalMode: str(),
  detectLocal: { type: 'object', fields: { bridgeInterface: str(), interfaceNamePrefix: str() } },
  clusterCIDR: str(),
  nodePortAddresses: { type: 'stringList' },
  oomScoreAdj: int(),
  // Applied at start (ts/proxier/node-setup.ts); validated in config/conntrack.ts.
  conntrack: {
    type: 'object',
    fields: {
      maxPerCore: int(),
      min: int(),
      tcpEstablishedTimeout: dur(),
      tcpCloseWaitTimeout: dur(),
      tcpBeLiberal: bool(),
      udpTimeout: dur(),
      udpStreamTimeout: dur(),
    },
  },
  configSyncPeriod: dur(),
  // Unused upstream since the userspace proxy was removed.
  portRange: str(),
  // userspace mode (upstream's field before 1.26, and kproxy's own sub-struct): ts/config/userspace.ts.
  udpIdleTimeout: dur(),
  userspace: { type: 'object', fields: { maxConnectionsPerService: int() } },
};

export interface LoadedFile {
  /** The decoded object, unknown fields dropped. */
  raw: RawConfig;
  warnings: string[];
}

export function readConfigFile(path: string): LoadedFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('--config', `cannot read config file ${path}: ${(err as Error).message}`);
  }
  return decodeConfig(text, path);
}

export function decodeConfig(text: string, source: string): LoadedFile {
  const warnings: string[] = [];
  let doc = yaml().parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0 && doc.errors.every((e) => e.code === 'DUPLICATE_KEY')) {
    warnings.push(`config file ${source}: using lenient decoding as strict decoding failed: ${doc.errors[0].message}`);
    doc = yaml().parseDocument(text, { uniqueKeys: false, prettyErrors: false });
  }
  if (doc.errors.length > 0) {
    throw new ConfigError('--config', `config file ${source}: failed to decode: ${doc.errors[0].message}`);
  }
  const data: unknown = doc.toJS();
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new ConfigError('--config', `config file ${source}: expected a KubeProxyConfiguration object`);
  }
  const obj = data as RawConfig;
  if (obj.kind !== KIND) {
    throw new ConfigError('--config', `config file ${source}: kind must be ${KIND}, got ${JSON.stringify(obj.kind ?? '')}`);
  }
  if (obj.apiVersion !== API_VERSION) {
    throw new ConfigError('--config', `config file ${source}: apiVersion: unsupported value ${JSON.stringify(obj.apiVersion ?? '')}; accepted: ${API_VERSION}`);
  }
  const unknown: string[] = [];
  const raw = walk(obj, SCHEMA, '', unknown);
  if (unknown.length > 0) {
    warnings.push(`config file ${source}: using lenient decoding as strict decoding failed: unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((u) => JSON.stringify(u)).join(', ')} ignored`);
  }
  return { raw, warnings };
}

function walk(obj: RawConfig, schema: Schema, prefix: string, unknown: string[]): RawConfig {
  const out: RawConfig = {};
  for (const [key, value] of Object.entries(obj)) {
    const path = prefix ? `${prefix}.${key}` : key;
    const spec = schema[key];
    if (!spec) {
      unknown.push(path);
      continue;
    }
    // null is Go's zero value: the field is treated as unset.
    if (value === null || value === undefined) continue;
    checkType(spec.type, value, path);
    out[key] = spec.fields ? walk(value, spec.fields, path, unknown) : value;
    if (spec.accept && !spec.accept(value)) {
      throw notImplemented(path, `got ${JSON.stringify(value)}; accepted: ${spec.acceptText ?? 'the default'}`);
    }
  }
  return out;
}

function checkType(type: FieldType, value: unknown, path: string): void {
  const fail = (what: string) => {
    throw new ConfigError(path, `${path}: must be ${what}, got ${JSON.stringify(value)}`);
  };
  switch (type) {
    case 'string':
      if (typeof value !== 'string') fail('a string');
      break;
    case 'bool':
      if (typeof value !== 'boolean') fail('true or false');
      break;
    case 'int':
      if (typeof value !== 'number' || !Number.isInteger(value) || Math.abs(value) > 2 ** 31 - 1) fail('an integer');
      break;
    case 'float':
      if (typeof value !== 'number') fail('a number');
      break;
    case 'duration':
      if (typeof value !== 'string') fail('a duration string such as "30s"');
      try {
        parseGoDuration(value as string);
      } catch {
        fail('a duration string such as "30s", "1m30s" or "500ms"');
      }
      break;
    case 'stringList':
      if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) fail('a list of strings');
      break;
    case 'boolMap':
      if (typeof value !== 'object' || Array.isArray(value) || Object.values(value as object).some((v) => typeof v !== 'boolean')) {
        fail('a map of feature names to true/false');
      }
      break;
    case 'object':
      if (typeof value !== 'object' || Array.isArray(value)) fail('an object');
      break;
    case 'any':
      break;
  }
}
