#!/usr/bin/env -S node --max-semi-space-size=2
// --max-semi-space-size=2: a small young generation. The agent's data is
// long-lived, and V8's default semi-spaces cost ~80 MiB of RSS at 10k
// Services for no speed (measured: 219 → 135 MiB, same sync time). Pass it
// too when starting this file with `node` yourself.
// The `kproxy` command: runs the built agent (npm run build produces dist/).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli.js');
if (!existsSync(cli)) {
  process.stderr.write(`kproxy: ${cli} is missing; build it first with: npm run build\n`);
  process.exit(1);
}
await import(pathToFileURL(cli).href);
