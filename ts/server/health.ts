// The proxier's health, as upstream's ProxyHealthServer keeps it (pkg/proxy/healthcheck):
// per IP family, when rules were last synced and the oldest change still waiting. A family is
// unhealthy once a change has waited healthTimeout (2 × syncPeriod) or longer. /healthz also
// needs the node to be eligible: not being deleted, not tainted for deletion by the autoscaler.

import type { IPFamily } from '../model/types.js';
import { realClock, type Clock } from '../runner/clock.js';
import type { EventType } from '../sources/types.js';

export const TO_BE_DELETED_TAINT = 'ToBeDeletedByClusterAutoscaler';

/** The parts of a Node that eligibility reads. */
export interface NodeLike {
  metadata?: { name?: string; deletionTimestamp?: string | null } | null;
  spec?: { taints?: Array<{ key?: string } | null> | null } | null;
}

export interface FamilyHealth {
  lastUpdated: number;
  healthy: boolean;
}

export interface HealthSnapshot {
  healthy: boolean;
  /** The most recent update over all families; undefined before the first. */
  lastUpdated: number | undefined;
  currentTime: number;
  families: Map<IPFamily, FamilyHealth>;
}

export interface HealthResponse {
  code: 200 | 503;
  /** JSON, no trailing newline. */
  body: string;
}

export interface ProxyHealthOptions {
  syncPeriodMs: number;
  clock?: Clock;
}

export class ProxyHealth {
  readonly healthTimeoutMs: number;
  private readonly clock: Clock;
  private readonly lastUpdated = new Map<IPFamily, number>();
  private readonly oldestQueued = new Map<IPFamily, number>();
  // As upstream: eligible while starting and until a Node event says otherwise, so that
  // without any Node object (--manifests, no RBAC for nodes) /healthz still answers 200.
  private eligible = true;

  constructor(options: ProxyHealthOptions) {
    this.healthTimeoutMs = 2 * options.syncPeriodMs;
    this.clock = options.clock ?? realClock;
  }

  /** A change for `family` arrived and is not programmed yet; only the oldest one counts. */
  queued(family: IPFamily): void {
    if (!this.oldestQueued.has(family)) this.oldestQueued.set(family, this.clock.now());
  }

  /** Rules for `family` were synced successfully (also called when its sync loop starts). */
  updated(family: IPFamily): void {
    this.oldestQueued.delete(family);
    this.lastUpdated.set(family, this.clock.now());
  }

  /** Upstream's SyncNode: every Node event decides anew, from that version of the Node. */
  syncNode(node: NodeLike): void {
    this.eligible = isNodeEligible(node);
  }

  /**
   * One event of our Node (the caller filters by name). DELETED decides from the deleted
   * object's last state, as upstream's NodeEligibleHandler calls SyncNode on it; a bare DELETED
   * falls back to the previous version, and with neither nothing changes.
   */
  onNodeEvent(type: EventType, node: NodeLike | undefined, old?: NodeLike): void {
    const usable = (n: NodeLike | undefined): n is NodeLike => typeof n === 'object' && n !== null && typeof n.metadata === 'object' && n.metadata !== null;
    const target = usable(node) ? node : type === 'DELETED' && usable(old) ? old : undefined;
    if (target) this.syncNode(target);
  }

  nodeEligible(): boolean {
    return this.eligible;
  }

  /** Proxier health, without node eligibility (what /livez and service health checks use). */
  health(): HealthSnapshot {
    const now = this.clock.now();
    const families = new Map<IPFamily, FamilyHealth>();
    let healthy = true;
    let lastUpdated: number | undefined;
    for (const [family, updatedAt] of this.lastUpdated) {
      if (lastUpdated === undefined || updatedAt > lastUpdated) lastUpdated = updatedAt;
      const queuedAt = this.oldestQueued.get(family);
      // Healthy while starting up, when synced, or while a queued change is not late yet.
      const familyHealthy = queuedAt === undefined || now - queuedAt < this.healthTimeoutMs;
      if (!familyHealthy) healthy = false;
      families.set(family, { lastUpdated: updatedAt, healthy: familyHealthy });
    }
    return { healthy, lastUpdated, currentTime: now, families };
  }

  isHealthy(): boolean {
    return this.health().healthy;
  }

  /** The response of the health server's /healthz or /livez, byte for byte. */
  status(path: 'healthz' | 'livez'): HealthResponse {
    const snapshot = this.health();
    const eligible = path === 'healthz' ? this.nodeEligible() : undefined;
    const ok = snapshot.healthy && eligible !== false;
    // On success upstream reports lastUpdated as "now", as older releases did.
    const lastUpdated = ok ? snapshot.currentTime : snapshot.lastUpdated;
    // Key order follows upstream's struct; the status map is sorted (IPv4 before IPv6).
    const body: Record<string, unknown> = {
      lastUpdated: formatGoTime(lastUpdated),
      currentTime: formatGoTime(snapshot.currentTime),
    };
    if (eligible !== undefined) body.nodeEligible = eligible;
    body.healthy = snapshot.healthy;
    if (snapshot.families.size > 0) {
      const status: Record<string, unknown> = {};
      for (const family of [...snapshot.families.keys()].sort()) {
        const f = snapshot.families.get(family) as FamilyHealth;
        status[family] = { lastUpdated: formatGoTime(f.lastUpdated), healthy: f.healthy };
      }
      body.status = status;
    }
    return { code: ok ? 200 : 503, body: JSON.stringify(body) };
  }
}

/** Not being deleted and not tainted ToBeDeletedByClusterAutoscaler. */
export function isNodeEligible(node: NodeLike): boolean {
  if (node.metadata?.deletionTimestamp) return false;
  const taints = node.spec?.taints;
  return !(Array.isArray(taints) && taints.some((t) => t?.key === TO_BE_DELETED_TAINT));
}

/**
 * Go's time.Time JSON form (RFC3339Nano, in UTC): fraction trimmed of trailing zeros,
 * "0001-01-01T00:00:00Z" for the zero time (undefined).
 */
export function formatGoTime(ms: number | undefined): string {
  if (ms === undefined) return '0001-01-01T00:00:00Z';
  let seconds = Math.floor(ms / 1000);
  let nanos = Math.round((ms - seconds * 1000) * 1e6);
  if (nanos >= 1e9) {
    seconds += 1;
    nanos -= 1e9;
  }
  const base = new Date(seconds * 1000).toISOString().slice(0, 19);
  const fraction = nanos === 0 ? '' : `.${String(nanos).padStart(9, '0').replace(/0+$/, '')}`;
  return `${base}${fraction}Z`;
}
