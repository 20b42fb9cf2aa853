// A tiny protobuf writer for tests: builds the bytes kube-apiserver would send (gogo writes
// every non-pointer field, zeros included), and malformed ones it never would.

export type Value = string | number | boolean | Buffer | Msg;
/** Fields in order: [number, value]; a message nests as Msg, bytes as Buffer. */
export type Msg = { fields: [number, Value][] };

export const m = (...fields: [number, Value][]): Msg => ({ fields });

export function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n < 0 ? 2n ** 64n + BigInt(n) : BigInt(n);
  do {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v > 0n ? b | 0x80 : b);
  } while (v > 0n);
  return Buffer.from(out);
}

const delimited = (field: number, body: Buffer) => Buffer.concat([varint((field << 3) | 2), varint(body.length), body]);

export function encode(msg: Msg): Buffer {
  const parts: Buffer[] = [];
  for (const [field, v] of msg.fields) {
    if (typeof v === 'string') parts.push(delimited(field, Buffer.from(v, 'utf8')));
    else if (typeof v === 'number') parts.push(varint(field << 3), varint(v));
    else if (typeof v === 'boolean') parts.push(varint(field << 3), varint(v ? 1 : 0));
    else if (Buffer.isBuffer(v)) parts.push(delimited(field, v));
    else parts.push(delimited(field, encode(v)));
  }
  return Buffer.concat(parts);
}

/** magic + runtime.Unknown {typeMeta {apiVersion, kind}, raw, contentEncoding, contentType}. */
export function envelope(apiVersion: string, kind: string, raw: Buffer): Buffer {
  return Buffer.concat([Buffer.from('k8s\0', 'latin1'), encode(m([1, m([1, apiVersion], [2, kind])], [2, raw], [3, ''], [4, '']))]);
}

/** A watch frame: 4-byte big-endian length, then WatchEvent {type, object {raw: envelope}}. */
export function watchFrame(type: string, object: Buffer): Buffer {
  const ev = encode(m([1, type], [2, m([1, object])]));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(ev.length);
  return Buffer.concat([len, ev]);
}
