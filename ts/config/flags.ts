// kube-proxy's command line, parsed with pflag's rules: "--flag=value", "--flag value",
// boolean "--flag" / "--flag=false", shorthand "-v 2" / "-v=2" / "-v2", "--" ends flags,
// and "_" in names reads as "-" (upstream's WordSepNormalizeFunc).

import { ConfigError, notImplemented } from './errors.js';
import { parseGoDuration } from './duration.js';

export type FlagKind = 'string' | 'bool' | 'int' | 'duration' | 'strings';
export type FlagValue = string | boolean | number | string[];

interface FlagDef {
  name: string;
  short?: string;
  kind: FlagKind;
  usage: string;
  /** Shown in --help; the real defaults live in defaults.ts. */
  defaultText?: string;
}

// Flags kproxy implements. Upstream semantics for each are applied in index.ts.
const IMPLEMENTED: FlagDef[] = [
  { name: 'config', kind: 'string', usage: 'The path to the configuration file (KubeProxyConfiguration v1alpha1, YAML or JSON).' },
  { name: 'cleanup', kind: 'bool', usage: "If true, remove the rules of every mode and exit." },
  { name: 'kubeconfig', kind: 'string', usage: 'Path to a kubeconfig file (in-cluster config when unset).' },
  { name: 'master', kind: 'string', usage: 'The address of the Kubernetes API server (overrides any value in kubeconfig).' },
  { name: 'kube-api-content-type', kind: 'string', usage: 'Content type of requests sent to the API server: application/vnd.kubernetes.protobuf or application/json.', defaultText: 'application/vnd.kubernetes.protobuf' },
  { name: 'hostname-override', kind: 'string', usage: 'The name of this Node (default: the hostname, lower-cased).' },
  { name: 'proxy-mode', kind: 'string', usage: "Proxy mode: 'nftables' (the default in kproxy), 'iptables', 'ipvs' or 'userspace'.", defaultText: 'nftables' },
  { name: 'cluster-cidr', kind: 'string', usage: 'The pod CIDR range(s) of the cluster; a comma-separated dual-stack pair is allowed.' },
  { name: 'detect-local-mode', kind: 'string', usage: 'How to tell traffic from local pods: ClusterCIDR, NodeCIDR, BridgeInterface or InterfaceNamePrefix.', defaultText: 'ClusterCIDR' },
  { name: 'pod-bridge-interface', kind: 'string', usage: 'With --detect-local-mode BridgeInterface: traffic from this bridge is local.' },
  { name: 'pod-interface-name-prefix', kind: 'string', usage: 'With --detect-local-mode InterfaceNamePrefix: traffic from interfaces with this name prefix is local.' },
  { name: 'nodeport-addresses', kind: 'strings', usage: "CIDRs of the node IPs that accept NodePorts, or 'primary' (the Node object's IPs).", defaultText: 'primary' },
  { name: 'bind-address', kind: 'string', usage: "Overrides the node's primary IP (no socket is bound to it).", defaultText: '0.0.0.0' },
  { name: 'healthz-bind-address', kind: 'string', usage: 'IP:port of the proxier health server; empty disables it.', defaultText: '0.0.0.0:10256' },
  { name: 'metrics-bind-address', kind: 'string', usage: 'IP:port of the metrics server; empty disables it.', defaultText: '127.0.0.1:10249' },
  { name: 'iptables-sync-period', kind: 'duration', usage: 'Maximum interval between full resyncs, and the retry delay (e.g. 5s, 1m, 2h22m); not in ipvs mode.', defaultText: '30s' },
  { name: 'iptables-min-sync-period', kind: 'duration', usage: 'Minimum interval between rule syncs (e.g. 1s); 0 syncs on every change; not in ipvs mode.', defaultText: '1s' },
  { name: 'iptables-masquerade-bit', kind: 'int', usage: 'The fwmark bit marking packets for SNAT, within [0, 31].', defaultText: '14' },
  { name: 'masquerade-all', kind: 'bool', usage: 'SNAT all traffic sent to Service cluster IPs.' },
  { name: 'iptables-localhost-nodeports', kind: 'bool', usage: 'iptables mode: accept IPv4 NodePort traffic to 127.0.0.1 (sets route_localnet).', defaultText: 'true' },
  // ipvs mode only, as upstream: there the --ipvs-* periods replace the --iptables-* ones.
  { name: 'ipvs-sync-period', kind: 'duration', usage: 'ipvs mode: maximum interval between full resyncs, and the retry delay (e.g. 5s, 1m, 2h22m).', defaultText: '30s' },
  { name: 'ipvs-min-sync-period', kind: 'duration', usage: 'ipvs mode: minimum interval between IPVS rule syncs (e.g. 1s); 0 syncs on every change.', defaultText: '1s' },
  { name: 'ipvs-scheduler', kind: 'string', usage: 'ipvs mode: the IPVS scheduler of every virtual server (rr, wrr, lc, wlc, lblc, lblcr, sh, dh, sed, nq, mh, ...); empty means rr.' },
  { name: 'ipvs-exclude-cidrs', kind: 'strings', usage: 'ipvs mode: comma-separated CIDRs whose IPVS virtual servers kproxy leaves alone when cleaning up.' },
  { name: 'ipvs-strict-arp', kind: 'bool', usage: 'ipvs mode: set arp_ignore to 1 and arp_announce to 2 (strict ARP).' },
  { name: 'ipvs-tcp-timeout', kind: 'duration', usage: 'ipvs mode: idle timeout of IPVS TCP connections, in whole seconds; 0 leaves the kernel value.', defaultText: '0s' },
  { name: 'ipvs-tcpfin-timeout', kind: 'duration', usage: 'ipvs mode: timeout of IPVS TCP connections after a FIN, in whole seconds; 0 leaves the kernel value.', defaultText: '0s' },
  { name: 'ipvs-udp-timeout', kind: 'duration', usage: 'ipvs mode: timeout of IPVS UDP flows, in whole seconds; 0 leaves the kernel value.', defaultText: '0s' },
  { name: 'conntrack-tcp-be-liberal', kind: 'bool', usage: 'Set nf_conntrack_tcp_be_liberal: out-of-window TCP packets are not INVALID (iptables mode then has no INVALID drop).' },
  { name: 'config-sync-period', kind: 'duration', usage: 'Informer resync period; must be greater than 0.', defaultText: '15m0s' },
  { name: 'udp-timeout', kind: 'duration', usage: "userspace mode: how long an idle UDP session is kept (e.g. '250ms', '2s'); must be greater than 0.", defaultText: '250ms' },
  { name: 'userspace-max-connections', kind: 'int', usage: 'userspace mode (kproxy): active connections per Service; 0 means no cap.', defaultText: '0' },
  { name: 'v', short: 'v', kind: 'int', usage: 'Log verbosity: 2 logs each sync, 4 traces.', defaultText: '0' },
  { name: 'manifests', kind: 'string', usage: 'kproxy only: read Services and EndpointSlices from this directory instead of the API server.' },
  { name: 'help', short: 'h', kind: 'bool', usage: 'Show this help and exit.' },
];

