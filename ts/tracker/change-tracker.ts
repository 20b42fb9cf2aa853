// The change tracker: accumulates Service/EndpointSlice/Node events and hands the runner only
// what really changed since the last drain, per IP family (upstream's ServiceChangeTracker
// and EndpointsChangeTracker folded into one, since our ServicePorts carry their endpoints).

import type { EventType, Kind, KubeObject } from '../sources/types.js';
import { LABEL_TOPOLOGY_ZONE, type IPFamily, type NodeInfo, type ServicePort } from '../model/types.js';
import { jsonEqual } from './equal.js';
import { buildServicePorts, servicePortHeads } from './service-ports.js';
import { isObject, objectRef, parseEndpointSlice, parseService, type OnInvalid, type ServiceInfo, type SliceInfo } from './validate.js';

export interface ChangeTrackerOptions {
  families: IPFamily[];
  /** This node's name: marks local endpoints, matches node hints, selects our Node's events. */
  nodeName: string;
  onInvalid: OnInvalid;
  /** Trigger times older than this (epoch ms) are not latencies we caused; default: construction time. */
  startTime?: number;
}

export interface FamilyChanges {
  upserts: ServicePort[];
  deletes: string[];
}


const byKey = (a: ServicePort, b: ServicePort) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/** What decides "changed?" for a ServicePort handed out before. */
export function sameServicePort(a: ServicePort, b: ServicePort): boolean {
  return jsonEqual(a, b);
}

export class ChangeTracker {
  private readonly families: IPFamily[];
  private readonly nodeName: string;
  private readonly onInvalid: OnInvalid;
  private readonly startTime: number;
  /** Our Node's labels; empty until its first event and after it is deleted. */
  private nodeLabels: Record<string, string> = {};

  /** Current desired state, by "ns/name" of the Service (proxied Services only). */
  private readonly services = new Map<string, ServiceInfo>();
  private readonly slicesBySvc = new Map<string, Map<string, SliceInfo>>();
  /** "ns/sliceName" -> "ns/serviceName": a slice may be relabelled to another Service. */
  private readonly sliceOwner = new Map<string, string>();

  /** Services whose specs must be recomputed at the next drain. */
  private readonly dirty = new Set<string>();
  /** What each Service and slice was at the last drain, to count only real pending changes (metrics). */
  private readonly drainedSvc = new Map<string, ServiceInfo>();
  private readonly drainedSlice = new Map<string, SliceInfo>();
  private readonly pendingSvc = new Set<string>();
  private readonly pendingSlice = new Map<string, string>();
  /** Per Service, how many of its slices are pending (the metric counts Services). */
  private readonly pendingSlicesPerSvc = new Map<string, number>();
  private readonly triggerBySlice = new Map<string, number>();

  /** ServicePorts with internalTrafficPolicy Local and no local endpoint, per family (metrics). */
  private readonly noLocal = new Map<IPFamily, Set<string>>();
  /** The same for externalTrafficPolicy Local. */
  private readonly noLocalExternal = new Map<IPFamily, Set<string>>();
  /** What the last drain handed out: family -> service -> key -> spec. */
  private readonly applied = new Map<IPFamily, Map<string, Map<string, ServicePort>>>();
  private triggerTime: number | undefined;

  constructor(opts: ChangeTrackerOptions) {
    this.families = [...opts.families];
    this.nodeName = opts.nodeName;
    this.onInvalid = opts.onInvalid;
    this.startTime = opts.startTime ?? Date.now();
    for (const f of this.families) {
      this.applied.set(f, new Map());
      this.noLocal.set(f, new Set());
      this.noLocalExternal.set(f, new Set());
    }
  }

  onEvent(kind: Kind, type: EventType, obj: KubeObject, old?: KubeObject): void {
    try {
      if (kind === 'Service') this.onService(type, obj, old);
      else if (kind === 'EndpointSlice') this.onSlice(type, obj, old);
      else if (kind === 'Node') this.onNode(type, obj, old);
    } catch (err) {
      // Validation should make this unreachable; a bug must not take the agent down.
      this.onInvalid(kind, 'internal-error', `${objectRef(obj)}: ${(err as Error)?.message ?? err}`);
    }
  }

  /** ServicePorts with internalTrafficPolicy Local and no local endpoint, as of the last drain. */
  noLocalInternalEndpoints(family: IPFamily): number {
    return this.noLocal.get(family)?.size ?? 0;
  }

  /** ServicePorts with externalTrafficPolicy Local and no local endpoint, as of the last drain. */
  noLocalExternalEndpoints(family: IPFamily): number {
    return this.noLocalExternal.get(family)?.size ?? 0;
  }

  /** Services with a pending change that would alter their ServicePorts. */
  pendingServiceChanges(): number {
    return this.pendingSvc.size;
  }

  /** Services with at least one pending EndpointSlice change. */
  pendingEndpointChanges(): number {
    return this.pendingSlicesPerSvc.size;
  }

  /** What endpoint selection knows of this node. */
  get node(): NodeInfo {
    return { name: this.nodeName, labels: this.nodeLabels };
  }

