// `npm start` end to end: the demo with --once builds its namespaces, runs bin/kproxy.js,
// shows traffic answered by every backend, and removes everything it made.
import test from 'ava';
import { existsSync } from 'node:fs';
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
