// What every source (Kubernetes API, manifests directory) delivers to the agent, and the
// Events the agent reports back through it. Objects are plain JSON as the API server
// serves them (apiVersion/kind/metadata/spec...).

export type Kind = 'Service' | 'EndpointSlice' | 'Node' | 'ServiceCIDR';
export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

// Loose JSON object shapes: validation happens in the tracker, not in the type system.
export type KubeObject = { apiVersion?: string; kind?: string; metadata?: any; spec?: any; [k: string]: any };

export interface SourceHandler {
  /** old is the previous version the source held (the source keeps it; informers give only the new one). */
  onEvent(kind: Kind, type: EventType, obj: KubeObject, old?: KubeObject): void;
  /** Called once both Services and EndpointSlices have been listed. No rules are programmed before. */
  onSynced(): void;
  /** An object the source could not even parse (bad YAML, not an object...). */
  onInvalid(kind: string, reason: string, ref: string): void;
  /** A resource ran out (file descriptors): counted in kproxy_resource_exhausted_total; the source retries. */
  onResourceExhausted?(resource: ExhaustedResource, component: string, ref: string): void;
}

export type ExhaustedResource = 'file_descriptors' | 'socket_buffer' | 'set_size';

/** The object an Event is about (events.k8s.io/v1 `regarding`). */
export interface ObjectRef {
  apiVersion: string;
  kind: string;
  name: string;
  /** Unset for cluster-scoped objects (the Event then lives in "default", as client-go does). */
  namespace?: string;
}

/** An Event as upstream's events.EventRecorder.Eventf takes it. */
export interface ProxyEvent {
  regarding: ObjectRef;
  type: 'Normal' | 'Warning';
  reason: string;
  action: string;
  note: string;
}

export interface Source {
  start(handler: SourceHandler): Promise<void>;
  stop(): Promise<void>;
  /** Reports an Event (the API source posts it, the manifests source logs it). Never rejects. */
  recordEvent?(event: ProxyEvent): Promise<void>;
}
