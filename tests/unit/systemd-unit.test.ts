// deploy/systemd/: the unit for plain-process installs, checked by systemd itself
// (`systemd-analyze verify`, and `security --offline` for its exposure), and its example
// config.yaml through kproxy's config loader. systemd cannot run the unit here (no systemd
// as PID 1): what it does at run time is argued in the unit's comments, not tested.
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../ts/config/index.js';
import { DEPLOY_DIR } from '../helpers/deploy-manifests.js';

const UNIT = join(DEPLOY_DIR, 'systemd/kproxy.service');
const text = readFileSync(UNIT, 'utf8');
const EXEC = '/usr/local/bin/kproxy';
/** Lower than this (systemd's 0-10 scale) or the hardening went missing. */
const MAX_EXPOSURE = 4.0;

/** key → values of the [Service] section (comments dropped). */
function section(name: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('[')) current = line;
    else if (current === `[${name}]` && line && !line.startsWith('#')) {
      const eq = line.indexOf('=');
      const key = line.slice(0, eq);
      out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1)]);
    }
  }
  return out;
}

const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
const haveAnalyze = analyze.status === 0;
if (!haveAnalyze) console.warn(`systemd-analyze is not installed (${analyze.error?.message ?? analyze.stderr}): the unit's systemd checks are skipped (apt-get install systemd)`);

/** The unit, with ExecStart's kproxy (not installed here) replaced by a stub that exists. */
function withStub(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-unit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const stub = join(dir, 'kproxy');
  writeFileSync(stub, '#!/bin/sh\n');
  chmodSync(stub, 0o755);
  const unit = join(dir, 'kproxy.service');
  writeFileSync(unit, text.replaceAll(EXEC, stub));
  return unit;
}

test('the unit starts the npm-installed kproxy on /etc/kproxy/config.yaml, always restarted, with CAP_NET_ADMIN only', (t) => {
  const s = section('Service');
  t.deepEqual(s.get('ExecStart'), [`${EXEC} --config /etc/kproxy/config.yaml`]);
  t.deepEqual(s.get('Restart'), ['always']);
  t.deepEqual(section('Unit').get('StartLimitIntervalSec'), ['0']);
  t.deepEqual(s.get('AmbientCapabilities'), ['CAP_NET_ADMIN']);
  t.deepEqual(s.get('CapabilityBoundingSet'), ['CAP_NET_ADMIN']);
  t.deepEqual(s.get('DynamicUser'), ['yes']);
  t.deepEqual(s.get('NoNewPrivileges'), ['yes']);
  t.deepEqual(s.get('ProtectSystem'), ['strict']);
  // What would break kproxy: /proc/sys read-only (its net sysctls), /proc/sys and /proc/net
  // hidden, no W^X for V8's JIT, no netlink.
  t.false(s.has('ProtectKernelTunables'));
  t.false(s.has('ProcSubset'));
  t.false(s.has('MemoryDenyWriteExecute'));
  t.regex(s.get('RestrictAddressFamilies')?.[0] ?? '', /\bAF_NETLINK\b/);
  t.deepEqual(s.get('LoadCredential'), ['kubeconfig:/etc/kproxy/kubeconfig']);
});

test('the example config.yaml loads through kproxy\'s config loader without a warning, reading the credential', (t) => {
  const config = loadConfig(['--config', join(DEPLOY_DIR, 'systemd/config.yaml')], { hostname: () => 'Node-A' });
  t.deepEqual(config.warnings, []);
  t.is(config.mode, 'nftables');
  t.is(config.hostnameOverride, 'node-a');
  t.is(config.kubeconfig, '/run/credentials/kproxy.service/kubeconfig');
  t.is(config.metricsBindAddress, '127.0.0.1:10249');
});

(haveAnalyze ? test : test.skip)('systemd-analyze verify accepts the unit, with no warning', (t) => {
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', withStub(t)], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  t.is(`${r.stdout}${r.stderr}`.trim(), '');
});

(haveAnalyze ? test : test.skip)('systemd-analyze verify refuses a unit with an unknown setting (the check can fail)', (t) => {
  const unit = withStub(t);
  writeFileSync(unit, readFileSync(unit, 'utf8').replace('Restart=always', 'Restart=always\nRestartt=always'));
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', unit], { encoding: 'utf8' });
  t.regex(r.stderr, /Unknown key 'Restartt'/);
});

(haveAnalyze ? test : test.skip)(`systemd-analyze security rates the unit's exposure below ${MAX_EXPOSURE}`, (t) => {
  const out = execFileSync('systemd-analyze', ['security', '--offline=true', '--no-pager', withStub(t)], { encoding: 'utf8' });
  const m = /Overall exposure level for kproxy\.service: ([\d.]+)/.exec(out);
  t.truthy(m, out.slice(-500));
  t.log(`exposure ${m![1]} (0 is the most locked down, 10 the least)`);
  t.true(Number(m![1]) < MAX_EXPOSURE, out.slice(-2000));
});
