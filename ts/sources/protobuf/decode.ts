// A schema-driven decoder for the Kubernetes protobuf encoding (proto2, written by gogo-protobuf).
// It builds the same objects JSON.parse would, for the fields a schema names, and skips every
// other field by its length without reading it: managedFields, most of metadata and the parts
// of a Service no proxy reads are never decoded.
//
// JSON parity: the API's JSON omits zero values (omitempty) while gogo writes every non-pointer
// field, so a zero scalar is dropped unless the Go field is a pointer (`present`), where nil and
// zero differ (conditions.ready: false).

export class ProtoError extends Error {}

export type FieldKind = 'string' | 'int32' | 'bool' | 'message' | 'map';

export interface Field {
  name: string;
  kind: FieldKind;
  /** The submessage of a 'message' field. */
  message?: MessageSchema;
  repeated?: boolean;
  /** A Go pointer: set even when zero. */
  present?: boolean;
}

/** Field number → how to read it; numbers not listed are skipped. */
export type MessageSchema = Readonly<Record<number, Field>>;

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_BYTES = 2;
const WIRE_FIXED32 = 5;

type Utf8Sliceable = Buffer & { utf8Slice(start: number, end: number): string };

/** A cursor over buf[pos, end). */
export class Reader {
  constructor(
    readonly buf: Buffer,
    public pos: number,
    readonly end: number,
  ) {}

  /** An unsigned varint, exact up to 2^53 (int64 seconds and every length fit). */
  varint(): number {
    const { buf } = this;
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new ProtoError('varint runs past the end');
      const b = buf[this.pos++];
      result += (b & 0x7f) * scale;
      if (b < 0x80) return result;
      scale *= 128;
    }
    throw new ProtoError('varint longer than 10 bytes');
  }

  /** An int32: written as a 64-bit two's complement varint, so only its low 32 bits count. */
  int32(): number {
    const { buf } = this;
    let low = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new ProtoError('varint runs past the end');
      const b = buf[this.pos++];
      if (i < 5) low |= (b & 0x7f) << (7 * i);
      if (b < 0x80) return low | 0;
    }
    throw new ProtoError('varint longer than 10 bytes');
  }

  /** The end of a length-delimited value that starts here; pos moves to its first byte. */
  delimited(): number {
    const len = this.varint();
    const end = this.pos + len;
    if (end > this.end) throw new ProtoError(`length ${len} runs past the end`);
    return end;
  }

  skip(wire: number): void {
    if (wire === WIRE_VARINT) this.varint();
    else if (wire === WIRE_BYTES) this.pos = this.delimited();
    else if (wire === WIRE_FIXED64) this.pos += 8;
    else if (wire === WIRE_FIXED32) this.pos += 4;
    else throw new ProtoError(`unsupported wire type ${wire}`);
    if (this.pos > this.end) throw new ProtoError('field runs past the end');
  }

  string(): string {
    const end = this.delimited();
    // Buffer's own utf8Slice: toString's encoding lookup and bounds handling cost more than the copy here.
    const s = (this.buf as Utf8Sliceable).utf8Slice(this.pos, end);
    this.pos = end;
    return s;
  }
}

/** A map<string,string> entry: key = 1, value = 2. */
function readMapEntry(r: Reader, end: number, into: Record<string, string>): void {
  let key = '';
  let value = '';
  while (r.pos < end) {
    const tag = r.varint();
    if (tag === 0x0a) key = r.string();
    else if (tag === 0x12) value = r.string();
    else r.skip(tag & 7);
  }
  into[key] = value;
}

function expectWire(f: Field, wire: number, want: number): void {
  if (wire !== want) throw new ProtoError(`${f.name}: wire type ${wire}, expected ${want}`);
}

function readValue(r: Reader, f: Field, wire: number, obj: Record<string, any>): unknown {
  switch (f.kind) {
    case 'string':
      expectWire(f, wire, WIRE_BYTES);
      return r.string();
    case 'int32':
      expectWire(f, wire, WIRE_VARINT);
      return r.int32();
    case 'bool':
      expectWire(f, wire, WIRE_VARINT);
      return r.varint() !== 0;
    case 'map': {
      expectWire(f, wire, WIRE_BYTES);
      const end = r.delimited();
      const into = (obj[f.name] ??= {});
      readMapEntry(r, end, into);
      r.pos = end;
      return into;
    }
    case 'message': {
      expectWire(f, wire, WIRE_BYTES);
      const end = r.delimited();
      const v = decodeMessage(r, end, f.message!);
      r.pos = end;
      return v;
    }
  }
}

const isZero = (v: unknown) => v === '' || v === 0 || v === false;

/** Decodes r.buf[r.pos, end) as `schema`. */
export function decodeMessage(r: Reader, end: number, schema: MessageSchema): Record<string, any> {
  const obj: Record<string, any> = {};
  while (r.pos < end) {
    const tag = r.varint();
    const f = schema[tag >>> 3];
    const wire = tag & 7;
    if (f === undefined) {
      r.skip(wire);
      continue;
    }
    const v = readValue(r, f, wire, obj);
    if (f.kind === 'map') continue;
    if (f.repeated) (obj[f.name] ??= []).push(v);
    else if (f.present || f.kind === 'message' || !isZero(v)) obj[f.name] = v;
  }
  if (r.pos !== end) throw new ProtoError('message runs past its length');
  return obj;
}

/** The envelope's magic: every API object in protobuf starts with it. */
export const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

/**
 * An envelope (magic + runtime.Unknown {typeMeta = 1 {apiVersion, kind}, raw = 2}): where raw
 * starts and ends in buf, and the kind it names.
 */
export function openEnvelope(buf: Buffer, start = 0, end = buf.length): { kind: string; apiVersion: string; raw: Reader; rawEnd: number } {
  if (end - start < 4 || buf.compare(MAGIC, 0, 4, start, start + 4) !== 0) throw new ProtoError('not a Kubernetes protobuf object (no k8s\\0 prefix)');
  const r = new Reader(buf, start + 4, end);
  let kind = '';
  let apiVersion = '';
  let rawStart = -1;
  let rawEnd = -1;
  while (r.pos < end) {
    const tag = r.varint();
    if (tag === 0x0a) {
      const tmEnd = r.delimited();
      const tm = decodeMessage(r, tmEnd, TYPE_META);
      r.pos = tmEnd;
      kind = tm.kind ?? '';
      apiVersion = tm.apiVersion ?? '';
    } else if (tag === 0x12) {
      rawEnd = r.delimited();
      rawStart = r.pos;
      r.pos = rawEnd;
    } else r.skip(tag & 7);
  }
  if (rawStart < 0) throw new ProtoError('envelope without an object');
  return { kind, apiVersion, raw: new Reader(buf, rawStart, rawEnd), rawEnd };
}

const TYPE_META: MessageSchema = { 1: { name: 'apiVersion', kind: 'string' }, 2: { name: 'kind', kind: 'string' } };

/** A whole enveloped object, decoded as `schema` (or the one picked for its kind), with kind and apiVersion from the envelope. */
export function decodeObject(buf: Buffer, schema: MessageSchema | ((kind: string) => MessageSchema), start = 0, end = buf.length): Record<string, any> {
  const env = openEnvelope(buf, start, end);
  const obj = decodeMessage(env.raw, env.rawEnd, typeof schema === 'function' ? schema(env.kind) : schema);
  if (env.kind) obj.kind = env.kind;
  if (env.apiVersion) obj.apiVersion = env.apiVersion;
  return obj;
}
