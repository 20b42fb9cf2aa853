// The container images (scripts/image/build.sh, and the Dockerfile built by
// scripts/image/build-dockerfile.sh): the amd64 image serves the demo manifests with real
// packets from a node namespace, as uid 65532 with CAP_NET_ADMIN only; the arm64 image starts
// under qemu-user; and the Dockerfile's image has the same files and config as the buildah one.
// Runs where the images are built; KPROXY_TEST_IMAGE=1 (CI) makes missing ones fail.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CLUSTER_CIDRS, createTopology, REPO_ROOT, waitFor } from '../../ts/demo/topology.js';
import { configure, containerPid, crun, crunRun, unpack } from './crun.js';
import { configDigest, type Entry, readOciArchive, readOciIndex } from './oci.js';

const VERSION = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).version;
const IMAGES = {
  amd64: { file: 'build/image/kproxy-amd64.oci.tar', tag: `localhost/kproxy:${VERSION}-amd64` },
  arm64: { file: 'build/image/kproxy-arm64.oci.tar', tag: `localhost/kproxy:${VERSION}-arm64` },
  multiarch: { file: 'build/image/kproxy.oci.tar', tag: `localhost/kproxy:${VERSION}` },
  'dockerfile-amd64': { file: 'build/image/kproxy-dockerfile-amd64.oci.tar', tag: 'localhost/kproxy-dockerfile:amd64' },
  'dockerfile-arm64': { file: 'build/image/kproxy-dockerfile-arm64.oci.tar', tag: 'localhost/kproxy-dockerfile:arm64' },
};
const required = Boolean(process.env.KPROXY_TEST_IMAGE);
const hint = 'bash scripts/image/build.sh <amd64|arm64>, bash scripts/image/build-dockerfile.sh <amd64|arm64>';

function imageTest(title: string, needs: (keyof typeof IMAGES)[], body: (t: import('ava').ExecutionContext) => Promise<void> | void) {
  const missing = needs.map((k) => IMAGES[k].file).filter((f) => !existsSync(join(REPO_ROOT, f)));
  if (missing.length && !required) {
    test.skip(`${title} (${missing.join(', ')} not built: ${hint})`, () => {});
    return;
  }
  test.serial(title, async (t) => {
    t.deepEqual(missing, [], `not built: ${hint}`);
    await body(t);
  });
}

const image = (k: keyof typeof IMAGES) => readOciArchive(join(REPO_ROOT, IMAGES[k].file));
const key = (e: Entry) => `${e.path} type=${e.type} mode=${e.mode.toString(8)} owner=${e.uid}:${e.gid} size=${e.size} link=${e.link} xattrs=${JSON.stringify(e.xattrs)}`;
/** security.capability v2 with CAP_NET_ADMIN (bit 12) permitted and effective. */
const NET_ADMIN_EP = '0100000200100000000000000000000000000000';

imageTest('the image holds the runtime only: node with CAP_NET_ADMIN, iptables, kmod and /opt/kproxy, as uid 65532', ['amd64'], (t) => {
  const img = image('amd64');
  const paths = new Map(img.entries.map((e) => [e.path, e]));
  t.is(img.config.User, '65532:65532');
  t.deepEqual(img.config.Entrypoint, ['/usr/bin/node', '--max-semi-space-size=2', '/opt/kproxy/bin/kproxy.js']);
  t.deepEqual(paths.get('usr/bin/node')?.xattrs, { 'security.capability': NET_ADMIN_EP });
  for (const p of ['usr/sbin/xtables-nft-multi', 'usr/bin/kmod', 'opt/kproxy/dist/cli.js', 'opt/kproxy/native/kproxy.linux-x64-gnu.node', 'opt/kproxy/node_modules/pino/package.json']) {
    t.true(paths.has(p), `${p} is in the image`);
  }
  t.is(paths.get('usr/sbin/iptables-restore')?.link, 'xtables-nft-multi');
  t.is(paths.get('home/nonroot')?.uid, 65532);
  // The GPL and LGPL want the licences with the binaries, and where the source is.
  // (Debian links some packages' doc directory to another's: kmod's is libkmod2's.)
  const docDir = (pkg: string) => { const e = paths.get(`usr/share/doc/${pkg}`); return e?.type === '2' ? e.link : pkg; };
  for (const pkg of ['libc6', 'iptables', 'kmod', 'libkmod2', 'libnftnl11', 'libstdc++6']) t.true(paths.has(`usr/share/doc/${docDir(pkg)}/copyright`), `${pkg}'s copyright`);
  t.true(paths.has('usr/share/doc/kproxy-image/debian-packages'));
  t.true(paths.has('usr/share/licenses/node/LICENSE'));
  // No shell, compiler, package manager or build output.
  const forbidden = /^(usr\/)?(s?bin)\/(sh|bash|dash|gcc|cc|ld|make|npm|npx|apt|apt-get|dpkg|python3?|cargo|rustc)$|\.(map|d\.ts)$|^opt\/kproxy\/(ts|tests|crates|docs|node_modules\/typescript)\//;
  t.deepEqual(img.entries.map((e) => e.path).filter((p) => forbidden.test(p)), []);
  t.deepEqual([...paths.keys()].filter((p) => p.endsWith('.node')), ['opt/kproxy/native/kproxy.linux-x64-gnu.node'], 'one addon, for amd64');
  const unpacked = img.entries.reduce((n, e) => n + e.size, 0);
  t.log(`amd64 image: ${(img.layerBytes / 2 ** 20).toFixed(1)} MiB compressed, ${(unpacked / 2 ** 20).toFixed(1)} MiB unpacked, ${img.entries.length} entries`);
});

