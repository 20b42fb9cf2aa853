// `kproxy trace`: its own flags, and the answer printed for people (or as JSON).
import { isIP } from 'node:net';
import { ConfigError } from './config/errors.js';
import type { Protocol } from './model/types.js';
import type { TracePacket, TraceResult } from './proxier/types.js';
import { splitHostPort } from './server/address.js';

export interface TraceArgs {
  from: string;
  to: { host: string; port: number; protocol: Protocol };
  fromNode: boolean;
  /** --local-cidrs: prefixes this node delivers to itself (default none, as on a real node). */
  localCidrs: string[];
  json: boolean;
}

export const TRACE_USAGE = 'kproxy trace [flags] --from IP --to IP:PORT[/TCP|UDP|SCTP] [--from-node] [--local-cidrs CIDR,...] [--json]';

/** Takes trace's own flags out of argv; the rest are kproxy's usual flags (e.g. --manifests). */
export function parseTraceArgs(argv: string[]): { trace: TraceArgs; rest: string[] } {
  const rest: string[] = [];
  let from: string | undefined;
  let to: string | undefined;
  let fromNode = false;
  let json = false;
  let localCidrs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [name, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new ConfigError(name, `${name} needs a value (${TRACE_USAGE})`);
      return v;
    };
    if (name === '--from') from = value();
    else if (name === '--to') to = value();
    else if (name === '--local-cidrs') localCidrs = value().split(',').map((c) => c.trim()).filter(Boolean);
    else if (a === '--from-node') fromNode = true;
    else if (a === '--json') json = true;
    else rest.push(a);
  }
  if (!from || !isIP(from)) throw new ConfigError('--from', `--from must be an IP address (${TRACE_USAGE})`);
  if (!to) throw new ConfigError('--to', `--to is required (${TRACE_USAGE})`);
  const [hostPort, proto = 'TCP'] = to.split('/');
  const protocol = proto.toUpperCase();
  if (protocol !== 'TCP' && protocol !== 'UDP' && protocol !== 'SCTP') throw new ConfigError('--to', `unknown protocol ${proto} (${TRACE_USAGE})`);
  let host: string;
  let port: number;
  try {
    const hp = splitHostPort(hostPort);
    host = hp.host;
    port = Number(hp.port);
  } catch {
    throw new ConfigError('--to', `--to must be IP:PORT, with IPv6 in brackets (${TRACE_USAGE})`);
  }
  if (!isIP(host) || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigError('--to', `--to must be IP:PORT, with IPv6 in brackets (${TRACE_USAGE})`);
  }
  if ((isIP(host) === 6) !== (isIP(from) === 6)) throw new ConfigError('--to', '--from and --to must be of the same IP family');
  return { trace: { from, to: { host, port, protocol }, fromNode, localCidrs, json }, rest };
}

function describe(o: TraceResult['outcomes'][number]): string {
  const masq = o.masquerade ? ', masqueraded' : ', source kept';
  switch (o.verdict) {
    case 'DNAT':
      return `DNAT to ${o.endpoint}${masq}`;
    case 'REJECT':
      return `REJECT (${o.rejectWith ?? 'reject'})`;
    case 'DROP':
      return 'DROP';
    default:
      return `ACCEPT (not a Service address; passed unchanged${o.masquerade ? ', masqueraded' : ''})`;
  }
}

/** The answer: which Service, which endpoint(s), and the rules that decided it. */
export function printTrace(p: TracePacket, r: TraceResult, json: boolean): string {
  if (json) return `${JSON.stringify(r, null, 2)}\n`;
  const dst = p.dst.includes(':') ? `[${p.dst}]` : p.dst;
  const lines = [`${p.src} → ${dst}:${p.port}/${p.protocol}${p.fromNode ? ' (from the node)' : ''}`];
  lines.push(`service: ${r.service ?? '(none)'}`);
  const n = r.outcomes.length;
  lines.push(n > 1 ? `outcome: one of ${n}, chosen at random per connection` : 'outcome:');
  for (const o of r.outcomes) lines.push(`  ${describe(o)}`);
  lines.push('why (the rules it passed):');
  for (const step of r.path) lines.push(`  ${step}`);
  return `${lines.join('\n')}\n`;
}
