// A private set of network namespaces that looks like one Kubernetes node:
//
//   client (192.168.100.2, fd00:100::2) ──eth0──to-client── node ──to-b<i>──eth0── backend-<i>
//                                 node: 192.168.100.1, fd00:100::1 / 10.244.<i>.1, fd00:244:0:<i>::1
//                                 backend i: 10.244.<i>.2/24, fd00:244:0:<i>::2/64
// Backends sit inside the cluster CIDRs 10.244.0.0/16 and fd00:244::/48 (a /64 per link, as a
// node's pod range would be); the client sits outside them.
//
// The node routes (forwarding on, no default route, the Service ranges local: SERVICE_CIDRS);
// client and backends route everything via the node. Each backend runs responder.mjs, which
// answers with its name and the peer address it saw; requests go out through client.mjs run
// inside the sending namespace. Used by the demo and the netns tests; destroy() removes it all.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { systemTool } from '../system-tools.js';

export { systemTool };
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const CLUSTER_CIDRS = ['10.244.0.0/16', 'fd00:244::/48'];
/**
 * The node routes the Service ranges to itself (local routes): traffic to a ClusterIP that
 * nothing DNATs meets the node's own closed ports and fails at once (refused), where a node
 * with no route at all would answer "unreachable" before kproxy's filter chains ever see it.
 */
export const SERVICE_CIDRS = ['10.96.0.0/16', 'fd00:96::/64'];
export const CLIENT_LINK = { clientV4: '192.168.100.2', clientV6: 'fd00:100::2', nodeV4: '192.168.100.1', nodeV6: 'fd00:100::1' };

export interface Backend {
  /** What the responder calls itself, e.g. "backend-1". */
  name: string;
  ns: string;
  v4: string;
  v6: string;
  /** The node's own addresses on this backend's link: what a masqueraded flow shows. */
  nodeV4: string;
  nodeV6: string;
}

export function backendAddresses(i: number): Omit<Backend, 'ns'> {
  return { name: `backend-${i}`, v4: `10.244.${i}.2`, v6: `fd00:244:0:${i}::2`, nodeV4: `10.244.${i}.1`, nodeV6: `fd00:244:0:${i}::1` };
}

export type FlowError = 'refused' | 'reset' | 'timeout' | 'unreachable' | (string & {});
/** One request's outcome. body is "<backend> from <peer>", split into backend and source. */
/** retried: how many resends a UDP request needed (RequestOptions.attempts). */
export type FlowResult = { ok: true; body: string; backend: string; source: string; retried?: number } | { ok: false; error: FlowError };

export interface RequestOptions {
  timeoutMs?: number;
  /** Batch calls only: how many requests (each a new connection / new socket) and the pause between. */
  count?: number;
  intervalMs?: number;
  /** UDP only: sends per request on the same socket, each waiting timeoutMs (default 1). */
  attempts?: number;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Return a non-zero exit instead of throwing. */
  allowFailure?: boolean;
  input?: string;
}

/** A child running in a namespace; its output is drained and kept (tail) for diagnostics. */
export type NsProcess = ChildProcess & { output(): string; exited: Promise<number | null> };

/** A TCP connection held open in the responder's echo mode. */
export interface HeldConnection {
  greeting: FlowResult;
  echo(line: string, timeoutMs?: number): Promise<string>;
  close(): Promise<void>;
}

export interface TopologyOptions {
  backends: number;
  /** Ports each backend's responder listens on. Default: TCP 8080, UDP 8053. */
  ports?: { tcp?: number[]; udp?: number[] };
  /** Goes into the namespace names, to tell leftovers apart. */
  name?: string;
}

