// An agent on a scripted source and real nftables-mode proxiers on the addon's in-memory
// backend, recording every SyncRequest: what the agent hands a proxier, checked in tests.
import pino from 'pino';
import { Registry } from 'prom-client';
import { Agent, type AgentOptions } from '../../ts/agent.js';
import { loadConfig } from '../../ts/config/index.js';
import type { IPFamily } from '../../ts/model/types.js';
import { createProxiers } from '../../ts/proxier/registry.js';
import type { LocalDetector, Proxier, SyncReport, SyncRequest, TracePacket, TraceResult } from '../../ts/proxier/types.js';
import type { EventType, Kind, KubeObject, ProxyEvent, Source, SourceHandler } from '../../ts/sources/types.js';

export class ScriptedSource implements Source {
  handler?: SourceHandler;
  readonly events: ProxyEvent[] = [];
  async start(h: SourceHandler): Promise<void> {
    this.handler = h;
  }
  async stop(): Promise<void> {}
  async recordEvent(e: ProxyEvent): Promise<void> {
    this.events.push(e);
  }
  emit(kind: Kind, type: EventType, obj: KubeObject, old?: KubeObject): void {
    this.handler!.onEvent(kind, type, obj, old);
  }
}

export class RecordingProxier implements Proxier {
  readonly seen: SyncRequest[] = [];
  constructor(readonly inner: Proxier) {}
  get mode() {
    return this.inner.mode;
  }
  get family() {
    return this.inner.family;
  }
  get features() {
    return this.inner.features;
  }
  sync(req: SyncRequest): Promise<SyncReport> {
    this.seen.push(req);
    return this.inner.sync(req);
  }
  render(): string {
    return this.inner.render();
  }
  explain(p: TracePacket): TraceResult {
    return this.inner.explain(p);
  }
  cleanup(): Promise<void> {
    return this.inner.cleanup();
  }
}

export interface ScriptedAgent {
  agent: Agent;
  source: ScriptedSource;
  proxiers: Map<IPFamily, RecordingProxier>;
  /** Starts the agent, runs `initial` (the objects listed before the sync), marks the source synced and waits for the first sync. */
  start(initial?: () => void): Promise<void>;
  /** Runs `change` and waits for the sync it triggers. */
  synced(change: () => void): Promise<void>;
}

export async function scriptedAgent(
  flags: string[] = [],
  opts: Partial<Omit<AgentOptions, 'config' | 'logger' | 'source' | 'proxiers'>> & { families?: IPFamily[]; localDetectors?: Partial<Record<IPFamily, LocalDetector>> } = {},
): Promise<ScriptedAgent> {
  const config = loadConfig(['--manifests', '/unused', '--hostname-override', 'node-a', '--metrics-bind-address=', '--healthz-bind-address=',
    '--iptables-min-sync-period', '0s', '--iptables-sync-period', '1h', ...flags]);
  const logger = pino({ level: 'silent' });
  const registry = opts.registry ?? new Registry();
  const { families = ['IPv4', 'IPv6'], localDetectors, ...rest } = opts;
  const list = await createProxiers('nftables', families, { localDetectors, masqueradeAll: false, masqueradeBit: 14, fake: true, registry, logger });
  const proxiers = new Map(list.map((p) => [p.family, new RecordingProxier(p)]));
  const source = new ScriptedSource();
  const agent = new Agent({ config, logger, source, proxiers: [...proxiers.values()], registry, ...rest });
  return {
    agent,
    source,
    proxiers,
    async start(initial) {
      await agent.start();
      initial?.();
      const first = agent.nextSync();
      source.handler!.onSynced();
      await first;
    },
    async synced(change) {
      const next = agent.nextSync();
      change();
      await next;
    },
  };
}
