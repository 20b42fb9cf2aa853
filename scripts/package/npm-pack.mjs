#!/usr/bin/env node
// `npm run pack:npm`: the npm tarballs, in napi-rs's layout. `kproxy` carries the agent (dist/),
// the generated loader (native/index.cjs) and the demo, but no addon; each npm/<platform>/
// package carries only its addon, copied here from native/. The loader requires the platform
// package by name, and kproxy lists them as optionalDependencies, so npm installs the one whose
// os/cpu/libc match.
//
//   node scripts/package/npm-pack.mjs [--out DIR]   (default DIR: build/npm)
//
// Nothing is built: the addon (npm run build:addon[:arm64]) and dist/ (npm run build:ts) must
// be there and current. Prints each tarball's absolute path on stdout, one a line.
import { spawnSync } from 'node:child_process';
import {
  copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, closeSync,
  readdirSync, renameSync, rmSync, statSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
// ELF e_machine per npm cpu name: a mislabelled addon would install and then fail to load.
const ELF_MACHINE = { x64: 62, arm64: 183 };

// Thrown, not exit(): the staging folder's `finally` still runs.
class PackError extends Error {}
const fail = (msg) => {
  throw new PackError(msg);
};
const note = (msg) => process.stderr.write(`pack:npm: ${msg}\n`);
const readJson = (file) => JSON.parse(readFileSync(file, 'utf8'));

function parseArgs(argv) {
  let out = join(ROOT, 'build', 'npm');
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out' && argv[i + 1]) out = resolve(argv[++i]);
    else fail(`unknown argument ${argv[i]}; usage: npm-pack.mjs [--out DIR]`);
  }
  return { out };
}

function npmPack(dir, out) {
  // --ignore-scripts: the main package's `prepare` would build the addon.
  const r = spawnSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', out], { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) fail(`npm pack in ${dir} failed:\n${r.stderr}`);
  return join(out, JSON.parse(r.stdout)[0].filename);
}

function tarEntries(tarball) {
  const r = spawnSync('tar', ['-tzf', tarball], { encoding: 'utf8' });
  if (r.status !== 0) fail(`cannot list ${tarball}: ${r.stderr}`);
  return r.stdout.split('\n').filter((e) => e && !e.endsWith('/')).map((e) => e.replace(/^package\//, ''));
}

function walk(dir, ext) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((d) => d.isFile() && d.name.endsWith(ext))
    .map((d) => relative(dir, join(d.parentPath ?? d.path, d.name)));
}

/** The platform packages under npm/, checked against the main package and the loader. */
function platformPackages(main) {
  const loader = join(ROOT, 'native', 'index.cjs');
  if (!existsSync(loader)) fail('native/index.cjs is missing: run npm run build:addon (napi build generates it)');
  const loaderText = readFileSync(loader, 'utf8');
  // The loader's version checks name the version it was generated for.
  const loaderVersions = new Set([...loaderText.matchAll(/expected (\S+) but got/g)].map((m) => m[1]));
  if (loaderVersions.size !== 1 || !loaderVersions.has(main.version)) {
    fail(`native/index.cjs was generated for version ${[...loaderVersions].join(', ')}, package.json says ${main.version}: run npm run build:addon`);
  }
  const problems = [];
  const platforms = readdirSync(join(ROOT, 'npm')).filter((d) => existsSync(join(ROOT, 'npm', d, 'package.json'))).sort().map((dir) => {
    const pkg = readJson(join(ROOT, 'npm', dir, 'package.json'));
    const addon = `${main.napi.binaryName}.${dir}.node`;
    const where = `npm/${dir}/package.json`;
    if (pkg.version !== main.version) problems.push(`${where} has version ${pkg.version}, package.json has ${main.version}: set the same version in both`);
    if (pkg.name !== `${main.name}-${dir}`) problems.push(`${where} is named ${pkg.name}, not ${main.name}-${dir}`);
    if (pkg.main !== addon || JSON.stringify(pkg.files) !== JSON.stringify([addon])) problems.push(`${where}: main and files must be ${addon} alone`);
    if (!loaderText.includes(`require('${pkg.name}')`)) problems.push(`native/index.cjs never requires ${pkg.name}`);
    return { dir, pkg, addon };
  });
  if (problems.length) fail(problems.join('\n'));
  if (!platforms.length) fail('no platform packages under npm/');
  return platforms;
}

/** dist/ is what ships: every ts/ module compiled, none older than its source, none without one. */
function checkDist() {
  const sources = walk(join(ROOT, 'ts'), '.ts').filter((f) => !f.endsWith('.d.ts'));
  const built = new Set(walk(join(ROOT, 'dist'), '.js'));
  const stale = sources.filter((f) => {
    const js = f.replace(/\.ts$/, '.js');
    return !built.has(js) || statSync(join(ROOT, 'dist', js)).mtimeMs < statSync(join(ROOT, 'ts', f)).mtimeMs;
  });
  if (stale.length) fail(`dist/ is missing or older than ${stale.slice(0, 5).map((f) => `ts/${f}`).join(', ')}${stale.length > 5 ? ', ...' : ''}: run npm run build:ts`);
  const orphans = [...built].filter((js) => !sources.includes(js.replace(/\.js$/, '.ts')));
  if (orphans.length) fail(`dist/ has files with no source in ts/ (${orphans.slice(0, 5).join(', ')}): rm -rf dist && npm run build:ts`);
}

function elfMachine(file) {
  const buf = Buffer.alloc(20);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buf, 0, 20, 0);
  } finally {
    closeSync(fd);
  }
  return buf.readUInt32BE(0) === 0x7f454c46 ? buf.readUInt16LE(18) : -1;
}

