// Splits a Kubernetes list response ({"kind":..., "metadata":{...}, "items":[{...}, ...]}) into
// its items while the bytes arrive, so each item is parsed and handed on at once. A 10k-slice
// list is ~14 MiB of JSON: parsed whole, its text and tree would be held together at the peak,
// and V8 keeps the heap it grew to. Brackets and quotes are ASCII, so scanning UTF-8 bytes is
// safe. Everything outside the items array (kind, metadata) is kept and parsed at the end.

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

export class ListSplitter {
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** Inside a top-level array (the items): depth 2 holds items, commas and blanks. */
  private inTopArray = false;
  /** Pieces of the item being read (it may span chunks). */
  private item: Buffer[] = [];
  private itemFrom = -1;
  /** The list without its items: kind, apiVersion, metadata, "items":[]. */
  private shell: Buffer[] = [];
  private shellFrom = 0;

  constructor(private readonly onItem: (item: any) => void) {}

  push(chunk: Buffer): void {
    this.shellFrom = this.inTopArray && this.depth >= 2 ? -1 : 0;
    if (this.itemFrom === -2) this.itemFrom = 0; // an item continues from the last chunk
    for (let i = 0; i < chunk.length; i++) {
      if (this.inString) {
        // Most bytes are inside strings: jump from quote to quote natively.
        i = this.stringEnd(chunk, i);
        continue;
      }
      const c = chunk[i];
      if (c === QUOTE) this.inString = true;
      else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
        this.depth++;
        if (this.depth === 2 && c === OPEN_ARRAY) {
          // The items array opens: the shell keeps its "[", drops what follows until "]".
          this.inTopArray = true;
          this.shell.push(chunk.subarray(this.shellFrom, i + 1));
          this.shellFrom = -1;
        } else if (this.depth === 3 && this.inTopArray) this.itemFrom = i;
      } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
        if (this.depth === 3 && this.inTopArray) {
          this.item.push(chunk.subarray(this.itemFrom, i + 1));
          this.itemFrom = -1;
          const text = this.item.length === 1 ? this.item[0] : Buffer.concat(this.item);
          this.item = [];
          this.onItem(JSON.parse(text.toString('utf8')));
        } else if (this.depth === 2 && this.inTopArray) {
          this.inTopArray = false;
          this.shellFrom = i;
        }
        this.depth--;
      }
    }
    if (this.itemFrom >= 0) {
      this.item.push(chunk.subarray(this.itemFrom));
      this.itemFrom = -2;
    }
    if (this.shellFrom >= 0) this.shell.push(chunk.subarray(this.shellFrom));
  }

  /** The index of the quote that closes the string `chunk[from]` is in, or the last index (the string goes on). */
  private stringEnd(chunk: Buffer, from: number): number {
    let j = from;
    if (this.escaped) {
      this.escaped = false;
      j++; // the previous chunk ended in a backslash: this byte is escaped
    }
    for (;;) {
      const q = chunk.indexOf(QUOTE, j);
      const end = q < 0 ? chunk.length : q;
      let backslashes = 0;
      for (let k = end - 1; k >= j && chunk[k] === BACKSLASH; k--) backslashes++;
      if (q < 0) {
        this.escaped = backslashes % 2 === 1;
        return chunk.length - 1;
      }
      if (backslashes % 2 === 0) {
        this.inString = false;
        return q;
      }
      j = q + 1;
    }
  }

  /** The list's own fields (metadata: resourceVersion, continue), once every byte is in. */
  end(): any {
    if (this.depth !== 0 || this.inString) throw new SyntaxError('list response ended inside a value');
    return JSON.parse(Buffer.concat(this.shell).toString('utf8'));
  }
}
