// The status page at / on the metrics port: one server-rendered HTML document with inline
// CSS and SVG, no script and nothing fetched (nodes reach no CDN). It refreshes itself every
// 30 s; ?q= filters the Services table, ?limit= sizes it.
import type { IPFamily } from '../model/types.js';
import { ago, endpointsCell, formatMs, frontends, policyCell, programmedCell, syncSummary } from './format.js';
import { escapeHtml as h } from './html.js';
import { renderPlot, type PlotSeries } from './plot.js';
import { STATUS_JSON_PATH, type ServiceStatus, type StatusDoc, type SyncRecord } from './types.js';

export interface PageQuery {
  /** Substring of the service name, VIP or state. */
  filter: string;
  limit?: number;
}

/** The table is for reading: past this many rows the JSON has the rest. */
export const DEFAULT_ROWS = 500;
const RECENT_SYNCS = 25;
const RECENT_LINES = 20;

const COLORS: Record<IPFamily, { main: string; alt: string }> = {
  IPv4: { main: '#2563eb', alt: '#93c5fd' },
  IPv6: { main: '#d97706', alt: '#fcd34d' },
};

const STYLE = `
:root { color-scheme: light; --fg:#1f2937; --muted:#6b7280; --line:#e5e7eb; --bg:#f8fafc; --card:#fff; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
header { background:#0f172a; color:#e2e8f0; padding:14px 24px; display:flex; align-items:baseline; gap:18px; flex-wrap:wrap; }
header h1 { font-size:20px; margin:0; color:#fff; letter-spacing:.5px; }
header .meta { color:#94a3b8; }
header .meta b { color:#e2e8f0; font-weight:600; }
main { padding:16px 24px 32px; max-width:1400px; }
h2 { font-size:15px; margin:24px 0 8px; text-transform:uppercase; letter-spacing:.6px; color:#334155; }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(150px,1fr)); gap:12px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:10px 14px; }
.card .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.4px; }
.card .v { font-size:22px; font-weight:600; margin-top:2px; }
.card .s { color:var(--muted); font-size:12px; }
.card.bad .v { color:#b91c1c; }
.plots { display:grid; grid-template-columns:repeat(auto-fit,minmax(560px,1fr)); gap:12px; }
.plots > div { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:6px; }
svg.plot { width:100%; height:auto; display:block; }
.plot-title { font-size:13px; font-weight:600; fill:#334155; }
.plot-frame { fill:#fff; stroke:#cbd5e1; }
.plot-empty, .axis-note { fill:var(--muted); font-size:12px; }
.grid { stroke:#eef2f7; }
.tick { fill:var(--muted); font-size:11px; font-variant-numeric:tabular-nums; }
.legend { fill:#334155; font-size:11px; }
path.series { fill:none; stroke-width:1.6; stroke-linejoin:round; }
circle.full { fill:#fff; stroke-width:1.6; }
path.failed { stroke:#dc2626; stroke-width:2; fill:none; }
table { border-collapse:collapse; width:100%; background:var(--card); border:1px solid var(--line); border-radius:8px; overflow:hidden; }
th, td { text-align:left; padding:5px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#f1f5f9; font-size:12px; text-transform:uppercase; letter-spacing:.4px; color:#475569; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
td code, .mono { font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:12.5px; }
tbody tr:hover { background:#f8fafc; }
.fe { white-space:nowrap; }
.fe .kind { display:inline-block; min-width:84px; color:var(--muted); font-size:12px; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; white-space:nowrap; }
.st-programmed { background:#dcfce7; color:#166534; }
.st-partly { background:#fef9c3; color:#854d0e; }
.st-no-endpoints { background:#ffedd5; color:#9a3412; }
.st-pending { background:#e0e7ff; color:#3730a3; }
.st-refused, .st-failed { background:#fee2e2; color:#991b1b; }
.detail { color:var(--muted); font-size:12px; }
.muted { color:var(--muted); }
form { margin:0 0 8px; display:flex; gap:8px; align-items:center; }
input[type=search] { padding:4px 8px; width:320px; border:1px solid #cbd5e1; border-radius:6px; font:inherit; }
button { padding:4px 12px; border:1px solid #cbd5e1; border-radius:6px; background:#fff; font:inherit; }
.cols { display:grid; grid-template-columns:repeat(auto-fit,minmax(480px,1fr)); gap:16px; }
footer { color:var(--muted); padding:0 24px 24px; }
footer a { color:#2563eb; margin-right:14px; }
.nowrap { white-space:nowrap; }
.ok { color:#166534; } .err { color:#b91c1c; }
`;

