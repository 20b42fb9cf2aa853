//! iptables mode's ruleset against upstream kube-proxy v1.37.2's own, as iptables-save
//! printed it for the same cluster (tests/golden/iptables/README.md): chain names, rule
//! order and spelling, line for line, with the differences listed once, below. Two
//! clusters: a small one, and the packet matrix's (every Service feature), whose ServicePorts
//! the agent's tracker made from the objects upstream read (tests/fixtures/iptables/).

mod common;

use common::spec;
use kproxy_nftables::{Cidr, Family};
use kproxy_proxier::iptables::restore::render_save;
use kproxy_proxier::iptables::{build, IptablesConfig};
use kproxy_proxier::local::LocalDetector;
use kproxy_proxier::wire::decode;
use kproxy_proxier::Desired;

/// Where kproxy's render differs from upstream's dump, and why: upstream's lines that contain
/// the first string become the second (None: kproxy has no such line).
const KNOWN_DIFFERENCES: &[(&str, Option<&str>, &str)] = &[
    (
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name  ct_state_invalid_dropped_pkts -j DROP",
        Some("-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP"),
        "upstream counts these drops in an nfacct object for a metric; kproxy does not create nfacct objects yet, and writes what upstream writes without them",
    ),
    (
        "--nfacct-name  localhost_nps_accepted_pkts",
        None,
        "upstream's copy of each IPv4 NodePort rule for 127.0.0.0/8 only counts packets for a metric (the rule after it accepts them too); written by upstream only when nfacct works",
    ),
];

fn cluster(family: Family) -> Desired {
    let mut d = Desired::new(family);
    // iptables mode's default: NodePorts on every local address.
    d.set_node(true, &[], &[]).unwrap();
    let records = if family == Family::Ip {
        vec![
            spec("default", "kubernetes", "https", "TCP", "10.96.0.1", 443, &[]),
            spec("default", "web", "http", "TCP", "10.96.0.20", 80, &[("10.244.1.2", 8080), ("10.244.2.2", 8080)]),
            spec("default", "web", "dns", "UDP", "10.96.0.20", 53, &[("10.244.1.2", 8053), ("10.244.2.2", 8053)]),
            spec("default", "one", "p", "TCP", "10.96.0.31", 82, &[("10.244.1.2", 8082)]),
            spec("default", "empty", "", "TCP", "10.96.0.30", 81, &[]),
        ]
    } else {
        vec![
            spec("default", "web", "http", "TCP", "fd00:96::20", 80, &[("fd00:244:0:1::2", 8080), ("fd00:244:0:2::2", 8080)]),
            spec("default", "web", "dns", "UDP", "fd00:96::20", 53, &[("fd00:244:0:1::2", 8053), ("fd00:244:0:2::2", 8053)]),
        ]
    };
    assert!(d.update(&records, &[]).is_empty());
    d
}

fn config(family: Family) -> IptablesConfig {
    let cidr = if family == Family::Ip { "10.244.0.0/16" } else { "fd00:244::/48" };
    IptablesConfig { dispatch_above: usize::MAX, ..IptablesConfig::new(family, Some(LocalDetector::Cidr(cidr.parse::<Cidr>().unwrap()))) }
}

/// Chains upstream fills while walking its Service map, in Go map order (changing from run
/// to run): their lines are compared sorted. The NodePorts jump stays last in KUBE-SERVICES.
const MAP_ORDERED: &[&str] = &["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-EXTERNAL-SERVICES", "KUBE-PROXY-FIREWALL"];

fn normalized(save: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut run: Vec<String> = Vec::new();
    for line in save.lines() {
        let chain = line.strip_prefix("-A ").and_then(|r| r.split(' ').next()).unwrap_or("");
        if MAP_ORDERED.contains(&chain) && !line.ends_with("-j KUBE-NODEPORTS") {
            run.push(line.to_string());
            continue;
        }
        run.sort();
        out.append(&mut run);
        out.push(line.to_string());
    }
    out
}

