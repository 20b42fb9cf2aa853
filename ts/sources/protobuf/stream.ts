// The two protobuf streams the API server sends: a list, split into its items while the bytes
// arrive (as ListSplitter does for JSON), and a watch, as 4-byte big-endian length frames each
// holding a metav1.WatchEvent {type = 1, object = 2 {raw = 1: an enveloped object}}.
import { decodeMessage, decodeObject, MAGIC, ProtoError, Reader, type MessageSchema } from './decode.js';
import { LIST_META, STATUS } from './schemas.js';

/** A varint at buf[pos...], or undefined when the bytes end first. */
function tryVarint(buf: Buffer, pos: number): { value: number; next: number } | undefined {
  let value = 0;
  let scale = 1;
  for (let i = pos; i < buf.length && i < pos + 10; i++) {
    value += (buf[i] & 0x7f) * scale;
    if (buf[i] < 0x80) return { value, next: i + 1 };
    scale *= 128;
  }
  if (buf.length - pos >= 10) throw new ProtoError('varint longer than 10 bytes');
  return undefined;
}

/**
 * A list in protobuf: envelope (magic, runtime.Unknown) whose raw = 2 is the XList
 * {metadata = 1, items = 2}. Each item is decoded as soon as all of its bytes are in.
 */
export class ProtoListSplitter {
  private buf: Buffer = Buffer.alloc(0);
  private state: 'magic' | 'envelope' | 'list' = 'magic';
  /** Bytes of the list (raw) still to come, in state 'list'. */
  private listLeft = 0;
  /** Bytes of a field being skipped that have not arrived yet. */
  private skipLeft = 0;
  /** The list (the envelope's raw) has begun: a body that ends before it is not an empty list. */
  private sawList = false;
  private meta: Record<string, any> = {};

  constructor(
    private readonly schema: MessageSchema,
    private readonly onItem: (item: any) => void,
  ) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    let pos = 0;
    const buf = this.buf;
    for (;;) {
      if (this.skipLeft > 0) {
        const n = Math.min(this.skipLeft, buf.length - pos);
        pos += n;
        this.skipLeft -= n;
        if (this.state === 'list') this.listLeft -= n;
        if (this.skipLeft > 0) break;
      }
      if (this.state === 'magic') {
        if (buf.length - pos < 4) break;
        if (buf.compare(MAGIC, 0, 4, pos, pos + 4) !== 0) throw new ProtoError('list is not a Kubernetes protobuf object (no k8s\\0 prefix)');
        pos += 4;
        this.state = 'envelope';
        continue;
      }
      if (this.state === 'list' && this.listLeft === 0) this.state = 'envelope';
      const tag = tryVarint(buf, pos);
      if (!tag) break;
      const wire = tag.value & 7;
      const field = tag.value >>> 3;
      if (wire !== 2) throw new ProtoError(`list: field ${field} has wire type ${wire}`);
      const len = tryVarint(buf, tag.next);
      if (!len) break;
      const head = len.next - pos;
      if (this.state === 'envelope' && field === 2) {
        // The list itself: its fields follow, counted against its length.
        if (this.sawList) throw new ProtoError('envelope holds two objects');
        pos = len.next;
        this.state = 'list';
        this.sawList = true;
        this.listLeft = len.value;
        continue;
      }
      if (this.state === 'list' && head + len.value > this.listLeft) throw new ProtoError(`list field ${field} runs past the list`);
      const wanted = (this.state === 'list' && (field === 1 || field === 2)) || (this.state === 'envelope' && field === 1);
      if (!wanted) {
        // A field no one reads (an envelope's contentType, a list's unknown field): skip it as it streams.
        pos = len.next;
        if (this.state === 'list') this.listLeft -= head;
        this.skipLeft = len.value;
        continue;
      }
      const end = len.next + len.value;
      if (end > buf.length) break;
      if (this.state === 'list') {
        this.listLeft -= head + len.value;
        const r = new Reader(buf, len.next, end);
        if (field === 2) this.onItem(decodeMessage(r, end, this.schema));
        else this.meta = decodeMessage(r, end, LIST_META);
      }
      pos = end;
    }
    this.buf = pos >= buf.length ? Buffer.alloc(0) : buf.subarray(pos);
  }

  /** The list's own fields ({metadata: {resourceVersion, continue}}), once every byte is in. */
  end(): { metadata: Record<string, any> } {
    if (!this.sawList || this.buf.length > 0 || this.skipLeft > 0 || this.listLeft !== 0) {
      throw new ProtoError(this.sawList ? 'list response ended inside a value' : 'list response ended before the list');
    }
    return { metadata: this.meta };
  }
}

/** client-go's limit on one watch frame: a larger length is a corrupt stream, not a big object. */
const MAX_FRAME = 16 << 20;

/** A watch in protobuf: frames in, {type, object} out; a Status object (an ERROR event) decodes as STATUS. */
export class ProtoWatchFrames {
  private buf: Buffer = Buffer.alloc(0);

  /** Bytes of an unfinished frame: a stream that ends with some was cut. */
  get pending(): number {
    return this.buf.length;
  }

  constructor(
    private readonly schema: MessageSchema,
    private readonly onEvent: (e: { type: string; object: any }) => void,
  ) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const buf = this.buf;
    let pos = 0;
    while (buf.length - pos >= 4) {
      const len = buf.readUInt32BE(pos);
      if (len > MAX_FRAME) throw new ProtoError(`watch frame of ${len} bytes (at most ${MAX_FRAME})`);
      const end = pos + 4 + len;
      if (end > buf.length) break;
      this.onEvent(this.event(buf, pos + 4, end));
      pos = end;
    }
    this.buf = pos >= buf.length ? Buffer.alloc(0) : buf.subarray(pos);
  }

  private event(buf: Buffer, start: number, end: number): { type: string; object: any } {
    const r = new Reader(buf, start, end);
    let type = '';
    let object: any;
    while (r.pos < end) {
      const tag = r.varint();
      if (tag === 0x0a) type = r.string();
      else if (tag === 0x12) {
        const extEnd = r.delimited();
        while (r.pos < extEnd) {
          const t = r.varint();
          if (t !== 0x0a) {
            r.skip(t & 7);
            continue;
          }
          const rawEnd = r.delimited();
          // An ERROR event carries a Status, not the resource.
          object = decodeObject(buf, (kind) => (kind === 'Status' ? STATUS : this.schema), r.pos, rawEnd);
          r.pos = rawEnd;
        }
        if (r.pos !== extEnd) throw new ProtoError('watch event object runs past its length');
      } else r.skip(tag & 7);
    }
    if (!type) throw new ProtoError('watch event without a type');
    return { type, object };
  }
}
