// Running the iptables tools: never rejects, so that every caller decides what a failure means.
import { spawn } from 'node:child_process';

export interface Run {
  /** null: the tool could not be started (not installed). */
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a tool with `input` on stdin (stdout kept only when `keepStdout`). */
export function run(cmd: string, args: string[], input = '', keepStdout = false): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', keepStdout ? 'pipe' : 'ignore', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => resolve({ code: null, stdout: '', stderr: err.message }));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin!.on('error', () => {}); // the tool may exit before reading all of it
    child.stdin!.end(input);
  });
}

/** A tool's stdout ('' when it fails). */
export async function output(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args, '', true);
  return r.code === 0 ? r.stdout : '';
}
