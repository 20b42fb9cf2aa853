// The k8s bench's cluster: N Services × M endpoints as API objects, the backends that answer
// for every endpoint address, the io.mjs driver processes, and /proc readings of a proxy.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { REPO_ROOT, type NsProcess, type Topology } from '../../../ts/demo/topology.js';

export const NAMESPACE = 'bench';

/** ClusterIPs from 10.96.1.0 up (10.96.0.1 is the apiserver's own `kubernetes` Service). */
export const serviceIP = (i: number) => `10.96.${1 + (i >> 8)}.${i & 255}`;

/**
 * Backend b (1 or 2) answers for every address of 10.(128+16(b-1)).0.0/12: a local route for
 * the whole range in its namespace (any address in it is its own), so 100k endpoints need
 * 100k addresses but no interface has them.
 */
export const backendRange = (b: number) => `10.${128 + 16 * (b - 1)}.0.0/12`;

export function endpointIP(b: number, svc: number, ep: number): string {
  const n = svc * 16 + ep;
  return `10.${128 + 16 * (b - 1) + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
}

export async function routeBackendRanges(topo: Topology): Promise<void> {
  for (const [k, b] of topo.backends.slice(0, 2).entries()) {
    await topo.exec(b.ns, ['ip', 'route', 'add', 'local', backendRange(k + 1), 'dev', 'lo']);
    await topo.exec(topo.node, ['ip', 'route', 'add', backendRange(k + 1), 'via', b.v4]);
  }
}

export function service(i: number): object {
  const ip = serviceIP(i);
  return {
    apiVersion: 'v1', kind: 'Service',
    metadata: { name: `svc-${i}`, namespace: NAMESPACE },
    spec: { type: 'ClusterIP', clusterIP: ip, clusterIPs: [ip], ipFamilies: ['IPv4'], ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }] },
  };
}

/** Service i's one slice, every endpoint on backend b; trigger time as the endpointslice controller writes it. */
export function slice(i: number, endpoints: number, b: number): object {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: {
      name: `svc-${i}-x`, namespace: NAMESPACE,
      labels: { 'kubernetes.io/service-name': `svc-${i}`, 'endpointslice.kubernetes.io/managed-by': 'kproxy-bench' },
      annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': new Date().toISOString() },
    },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: Array.from({ length: endpoints }, (_, e) => ({ addresses: [endpointIP(b, i, e)], conditions: { ready: true } })),
  };
}

export const slicePath = (i?: number) => `/apis/discovery.k8s.io/v1/namespaces/${NAMESPACE}/endpointslices${i === undefined ? '' : `/svc-${i}-x`}`;
export const servicePath = () => `/api/v1/namespaces/${NAMESPACE}/services`;

/** An io.mjs process in a namespace: commands in, one answer per command out. */
export interface Io {
  call(cmd: Record<string, unknown>): Promise<any>;
  process: NsProcess;
}

export async function startIo(topo: Topology, ns: string): Promise<Io> {
  const child = topo.spawnIn(ns, 'node', [join(REPO_ROOT, 'tests/k8s/bench/io.mjs')]);
  const waiting = new Map<number, (answer: any) => void>();
  let ready: () => void;
  const isReady = new Promise<void>((r) => (ready = r));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const answer = JSON.parse(line);
    if (answer.ready) return ready();
    waiting.get(answer.id)?.(answer);
    waiting.delete(answer.id);
  });
  void child.exited.then(() => {
    for (const w of waiting.values()) w({ error: `io.mjs in ${ns} exited: ${child.output().slice(-500)}` });
  });
  await isReady;
  let seq = 0;
  return {
    process: child,
    call(cmd) {
      const id = ++seq;
      return new Promise((resolve, reject) => {
        waiting.set(id, (a) => (a.error ? reject(new Error(`${cmd.op}: ${a.error}`)) : resolve(a)));
        child.stdin!.write(`${JSON.stringify({ ...cmd, id })}\n`);
      });
    },
  };
}

const TICK = 100; // USER_HZ: /proc's clock ticks per second on Linux

/** CPU seconds of a process, with its reaped children (upstream's `nft` runs). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the ")" of the command name: utime is the 12th, then stime, cutime, cstime.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / TICK;
}

export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

export function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** A Prometheus histogram's buckets, count and sum from a text page. */
export function histogram(text: string, name: string): { buckets: Map<number, number>; count: number; sum: number } {
  const buckets = new Map<number, number>();
  let count = 0;
  let sum = 0;
  for (const line of text.split('\n')) {
    const value = Number(line.trim().split(/\s+/).pop());
    if (line.startsWith(`${name}_bucket{`)) {
      const le = /le="([^"]+)"/.exec(line)?.[1];
      const bound = le === '+Inf' ? Infinity : Number(le);
      // Summed over label sets (kproxy's per-family histograms).
      if (le !== undefined) buckets.set(bound, (buckets.get(bound) ?? 0) + value);
    } else if (line.startsWith(`${name}_count`)) count += value;
    else if (line.startsWith(`${name}_sum`)) sum += value;
  }
  return { buckets, count, sum };
}

/** The bucket bound below which a fraction q of the observations between two scrapes fell. */
export function histogramQuantile(before: ReturnType<typeof histogram>, after: ReturnType<typeof histogram>, q: number): number {
  const n = after.count - before.count;
  if (n <= 0) return NaN;
  for (const le of [...after.buckets.keys()].sort((a, b) => a - b)) {
    if ((after.buckets.get(le) ?? 0) - (before.buckets.get(le) ?? 0) >= q * n) return le;
  }
  return Infinity;
}
