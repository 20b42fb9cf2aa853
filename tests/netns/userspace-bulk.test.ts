// userspace mode relays a long transfer byte-exact, and passes a half-close on as a direct
// connection does: the client sends 300 MiB and shuts its side; the backend answers with the
// count and hash of what it read, on the direction still open. Through the Service and
// directly, in both families; the two must give the same answer.
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { waitWhileRunning } from '../helpers/agent.js';
import { clusterFor } from './cluster.js';
import { slices, svc, type Port } from './matrix.js';
import { NODE_NAME } from './manifests.js';

const BULK: Port[] = [{ name: 'bulk', port: 9000, targetPort: 9000, protocol: 'TCP' }];
const VIPS = ['10.96.0.80', 'fd00:96::80'];
const MIB = 300;
const SCRIPT = fileURLToPath(new URL('../helpers/bulk.mjs', import.meta.url));

test.serial(`userspace mode: ${MIB} MiB arrive byte-exact and a half-close behaves as on a direct connection`, async (t) => {
  const c = await clusterFor(t, {
    name: 'usbulk',
    mode: 'userspace',
    extra: { 'bulk.yaml': [svc('bulk', VIPS, BULK), ...slices('bulk', { 1: NODE_NAME }, BULK)] },
  });
  const backend = c.topo.backends[0];
  const sink = c.topo.spawnIn(backend.ns, 'node', [SCRIPT, 'serve', '9000']);
  await waitWhileRunning(c.agent, 'the sink', async () => sink.output().includes('ready'));
  const send = async (host: string) => {
    const r = await c.topo.exec(c.topo.client, ['node', SCRIPT, 'send', host, '9000', String(MIB)], { allowFailure: true });
    return JSON.parse(r.stdout.trim().split('\n').pop() || '{}') as { sent?: number; hash?: string; reply?: string; error?: string };
  };
  for (const [vip, direct] of [[VIPS[0], backend.v4], [VIPS[1], backend.v6]]) {
    await waitWhileRunning(c.agent, `a listener on ${vip}`, async () => (await c.topo.exec(c.topo.node, ['ss', '-Hltn'])).stdout.includes(':9000'));
    const proxied = await send(vip);
    const straight = await send(direct);
    t.is(proxied.error, undefined, `through ${vip}: ${proxied.error}`);
    t.is(proxied.sent, MIB << 20);
    t.is(proxied.reply, `${proxied.sent} ${proxied.hash}`, `through ${vip}: the backend read every byte, and answered after the half-close`);
    t.deepEqual(proxied, straight, `through ${vip} as directly to ${direct}`);
  }
});
