//! Builders shared by the rule tests, and a small harness that drives the
//! nftables planner over a desired state the way the sync loop does.
#![allow(dead_code)]

use kproxy_nftables::{Cidr, Family, Transaction};
use kproxy_proxier::nftables::{LayoutConfig, Planner};
use kproxy_proxier::wire::{EndpointFlags, EndpointRecord, Rejected, ServicePortRecord};
use kproxy_proxier::Desired;

pub fn cfg(family: Family) -> LayoutConfig {
    let cidr = if family == Family::Ip { "10.244.0.0/16" } else { "fd00:244::/48" };
    LayoutConfig { family, cluster_cidr: Some(cidr.parse::<Cidr>().unwrap()), masquerade_all: false, masquerade_bit: 14 }
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
