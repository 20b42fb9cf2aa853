// /flagz: upstream's zpages text (a header, then name=value for every flag, sorted), served on
// the metrics port as text/plain; and the ComponentFlagz gate turning it off.
import test from 'ava';
import { get } from 'node:http';
import { Registry } from 'prom-client';
import { loadConfig } from '../../ts/config/index.js';
import { flagzHeader } from '../../ts/config/flagz.js';
import { startMetricsServer } from '../../ts/server/metrics-server.js';

const load = (argv: string[]) => loadConfig(argv, { hostname: () => 'node-a' });

test('the header is upstream\'s, with the component name', (t) => {
  t.is(flagzHeader('kproxy'), [
    '',
    '----------------------------',
    'title: kproxy flagz',
    'description: flags enabled in kproxy',
    'warning: This endpoint is not meant to be machine parseable and is for debugging purposes only.',
    '----------------------------',
    '',
  ].join('\n'));
});

test('every flag once, sorted, with the given value or the default, in pflag\'s text', (t) => {
  const body = load(['--proxy-mode=iptables', '--iptables-sync-period=90s', '--nodeport-addresses=10.0.0.0/8,fd00::/64',
    '--feature-gates=WatchListClient=false,ComponentFlagz=true', '-v=2', '--masquerade-all']).flagz;
  t.true(body.startsWith(`${flagzHeader('kproxy')}\n`));
  const lines = body.slice(flagzHeader('kproxy').length + 1).trimEnd().split('\n');
  const names = lines.map((l) => l.slice(0, l.indexOf('=')));
  t.deepEqual(names, [...names].sort(), 'sorted');
  t.is(new Set(names).size, names.length, 'each once');
  for (const l of ['proxy-mode=iptables', 'iptables-sync-period=1m30s', 'nodeport-addresses=[10.0.0.0/8,fd00::/64]',
    'feature-gates=ComponentFlagz=true,WatchListClient=false', 'v=2', 'masquerade-all=true',
    // defaults, including the flags accepted at their default only
    'conntrack-max-per-core=32768', 'oom-score-adj=-999', 'config-sync-period=15m0s', 'kube-api-qps=5', 'cleanup=false']) {
    t.true(lines.includes(l), l);
  }
});

function fetch(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    }).on('error', reject);
  });
}

test('the metrics server serves it as text/plain, and 404 without it', async (t) => {
  const config = load(['--proxy-mode=nftables']);
  const server = await startMetricsServer({ address: '127.0.0.1:0', mode: 'nftables', registry: new Registry(), configz: () => config.raw, flagz: () => config.flagz });
  const bare = await startMetricsServer({ address: '127.0.0.1:0', mode: 'nftables', registry: new Registry(), configz: () => config.raw });
  try {
    const r = await fetch(server.port, '/flagz');
    t.is(r.status, 200);
    t.is(r.type, 'text/plain; charset=utf-8');
    t.is(r.body, config.flagz);
    t.is((await fetch(bare.port, '/flagz')).status, 404);
  } finally {
    await server.close();
    await bare.close();
  }
});