  /** The earliest last-change-trigger-time of the slice changes in the last drain (epoch ms). */
  get lastDrainTriggerTime(): number | undefined {
    return this.triggerTime;
  }

  drain(): Map<IPFamily, FamilyChanges> {
    const out = new Map<IPFamily, FamilyChanges>();
    for (const family of this.families) {
      const changes: FamilyChanges = { upserts: [], deletes: [] };
      const perSvc = this.applied.get(family)!;
      for (const svcId of this.dirty) {
        const before = perSvc.get(svcId) ?? new Map<string, ServicePort>();
        const after = new Map<string, ServicePort>();
        for (const spec of this.compute(svcId, family)) {
          const prev = before.get(spec.key);
          // Unchanged: keep the object handed out before, so later comparisons stay one-sided.
          if (prev && sameServicePort(prev, spec)) after.set(spec.key, prev);
          else {
            after.set(spec.key, spec);
            changes.upserts.push(spec);
          }
        }
        for (const key of before.keys()) if (!after.has(key)) changes.deletes.push(key);
        const noLocal = this.noLocal.get(family)!;
        const noLocalExternal = this.noLocalExternal.get(family)!;
        for (const key of before.keys()) {
          noLocal.delete(key);
          noLocalExternal.delete(key);
        }
        // As upstream: only where the policy leaves none though some exist (the drop case).
        for (const [key, spec] of after) {
          const dropped = spec.localEndpoints.length === 0 && spec.clusterEndpoints.length > 0;
          if (dropped && spec.internalPolicyLocal) noLocal.add(key);
          if (dropped && spec.externalPolicyLocal) noLocalExternal.add(key);
        }
        if (after.size > 0) perSvc.set(svcId, after);
        else perSvc.delete(svcId);
      }
      changes.upserts.sort(byKey);
      changes.deletes.sort();
      out.set(family, changes);
    }

    let earliest: number | undefined;
    for (const sliceId of this.pendingSlice.keys()) {
      const t = this.triggerBySlice.get(sliceId);
      if (t !== undefined && (earliest === undefined || t < earliest)) earliest = t;
    }
    this.triggerTime = earliest;

    for (const svcId of this.pendingSvc) this.setDrained(this.drainedSvc, svcId, this.services.get(svcId));
    for (const sliceId of this.pendingSlice.keys()) this.setDrained(this.drainedSlice, sliceId, this.sliceInfo(sliceId));
    this.pendingSvc.clear();
    this.pendingSlice.clear();
    this.pendingSlicesPerSvc.clear();
    this.triggerBySlice.clear();
    this.dirty.clear();
    return out;
  }

  /** Everything currently desired in one family (including undrained changes), sorted by key. */
  all(family: IPFamily): ServicePort[] {
    const perSvc = this.applied.get(family);
    if (!perSvc) return [];
    const out: ServicePort[] = [];
    for (const [svcId, specs] of perSvc) {
      if (this.dirty.has(svcId)) continue;
      for (const spec of specs.values()) out.push(spec);
    }
    for (const svcId of this.dirty) out.push(...this.compute(svcId, family));
    return out.sort(byKey);
  }

  // --- events ---------------------------------------------------------------

  private onService(type: EventType, obj: KubeObject, old?: KubeObject): void {
    if (type === 'DELETED') {
      const id = this.identity(obj) ?? this.identity(old);
      if (!id) return this.onInvalid('Service', 'missing-field', objectRef(obj));
      this.services.delete(id);
      return this.touchService(id);
    }
    const parsed = parseService(obj);
    for (const i of parsed.issues) this.onInvalid('Service', i.reason, i.ref);
    // A malformed update is skipped: the last good version stays in force.
    if (!parsed.info && !parsed.skipped) return;
    const id = this.identity(obj)!;
    // A skipped Service (headless, another proxy's...) has no ServicePorts: as if deleted.
    if (parsed.info) this.services.set(id, parsed.info);
    else this.services.delete(id);
    this.touchService(id);
  }

  private onSlice(type: EventType, obj: KubeObject, old?: KubeObject): void {
    if (type === 'DELETED') {
      const id = this.identity(obj) ?? this.identity(old);
      if (!id) return this.onInvalid('EndpointSlice', 'missing-field', objectRef(obj));
      return this.removeSlice(id);
    }
    const parsed = parseEndpointSlice(obj);
    for (const i of parsed.issues) this.onInvalid('EndpointSlice', i.reason, i.ref);
    const info = parsed.info;
    if (!info) return;
    const sliceId = `${info.namespace}/${info.name}`;
    const svcId = `${info.namespace}/${info.serviceName}`;
    const prevOwner = this.sliceOwner.get(sliceId);
    if (prevOwner !== undefined && prevOwner !== svcId) this.removeSlice(sliceId);
    if (info.addressType === 'FQDN') return this.removeSlice(sliceId);
    let bucket = this.slicesBySvc.get(svcId);
    if (!bucket) this.slicesBySvc.set(svcId, (bucket = new Map()));
    bucket.set(info.name, info);
    this.sliceOwner.set(sliceId, svcId);
    this.touchSlice(sliceId, svcId);
    // As upstream: trigger times from before we started are not our latency.
    if (info.triggerTime !== undefined && info.triggerTime > this.startTime && this.pendingSlice.has(sliceId)) {
      const prev = this.triggerBySlice.get(sliceId);
      if (prev === undefined || info.triggerTime < prev) this.triggerBySlice.set(sliceId, info.triggerTime);
    }
  }

