#!/usr/bin/env node
// `npm start`: runs the demo from the build (dist/demo/main.js) when there is one, otherwise
// from the TypeScript sources through tsx (a devDependency, there after `npm install`).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const built = join(root, 'dist', 'demo', 'main.js');
let entry;
if (existsSync(built)) {
  entry = [built];
} else if (existsSync(join(root, 'node_modules', 'tsx'))) {
  entry = ['--import', 'tsx', join(root, 'ts', 'demo', 'main.ts')];
} else {
  console.error('kproxy demo: neither dist/ (npm run build) nor tsx (npm install) is there to run it.');
  process.exit(1);
}

const child = spawn(process.execPath, [...entry, ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' });
// The demo cleans up on these; pass them on (a terminal's Ctrl-C reaches both of us anyway).
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? 128 + (constants.signals[signal] ?? 0)));
