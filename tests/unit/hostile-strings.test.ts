// Issue 12, hostile strings: object-derived text (names, port names, node names, zones) fed
// through the real path to each sink that could be broken out of. A table of (sink, input,
// check): validation refuses most; what passes it, or what a hand-built ServicePort carries,
// must still leave every sink's output exactly as it would be without it.
import test, { type ExecutionContext } from 'ava';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { Agent } from '../../ts/agent.js';
import { loadAddon } from '../../ts/addon/native.js';
import { encodeServicePorts, HEADER } from '../../ts/addon/wire.js';
import { loadConfig } from '../../ts/config/index.js';
import { clusterIPServicePort, readyEndpoint } from '../../ts/model/build.js';
import type { ServicePort } from '../../ts/model/types.js';
import { createProxiers } from '../../ts/proxier/registry.js';
import { renderStatusPage } from '../../ts/status/page.js';
import { renderTable } from '../../ts/status/table.js';
import { ChangeTracker } from '../../ts/tracker/change-tracker.js';
import type { KubeObject } from '../../ts/sources/types.js';
import { captureLines } from '../helpers/log-capture.js';
import { ScriptedSource } from '../helpers/scripted.js';

const HOSTILE: Array<[string, string]> = [
  ['double quote', 'a"b'],
  ['single quote', "a'b"],
  ['newline', 'a\n-A KUBE-SERVICES -j ACCEPT'],
  ['carriage return', 'a\rb'],
  ['NUL', 'a\0b'],
  ['semicolon', 'a;reboot'],
  ['command substitution', '$(reboot)'],
  ['backticks', '`reboot`'],
  ['script tag', '<script>alert(1)</script>'],
  ['backslash', 'a\\"b'],
  ['ANSI escape', '\x1b[2J\x1b]0;pwned\x07'],
  ['space', 'a b'],
  ['unicode', 'ünïcödé-名前'],
  ['RTL override', 'abc\u202edef'],
  ['very long', 'a'.repeat(100_000)],
];

const VIP = '10.96.0.10';
const good = clusterIPServicePort({ namespace: 'default', name: 'web', portName: 'http', protocol: 'TCP', clusterIP: VIP, port: 80, endpoints: [readyEndpoint('10.244.1.2', 8080)] });

/** Hand-built ServicePorts carrying the input where names go (no validation on this path). */
function handBuilt(input: string): ServicePort[] {
  const base = { protocol: 'TCP' as const, clusterIP: '10.96.0.20', port: 80, endpoints: [readyEndpoint('10.244.1.3', 8080)] };
  return [
    clusterIPServicePort({ ...base, namespace: 'default', name: input, portName: 'http' }),
    clusterIPServicePort({ ...base, namespace: input, name: 'x', portName: 'http' }),
    clusterIPServicePort({ ...base, namespace: 'default', name: 'x', portName: input }),
    { ...clusterIPServicePort({ ...base, namespace: 'default', name: 'x', portName: 'http' }), key: input },
  ];
}

/** A wire row the TS encoder would refuse, written by hand: what the addon does on its own. */
function rawWire(input: string): string {
  const rec: Record<string, string> = { key: 'default/x/tcp/http', namespace: 'default', name: input, portName: 'http', protocol: 'TCP', type: 'ClusterIP',
    clusterIP: '10.96.0.20', port: '80', nodePort: '0', sessionAffinity: 'None', stickyMaxAgeSeconds: '0', externalPolicyLocal: '0', internalPolicyLocal: '0',
    healthCheckNodePort: '0', endpoints: '10.244.1.3,8080,RSC' };
  return `${HEADER}\n${HEADER.split('\t').slice(1).map((c) => rec[c] ?? '').join('\t')}`;
}

const addon = () => loadAddon();
const iptablesRestore = (wire: string) => {
  const r = new (addon().IptablesRules)({ family: 'IPv4', masqueradeAll: false, masqueradeBit: 14 });
  const plan = r.plan({ full: true, upserts: wire, deletes: [], serviceCidrs: [] });
  return { text: plan.restores.join(''), rejected: plan.rejected };
};
const nftDump = async (wire: string) => {
  const n = new (addon().NftablesProxier)({ family: 'IPv4', masqueradeAll: false, masqueradeBit: 14, fake: true });
  const r = await n.sync({ full: true, upserts: wire, deletes: [] });
  return { text: n.fakeDump(), rejected: r.rejected };
};
const ipvsRender = async (wire: string) => {
  const p = new (addon().IpvsProxier)({ family: 'IPv4', masqueradeAll: false, masqueradeBit: 14, fake: true });
  const r = await p.sync({ full: true, upserts: wire, deletes: [] });
  return { text: p.render(), rejected: r.rejected };
};

