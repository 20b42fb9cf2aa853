// The list/watch selectors through a real API server, for kproxy and for upstream kube-proxy
// alike (one table, both proxies): a Service another proxy claims
// (service.kubernetes.io/service-proxy-name) is left alone, and is taken up when the label goes.
//   other 10.96.0.30   80/TCP -> 8080, backend-1
import test from 'ava';
import { waitForServiceIP, waitForServiceIPGone, listMap, type Agent } from '../helpers/agent.js';
import { endpointSlice, service } from '../netns/manifests.js';
import { bedFor, startKproxy, startUpstream, WEB_IP, type Bed } from './bed.js';

const OTHER_IP = '10.96.0.30';
const LABEL = 'service.kubernetes.io/service-proxy-name';

const PROXIES: Array<[string, (t: Parameters<typeof startKproxy>[0], bed: Bed) => Agent]> = [
  ['kproxy', startKproxy],
  ['upstream kube-proxy (nftables)', (t, bed) => startUpstream(t, bed, 'nftables')],
];

for (const [name, start] of PROXIES) {
  test.serial(`${name}: a Service labelled for another proxy is not programmed, and is once the label goes`, async (t) => {
    const bed = await bedFor(t, `k8s-sel-${name.startsWith('kproxy') ? 'kp' : 'up'}`);
    const other = service('other', [OTHER_IP], [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }]) as any;
    other.metadata.labels = { ...(other.metadata.labels ?? {}), [LABEL]: 'someone-else' };
    const slice = endpointSlice('other', 'IPv4', [bed.topo.backends[0].v4], [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }]) as any;
    slice.metadata.labels = { ...slice.metadata.labels, [LABEL]: 'someone-else' };
    await bed.cp.apply(other, slice);
    const proxy = start(t, bed);
    await waitForServiceIP(bed.topo, proxy, WEB_IP, 60_000);
    // The web Service is in; the claimed one is not, after several syncs.
    await new Promise((r) => setTimeout(r, 3000));
    t.false((await listMap(bed.topo, 'ip', 'service-ips')).includes(`${OTHER_IP} . `), 'the claimed Service is not programmed');

    await bed.cp.kubectl(['label', 'service', 'other', `${LABEL}-`]);
    await bed.cp.kubectl(['label', 'endpointslice', 'other-ipv4', `${LABEL}-`]);
    await waitForServiceIP(bed.topo, proxy, OTHER_IP, 60_000);
    t.is(await bed.answered(OTHER_IP), 'backend-1', 'the Service answers once no other proxy claims it');

    await bed.cp.kubectl(['label', 'service', 'other', `${LABEL}=someone-else`]);
    await waitForServiceIPGone(bed.topo, proxy, OTHER_IP, 60_000);
    t.pass('and it is dropped when it is claimed again');
  });
}
