// `npm start` end to end: the demo with --once builds its namespaces, runs bin/kproxy.js,
// shows traffic answered by every backend, and removes everything it made.
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listNamespaces, run, systemTool } from '../../ts/demo/topology.js';

test.serial('the demo (--once) shows every backend answering and leaves nothing behind', async (t) => {
  const before = await listNamespaces('kp-demo-');
  const result = await run('node', ['bin/kproxy-demo.js', '--once'], { allowFailure: true });
  t.is(result.code, 0, `${result.stdout}\n${result.stderr}`);
  // The per-backend table: "  backend-2    ##########   10"
  for (const backend of ['backend-1', 'backend-2', 'backend-3']) t.regex(result.stdout, new RegExp(`^  ${backend}\\s+#+\\s+\\d+$`, 'm'));
  t.regex(result.stdout, /UDP datagram to 10\.96\.0\.10:53 -> "backend-\d from 10\.244\.\d\.1"/);
  t.regex(result.stdout, /\/proxyMode -> nftables/);
  const after = await listNamespaces('kp-demo-');
  t.deepEqual(after.filter((ns) => !before.includes(ns)), [], 'namespaces left behind');
});

test.serial('the demo refuses to run without root, saying why', async (t) => {
  const setpriv = systemTool('setpriv');
  if (!existsSync(setpriv)) return t.pass('setpriv is not installed; nothing to drop privileges with');
  const result = await run(setpriv, ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, 'bin/kproxy-demo.js', '--once'],
    { allowFailure: true });
  t.is(result.code, 1);
  t.regex(result.stderr, /needs root .* run: sudo npm start/);
});

test.serial('with its output pipe closed (npm start | head), Ctrl-C still removes the temp folder and namespaces', async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'kp-demo-pipe-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const before = await listNamespaces('kp-demo-');
  const child = spawn(process.execPath, ['bin/kproxy-demo.js'], { env: { ...process.env, TMPDIR: tmp }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  // The reader goes away after the first line, as head does.
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  child.stdout.destroy();
  // Once kproxy runs (its log is in the demo's folder), the demo prints more: into the closed pipe.
  const deadline = Date.now() + 60_000;
  const agentLog = () => readdirSync(tmp).some((d) => existsSync(join(tmp, d, 'agent.log')));
  while (!agentLog() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  t.true(agentLog(), `the demo started kproxy (${stderr})`);
  await new Promise((r) => setTimeout(r, 3000));
  child.kill('SIGINT');
  const code = await exited;
  t.is(code, 130, stderr);
  t.deepEqual(readdirSync(tmp), [], 'the demo folder was removed');
  const after = await listNamespaces('kp-demo-');
  t.deepEqual(after.filter((ns) => !before.includes(ns)), [], 'namespaces left behind');
});
