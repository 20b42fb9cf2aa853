//! IPVS mode's sync against the fakes (IPVS, kube-ipvs0, the nftables table, each with the
//! kernel's semantics): the packet matrix's Services as virtual servers (a golden), a
//! one-endpoint change as one or two IPVS operations whatever the number of Services, graceful
//! termination, and a full sync that repairs what someone else changed.

use kproxy_ipvs::{DestKey, DestStats, IpvsBackend, Op, ServiceKey};
use kproxy_nftables::{Cidr, Family};
use kproxy_proxier::ipvs::{IpvsConfig, IpvsSync};
use kproxy_proxier::local::LocalDetector;

mod common;
use common::{clusterip, wire, MATRIX};

fn sync() -> IpvsSync {
    let cidr: Cidr = "10.244.0.0/16".parse().unwrap();
    let node = vec!["192.168.100.1".parse().unwrap(), "10.244.1.1".parse().unwrap()];
    let mut s = IpvsSync::new(Family::Ip, IpvsConfig::new(Some(LocalDetector::Cidr(cidr))), true, node);
    s.set_node(true, &[], &["192.168.100.1".into()]).unwrap();
    s
}

#[test]
fn the_matrix_as_virtual_servers_matches_the_golden() {
    let mut s = sync();
    let out = s.sync(true, MATRIX, &[], false).unwrap();
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    assert_eq!(out.ipvs_failed, 0);
    let text = s.render();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/ipvs-matrix.ipv4.txt");
    if std::env::var_os("KPROXY_UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &text).unwrap();
    }
    let golden = std::fs::read_to_string(path).expect("golden file (KPROXY_UPDATE_GOLDEN=1 writes it)");
    assert_eq!(text, golden, "render differs from {path}");
    // A second full sync against the kernel's state changes nothing.
    let again = s.sync(true, MATRIX, &[], false).unwrap();
    assert_eq!(again.ipvs_ops, 0, "a converged full sync sends no IPVS operations");
}

#[test]
fn one_endpoint_change_is_constant_in_the_number_of_services() {
    for n in [10usize, 2000] {
        let mut s = sync();
        let all: Vec<String> = (0..n).map(|i| clusterip(i, 10, "TCP")).collect();
        let full = s.sync(true, &wire(&all), &[], false).unwrap();
        assert_eq!(full.ipvs_ops, n * 11, "{n} services: one op per service and per real server");
        // Endpoint 10.244.1.2 of svc-0 becomes 10.244.1.99.
        let changed = clusterip(0, 10, "TCP").replace("10.244.1.2,8080", "10.244.1.99,8080");
        let out = s.sync(false, &wire(&[changed]), &[], false).unwrap();
        assert_eq!(out.ipvs_ops, 2, "{n} services: add the new real server, drain the old one");
        assert_eq!(out.table_ops, 1, "{n} services: the new hairpin element (the old endpoint is other Services' too)");
        assert_eq!(s.draining().len(), 1);
    }
}

#[test]
fn a_drained_tcp_real_server_goes_when_its_connections_end() {
    let mut s = sync();
    s.sync(true, &wire(&[clusterip(0, 3, "TCP"), clusterip(1, 3, "UDP")]), &[], false).unwrap();
    let out = s.sync(false, &wire(&[clusterip(0, 2, "TCP"), clusterip(1, 2, "UDP")]), &[], false).unwrap();
    assert_eq!(out.ipvs_ops, 2, "TCP: weight 0; UDP: deleted at once");
    let tcp = ServiceKey { addr: "10.96.0.1".parse().unwrap(), protocol: 6, port: 80 };
    let gone = DestKey { addr: "10.244.1.4".parse().unwrap(), port: 8080 };
    assert_eq!(s.draining(), vec![(tcp, gone)]);
    let fake = s.ipvs_fake().unwrap();
    fake.set_stats(&tcp, &gone, DestStats { active_conns: 1, inactive_conns: 0, persist_conns: 0 });
    let weights: Vec<u32> = fake.destinations(&tcp).unwrap().iter().filter(|d| d.dest.key == gone).map(|d| d.dest.weight).collect();
    assert_eq!(weights, [0]);
    assert_eq!(s.reap().unwrap().ipvs_ops, 0, "a connection is still open");
    s.ipvs_fake().unwrap().set_stats(&tcp, &gone, DestStats::default());
    assert_eq!(s.reap().unwrap().ipvs_ops, 1);
    assert!(s.draining().is_empty());
    assert_eq!(s.ipvs_fake().unwrap().destinations(&tcp).unwrap().len(), 2);
}

