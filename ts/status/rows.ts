// ServicePorts → status rows: what the model asks for, next to what the family's proxier
// last programmed. Pure functions of their inputs, so tables of cases test them.
import { externallyAccessible, hasAnyEndpoints } from '../model/endpoint-selection.js';
import type { IPFamily, ServicePort } from '../model/types.js';
import { sameServicePort } from '../tracker/change-tracker.js';
import type { EndpointCounts, ProgramState, ServiceStatus } from './types.js';

/** What one family's proxier holds, as the recorder saw its syncs. */
export interface FamilyProgram {
  /** Every ServicePort in the rules after the last successful sync, with that sync's time. */
  synced: ReadonlyMap<string, { sp: ServicePort; at: number }>;
  /** Keys the proxier refused in the syncs that hold now, with its reason. */
  refused: ReadonlyMap<string, string>;
  /** The error of the last attempt, when it failed. */
  failed?: string;
}

/** How the proxiers' reports (crates/kproxy-proxier desired.rs) word a port programmed without an address. */
const PARTLY_PROGRAMMED = /programmed without it/;

/** Upstream's ServicePortName.String(): the port name after a colon, only when there is one. */
export function servicePortName(sp: Pick<ServicePort, 'namespace' | 'name' | 'portName'>): string {
  return `${sp.namespace}/${sp.name}${sp.portName ? `:${sp.portName}` : ''}`;
}

export function endpointCounts(sp: ServicePort): EndpointCounts {
  let ready = 0;
  let terminating = 0;
  let local = 0;
  for (const e of sp.endpoints) {
    if (e.ready) ready++;
    if (e.terminating) terminating++;
    if (e.isLocal) local++;
  }
  return { total: sp.endpoints.length, ready, terminating, local, cluster: sp.clusterEndpoints.length, localUsable: sp.localEndpoints.length };
}

/** The state of a ServicePort its proxier has programmed as it is now (no pending change). */
function programmedState(sp: ServicePort): { state: ProgramState; detail: string } {
  if (!hasAnyEndpoints(sp)) return { state: 'no-endpoints', detail: 'no endpoints: new connections are rejected' };
  // As the rules do: a Local policy with no local endpoint drops that traffic, though some exist.
  const drops: string[] = [];
  if (sp.localEndpoints.length === 0) {
    if (sp.internalPolicyLocal) drops.push('internal');
    if (sp.externalPolicyLocal && externallyAccessible(sp)) drops.push('external');
  }
  if (!sp.internalPolicyLocal && sp.clusterEndpoints.length === 0) drops.push('cluster');
  return { state: 'programmed', detail: drops.length ? `${drops.join(' and ')} traffic dropped: no endpoint for its policy on this node` : '' };
}

function programming(sp: ServicePort, program: FamilyProgram | undefined): ServiceStatus['programmed'] {
  const refused = program?.refused.get(sp.key);
  const held = program?.synced.get(sp.key);
  if (refused !== undefined && held && sameServicePort(held.sp, sp)) {
    // A mode can program a port without one address another port holds (nftables: an external
    // IP:port is the holder's); its report says so, and the port is in the rules all the same.
    // When the holder lets go, the address is handed over without a new report: hence "then".
    if (PARTLY_PROGRAMMED.test(refused)) return { state: 'programmed', detail: `at that sync: ${refused}`, at: held.at };
    return { state: 'refused', detail: refused, at: held.at };
  }
  if (!held || !sameServicePort(held.sp, sp)) {
    if (program?.failed !== undefined) return { state: 'failed', detail: `the last sync failed: ${program.failed}`, at: held?.at };
    return { state: 'pending', detail: held ? 'changed since the last sync' : 'not synced yet', at: held?.at };
  }
  return { ...programmedState(sp), at: held.at };
}

export function serviceStatus(sp: ServicePort, program: FamilyProgram | undefined): ServiceStatus {
  return {
    service: servicePortName(sp),
    namespace: sp.namespace,
    name: sp.name,
    portName: sp.portName,
    protocol: sp.protocol,
    family: sp.family,
    type: sp.type,
    clusterIP: sp.clusterIP,
    port: sp.port,
    nodePort: sp.nodePort,
    externalIPs: [...sp.externalIPs],
    loadBalancerIPs: [...sp.loadBalancerVIPs],
    loadBalancerSourceRanges: [...sp.loadBalancerSourceRanges],
    healthCheckNodePort: sp.healthCheckNodePort,
    endpoints: endpointCounts(sp),
    policy: {
      internal: sp.internalPolicyLocal ? 'Local' : 'Cluster',
      external: externallyAccessible(sp) ? (sp.externalPolicyLocal ? 'Local' : 'Cluster') : '',
      affinity: sp.sessionAffinity,
      affinityTimeoutSeconds: sp.sessionAffinity === 'ClientIP' ? sp.stickyMaxAgeSeconds : 0,
      trafficDistribution: sp.trafficDistribution,
    },
    programmed: programming(sp, program),
  };
}

const FAMILY_ORDER: Record<IPFamily, number> = { IPv4: 0, IPv6: 1 };

function compareRows(a: ServiceStatus, b: ServiceStatus): number {
  if (a.service !== b.service) return a.service < b.service ? -1 : 1;
  if (a.protocol !== b.protocol) return a.protocol < b.protocol ? -1 : 1;
  return FAMILY_ORDER[a.family] - FAMILY_ORDER[b.family];
}

/** One row per desired ServicePort and family, sorted by service, protocol, family. */
export function serviceRows(desired: ReadonlyMap<IPFamily, readonly ServicePort[]>, programs: ReadonlyMap<IPFamily, FamilyProgram>): ServiceStatus[] {
  const rows: ServiceStatus[] = [];
  for (const [family, sps] of desired) {
    const program = programs.get(family);
    for (const sp of sps) rows.push(serviceStatus(sp, program));
  }
  return rows.sort(compareRows);
}