for (const arch of ['amd64', 'arm64'] as const) {
  imageTest(`the Dockerfile builds the same ${arch} image as scripts/image/build.sh: every file, and the config`, [arch, `dockerfile-${arch}`], (t) => {
    const a = image(arch);
    const b = image(`dockerfile-${arch}`);
    const strip = (c: typeof a.config) => ({ ...c, Labels: Object.fromEntries(Object.entries(c.Labels ?? {}).filter(([k]) => k !== 'io.buildah.version')) });
    t.deepEqual(strip(b.config), strip(a.config));
    t.is(b.architecture, arch);
    t.is(a.architecture, arch);
    const kb = new Set(b.entries.map(key));
    const ka = new Set(a.entries.map(key));
    const onlyBuildah = [...ka].filter((x) => !kb.has(x));
    const onlyDockerfile = [...kb].filter((x) => !ka.has(x));
    t.deepEqual({ onlyBuildah: onlyBuildah.slice(0, 20), onlyDockerfile: onlyDockerfile.slice(0, 20) }, { onlyBuildah: [], onlyDockerfile: [] });
    t.true(ka.size > 1000, `${ka.size} entries compared`);
  });
}

imageTest('the multi-arch archive indexes both images, by platform', ['amd64', 'arm64', 'multiarch'], (t) => {
  const index = readOciIndex(join(REPO_ROOT, IMAGES.multiarch.file));
  t.deepEqual(index.map((m) => m.platform).sort(), ['linux/amd64', 'linux/arm64']);
  for (const arch of ['amd64', 'arm64'] as const) {
    t.is(index.find((m) => m.platform === `linux/${arch}`)?.config, configDigest(join(REPO_ROOT, IMAGES[arch].file)), `the ${arch} entry is build.sh's ${arch} image`);
  }
});