#[test]
fn a_full_sync_repairs_foreign_changes() {
    let mut s = sync();
    let svc = wire(&[clusterip(0, 3, "TCP")]);
    s.sync(true, &svc, &[], false).unwrap();
    let key = ServiceKey { addr: "10.96.0.1".parse().unwrap(), protocol: 6, port: 80 };
    let stray = ServiceKey { addr: "10.96.9.9".parse().unwrap(), protocol: 6, port: 80 };
    let fake = s.ipvs_fake().unwrap();
    let r = fake
        .apply(&[
            Op::DeleteDest(key, DestKey { addr: "10.244.1.2".parse().unwrap(), port: 8080 }),
            Op::AddService(kproxy_ipvs::Service::new(stray, "rr")),
        ])
        .unwrap();
    assert!(r.iter().all(|r| r.is_ok()));
    let out = s.sync(true, &svc, &[], false).unwrap();
    assert_eq!(out.ipvs_ops, 2, "the real server back, the stray virtual server gone");
    let services = s.ipvs_fake().unwrap().services().unwrap();
    assert_eq!(services.iter().map(|s| s.key).collect::<Vec<_>>(), vec![key]);
    assert_eq!(s.ipvs_fake().unwrap().destinations(&key).unwrap().len(), 3);
}

#[test]
fn excluded_ranges_and_foreign_virtual_servers_are_left_alone() {
    let cidr: Cidr = "10.244.0.0/16".parse().unwrap();
    let cfg = IpvsConfig { exclude_cidrs: vec!["10.96.9.0/24".parse().unwrap()], ..IpvsConfig::new(Some(LocalDetector::Cidr(cidr))) };
    let mut s = IpvsSync::new(Family::Ip, cfg, true, vec!["192.168.100.1".parse().unwrap()]);
    s.set_node(true, &[], &[]).unwrap();
    // Excluded, on a NodePort-range port: a sync and cleanup leave it.
    let theirs = ServiceKey { addr: "10.96.9.9".parse().unwrap(), protocol: 6, port: 30080 };
    s.ipvs_fake().unwrap().apply(&[Op::AddService(kproxy_ipvs::Service::new(theirs, "rr"))]).unwrap();
    let np = clusterip(0, 1, "TCP").replace("\tClusterIP\t", "\tNodePort\t").replace("\t80\t0\t", "\t80\t30001\t");
    s.sync(true, &wire(&[np]), &[], false).unwrap();
    assert_eq!(s.ipvs_fake().unwrap().services().unwrap().len(), 3, "theirs stays; the ClusterIP and the NodePort are added");
    // Not excluded and not kproxy's (neither on kube-ipvs0 nor a NodePort on a node address).
    let foreign = ServiceKey { addr: "203.0.113.9".parse().unwrap(), protocol: 6, port: 30002 };
    s.ipvs_fake().unwrap().apply(&[Op::AddService(kproxy_ipvs::Service::new(foreign, "rr"))]).unwrap();
    assert_eq!(s.cleanup().unwrap(), 2, "the ClusterIP and the NodePort on 192.168.100.1");
    let left: Vec<_> = s.ipvs_fake().unwrap().services().unwrap().into_iter().map(|s| s.key).collect();
    assert_eq!(left, vec![theirs, foreign], "cleanup takes only kproxy's");
    assert!(s.fake_link_addresses().is_empty());
}

