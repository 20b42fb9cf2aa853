// The Events kube-proxy records (cmd/kube-proxy/app/server.go, pkg/proxy/healthcheck), and the
// events.k8s.io/v1 object client-go's events recorder makes of one (tools/events).
import type { ObjectRef, ProxyEvent } from './types.js';

/** Upstream's reportingController: events.NewRecorder(scheme, "kube-proxy"). */
export const REPORTING_CONTROLLER = 'kube-proxy';

export function nodeRef(name: string): ObjectRef {
  return { apiVersion: 'v1', kind: 'Node', name };
}

export function serviceRef(namespace: string, name: string): ObjectRef {
  return { apiVersion: 'v1', kind: 'Service', namespace, name };
}

/** Upstream's birthCry: Normal "Starting", action "StartKubeProxy", on the Node. */
export function startingEvent(nodeName: string): ProxyEvent {
  return { regarding: nodeRef(nodeName), type: 'Normal', reason: 'Starting', action: 'StartKubeProxy', note: '' };
}

/** service_health.go: a healthCheckNodePort that could not be listened on. */
export function failedToStartServiceHealthcheckEvent(namespace: string, name: string, nodeName: string, port: number, err: string): ProxyEvent {
  return {
    regarding: serviceRef(namespace, name),
    type: 'Warning',
    reason: 'FailedToStartServiceHealthcheck',
    action: 'Listen',
    note: `node ${nodeName} failed to start healthcheck "${namespace}/${name}" on port ${port}: ${err}`,
  };
}

/** Events with this key are the same event again (client-go's getKey, without the note's args). */
export function isomorphicKey(e: ProxyEvent): string {
  const r = e.regarding;
  return JSON.stringify([r.apiVersion, r.kind, r.namespace ?? '', r.name, e.type, e.reason, e.action, e.note]);
}

/** metav1.MicroTime: RFC 3339 with microseconds. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export interface EventBodyOptions {
  nowMs: number;
  /** os.Hostname(): the recorder's reportingInstance is "kube-proxy-<hostname>". */
  hostname: string;
  /** Makes names unique within one millisecond. */
  seq: number;
}

/** The events.k8s.io/v1 Event that client-go's recorder posts for `e` (makeEvent). */
export function eventBody(e: ProxyEvent, o: EventBodyOptions): Record<string, unknown> {
  const nanos = BigInt(Math.floor(o.nowMs)) * 1_000_000n + BigInt(o.seq % 1_000_000);
  const regarding: Record<string, string> = { apiVersion: e.regarding.apiVersion, kind: e.regarding.kind, name: e.regarding.name };
  if (e.regarding.namespace) regarding.namespace = e.regarding.namespace;
  return {
    apiVersion: 'events.k8s.io/v1',
    kind: 'Event',
    metadata: { name: `${e.regarding.name}.${nanos.toString(16)}`, namespace: eventNamespace(e) },
    eventTime: microTime(o.nowMs),
    reportingController: REPORTING_CONTROLLER,
    reportingInstance: `${REPORTING_CONTROLLER}-${o.hostname}`,
    action: e.action,
    reason: e.reason,
    regarding,
    note: truncateBytes(e.note, NOTE_LIMIT_BYTES),
    type: e.type,
  };
}

/** The API server refuses longer notes (events.k8s.io validation). */
const NOTE_LIMIT_BYTES = 1024;

function truncateBytes(text: string, limit: number): string {
  const buf = Buffer.from(text, 'utf8');
  if (buf.length <= limit) return text;
  // Drop a partial trailing character rather than emit invalid UTF-8.
  return buf.subarray(0, limit).toString('utf8').replace(/\uFFFD$/, '');
}

/** The regarding object's namespace, or "default" for cluster-scoped ones. */
export function eventNamespace(e: ProxyEvent): string {
  return e.regarding.namespace || 'default';
}
