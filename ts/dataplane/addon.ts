// The only module that loads the native addon. It wraps NftDataplane in the
// Dataplane contract and turns "[CODE] message" errors into DataplaneError.
import { createRequire } from 'node:module';
import type { Dataplane, IPFamily, SyncReport, SyncRequest } from './types.js';
import { encodeUpserts } from './wire.js';

export class DataplaneError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'DataplaneError';
  }
}

export function toDataplaneError(e: unknown): DataplaneError {
  const msg = e instanceof Error ? e.message : String(e);
  const m = /^\[([A-Z_]+)\] ([\s\S]*)$/.exec(msg);
  return m ? new DataplaneError(m[1], m[2]) : new DataplaneError('E_UNKNOWN', msg);
}

interface NativeDataplane {
  sync(req: { full: boolean; upserts: string; deletes: string[]; explain?: boolean }): Promise<NftSyncReport>;
  render(): string;
  fakeDump(): string;
  fakeDeleteTable(): void;
  cleanup(): Promise<void>;
}

interface NativeModule {
  NftDataplane: new (opts: {
    family: string;
    clusterCidr?: string;
    masqueradeAll?: boolean;
    masqueradeBit?: number;
    fake?: boolean;
  }) => NativeDataplane;
}

let native: NativeModule | undefined;

export function loadAddon(): NativeModule {
  if (!native) {
    const require = createRequire(import.meta.url);
    try {
      native = require('../../native/index.cjs') as NativeModule;
    } catch (e) {
      throw new DataplaneError(
        'E_ADDON_MISSING',
        `the kproxy dataplane addon is not built (${(e as Error).message.split('\n')[0]}); run: npm run build`,
      );
    }
  }
  return native;
}

export interface NftDataplaneOptions {
  family: IPFamily;
  clusterCIDR?: string;
  masqueradeAll?: boolean;
  masqueradeBit?: number;
  /** In-memory nf_tables with kernel semantics, for tests and `plan`. */
  fake?: boolean;
}

export type NftSyncReport = SyncReport & { planMs: number; commitMs: number; text?: string | null };

export class NftDataplane implements Dataplane {
  readonly family: IPFamily;
  private readonly dp: NativeDataplane;

  constructor(opts: NftDataplaneOptions) {
    this.family = opts.family;
    const { NftDataplane: Native } = loadAddon();
    try {
      this.dp = new Native({
        family: opts.family,
        clusterCidr: opts.clusterCIDR,
        masqueradeAll: opts.masqueradeAll,
        masqueradeBit: opts.masqueradeBit,
        fake: opts.fake,
      });
    } catch (e) {
      throw toDataplaneError(e);
    }
  }

  async sync(req: SyncRequest): Promise<NftSyncReport> {
    const { text, rejected } = encodeUpserts(req.upserts);
    let report: NftSyncReport;
    try {
      report = await this.dp.sync({ full: req.full, upserts: text, deletes: req.deletes, explain: req.explain });
    } catch (e) {
      throw toDataplaneError(e);
    }
    if (rejected.length > 0) report.rejected = [...rejected, ...report.rejected];
    return report;
  }

  render(): string {
    return this.dp.render();
  }

  /** Contents of the fake backend (empty when programming the kernel). */
  fakeDump(): string {
    return this.dp.fakeDump();
  }

  fakeDeleteTable(): void {
    this.dp.fakeDeleteTable();
  }

  async cleanup(): Promise<void> {
    try {
      await this.dp.cleanup();
    } catch (e) {
      throw toDataplaneError(e);
    }
  }
}