export interface Topology {
  /** Common prefix of every namespace this topology made. */
  prefix: string;
  node: string;
  client: string;
  backends: Backend[];
  namespaces(): string[];
  exec(ns: string, cmd: string[], opts?: ExecOptions): Promise<ExecResult>;
  spawnIn(ns: string, cmd: string, args: string[], opts?: { stdio?: 'pipe' | 'inherit' }): NsProcess;
  tcpRequest(fromNs: string, ip: string, port: number, opts?: RequestOptions): Promise<FlowResult>;
  tcpRequests(fromNs: string, ip: string, port: number, opts?: RequestOptions): Promise<FlowResult[]>;
  udpRequest(fromNs: string, ip: string, port: number, opts?: RequestOptions): Promise<FlowResult>;
  udpRequests(fromNs: string, ip: string, port: number, opts?: RequestOptions): Promise<FlowResult[]>;
  holdTcp(fromNs: string, ip: string, port: number, opts?: RequestOptions): Promise<HeldConnection>;
  destroy(): Promise<void>;
}

/** The repository root, from ts/demo or dist/demo alike: spawned `node --import tsx` resolves from here. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

// tsc does not copy .mjs files into dist/, so fall back to the sources.
function demoScript(file: string): string {
  const sibling = fileURLToPath(new URL(`./${file}`, import.meta.url));
  return existsSync(sibling) ? sibling : join(REPO_ROOT, 'ts', 'demo', file);
}

/** Runs a command on the host (outside any namespace). */
export function run(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(systemTool(cmd), args, { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const result = { code: code ?? -1, stdout, stderr };
      if (result.code !== 0 && !opts.allowFailure) {
        reject(new Error(`${cmd} ${args.join(' ')} exited ${result.code}: ${stderr.trim() || stdout.trim()}`));
      } else resolve(result);
    });
    child.stdin.on('error', () => {}); // a command that exits before reading its input
    child.stdin.end(opts.input ?? '');
  });
}

/** Thrown from a waitFor check to stop waiting at once (say, the process being waited on died). */
export class GiveUp extends Error {}

