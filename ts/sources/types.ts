// What every source (Kubernetes API, manifests directory) delivers to the agent.
// Objects are plain JSON as the API server serves them (apiVersion/kind/metadata/spec...).

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
}

export interface Source {
  start(handler: SourceHandler): Promise<void>;
  stop(): Promise<void>;
}
