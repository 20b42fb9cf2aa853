// detectLocalMode NodeCIDR, as upstream's NodeManager (pkg/proxy/node.go): the proxiers are
// built from our Node's spec.podCIDRs, so the agent waits for them (5 minutes, then fails),
// and a later change ends the process so that its supervisor restarts it with the new ones.
import type { Logger } from 'pino';
import type { EventType, Kind, KubeObject } from '../sources/types.js';
import { isObject } from './validate.js';

/** Upstream waits this long for a PodCIDR to be allocated. */
export const POD_CIDR_WAIT_MS = 5 * 60_000;

export interface PodCIDRWatchOptions {
  nodeName: string;
  logger: Logger;
  /** Ends the process; injectable for tests. Default process.exit. */
  exit?: (code: number) => void;
}

function podCIDRsOf(node: unknown): string[] {
  const raw = isObject(node) && isObject(node.spec) ? node.spec.podCIDRs : undefined;
  return Array.isArray(raw) ? raw.filter((c): c is string => typeof c === 'string') : [];
}

export class PodCIDRWatch {
  private seen: string[] | undefined;
  /** What the proxiers were built from, once wait() resolved. */
  private committed: string[] | undefined;
  private waiter?: (cidrs: string[]) => void;

  constructor(private readonly opts: PodCIDRWatchOptions) {}

  /** A source event (the caller may pass every kind; only our Node counts). */
  onEvent(kind: Kind, type: EventType, obj: KubeObject): void {
    if (kind !== 'Node' || type === 'DELETED' || obj?.metadata?.name !== this.opts.nodeName) return;
    const cidrs = podCIDRsOf(obj);
    this.seen = cidrs;
    if (this.committed && JSON.stringify(cidrs) !== JSON.stringify(this.committed)) {
      this.opts.logger.error({ node: this.opts.nodeName, newPodCIDRs: cidrs, oldPodCIDRs: this.committed }, 'PodCIDRs changed for the node; exiting so kproxy restarts with them');
      (this.opts.exit ?? process.exit)(1);
      return;
    }
    if (cidrs.length > 0) this.waiter?.(cidrs);
  }

  /** Resolves with the Node's podCIDRs once it has some; rejects after timeoutMs. */
  wait(timeoutMs: number = POD_CIDR_WAIT_MS): Promise<string[]> {
    const commit = (cidrs: string[]) => {
      this.committed = cidrs;
      this.waiter = undefined;
      return cidrs;
    };
    if (this.seen && this.seen.length > 0) return Promise.resolve(commit(this.seen));
    this.opts.logger.info({ node: this.opts.nodeName, timeoutMs }, 'detectLocalMode NodeCIDR: waiting for the Node to have spec.podCIDRs');
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        const why = this.seen ? 'does not have any PodCIDR allocated' : 'was not found';
        reject(new Error(`detectLocalMode NodeCIDR: node "${this.opts.nodeName}" ${why} (waited ${timeoutMs / 1000}s)`));
      }, timeoutMs);
      this.waiter = (cidrs) => {
        clearTimeout(timer);
        resolve(commit(cidrs));
      };
    });
  }
}