export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false,
  { timeoutMs = 30_000, intervalMs = 200 } = {}): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      if (err instanceof GiveUp) throw err;
      lastError = err;
    }
    if (Date.now() > deadline) {
      const detail = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

type RawFlow = { ok: boolean; body?: string; error?: string; retried?: number };

export function parseFlow(raw: RawFlow): FlowResult {
  if (!raw.ok) return { ok: false, error: raw.error ?? 'unknown' };
  const body = raw.body ?? '';
  const match = /^(\S+) from (\S+)$/.exec(body);
  return { ok: true, body, backend: match?.[1] ?? '?', source: match?.[2] ?? '?', ...(raw.retried ? { retried: raw.retried } : {}) };
}

/** Namespaces on this host whose names start with prefix (to check nothing was left behind). */
export async function listNamespaces(prefix: string): Promise<string[]> {
  const { stdout } = await run('ip', ['netns', 'list']);
  return stdout.split('\n').map((line) => line.split(' ')[0]).filter((name) => name && name.startsWith(prefix));
}

// Safety net: if the process exits without destroy() (a crash, a test timeout), still delete.
const live = new Set<{ namespaces: string[]; children: Set<ChildProcess> }>();
process.once('exit', () => {
  for (const topo of live) {
    for (const child of topo.children) child.kill('SIGKILL');
    for (const ns of topo.namespaces) spawnSync(systemTool('ip'), ['netns', 'del', ns]);
  }
});

export async function createTopology(opts: TopologyOptions): Promise<Topology> {
  const prefix = `kp-${opts.name ?? 'topo'}-${randomBytes(3).toString('hex')}`;
  const node = `${prefix}-node`;
  const client = `${prefix}-client`;
  const backends: Backend[] = Array.from({ length: opts.backends }, (_, k) => ({ ...backendAddresses(k + 1), ns: `${prefix}-b${k + 1}` }));
  const tcpPorts = opts.ports?.tcp ?? [8080];
  const udpPorts = opts.ports?.udp ?? [8053];
  const state = { namespaces: [] as string[], children: new Set<ChildProcess>() };
  live.add(state);

  const exec = (ns: string, cmd: string[], execOpts?: ExecOptions) =>
    run('ip', ['netns', 'exec', ns, systemTool(cmd[0]), ...cmd.slice(1)], execOpts);
  const ip = (ns: string, ...args: string[]) => run('ip', ['-n', ns, ...args]);

  function spawnIn(ns: string, cmd: string, args: string[], spawnOpts: { stdio?: 'pipe' | 'inherit' } = {}): NsProcess {
    const child = spawn(systemTool('ip'), ['netns', 'exec', ns, systemTool(cmd), ...args], {
      cwd: REPO_ROOT,
      // Own process group: a terminal's Ctrl-C reaches only the parent, which then tears down in order.
      detached: true,
      stdio: spawnOpts.stdio === 'inherit' ? ['ignore', 'inherit', 'inherit'] : ['pipe', 'pipe', 'pipe'],
    });
    let tail = '';
    const keep = (chunk: Buffer) => (tail = (tail + chunk.toString('utf8')).slice(-256 * 1024));
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.stdin?.on('error', () => {});
    state.children.add(child);
    const exited = new Promise<number | null>((resolve) => {
      child.on('exit', (code) => resolve(code));
      child.on('error', () => resolve(null));
    });
    void exited.then(() => state.children.delete(child));
    return Object.assign(child, { output: () => tail, exited });
  }

  async function requests(mode: 'tcp' | 'udp', fromNs: string, host: string, port: number, o: RequestOptions = {}) {
    const spec = { mode, host, port, count: o.count ?? 1, timeoutMs: o.timeoutMs ?? 2000, intervalMs: o.intervalMs ?? 0, attempts: o.attempts ?? 1 };
    const { stdout } = await exec(fromNs, ['node', demoScript('client.mjs'), JSON.stringify(spec)]);
    return (JSON.parse(stdout).results as RawFlow[]).map(parseFlow);
  }

  async function holdTcp(fromNs: string, host: string, port: number, o: RequestOptions = {}): Promise<HeldConnection> {
    const child = spawnIn(fromNs, 'node', [demoScript('client.mjs'), JSON.stringify({ mode: 'hold', host, port, timeoutMs: o.timeoutMs ?? 2000 })]);
    const events: any[] = [];
    const waiters: ((event: any) => void)[] = [];
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const event = JSON.parse(line);
      const waiter = waiters.shift();
      if (waiter) waiter(event);
      else events.push(event);
    });
    void child.exited.then(() => waiters.splice(0).forEach((w) => w({ event: 'closed' })));
    const next = (timeoutMs: number) => new Promise<any>((resolve) => {
      if (events.length) return resolve(events.shift());
      if (child.exitCode !== null) return resolve({ event: 'closed' });
      const waiter = (event: any) => (clearTimeout(timer), resolve(event));
      // A waiter that timed out leaves the queue, so a late event goes to the next one that asks.
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(waiter), 1);
        resolve({ event: 'error', error: 'timeout' });
      }, timeoutMs);
      waiters.push(waiter);
    });
    const first = await next((o.timeoutMs ?? 2000) + 5000);
    const greeting = first.event === 'open' ? parseFlow({ ok: true, body: first.body }) : parseFlow({ ok: false, error: first.error ?? first.event });
    return {
      greeting,
      async echo(line, timeoutMs = 2000) {
        child.stdin!.write(`${line}\n`);
        const event = await next(timeoutMs);
        if (event.event !== 'echo') throw new Error(`held connection: ${event.error ?? event.event}`);
        return event.line;
      },
      async close() {
        child.stdin!.end();
        await Promise.race([child.exited, new Promise((resolve) => setTimeout(resolve, 2000))]);
        child.kill('SIGKILL');
      },
    };
  }

  let destroying: Promise<void> | undefined;
  async function destroy(): Promise<void> {
    destroying ??= (async () => {
      const children = [...state.children];
      for (const child of children) child.kill('SIGTERM');
      await Promise.race([Promise.all(children.map((c) => (c as NsProcess).exited)), new Promise((r) => setTimeout(r, 2000))]);
      for (const child of state.children) child.kill('SIGKILL');
      const failures: string[] = [];
      for (const ns of state.namespaces) {
        // Anything else still inside (stray exec'd commands) would keep the namespace alive.
        const pids = await run('ip', ['netns', 'pids', ns], { allowFailure: true });
        for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
          try { process.kill(Number(pid), 'SIGKILL'); } catch { /* already gone */ }
        }
        const del = await run('ip', ['netns', 'del', ns], { allowFailure: true });
        if (del.code !== 0 && !/No such file/.test(del.stderr)) failures.push(`${ns}: ${del.stderr.trim()}`);
      }
      live.delete(state);
      if (failures.length) throw new Error(`could not delete namespaces: ${failures.join('; ')}`);
    })();
    return destroying;
  }

  const topology: Topology = {
    prefix, node, client, backends,
    namespaces: () => [...state.namespaces],
    exec, spawnIn, holdTcp, destroy,
    tcpRequest: async (fromNs, host, port, o) => (await requests('tcp', fromNs, host, port, { ...o, count: 1 }))[0],
    tcpRequests: (fromNs, host, port, o) => requests('tcp', fromNs, host, port, o),
    udpRequest: async (fromNs, host, port, o) => (await requests('udp', fromNs, host, port, { ...o, count: 1 }))[0],
    udpRequests: (fromNs, host, port, o) => requests('udp', fromNs, host, port, o),
  };

  try {
    for (const ns of [node, client, ...backends.map((b) => b.ns)]) {
      await run('ip', ['netns', 'add', ns]);
      state.namespaces.push(ns);
      await ip(ns, 'link', 'set', 'lo', 'up');
      // DAD off before any link exists, so v6 addresses (link-local too) work at once; no ICMP
      // rate limit, so every rejected packet is answered and shows up as "refused", not a timeout.
      await exec(ns, ['sysctl', '-q', '-w', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0',
        'net.ipv4.icmp_ratelimit=0', 'net.ipv6.icmp.ratelimit=0']);
    }
    const links = [
      { ns: client, nodeIf: 'to-client', v4: CLIENT_LINK.clientV4, v6: CLIENT_LINK.clientV6, nodeV4: CLIENT_LINK.nodeV4, nodeV6: CLIENT_LINK.nodeV6 },
      ...backends.map((b, k) => ({ ns: b.ns, nodeIf: `to-b${k + 1}`, v4: b.v4, v6: b.v6, nodeV4: b.nodeV4, nodeV6: b.nodeV6 })),
    ];
    for (const link of links) {
      await ip(node, 'link', 'add', link.nodeIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', link.ns);
      await ip(node, 'addr', 'add', `${link.nodeV4}/24`, 'dev', link.nodeIf);
      await ip(node, '-6', 'addr', 'add', `${link.nodeV6}/64`, 'dev', link.nodeIf, 'nodad');
      await ip(node, 'link', 'set', link.nodeIf, 'up');
      await ip(link.ns, 'addr', 'add', `${link.v4}/24`, 'dev', 'eth0');
      await ip(link.ns, '-6', 'addr', 'add', `${link.v6}/64`, 'dev', 'eth0', 'nodad');
      await ip(link.ns, 'link', 'set', 'eth0', 'up');
      await ip(link.ns, 'route', 'add', 'default', 'via', link.nodeV4);
      await ip(link.ns, '-6', 'route', 'add', 'default', 'via', link.nodeV6);
    }
    await exec(node, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
    for (const cidr of SERVICE_CIDRS) await ip(node, 'route', 'add', 'local', cidr, 'dev', 'lo');
    await Promise.all(backends.map((b) => startResponder(b)));
  } catch (err) {
    await destroy().catch(() => {});
    throw err;
  }
  return topology;

  async function startResponder(backend: Backend): Promise<void> {
    const args = [demoScript('responder.mjs'), '--name', backend.name,
      ...tcpPorts.flatMap((p) => ['--tcp', String(p)]), ...udpPorts.flatMap((p) => ['--udp', String(p)])];
    const child = spawnIn(backend.ns, 'node', args);
    await waitFor(`${backend.name}'s responder to listen`, () => {
      if (child.exitCode !== null) throw new GiveUp(`${backend.name}'s responder exited: ${child.output()}`);
      return /^ready$/m.test(child.output()); // a whole line: stderr's "already in use" must not count
    }, { timeoutMs: 15_000, intervalMs: 20 });
  }
}
