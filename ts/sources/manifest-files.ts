// Reading one file of the --manifests directory without trusting it: the directory may hold
// anything (a 1 GB file, a FIFO, a device, a symlink loop, a file still being written, a name
// that is not UTF-8). Each outcome other than `ok` is a reason to skip the file this round.

import { constants } from 'node:fs';
import { open, stat } from 'node:fs/promises';

/** Above any single API object (etcd's 1.5 MiB request limit); parsing 2 MiB of YAML peaks near 100 MB. */
export const MAX_FILE_BYTES = 2 * 1024 * 1024;
/** What all files together may hold: the parsed objects stay in memory. */
export const MAX_TOTAL_BYTES = 32 * 1024 * 1024;
/** Manifest-named entries read per scan; those after the first ones in name order are skipped. */
export const MAX_FILES = 20_000;

export type ReadResult =
  | { kind: 'ok'; text: string; size: number }
  | { kind: 'gone' }
  /** Reported as kproxy_invalid_objects_total{kind="File",reason}. */
  | { kind: 'skip'; reason: SkipReason; detail: string }
  /** Size or times differed before and after the read: a writer was busy. */
  | { kind: 'torn' };

export type SkipReason = 'too-large' | 'not-a-regular-file' | 'symlink-loop' | 'read-error' | 'not-utf8';

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true });

/** The name as UTF-8, or undefined when its bytes are not valid UTF-8. */
export function decodeName(name: Buffer): string | undefined {
  try {
    return fatalUtf8.decode(name);
  } catch {
    return undefined;
  }
}

/** A name fit for a log line: valid UTF-8 as is, anything else as escaped bytes. */
export function printableName(name: Buffer): string {
  return [...name].map((b) => (b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`)).join('');
}

function errnoSkip(err: unknown): ReadResult {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'gone' };
  if (code === 'ELOOP') return { kind: 'skip', reason: 'symlink-loop', detail: 'too many levels of symbolic links' };
  return { kind: 'skip', reason: 'read-error', detail: String(code ?? err) };
}

function kindOf(st: { isFile(): boolean; isDirectory(): boolean; isFIFO(): boolean; isSocket(): boolean }): string {
  return st.isDirectory() ? 'directory' : st.isFIFO() ? 'FIFO' : st.isSocket() ? 'socket' : 'device or other';
}

/** `beforeRead` is for tests: it runs between the open file's stat and its read, as a writer might. */
export async function readManifestFile(path: string, maxBytes = MAX_FILE_BYTES, beforeRead?: () => Promise<void> | void): Promise<ReadResult> {
  // stat follows symlinks (ConfigMap volumes are symlinks); the kernel's ELOOP bounds a loop.
  // Nothing but a regular file is opened, so a FIFO cannot block and a device is not touched.
  let st;
  try {
    st = await stat(path, { bigint: true });
  } catch (err) {
    return errnoSkip(err);
  }
  if (!st.isFile()) return { kind: 'skip', reason: 'not-a-regular-file', detail: kindOf(st) };
  if (st.size > BigInt(maxBytes)) return { kind: 'skip', reason: 'too-large', detail: `${st.size} bytes, cap ${maxBytes}` };
  let fh;
  try {
    // O_NONBLOCK: if the path was swapped for a FIFO since the stat, open still returns.
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    return errnoSkip(err);
  }
  try {
    const before = await fh.stat({ bigint: true });
    if (!before.isFile()) return { kind: 'skip', reason: 'not-a-regular-file', detail: kindOf(before) };
    if (before.size > BigInt(maxBytes)) return { kind: 'skip', reason: 'too-large', detail: `${before.size} bytes, cap ${maxBytes}` };
    // One byte more than the cap: a file growing past it is caught without trusting stat.
    await beforeRead?.();
    const buf = Buffer.alloc(Math.min(Number(before.size), maxBytes) + 1);
    let n = 0;
    for (;;) {
      if (n === buf.length) {
        if (n > maxBytes) return { kind: 'skip', reason: 'too-large', detail: `more than ${maxBytes} bytes, cap ${maxBytes}` };
        return { kind: 'torn' }; // grew while read, still under the cap: read it again later
      }
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    const after = await fh.stat({ bigint: true });
    if (after.size !== before.size || after.mtimeNs !== before.mtimeNs || after.ctimeNs !== before.ctimeNs || BigInt(n) !== after.size) {
      return { kind: 'torn' };
    }
    let text: string;
    try {
      text = fatalUtf8.decode(buf.subarray(0, n));
    } catch {
      return { kind: 'skip', reason: 'not-utf8', detail: 'content is not valid UTF-8' };
    }
    return { kind: 'ok', text, size: n };
  } catch (err) {
    return errnoSkip(err);
  } finally {
    await fh.close().catch(() => undefined);
  }
}