function card(k: string, v: string, s = '', bad = false): string {
  return `<div class="card${bad ? ' bad' : ''}"><div class="k">${h(k)}</div><div class="v">${h(v)}</div><div class="s">${h(s)}</div></div>`;
}

function cards(doc: StatusDoc): string {
  const services = new Set(doc.services.map((s) => `${s.namespace}/${s.name}`)).size;
  const ready = doc.services.reduce((n, s) => n + s.endpoints.ready, 0);
  const noEndpoints = doc.services.filter((s) => s.programmed.state === 'no-endpoints').length;
  const troubled = doc.services.filter((s) => s.programmed.state === 'refused' || s.programmed.state === 'failed').length;
  const last = doc.families.map((f) => doc.lastSync[f]?.attempt).filter((r): r is SyncRecord => r !== undefined);
  const latest = last.reduce<SyncRecord | undefined>((a, r) => (!a || r.at > a.at ? r : a), undefined);
  const failedNow = last.some((r) => !r.ok);
  return `<div class="cards">${[
    card('Service ports', String(doc.services.length), `${services} Services · ${noEndpoints} ports without endpoints`),
    card('Ready endpoints', String(ready), 'over all Service ports'),
    card('Last sync', latest ? ago(latest.at, doc.generatedAt) : doc.initialSyncDone ? '-' : 'waiting', latest ? syncSummary(latest) : 'for the initial list', failedNow),
    card('Not programmed', String(troubled), 'refused or failed Service ports', troubled > 0),
    card('Errors', String(doc.errors.total), doc.errors.recent.length ? `last ${ago(doc.errors.recent.at(-1)!.at, doc.generatedAt)}` : 'none since start', doc.errors.total > 0),
    card('Invalid objects', String(doc.invalid.total), doc.invalid.byReason[0] ? `most: ${doc.invalid.byReason[0].kind} ${doc.invalid.byReason[0].reason}` : 'none skipped', doc.invalid.total > 0),
    card('Pending changes', String(doc.pending.services + doc.pending.endpoints), `${doc.pending.services} Service, ${doc.pending.endpoints} endpoint`),
  ].join('')}</div>`;
}

function plots(doc: StatusDoc): string {
  const fams = doc.families;
  const duration: PlotSeries[] = fams.map((f) => ({
    name: f,
    color: COLORS[f].main,
    points: doc.syncs.filter((r) => r.family === f).map((r) => ({ x: r.at, y: r.durationMs, marker: !r.ok ? 'failed' as const : r.full ? 'full' as const : undefined })),
  }));
  const latency: PlotSeries[] = fams.flatMap((f) => {
    const rs = doc.syncs.filter((r) => r.family === f);
    const ev = { name: `${f} event→rules`, color: COLORS[f].main, points: rs.filter((r) => r.eventLatencyMs !== undefined).map((r) => ({ x: r.at, y: r.eventLatencyMs! })) };
    const tr = { name: `${f} trigger→rules`, color: COLORS[f].alt, points: rs.filter((r) => r.triggerLatencyMs !== undefined).map((r) => ({ x: r.at, y: r.triggerLatencyMs! })) };
    // The trigger-time series only exists where EndpointSlices carry the annotation (an API server).
    return tr.points.length ? [ev, tr] : [ev];
  });
  return `<div class="plots">
<div>${renderPlot({ title: 'Sync duration (○ full, × failed)', series: duration, format: formatMs, empty: 'no sync yet' })}</div>
<div>${renderPlot({ title: 'Event to rules latency', series: latency, format: formatMs, empty: 'no change programmed yet' })}</div>
</div>`;
}

