// Whether an nftables table exists, asked of the nft tool: what --cleanup reports when the
// addon does not say. Undefined when nft is not installed or its answer is not clear.
import { execFile } from 'node:child_process';
import type { IPFamily } from '../model/types.js';
import { systemTool } from '../system-tools.js';

export function nftTableExists(family: IPFamily, table: string): Promise<boolean | undefined> {
  const nft = systemTool('nft');
  if (!nft.includes('/')) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    execFile(nft, ['list', 'table', family === 'IPv4' ? 'ip' : 'ip6', table], { timeout: 10_000 }, (err, _out, stderr) => {
      if (!err) resolve(true);
      else resolve(/No such file or directory/.test(String(stderr)) ? false : undefined);
    });
  });
}
