//! userspace mode's sync against the fakes (the proxy and the Service link): the packet
//! matrix's Services as frontends and pools (a golden), a one-endpoint change that touches
//! no frontend and no address whatever the number of Services, and the ticks that retry
//! listen failures, follow the node's addresses and put back removed addresses, and the drift
//! check between syncs.

use std::net::SocketAddr;

use kproxy_nftables::{Cidr, Family};
use kproxy_proxier::local::LocalDetector;
use kproxy_proxier::userspace::link::{LinkKind, VipLink};
use kproxy_proxier::userspace::proxy::{FakeProxy, ProxySide};
use kproxy_proxier::userspace::{UserspaceConfig, UserspaceSync};
use kproxy_userspace::{FrontendKey, Proto};

mod common;
use common::{clusterip, wire, MATRIX};

const NODE_IP: &str = "192.168.100.1";

fn sync_with(kind: LinkKind) -> UserspaceSync {
    let cidr: Cidr = "10.244.1.0/24".parse().unwrap();
    let cfg = UserspaceConfig { detector: Some(LocalDetector::Cidr(cidr)), max_connections: 0 };
    let link = VipLink::fake(kind, vec![NODE_IP.parse().unwrap()]);
    let mut s = UserspaceSync::new(Family::Ip, cfg, ProxySide::Fake(FakeProxy::default()), link);
    s.set_node(true, &[], &[NODE_IP.into()]).unwrap();
    s
}

fn sync() -> UserspaceSync {
    sync_with(LinkKind::Dummy)
}

fn fake(s: &mut UserspaceSync) -> &mut FakeProxy {
    match s.proxy() {
        ProxySide::Fake(f) => f,
        _ => unreachable!(),
    }
}

fn link_addrs(s: &mut UserspaceSync) -> Vec<String> {
    s.link().ours().unwrap().iter().map(|a| a.to_string()).collect()
}

fn tcp(addr: &str) -> FrontendKey {
    FrontendKey { proto: Proto::Tcp, addr: addr.parse::<SocketAddr>().unwrap() }
}

#[test]
fn the_matrix_as_frontends_matches_the_golden() {
    let mut s = sync();
    let out = s.sync(true, MATRIX, &[], false).unwrap();
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    assert_eq!(out.listen_failed, 0);
    let text = s.render();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/userspace-matrix.ipv4.txt");
    if std::env::var_os("KPROXY_UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &text).unwrap();
    }
    let golden = std::fs::read_to_string(path).expect("golden file (KPROXY_UPDATE_GOLDEN=1 writes it)");
    assert_eq!(text, golden, "render differs from {path}");
    // What the fake proxy holds is what the render says.
    assert_eq!(fake(&mut s).frontends.len(), out.frontends);
    let again = s.sync(true, MATRIX, &[], false).unwrap();
    assert_eq!(
        (again.opened, again.closed, again.addresses_added, again.drift_repaired),
        (0, 0, 0, 0),
        "a converged full sync changes nothing"
    );
}

#[test]
fn one_endpoint_change_touches_no_frontend_and_no_address() {
    for n in [10usize, 2000] {
        let mut s = sync();
        let all: Vec<String> = (0..n).map(|i| clusterip(i, 10, "TCP")).collect();
        let full = s.sync(true, &wire(&all), &[], false).unwrap();
        assert_eq!((full.opened, full.addresses_added), (n, n), "{n} services: one frontend and one address each");
        let changed = clusterip(0, 10, "TCP").replace("10.244.1.2,8080", "10.244.1.99,8080");
        let out = s.sync(false, &wire(&[changed]), &[], false).unwrap();
        assert_eq!((out.opened, out.closed, out.addresses_added, out.addresses_deleted), (0, 0, 0, 0), "{n} services");
        let spec = &fake(&mut s).services["ip default/svc-0/tcp/p"];
        assert!(spec.pools[0].contains(&"10.244.1.99:8080".parse().unwrap()));
        assert!(!spec.pools[0].contains(&"10.244.1.2:8080".parse().unwrap()));
    }
}

#[test]
fn no_endpoints_closes_the_frontend_and_keeps_the_address() {
    let mut s = sync();
    s.sync(true, &wire(&[clusterip(0, 2, "TCP")]), &[], false).unwrap();
    let vip = tcp("10.96.0.1:80");
    assert!(fake(&mut s).frontends.contains_key(&vip));
    // No endpoints: the kernel refuses at the address (no listener), nothing hangs.
    let out = s.sync(false, &wire(&[clusterip(0, 0, "TCP")]), &[], false).unwrap();
    assert_eq!((out.closed, out.addresses_deleted), (1, 0));
    assert!(!fake(&mut s).frontends.contains_key(&vip));
    assert_eq!(link_addrs(&mut s), vec!["10.96.0.1"]);
    let back = s.sync(false, &wire(&[clusterip(0, 1, "TCP")]), &[], false).unwrap();
    assert_eq!(back.opened, 1);
    // The Service goes: frontend, Service and address.
    let gone = s.sync(false, "", &["default/svc-0/tcp/p".to_string()], false).unwrap();
    assert_eq!((gone.closed, gone.addresses_deleted, gone.services), (1, 1, 0));
    assert!(fake(&mut s).services.is_empty());
    assert!(link_addrs(&mut s).is_empty());
}

