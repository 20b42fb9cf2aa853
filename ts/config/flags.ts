// kube-proxy's command line, parsed with pflag's rules: "--flag=value", "--flag value",
// boolean "--flag" / "--flag=false", shorthand "-v 2" / "-v=2" / "-v2", "--" ends flags,
// and "_" in names reads as "-" (upstream's WordSepNormalizeFunc).

import { ConfigError, notImplemented } from './errors.js';
import { parseGoDuration } from './duration.js';

export type FlagKind = 'string' | 'bool' | 'int' | 'float' | 'duration' | 'strings' | 'gates' | 'version';
export type FlagValue = string | boolean | number | string[] | Record<string, boolean>;

export interface FlagDef {
  name: string;
  short?: string;
  kind: FlagKind;
  usage: string;
  /** Shown in --help and /flagz, in pflag's format; the real defaults live in defaults.ts. */
  defaultText?: string;
}

/** A kube-proxy flag kproxy has no behaviour for: accepted at upstream's default only. */
interface NotImplementedFlag {
  name: string;
  kind: FlagKind;
  /** Upstream's default, as the flag's text; any other value is refused. */
  accepts: string;
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
  { name: 'conntrack-max-per-core', kind: 'int', usage: 'Maximum number of NAT connections to track per CPU core (0 to leave the limit as-is and ignore conntrack-min).', defaultText: '32768' },
  { name: 'conntrack-min', kind: 'int', usage: 'Minimum number of conntrack entries to allocate, regardless of conntrack-max-per-core (set conntrack-max-per-core=0 to leave the limit as-is).', defaultText: '131072' },
  { name: 'conntrack-tcp-timeout-established', kind: 'duration', usage: 'Idle timeout for established TCP connections (0 to leave as-is).', defaultText: '24h0m0s' },
  { name: 'conntrack-tcp-timeout-close-wait', kind: 'duration', usage: 'NAT timeout for TCP connections in the CLOSE_WAIT state (0 to leave as-is).', defaultText: '1h0m0s' },
  { name: 'conntrack-tcp-be-liberal', kind: 'bool', usage: 'Set nf_conntrack_tcp_be_liberal: out-of-window TCP packets are not INVALID (iptables mode then has no INVALID drop).' },
  { name: 'conntrack-udp-timeout', kind: 'duration', usage: 'Idle timeout for UNREPLIED UDP connections (0 to leave as-is).', defaultText: '0s' },
  { name: 'conntrack-udp-timeout-stream', kind: 'duration', usage: 'Idle timeout for ASSURED UDP connections (0 to leave as-is).', defaultText: '0s' },
  { name: 'oom-score-adj', kind: 'int', usage: "The oom_score_adj of kproxy's process, within [-1000, 1000].", defaultText: '-999' },
  { name: 'init-only', kind: 'bool', usage: 'Do the steps that need full root (sysctls, conntrack limits), then exit; a later run needs only CAP_NET_ADMIN.' },
  { name: 'write-config-to', kind: 'string', usage: 'Write the effective (defaulted) KubeProxyConfiguration to this file, as YAML, and exit.' },
  { name: 'feature-gates', kind: 'gates', usage: "key=value pairs of kube-proxy's feature gates (e.g. WatchListClient=false); upstream's names are accepted, see the table in ts/config/feature-gates.ts." },
  { name: 'config-sync-period', kind: 'duration', usage: 'Informer resync period; must be greater than 0.', defaultText: '15m0s' },
  { name: 'udp-timeout', kind: 'duration', usage: "userspace mode: how long an idle UDP session is kept (e.g. '250ms', '2s'); must be greater than 0.", defaultText: '250ms' },
  { name: 'userspace-max-connections', kind: 'int', usage: 'userspace mode (kproxy): active connections per Service; 0 means no cap.', defaultText: '0' },
  { name: 'v', short: 'v', kind: 'int', usage: 'Log verbosity, as klog: messages up to V(n) are shown (2 logs each sync, 4 traces).', defaultText: '0' },
  { name: 'logging-format', kind: 'string', usage: "Log format: 'json' (kproxy's default) or 'text' (klog-like lines, kube-proxy's default).", defaultText: 'json' },
  { name: 'manifests', kind: 'string', usage: 'kproxy only: read Services and EndpointSlices from this directory instead of the API server.' },
  { name: 'version', kind: 'version', usage: "Print the version and exit; --version=raw prints it as a struct, as kube-proxy's.", defaultText: 'false' },
  { name: 'help', short: 'h', kind: 'bool', usage: 'Show this help and exit.' },
];

