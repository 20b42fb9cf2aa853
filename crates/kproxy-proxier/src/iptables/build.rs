//! The iptables ruleset of one family, built from the desired ServicePorts in upstream's
//! chain layout (pkg/proxy/iptables/proxier.go), as upstream v1.37.2's own iptables-save
//! shows it (tests/golden/iptables/). This first slice covers the fixed chains and ClusterIP
//! Services with cluster endpoints; NodePorts, external and load-balancer IPs, the Local
//! policies, affinity and source ranges are not built yet.

use std::net::IpAddr;

use kproxy_nftables::{Cidr, Family};

use super::names::{endpoint_chain, protocol_name, ServiceChains};
use super::restore::{Chain, Match, Rule, Table, TableName, Target};
use crate::desired::Desired;
use crate::local::LocalDetector;
use crate::service::ServicePort;

pub struct IptablesConfig {
    pub family: Family,
    pub detector: Option<LocalDetector>,
    pub masquerade_all: bool,
    pub masquerade_bit: u32,
}

impl IptablesConfig {
    fn mark(&self) -> u32 {
        1u32 << self.masquerade_bit
    }
}

/// The chains kproxy owns (declared, so flushed, by each restore) and the rules it keeps in
/// the built-in chains (ensured one by one, never flushed: other software owns those chains).
pub struct Ruleset {
    pub family: Family,
    pub tables: Vec<(TableName, Table)>,
    pub jumps: Vec<(TableName, &'static str, Rule)>,
}

const CANARY: &str = "KUBE-PROXY-CANARY";

fn comment(c: impl Into<String>) -> Match {
    Match::Comment(c.into())
}

fn jump(chain: &str) -> Target {
    Target::Jump(chain.to_string())
}

fn rule(matches: Vec<Match>, target: Target) -> Rule {
    Rule { matches, target }
}

fn host(ip: IpAddr) -> Cidr {
    Cidr { addr: ip, prefix: if ip.is_ipv4() { 32 } else { 128 } }
}

fn chain(name: &str, rules: Vec<Rule>) -> Chain {
    Chain { name: name.to_string(), rules }
}

/// Matches that pick out traffic from local pods (negated: from anywhere else).
fn local_traffic(d: &LocalDetector, negated: bool) -> Match {
    match d {
        LocalDetector::Cidr(cidr) => Match::Source { cidr: *cidr, negated },
        LocalDetector::Interface(name) => Match::InInterface { name: name.clone(), prefix: false, negated },
        LocalDetector::InterfacePrefix(name) => Match::InInterface { name: name.clone(), prefix: true, negated },
    }
}

/// The jumps from the built-in chains, in the order upstream leaves them (the same in both
/// families; IPv6's KUBE-FIREWALL stays empty).
fn jumps() -> Vec<(TableName, &'static str, Rule)> {
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

struct Builder<'a> {
    cfg: &'a IptablesConfig,
    filter_services: Vec<Rule>,
    nat_services: Vec<Rule>,
    nat_chains: Vec<Chain>,
}

impl Builder<'_> {
    fn service_port(&mut self, sp: &ServicePort) {
        let spn = sp.display.strip_suffix(':').unwrap_or(&sp.display);
        let proto = sp.protocol;
        let vip = |extra: &[Match]| {
            let mut m = vec![Match::Destination { cidr: host(sp.cluster_ip), negated: false }, Match::Protocol(proto)];
            m.extend_from_slice(extra);
            m.push(comment(format!("{spn} cluster IP")));
            m.push(Match::ProtocolModule(proto, Some(sp.port)));
            m
        };
        let endpoints: Vec<(IpAddr, u16)> = sp.cluster_endpoints().collect();
        if endpoints.is_empty() {
            let mut m = vip(&[]);
            m[2] = comment(format!("{spn} has no endpoints"));
            self.filter_services.push(rule(m, Target::Reject));
            return;
        }
        let chains = ServiceChains::new(spn, protocol_name(proto));
        self.nat_services.push(rule(vip(&[]), jump(&chains.cluster)));
        let mut svc = Vec::new();
        // Off-cluster traffic to the ClusterIP is masqueraded (all of it with masqueradeAll).
        if self.cfg.masquerade_all {
            svc.push(rule(vip(&[]), jump("KUBE-MARK-MASQ")));
        } else if let Some(d) = &self.cfg.detector {
            let mut m = vip(&[]);
            m.insert(0, local_traffic(d, true));
            sort_builtins(&mut m);
            svc.push(rule(m, jump("KUBE-MARK-MASQ")));
        }
        let n = endpoints.len();
        for (i, (ip, port)) in endpoints.iter().enumerate() {
            let sep = endpoint_chain(spn, protocol_name(proto), *ip, *port);
            let shown = match ip {
                IpAddr::V4(a) => format!("{a}:{port}"),
                IpAddr::V6(a) => format!("[{a}]:{port}"),
            };
            let mut m = vec![comment(format!("{spn} -> {shown}"))];
            // Rule i of n takes 1/(n-i) of what reaches it; the last takes the rest.
            if i + 1 < n {
                m.push(Match::Probability(1.0 / (n - i) as f64));
            }
            svc.push(rule(m, jump(&sep)));
            self.nat_chains.push(chain(
                &sep,
                vec![
                    rule(vec![Match::Source { cidr: host(*ip), negated: false }, comment(spn)], jump("KUBE-MARK-MASQ")),
                    rule(vec![Match::Protocol(proto), comment(spn), Match::ProtocolModule(proto, None)], Target::Dnat(*ip, *port)),
                ],
            ));
        }
        self.nat_chains.push(chain(&chains.cluster, svc));
    }
}

