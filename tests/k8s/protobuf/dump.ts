// Run in the node namespace by protobuf.test.ts: lists and watches (from resourceVersion 0, whose
// first events are the current objects) Services and EndpointSlices in both encodings, through
// kproxy's own client, and prints what each gave as one JSON object.
import { listRequest, loadApiEndpoint, watchStream, type WatchEvent } from '../../../ts/sources/kube-client.js';
import type { MessageSchema } from '../../../ts/sources/protobuf/decode.js';
import { ENDPOINT_SLICE, SERVICE } from '../../../ts/sources/protobuf/schemas.js';

const ep = loadApiEndpoint({ kubeconfig: process.argv[2] });
const resources: [string, string, MessageSchema][] = [
  ['services', '/api/v1/services', SERVICE],
  ['endpointslices', '/apis/discovery.k8s.io/v1/endpointslices', ENDPOINT_SLICE],
];

async function watchAll(path: string, count: number, schema?: MessageSchema): Promise<WatchEvent[]> {
  const events: WatchEvent[] = [];
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 20_000);
  await watchStream(ep, `${path}?watch=1&resourceVersion=0`, (e) => {
    events.push(e);
    if (events.length >= count) abort.abort();
  }, abort.signal, undefined, schema);
  clearTimeout(timer);
  return events;
}

const out: Record<string, unknown> = {};
for (const [name, path, schema] of resources) {
  for (const [encoding, pb] of [['json', undefined], ['protobuf', schema]] as const) {
    const items: unknown[] = [];
    const { status } = await listRequest(ep, `${path}?resourceVersion=0`, (o) => items.push(o), pb);
    if (status !== 200) throw new Error(`list ${path} (${encoding}): HTTP ${status}`);
    out[`${name}/${encoding}/list`] = items;
    out[`${name}/${encoding}/watch`] = await watchAll(path, items.length, pb);
  }
}
// An error answer in protobuf is a Status too.
out.refused = await listRequest(ep, '/api/v1/namespaces/nowhere/services/none', () => {}, SERVICE);
process.stdout.write(JSON.stringify(out));
