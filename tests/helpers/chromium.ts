// Headless Chromium from the command line (Debian's package): the page's DOM after load,
// and a screenshot. No driver and no download: the flags are enough for a static page.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CHROMIUM = process.env.KPROXY_CHROMIUM ?? '/usr/bin/chromium';

/**
 * Why the browser tests cannot run, or undefined when they can. Without KPROXY_TEST_BROWSER a
 * missing browser skips them; with KPROXY_TEST_BROWSER=1 it is a failure (CI installs it).
 */
export function browserMissing(): string | undefined {
  return existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is not installed (apt-get install chromium; KPROXY_CHROMIUM names another)`;
}

export const browserRequired = (): boolean => Boolean(process.env.KPROXY_TEST_BROWSER);

/** Runs Chromium headless on `url` with `extra` flags, in a fresh profile; resolves with its stdout. */
export function chromium(url: string, extra: string[], timeoutMs = 60_000): Promise<string> {
  const profile = mkdtempSync(join(tmpdir(), 'kproxy-chromium-'));
  const args = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-dev-shm-usage', `--user-data-dir=${profile}`, ...extra, url,
  ];
  return new Promise((resolve, reject) => {
    execFile(CHROMIUM, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      rmSync(profile, { recursive: true, force: true });
      if (err) reject(new Error(`chromium ${extra.join(' ')} failed: ${err.message}\n${stderr.slice(-2000)}`));
      else resolve(stdout);
    });
  });
}
