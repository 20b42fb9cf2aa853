// Starts a source before its consumer exists: what it delivers meanwhile is kept and replayed,
// in order, to the handler that attaches later, and a tap sees every event as it arrives.
// The CLI uses it when the proxiers can only be built from an object (NodeCIDR: the Node).
import type { EventType, Kind, KubeObject, ProxyEvent, Source, SourceHandler } from './types.js';

export type SourceTap = (kind: Kind, type: EventType, obj: KubeObject, old?: KubeObject) => void;

export class EarlySource implements Source {
  private handler?: SourceHandler;
  private queue: ((h: SourceHandler) => void)[] = [];
  private started?: Promise<void>;

  constructor(
    private readonly inner: Source,
    private readonly tap?: SourceTap,
  ) {}

  /** Starts the inner source now; its events wait for start(). */
  begin(): Promise<void> {
    this.started ??= this.inner.start({
      onEvent: (kind, type, obj, old) => {
        this.tap?.(kind, type, obj, old);
        this.deliver((h) => h.onEvent(kind, type, obj, old));
      },
      onSynced: () => this.deliver((h) => h.onSynced()),
      onInvalid: (kind, reason, ref) => this.deliver((h) => h.onInvalid(kind, reason, ref)),
    });
    return this.started;
  }

  async start(handler: SourceHandler): Promise<void> {
    this.handler = handler;
    const queued = this.queue;
    this.queue = [];
    for (const call of queued) this.call(handler, call);
    await this.begin();
  }

  stop(): Promise<void> {
    return this.inner.stop();
  }

  recordEvent(event: ProxyEvent): Promise<void> {
    return this.inner.recordEvent?.(event) ?? Promise.resolve();
  }

  private deliver(call: (h: SourceHandler) => void): void {
    if (this.handler) this.call(this.handler, call);
    else this.queue.push(call);
  }

  /** The handler reports its own trouble; one throwing call must not lose the rest. */
  private call(h: SourceHandler, call: (h: SourceHandler) => void): void {
    try {
      call(h);
    } catch {
      // swallowed, as the sources do with their handlers
    }
  }
}