imageTest('the amd64 image serves the demo manifests from a node namespace, non-root with only CAP_NET_ADMIN', ['amd64'], async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-image-'));
  const topo = await createTopology({ backends: 3, name: 'img' });
  const id = `kproxy-test-${process.pid}`;
  t.teardown(async () => {
    crun(['delete', '--force', id]);
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  const bundle = unpack(join(REPO_ROOT, IMAGES.amd64.file), IMAGES.amd64.tag, dir);
  configure(bundle, {
    netns: topo.node,
    mounts: { [resolve(REPO_ROOT, 'examples/demo')]: '/demo' },
    args: ['--manifests', '/demo', '--cluster-cidr', CLUSTER_CIDRS.join(','), '--hostname-override', 'demo-node',
      '--metrics-bind-address', '127.0.0.1:10249', '--healthz-bind-address', '0.0.0.0:10256', '-v', '2'],
  });
  const ctr = crunRun(bundle, id);
  for (const family of ['ip', 'ip6']) {
    await waitFor(`the demo Service in the ${family} kube-proxy table`, async () => {
      if (ctr.child.exitCode !== null) throw new Error(`the container exited (${ctr.child.exitCode}):\n${ctr.output().slice(-3000)}`);
      const map = await topo.exec(topo.node, ['nft', 'list', 'map', family, 'kube-proxy', 'service-ips'], { allowFailure: true });
      return map.stdout.includes(family === 'ip' ? '10.96.0.10 . ' : 'fd00:96::10 . ');
    }, { timeoutMs: 60_000 });
  }
  // The process as the kernel sees it: uid 65532, and CAP_NET_ADMIN (bit 12) alone effective.
  const status = readFileSync(`/proc/${containerPid(id)}/status`, 'utf8');
  t.regex(status, /^Uid:\s+65532\s+65532\s+65532\s+65532$/m);
  t.is(/^CapEff:\s+(\w+)$/m.exec(status)?.[1], (1n << 12n).toString(16).padStart(16, '0'));

  const flows = await topo.tcpRequests(topo.client, '10.96.0.10', 80, { count: 30 });
  t.deepEqual(flows.filter((f) => !f.ok), [], 'every TCP connection to the ClusterIP is answered');
  t.deepEqual([...new Set(flows.map((f) => (f.ok ? f.backend : '')))].sort(), ['backend-1', 'backend-2', 'backend-3']);
  const udp = await topo.udpRequest(topo.client, '10.96.0.10', 53);
  t.true(udp.ok && udp.backend.startsWith('backend-'), JSON.stringify(udp));
  const v6 = await topo.tcpRequest(topo.client, 'fd00:96::10', 80);
  t.true(v6.ok && v6.backend.startsWith('backend-'), JSON.stringify(v6));
  const mode = await topo.exec(topo.node, ['curl', '-sf', 'http://127.0.0.1:10249/proxyMode']);
  t.is(mode.stdout.trim(), 'nftables');
  const livez = await topo.exec(topo.node, ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:10256/livez']);
  t.is(livez.stdout, '200');

  t.is(crun(['kill', id, 'TERM']).code, 0);
  t.is(await ctr.exited, 0, ctr.output().slice(-2000));
  // As upstream, the rules stay in place when the agent exits.
  t.true((await topo.tcpRequest(topo.client, '10.96.0.10', 80)).ok);
});

imageTest('the arm64 image starts under qemu-user and prints its version', ['arm64'], async (t) => {
  const binfmt = '/proc/sys/fs/binfmt_misc/qemu-aarch64';
  t.true(existsSync(binfmt), `${binfmt} is not registered: update-binfmts --enable qemu-aarch64 (binfmt-support, qemu-user-static)`);
  // F: the kernel opens qemu when registering it, so it runs inside the container's root too.
  t.regex(readFileSync(binfmt, 'utf8'), /^flags: \w*F\w*$/m);
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-image-arm64-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const img = image('arm64');
  t.is(img.architecture, 'arm64');
  const bundle = unpack(join(REPO_ROOT, IMAGES.arm64.file), IMAGES.arm64.tag, dir);
  t.regex(execFileSync('file', ['-b', join(bundle, 'rootfs/usr/bin/node')], { encoding: 'utf8' }), /ARM aarch64/);
  t.regex(execFileSync('file', ['-b', join(bundle, 'rootfs/opt/kproxy/native/kproxy.linux-arm64-gnu.node')], { encoding: 'utf8' }), /ARM aarch64/);
  configure(bundle, { args: ['--version'] });
  const r = crun(['run', '--bundle', bundle, `kproxy-arm64-${process.pid}`]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim(), `kproxy v${VERSION} (kube-proxy v1.37 compatible)`);
  // The addon, not only the JavaScript: the plan renders with the arm64 .node.
  configure(bundle, { args: ['plan', '--manifests', '/demo', '--hostname-override', 'demo-node', '--cluster-cidr', CLUSTER_CIDRS.join(',')],
    mounts: { [resolve(REPO_ROOT, 'examples/demo')]: '/demo' } });
  const p = crun(['run', '--bundle', bundle, `kproxy-arm64-plan-${process.pid}`]);
  t.is(p.code, 0, p.stderr);
  t.regex(p.stdout, /^# kproxy plan: nftables IPv4$/m);
  t.regex(p.stdout, /10\.96\.0\.10/);
});
