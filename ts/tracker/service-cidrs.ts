// ServiceCIDR objects (networking.k8s.io/v1), validated as the API server does: spec.cidrs
// holds one or two CIDRs, at most one per family. Each family's proxier gets the union of
// that family's CIDRs over all objects (upstream's ServiceCIDRConfig), sorted.
import { parseCIDR } from '../model/ip.js';
import type { IPFamily } from '../model/types.js';
import type { EventType, KubeObject } from '../sources/types.js';
import { isObject, objectRef, type Issue, type OnInvalid } from './validate.js';

export interface ParsedServiceCIDR {
  /** metadata.name; undefined when the object is unusable. */
  name?: string;
  /** Canonical CIDRs; a bad entry is dropped (and reported), the others are kept. */
  cidrs: string[];
  issues: Issue[];
}

export function parseServiceCIDR(obj: unknown): ParsedServiceCIDR {
  const ref = objectRef(obj);
  const name = isObject(obj) && isObject(obj.metadata) && typeof obj.metadata.name === 'string' && obj.metadata.name !== '' ? obj.metadata.name : undefined;
  if (!isObject(obj) || name === undefined) return { cidrs: [], issues: [{ reason: isObject(obj) ? 'missing-field' : 'not-an-object', ref }] };
  const raw = isObject(obj.spec) ? obj.spec.cidrs : undefined;
  if (!Array.isArray(raw) || raw.length === 0) return { cidrs: [], issues: [{ reason: 'missing-field', ref: `${ref}#cidrs` }] };
  if (raw.length > 2) return { cidrs: [], issues: [{ reason: 'bad-field', ref: `${ref}#cidrs` }] };
  const issues: Issue[] = [];
  const byFamily = new Map<IPFamily, string>();
  raw.forEach((text, i) => {
    const c = parseCIDR(text);
    if (!c) issues.push({ reason: 'bad-cidr', ref: `${ref}#cidrs[${i}]` });
    else if (byFamily.has(c.family)) issues.push({ reason: 'wrong-family', ref: `${ref}#cidrs[${i}]` });
    else byFamily.set(c.family, c.cidr);
  });
  return { name, cidrs: [...byFamily.values()], issues };
}

export class ServiceCIDRTracker {
  private readonly byName = new Map<string, string[]>();

  constructor(private readonly onInvalid: OnInvalid) {}

  /** Applies one event; an unusable update leaves the last good version in force. */
  onEvent(type: EventType, obj: KubeObject, old?: KubeObject): void {
    if (type === 'DELETED') {
      const name = [obj, old].map((o) => (isObject(o) && isObject(o.metadata) ? o.metadata.name : undefined)).find((n) => typeof n === 'string');
      if (name === undefined) return this.onInvalid('ServiceCIDR', 'missing-field', objectRef(obj));
      this.byName.delete(name);
      return;
    }
    const parsed = parseServiceCIDR(obj);
    for (const i of parsed.issues) this.onInvalid('ServiceCIDR', i.reason, i.ref);
    if (parsed.name !== undefined && parsed.cidrs.length > 0) this.byName.set(parsed.name, parsed.cidrs);
  }

  /** The union of `family`'s CIDRs, sorted. */
  cidrs(family: IPFamily): string[] {
    const out = new Set<string>();
    for (const cidrs of this.byName.values()) for (const c of cidrs) if (parseCIDR(c)?.family === family) out.add(c);
    return [...out].sort();
  }
}
