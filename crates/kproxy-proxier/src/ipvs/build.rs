//! One ServicePort's share of IPVS mode's state: its virtual servers and their real servers,
//! the addresses it puts on kube-ipvs0, and its elements in the nftables table. Built alone
//! from the ServicePort and the node, so a partial sync rebuilds only what changed.

use std::net::IpAddr;

use kproxy_ipvs::{DestKey, Destination, Service, ServiceKey, FLAG_PERSISTENT, FLAG_SCHED2};
use kproxy_nftables::{Cidr, Family, Val};

use crate::local::LocalDetector;
use crate::node::NodeAddrs;
use crate::service::ServicePort;

/// Options that shape the virtual servers and the table.
#[derive(Debug, Clone)]
pub struct IpvsConfig {
    /// `--ipvs-scheduler`; empty means rr, as upstream.
    pub scheduler: String,
    /// None: no off-cluster masquerade rule (upstream's no-op detector).
    pub detector: Option<LocalDetector>,
    pub masquerade_all: bool,
    pub masquerade_bit: u32,
    /// `--ipvs-exclude-cidrs`: virtual servers in them are someone else's, never touched.
    pub exclude_cidrs: Vec<Cidr>,
}

impl IpvsConfig {
    pub fn new(detector: Option<LocalDetector>) -> Self {
        Self { scheduler: String::new(), detector, masquerade_all: false, masquerade_bit: 14, exclude_cidrs: Vec::new() }
    }

    pub fn scheduler(&self) -> &str {
        if self.scheduler.is_empty() {
            "rr"
        } else {
            &self.scheduler
        }
    }

    pub fn mark(&self) -> u32 {
        1u32 << self.masquerade_bit
    }

    pub fn excluded(&self, ip: &IpAddr) -> bool {
        self.exclude_cidrs.iter().any(|c| c.contains(ip))
    }
}

/// What a packet to a virtual server with no endpoint for it meets in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NoEndpoint {
    /// No endpoint at all: rejected, as every mode rejects it.
    Reject,
    /// A Local policy with no local endpoint: dropped (pods excepted for external traffic).
    DropInternal,
    DropExternal,
}

/// An element of one of the table's sets, by set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Element {
    ClusterIp(IpAddr),
    MasqueradeService(IpAddr, u8, u16),
    MasqueradeNodePort(u8, u16),
    Hairpin(IpAddr),
    NoEndpointService(IpAddr, u8, u16, NoEndpoint),
    NoEndpointNodePort(u8, u16, NoEndpoint),
    Firewall(IpAddr, u8, u16),
    /// A Service address on kube-ipvs0, and each of its Service ports: anything else to
    /// such an address is refused (upstream's KUBE-IPVS-FILTER).
    BoundAddress(IpAddr),
    BoundPort(IpAddr, u8, u16),
    /// healthCheckNodePort (TCP): answered on kube-ipvs0's addresses too, as upstream.
    HealthCheckPort(u16),
}

impl Element {
    /// The element's key, as the set holds it.
    pub fn key(&self) -> Vec<Val> {
        let vip = |ip: &IpAddr, p: &u8, port: &u16| vec![Val::ip(*ip), Val::Proto(*p), Val::Port(*port)];
        match self {
            Element::ClusterIp(ip) | Element::BoundAddress(ip) => vec![Val::ip(*ip)],
            Element::BoundPort(ip, p, port) => vip(ip, p, port),
            Element::HealthCheckPort(port) => vec![Val::Proto(6), Val::Port(*port)],
            Element::Hairpin(ip) => vec![Val::ip(*ip), Val::ip(*ip)],
            Element::MasqueradeService(ip, p, port) | Element::NoEndpointService(ip, p, port, _) | Element::Firewall(ip, p, port) => {
                vip(ip, p, port)
            }
            Element::MasqueradeNodePort(p, port) | Element::NoEndpointNodePort(p, port, _) => vec![Val::Proto(*p), Val::Port(*port)],
        }
    }
}

/// One virtual server with its real servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualServer {
    pub service: Service,
    pub dests: Vec<Destination>,
}

/// A ServicePort's share of the node's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Part {
    pub servers: Vec<VirtualServer>,
    /// Addresses for kube-ipvs0 (ClusterIP, external and LoadBalancer IPs).
    pub addresses: Vec<IpAddr>,
    pub elements: Vec<Element>,
    /// `firewall-check` rules: (LB IP, protocol, port, allowed source).
    pub allowed: Vec<(IpAddr, u8, u16, Cidr)>,
}

/// The address as a one-address prefix.
pub fn host(ip: IpAddr) -> Cidr {
    Cidr { addr: ip, prefix: if ip.is_ipv4() { 32 } else { 128 } }
}

fn service(cfg: &IpvsConfig, sp: &ServicePort, addr: IpAddr, port: u16) -> Service {
    let mut s = Service::new(ServiceKey { addr, protocol: sp.protocol, port }, cfg.scheduler());
    // upstream: mh hashes the source port too, and has no fallback.
    if cfg.scheduler() == "mh" {
        s.flags |= FLAG_SCHED2;
    }
    if sp.sticky_max_age_seconds > 0 {
        s.flags |= FLAG_PERSISTENT;
        s.timeout = sp.sticky_max_age_seconds;
    }
    s
}

fn dests(eps: impl Iterator<Item = (IpAddr, u16)>) -> Vec<Destination> {
    let mut v: Vec<Destination> = eps.map(|(addr, port)| Destination::masq(DestKey { addr, port }, 1)).collect();
    v.sort_by_key(|d| d.key);
    v.dedup_by_key(|d| d.key);
    v
}

