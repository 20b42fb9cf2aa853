//! Builders shared by the rule tests, and a small harness that drives the
//! nftables planner over a desired state the way the sync loop does.
#![allow(dead_code)]

use kproxy_nftables::{Cidr, Family, Transaction};
use kproxy_proxier::nftables::{LayoutConfig, LocalDetector, Planner};
use kproxy_proxier::wire::{EndpointFlags, EndpointRecord, Rejected, ServicePortRecord};
use kproxy_proxier::Desired;

pub fn cfg(family: Family) -> LayoutConfig {
    let cidr = if family == Family::Ip { "10.244.0.0/16" } else { "fd00:244::/48" };
    LayoutConfig {
        family,
        detector: Some(LocalDetector::Cidr(cidr.parse::<Cidr>().unwrap())),
        masquerade_all: false,
        masquerade_bit: 14,
        nodeports_all: false,
        service_cidrs: Vec::new(),
    }
}

/// A ServicePort whose endpoints are all ready and selected for cluster traffic.
pub fn spec(ns: &str, name: &str, port_name: &str, proto: &str, cip: &str, port: u32, eps: &[(&str, u32)]) -> ServicePortRecord<'static> {
    ServicePortRecord {
        key: format!("{ns}/{name}/{}/{port_name}", proto.to_lowercase()).into(),
        namespace: ns.to_string().into(),
        name: name.to_string().into(),
        port_name: port_name.to_string().into(),
        protocol: proto.to_string().into(),
        service_type: "ClusterIP".into(),
        cluster_ip: cip.to_string().into(),
        port,
        endpoints: eps
            .iter()
            .map(|(i, p)| EndpointRecord {
                ip: i.to_string().into(),
                port: *p,
                flags: EndpointFlags { ready: true, serving: true, cluster: true, ..Default::default() },
            })
            .collect(),
        ..Default::default()
    }
}

/// Desired state plus planner, as one family's syncer holds them.
pub struct Model {
    pub desired: Desired,
    pub planner: Planner,
}

impl Model {
    pub fn new(cfg: LayoutConfig) -> Self {
        Self { desired: Desired::new(cfg.family), planner: Planner::new(cfg) }
    }
    pub fn update(&mut self, upserts: &[ServicePortRecord], deletes: &[String]) -> Vec<Rejected> {
        self.desired.update(upserts, deletes)
    }
    pub fn plan(&mut self, full: bool) -> (Transaction, bool) {
        self.planner.plan(&mut self.desired, full)
    }
    /// What the sync loop does after a commit: nothing on success, invalidate on failure.
    pub fn committed(&mut self, ok: bool) {
        if !ok {
            self.planner.invalidate();
        }
    }
    pub fn invalidate(&mut self) {
        self.planner.invalidate();
    }
    pub fn render_text(&self) -> String {
        self.planner.render_text(&self.desired)
    }
    pub fn full_transaction(&self) -> Transaction {
        self.planner.full_transaction(&self.desired)
    }
}

/// `spec` with external IPs (served like the ClusterIP, masqueraded: externalTrafficPolicy Cluster).
pub fn with_external(mut s: ServicePortRecord<'static>, ips: &[&str]) -> ServicePortRecord<'static> {
    s.external_ips = ips.iter().map(|i| i.to_string().into()).collect();
    s
}

/// `spec` changed by `f` (NodePort, policies, affinity... in a line).
pub fn with(mut s: ServicePortRecord<'static>, f: impl FnOnce(&mut ServicePortRecord<'static>)) -> ServicePortRecord<'static> {
    f(&mut s);
    s
}

/// Marks the endpoints at `local` (indexes) as on this node and selected for local traffic.
pub fn local_at(s: &mut ServicePortRecord<'static>, local: &[usize]) {
    for i in local {
        s.endpoints[*i].flags.is_local = true;
        s.endpoints[*i].flags.local = true;
    }
}

