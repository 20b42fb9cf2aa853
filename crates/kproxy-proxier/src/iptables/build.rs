//! Each ServicePort's part of the iptables ruleset (its rules in the shared chains, and its
//! own chains), in upstream's chain layout (pkg/proxy/iptables/proxier.go), as upstream v1.37.2's own iptables-save
//! shows it (tests/golden/iptables/): ClusterIPs, NodePorts (on every local address, this
//! mode's default), external and load-balancer IPs, source ranges, both Local policies,
//! ClientIP affinity, and the rejects and drops. Endpoint selection (topology, terminating
//! fallback) is the agent's, as in every mode.

use std::net::IpAddr;

use kproxy_nftables::{Cidr, Family};

use super::names::{endpoint_chain, protocol_name, ServiceChains};
use super::restore::{Chain, Match, Rule, Target};
use crate::local::LocalDetector;
use crate::service::ServicePort;

pub struct IptablesConfig {
    pub family: Family,
    pub detector: Option<LocalDetector>,
    pub masquerade_all: bool,
    pub masquerade_bit: u32,
    /// nat KUBE-SERVICES becomes a dispatch tree above this many rules (dispatch.rs).
    pub dispatch_above: usize,
    /// The benchmark's baseline: every partial sync writes all the shared chains, as upstream's
    /// MinimizeIPTablesRestore does.
    pub upstream_partial: bool,
    /// IPv4 NodePorts on 127.0.0.1 (`--iptables-localhost-nodeports`, upstream's default true):
    /// the KUBE-FIREWALL martian drop goes with it (CVE-2020-8558).
    pub localhost_nodeports: bool,
    /// KUBE-FORWARD drops conntrack-INVALID packets, unless nf_conntrack_tcp_be_liberal is set.
    pub drop_invalid: bool,
}

/// Up to this many rules, nat KUBE-SERVICES is upstream's flat list.
pub const DISPATCH_ABOVE: usize = 128;

impl IptablesConfig {
    /// Upstream's defaults around `detector`: masquerade bit 14, localhost NodePorts, the
    /// INVALID drop, and kproxy's dispatch threshold.
    pub fn new(family: Family, detector: Option<LocalDetector>) -> Self {
        Self {
            family,
            detector,
            masquerade_all: false,
            masquerade_bit: 14,
            dispatch_above: DISPATCH_ABOVE,
            upstream_partial: false,
            localhost_nodeports: true,
            drop_invalid: true,
        }
    }

    pub(super) fn mark(&self) -> u32 {
        1u32 << self.masquerade_bit
    }
}

pub(super) fn comment(c: impl Into<String>) -> Match {
    Match::Comment(c.into())
}

pub(super) fn jump(chain: &str) -> Target {
    Target::Jump(chain.to_string())
}

pub(super) fn rule(matches: Vec<Match>, target: Target) -> Rule {
    Rule { matches, target }
}

pub(super) fn host(ip: IpAddr) -> Cidr {
    Cidr { addr: ip, prefix: if ip.is_ipv4() { 32 } else { 128 } }
}

pub(super) fn chain(name: &str, rules: Vec<Rule>) -> Chain {
    Chain { name: name.to_string(), rules }
}

/// Matches that pick out traffic from local pods (negated: from anywhere else).
pub(super) fn local_traffic(d: &LocalDetector, negated: bool) -> Match {
    match d {
        LocalDetector::Cidr(cidr) => Match::Source { cidr: *cidr, negated },
        LocalDetector::Interface(name) => Match::InInterface { name: name.clone(), prefix: false, negated },
        LocalDetector::InterfacePrefix(name) => Match::InInterface { name: name.clone(), prefix: true, negated },
    }
}

/// One ServicePort's rules in the shared chains, in the order it adds them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SharedRules {
    pub filter_services: Vec<Rule>,
    pub filter_external: Vec<Rule>,
    pub filter_nodeports: Vec<Rule>,
    pub filter_firewall: Vec<Rule>,
    pub nat_services: Vec<Rule>,
    pub nat_nodeports: Vec<Rule>,
}

/// What one ServicePort adds: rules in the shared chains, and its own nat chains (named from
/// its ServicePortName, so no other ServicePort writes them).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Part {
    pub shared: SharedRules,
    pub chains: Vec<Chain>,
}

