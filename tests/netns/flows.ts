// Packet-flow tables for the netns suites: (from namespace, to ip:port, protocol) -> expected
// backend set or error, plus how the backend must see the source address.
import type { ExecutionContext } from 'ava';
import { isIPv6 } from 'node:net';
import { splitHostPort } from '../../ts/server/address.js';
import {
  CLIENT_LINK, createTopology, listNamespaces, type FlowError, type FlowResult, type Topology, type TopologyOptions,
} from '../../ts/demo/topology.js';

export type Proto = 'tcp' | 'udp';

export interface Flow {
  /** 'client' or a backend's name, e.g. 'backend-2'. */
  from: string;
  /** 'ip:port', with IPv6 in brackets: '[fd00:96::10]:80'. */
  to: string;
  proto: Proto;
  /** Backends allowed to answer, or the error every attempt must end in. */
  expect: string[] | FlowError;
  /** masqueraded: the backend sees the node's address on its own link; kept: it sees the sender's address. */
  source?: 'masqueraded' | 'kept';
  /** Attempts (each a new connection or socket). Default 1. */
  count?: number;
  timeoutMs?: number;
}

export const ALL_BACKENDS = (n: number) => Array.from({ length: n }, (_, k) => `backend-${k + 1}`);

/** A topology that is always destroyed when the test ends, pass or fail. */
export async function topologyFor(t: ExecutionContext, opts: TopologyOptions): Promise<Topology> {
  const topo = await createTopology(opts);
  t.teardown(async () => {
    await topo.destroy();
    const left = await listNamespaces(topo.prefix);
    if (left.length) throw new Error(`namespaces left behind: ${left.join(', ')}`);
  });
  return topo;
}

/** A flow's "ip:port" / "[ip6]:port" destination, parsed as the servers parse addresses. */
export function destination(to: string): { host: string; port: number } {
  const { host, port } = splitHostPort(to);
  return { host, port: Number(port) };
}

export function namespaceOf(topo: Topology, who: string): string {
  if (who === 'client') return topo.client;
  if (who === 'node') return topo.node;
  const backend = topo.backends.find((b) => b.name === who);
  if (!backend) throw new Error(`no such endpoint namespace ${who}`);
  return backend.ns;
}

/** The address a flow from `who` leaves with, before any NAT. */
export function senderAddress(topo: Topology, who: string, v6: boolean): string {
  if (who === 'client') return v6 ? CLIENT_LINK.clientV6 : CLIENT_LINK.clientV4;
  const backend = topo.backends.find((b) => b.name === who)!;
  return v6 ? backend.v6 : backend.v4;
}

export async function runFlow(topo: Topology, flow: Flow): Promise<FlowResult[]> {
  const { host, port } = destination(flow.to);
  const opts = { count: flow.count ?? 1, timeoutMs: flow.timeoutMs ?? 2000 };
  const ns = namespaceOf(topo, flow.from);
  return flow.proto === 'tcp' ? topo.tcpRequests(ns, host, port, opts) : topo.udpRequests(ns, host, port, opts);
}

/** What a flow did, in the shape of its expectation, so a mismatch prints as a readable diff. */
export function outcome(topo: Topology, flow: Flow, results: FlowResult[]): { answered: string[] | string; sources?: string } {
  const errors = [...new Set(results.filter((r) => !r.ok).map((r) => (r as { error: string }).error))];
  const answered = [...new Set(results.flatMap((r) => (r.ok ? [r.backend] : [])))].sort();
  if (typeof flow.expect === 'string') return { answered: errors.length === 1 && !answered.length ? errors[0] : [...answered, ...errors] };
  if (errors.length) return { answered: [...answered, ...errors.map((e) => `error:${e}`)] };
  // Answers within the allowed set print as that set: only a stray backend shows up as a difference.
  const expectedAnswered = answered.every((b) => flow.expect.includes(b)) ? [...flow.expect].sort() : answered;
  if (!flow.source) return { answered: expectedAnswered };
  const v6 = isIPv6(destination(flow.to).host);
  const wrong = results.filter((r) => {
    if (!r.ok) return false;
    const backend = topo.backends.find((b) => b.name === r.backend);
    const want = flow.source === 'kept' ? senderAddress(topo, flow.from, v6) : v6 ? backend?.nodeV6 : backend?.nodeV4;
    return r.source !== want;
  });
  return { answered: expectedAnswered, sources: wrong.length ? `unexpected: ${wrong.map((r) => (r as any).body).join('; ')}` : flow.source };
}

export function expected(flow: Flow): { answered: string[] | string; sources?: string } {
  const answered = typeof flow.expect === 'string' ? flow.expect : [...flow.expect].sort();
  return flow.source && typeof flow.expect !== 'string' ? { answered, sources: flow.source } : { answered };
}

export function describeFlow(flow: Flow): string {
  return `${flow.from} -> ${flow.to}/${flow.proto}`;
}

/** Runs each row of a flow table and asserts its outcome. */
export async function checkFlows(t: ExecutionContext, topo: Topology, flows: Flow[]): Promise<void> {
  for (const flow of flows) {
    const results = await runFlow(topo, flow);
    t.deepEqual(outcome(topo, flow, results), expected(flow), describeFlow(flow));
  }
}

/** Answers per backend (and per error) over a batch. */
export function tally(results: FlowResult[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of results) {
    const key = r.ok ? r.backend : `error:${r.error}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}