// Flags of upstream kube-proxy that kproxy has no behaviour for: their default (what kube-proxy
// does when they are not given) is accepted, so a kube-proxy command line works as it is; any
// other value is refused, naming the flag.
const NOT_IMPLEMENTED: NotImplementedFlag[] = [
  { name: 'kube-api-qps', kind: 'float', accepts: '5' },
  { name: 'kube-api-burst', kind: 'int', accepts: '10' },
  { name: 'bind-address-hard-fail', kind: 'bool', accepts: 'false' },
  { name: 'profiling', kind: 'bool', accepts: 'false' },
  { name: 'show-hidden-metrics-for-version', kind: 'string', accepts: '' },
  // component-base logging flags
  { name: 'vmodule', kind: 'string', accepts: '' },
  { name: 'log-flush-frequency', kind: 'duration', accepts: '5s' },
  { name: 'log-text-split-stream', kind: 'bool', accepts: 'false' },
  { name: 'log-text-info-buffer-size', kind: 'string', accepts: '0' },
  { name: 'log-json-split-stream', kind: 'bool', accepts: 'false' },
  { name: 'log-json-info-buffer-size', kind: 'string', accepts: '0' },
  // deprecated upstream: the ports default to the bind addresses' own
  { name: 'healthz-port', kind: 'int', accepts: '10256' },
  { name: 'metrics-port', kind: 'int', accepts: '10249' },
  { name: 'proxy-port-range', kind: 'string', accepts: '' },
];

const BY_NAME = new Map(IMPLEMENTED.map((f) => [f.name, f]));
const BY_SHORT = new Map(IMPLEMENTED.filter((f) => f.short).map((f) => [f.short as string, f]));
const NOT_IMPLEMENTED_BY_NAME = new Map(NOT_IMPLEMENTED.map((f) => [f.name, f]));

/** Every flag kproxy accepts, implemented or at its default only: /flagz lists them all. */
export function allFlags(): Array<{ name: string; kind: FlagKind; defaultText: string }> {
  const implemented = IMPLEMENTED.map((f) => ({ name: f.name, kind: f.kind, defaultText: f.defaultText ?? zeroText(f.kind) }));
  const others = NOT_IMPLEMENTED.map((f) => ({ name: f.name, kind: f.kind, defaultText: f.accepts }));
  return [...implemented, ...others].sort((a, b) => (a.name < b.name ? -1 : 1));
}

function zeroText(kind: FlagKind): string {
  return { string: '', bool: 'false', int: '0', float: '0', duration: '0s', strings: '[]', gates: '', version: 'false' }[kind];
}

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
      const known = NOT_IMPLEMENTED_BY_NAME.get(name);
      if (!def && known) {
        // Parsed as upstream would, then held to its default.
        const inlineOrNext = inline ?? (known.kind === 'bool' ? 'true' : argv[++i]);
        if (inlineOrNext === undefined) throw new ConfigError(`--${name}`, `flag needs an argument: --${name}`);
        if (!atDefault(known, inlineOrNext)) throw notImplemented(`--${name}`, `only its default ${JSON.stringify(known.accepts)} is accepted`);
        continue;
      }
      // The caller says how to get help: a hint here would be printed twice.
      if (!def) throw new ConfigError(`--${name}`, `unknown flag --${name}`);
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
      // pflag's NoOptDefVal: "--version" alone means true.
      if (def.kind === 'bool' || def.kind === 'version') {
        text = 'true';
      } else {
        if (i + 1 >= argv.length) throw new ConfigError(display, `flag needs an argument: ${display}`);
        text = argv[++i];
      }
    }
    const value = convert(def, display, text);
    // pflag's StringSlice appends, and MapStringBool merges, when the flag is repeated.
    const prev = values.get(def.name);
    if (Array.isArray(prev) && Array.isArray(value)) values.set(def.name, [...prev, ...value]);
    else if (def.kind === 'gates' && prev) values.set(def.name, { ...(prev as Record<string, boolean>), ...(value as Record<string, boolean>) });
    else values.set(def.name, value);
  }
  const extra = positional.filter((a) => a !== '');
  if (extra.length > 0) {
    throw new ConfigError(extra[0], `kproxy does not take any arguments, got ${JSON.stringify(extra)}`);
  }
  return { values };
}