/// Built-in matches (-s, -d, -i, -p) before modules, as iptables-save prints them.
fn sort_builtins(m: &mut [Match]) {
    let rank = |m: &Match| match m {
        Match::Source { .. } => 0,
        Match::Destination { .. } => 1,
        Match::InInterface { .. } => 2,
        Match::Protocol(_) => 3,
        _ => 4,
    };
    m.sort_by_key(rank);
}

pub fn build(desired: &Desired, cfg: &IptablesConfig) -> Ruleset {
    let v6 = cfg.family == Family::Ip6;
    let mark = cfg.mark();
    let mut b = Builder { cfg, filter_services: Vec::new(), nat_services: Vec::new(), nat_chains: Vec::new() };
    for sp in desired.values() {
        b.service_port(sp);
    }
    let mut nodeports =
        vec![comment("kubernetes service nodeports; NOTE: this must be the last rule in this chain"), Match::DestinationLocal];
    if v6 {
        // Upstream's iptables mode has no localhost NodePorts in IPv6.
        nodeports.insert(0, Match::Destination { cidr: host("::1".parse().unwrap()), negated: true });
    }
    b.nat_services.push(rule(nodeports, jump("KUBE-NODEPORTS")));

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
    let mut filter = vec![
        chain("KUBE-EXTERNAL-SERVICES", vec![]),
        chain("KUBE-FIREWALL", firewall),
        chain("KUBE-FORWARD", forward),
        chain("KUBE-NODEPORTS", vec![]),
        chain(CANARY, vec![]),
        chain("KUBE-PROXY-FIREWALL", vec![]),
        chain("KUBE-SERVICES", std::mem::take(&mut b.filter_services)),
    ];
    let mut nat = vec![
        chain("KUBE-MARK-MASQ", vec![rule(vec![], Target::OrMark(mark))]),
        chain("KUBE-NODEPORTS", vec![]),
        chain(
            "KUBE-POSTROUTING",
            vec![
                rule(vec![Match::Mark { mark, negated: true }], Target::Return),
                // Clear the mark: a packet re-entering the stack must not be masqueraded again.
                rule(vec![], Target::XorMark(mark)),
                rule(vec![comment("kubernetes service traffic requiring SNAT")], Target::Masquerade { random_fully: true }),
            ],
        ),
        chain(CANARY, vec![]),
        chain("KUBE-SERVICES", std::mem::take(&mut b.nat_services)),
    ];
    nat.append(&mut b.nat_chains);
    // iptables-save lists chains by name.
    filter.sort_by(|a, c| a.name.cmp(&c.name));
    nat.sort_by(|a, c| a.name.cmp(&c.name));
    Ruleset {
        family: cfg.family,
        tables: vec![
            (TableName::Mangle, Table { chains: vec![chain(CANARY, vec![])] }),
            (TableName::Filter, Table { chains: filter }),
            (TableName::Nat, Table { chains: nat }),
        ],
        jumps: jumps(),
    }
}
