// Words and numbers shared by the terminal table and the page, so both say the same thing.
import type { ServiceStatus, SyncRecord } from './types.js';

/** 0.42 ms, 12.3 ms, 1.23 s, 2.0 min. */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)} s`;
  return `${(ms / 60_000).toFixed(1)} min`;
}

/** "3s ago", "5m ago", "2h ago", "4d ago"; "never" without a time. */
export function ago(at: number | undefined, now: number): string {
  if (at === undefined) return 'never';
  const s = Math.max(0, Math.round((now - at) / 1000));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  if (s < 172_800) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86_400)}d ago`;
}

/** An IP:port with IPv6 in brackets. */
export function hostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** One address a ServicePort answers on: its kind, the address ("*" for every NodePort address), the port. */
export interface Frontend {
  kind: 'ClusterIP' | 'NodePort' | 'ExternalIP' | 'LoadBalancer';
  address: string;
  port: string;
}

/** The ClusterIP first, then the NodePort, external IPs and LoadBalancer IPs, as cilium lists frontends. */
export function frontends(s: ServiceStatus): Frontend[] {
  const proto = s.protocol;
  const out: Frontend[] = [{ kind: 'ClusterIP', address: s.clusterIP, port: `${s.port}/${proto}` }];
  if (s.nodePort) out.push({ kind: 'NodePort', address: '*', port: `${s.nodePort}/${proto}` });
  for (const ip of s.externalIPs) out.push({ kind: 'ExternalIP', address: ip, port: `${s.port}/${proto}` });
  for (const ip of s.loadBalancerIPs) out.push({ kind: 'LoadBalancer', address: ip, port: `${s.port}/${proto}` });
  return out;
}

/** ready/terminating/local. */
export function endpointsCell(s: ServiceStatus): string {
  const e = s.endpoints;
  return `${e.ready}/${e.terminating}/${e.local}`;
}

/** "int:Cluster ext:Local ClientIP(10800s)": the traffic policies and affinity, short. */
export function policyCell(s: ServiceStatus): string {
  const p = s.policy;
  const parts = [`int:${p.internal}`];
  if (p.external) parts.push(`ext:${p.external}`);
  if (p.affinity === 'ClientIP') parts.push(`ClientIP(${p.affinityTimeoutSeconds}s)`);
  if (p.trafficDistribution) parts.push(p.trafficDistribution);
  if (s.loadBalancerSourceRanges.length) parts.push(`ranges:${s.loadBalancerSourceRanges.length}`);
  return parts.join(' ');
}

/** "programmed", "no-endpoints (reject)", ...: the state with what it means at a glance. */
export function programmedCell(s: ServiceStatus): string {
  const { state, detail } = s.programmed;
  if (state === 'no-endpoints') return 'no endpoints (reject)';
  if (state === 'programmed' && detail) return 'programmed (partly dropped)';
  return state;
}

/** "partial, 0.42 ms" or "full, 310 ms, FAILED: ...". */
export function syncSummary(r: SyncRecord): string {
  const base = `${r.full ? 'full' : 'partial'}, ${formatMs(r.durationMs)}`;
  return r.ok ? base : `${base}, FAILED: ${r.error ?? ''}`;
}
