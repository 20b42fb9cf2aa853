// Structural equality of parsed, JSON-shaped values (plain objects, arrays, primitives).
// The tracker compares what it holds instead of hashing it: the previous version is still
// in memory, so a digest would cost CPU on every event and save nothing.

export function jsonEqual(a: unknown, b: unknown, skipKey?: string): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  let na = 0;
  for (const k in ra) {
    if (k === skipKey || ra[k] === undefined) continue;
    na++;
    if (!jsonEqual(ra[k], rb[k])) return false;
  }
  let nb = 0;
  for (const k in rb) if (k !== skipKey && rb[k] !== undefined) nb++;
  return na === nb;
}