function stateBadge(s: ServiceStatus): string {
  const partly = s.programmed.state === 'programmed' && s.programmed.detail !== '';
  const cls = partly ? 'st-partly' : `st-${s.programmed.state}`;
  return `<span class="badge ${cls}" title="${h(s.programmed.detail)}">${h(programmedCell(s))}</span>`;
}

function matches(s: ServiceStatus, q: string): boolean {
  if (!q) return true;
  const hay = [s.service, s.family, s.type, s.clusterIP, ...s.externalIPs, ...s.loadBalancerIPs, String(s.port), String(s.nodePort), s.programmed.state].join(' ').toLowerCase();
  return q.toLowerCase().split(/\s+/).filter(Boolean).every((w) => hay.includes(w));
}

function servicesTable(doc: StatusDoc, q: PageQuery): string {
  const shown = doc.services.filter((s) => matches(s, q.filter));
  const limit = q.limit ?? DEFAULT_ROWS;
  const rows = shown.slice(0, limit).map((s) => {
    const fe = frontends(s).map((f) => `<div class="fe"><span class="kind">${h(f.kind)}</span><code>${h(f.address)}</code></div>`).join('');
    const ports = frontends(s).map((f) => `<div class="fe"><code>${h(f.port)}</code></div>`).join('');
    const e = s.endpoints;
    return `<tr class="svc" data-service="${h(s.service)}" data-family="${s.family}">
<td><b>${h(s.service)}</b><div class="detail">${h(s.type)}${s.healthCheckNodePort ? ` · health ${s.healthCheckNodePort}` : ''}</div></td>
<td>${s.family}</td><td>${fe}</td><td>${ports}</td>
<td class="num" title="of ${e.total}: cluster-policy ${e.cluster}, local-policy ${e.localUsable}">${h(endpointsCell(s))}</td>
<td class="mono">${h(policyCell(s))}</td>
<td>${stateBadge(s)}${s.programmed.detail ? `<div class="detail">${h(s.programmed.detail)}</div>` : ''}</td>
<td class="muted">${h(ago(s.programmed.at, doc.generatedAt))}</td></tr>`;
  });
  const note = shown.length > limit
    ? `<p class="muted">Showing ${limit} of ${shown.length}. The rest: <a href="?q=${encodeURIComponent(q.filter)}&amp;limit=${shown.length}">show all</a> or <a href="${STATUS_JSON_PATH}">${STATUS_JSON_PATH}</a>.</p>`
    : '';
  return `<form method="get" action="/"><input type="search" name="q" value="${h(q.filter)}" placeholder="filter: name, VIP, port, state"><button>Filter</button>
<span class="muted">${shown.length} of ${doc.services.length} Service ports</span></form>
<table id="services"><thead><tr><th>Service</th><th>Family</th><th>Type / VIP</th><th>Port</th><th class="num" title="ready / terminating / local">Endpoints R/T/L</th><th>Policy</th><th>Programmed</th><th>Last sync</th></tr></thead>
<tbody>${rows.join('\n') || '<tr><td colspan="8" class="muted">No Service ports' + (q.filter ? ' match' : '') + '.</td></tr>'}</tbody></table>${note}`;
}

