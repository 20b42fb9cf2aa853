// scripts/supply-chain/: the licence check passes on the real npm tree and Cargo graph, and fails
// on synthetic trees with a copyleft, missing or disguised licence; the npm audit policy on
// synthetic audit outputs (the registry reachable here does not answer the audit endpoint).
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  POLICY, cargoPackages, checkLicences, licenceAllowed, npmPackages, parseSpdx,
} from '../../scripts/supply-chain/licences.mjs';
import { auditVerdict, parseAudit } from '../../scripts/supply-chain/audit.mjs';

const SCRIPT = 'scripts/supply-chain/licences.mjs';

test('the real npm tree and Cargo graph pass the licence policy', (t) => {
  const r = spawnSync(process.execPath, [SCRIPT, '--no-image'], { encoding: 'utf8' });
  t.is(r.status, 0, r.stdout + r.stderr);
  t.regex(r.stdout, /ok: every npm package and crate has an allowed licence/);
  t.regex(r.stdout, /\d+ prod, \d+ dev, \d+ extraneous, [1-9]\d* crate/);
});

test('SPDX expressions: OR needs one branch, AND all, WITH a listed pair', (t) => {
  const cases: [string | undefined, boolean][] = [
    ['MIT', true],
    ['MIT OR Apache-2.0', true],
    ['(MIT OR CC0-1.0)', true],
    ['(MIT or GPL-3.0)', true],
    ['GPL-3.0 OR MIT', true],
    ['MIT/Apache-2.0', true],
    ['(MIT OR Apache-2.0) AND Unicode-3.0', true],
    ['Apache-2.0 WITH LLVM-exception OR Apache-2.0 OR MIT', true],
    ['Apache-2.0 WITH LLVM-exception', true],
    ['MIT AND GPL-3.0', false],
    ['GPL-3.0', false],
    ['GPL-2.0 WITH Classpath-exception-2.0', false],
    ['MIT WITH Some-exception', false],
    ['MPL-2.0', false],
    ['LGPL-2.1-or-later OR GPL-2.0+', false],
    ['UNLICENSED', false],
    ['SEE LICENSE IN LICENSE.md', false],
    ['(MIT', false],
    ['MIT OR', false],
    ['', false],
    [undefined, false],
  ];
  for (const [expr, ok] of cases) t.is(licenceAllowed(expr).ok, ok, String(expr));
  t.deepEqual(parseSpdx('a OR b AND c'), { or: [{ id: 'a' }, { and: [{ id: 'b' }, { id: 'c' }] }] });
});

