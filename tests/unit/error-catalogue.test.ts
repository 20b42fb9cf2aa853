// One error catalogue per language, and both list the same codes (tests/fixtures/error-codes.txt).
import test from 'ava';
import { readFileSync } from 'node:fs';
import { ERROR_CODES } from '../../ts/addon/errors.js';

test('the TS catalogue knows every code the Rust side can send, in order', (t) => {
  const listed = readFileSync(new URL('../fixtures/error-codes.txt', import.meta.url), 'utf8')
    .split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  t.deepEqual([...ERROR_CODES], listed);
});