#[test]
fn a_frontend_that_cannot_listen_is_retried_each_sync() {
    let mut s = sync();
    fake(&mut s).taken.insert(tcp("10.96.0.2:80"));
    let out = s.sync(true, &wire(&[clusterip(0, 1, "TCP"), clusterip(1, 1, "TCP")]), &[], false).unwrap();
    assert_eq!((out.opened, out.listen_failed), (1, 1));
    let (errno, why) = out.first_failure.unwrap();
    assert_eq!(errno, 98, "{why}");
    assert!(why.contains("10.96.0.2:80"), "{why}");
    let still = s.sync(false, "", &[], false).unwrap();
    assert_eq!(still.listen_failed, 1);
    fake(&mut s).taken.clear();
    let tick = s.sync(false, "", &[], false).unwrap();
    assert_eq!((tick.opened, tick.listen_failed, tick.frontends), (1, 0, 2));
}

#[test]
fn sctp_is_skipped_and_named() {
    let mut s = sync();
    let sctp = clusterip(0, 1, "SCTP");
    let out = s.sync(true, &wire(&[sctp, clusterip(1, 1, "UDP")]), &[], false).unwrap();
    assert_eq!(out.skipped, vec!["default/svc-0:p".to_string()]);
    assert!(out.rejected.is_empty());
    assert_eq!(out.frontends, 1);
    assert_eq!(fake(&mut s).frontends.keys().next().unwrap().proto, Proto::Udp);
}

#[test]
fn ticks_follow_the_node_and_repair_the_link() {
    let mut s = sync();
    let np = MATRIX.lines().filter(|l| l.starts_with("kproxy-wire") || l.starts_with("default/np/tcp/http")).collect::<Vec<_>>().join("\n");
    s.sync(true, &np, &[], false).unwrap();
    assert!(fake(&mut s).frontends.contains_key(&tcp("192.168.100.1:30080")));
    // A node address comes: the NodePort listens there too at the next tick.
    if let VipLink::Fake { node, .. } = s.link() {
        node.push("192.168.100.7".parse().unwrap());
    }
    let tick = s.sync(false, "", &[], false).unwrap();
    assert_eq!(tick.opened, 1);
    assert!(fake(&mut s).frontends.contains_key(&tcp("192.168.100.7:30080")));
    // Someone deletes the ClusterIP from the link: the tick puts it back.
    s.link().change(&[], &["10.96.0.60".parse().unwrap()]).unwrap();
    let tick = s.sync(false, "", &[], false).unwrap();
    assert_eq!(tick.drift_repaired, 1);
    assert_eq!(link_addrs(&mut s), vec!["10.96.0.60"]);
}

#[test]
fn the_drift_check_names_a_missing_address_and_makes_the_next_sync_full() {
    let mut s = sync();
    assert_eq!(s.drift().unwrap(), "", "before the first sync: nothing to check");
    let all: Vec<String> = (0..3).map(|i| clusterip(i, 2, "TCP")).collect();
    s.sync(true, &wire(&all), &[], false).unwrap();
    assert_eq!(s.drift().unwrap(), "", "converged");
    let gone = link_addrs(&mut s)[1].clone();
    s.link().change(&[], &[gone.parse().unwrap()]).unwrap();
    let why = s.drift().unwrap();
    assert_eq!(why, format!("1 of 3 Service addresses gone from kproxy-vips (dummy) (first {gone})"));
    assert_eq!(s.drift().unwrap(), "", "the full sync is due: not reported twice");
    // A change arrives before the repair: the sync is full all the same, and puts it back.
    let changed = clusterip(0, 2, "TCP").replace("10.244.1.2,8080", "10.244.1.99,8080");
    let out = s.sync(false, &wire(&[changed]), &[], false).unwrap();
    assert!(out.full, "a drift makes the next sync full");
    assert_eq!(out.drift_repaired, 1);
    assert_eq!(link_addrs(&mut s).len(), 3);
    assert_eq!(s.drift().unwrap(), "");
}

#[test]
fn local_sources_are_the_pod_range_the_node_and_the_service_addresses() {
    let mut s = sync_with(LinkKind::Loopback);
    s.sync(true, &wire(&[clusterip(0, 1, "TCP")]), &[], false).unwrap();
    assert!(s.render().starts_with("link lo (no dummy driver)\n"));
    let local = &fake(&mut s).local_sources[0];
    assert_eq!(local.prefixes, vec!["10.244.1.0/24".parse().unwrap()]);
    let mut hosts: Vec<String> = local.hosts.iter().map(|a| a.to_string()).collect();
    hosts.sort();
    assert_eq!(hosts, vec!["10.96.0.1", "192.168.100.1"]);
    assert_eq!(fake(&mut s).local_sources[1], Default::default());
    let removed = s.cleanup().unwrap();
    assert_eq!(removed, 1);
    assert!(fake(&mut s).services.is_empty() && fake(&mut s).frontends.is_empty());
}

#[test]
fn a_clusterip_reused_in_the_same_sync_keeps_its_frontend() {
    let mut s = sync();
    s.sync(true, &wire(&[clusterip(0, 2, "TCP")]), &[], false).unwrap();
    // svc-0 goes and svc-x comes with its ClusterIP and port, in one partial sync.
    let reused = clusterip(0, 1, "TCP").replace("default/svc-0/tcp/p\tdefault\tsvc-0", "default/svc-x/tcp/p\tdefault\tsvc-x");
    let out = s.sync(false, &wire(&[reused]), &["default/svc-0/tcp/p".to_string()], false).unwrap();
    assert_eq!(out.frontends, 1);
    let fe = fake(&mut s).frontends.get(&tcp("10.96.0.1:80")).cloned();
    assert_eq!(fe.map(|f| f.service), Some("ip default/svc-x/tcp/p".to_string()), "the frontend listens, for the new Service");
    assert_eq!(link_addrs(&mut s), vec!["10.96.0.1"]);
}
