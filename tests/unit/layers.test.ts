// The TS import graph: no cycles, the model depends on nothing, the agent knows no
// mode (only the registry names the mode folders), and only ts/addon/native.ts loads
// the native addon.
import test from 'ava';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const TS = resolve(dirname(fileURLToPath(import.meta.url)), '../../ts');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Relative imports of a file (static and dynamic), as repo-relative .ts paths. */
function importsOf(file: string): string[] {
  const src = readFileSync(file, 'utf8');
  const specs = [...src.matchAll(/(?:from\s+|import\s*\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)].map((m) => m[1]);
  return specs.map((s) => relative(TS, resolve(dirname(file), s)).replace(/\.js$/, '.ts'));
}

const graph = new Map(files(TS).map((f) => [relative(TS, f), importsOf(f)]));

test('the import graph has no cycle', (t) => {
  t.true(graph.size > 30, 'the graph was read');
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const visit = (n: string, path: string[]) => {
    if (state.get(n) === 'done') return;
    if (state.get(n) === 'open') {
      cycles.push([...path.slice(path.indexOf(n)), n].join(' → '));
      return;
    }
    state.set(n, 'open');
    for (const d of graph.get(n) ?? []) visit(d, [...path, n]);
    state.set(n, 'done');
  };
  for (const n of graph.keys()) visit(n, []);
  t.deepEqual(cycles, []);
});

test('ts/model imports nothing outside ts/model', (t) => {
  const bad = [...graph].filter(([f]) => f.startsWith('model/')).flatMap(([f, deps]) => deps.filter((d) => !d.startsWith('model/')).map((d) => `${f} → ${d}`));
  t.deepEqual(bad, []);
});

test('only the registry (and the benchmarks of the modes) import a mode; the agent knows Proxier[] only', (t) => {
  const allowed = new Set(['proxier/registry.ts', 'bench/main.ts', 'bench/iptables.ts']);
  const bad = [...graph]
    .filter(([f]) => !f.startsWith('modes/') && !allowed.has(f))
    .flatMap(([f, deps]) => deps.filter((d) => d.startsWith('modes/')).map((d) => `${f} → ${d}`));
  t.deepEqual(bad, []);
  t.true(graph.get('agent.ts')!.some((d) => d === 'proxier/types.ts'), 'the agent uses the seam');
});

test('modes do not import each other, the agent, or the sources', (t) => {
  const bad = [...graph]
    .filter(([f]) => f.startsWith('modes/'))
    .flatMap(([f, deps]) =>
      deps.filter((d) => (d.startsWith('modes/') && d.split('/')[1] !== f.split('/')[1]) || d === 'agent.ts' || d.startsWith('sources/') || d.startsWith('tracker/'))
        .map((d) => `${f} → ${d}`));
  t.deepEqual(bad, []);
});

test('only ts/addon/native.ts loads the native addon', (t) => {
  const loaders = [...graph.keys()].filter((f) => readFileSync(join(TS, f), 'utf8').includes('native/index.cjs'));
  t.deepEqual(loaders, ['addon/native.ts']);
});