impl Part {
    pub fn rules(&self) -> (usize, usize) {
        let s = &self.shared;
        let filter = s.filter_services.len() + s.filter_external.len() + s.filter_nodeports.len() + s.filter_firewall.len();
        let nat = s.nat_services.len() + s.nat_nodeports.len() + self.chains.iter().map(|c| c.rules.len()).sum::<usize>();
        (filter, nat)
    }
}

/// One ServicePort's part, as upstream's syncProxyRules writes it. `node_ips` are the node's
/// own addresses: a source range that holds one lets the LoadBalancer IPs in.
pub fn service_part(cfg: &IptablesConfig, node_ips: &[IpAddr], sp: &ServicePort) -> Part {
    let mut b = Builder { cfg, node_ips, shared: SharedRules::default(), nat_chains: Vec::new() };
    b.service_port(sp);
    Part { shared: b.shared, chains: b.nat_chains }
}

struct Builder<'a> {
    cfg: &'a IptablesConfig,
    node_ips: &'a [IpAddr],
    shared: SharedRules,
    nat_chains: Vec<Chain>,
}

/// `ip:port`, `[ip6]:port`: upstream's Endpoint.String().
fn endpoint_string(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// `-d ip -p proto ... --dport port` around `extra` and the comment, as upstream's capture rules.
fn capture(dst: Option<IpAddr>, proto: u8, port: u16, text: String, extra: &[Match]) -> Vec<Match> {
    let mut m = Vec::new();
    if let Some(ip) = dst {
        m.push(Match::Destination { cidr: host(ip), negated: false });
    }
    m.push(Match::Protocol(proto));
    m.push(comment(text));
    m.extend_from_slice(extra);
    m.push(Match::ProtocolModule(proto, Some(port)));
    m
}

impl Builder<'_> {
    /// One ServicePort, as upstream's syncProxyRules writes it.
    fn service_port(&mut self, sp: &ServicePort) {
        let spn = sp.display.strip_suffix(':').unwrap_or(&sp.display);
        let (proto, pname) = (sp.protocol, protocol_name(sp.protocol));
        let chains = ServiceChains::new(spn, pname);
        // Upstream's ExternallyAccessible for this family: a NodePort, an external or a LoadBalancer IP.
        let externally_accessible = sp.node_port != 0 || !sp.external_ips.is_empty() || !sp.load_balancer_vips.is_empty();
        // External traffic from pods and the node short-circuits to the cluster endpoints, whatever eTP says.
        let uses_cluster = !sp.internal_policy_local || externally_accessible;
        let uses_local = sp.internal_policy_local || (externally_accessible && sp.external_policy_local);
        // Upstream sorts endpoints by their string; the agent's selection comes in address order.
        let mut cluster: Vec<(IpAddr, u16)> = if uses_cluster { sp.cluster_endpoints().collect() } else { Vec::new() };
        let mut local: Vec<(IpAddr, u16)> = if uses_local { sp.local_endpoints().collect() } else { Vec::new() };
        cluster.sort_by_key(|(ip, port)| endpoint_string(*ip, *port));
        local.sort_by_key(|(ip, port)| endpoint_string(*ip, *port));
        let has_endpoints = !cluster.is_empty() || !local.is_empty() || (!uses_cluster && sp.cluster_endpoints().next().is_some());
        let has_internal = if sp.internal_policy_local { !local.is_empty() } else { has_endpoints };
        let has_external = if sp.external_policy_local { !local.is_empty() } else { has_endpoints };
        let internal_chain = if sp.internal_policy_local { &chains.local } else { &chains.cluster };
        let external_policy_chain = if sp.external_policy_local { &chains.local } else { &chains.cluster };
        let uses_external_chain = has_endpoints && externally_accessible;
        let lb_vips: Vec<IpAddr> = sp.load_balancer_vips.iter().copied().filter(|ip| !sp.blocked.contains(ip)).collect();
        let external_ips: Vec<IpAddr> = sp.external_ips.iter().copied().filter(|ip| !sp.blocked.contains(ip)).collect();
        let uses_fw = has_endpoints && !lb_vips.is_empty() && !sp.load_balancer_source_ranges.is_empty();
        let lb_chain = if uses_fw { &chains.firewall } else { &chains.external };
        let (filter_target, filter_comment) = if !has_endpoints {
            (Target::Reject, format!("{spn} has no endpoints"))
        } else {
            (Target::Drop, format!("{spn} has no local endpoints"))
        };

        // The ClusterIP.
        if has_internal {
            self.shared
                .nat_services
                .push(rule(capture(Some(sp.cluster_ip), proto, sp.port, format!("{spn} cluster IP"), &[]), jump(internal_chain)));
        } else {
            self.shared
                .filter_services
                .push(rule(capture(Some(sp.cluster_ip), proto, sp.port, filter_comment.clone(), &[]), filter_target.clone()));
        }
        // External IPs.
        for ip in &external_ips {
            if has_endpoints {
                self.shared
                    .nat_services
                    .push(rule(capture(Some(*ip), proto, sp.port, format!("{spn} external IP"), &[]), jump(&chains.external)));
            }
            if !has_external {
                self.shared
                    .filter_external
                    .push(rule(capture(Some(*ip), proto, sp.port, filter_comment.clone(), &[]), filter_target.clone()));
            }
        }
        // LoadBalancer IPs.
        for ip in &lb_vips {
            if has_endpoints {
                self.shared
                    .nat_services
                    .push(rule(capture(Some(*ip), proto, sp.port, format!("{spn} loadbalancer IP"), &[]), jump(lb_chain)));
            }
            if uses_fw {
                let text = format!("{spn} traffic not accepted by {}", chains.firewall);
                self.shared.filter_firewall.push(rule(capture(Some(*ip), proto, sp.port, text, &[]), Target::Drop));
            }
        }
        if !has_external {
            for ip in &lb_vips {
                self.shared
                    .filter_external
                    .push(rule(capture(Some(*ip), proto, sp.port, filter_comment.clone(), &[]), filter_target.clone()));
            }
        }
        // The NodePort, on every local address (iptables mode's default).
        if sp.node_port != 0 && !sp.node_port_blocked() {
            if has_endpoints {
                self.shared.nat_nodeports.push(rule(capture(None, proto, sp.node_port, spn.to_string(), &[]), jump(&chains.external)));
            }
            if !has_external {
                let m = capture(None, proto, sp.node_port, filter_comment.clone(), &[Match::DestinationLocal]);
                self.shared.filter_external.push(rule(m, filter_target.clone()));
            }
        }
        if sp.health_check_node_port != 0 {
            let m = capture(None, 6, sp.health_check_node_port, format!("{spn} health check node port"), &[]);
            self.shared.filter_nodeports.push(rule(m, Target::Accept));
        }

        // Off-cluster traffic to the ClusterIP is masqueraded (all of it with masqueradeAll).
        let mut internal_rules = Vec::new();
        if has_internal {
            let m = capture(Some(sp.cluster_ip), proto, sp.port, format!("{spn} cluster IP"), &[]);
            if self.cfg.masquerade_all {
                internal_rules.push(rule(m, jump("KUBE-MARK-MASQ")));
            } else if let Some(d) = &self.cfg.detector {
                let mut m = m;
                m.insert(0, local_traffic(d, true));
                sort_builtins(&mut m);
                internal_rules.push(rule(m, jump("KUBE-MARK-MASQ")));
            }
        }

        if uses_external_chain {
            let mut ext = Vec::new();
            if !sp.external_policy_local {
                // Endpoints may be on other nodes: masquerade, or the replies would bypass us.
                ext.push(rule(vec![comment(format!("masquerade traffic for {spn} external destinations"))], jump("KUBE-MARK-MASQ")));
            } else {
                if let Some(d) = &self.cfg.detector {
                    // Pods reaching an external address take the cluster path, as if out to a load balancer and back.
                    let m = vec![local_traffic(d, false), comment(format!("pod traffic for {spn} external destinations"))];
                    ext.push(rule(sorted(m), jump(&chains.cluster)));
                }
                // The node itself: its source would be the external address, so masquerade and go cluster-wide.
                ext.push(rule(
                    vec![comment(format!("masquerade LOCAL traffic for {spn} external destinations")), Match::SourceLocal],
                    jump("KUBE-MARK-MASQ"),
                ));
                ext.push(rule(
                    vec![comment(format!("route LOCAL traffic for {spn} external destinations")), Match::SourceLocal],
                    jump(&chains.cluster),
                ));
            }
            if has_external {
                ext.push(rule(vec![], jump(external_policy_chain)));
            }
            self.nat_chains.push(chain(&chains.external, ext));
        }

        if uses_fw {
            let text = format!("{spn} loadbalancer IP");
            let mut fw: Vec<Rule> = Vec::new();
            let mut allow_node = false;
            for cidr in &sp.load_balancer_source_ranges {
                fw.push(rule(vec![Match::Source { cidr: *cidr, negated: false }, comment(text.clone())], jump(&chains.external)));
                allow_node |= self.node_ips.iter().any(|ip| cidr.contains(ip));
            }
            // The node's own requests to a VIP it holds come from the VIP itself.
            if allow_node {
                for ip in &lb_vips {
                    fw.push(rule(vec![Match::Source { cidr: host(*ip), negated: false }, comment(text.clone())], jump(&chains.external)));
                }
            }
            fw.push(rule(vec![comment(format!("other traffic to {spn} will be dropped by KUBE-PROXY-FIREWALL"))], Target::None));
            self.nat_chains.push(chain(&chains.firewall, fw));
        }

        let sticky = (sp.sticky_max_age_seconds > 0).then_some(sp.sticky_max_age_seconds);
        let uses_cluster_chain = !cluster.is_empty();
        let uses_local_chain = !local.is_empty();
        let mut reachable: Vec<(IpAddr, u16)> = cluster.clone();
        for e in &local {
            if !reachable.contains(e) {
                reachable.push(*e);
            }
        }
        // The masquerade rule heads the internal chain; the endpoint rules follow.
        let (mut cluster_rules, mut local_rules) = (Vec::new(), Vec::new());
        if internal_chain == &chains.cluster {
            cluster_rules = internal_rules;
        } else {
            local_rules = internal_rules;
        }
        if uses_cluster_chain {
            cluster_rules.extend(endpoint_rules(spn, pname, &cluster, sticky));
            self.nat_chains.push(chain(&chains.cluster, cluster_rules));
        }
        if uses_local_chain {
            local_rules.extend(endpoint_rules(spn, pname, &local, sticky));
            self.nat_chains.push(chain(&chains.local, local_rules));
        }
        for (ip, port) in reachable {
            let sep = endpoint_chain(spn, pname, ip, port);
            let mut dnat = vec![Match::Protocol(proto), comment(spn)];
            if sticky.is_some() {
                dnat.push(Match::RecentSet { name: sep.clone() });
            }
            dnat.push(Match::ProtocolModule(proto, None));
            self.nat_chains.push(chain(
                &sep,
                vec![
                    // Hairpin: a pod reaching itself through the Service is masqueraded.
                    rule(vec![Match::Source { cidr: host(ip), negated: false }, comment(spn)], jump("KUBE-MARK-MASQ")),
                    rule(dnat, Target::Dnat(ip, port)),
                ],
            ));
        }
    }
}

/// Affinity checks (if sticky), then rule i of n taking 1/(n-i) of what reaches it.
fn endpoint_rules(spn: &str, proto: &str, endpoints: &[(IpAddr, u16)], sticky: Option<u32>) -> Vec<Rule> {
    let mut out = Vec::new();
    let named: Vec<(String, String)> = endpoints
        .iter()
        .map(|(ip, port)| (endpoint_chain(spn, proto, *ip, *port), format!("{spn} -> {}", endpoint_string(*ip, *port))))
        .collect();
    if let Some(seconds) = sticky {
        for (sep, text) in &named {
            out.push(rule(vec![comment(text.clone()), Match::RecentCheck { name: sep.clone(), seconds }], jump(sep)));
        }
    }
    let n = named.len();
    for (i, (sep, text)) in named.iter().enumerate() {
        let mut m = vec![comment(text.clone())];
        if i + 1 < n {
            m.push(Match::Probability(1.0 / (n - i) as f64));
        }
        out.push(rule(m, jump(sep)));
    }
    out
}

fn sorted(mut m: Vec<Match>) -> Vec<Match> {
    sort_builtins(&mut m);
    m
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
