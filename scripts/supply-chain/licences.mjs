#!/usr/bin/env node
// The licence half of the supply-chain check (docs/supply-chain.md): every npm package in
// package-lock.json (production and dev, installed or not) and every crate in the Cargo graph
// must carry a licence from POLICY.allow, or be a listed exception. Exit 0 when all pass, 1 when
// any fails, 2 when an input cannot be read. The image's Debian packages and Node are reported,
// not gated (see imageComponents).
// usage: licences.mjs [--root DIR] [--cargo-metadata FILE] [--no-image]
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// Permissive licences that allow shipping the code inside an Apache-2.0 project without
// changing its terms. MPL-2.0 and other (weak) copyleft licences are deliberately absent: none
// is in the tree today, and one that arrives must be reviewed and listed in `exceptions`.
export const POLICY = {
  allow: [
    'MIT', 'Apache-2.0', 'BSD-2-Clause', 'BSD-3-Clause', 'ISC', '0BSD', 'Unicode-3.0',
    'Unicode-DFS-2016', 'Zlib', 'BlueOak-1.0.0', 'CC0-1.0', 'Unlicense',
  ],
  // `A WITH B` passes only as a listed pair: an exception can add permissions or conditions.
  allowWith: ['Apache-2.0 WITH LLVM-exception'],
  // Reviewed one by one; `licence` must match exactly, so a relicensed release is reviewed again.
  exceptions: [
    {
      ecosystem: 'npm', name: 'argparse', licence: 'PSF-2.0',
      reason: 'JS port of Python argparse (via js-yaml, @kubernetes/client-node); the PSF licence is permissive (OSI-approved, no copyleft, notice kept), like BSD',
    },
  ],
};

