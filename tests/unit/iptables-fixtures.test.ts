// The wire records of the packet matrix's cluster (tests/fixtures/iptables/matrix-objects.json:
// the objects as kube-apiserver served them when upstream kube-proxy's iptables-save was
// captured), made by the tracker as the agent makes them. The Rust iptables tests build from
// these files and compare with upstream's dump; this test keeps them current
// (UPDATE_GOLDEN=1 rewrites them).
import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeServicePorts } from '../../ts/addon/wire.js';
import type { IPFamily } from '../../ts/model/types.js';
import { ChangeTracker } from '../../ts/tracker/change-tracker.js';

const DIR = join(import.meta.dirname, '../fixtures/iptables');

for (const family of ['IPv4', 'IPv6'] as IPFamily[]) {
  test(`iptables fixtures: the matrix cluster's ${family} wire records are current`, (t) => {
    const { items } = JSON.parse(readFileSync(join(DIR, 'matrix-objects.json'), 'utf8'));
    const invalid: string[] = [];
    const tracker = new ChangeTracker({ families: [family], nodeName: 'test-node', onInvalid: (k, r, ref) => invalid.push(`${k} ${r} ${ref}`) });
    for (const o of items) tracker.onEvent(o.kind, 'ADDED', o);
    t.deepEqual(invalid, []);
    const { text, rejected } = encodeServicePorts(tracker.all(family));
    t.deepEqual(rejected, []);
    const file = join(DIR, `matrix.${family.toLowerCase()}.wire`);
    if (process.env.UPDATE_GOLDEN) writeFileSync(file, `${text}\n`);
    t.is(`${text}\n`, readFileSync(file, 'utf8'), `${file} is stale: UPDATE_GOLDEN=1 npx ava ${import.meta.filename}`);
    t.true(text.split('\n').length > (family === 'IPv4' ? 15 : 6), 'the matrix has its Services');
  });
}
