// Reading metric names out of a Grafana dashboard's PromQL, and out of a /metrics page:
// the dashboard test checks one against the other (unit: every mode's registry; netns: a
// real agent).
import { join } from 'node:path';
import { REPO_ROOT } from '../../ts/demo/topology.js';

export const DASHBOARD = join(REPO_ROOT, 'deploy', 'grafana', 'kproxy-dashboard.json');

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan', 'atan2']);

/** The metric names a PromQL expression selects (not its functions, labels, keywords or Grafana variables). */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""') // string literals (label values)
    .replace(/\$\{[^}]*\}|\$\w+/g, '') // Grafana variables ($__rate_interval, ${datasource})
    .replace(/\[[^\]]*\]/g, '') // range and subquery selectors
    .replace(/\boffset\s+-?(\d+(ms|[smhdwy]))+/g, '') // offset durations
    .replace(/\{[^}]*\}/g, '') // label matchers
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ') // grouping clauses and their labels
    .replace(/(^|[^\w:])\d+(\.\d+)?([eE][+-]?\d+)?/g, '$1'); // numbers
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const after = stripped.slice(m.index! + m[0].length).trimStart();
    if (after.startsWith('(')) continue; // a function or an aggregation
    if (KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names].sort();
}

/** Every PromQL expression of a dashboard, with where it is: panel targets (rows' too) and query variables. */
export function dashboardExprs(dash: any): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  const walk = (panels: any[]) => {
    for (const p of panels ?? []) {
      for (const t of p.targets ?? []) if (typeof t.expr === 'string') out.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr });
      walk(p.panels);
    }
  };
  walk(dash.panels);
  for (const v of dash.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    const q: string = typeof v.query === 'string' ? v.query : v.query?.query;
    // label_values(metric, label) names its metric as the first argument.
    const lv = /^label_values\(\s*([A-Za-z_:][\w:]*)\s*,/.exec(q ?? '');
    out.push({ where: `variable ${v.name}`, expr: lv ? lv[1] : q });
  }
  return out;
}

/** Series names a registry exposes, from its TYPE lines: histograms and summaries with their suffixes. */
export function exposedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(name);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
    if (type === 'summary') for (const s of ['_sum', '_count']) names.add(name + s);
  }
  return names;
}