// SPDX expression -> tree. Precedence WITH > AND > OR; operators in any case (npm has
// "(MIT or Apache-2.0)"); Cargo's deprecated "MIT/Apache-2.0" means OR.
export function parseSpdx(expr) {
  if (typeof expr !== 'string' || !expr.trim()) throw new Error('no licence');
  const tokens = expr.replace(/\//g, ' OR ').match(/\(|\)|[^\s()]+/g) ?? [];
  let i = 0;
  const peek = () => tokens[i];
  const isOp = (t, op) => t !== undefined && t.toUpperCase() === op;
  const primary = () => {
    const t = tokens[i++];
    if (t === undefined) throw new Error(`unexpected end of "${expr}"`);
    if (t === '(') {
      const e = or();
      if (tokens[i++] !== ')') throw new Error(`missing ) in "${expr}"`);
      return e;
    }
    if (t === ')' || ['AND', 'OR', 'WITH'].includes(t.toUpperCase())) throw new Error(`unexpected "${t}" in "${expr}"`);
    if (!/^[A-Za-z0-9.+:-]+$/.test(t)) throw new Error(`not an SPDX identifier: "${t}" in "${expr}"`);
    let node = { id: t };
    if (isOp(peek(), 'WITH')) {
      i++;
      const ex = tokens[i++];
      if (ex === undefined || ex === '(' || ex === ')') throw new Error(`WITH needs an exception in "${expr}"`);
      node = { id: t, with: ex };
    }
    return node;
  };
  const and = () => {
    let l = primary();
    while (isOp(peek(), 'AND')) { i++; l = { and: [l, primary()] }; }
    return l;
  };
  const or = () => {
    let l = and();
    while (isOp(peek(), 'OR')) { i++; l = { or: [l, and()] }; }
    return l;
  };
  const tree = or();
  if (i !== tokens.length) throw new Error(`trailing "${tokens.slice(i).join(' ')}" in "${expr}"`);
  return tree;
}

// Does the expression pass the policy? OR needs one branch, AND needs all.
export function licenceAllowed(expr, policy = POLICY) {
  const ok = (n) => {
    if (n.or) return n.or.some(ok);
    if (n.and) return n.and.every(ok);
    if (n.with) return policy.allowWith.includes(`${n.id} WITH ${n.with}`);
    return policy.allow.includes(n.id);
  };
  try {
    return { ok: ok(parseSpdx(expr)) };
  } catch (e) {
    return { ok: false, error: e.message };
  }
}

// A package.json's licence as one string: "license" (string or legacy {type}) or legacy "licenses" [{type}].
function manifestLicence(pkg) {
  if (typeof pkg.license === 'string') return pkg.license;
  if (pkg.license?.type) return pkg.license.type;
  if (Array.isArray(pkg.licenses) && pkg.licenses.length) {
    const ids = pkg.licenses.map((l) => (typeof l === 'string' ? l : l?.type)).filter(Boolean);
    return ids.length > 1 ? `(${ids.join(' OR ')})` : ids[0];
  }
  return undefined;
}

function readJson(file) {
  return JSON.parse(readFileSync(file, 'utf8'));
}

// Package directories under node_modules (scoped and nested), for packages the lockfile lacks.
function installedPackageDirs(root) {
  const out = [];
  const walk = (nm) => {
    if (!existsSync(nm)) return;
    for (const e of readdirSync(nm, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      const dirs = e.name.startsWith('@') && e.isDirectory()
        ? readdirSync(join(nm, e.name)).map((s) => join(nm, e.name, s))
        : [join(nm, e.name)];
      for (const d of dirs) {
        if (!existsSync(join(d, 'package.json'))) continue;
        out.push(d);
        walk(join(d, 'node_modules'));
      }
    }
  };
  walk(join(root, 'node_modules'));
  return out;
}

// Every package of the npm tree: the lockfile's entries (all platforms, installed or not), their
// installed package.json where present, and installed packages the lockfile does not list.
export function npmPackages(root) {
  const lock = readJson(join(root, 'package-lock.json'));
  if (!lock.packages) throw new Error('package-lock.json has no "packages" (lockfileVersion >= 2 needed)');
  const pkgs = [];
  const seen = new Set();
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === '' || entry.link) continue;
    seen.add(resolve(root, path));
    const name = entry.name ?? path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
    const manifestFile = join(root, path, 'package.json');
    const installed = existsSync(manifestFile) ? manifestLicence(readJson(manifestFile)) : undefined;
    const licences = [...new Set([entry.license, installed].filter((l) => l !== undefined))];
    pkgs.push({
      ecosystem: 'npm', name, version: entry.version, scope: entry.dev ? 'dev' : 'prod',
      // Lockfile and installed manifest should agree; when they do not, both must pass.
      licences: licences.length ? licences : [undefined],
      note: licences.length > 1 ? `lockfile says ${entry.license}, installed package.json says ${installed}` : undefined,
    });
  }
  for (const dir of installedPackageDirs(root)) {
    if (seen.has(resolve(dir))) continue;
    const m = readJson(join(dir, 'package.json'));
    pkgs.push({ ecosystem: 'npm', name: m.name, version: m.version, scope: 'extraneous', licences: [manifestLicence(m)], note: 'installed but not in package-lock.json' });
  }
  return pkgs;
}

// Every crate in the resolved Cargo graph (all targets and platforms), workspace members included.
export function cargoPackages(metadata) {
  return metadata.packages.map((p) => ({
    ecosystem: 'cargo', name: p.name, version: p.version, scope: p.source ? 'crate' : 'workspace',
    licences: [p.license ?? undefined],
    note: !p.license && p.license_file ? `license-file ${p.license_file} only` : undefined,
  }));
}

export function cargoMetadata(root) {
  const r = spawnSync('cargo', ['metadata', '--format-version', '1', '--locked'], { cwd: root, encoding: 'utf8', maxBuffer: 256 << 20 });
  if (r.error || r.status !== 0) throw new Error(`cargo metadata failed: ${r.error?.message ?? r.stderr.trim()}`);
  return JSON.parse(r.stdout);
}

// Applies the policy: a summary (licence expression -> count), the exceptions used, the failures.
export function checkLicences(packages, policy = POLICY) {
  const summary = new Map();
  const failures = [];
  const excepted = [];
  for (const p of packages) {
    for (const licence of p.licences) {
      const key = licence ?? '(none)';
      summary.set(key, (summary.get(key) ?? 0) + 1);
      const verdict = licenceAllowed(licence, policy);
      if (verdict.ok) continue;
      const ex = policy.exceptions.find((e) => e.ecosystem === p.ecosystem && e.name === p.name && e.licence === licence);
      if (ex) excepted.push({ ...p, licence, reason: ex.reason });
      else failures.push({ ...p, licence, reason: verdict.error ?? `"${licence}" is not on the allowlist` });
    }
  }
  return { summary, failures, excepted, ok: failures.length === 0 };
}

