// deploy/grafana/kproxy-dashboard.json queries only metrics that kproxy registers: every
// PromQL expression's metric names are read out and looked up among what the shared metrics
// and every mode's register (histograms count with their _bucket, _sum and _count series).
// And the other way: each kubeproxy_* and kproxy_* metric has a panel.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { conntrackMetrics } from '../../ts/conntrack/reconciler.js';
import { iptablesMetrics } from '../../ts/modes/iptables/metrics.js';
import { ipvsMetrics } from '../../ts/modes/ipvs/metrics.js';
import { nftablesMetrics } from '../../ts/modes/nftables/metrics.js';
import { userspaceMetrics } from '../../ts/modes/userspace/metrics.js';
import { createMetrics } from '../../ts/server/metrics.js';
import { DASHBOARD, dashboardExprs, exposedNames, metricNames } from '../helpers/promql.js';

/** A registry holding what every part of kproxy registers: shared, each mode's, conntrack's. */
async function everyMetric(): Promise<{ text: string; families: string[] }> {
  const registry = new Registry();
  createMetrics(registry);
  nftablesMetrics(registry);
  iptablesMetrics(registry);
  ipvsMetrics(registry);
  conntrackMetrics(registry);
  userspaceMetrics(registry, { family: 'IPv4', stats: () => [], engineStats: () => ({ fdExhausted: 0, acceptErrors: 0 }) }, { failureReasons: ['no_endpoint'], connectBuckets: [0.001] });
  const text = await registry.metrics();
  return { text, families: [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]) };
}

const dashboard = () => JSON.parse(readFileSync(DASHBOARD, 'utf8'));

test('metricNames reads the metric names out of PromQL', (t) => {
  t.deepEqual(metricNames('histogram_quantile(0.99, sum by (le, ip_family) (rate(kubeproxy_sync_proxy_rules_duration_seconds_bucket{instance=~"$instance"}[$__rate_interval])))'),
    ['kubeproxy_sync_proxy_rules_duration_seconds_bucket']);
  t.deepEqual(metricNames('time() - max by (instance) (a_seconds{x="by (b)"}) / on (instance) group_left (zone) b_info or vector(0) > 1e3'), ['a_seconds', 'b_info']);
  t.deepEqual(metricNames('topk(10, sum without (pod) (rate(c_total[5m] offset 1h)))'), ['c_total']);
  t.deepEqual(metricNames('{__name__="x"}'), []);
});

test('every metric the dashboard queries is registered by kproxy (a bogus one would be caught)', async (t) => {
  const { text } = await everyMetric();
  const exposed = exposedNames(text);
  const exprs = dashboardExprs(dashboard());
  t.true(exprs.length >= 30, `${exprs.length} expressions read`);
  const missing = exprs.flatMap(({ where, expr }) => metricNames(expr).filter((n) => !exposed.has(n)).map((n) => `${where}: ${n}`));
  t.deepEqual(missing, [], 'metrics no part of kproxy registers');
  for (const { where, expr } of exprs) t.true(metricNames(expr).length > 0, `${where} queries no metric: ${expr}`);
  // The check itself: a panel on a metric nobody registers is reported.
  const bogus = dashboardExprs({ panels: [{ title: 'x', targets: [{ refId: 'A', expr: 'rate(kubeproxy_sync_proxy_rules_duration_seconds_bukcet[5m])' }] }] });
  t.deepEqual(bogus.flatMap(({ expr }) => metricNames(expr).filter((n) => !exposed.has(n))), ['kubeproxy_sync_proxy_rules_duration_seconds_bukcet']);
});

test('every kubeproxy_* and kproxy_* metric kproxy registers has a panel', async (t) => {
  const { families } = await everyMetric();
  const used = new Set(dashboardExprs(dashboard()).flatMap(({ expr }) => metricNames(expr)).map((n) => n.replace(/_(bucket|sum|count)$/, '')));
  const ours = families.filter((f) => /^(kubeproxy|kproxy)_/.test(f));
  t.true(ours.length > 20, `${ours.length} metrics`);
  t.deepEqual(ours.filter((f) => !used.has(f)), [], 'add a panel to deploy/grafana/kproxy-dashboard.json');
});

test('the dashboard is importable: unique panel ids, the datasource variable everywhere, no overlapping panels', (t) => {
  const dash = dashboard();
  t.is(dash.uid, 'kproxy');
  const panels: any[] = dash.panels;
  t.is(new Set(panels.map((p) => p.id)).size, panels.length);
  t.true(dash.templating.list.some((v: any) => v.type === 'datasource' && v.query === 'prometheus'));
  for (const p of panels.filter((x) => x.type !== 'row')) {
    t.is(p.datasource?.uid, '${datasource}', p.title);
    for (const tg of p.targets) t.is(tg.datasource?.uid, '${datasource}', `${p.title} ${tg.refId}`);
  }
  const cells = new Set<string>();
  for (const p of panels) {
    const g = p.gridPos;
    t.true(g.x >= 0 && g.x + g.w <= 24, `${p.title} fits the 24 columns`);
    for (let x = g.x; x < g.x + g.w; x++) for (let y = g.y; y < g.y + g.h; y++) {
      t.false(cells.has(`${x},${y}`), `${p.title} overlaps another panel at ${x},${y}`);
      cells.add(`${x},${y}`);
    }
  }
});
