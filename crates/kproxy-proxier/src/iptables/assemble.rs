//! The whole ruleset of one family: the ServicePorts' parts put together with the chains
//! that do not depend on any one ServicePort, in upstream's layout (reference §6).

use std::collections::BTreeMap;

use kproxy_nftables::Family;

use super::build::{chain, comment, host, jump, rule, IptablesConfig, Part};
use super::dispatch::dispatch;
use super::restore::{Chain, Match, Rule, Table, TableName, Target};
use crate::desired::{Desired, NodeAddressing};

/// The chains kproxy owns (declared, so flushed, when written) and the rules it keeps in the
/// built-in chains (ensured one by one, never flushed: other software owns those chains).
pub struct Ruleset {
    pub family: Family,
    pub tables: Vec<(TableName, Table)>,
    pub jumps: Vec<(TableName, &'static str, Rule)>,
}

pub const CANARY: &str = "KUBE-PROXY-CANARY";

/// The jumps from the built-in chains, in the order upstream leaves them (the same in both
/// families; IPv6's KUBE-FIREWALL stays empty).
pub fn jumps() -> Vec<(TableName, &'static str, Rule)> {
    let new = || Match::CtState { states: "NEW", negated: false };
    let mut out = Vec::new();
    let mut add = |t, c, r| out.push((t, c, r));
    use TableName::{Filter, Nat};
    add(Filter, "INPUT", rule(vec![], jump("KUBE-FIREWALL")));
    add(Filter, "INPUT", rule(vec![new(), comment("kubernetes load balancer firewall")], jump("KUBE-PROXY-FIREWALL")));
    add(Filter, "INPUT", rule(vec![comment("kubernetes health check service ports")], jump("KUBE-NODEPORTS")));
    add(Filter, "INPUT", rule(vec![new(), comment("kubernetes externally-visible service portals")], jump("KUBE-EXTERNAL-SERVICES")));
    add(Filter, "FORWARD", rule(vec![new(), comment("kubernetes load balancer firewall")], jump("KUBE-PROXY-FIREWALL")));
    add(Filter, "FORWARD", rule(vec![comment("kubernetes forwarding rules")], jump("KUBE-FORWARD")));
    add(Filter, "FORWARD", rule(vec![new(), comment("kubernetes service portals")], jump("KUBE-SERVICES")));
    add(Filter, "FORWARD", rule(vec![new(), comment("kubernetes externally-visible service portals")], jump("KUBE-EXTERNAL-SERVICES")));
    add(Filter, "OUTPUT", rule(vec![], jump("KUBE-FIREWALL")));
    add(Filter, "OUTPUT", rule(vec![new(), comment("kubernetes load balancer firewall")], jump("KUBE-PROXY-FIREWALL")));
    add(Filter, "OUTPUT", rule(vec![new(), comment("kubernetes service portals")], jump("KUBE-SERVICES")));
    add(Nat, "PREROUTING", rule(vec![comment("kubernetes service portals")], jump("KUBE-SERVICES")));
    add(Nat, "OUTPUT", rule(vec![comment("kubernetes service portals")], jump("KUBE-SERVICES")));
    add(Nat, "POSTROUTING", rule(vec![comment("kubernetes postrouting rules")], jump("KUBE-POSTROUTING")));
    out
}

/// The chains no one ServicePort owns: the shared ones, filled from every part in key order,
/// nat KUBE-SERVICES's dispatch chains, and the fixed ones.
pub fn shared_chains<'a>(parts: impl Iterator<Item = &'a Part>, node: &NodeAddressing, cfg: &IptablesConfig) -> Vec<(TableName, Chain)> {
    let v6 = cfg.family == Family::Ip6;
    let mark = cfg.mark();
    let (mut f_services, mut f_external, mut f_nodeports, mut f_firewall, mut n_services, mut n_nodeports) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for p in parts {
        let s = &p.shared;
        f_services.extend_from_slice(&s.filter_services);
        f_external.extend_from_slice(&s.filter_external);
        f_nodeports.extend_from_slice(&s.filter_nodeports);
        f_firewall.extend_from_slice(&s.filter_firewall);
        n_services.extend_from_slice(&s.nat_services);
        n_nodeports.extend_from_slice(&s.nat_nodeports);
    }
    let (mut n_services, tree) = dispatch(n_services, cfg.dispatch_above);
    // Last in KUBE-SERVICES: the NodePorts, on every local address or on the nodePortAddresses.
    let nodeports_text = "kubernetes service nodeports; NOTE: this must be the last rule in this chain";
    if node.nodeports_all {
        let mut m = vec![comment(nodeports_text), Match::DestinationLocal];
        if v6 {
            // IPv6 has no localhost NodePorts.
            m.insert(0, Match::Destination { cidr: host("::1".parse().unwrap()), negated: true });
        }
        n_services.push(rule(m, jump("KUBE-NODEPORTS")));
    } else {
        for ip in node.nodeport_ips.iter().filter(|ip| !(v6 && ip.is_loopback())) {
            n_services
                .push(rule(vec![Match::Destination { cidr: host(*ip), negated: false }, comment(nodeports_text)], jump("KUBE-NODEPORTS")));
        }
    }

    let mut firewall = Vec::new();
    if !v6 {
        // CVE-2020-8558: a martian packet to 127/8 from outside must not reach a localhost NodePort.
        firewall.push(rule(
            vec![
                Match::Source { cidr: "127.0.0.0/8".parse().unwrap(), negated: true },
                Match::Destination { cidr: "127.0.0.0/8".parse().unwrap(), negated: false },
                comment("block incoming localnet connections"),
                Match::CtState { states: "RELATED,ESTABLISHED,DNAT", negated: true },
            ],
            Target::Drop,
        ));
    }
    let forward = vec![
        rule(vec![Match::CtState { states: "INVALID", negated: false }], Target::Drop),
        rule(vec![comment("kubernetes forwarding rules"), Match::Mark { mark, negated: false }], Target::Accept),
        rule(
            vec![comment("kubernetes forwarding conntrack rule"), Match::CtState { states: "RELATED,ESTABLISHED", negated: false }],
            Target::Accept,
        ),
    ];
    use TableName::{Filter, Mangle, Nat};
    let mut out = vec![
        (Mangle, chain(CANARY, vec![])),
        (Filter, chain("KUBE-EXTERNAL-SERVICES", f_external)),
        (Filter, chain("KUBE-FIREWALL", firewall)),
        (Filter, chain("KUBE-FORWARD", forward)),
        (Filter, chain("KUBE-NODEPORTS", f_nodeports)),
        (Filter, chain(CANARY, vec![])),
        (Filter, chain("KUBE-PROXY-FIREWALL", f_firewall)),
        (Filter, chain("KUBE-SERVICES", f_services)),
        (Nat, chain("KUBE-MARK-MASQ", vec![rule(vec![], Target::OrMark(mark))])),
        (Nat, chain("KUBE-NODEPORTS", n_nodeports)),
        (
            Nat,
            chain(
                "KUBE-POSTROUTING",
                vec![
                    rule(vec![Match::Mark { mark, negated: true }], Target::Return),
                    // Clear the mark: a packet re-entering the stack must not be masqueraded again.
                    rule(vec![], Target::XorMark(mark)),
                    rule(vec![comment("kubernetes service traffic requiring SNAT")], Target::Masquerade { random_fully: true }),
                ],
            ),
        ),
        (Nat, chain(CANARY, vec![])),
        (Nat, chain("KUBE-SERVICES", n_services)),
    ];
    out.extend(tree.into_iter().map(|c| (Nat, c)));
    out
}

