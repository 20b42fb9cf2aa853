// `kproxy trace`: its flags, its answer for people, and the command end to end on the
// bundled demo manifests (in-memory fakes: no root, no kernel).
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../ts/config/errors.js';
import { parseTraceArgs, printTrace } from '../../ts/trace.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

test('trace flags are taken out; the rest are kproxy flags', (t) => {
  const { trace, rest } = parseTraceArgs(['--manifests', 'x', '--from', '10.0.0.1', '--to=10.96.0.10:53/udp', '--from-node', '--local-cidrs', '10.96.0.0/16, fd00::/64', '-v', '2']);
  t.deepEqual(trace, { from: '10.0.0.1', to: { host: '10.96.0.10', port: 53, protocol: 'UDP' }, fromNode: true, localCidrs: ['10.96.0.0/16', 'fd00::/64'], json: false });
  t.deepEqual(rest, ['--manifests', 'x', '-v', '2']);
  t.deepEqual(parseTraceArgs(['--from', 'fd00::1', '--to', '[fd00:96::10]:80']).trace.to, { host: 'fd00:96::10', port: 80, protocol: 'TCP' });
});

const bad: [string[], RegExp][] = [
  [['--to', '10.96.0.10:80'], /--from must be an IP/],
  [['--from', 'nope', '--to', '10.96.0.10:80'], /--from must be an IP/],
  [['--from', '10.0.0.1'], /--to is required/],
  [['--from', '10.0.0.1', '--to', '10.96.0.10'], /IP:PORT/],
  [['--from', '10.0.0.1', '--to', '10.96.0.10:0'], /IP:PORT/],
  [['--from', '10.0.0.1', '--to', '10.96.0.10:80/icmp'], /unknown protocol/],
  [['--from', '10.0.0.1', '--to', '[fd00::1]:80'], /same IP family/],
  [['--from'], /needs a value/],
];
for (const [argv, msg] of bad) {
  test(`trace refuses ${argv.join(' ')}`, (t) => {
    t.throws(() => parseTraceArgs(argv), { instanceOf: ConfigError, message: msg });
  });
}

test('the answer names the Service, every endpoint the balancer may pick, and the rules', (t) => {
  const out = printTrace(
    { src: '192.168.100.2', dst: '10.96.0.10', port: 80, protocol: 'TCP' },
    {
      outcomes: [
        { verdict: 'DNAT', endpoint: '10.244.1.2:8080', masquerade: true },
        { verdict: 'DNAT', endpoint: '10.244.2.2:8080', masquerade: true },
      ],
      service: 'demo/web:http',
      path: ['kube-proxy nat-prerouting: jump services'],
    },
    false,
  );
  t.is(out, [
    '192.168.100.2 → 10.96.0.10:80/TCP',
    'service: demo/web:http',
    'outcome: one of 2, chosen at random per connection',
    '  DNAT to 10.244.1.2:8080, masqueraded',
    '  DNAT to 10.244.2.2:8080, masqueraded',
    'why (the rules it passed):',
    '  kube-proxy nat-prerouting: jump services',
    '',
  ].join('\n'));
});

function kproxy(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'ts/cli.ts', ...args], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
}

test('kproxy trace on the demo manifests: the web Service from outside is DNATed and masqueraded', (t) => {
  const r = kproxy(['trace', '--manifests', 'examples/demo', '--cluster-cidr', '10.244.0.0/16,fd00:244::/48', '--from', '192.168.100.2', '--to', '10.96.0.10:80/TCP', '--json']);
  t.is(r.status, 0, r.stderr);
  const answer = JSON.parse(r.stdout);
  t.is(answer.service, 'demo/web:http');
  t.deepEqual(answer.outcomes.map((o: { endpoint: string }) => o.endpoint).sort(), ['10.244.1.2:8080', '10.244.2.2:8080', '10.244.3.2:8080']);
  t.true(answer.outcomes.every((o: { masquerade: boolean; verdict: string }) => o.masquerade && o.verdict === 'DNAT'));
});

test('kproxy trace with a bad flag exits 2 and says why', (t) => {
  const r = kproxy(['trace', '--manifests', 'examples/demo', '--from', '10.0.0.1', '--to', 'nonsense']);
  t.is(r.status, 2);
  t.regex(r.stderr, /--to must be IP:PORT/);
});