/// Addresses IPVS refuses as real servers (EINVAL): kept out rather than failing every sync.
fn usable(addr: &IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => !(a.is_unspecified() || a.octets()[0] == 0 || a.is_multicast() || a.is_broadcast()),
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast() || (a.segments()[0] & 0xffc0) == 0xfe80),
    }
}

/// The ServicePort's part on a node with `node`'s addresses.
pub fn service_part(cfg: &IpvsConfig, sp: &ServicePort, node: &NodeAddrs) -> Part {
    let mut part = Part::default();
    let (proto, port) = (sp.protocol, sp.port);
    let cluster = dests(sp.cluster_endpoints().filter(|(a, _)| usable(a)));
    let local = dests(sp.local_endpoints().filter(|(a, _)| usable(a)));
    let any = !cluster.is_empty() || !local.is_empty();
    // upstream: a Local policy without local endpoints falls back to the cluster's, so pods
    // still reach the Service; the table drops what else would arrive (external sources).
    let internal = if sp.internal_policy_local { &local } else { &cluster };
    let external = if sp.external_policy_local && !local.is_empty() { &local } else { &cluster };
    let no_internal = match () {
        _ if !internal.is_empty() => None,
        _ if any && sp.internal_policy_local => Some(NoEndpoint::DropInternal),
        _ => Some(NoEndpoint::Reject),
    };
    let no_external = match () {
        _ if external.is_empty() => Some(NoEndpoint::Reject),
        _ if sp.external_policy_local && local.is_empty() => Some(NoEndpoint::DropExternal),
        _ => None,
    };

    if !cfg.excluded(&sp.cluster_ip) {
        part.servers.push(VirtualServer { service: service(cfg, sp, sp.cluster_ip, port), dests: internal.clone() });
        part.addresses.push(sp.cluster_ip);
        part.elements.extend([
            Element::ClusterIp(sp.cluster_ip),
            Element::BoundAddress(sp.cluster_ip),
            Element::BoundPort(sp.cluster_ip, proto, port),
        ]);
        if let Some(n) = no_internal {
            part.elements.push(Element::NoEndpointService(sp.cluster_ip, proto, port, n));
        }
    }
    let open = sp.load_balancer_source_ranges.iter().any(|r| r.prefix == 0);
    let externals = sp.external_ips.iter().map(|ip| (ip, false)).chain(sp.load_balancer_vips.iter().map(|ip| (ip, true)));
    for (ip, lb) in externals {
        if *ip == sp.cluster_ip || ip.is_unspecified() || sp.blocked.contains(ip) || cfg.excluded(ip) {
            continue;
        }
        if part.servers.iter().any(|v| v.service.key.addr == *ip) {
            continue; // listed twice (an external IP that is also the LB's)
        }
        part.servers.push(VirtualServer { service: service(cfg, sp, *ip, port), dests: external.clone() });
        // A node address already takes its traffic; kube-ipvs0 holds only the others.
        if !node.local.contains(ip) {
            part.addresses.push(*ip);
            part.elements.extend([Element::BoundAddress(*ip), Element::BoundPort(*ip, proto, port)]);
        }
        if !sp.external_policy_local {
            part.elements.push(Element::MasqueradeService(*ip, proto, port));
        }
        if let Some(n) = no_external {
            part.elements.push(Element::NoEndpointService(*ip, proto, port, n));
        }
        if lb && !sp.load_balancer_source_ranges.is_empty() && !open {
            part.elements.push(Element::Firewall(*ip, proto, port));
            for r in &sp.load_balancer_source_ranges {
                part.allowed.push((*ip, proto, port, *r));
            }
            // The node reaching its own LoadBalancer IP has that IP as source (it is local):
            // let it through when a node IP is in the ranges, as nftables mode does.
            if node.node_ips.iter().any(|n| sp.load_balancer_source_ranges.iter().any(|r| r.contains(n))) {
                let lbs = sp.load_balancer_vips.iter().filter(|v| Family::of(v) == Family::of(ip));
                part.allowed.extend(lbs.map(|v| (*ip, proto, port, host(*v))));
            }
        }
    }
    if sp.node_port != 0 && !sp.node_port_blocked() {
        for ip in node.nodeport.iter().filter(|ip| !cfg.excluded(ip)) {
            part.servers.push(VirtualServer { service: service(cfg, sp, *ip, sp.node_port), dests: external.clone() });
        }
        if !sp.external_policy_local {
            part.elements.push(Element::MasqueradeNodePort(proto, sp.node_port));
        }
        if let Some(n) = no_external {
            part.elements.push(Element::NoEndpointNodePort(proto, sp.node_port, n));
        }
    }
    if sp.health_check_node_port != 0 {
        part.elements.push(Element::HealthCheckPort(sp.health_check_node_port));
    }
    // A pod that reaches itself through the Service is masqueraded (hairpin): only this
    // node's pods can.
    let here: std::collections::BTreeSet<IpAddr> = sp.endpoints.iter().filter(|e| e.flags.is_local).map(|e| e.addr).collect();
    let mut eps: Vec<IpAddr> = internal.iter().chain(external.iter()).map(|d| d.key.addr).filter(|a| here.contains(a)).collect();
    eps.sort_unstable();
    eps.dedup();
    part.elements.extend(eps.into_iter().map(Element::Hairpin));
    part
}
