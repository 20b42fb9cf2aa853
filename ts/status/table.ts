// `kproxy status` for a terminal: a header (mode, node, last syncs, errors), then one row per
// ServicePort and family with its other frontends on the lines below, as `cilium service list`
// lists backends.
import { ago, endpointsCell, frontends, policyCell, programmedCell, syncSummary } from './format.js';
import type { StatusDoc } from './types.js';

export const COLUMNS = ['SERVICE', 'TYPE/VIP', 'PORT', 'ENDPOINTS(R/T/L)', 'POLICY', 'PROGRAMMED', 'LAST SYNC'] as const;

/** The table's cells, one string[] per printed line (a ServicePort's extra frontends get lines of their own). */
export function tableLines(doc: StatusDoc): string[][] {
  const lines: string[][] = [];
  for (const s of doc.services) {
    for (const [i, f] of frontends(s).entries()) {
      const vip = `${f.kind} ${f.address}`;
      if (i === 0) lines.push([s.service, vip, f.port, endpointsCell(s), policyCell(s), programmedCell(s), ago(s.programmed.at, doc.generatedAt)]);
      else lines.push(['', vip, f.port, '', '', '', '']);
    }
  }
  return lines;
}

/** Left-aligned columns, two spaces apart, no trailing blanks. */
export function alignColumns(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd()).join('\n');
}

export function headerLines(doc: StatusDoc, url: string): string[] {
  const up = ago(doc.startedAt, doc.generatedAt).replace(' ago', '');
  const out = [`kproxy ${doc.mode} on node ${doc.node} (${doc.families.join(', ')}), up ${up}, at ${url}`];
  const syncs = doc.families.map((f) => {
    const l = doc.lastSync[f];
    if (!l?.attempt) return `${f} ${doc.initialSyncDone ? 'none' : 'waiting for the initial list'}`;
    const ok = l.attempt.ok ? '' : ` (last success ${ago(l.success?.at, doc.generatedAt)})`;
    return `${f} ${ago(l.attempt.at, doc.generatedAt)} (${syncSummary(l.attempt)})${ok}`;
  });
  out.push(`last sync: ${syncs.join('; ')}`);
  const without = doc.services.filter((s) => s.programmed.state === 'no-endpoints').length;
  const top = doc.invalid.byReason.slice(0, 3).map((r) => `${r.kind} ${r.reason} ${r.count}`).join(', ');
  out.push(`errors: ${doc.errors.total} · invalid objects: ${doc.invalid.total}${top ? ` (${top})` : ''} · pending changes: ${doc.pending.services + doc.pending.endpoints} · ${doc.services.length} Service ports, ${without} without endpoints`);
  return out;
}

/** The whole text `kproxy status` prints. */
export function renderTable(doc: StatusDoc, url: string): string {
  const parts = [headerLines(doc, url).join('\n'), ''];
  parts.push(doc.services.length ? alignColumns([[...COLUMNS], ...tableLines(doc)]) : 'No Service ports.');
  // What the table's one word cannot say: why a port is not (fully) programmed.
  const notes = doc.services.filter((s) => s.programmed.state !== 'no-endpoints' && (s.programmed.state !== 'programmed' || s.programmed.detail !== ''));
  if (notes.length) {
    parts.push('', 'Notes:');
    for (const s of notes) parts.push(`  ${s.service} ${s.protocol} ${s.family}: ${s.programmed.state}: ${s.programmed.detail}`);
  }
  const errors = doc.errors.recent.slice(-5);
  if (errors.length) {
    parts.push('', `Recent errors (${doc.errors.total} in all):`);
    for (const e of errors) parts.push(`  ${ago(e.at, doc.generatedAt)}  ${e.source}: ${e.message}`);
  }
  return `${parts.join('\n')}\n`;
}