// Flags of upstream kube-proxy that kproxy recognises but does not implement yet.
const NOT_IMPLEMENTED = [
  'write-config-to', 'init-only', 'feature-gates', 'kube-api-qps', 'kube-api-burst',
  'bind-address-hard-fail', 'profiling', 'show-hidden-metrics-for-version',
  'oom-score-adj', 'conntrack-max-per-core', 'conntrack-min',
  'conntrack-tcp-timeout-established', 'conntrack-tcp-timeout-close-wait',
  'conntrack-udp-timeout', 'conntrack-udp-timeout-stream',
  // component-base logging and version flags
  'vmodule', 'logging-format', 'log-flush-frequency', 'log-text-split-stream', 'log-text-info-buffer-size',
  'log-json-split-stream', 'log-json-info-buffer-size', 'version',
  // deprecated upstream
  'healthz-port', 'metrics-port', 'proxy-port-range',
];

const BY_NAME = new Map(IMPLEMENTED.map((f) => [f.name, f]));
const BY_SHORT = new Map(IMPLEMENTED.filter((f) => f.short).map((f) => [f.short as string, f]));
const NOT_IMPLEMENTED_SET = new Set(NOT_IMPLEMENTED);

export interface ParsedFlags {
  /** Flags given on the command line (last occurrence wins), keyed by canonical name. */
  values: Map<string, FlagValue>;
}