/// The ServicePorts of the golden rulesets (tests/golden/*.nft): one of every shape.
pub fn golden_model(family: Family) -> Model {
    let mut m = Model::new(cfg(family));
    if family == Family::Ip {
        let rejected = m.update(
            &[
                spec("demo", "web", "http", "TCP", "10.96.0.10", 80, &[("10.244.1.2", 8080), ("10.244.2.2", 8080), ("10.244.3.2", 8080)]),
                with_external(spec("demo", "dns", "dns", "UDP", "10.96.0.53", 53, &[("10.244.1.2", 8053)]), &["192.0.2.53"]),
                with_external(spec("demo", "empty", "", "TCP", "10.96.0.99", 443, &[]), &["192.0.2.99"]),
                with(spec("demo", "np", "http", "TCP", "10.96.0.20", 80, &[("10.244.1.5", 8080), ("10.244.2.5", 8080)]), |s| {
                    s.service_type = "NodePort".into();
                    s.node_port = 30080;
                }),
                with(spec("demo", "lb-local", "http", "TCP", "10.96.0.30", 80, &[("10.244.1.6", 80), ("10.244.2.6", 80)]), |s| {
                    s.service_type = "LoadBalancer".into();
                    s.node_port = 30081;
                    s.load_balancer_vips = vec!["198.51.100.30".into()];
                    s.external_policy_local = true;
                    s.health_check_node_port = 31081;
                    local_at(s, &[0]);
                }),
                with(spec("demo", "lb-ranges", "https", "TCP", "10.96.0.40", 443, &[("10.244.2.7", 8443)]), |s| {
                    s.service_type = "LoadBalancer".into();
                    s.load_balancer_vips = vec!["198.51.100.40".into()];
                    s.load_balancer_source_ranges = vec!["203.0.113.0/25".into(), "192.0.2.0/24".into()];
                }),
                with(spec("demo", "sticky", "http", "TCP", "10.96.0.50", 80, &[("10.244.1.8", 80), ("10.244.2.8", 80)]), |s| {
                    s.session_affinity = "ClientIP".into();
                    s.sticky_max_age_seconds = 10800;
                    s.external_ips = vec!["192.0.2.50".into()];
                }),
            ],
            &[],
        );
        assert!(rejected.is_empty(), "{rejected:?}");
        m.desired.set_node(false, &["192.0.2.1".into()], &["192.0.2.1".into()]).unwrap();
        m.desired.set_service_cidrs(&["10.96.0.0/16".into()]).unwrap();
    } else {
        m.update(
            &[
                with_external(
                    spec("demo", "web", "http", "TCP", "fd00:96::10", 80, &[("fd00:244:0:1::2", 8080), ("fd00:244:0:2::2", 8080)]),
                    &["2001:db8::10"],
                ),
                spec("demo", "empty", "", "UDP", "fd00:96::99", 53, &[]),
                // No affinity here: nft 1.0.6 aborts loading an IPv6 `update @map { … : addr . port }`
                // (netlink_linearize.c assertion), so the capture could not be made.
                with(spec("demo", "np-local", "http", "TCP", "fd00:96::50", 80, &[("fd00:244:0:1::8", 80)]), |s| {
                    s.service_type = "NodePort".into();
                    s.node_port = 30050;
                    s.external_policy_local = true;
                    local_at(s, &[0]);
                }),
            ],
            &[],
        );
        m.desired.set_node(true, &[], &["2001:db8::1".into()]).unwrap();
    }
    m
}

/// The packet matrix's ServicePorts on the wire (tests/netns/matrix.ts writes them).
pub const MATRIX: &str = include_str!("../../../../tests/fixtures/iptables/matrix.ipv4.wire");
pub const HEADER: &str = "kproxy-wire 1\tkey\tnamespace\tname\tportName\tprotocol\ttype\tclusterIP\tport\tnodePort\texternalIPs\tloadBalancerVIPs\tloadBalancerSourceRanges\tsessionAffinity\tstickyMaxAgeSeconds\texternalPolicyLocal\tinternalPolicyLocal\thealthCheckNodePort\ttrafficDistribution\tendpoints";

/// A ClusterIP ServicePort `svc-i` with `eps` ready endpoints on this node.
pub fn clusterip(i: usize, eps: usize, proto: &str) -> String {
    let endpoints: Vec<String> = (0..eps).map(|e| format!("10.244.{}.{},8080,RSNCL", 1 + e / 200, 2 + e % 200)).collect();
    let lower = proto.to_lowercase();
    format!(
        "default/svc-{i}/{lower}/p\tdefault\tsvc-{i}\tp\t{proto}\tClusterIP\t10.96.{}.{}\t80\t0\t\t\t\tNone\t0\t0\t0\t0\t\t{}",
        i / 250,
        1 + i % 250,
        endpoints.join(" ")
    )
}

pub fn wire(lines: &[String]) -> String {
    format!("{HEADER}\n{}\n", lines.join("\n"))
}
