#!/usr/bin/env node
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
