// Each command's own help text (`kproxy help <command>`, `kproxy <command> --help`).
import { flagsUsage, usage } from '../config/index.js';
import { TRACE_USAGE } from '../trace.js';

export function planUsage(): string {
  return `Usage: kproxy plan [flags]

Prints the rules kproxy would program on this node, as the mode's canonical text (nft -f
for nftables mode, iptables-restore input for iptables mode, ...), one block per IP family,
without touching the kernel: no root needed. Features of a Service that the mode does not
program are listed first, as "# warning:" lines (and logged on stderr).

It reads the objects as the proxy does: --manifests DIR, or the API server (--kubeconfig,
--master), and takes the proxy's flags below (--proxy-mode, --cluster-cidr, --config, ...).
Logs go to stderr.

Example:
  kproxy plan --manifests examples/demo --cluster-cidr 10.244.0.0/16

Flags:
${flagsUsage()}`;
}

export function traceUsage(): string {
  return `Usage: ${TRACE_USAGE}

Says what the rules kproxy would program do to one new connection, and why: the Service it
reaches, every endpoint the load balancing may pick, masquerading, and the rules passed.
In-memory, as plan: nothing touches the kernel. nftables mode only.

Trace's own flags:
  --from IP               the client's address
  --to IP:PORT[/PROTO]    the destination; TCP unless /UDP or /SCTP; IPv6 in brackets
  --from-node             the connection starts on the node itself (output path)
  --local-cidrs CIDR,...  prefixes this node delivers to itself (default none)
  --json                  the answer as JSON

And the proxy's flags, to load the objects (--manifests, --kubeconfig, --cluster-cidr, ...):
${flagsUsage()}`;
}

export function helpUsage(): string {
  return `Usage: kproxy help [command]

Shows kproxy's help, or one command's: plan, trace, status, help.
`;
}

/** `kproxy help [command]`'s text; undefined for an unknown command. */
export async function helpFor(command: string | undefined): Promise<string | undefined> {
  switch (command) {
    case undefined:
    case 'run':
      return usage();
    case 'plan':
      return planUsage();
    case 'trace':
      return traceUsage();
    case 'help':
      return helpUsage();
    case 'status':
      return (await import('../status/command.js')).statusUsage();
    default:
      return undefined;
  }
}