function syncsTable(doc: StatusDoc): string {
  const recent = doc.syncs.slice(-RECENT_SYNCS).reverse();
  const rows = recent.map((r) => `<tr><td>${h(new Date(r.at).toISOString().slice(11, 23))}</td><td>${r.family}</td><td>${r.full ? 'full' : 'partial'}</td>
<td class="num">${h(formatMs(r.durationMs))}</td><td class="num">${r.upserts}</td><td class="num">${r.deletes}</td>
<td class="num">${r.eventLatencyMs !== undefined ? h(formatMs(r.eventLatencyMs)) : '-'}</td>
<td>${r.ok ? `<span class="ok">ok</span>${r.refused ? ` <span class="err">(${r.refused} refused)</span>` : ''}` : `<span class="err">${h(r.error ?? 'failed')}</span>`}</td></tr>`);
  return `<table id="syncs"><thead><tr><th>Ended (UTC)</th><th>Family</th><th>Kind</th><th class="num">Duration</th><th class="num">Upserts</th><th class="num">Deletes</th><th class="num">Event→rules</th><th>Result</th></tr></thead>
<tbody>${rows.join('\n') || '<tr><td colspan="8" class="muted">No sync yet.</td></tr>'}</tbody></table>`;
}

function errorsTable(doc: StatusDoc): string {
  const rows = doc.errors.recent.slice(-RECENT_LINES).reverse().map((e) =>
    `<tr><td class="muted nowrap">${h(ago(e.at, doc.generatedAt))}</td><td class="nowrap">${h(e.source)}</td><td class="mono">${h(e.message)}</td></tr>`);
  return `<table id="errors"><thead><tr><th>When</th><th>Source</th><th>Message</th></tr></thead>
<tbody>${rows.join('\n') || '<tr><td colspan="3" class="muted">No errors since start.</td></tr>'}</tbody></table>`;
}

function invalidTable(doc: StatusDoc): string {
  const by = doc.invalid.byReason.map((r) => `<tr><td>${h(r.kind)}</td><td>${h(r.reason)}</td><td class="num">${r.count}</td><td class="muted">in all</td></tr>`);
  const recent = doc.invalid.recent.slice(-RECENT_LINES).reverse().map((r) =>
    `<tr><td>${h(r.kind)}</td><td>${h(r.reason)}</td><td class="num">${r.count}</td><td class="mono">${h(r.ref)} <span class="muted">${h(ago(r.lastAt, doc.generatedAt))}</span></td></tr>`);
  if (!by.length) return `<table id="invalid"><tbody><tr><td class="muted">No invalid objects skipped.</td></tr></tbody></table>`;
  return `<table id="invalid"><thead><tr><th>Kind</th><th>Reason</th><th class="num">Count</th><th>Object (latest)</th></tr></thead>
<tbody>${by.join('\n')}<tr><th colspan="4">Recently seen</th></tr>${recent.join('\n')}</tbody></table>`;
}

export function renderStatusPage(doc: StatusDoc, q: PageQuery = { filter: '' }): string {
  const when = new Date(doc.generatedAt).toISOString().replace('T', ' ').slice(0, 19);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="30">
<title>kproxy · ${h(doc.node)}</title><style>${STYLE}</style></head>
<body><header><h1>kproxy</h1>
<span class="meta">node <b>${h(doc.node)}</b></span><span class="meta">mode <b>${h(doc.mode)}</b></span>
<span class="meta">families <b>${h(doc.families.join(', '))}</b></span>
<span class="meta">up <b>${h(ago(doc.startedAt, doc.generatedAt).replace(' ago', ''))}</b></span>
<span class="meta">as of <b>${h(when)} UTC</b></span></header>
<main>${cards(doc)}
<h2>Syncs</h2>${plots(doc)}
<h2>Services</h2>${servicesTable(doc, q)}
<h2>Recent syncs</h2>${syncsTable(doc)}
<div class="cols"><div><h2>Errors</h2>${errorsTable(doc)}</div><div><h2>Invalid objects</h2>${invalidTable(doc)}</div></div>
</main>
<footer><a href="${STATUS_JSON_PATH}">${STATUS_JSON_PATH}</a><a href="/metrics">/metrics</a><a href="/configz">/configz</a><a href="/proxyMode">/proxyMode</a>
<span>The terminal view: <code>kproxy status</code></span></footer>
</body></html>
`;
}
