// Node setup as upstream's server: conntrack's table size, hash size and timeouts, tcp_be_liberal,
// oom_score_adj, and the CAP_NET_ADMIN check, on an in-memory /proc and /sys. Whatever cannot be
// written is logged and skipped (never a crash).
import test from 'ava';
import { DEFAULT_CONNTRACK, type ConntrackConfig } from '../../ts/config/conntrack.js';
import { createLogger } from '../../ts/log.js';
import { applyOomScoreAdj, conntrackMax, hasNetAdmin, HASHSIZE_PATH, setupConntrack, type NodeFiles } from '../../ts/proxier/node-setup.js';
import { captureLines } from '../helpers/log-capture.js';

const P = (name: string) => `/proc/sys/net/netfilter/${name}`;
const RW_SYS = 'sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\nproc /proc proc rw 0 0\n';
const RO_SYS = 'sysfs /sys sysfs ro,nosuid,nodev,noexec,relatime 0 0\n';

/** A node's files: path → value; `readOnly` paths refuse writes, as a read-only /proc/sys does. */
function node(files: Record<string, string>, opts: { cpus?: number; readOnly?: string[] } = {}) {
  const state = new Map(Object.entries(files));
  const writes: string[] = [];
  const fs: NodeFiles = {
    read(path) {
      const v = state.get(path);
      if (v === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
      return v;
    },
    write(path, value) {
      if (opts.readOnly?.some((p) => path.startsWith(p)) || !state.has(path)) throw Object.assign(new Error(`EROFS: ${path}`), { code: 'EROFS' });
      state.set(path, value);
      writes.push(`${path}=${value}`);
    },
    cpus: () => opts.cpus ?? 2,
  };
  return { fs, state, writes };
}

const conntrackFiles = (over: Record<string, string> = {}) => ({
  [P('nf_conntrack_max')]: '65536',
  [P('nf_conntrack_tcp_timeout_established')]: '432000',
  [P('nf_conntrack_tcp_timeout_close_wait')]: '60',
  [P('nf_conntrack_udp_timeout')]: '30',
  [P('nf_conntrack_udp_timeout_stream')]: '120',
  [P('nf_conntrack_tcp_be_liberal')]: '0',
  [HASHSIZE_PATH]: '16384',
  '/proc/self/mounts': RW_SYS,
  ...over,
});

const MAX_CASES: Array<[Pick<ConntrackConfig, 'maxPerCore' | 'min'>, number, number]> = [
  [{ maxPerCore: 32768, min: 131072 }, 2, 131072], // the floor wins on a small node
  [{ maxPerCore: 32768, min: 131072 }, 8, 262144],
  [{ maxPerCore: 32768, min: 0 }, 1, 32768],
  [{ maxPerCore: 0, min: 131072 }, 64, 0], // 0: leave it (and ignore min)
];
for (const [c, ncpu, max] of MAX_CASES) {
  test(`conntrack max: ${c.maxPerCore}/core, min ${c.min}, ${ncpu} CPUs → ${max}`, (t) => {
    t.is(conntrackMax(c, ncpu), max);
  });
}

test('defaults: nf_conntrack_max to the floor, hashsize to max/4, the two TCP timeouts; UDP ones left', (t) => {
  const n = node(conntrackFiles());
  const out = setupConntrack(DEFAULT_CONNTRACK, false, createLogger(0, captureLines().stream), n.fs);
  t.deepEqual(n.writes, [
    `${P('nf_conntrack_max')}=131072`,
    `${HASHSIZE_PATH}=32768`,
    `${P('nf_conntrack_tcp_timeout_established')}=86400`,
    `${P('nf_conntrack_tcp_timeout_close_wait')}=3600`,
  ]);
  t.deepEqual(out, { missing: [], failed: [] });
});

test('values already right are not written again; tcpBeLiberal and the UDP timeouts when set', (t) => {
  const n = node(conntrackFiles({ [P('nf_conntrack_max')]: '131072', [HASHSIZE_PATH]: '65536', [P('nf_conntrack_tcp_timeout_established')]: '86400' }));
  setupConntrack({ ...DEFAULT_CONNTRACK, tcpCloseWaitTimeoutMs: 0, udpTimeoutMs: 45_500, udpStreamTimeoutMs: 180_000 }, true, createLogger(0, captureLines().stream), n.fs);
  t.deepEqual(n.writes, [`${P('nf_conntrack_udp_timeout')}=45`, `${P('nf_conntrack_udp_timeout_stream')}=180`, `${P('nf_conntrack_tcp_be_liberal')}=1`]);
});

test('a read-only /sys: hashsize skipped with upstream\'s warning, the sysctls still set', (t) => {
  const n = node(conntrackFiles({ '/proc/self/mounts': RO_SYS }));
  const log = captureLines();
  setupConntrack(DEFAULT_CONNTRACK, false, createLogger(0, log.stream), n.fs);
  t.false(n.writes.some((w) => w.startsWith(HASHSIZE_PATH)));
  t.true(n.writes.includes(`${P('nf_conntrack_max')}=131072`));
  t.true(log.lines.some((l) => l.level === 40 && String(l.msg).startsWith('CRI error: /sys is read-only')));
});

test('a read-only /proc/sys: every write is logged and skipped, nothing throws', (t) => {
  const n = node(conntrackFiles(), { readOnly: ['/proc/sys/'] });
  const log = captureLines();
  const out = setupConntrack(DEFAULT_CONNTRACK, true, createLogger(0, log.stream), n.fs);
  t.deepEqual(n.writes, []);
  t.deepEqual(out.failed, ['net/netfilter/nf_conntrack_max', 'net/netfilter/nf_conntrack_tcp_timeout_established',
    'net/netfilter/nf_conntrack_tcp_timeout_close_wait', 'net/netfilter/nf_conntrack_tcp_be_liberal']);
  t.is(log.lines.filter((l) => l.msg === 'Could not set sysctl; leaving it as it is').length, 4);
});

test('nf_conntrack not loaded yet: the sysctls are reported missing (to try again after the first sync)', (t) => {
  const n = node({ '/proc/self/mounts': RW_SYS });
  const out = setupConntrack(DEFAULT_CONNTRACK, false, createLogger(0, captureLines().stream), n.fs);
  t.deepEqual(out.missing, ['net/netfilter/nf_conntrack_max', 'net/netfilter/nf_conntrack_tcp_timeout_established', 'net/netfilter/nf_conntrack_tcp_timeout_close_wait']);
  t.deepEqual(n.writes, []);
});

test('oom_score_adj: written; a refusal is logged at V(2) and not fatal', (t) => {
  const ok = node({ '/proc/self/oom_score_adj': '0' });
  t.true(applyOomScoreAdj(-999, createLogger(0, captureLines().stream), ok.fs));
  t.deepEqual(ok.writes, ['/proc/self/oom_score_adj=-999']);
  const refused = node({ '/proc/self/oom_score_adj': '0' }, { readOnly: ['/proc/self/'] });
  const log = captureLines();
  t.false(applyOomScoreAdj(-999, createLogger(2, log.stream), refused.fs));
  t.deepEqual(log.lines.map((l) => l.msg), ['Failed to apply OOMScore']);
});

const CAPS: Array<[string, boolean | undefined]> = [
  ['CapEff:\t000001ffffffffff\n', true], // root
  ['CapEff:\t0000000000001000\n', true], // CAP_NET_ADMIN only (bit 12)
  ['CapEff:\t000001ffffffefff\n', false], // everything but CAP_NET_ADMIN
  ['CapEff:\t0000000000000000\n', false],
  ['Name:\tnode\n', undefined],
];
for (const [status, expected] of CAPS) {
  test(`CAP_NET_ADMIN from ${JSON.stringify(status.trim())} → ${expected}`, (t) => {
    t.is(hasNetAdmin(node({ '/proc/self/status': `Name:\tnode\n${status}` }).fs), expected);
  });
}
