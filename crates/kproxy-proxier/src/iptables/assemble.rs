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

/// KUBE-FIREWALL is written (so flushed) only with its martian drop: IPv4 with localhost
/// NodePorts, as upstream. Otherwise it is only made to exist, for the jumps, and whatever the
/// kubelet keeps in it stays.
pub fn writes_firewall(cfg: &IptablesConfig) -> bool {
    cfg.family == Family::Ip && cfg.localhost_nodeports
}

/// Chains that must exist for the jumps but that kproxy does not write: (table, chain).
pub fn ensured_chains(cfg: &IptablesConfig) -> Vec<(TableName, &'static str)> {
    if writes_firewall(cfg) {
        Vec::new()
    } else {
        vec![(TableName::Filter, "KUBE-FIREWALL")]
    }
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
    // IPv6 never has localhost NodePorts; IPv4 only with route_localnet (localhost_nodeports).
    let localhost = !v6 && cfg.localhost_nodeports;
    if node.nodeports_all {
        let mut m = vec![comment(nodeports_text), Match::DestinationLocal];
        if v6 {
            m.insert(0, Match::Destination { cidr: host("::1".parse().unwrap()), negated: true });
        } else if !localhost {
            m.insert(0, Match::Destination { cidr: "127.0.0.0/8".parse().unwrap(), negated: true });
        }
        n_services.push(rule(m, jump("KUBE-NODEPORTS")));
    } else {
        for ip in node.nodeport_ips.iter().filter(|ip| localhost || !ip.is_loopback()) {
            n_services
                .push(rule(vec![Match::Destination { cidr: host(*ip), negated: false }, comment(nodeports_text)], jump("KUBE-NODEPORTS")));
        }
    }

    let mut firewall = Vec::new();
    if writes_firewall(cfg) {
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
    let mut forward = Vec::new();
    if cfg.drop_invalid {
        forward.push(rule(vec![Match::CtState { states: "INVALID", negated: false }], Target::Drop));
    }
    forward.push(rule(vec![comment("kubernetes forwarding rules"), Match::Mark { mark, negated: false }], Target::Accept));
    forward.push(rule(
        vec![comment("kubernetes forwarding conntrack rule"), Match::CtState { states: "RELATED,ESTABLISHED", negated: false }],
        Target::Accept,
    ));
    use TableName::{Filter, Mangle, Nat};
    let mut out = vec![
        (Mangle, chain(CANARY, vec![])),
        (Filter, chain("KUBE-EXTERNAL-SERVICES", f_external)),
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
    if writes_firewall(cfg) {
        out.push((Filter, chain("KUBE-FIREWALL", firewall)));
    }
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
    let mut shared = shared_chains(keyed.iter().map(|(_, p)| p), desired.node(), cfg);
    // As iptables-save shows them on a node where nothing else wrote there: empty.
    shared.extend(ensured_chains(cfg).into_iter().map(|(t, c)| (t, chain(c, vec![]))));
    let tables = tables(shared, keyed.iter().flat_map(|(_, p)| p.chains.iter()));
    Ruleset { family: cfg.family, tables, jumps: jumps() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iptables::restore::render_save;

    fn cfg(family: Family, localhost_nodeports: bool, drop_invalid: bool) -> IptablesConfig {
        IptablesConfig { dispatch_above: usize::MAX, localhost_nodeports, drop_invalid, ..IptablesConfig::new(family, None) }
    }

    fn save(family: Family, localhost: bool, drop_invalid: bool, nodeport_ips: &[&str]) -> String {
        let mut d = Desired::new(family);
        d.keep_loopback_nodeports(localhost);
        let ips: Vec<String> = nodeport_ips.iter().map(|s| s.to_string()).collect();
        d.set_node(ips.is_empty(), &ips, &[]).unwrap();
        let rs = build(&d, &cfg(family, localhost, drop_invalid));
        render_save(&rs.tables, &rs.jumps, family == Family::Ip6)
    }

    #[test]
    fn localhost_nodeports_bring_the_martian_drop_and_take_loopback() {
        let on = save(Family::Ip, true, true, &[]);
        assert!(
            on.contains("-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment \"block incoming localnet connections\"")
        );
        assert!(on.contains("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"));
        // Off: no martian drop, KUBE-FIREWALL only exists (the kubelet's rules in it stay), and
        // 127/8 is kept out of the NodePorts.
        let off = save(Family::Ip, false, true, &[]);
        assert!(!off.contains("-A KUBE-FIREWALL"));
        assert!(off.contains(":KUBE-FIREWALL - [0:0]"));
        assert!(off.contains("-A KUBE-SERVICES ! -d 127.0.0.0/8 -m comment --comment \"kubernetes service nodeports;"));
        // nodePortAddresses holding 127.0.0.1: a NodePort address only with localhost NodePorts.
        assert!(save(Family::Ip, true, true, &["127.0.0.1", "192.168.0.2"]).contains("-A KUBE-SERVICES -d 127.0.0.1/32 -m comment"));
        assert!(!save(Family::Ip, false, true, &["127.0.0.1", "192.168.0.2"]).contains("-d 127.0.0.1/32"));
        // IPv6 never: no martian drop either way, and ::1 stays out.
        let v6 = save(Family::Ip6, true, true, &[]);
        assert!(!v6.contains("-A KUBE-FIREWALL") && v6.contains("-A KUBE-SERVICES ! -d ::1/128 "));
        assert_eq!(ensured_chains(&cfg(Family::Ip6, true, true)), vec![(TableName::Filter, "KUBE-FIREWALL")]);
        assert!(ensured_chains(&cfg(Family::Ip, true, true)).is_empty());
    }

    #[test]
    fn tcp_be_liberal_drops_the_invalid_drop() {
        assert!(save(Family::Ip, true, true, &[]).contains("-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP"));
        let liberal = save(Family::Ip, true, false, &[]);
        assert!(!liberal.contains("INVALID"));
        assert!(liberal.contains("-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\""));
    }
}