#[test]
fn a_shared_cluster_ip_stays_until_its_last_service_port_goes() {
    let mut s = sync();
    let https =
        clusterip(0, 2, "TCP").replace("/tcp/p\t", "/tcp/https\t").replace("\tp\tTCP", "\thttps\tTCP").replace("\t80\t0\t", "\t443\t0\t");
    s.sync(true, &wire(&[clusterip(0, 2, "TCP"), https]), &[], false).unwrap();
    let ip: std::net::IpAddr = "10.96.0.1".parse().unwrap();
    assert_eq!(s.fake_link_addresses(), vec![ip]);
    s.sync(false, &wire(&[]), &["default/svc-0/tcp/p".into()], false).unwrap();
    assert_eq!(s.fake_link_addresses(), vec![ip], "the other port still uses the address");
    assert!(s.render().contains("add element ip kproxy-ipvs cluster-ips { 10.96.0.1 }"));
    assert!(s.render().contains("-A -t 10.96.0.1:443 -s rr") && !s.render().contains("-A -t 10.96.0.1:80 "));
    s.sync(false, &wire(&[]), &["default/svc-0/tcp/https".into()], false).unwrap();
    assert!(s.fake_link_addresses().is_empty());
    assert!(!s.render().contains("10.96.0.1"));
    assert!(s.ipvs_fake().unwrap().services().unwrap().is_empty());
}

#[test]
fn a_failed_table_batch_leaves_the_next_sync_full_and_it_repairs() {
    let mut s = sync();
    s.sync(true, &wire(&[clusterip(0, 2, "TCP")]), &[], false).unwrap();
    s.table_fake().unwrap().fail_next(16);
    let err = s.sync(false, &wire(&[clusterip(1, 2, "TCP")]), &[], false).unwrap_err();
    assert_eq!(err.errno, Some(16));
    let out = s.sync(false, &wire(&[]), &[], false).unwrap();
    assert!(out.full, "after a failure the next sync is full");
    assert_eq!(s.ipvs_fake().unwrap().services().unwrap().len(), 2, "the Service whose sync failed is programmed");
}

#[test]
fn ipv6_the_matrix_programs_without_a_refusal() {
    let cidr: Cidr = "fd00:244::/48".parse().unwrap();
    let mut s = IpvsSync::new(Family::Ip6, IpvsConfig::new(Some(LocalDetector::Cidr(cidr))), true, vec!["fd00:100::1".parse().unwrap()]);
    s.set_node(true, &[], &["fd00:100::1".into()]).unwrap();
    let out = s.sync(true, include_str!("../../../tests/fixtures/iptables/matrix.ipv6.wire"), &[], false).unwrap();
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    assert_eq!(out.ipvs_failed, 0);
    let text = s.render();
    assert!(text.contains("-A -t [fd00:96::10]:80 -s rr"), "{text}");
    assert!(text.contains("-A -t [fd00:100::1]:30080 -s rr"));
    assert!(text.contains("add element ip6 kproxy-ipvs ipvs-addresses { fd00:96::10 }"));
}

#[test]
fn a_sync_without_changes_finds_and_repairs_drift() {
    let mut s = sync();
    let svc = wire(&[clusterip(0, 3, "TCP")]);
    s.sync(true, &svc, &[], false).unwrap();
    assert_eq!(s.sync(false, &wire(&[]), &[], false).unwrap().drift_repaired, 0, "nothing drifted");
    let key = ServiceKey { addr: "10.96.0.1".parse().unwrap(), protocol: 6, port: 80 };
    s.ipvs_fake().unwrap().apply(&[Op::DeleteService(key)]).unwrap();
    let out = s.sync(false, &wire(&[]), &[], false).unwrap();
    assert!(!out.full);
    assert_eq!(out.drift_repaired, 4, "the virtual server and its three real servers");
    assert_eq!(s.ipvs_fake().unwrap().destinations(&key).unwrap().len(), 3);
}