/// Tables in restore order, each with its chains by name (as iptables-save lists them).
pub fn tables<'a>(shared: Vec<(TableName, Chain)>, own: impl Iterator<Item = &'a Chain>) -> Vec<(TableName, Table)> {
    let mut by: BTreeMap<TableName, Vec<Chain>> =
        [TableName::Mangle, TableName::Filter, TableName::Nat].into_iter().map(|t| (t, Vec::new())).collect();
    for (t, c) in shared {
        by.entry(t).or_default().push(c);
    }
    by.entry(TableName::Nat).or_default().extend(own.cloned());
    [TableName::Mangle, TableName::Filter, TableName::Nat]
        .into_iter()
        .map(|t| {
            let mut chains = by.remove(&t).unwrap_or_default();
            chains.sort_by(|a, c| a.name.cmp(&c.name));
            (t, Table { chains })
        })
        .collect()
}

/// The whole ruleset for `desired`, built from scratch (render, cleanup and tests).
pub fn build(desired: &Desired, cfg: &IptablesConfig) -> Ruleset {
    let mut keyed: Vec<(&str, Part)> =
        desired.values().map(|sp| (sp.key.as_str(), super::build::service_part(cfg, &desired.node().node_ips, sp))).collect();
    keyed.sort_by(|a, b| a.0.cmp(b.0));
    let shared = shared_chains(keyed.iter().map(|(_, p)| p), desired.node(), cfg);
    let tables = tables(shared, keyed.iter().flat_map(|(_, p)| p.chains.iter()));
    Ruleset { family: cfg.family, tables, jumps: jumps() }
}
