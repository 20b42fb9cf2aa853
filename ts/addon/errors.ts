// The addon's error catalogue. Rust sends {"code","errno","message"} as the error
// message (crates/kproxy-proxier/src/error.rs); this turns it back into fields.
// tests/fixtures/error-codes.txt lists the codes both sides must know.

export const ERROR_CODES = [
  'E_INVALID_OPTION',
  'E_WIRE_VERSION',
  'E_NETLINK_IO',
  'E_KERNEL_REJECTED',
  'E_GENERATION_CHANGED',
  'E_BATCH_OVERSIZE',
  'E_NO_ACK',
  'E_PANIC',
  'E_INTERNAL',
] as const;

/** Codes raised on the TS side of the boundary only. */
export type LocalCode = 'E_ADDON_MISSING' | 'E_UNKNOWN';
export type ErrorCode = (typeof ERROR_CODES)[number] | LocalCode;

export class ProxierError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** The kernel's errno, when the kernel refused something. */
    readonly errno?: number,
  ) {
    super(message);
    this.name = 'ProxierError';
  }
}

const KNOWN: ReadonlySet<string> = new Set(ERROR_CODES);

/** Any error thrown by the addon, as a ProxierError. */
export function fromAddonError(e: unknown): ProxierError {
  if (e instanceof ProxierError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  try {
    const j = JSON.parse(msg) as { code?: unknown; errno?: unknown; message?: unknown };
    if (typeof j.code === 'string' && KNOWN.has(j.code) && typeof j.message === 'string') {
      return new ProxierError(j.code as ErrorCode, j.message, typeof j.errno === 'number' ? j.errno : undefined);
    }
  } catch {
    // Not the catalogue's JSON: an error from napi-rs itself (e.g. a wrong argument type).
  }
  return new ProxierError('E_UNKNOWN', msg);
}
