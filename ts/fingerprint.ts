// Compact fingerprints for "did this change?" checks: keeping a digest
// instead of the JSON it summarises saves tens of MiB at 10k Services.
import { createHash } from 'node:crypto';

export function fingerprint(text: string): string {
  return createHash('sha1').update(text).digest('base64');
}