  /**
   * Only our Node's labels matter here (health reads the rest). A change of zone can change
   * every hinted Service's endpoints, so all are recomputed; the diff keeps only real changes.
   */
  private onNode(type: EventType, obj: KubeObject, old?: KubeObject): void {
    const node = type === 'DELETED' && !isObject(obj?.metadata) ? old : obj;
    const name = isObject(node) && isObject(node.metadata) ? node.metadata.name : undefined;
    if (typeof name !== 'string' || name === '') return this.onInvalid('Node', 'missing-field', objectRef(node));
    if (name !== this.nodeName) return;
    let labels: Record<string, string> = {};
    const raw = node!.metadata.labels;
    if (type !== 'DELETED' && raw !== undefined && raw !== null) {
      if (!isObject(raw)) this.onInvalid('Node', 'bad-field', `${name}#labels`);
      else {
        for (const [k, v] of Object.entries(raw)) {
          if (typeof v === 'string') labels[k] = v;
          else this.onInvalid('Node', 'bad-field', `${name}#labels.${k}`);
        }
      }
    }
    const zoneBefore = this.nodeLabels[LABEL_TOPOLOGY_ZONE];
    this.nodeLabels = labels;
    if (labels[LABEL_TOPOLOGY_ZONE] !== zoneBefore) for (const id of this.services.keys()) this.dirty.add(id);
  }

  private removeSlice(sliceId: string): void {
    const svcId = this.sliceOwner.get(sliceId);
    if (svcId === undefined) return;
    this.sliceOwner.delete(sliceId);
    const bucket = this.slicesBySvc.get(svcId);
    bucket?.delete(sliceId.slice(sliceId.indexOf('/') + 1));
    if (bucket && bucket.size === 0) this.slicesBySvc.delete(svcId);
    this.touchSlice(sliceId, svcId);
  }

  private touchService(svcId: string): void {
    this.dirty.add(svcId);
    if (this.sameService(this.services.get(svcId), this.drainedSvc.get(svcId))) this.pendingSvc.delete(svcId);
    else this.pendingSvc.add(svcId);
  }

  private touchSlice(sliceId: string, svcId: string): void {
    this.dirty.add(svcId);
    const now = this.sliceInfo(sliceId);
    const drained = this.drainedSlice.get(sliceId);
    const same = now === drained || (now !== undefined && drained !== undefined && jsonEqual(now, drained, 'triggerTime'));
    this.setPendingSlice(sliceId, same ? undefined : svcId);
  }

  private setPendingSlice(sliceId: string, svcId: string | undefined): void {
    const prev = this.pendingSlice.get(sliceId);
    if (prev === svcId) return;
    if (prev !== undefined) {
      const n = (this.pendingSlicesPerSvc.get(prev) ?? 1) - 1;
      if (n > 0) this.pendingSlicesPerSvc.set(prev, n);
      else this.pendingSlicesPerSvc.delete(prev);
      this.pendingSlice.delete(sliceId);
    }
    if (svcId !== undefined) {
      this.pendingSlice.set(sliceId, svcId);
      this.pendingSlicesPerSvc.set(svcId, (this.pendingSlicesPerSvc.get(svcId) ?? 0) + 1);
    }
  }

  // --- helpers --------------------------------------------------------------

  private compute(svcId: string, family: IPFamily): ServicePort[] {
    const svc = this.services.get(svcId);
    if (!svc) return [];
    const slices = [...(this.slicesBySvc.get(svcId)?.values() ?? [])];
    return buildServicePorts(svc, slices, family, this.node);
  }

  /** Only what shapes rules counts: the ServicePorts without endpoints, in every family. */
  private sameService(a: ServiceInfo | undefined, b: ServiceInfo | undefined): boolean {
    if (a === b) return true;
    if (!a || !b) return false;
    return this.families.every((f) => jsonEqual(servicePortHeads(a, f), servicePortHeads(b, f)));
  }

  private sliceInfo(sliceId: string): SliceInfo | undefined {
    const svcId = this.sliceOwner.get(sliceId);
    if (svcId === undefined) return undefined;
    return this.slicesBySvc.get(svcId)?.get(sliceId.slice(sliceId.indexOf('/') + 1));
  }

  private setDrained<T>(map: Map<string, T>, id: string, value: T | undefined): void {
    if (value === undefined) map.delete(id);
    else map.set(id, value);
  }

  private identity(obj: unknown): string | undefined {
    if (!isObject(obj) || !isObject(obj.metadata)) return undefined;
    const { namespace, name } = obj.metadata;
    if (typeof namespace !== 'string' || typeof name !== 'string' || !namespace || !name) return undefined;
    return `${namespace}/${name}`;
  }
}