// Debian packages and Node that scripts/image/rootfs.sh puts in the image, with the licences
// their copyright files name. Reported only: they ship unmodified as separate programs and
// shared libraries, and kproxy's code is not derived from them.
export function imageComponents(root) {
  const rootfs = join(root, 'scripts/image/rootfs.sh');
  if (!existsSync(rootfs)) return [];
  const src = readFileSync(rootfs, 'utf8');
  const debs = /^DEBS=\(([^)]*)\)/m.exec(src)?.[1].split(/\s+/).filter(Boolean) ?? [];
  const out = debs.map((pkg) => {
    const file = `/usr/share/doc/${pkg}/copyright`;
    if (!existsSync(file)) return { name: pkg, licences: [], note: `${file} not on this machine` };
    const text = readFileSync(file, 'utf8');
    // DEP-5 "License:" short names; a header's free-text "License:" line is not one.
    const ids = [...new Set([...text.matchAll(/^License:[ \t]*(\S.*)$/gm)].map((m) => m[1].trim()))]
      .filter((l) => /^[\w.+-]+( (or|and|with) [\w.+-]+)*$/i.test(l));
    if (ids.length) return { name: pkg, licences: ids };
    // Older free-form files (glibc, gcc): name the licences the text mentions.
    const flat = text.replace(/\s+/g, ' ').toLowerCase();
    const named = [['GNU Lesser General Public License', 'LGPL'], ['GNU Library General Public License', 'LGPL'],
      ['GNU General Public License', 'GPL'], ['runtime library exception', 'GCC-exception'], ['BSD', 'BSD-style']]
      .filter(([phrase]) => flat.includes(phrase.toLowerCase())).map(([, id]) => id);
    return { name: pkg, licences: [...new Set(named)], note: 'free-form copyright file: licences it mentions' };
  });
  const node = /^NODE_VERSION=(\S+)/m.exec(src)?.[1];
  if (node) out.push({ name: `node ${node}`, licences: ['MIT (bundled third-party licences in its LICENSE, shipped at /usr/share/licenses/node)'] });
  return out;
}

function table(rows) {
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([a, b]) => `  ${a.padEnd(w)}  ${b}`).join('\n');
}

export function report(result, image) {
  const lines = ['licence summary (licence expression -> packages):'];
  lines.push(table([...result.summary].sort((a, b) => b[1] - a[1]).map(([l, n]) => [l, String(n)])));
  if (result.excepted.length) {
    lines.push('', 'exceptions (reviewed, docs/supply-chain.md):');
    for (const e of result.excepted) lines.push(`  ${e.ecosystem} ${e.name}@${e.version} (${e.scope}): ${e.licence}: ${e.reason}`);
  }
  if (image?.length) {
    lines.push('', 'image components (reported, not gated: unmodified system programs and libraries):');
    lines.push(table(image.map((c) => [c.name, [c.licences.join('; ') || '?', c.note && `(${c.note})`].filter(Boolean).join(' ')])));
  }
  if (result.failures.length) {
    lines.push('', `FAIL: ${result.failures.length} licence(s) outside the policy:`);
    for (const f of result.failures) lines.push(`  ${f.ecosystem} ${f.name}@${f.version} (${f.scope}): ${f.reason}${f.note ? ` (${f.note})` : ''}`);
  } else {
    lines.push('', 'ok: every npm package and crate has an allowed licence');
  }
  return lines.join('\n');
}

function main(argv) {
  const arg = (name) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
  const root = resolve(arg('--root') ?? join(fileURLToPath(import.meta.url), '../../..'));
  let packages;
  try {
    const metaFile = arg('--cargo-metadata');
    const meta = metaFile ? readJson(metaFile) : cargoMetadata(root);
    packages = [...npmPackages(root), ...cargoPackages(meta)];
  } catch (e) {
    console.error(`licences: cannot read the dependency graph: ${e.message}`);
    return 2;
  }
  const result = checkLicences(packages);
  const counts = ['prod', 'dev', 'extraneous', 'crate', 'workspace'].map((s) => `${packages.filter((p) => p.scope === s).length} ${s}`);
  console.log(`licences: ${packages.length} packages (${counts.join(', ')})\n`);
  console.log(report(result, argv.includes('--no-image') ? [] : imageComponents(root)));
  return result.ok ? 0 : 1;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exit(main(process.argv.slice(2)));
