//! Builders shared by the rule-model tests.
#![allow(dead_code)]

use kproxy_nftables::{Cidr, Family};
use kproxy_rules::{LayoutConfig, ServicePortSpec};

pub fn cfg(family: Family) -> LayoutConfig {
    let cidr = if family == Family::Ip { "10.244.0.0/16" } else { "fd00:244::/48" };
    LayoutConfig { family, cluster_cidr: Some(cidr.parse::<Cidr>().unwrap()), masquerade_all: false, masquerade_bit: 14 }
}

pub fn spec(ns: &str, name: &str, port_name: &str, proto: &str, cip: &str, port: u32, eps: &[(&str, u32)]) -> ServicePortSpec {
    ServicePortSpec {
        key: format!("{ns}/{name}/{}/{port_name}", proto.to_lowercase()),
        namespace: ns.into(),
        name: name.into(),
        port_name: port_name.into(),
        protocol: proto.into(),
        cluster_ip: cip.into(),
        port,
        endpoints: eps.iter().map(|(i, p)| (i.to_string(), *p)).collect(),
    }
}