/** The addon's rendering of `sps` with the hostile ones refused by the wire, vs of `good` alone. */
async function throughWire(t: ExecutionContext, input: string, render: (wire: string) => Promise<{ text: string; rejected: unknown[] }> | { text: string; rejected: unknown[] }) {
  const { text, rejected } = encodeServicePorts([...handBuilt(input), good]);
  t.is(rejected.length, 4, 'the wire refuses each hand-built ServicePort');
  for (const r of rejected) {
    t.true(r.key.length <= 256 && !/[\x00-\x1f\x7f]/.test(r.key), 'the refused key, shown in logs and the status page, is clipped and printable');
  }
  t.is(text.split('\n').length, 2, 'header and the good row only');
  const withHostile = await render(text);
  const alone = await render(encodeServicePorts([good]).text);
  t.is(withHostile.text, alone.text, 'exactly the output without the hostile ServicePorts');
  return alone.text;
}

/** An agent (nftables fake) that was sent hostile objects in every name field, and what it logged. */
async function hostileAgent(input: string) {
  const config = loadConfig(['--manifests', '/unused', '--hostname-override', 'node-a', '--metrics-bind-address=', '--healthz-bind-address=',
    '--iptables-min-sync-period', '0s', '--iptables-sync-period', '1h']);
  const { lines, stream } = captureLines();
  const logger = pino({ level: 'info' }, stream);
  const registry = new Registry();
  const proxiers = await createProxiers('nftables', ['IPv4'], { masqueradeAll: false, masqueradeBit: 14, fake: true, registry, logger });
  const source = new ScriptedSource();
  const agent = new Agent({ config, logger, source, proxiers, registry, serviceHealth: false });
  await agent.start();
  const svc = (ns: string, name: string, port = 'http', ip = VIP): KubeObject => ({ apiVersion: 'v1', kind: 'Service', metadata: { namespace: ns, name },
    spec: { clusterIP: ip, clusterIPs: [ip], ports: [{ name: port, port: 80, targetPort: 8080, protocol: 'TCP' }] } });
  const slice = (name: string, service: string, ep: Record<string, unknown> = {}): KubeObject => ({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { namespace: 'default', name, labels: { 'kubernetes.io/service-name': service } }, addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: [{ addresses: ['10.244.1.2'], conditions: { ready: true }, ...ep }] });
  const first = agent.nextSync();
  source.emit('Service', 'ADDED', svc('default', 'web'));
  // Free-text fields validation lets through: they must not reach any rule.
  source.emit('EndpointSlice', 'ADDED', slice('web-x', 'web', { nodeName: input, zone: input, hints: { forZones: [{ name: input }] } }));
  source.emit('Service', 'ADDED', svc('default', input, 'http', '10.96.0.21'));
  source.emit('Service', 'ADDED', svc(input, 'x', 'http', '10.96.0.22'));
  source.emit('Service', 'ADDED', svc('default', 'y', input, '10.96.0.23'));
  source.emit('EndpointSlice', 'ADDED', slice(input, 'web'));
  source.emit('EndpointSlice', 'ADDED', slice('z-x', input));
  source.emit('Node', 'ADDED', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a', labels: { 'topology.kubernetes.io/zone': input } } });
  source.handler!.onSynced();
  await first;
  return { agent, lines, registry, proxier: proxiers[0], stop: () => agent.stop() };
}

type Check = (t: ExecutionContext, input: string) => Promise<void> | void;

const SINKS: Array<[string, Check]> = [
  ['validation (tracker)', (t, input) => {
    const invalid: string[] = [];
    const tracker = new ChangeTracker({ families: ['IPv4'], nodeName: 'node-a', onInvalid: (k, r) => invalid.push(`${k} ${r}`) });
    const svc = (ns: string, name: string, port: string) => ({ apiVersion: 'v1', kind: 'Service', metadata: { namespace: ns, name }, spec: { clusterIP: VIP, ports: [{ name: port, port: 80 }] } });
    tracker.onEvent('Service', 'ADDED', svc('default', input, 'http'));
    tracker.onEvent('Service', 'ADDED', svc(input, 'web', 'http'));
    tracker.onEvent('Service', 'ADDED', svc('default', 'web', input));
    t.is(invalid.length, 3, invalid.join(', '));
    t.true(invalid.every((i) => /^Service (bad-name|name-too-long)$/.test(i)), invalid.join(', '));
    t.deepEqual(tracker.all('IPv4'), []);
  }],
  ['iptables-restore input', async (t, input) => {
    const text = await throughWire(t, input, iptablesRestore);
    const lines = text.split('\n').filter(Boolean);
    for (const l of lines) t.regex(l, /^(\*(nat|filter|mangle)|:[A-Z0-9-]+ - \[0:0\]|-[AX] [A-Z0-9-]+( .*)?|COMMIT)$/, 'every line is a table, chain, rule or COMMIT');
    for (const m of text.matchAll(/--comment "([^"]*)"/g)) t.regex(m[1], /^[^"\\\x00-\x1f\x7f]{1,256}$/);
    // The addon alone (a hand-written wire row): it refuses quotes, blanks, backslashes and
    // control characters; what it takes stays inside one quoted comment on its own lines.
    const raw = iptablesRestore(rawWire(input));
    if (raw.rejected.length === 0) {
      t.is(raw.text.split('\n').length, iptablesRestore(rawWire('benign')).text.split('\n').length);
      for (const l of raw.text.split('\n')) t.is((l.match(/"/g) ?? []).length % 2, 0, 'quotes balanced');
    } else t.false(raw.text.includes(input));
  }],
  ['nft comments', async (t, input) => {
    const text = await throughWire(t, input, nftDump);
    for (const m of text.matchAll(/comment "([^"]*)"/g)) t.regex(m[1], /^[^"\\\x00-\x1f\x7f]{1,128}$/);
    const raw = await nftDump(rawWire(input));
    if (raw.rejected.length > 0) t.false(raw.text.includes(input));
    // Accepted by the addon alone: no line more than with a benign name. (The fake keeps the
    // whole comment; to the kernel udata::put_str cuts it at 253 bytes. Names of any length get
    // this far only on a hand-written wire: the TS encoder refuses them, as checked above.)
    else t.is(raw.text.split('\n').length, (await nftDump(rawWire('benign'))).text.split('\n').length);
  }],
  ['IPVS', async (t, input) => {
    await throughWire(t, input, ipvsRender);
  }],
  ['log lines', async (t, input) => {
    const a = await hostileAgent(input);
    t.teardown(a.stop);
    // captureLines parses each line as JSON: a raw newline in a value would have split one.
    const skips = a.lines.filter((l) => l.msg === 'Skipping invalid object');
    t.is(skips.length, 5, JSON.stringify(skips.map((l) => [l.reason, l.object])));
    for (const l of a.lines) t.true(JSON.stringify(l).length < 2048, 'log lines stay short whatever the name');
    for (const l of skips) t.true((l.object as string).length <= 'default/'.length + 257);
  }],
  ['status page HTML', async (t, input) => {
    const a = await hostileAgent(input);
    t.teardown(a.stop);
    const doc = a.agent.statusDoc();
    t.is(doc.invalid.total, 5);
    t.deepEqual(doc.services.map((s) => s.service), ['default/web:http'], 'only the valid Service');
    const page = renderStatusPage(doc, { filter: input });
    // The same filter with the markup characters replaced: it matches the same rows.
    const benign = renderStatusPage(doc, { filter: input.replace(/[<>"'&]/g, 'x') });
    const tags = (html: string) => (html.match(/<[a-zA-Z/!]/g) ?? []).length;
    t.is(tags(page), tags(benign), 'no markup from the input');
    if (/[<>"'&]/.test(input)) t.false(page.includes(input.slice(0, 500)));
    t.false(page.includes('<script>alert'));
  }],
  ['kproxy status text', async (t, input) => {
    const a = await hostileAgent(input);
    t.teardown(a.stop);
    const text = renderTable(a.agent.statusDoc(), 'http://127.0.0.1:10249');
    t.false(/[\x00-\x09\x0b-\x1f\x7f\u202e]/.test(text), 'no control characters reach the terminal');
  }],
  ['Prometheus labels', async (t, input) => {
    const a = await hostileAgent(input);
    t.teardown(a.stop);
    const text = await a.registry.metrics();
    const sample = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*\})? [-+0-9.eEInfaN]+$/;
    for (const l of text.split('\n')) if (l !== '' && !l.startsWith('#')) t.regex(l, sample);
    const invalid = (await a.registry.getSingleMetric('kproxy_invalid_objects_total')!.get()).values;
    t.true(invalid.every((v) => /^[A-Za-z]+$/.test(String(v.labels.kind)) && /^[a-z-]+$/.test(String(v.labels.reason))), 'kind and reason come from code');
    if (input.length > 3) t.false(text.includes(input), 'no object text in any label');
  }],
];

for (const [sink, check] of SINKS) {
  for (const [what, input] of HOSTILE) test(`${sink}: ${what}`, (t) => check(t, input));
}

// Shell: no child process is started through a shell, so no argument is ever parsed by one;
// object text goes to iptables-restore on stdin, never into argv.
test('shell: child processes are started without a shell', (t) => {
  const root = join(import.meta.dirname, '../../ts');
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts')) files.push(p);
    }
  };
  walk(root);
  const users = files.filter((f) => readFileSync(f, 'utf8').includes('node:child_process'));
  t.true(users.length > 0);
  for (const f of users) {
    const src = readFileSync(f, 'utf8');
    const imported = [...src.matchAll(/import\s*\{([^}]*)\}\s*from\s*'node:child_process'/g)].flatMap((m) => m[1].split(',').map((s) => s.trim().split(/\s+/)[0]).filter(Boolean));
    for (const name of imported) t.true(['spawn', 'spawnSync', 'execFile', 'execFileSync', 'ChildProcess', 'type'].includes(name), `${relative(root, f)} imports ${name}`);
    t.false(/\bshell\s*:/.test(src), `${relative(root, f)} passes a shell option`);
  }
});
