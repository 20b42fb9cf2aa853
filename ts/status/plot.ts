// Time-series plots as inline SVG, drawn on the server: the page needs no script and no
// asset from anywhere (nodes reach no CDN). Values spread over orders of magnitude (a
// partial sync in 0.1 ms, a full one in 400 ms) get a log axis, others a linear one from 0.
import { escapeHtml } from './html.js';

export interface PlotPoint {
  /** Epoch ms. */
  x: number;
  /** Milliseconds. */
  y: number;
  /** A ring on full syncs, a cross on failed ones. */
  marker?: 'full' | 'failed';
}

export interface PlotSeries {
  name: string;
  color: string;
  points: PlotPoint[];
}

export interface PlotOptions {
  title: string;
  series: PlotSeries[];
  width?: number;
  height?: number;
  /** Shown when there is no point at all. */
  empty?: string;
  /** Formats a y value (ms) for the axis. */
  format: (ms: number) => string;
}

const MARGIN = { left: 64, right: 16, top: 28, bottom: 34 };
const LOG_SPAN = 100;

interface Scale {
  map(v: number): number;
  ticks: number[];
}

/** 1, 2, 5 × 10^k steps, about `count` of them from 0 to max. */
function linearScale(max: number, top: number, bottom: number, count = 4): Scale {
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const hi = Math.ceil(max / step) * step || 1;
  const ticks = Array.from({ length: Math.round(hi / step) + 1 }, (_, i) => i * step);
  return { map: (v) => bottom - (v / hi) * (bottom - top), ticks };
}

/** Decades from below the smallest value to above the largest. */
function logScale(min: number, max: number, top: number, bottom: number): Scale {
  const lo = Math.floor(Math.log10(min));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(max)));
  const ticks = Array.from({ length: hi - lo + 1 }, (_, i) => 10 ** (lo + i));
  return { map: (v) => bottom - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * (bottom - top), ticks };
}

/** HH:MM:SS, with milliseconds when the whole plot spans only seconds. */
function clock(t: number, fine = false): string {
  return new Date(t).toISOString().slice(11, fine ? 23 : 19);
}

const n1 = (v: number) => v.toFixed(1);

export function renderPlot(o: PlotOptions): string {
  const width = o.width ?? 600;
  const height = o.height ?? 240;
  const left = MARGIN.left;
  const right = width - MARGIN.right;
  const top = MARGIN.top;
  const bottom = height - MARGIN.bottom;
  const valid = (p: PlotPoint) => Number.isFinite(p.x) && Number.isFinite(p.y) && p.y >= 0;
  const all = o.series.flatMap((s) => s.points).filter(valid);
  const parts: string[] = [
    `<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeHtml(o.title)}">`,
    `<text class="plot-title" x="${left}" y="18">${escapeHtml(o.title)}</text>`,
  ];
  if (all.length === 0) {
    parts.push(`<rect class="plot-frame" x="${left}" y="${top}" width="${right - left}" height="${bottom - top}"/>`);
    parts.push(`<text class="plot-empty" x="${(left + right) / 2}" y="${(top + bottom) / 2}" text-anchor="middle">${escapeHtml(o.empty ?? 'no data yet')}</text></svg>`);
    return parts.join('');
  }
  const xs = all.map((p) => p.x);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs);
  const xspan = x1 - x0 || 1;
  // A lone point sits in the middle rather than on the axis.
  const mapX = (x: number) => (x1 === x0 ? (left + right) / 2 : left + ((x - x0) / xspan) * (right - left));
  const positive = all.map((p) => p.y).filter((y) => y > 0);
  const ymax = Math.max(...all.map((p) => p.y));
  const ymin = positive.length ? Math.min(...positive) : 0;
  const log = ymin > 0 && ymax / ymin >= LOG_SPAN;
  const scale = log ? logScale(ymin, ymax, top, bottom) : linearScale(ymax || 1, top, bottom);

  parts.push(`<rect class="plot-frame" x="${left}" y="${top}" width="${right - left}" height="${bottom - top}"/>`);
  for (const t of scale.ticks) {
    const y = n1(scale.map(t));
    parts.push(`<line class="grid" x1="${left}" x2="${right}" y1="${y}" y2="${y}"/>`);
    parts.push(`<text class="tick" x="${left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${escapeHtml(o.format(t))}</text>`);
  }
  const xticks = x1 === x0 ? [x0] : [0, 1, 2, 3].map((i) => x0 + (i / 3) * xspan);
  for (const [i, t] of xticks.entries()) {
    const anchor = xticks.length === 1 ? 'middle' : i === 0 ? 'start' : i === xticks.length - 1 ? 'end' : 'middle';
    parts.push(`<text class="tick" x="${n1(mapX(t))}" y="${bottom + 16}" text-anchor="${anchor}">${clock(t, xspan < 10_000)}</text>`);
  }
  parts.push(`<text class="axis-note" x="${right}" y="${height - 4}" text-anchor="end">UTC${log ? ' · log scale' : ''}</text>`);

  let legendX = right;
  for (const s of [...o.series].reverse()) {
    const label = `${s.name} (${s.points.length})`;
    legendX -= 14 + label.length * 6.6;
    parts.push(`<rect x="${n1(legendX)}" y="10" width="10" height="10" rx="2" fill="${s.color}"/>`);
    parts.push(`<text class="legend" x="${n1(legendX + 14)}" y="19">${escapeHtml(label)}</text>`);
  }
  for (const s of o.series) {
    const pts = s.points.filter(valid).sort((a, b) => a.x - b.x);
    if (pts.length === 0) continue;
    const d = pts.map((p, i) => `${i ? 'L' : 'M'}${n1(mapX(p.x))},${n1(scale.map(p.y))}`).join(' ');
    parts.push(`<path class="series" data-series="${escapeHtml(s.name)}" data-points="${pts.length}" d="${d}" stroke="${s.color}"/>`);
    for (const p of pts) {
      const cx = n1(mapX(p.x));
      const cy = n1(scale.map(p.y));
      const tip = `<title>${escapeHtml(`${s.name} ${clock(p.x)} ${o.format(p.y)}${p.marker ? ` (${p.marker})` : ''}`)}</title>`;
      if (p.marker === 'failed') parts.push(`<path class="failed" d="M${n1(mapX(p.x) - 4)},${n1(scale.map(p.y) - 4)} l8,8 m0,-8 l-8,8">${tip}</path>`);
      else if (p.marker === 'full') parts.push(`<circle class="full" cx="${cx}" cy="${cy}" r="3.5" stroke="${s.color}">${tip}</circle>`);
      else parts.push(`<circle class="dot" cx="${cx}" cy="${cy}" r="2" fill="${s.color}">${tip}</circle>`);
    }
  }
  parts.push('</svg>');
  return parts.join('');
}
