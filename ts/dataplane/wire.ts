// Packs ServicePort upserts into the addon's wire text (see
// crates/kproxy-napi/src/wire.rs): one line per ServicePort, tab-separated.
import type { RejectedSpec, ServicePortSpec } from './types.js';

const UNSAFE = /[\t\n\r]/;

export function encodeUpserts(specs: ServicePortSpec[]): { text: string; rejected: RejectedSpec[] } {
  const lines: string[] = [];
  const rejected: RejectedSpec[] = [];
  for (const s of specs) {
    const fields = [s.key, s.namespace, s.name, s.portName, s.protocol, s.clusterIP, String(s.port)];
    if (fields.some((f) => UNSAFE.test(f)) || s.endpoints.some((e) => UNSAFE.test(e.ip) || e.ip.includes(' '))) {
      rejected.push({ key: s.key.replace(/[\t\n\r]/g, ' '), reason: 'field contains a tab or newline' });
      continue;
    }
    let eps = '';
    for (const e of s.endpoints) eps += (eps ? ' ' : '') + e.ip + ',' + e.port;
    fields.push(eps);
    lines.push(fields.join('\t'));
  }
  return { text: lines.join('\n'), rejected };
}