test('a synthetic tree with copyleft and missing licences fails, through the functions and the CLI', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-supply-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const lock = {
    name: 'x', lockfileVersion: 3,
    packages: {
      '': { name: 'x', license: 'Apache-2.0' },
      'node_modules/ok': { version: '1.0.0', license: 'MIT' },
      'node_modules/gpl-dev': { version: '2.0.0', license: 'GPL-3.0', dev: true },
      'node_modules/nolicence': { version: '0.1.0' },
      // The lockfile says MIT but the installed manifest says otherwise: both must pass.
      'node_modules/relicensed': { version: '3.0.0', license: 'MIT' },
      'node_modules/argparse': { version: '2.0.1', license: 'PSF-2.0 AND GPL-3.0' },
    },
  };
  writeFileSync(join(dir, 'package-lock.json'), JSON.stringify(lock));
  for (const [name, manifest] of [
    ['relicensed', { name: 'relicensed', version: '3.0.0', license: 'AGPL-3.0-only' }],
    ['stray', { name: 'stray', version: '1.0.0', licenses: [{ type: 'GPL-2.0' }] }],
  ] as const) {
    mkdirSync(join(dir, 'node_modules', name), { recursive: true });
    writeFileSync(join(dir, 'node_modules', name, 'package.json'), JSON.stringify(manifest));
  }
  const meta = {
    packages: [
      { name: 'serde', version: '1.0.0', license: 'MIT OR Apache-2.0', source: 'registry+https://github.com/rust-lang/crates.io-index' },
      { name: 'gpl-crate', version: '0.3.0', license: 'GPL-3.0-only', source: 'registry+https://github.com/rust-lang/crates.io-index' },
      { name: 'mixed', version: '0.1.0', license: 'MIT AND LGPL-2.1', source: 'registry+https://github.com/rust-lang/crates.io-index' },
      { name: 'filed', version: '0.1.0', license: null, license_file: 'LICENSE', source: 'registry+https://github.com/rust-lang/crates.io-index' },
    ],
  };
  const metaFile = join(dir, 'metadata.json');
  writeFileSync(metaFile, JSON.stringify(meta));

  const result = checkLicences([...npmPackages(dir), ...cargoPackages(meta)]);
  t.false(result.ok);
  const failed = result.failures.map((f: { ecosystem: string; name: string; licence?: string }) => `${f.ecosystem}:${f.name}:${f.licence ?? '-'}`).sort();
  t.deepEqual(failed, [
    'cargo:filed:-', 'cargo:gpl-crate:GPL-3.0-only', 'cargo:mixed:MIT AND LGPL-2.1',
    'npm:argparse:PSF-2.0 AND GPL-3.0', 'npm:gpl-dev:GPL-3.0', 'npm:nolicence:-',
    'npm:relicensed:AGPL-3.0-only', 'npm:stray:GPL-2.0',
  ]);
  t.is(result.summary.get('MIT'), 2);

  const r = spawnSync(process.execPath, [SCRIPT, '--root', dir, '--cargo-metadata', metaFile, '--no-image'], { encoding: 'utf8' });
  t.is(r.status, 1, r.stdout + r.stderr);
  t.regex(r.stdout, /FAIL: 8 licence\(s\) outside the policy/);
  t.regex(r.stdout, /npm gpl-dev@2\.0\.0 \(dev\): "GPL-3\.0" is not on the allowlist/);
  t.regex(r.stdout, /npm stray@1\.0\.0 \(extraneous\)/);

  // An unreadable graph is exit 2, not a pass.
  const missing = spawnSync(process.execPath, [SCRIPT, '--root', join(dir, 'nowhere'), '--cargo-metadata', metaFile], { encoding: 'utf8' });
  t.is(missing.status, 2);
});

test('an exception names one package and its exact licence', (t) => {
  const pkg = (name: string, licence: string) => ({ ecosystem: 'npm', name, version: '1.0.0', scope: 'prod', licences: [licence] });
  const r = checkLicences([pkg('argparse', 'PSF-2.0'), pkg('other', 'PSF-2.0')]);
  t.deepEqual(r.excepted.map((e: { name: string }) => e.name), ['argparse']);
  t.deepEqual(r.failures.map((e: { name: string }) => e.name), ['other']);
  t.true(POLICY.exceptions.every((e: { reason: string }) => e.reason.length > 20));
});

test('npm audit policy: high/critical in production fails, the rest is reported, an outage is exit 3', (t) => {
  const report = (vulns: Record<string, string>) => JSON.stringify({
    auditReportVersion: 2,
    vulnerabilities: Object.fromEntries(Object.entries(vulns).map(([name, severity]) => [name, { name, severity, isDirect: false, range: '<1' }])),
    metadata: { vulnerabilities: { info: 0, low: 0, moderate: 0, high: 0, critical: 0, total: 0 } },
  });
  const outage = parseAudit(JSON.stringify({ message: '405 Method Not Allowed - POST https://registry.example/-/npm/v1/security/advisories/bulk', statusCode: 405 }));
  t.false(outage.available);
  t.regex(outage.reason, /405/);
  t.is(auditVerdict(outage, parseAudit(report({}))).exit, 3);
  t.is(auditVerdict(parseAudit(report({})), parseAudit('npm ERR! network')).exit, 3);
  t.is(auditVerdict(parseAudit(report({ a: 'moderate', b: 'low' })), parseAudit(report({ c: 'critical' }))).exit, 0);
  const bad = auditVerdict(parseAudit(report({ a: 'high', b: 'low' })), parseAudit(report({})));
  t.is(bad.exit, 1);
  t.deepEqual(bad.blocking.map((f: { name: string }) => f.name), ['a']);
});
