// Where the system's own tools are. Found by path, skipping node_modules:
// npm puts node_modules/.bin first on PATH, where @vercel/nft's "nft" shadows nftables' nft.
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

const toolPaths = new Map<string, string>();
/** The absolute path of `name`, or `name` itself when it is not installed. */
export function systemTool(name: string): string {
  if (name === 'node') return process.execPath;
  if (name.includes('/')) return name;
  let found = toolPaths.get(name);
  if (!found) {
    const dirs = (process.env.PATH ?? '').split(delimiter).filter((d) => d && !d.includes('node_modules'));
    found = [...dirs, '/usr/sbin', '/sbin', '/usr/bin', '/bin'].map((d) => join(d, name)).find(existsSync) ?? name;
    toolPaths.set(name, found);
  }
  return found;
}
