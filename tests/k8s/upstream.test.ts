// Upstream kube-proxy v1.37.2 in the same harness as kproxy (tests/k8s/bed.ts): the same
// API server objects, the same packets. What upstream does here is the reference the
// packet matrix is held to.
import test from 'ava';
import { waitForServiceIP } from '../helpers/agent.js';
import { bedFor, startUpstream, WEB_IP, WEB_IP6 } from './bed.js';

test.serial('upstream kube-proxy (nftables mode) proxies the web Service from the same API server and follows a change', async (t) => {
  const bed = await bedFor(t, 'k8s-up-nft');
  const upstream = startUpstream(t, bed, 'nftables');
  // Upstream's table has the same name and the same service-ips map.
  await waitForServiceIP(bed.topo, upstream, WEB_IP, 60_000);
  await waitForServiceIP(bed.topo, upstream, WEB_IP6, 60_000);
  t.is(await bed.answered(), 'backend-1,backend-2', 'IPv4: both endpoints answer');
  t.is(await bed.answered(WEB_IP6), 'backend-1,backend-2', 'IPv6: both endpoints answer');
  await bed.setEndpoints(bed.topo.backends[1]);
  await bed.until('only backend-2 to answer through upstream', 'backend-2');
  t.pass('upstream followed the EndpointSlice change');
});
