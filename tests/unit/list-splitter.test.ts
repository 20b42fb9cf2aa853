import test from 'ava';
import { ListSplitter } from '../../ts/sources/list-splitter.js';

// Item text that a naive scanner would trip on: braces, brackets and quotes inside strings,
// escapes, multi-byte UTF-8, nested arrays and objects.
const tricky = [
  { metadata: { name: 'a', annotations: { note: 'a } ] { [ " \\" quoted', path: 'C:\\\\dir\\\\' } }, spec: { ports: [{ port: 80 }, { port: 443 }] } },
  { metadata: { name: 'b', labels: { zone: 'zürich-東京-🚀' } }, endpoints: [[1, [2, [3]]], {}] },
  { metadata: { name: 'c' }, empty: {}, none: null, list: [] },
];

function split(text: string, chunkSizes: (i: number) => number) {
  const items: unknown[] = [];
  const splitter = new ListSplitter((item) => items.push(item));
  const bytes = Buffer.from(text, 'utf8');
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = Math.max(1, chunkSizes(i));
    splitter.push(bytes.subarray(at, at + n));
    at += n;
  }
  return { items, shell: splitter.end() };
}

const cases: [string, object][] = [
  ['a list with tricky items', { kind: 'ServiceList', apiVersion: 'v1', metadata: { resourceVersion: '42', continue: 'tok' }, items: tricky }],
  ['no items', { kind: 'ServiceList', apiVersion: 'v1', metadata: { resourceVersion: '7' }, items: [] }],
  ['items before metadata', { items: tricky, metadata: { resourceVersion: '9' } }],
];
const chunkings: [string, (i: number) => number][] = [
  ['whole', () => 1 << 30],
  ['one byte at a time', () => 1],
  ['7-byte chunks', () => 7],
  ['uneven chunks', (i) => (i * 37) % 11],
];

for (const [name, list] of cases) {
  for (const [how, sizes] of chunkings) {
    test(`ListSplitter: ${name}, ${how}: the items and the list's own fields, as JSON.parse sees them`, (t) => {
      const text = JSON.stringify(list, null, how === 'whole' ? 0 : 2);
      const { items, shell } = split(text, sizes);
      const whole = JSON.parse(text);
      t.deepEqual(items, whole.items);
      t.deepEqual(shell, { ...whole, items: [] });
    });
  }
}

test('ListSplitter: a response cut inside a value is an error, not a short list', (t) => {
  const splitter = new ListSplitter(() => {});
  splitter.push(Buffer.from('{"metadata":{},"items":[{"a":"b'));
  t.throws(() => splitter.end(), { instanceOf: SyntaxError });
});