/** A not-implemented flag's value means the same as upstream's default. */
function atDefault(f: NotImplementedFlag, text: string): boolean {
  switch (f.kind) {
    case 'bool':
      return parseGoBool(text) === parseGoBool(f.accepts);
    case 'int':
    case 'float':
      return text.trim() !== '' && Number(text) === Number(f.accepts);
    case 'duration':
      try {
        return parseGoDuration(text) === parseGoDuration(f.accepts);
      } catch {
        return false;
      }
    default:
      return text === f.accepts;
  }
}

function convert(def: FlagDef, display: string, text: string): FlagValue {
  switch (def.kind) {
    case 'string':
      return text;
    case 'version': {
      // component-base's verflag: true, false or raw (a "vX.Y.Z" override is upstream's too, not kproxy's).
      if (text === 'raw') return 'raw';
      const b = parseGoBool(text);
      if (b === undefined) throw new ConfigError(display, `invalid value "${text}"; accepted: true, false or raw`);
      return b ? 'true' : 'false';
    }
    case 'gates':
      return parseGates(display, text);
    case 'float':
      if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) throw new ConfigError(display, `invalid value "${text}"; accepted: a number`);
      return Number(text);
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

/** component-base's MapStringBool: "A=true,B=false" (spaces around items allowed). */
function parseGates(display: string, text: string): Record<string, boolean> {
  const out: Record<string, boolean> = {};
  for (const item of text.split(',')) {
    const pair = item.trim();
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq < 0) throw new ConfigError(display, `malformed pair, expect string=bool: ${JSON.stringify(pair)}`);
    const name = pair.slice(0, eq).trim();
    const value = parseGoBool(pair.slice(eq + 1).trim());
    if (value === undefined) throw new ConfigError(display, `invalid value of ${name}: ${JSON.stringify(pair.slice(eq + 1))}; accepted: true or false`);
    out[name] = value;
  }
  return out;
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

/** The commands, as `kproxy help` lists them. */
export const COMMANDS: ReadonlyArray<[string, string]> = [
  ['(none)', 'run the proxy (the flags below; kube-proxy\'s)'],
  ['plan', 'print the rules kproxy would program, without touching the kernel'],
  ['trace', 'say what the rules do to one new connection, and why'],
  ['status', 'show a running kproxy\'s Services, endpoints and syncs'],
  ['help', 'show the help of kproxy or of one command'],
];

/** The flags section of a help text. */
export function flagsUsage(): string {
  const lines: string[] = [];
  for (const f of IMPLEMENTED) {
    const names = f.short ? `-${f.short}, --${f.name}` : `    --${f.name}`;
    const arg = f.kind === 'bool' ? '' : f.kind === 'version' ? '[=raw]' : f.kind === 'gates' ? ' mapStringBool' : ` ${f.kind}`;
    const dflt = f.defaultText && f.defaultText !== 'false' ? ` (default ${f.defaultText})` : '';
    lines.push(`  ${(names + arg).padEnd(40)} ${f.usage}${dflt}`);
  }
  lines.push('', 'Recognised kube-proxy flags that kproxy accepts at their default only (any other value is refused):');
  const known = NOT_IMPLEMENTED.map((n) => `--${n.name}${n.kind === 'bool' ? '' : `=${n.accepts === '' ? '""' : n.accepts}`}`);
  lines.push(...wrap(known.join(' '), 100).map((l) => `  ${l}`));
  lines.push('', 'With --config, the other flags are ignored except -v, --logging-format, --hostname-override, --master, --cleanup,',
    '--init-only, --write-config-to and --manifests (as kube-proxy does).');
  return lines.join('\n') + '\n';
}

/** The --help text. */
export function usage(): string {
  const lines = [
    'kproxy: a Kubernetes service proxy compatible with kube-proxy (nftables, iptables, ipvs and userspace modes).',
    '',
    'Usage:',
    '  kproxy [flags]',
    '  kproxy <command> [flags]',
    '',
    'Commands:',
    ...COMMANDS.map(([name, what]) => `  ${name.padEnd(8)} ${what}`),
    '',
    "Run 'kproxy help <command>' or 'kproxy <command> --help' for a command's own flags.",
    '',
    'Flags:',
  ];
  return `${lines.join('\n')}\n${flagsUsage()}`;
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