#[test]
fn the_scheduler_is_the_configured_one_and_mh_hashes_the_port_without_fallback() {
    for (scheduler, line) in
        [("", "-A -t 10.96.0.1:80 -s rr\n"), ("wlc", "-A -t 10.96.0.1:80 -s wlc\n"), ("mh", "-A -t 10.96.0.1:80 -s mh -b mh-port\n")]
    {
        let cidr: Cidr = "10.244.0.0/16".parse().unwrap();
        let cfg = IpvsConfig { scheduler: scheduler.into(), ..IpvsConfig::new(Some(LocalDetector::Cidr(cidr))) };
        let mut s = IpvsSync::new(Family::Ip, cfg, true, vec![]);
        let out = s.sync(true, &wire(&[clusterip(0, 1, "TCP")]), &[], false).unwrap();
        assert_eq!(out.ipvs_failed, 0, "{scheduler}");
        assert!(s.render().contains(line), "{scheduler}: {}", s.render().lines().next().unwrap_or(""));
    }
}

#[test]
fn the_drift_check_names_a_missing_or_changed_virtual_server_and_the_next_sync_repairs_it_in_full() {
    let mut s = sync();
    assert_eq!(s.drift().unwrap(), None, "before the first sync the next one is full: nothing to check");
    s.sync(true, &wire(&[clusterip(0, 3, "TCP"), clusterip(1, 2, "UDP")]), &[], false).unwrap();
    assert_eq!(s.drift().unwrap(), None, "nothing drifted");
    // Another process's virtual server is left to the periodic sync, as upstream's.
    let theirs = ServiceKey { addr: "10.96.9.9".parse().unwrap(), protocol: 6, port: 80 };
    s.ipvs_fake().unwrap().apply(&[Op::AddService(kproxy_ipvs::Service::new(theirs, "rr"))]).unwrap();
    assert_eq!(s.drift().unwrap(), None, "a foreign virtual server is not drift");
    let udp = ServiceKey { addr: "10.96.0.2".parse().unwrap(), protocol: 17, port: 80 };
    s.ipvs_fake().unwrap().apply(&[Op::DeleteService(udp)]).unwrap();
    assert_eq!(s.drift().unwrap().as_deref(), Some("virtual server -u 10.96.0.2:80 is gone"));
    assert_eq!(s.drift().unwrap(), None, "found once: the next sync is full and repairs it");
    // Another change is pending: the sync is full all the same, so the repair is not skipped.
    assert!(s.sync(false, &wire(&[clusterip(2, 1, "TCP")]), &[], false).unwrap().full);
    assert_eq!(s.drift().unwrap(), None, "the tick put it back");
    let tcp = ServiceKey { addr: "10.96.0.1".parse().unwrap(), protocol: 6, port: 80 };
    s.ipvs_fake().unwrap().apply(&[Op::EditService(kproxy_ipvs::Service::new(tcp, "wrr"))]).unwrap();
    assert_eq!(s.drift().unwrap().as_deref(), Some("virtual server -t 10.96.0.1:80 was changed"));
    assert!(s.sync(false, &wire(&[]), &[], false).unwrap().full);
    assert_eq!(s.drift().unwrap(), None);
    assert_eq!(s.ipvs_fake().unwrap().services().unwrap().iter().find(|v| v.key == tcp).unwrap().scheduler, "rr");
    s.table_fake()
        .unwrap()
        .apply(&{
            let mut tx = kproxy_nftables::Transaction::new(Family::Ip, "kproxy-ipvs");
            tx.push(kproxy_nftables::Op::DeleteTable);
            tx
        })
        .unwrap();
    assert_eq!(s.drift().unwrap().as_deref(), Some("the table ip kproxy-ipvs is gone"));
}