/** Copies native/<addon> into npm/<platform>/; false (and no stale copy left) when it is not built. */
function stageAddon({ dir, pkg, addon }) {
  const src = join(ROOT, 'native', addon);
  const dest = join(ROOT, 'npm', dir, addon);
  if (!existsSync(src)) {
    rmSync(dest, { force: true });
    note(`${pkg.name}: skipped, native/${addon} is not built`);
    return false;
  }
  const machine = elfMachine(src);
  if (machine !== ELF_MACHINE[pkg.cpu[0]]) fail(`native/${addon} is not an ELF for ${pkg.cpu[0]} (e_machine ${machine})`);
  // Copy then rename, so a reader never sees half an addon.
  copyFileSync(src, `${dest}.tmp`);
  renameSync(`${dest}.tmp`, dest);
  return true;
}

/** What must not ship in kproxy itself, and what it cannot work without. */
function checkMainTarball(tarball) {
  const entries = tarEntries(tarball);
  const bad = entries.filter((e) => e.endsWith('.node') || e.startsWith('tests/') || e.startsWith('npm/') || e.startsWith('crates/')
    || (e.startsWith('ts/') && !/^ts\/demo\/[^/]+\.mjs$/.test(e)));
  const needed = ['package.json', 'bin/kproxy.js', 'bin/kproxy-demo.js', 'dist/cli.js', 'dist/demo/main.js', 'native/index.cjs',
    'native/index.d.ts', 'ts/demo/client.mjs', 'ts/demo/responder.mjs', 'examples/demo/web-service.yaml', 'LICENSE'];
  const missing = needed.filter((e) => !entries.includes(e));
  if (bad.length || missing.length) {
    rmSync(tarball, { force: true });
    fail(`${relative(ROOT, tarball)} is wrong (removed):${bad.length ? `\n  must not ship: ${bad.join(', ')}` : ''}${missing.length ? `\n  missing: ${missing.join(', ')}` : ''}`);
  }
}

/** Packs kproxy from a staging copy whose package.json names the platform packages. */
function packMain(main, platforms, out) {
  // npm picks the files (package.json "files"); the repo's package.json stays as it is, because
  // optionalDependencies on unpublished packages would break `npm ci` (no lockfile entry can
  // hold them). napi-rs's `napi pre-publish` adds them at publish time the same way.
  const listed = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' });
  if (listed.status !== 0) fail(`npm pack --dry-run failed:\n${listed.stderr}`);
  const stage = mkdtempSync(join(tmpdir(), 'kproxy-pack-'));
  try {
    for (const { path } of JSON.parse(listed.stdout)[0].files) {
      mkdirSync(dirname(join(stage, path)), { recursive: true });
      copyFileSync(join(ROOT, path), join(stage, path));
    }
    const optionalDependencies = Object.fromEntries(platforms.map(({ pkg }) => [pkg.name, main.version]));
    // `prepare` builds from source (crates/, ts/), which the tarball does not have; npm 11 lists
    // it as an install script of the dependency.
    const { prepare, ...scripts } = main.scripts;
    writeFileSync(join(stage, 'package.json'), `${JSON.stringify({ ...main, scripts, optionalDependencies }, null, 2)}\n`);
    const tarball = npmPack(stage, out);
    checkMainTarball(tarball);
    return tarball;
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

function packPlatform({ dir, pkg, addon }, out) {
  const tarball = npmPack(join(ROOT, 'npm', dir), out);
  const extra = tarEntries(tarball).filter((e) => !['package.json', addon, 'README.md'].includes(e));
  if (extra.length) fail(`${relative(ROOT, tarball)} holds more than its addon: ${extra.join(', ')}`);
  return tarball;
}

try {
  const { out } = parseArgs(process.argv.slice(2));
  const main = readJson(join(ROOT, 'package.json'));
  const platforms = platformPackages(main);
  checkDist();
  mkdirSync(out, { recursive: true });
  // No tarball from an earlier run (say, of an addon no longer built) may pass for this one's.
  for (const name of [main.name, ...platforms.map((p) => p.pkg.name)]) rmSync(join(out, `${name}-${main.version}.tgz`), { force: true });
  const tarballs = [packMain(main, platforms, out)];
  for (const p of platforms) if (stageAddon(p)) tarballs.push(packPlatform(p, out));
  process.stdout.write(`${tarballs.join('\n')}\n`);
} catch (err) {
  if (!(err instanceof PackError)) throw err;
  process.stderr.write(`pack:npm: ${err.message}\n`);
  process.exitCode = 1;
}
