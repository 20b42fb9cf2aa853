#!/usr/bin/env node
// The npm advisory half of the supply-chain check (docs/supply-chain.md): `npm audit` over the
// production tree and over the full tree. Policy: a high or critical advisory in a production
// dependency fails (exit 1); everything else is reported. When the registry's advisory endpoint
// does not answer, exit 3 and say that no advisory check ran: an outage is never a pass.
// Not in .ci/run: the registry reachable from CI here answers the audit endpoint with 405.
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const FAIL_SEVERITIES = ['high', 'critical'];

// One `npm audit --json` output -> { available, counts, findings } or { available: false, reason }.
export function parseAudit(stdout) {
  let j;
  try {
    j = JSON.parse(stdout);
  } catch {
    return { available: false, reason: `npm audit printed no JSON: ${String(stdout).slice(0, 200)}` };
  }
  if (!j || typeof j.vulnerabilities !== 'object' || !j.metadata?.vulnerabilities) {
    const reason = j?.message ?? j?.error?.summary ?? j?.error?.code ?? 'unexpected npm audit output';
    return { available: false, reason };
  }
  const findings = Object.values(j.vulnerabilities).map((v) => ({ name: v.name, severity: v.severity, range: v.range, direct: v.isDirect }));
  return { available: true, counts: j.metadata.vulnerabilities, findings };
}

// Production findings at FAIL_SEVERITIES fail; the full tree's findings are reported only.
export function auditVerdict(prod, full) {
  if (!prod.available || !full.available) return { exit: 3, blocking: [] };
  const blocking = prod.findings.filter((f) => FAIL_SEVERITIES.includes(f.severity));
  return { exit: blocking.length ? 1 : 0, blocking };
}

function runAudit(root, extra) {
  const r = spawnSync('npm', ['audit', '--json', ...extra], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) return { available: false, reason: r.error.message };
  return parseAudit(r.stdout);
}

function main() {
  const root = resolve(fileURLToPath(import.meta.url), '../../..');
  const prod = runAudit(root, ['--omit=dev']);
  const full = runAudit(root, []);
  const v = auditVerdict(prod, full);
  for (const [label, r] of [['production (--omit=dev)', prod], ['full tree', full]]) {
    if (!r.available) { console.log(`npm audit, ${label}: UNAVAILABLE: ${r.reason}`); continue; }
    const c = r.counts;
    console.log(`npm audit, ${label}: critical ${c.critical}, high ${c.high}, moderate ${c.moderate}, low ${c.low}, info ${c.info}`);
    for (const f of r.findings) console.log(`  ${f.severity.padEnd(8)} ${f.name} ${f.range ?? ''}${f.direct ? ' (direct)' : ''}`);
  }
  if (v.exit === 3) console.log('npm audit: the registry\'s advisory endpoint did not answer: NO advisory check ran (exit 3)');
  else if (v.exit === 1) console.log(`npm audit: FAIL: ${v.blocking.length} high/critical advisory(ies) in production dependencies`);
  else console.log('npm audit: ok: no high or critical advisory in production dependencies');
  return v.exit;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exit(main());
