//! iptables mode's ruleset against upstream kube-proxy v1.37.2's own, as iptables-save
//! printed it for the same cluster (tests/golden/iptables/README.md): chain names, rule
//! order and spelling, line for line, with the differences listed once, below.

mod common;

use common::spec;
use kproxy_nftables::{Cidr, Family};
use kproxy_proxier::iptables::restore::render_save;
use kproxy_proxier::iptables::{build, IptablesConfig};
use kproxy_proxier::local::LocalDetector;
use kproxy_proxier::Desired;

/// Where kproxy's render differs from upstream's dump, and why: (upstream's line, kproxy's line).
const KNOWN_DIFFERENCES: &[(&str, &str, &str)] = &[(
    "-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name  ct_state_invalid_dropped_pkts -j DROP",
    "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
    "upstream counts these drops in an nfacct object for a metric; kproxy does not create it yet",
)];

fn cluster(family: Family) -> Desired {
    let mut d = Desired::new(family);
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
    IptablesConfig { family, detector: Some(LocalDetector::Cidr(cidr.parse::<Cidr>().unwrap())), masquerade_all: false, masquerade_bit: 14 }
}

/// The lines, with each table's KUBE-SERVICES ServicePort rules sorted: upstream writes them
/// in Go map order, which changes from run to run.
fn normalized(save: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut services: Vec<String> = Vec::new();
    for line in save.lines() {
        if line.starts_with("-A KUBE-SERVICES ") && !line.contains("-j KUBE-NODEPORTS") {
            services.push(line.to_string());
            continue;
        }
        services.sort();
        out.append(&mut services);
        out.push(line.to_string());
    }
    out
}

fn compare(family: Family, upstream: &str) {
    let rs = build(&cluster(family), &config(family));
    let ours = normalized(&render_save(&rs.tables, &rs.jumps, family == Family::Ip6));
    let mut theirs = normalized(upstream);
    for (up, kp, _why) in KNOWN_DIFFERENCES {
        for l in theirs.iter_mut().filter(|l| l == up) {
            *l = kp.to_string();
        }
    }
    if ours != theirs {
        let at = ours.iter().zip(&theirs).position(|(a, b)| a != b).unwrap_or(ours.len().min(theirs.len()));
        panic!(
            "{family:?}: kproxy's render differs from upstream's iptables-save from line {} on:\n- upstream: {:?}\n+ kproxy:   {:?}\n\nkproxy's whole render:\n{}",
            at + 1, theirs.get(at), ours.get(at), ours.join("\n")
        );
    }
}

#[test]
fn ipv4_ruleset_is_upstreams() {
    compare(Family::Ip, include_str!("golden/iptables/upstream-iptables-save.txt"));
}

#[test]
fn ipv6_ruleset_is_upstreams() {
    compare(Family::Ip6, include_str!("golden/iptables/upstream-ip6tables-save.txt"));
}