fn compare(family: Family, desired: &Desired, upstream: &str) {
    compare_with(config(family), desired, upstream)
}

fn compare_with(cfg: IptablesConfig, desired: &Desired, upstream: &str) {
    let family = cfg.family;
    let rs = build(desired, &cfg);
    let ours = normalized(&render_save(&rs.tables, &rs.jumps, family == Family::Ip6));
    let mut theirs = Vec::new();
    for l in normalized(upstream) {
        match KNOWN_DIFFERENCES.iter().find(|(up, _, _)| l.contains(up)) {
            Some((_, Some(kp), _)) => theirs.push(kp.to_string()),
            Some((_, None, _)) => {}
            None => theirs.push(l),
        }
    }
    if ours != theirs {
        let at = ours.iter().zip(&theirs).position(|(a, b)| a != b).unwrap_or(ours.len().min(theirs.len()));
        panic!(
            "{family:?}: kproxy's render differs from upstream's iptables-save from line {} on:\n- upstream: {:?}\n+ kproxy:   {:?}\n\nkproxy's whole render:\n{}",
            at + 1,
            theirs.get(at),
            ours.get(at),
            ours.join("\n")
        );
    }
}

/// The matrix cluster's ServicePorts as the agent sends them, on the bed's node.
fn matrix(family: Family, wire: &str, node_ip: &str) -> Desired {
    let (records, rejected) = decode(wire).expect("fixture header");
    assert!(rejected.is_empty(), "{rejected:?}");
    let mut d = Desired::new(family);
    d.set_node(true, &[], &[node_ip.to_string()]).unwrap();
    assert!(d.update(&records, &[]).is_empty());
    d
}

#[test]
fn matrix_ipv4_ruleset_is_upstreams() {
    let d = matrix(Family::Ip, include_str!("../../../tests/fixtures/iptables/matrix.ipv4.wire"), "192.168.100.1");
    compare(Family::Ip, &d, include_str!("golden/iptables/matrix-upstream-iptables-save.txt"));
}

#[test]
fn matrix_ipv6_ruleset_is_upstreams() {
    let d = matrix(Family::Ip6, include_str!("../../../tests/fixtures/iptables/matrix.ipv6.wire"), "fd00:100::1");
    compare(Family::Ip6, &d, include_str!("golden/iptables/matrix-upstream-ip6tables-save.txt"));
}

#[test]
fn ipv4_ruleset_is_upstreams() {
    compare(Family::Ip, &cluster(Family::Ip), include_str!("golden/iptables/upstream-iptables-save.txt"));
}

#[test]
fn ipv6_ruleset_is_upstreams() {
    compare(Family::Ip6, &cluster(Family::Ip6), include_str!("golden/iptables/upstream-ip6tables-save.txt"));
}

/// Upstream with `--iptables-localhost-nodeports=false --conntrack-tcp-be-liberal`: no
/// martian drop (KUBE-FIREWALL only exists), `! -d 127.0.0.0/8` on the NodePorts jump, no
/// localhost NodePort copies, and no INVALID drop in KUBE-FORWARD.
#[test]
fn matrix_ruleset_without_localhost_nodeports_and_with_tcp_be_liberal_is_upstreams() {
    for (family, wire, node_ip, golden) in [
        (
            Family::Ip,
            include_str!("../../../tests/fixtures/iptables/matrix.ipv4.wire"),
            "192.168.100.1",
            include_str!("golden/iptables/matrix-upstream-options-iptables-save.txt"),
        ),
        (
            Family::Ip6,
            include_str!("../../../tests/fixtures/iptables/matrix.ipv6.wire"),
            "fd00:100::1",
            include_str!("golden/iptables/matrix-upstream-options-ip6tables-save.txt"),
        ),
    ] {
        let cfg = IptablesConfig { localhost_nodeports: false, drop_invalid: false, ..config(family) };
        compare_with(cfg, &matrix(family, wire, node_ip), golden);
    }
}