/** Parses argv (without node and script). Throws ConfigError at the first bad argument, as pflag does. */
export function parseFlags(argv: string[]): ParsedFlags {
  const values = new Map<string, FlagValue>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    const isLong = arg.startsWith('--');
    const body = arg.slice(isLong ? 2 : 1);
    const eq = body.indexOf('=');
    const rawName = eq < 0 ? body : body.slice(0, eq);
    const inline = eq < 0 ? undefined : body.slice(eq + 1);
    let def: FlagDef | undefined;
    let shortRest: string | undefined;
    if (isLong) {
      const name = rawName.replaceAll('_', '-');
      if (name === '' || name.startsWith('-')) throw new ConfigError(arg, `bad flag syntax: ${arg}`);
      def = BY_NAME.get(name);
      if (!def && NOT_IMPLEMENTED_SET.has(name)) throw notImplemented(`--${name}`);
      if (!def) throw new ConfigError(`--${name}`, `unknown flag --${name}; run kproxy --help for the accepted flags`);
    } else {
      def = BY_SHORT.get(rawName[0]);
      if (!def) {
        throw new ConfigError(`-${rawName}`, `unknown shorthand flag '${rawName[0]}' in ${arg}` +
          (rawName.length > 1 ? ` (long flags take two dashes: -${arg})` : ''));
      }
      // "-v2": the rest of a shorthand group is its value. Grouped booleans ("-hv") are not supported.
      if (rawName.length > 1 && (inline !== undefined || def.kind === 'bool')) {
        throw new ConfigError(`-${rawName}`, `unknown shorthand flag '${rawName[1]}' in ${arg}`);
      }
      if (rawName.length > 1) shortRest = rawName.slice(1);
    }
    const display = isLong ? `--${def.name}` : `-${def.short}`;
    let text = inline ?? shortRest;
    if (text === undefined) {
      if (def.kind === 'bool') {
        text = 'true';
      } else {
        if (i + 1 >= argv.length) throw new ConfigError(display, `flag needs an argument: ${display}`);
        text = argv[++i];
      }
    }
    const value = convert(def, display, text);
    // pflag's StringSlice: a repeated flag appends.
    const prev = values.get(def.name);
    values.set(def.name, Array.isArray(prev) && Array.isArray(value) ? [...prev, ...value] : value);
  }
  const extra = positional.filter((a) => a !== '');
  if (extra.length > 0) {
    throw new ConfigError(extra[0], `kproxy does not take any arguments, got ${JSON.stringify(extra)}`);
  }
  return { values };
}

function convert(def: FlagDef, display: string, text: string): FlagValue {
  switch (def.kind) {
    case 'string':
      return text;
    case 'strings':
      return splitCSV(text);
    case 'bool': {
      const b = parseGoBool(text);
      if (b === undefined) throw new ConfigError(display, `invalid value "${text}"; accepted: true or false`);
      return b;
    }
    case 'int':
      if (!/^[+-]?\d+$/.test(text) || Math.abs(Number(text)) > 2 ** 31 - 1) {
        throw new ConfigError(display, `invalid value "${text}"; accepted: an integer`);
      }
      return Number(text);
    case 'duration':
      try {
        return parseGoDuration(text);
      } catch {
        throw new ConfigError(display, `invalid duration "${text}"; accepted: a Go duration such as 30s, 1m30s, 500ms, 1h`);
      }
  }
}

/** pflag's readAsCSV: "" is the empty list; double quotes may enclose a field. */
function splitCSV(text: string): string[] {
  if (text === '') return [];
  const out: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted && c === '"' && text[i + 1] === '"') {
      field += '"';
      i++;
    } else if (quoted && c === '"') {
      quoted = false;
    } else if (!quoted && c === '"' && field === '') {
      quoted = true;
    } else if (!quoted && c === ',') {
      out.push(field);
      field = '';
    } else {
      field += c;
    }
  }
  out.push(field);
  return out;
}

/** strconv.ParseBool. */
export function parseGoBool(text: string): boolean | undefined {
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(text)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(text)) return false;
  return undefined;
}

/** The --help text. */
export function usage(): string {
  const lines = [
    'kproxy: a Kubernetes service proxy compatible with kube-proxy (nftables, iptables and ipvs modes).',
    '',
    'Usage:',
    '  kproxy [flags]',
    '',
    'Flags:',
  ];
  for (const f of IMPLEMENTED) {
    const names = f.short ? `-${f.short}, --${f.name}` : `    --${f.name}`;
    const arg = f.kind === 'bool' ? '' : ` ${f.kind}`;
    const dflt = f.defaultText ? ` (default ${f.defaultText})` : '';
    lines.push(`  ${(names + arg).padEnd(40)} ${f.usage}${dflt}`);
  }
  lines.push('', 'Recognised kube-proxy flags that kproxy does not implement yet (they are rejected):');
  lines.push(...wrap(NOT_IMPLEMENTED.map((n) => `--${n}`).join(' '), 100).map((l) => `  ${l}`));
  lines.push('', 'With --config, other flags are ignored except -v, --hostname-override, --master, --cleanup and --manifests (as kube-proxy does).');
  return lines.join('\n') + '\n';
}

function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) out.push(line);
  return out;
}
