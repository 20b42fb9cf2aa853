//! One ServicePort's share of userspace mode's state: its Service in the proxy (three
//! endpoint pools), the frontends that listen for it, and the addresses it needs on the
//! Service link. Built alone from the ServicePort and the node, so a partial sync
//! rebuilds only what changed.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use kproxy_nftables::Family;
use kproxy_userspace::{Frontend, FrontendKey, Prefix, Proto, ServiceSpec};

use crate::local::LocalDetector;
use crate::node::NodeAddrs;
use crate::service::ServicePort;

/// The pools of each Service, by index.
pub const INTERNAL: usize = 0;
pub const EXTERNAL: usize = 1;
pub const CLUSTER: usize = 2;
pub const POOL_NAMES: [&str; 3] = ["internal", "external", "cluster"];

#[derive(Debug, Clone, Default)]
pub struct UserspaceConfig {
    /// None: no pod short-circuit for external traffic policy Local (upstream's no-op detector).
    pub detector: Option<LocalDetector>,
    /// Active connections per Service; 0: no cap.
    pub max_connections: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// upstream's ServicePortName, for metrics and the render.
    pub display: String,
    pub proto: Proto,
    pub service: ServiceSpec,
    pub frontends: BTreeMap<FrontendKey, Frontend>,
    /// Service addresses the link holds for it (ClusterIP, and external and LoadBalancer
    /// IPs that are not node addresses already).
    pub addresses: Vec<IpAddr>,
}

/// The proxy's name of a ServicePort: unique across families (one proxy serves both).
pub fn proxy_name(family: Family, sp: &ServicePort) -> String {
    format!("{} {}", family.keyword(), sp.key)
}

fn pool(eps: impl Iterator<Item = (IpAddr, u16)>) -> Vec<SocketAddr> {
    let mut v: Vec<SocketAddr> = eps.filter(|(a, _)| !a.is_unspecified()).map(|(a, p)| SocketAddr::new(a, p)).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The ServicePort's part, or None for a protocol this mode cannot proxy (SCTP).
pub fn service_part(cfg: &UserspaceConfig, family: Family, sp: &ServicePort, node: &NodeAddrs) -> Option<Part> {
    let proto = match sp.protocol {
        6 => Proto::Tcp,
        17 => Proto::Udp,
        _ => return None,
    };
    let cluster = pool(sp.cluster_endpoints());
    let local = pool(sp.local_endpoints());
    let internal = if sp.internal_policy_local { local.clone() } else { cluster.clone() };
    let external = if sp.external_policy_local { local } else { cluster.clone() };
    let service = ServiceSpec {
        name: proxy_name(family, sp),
        pools: vec![internal, external, cluster],
        affinity: (sp.sticky_max_age_seconds > 0).then(|| Duration::from_secs(sp.sticky_max_age_seconds.into())),
        max_connections: cfg.max_connections,
    };
    let serves = |p: usize| !service.pools[p].is_empty();
    // External traffic policy Local: this node's pods and the node itself still reach every
    // endpoint (upstream's short-circuit); the sync's local sources say who they are.
    let short = sp.external_policy_local.then_some(CLUSTER);
    let external_open = serves(EXTERNAL) || short.is_some_and(serves);
    let mut part = Part { display: sp.display.clone(), proto, service: service.clone(), frontends: BTreeMap::new(), addresses: Vec::new() };
    let key = |addr: IpAddr, port: u16| FrontendKey { proto, addr: SocketAddr::new(addr, port) };
    let external_fe = |allowed: Vec<Prefix>| Frontend { service: service.name.clone(), pool: EXTERNAL, local_pool: short, allowed };

    // An address with no frontend is still held: the kernel refuses its clients at once.
    part.addresses.push(sp.cluster_ip);
    if serves(INTERNAL) {
        part.frontends.insert(
            key(sp.cluster_ip, sp.port),
            Frontend { service: service.name.clone(), pool: INTERNAL, local_pool: None, allowed: vec![] },
        );
    }
    let open_ranges = sp.load_balancer_source_ranges.iter().any(|r| r.prefix == 0);
    let externals = sp.external_ips.iter().map(|ip| (ip, false)).chain(sp.load_balancer_vips.iter().map(|ip| (ip, true)));
    for (ip, lb) in externals {
        if *ip == sp.cluster_ip || ip.is_unspecified() || sp.blocked.contains(ip) || part.frontends.contains_key(&key(*ip, sp.port)) {
            continue;
        }
        if !node.local.contains(ip) && !part.addresses.contains(ip) {
            part.addresses.push(*ip);
        }
        let mut allowed = Vec::new();
        if lb && !sp.load_balancer_source_ranges.is_empty() && !open_ranges {
            allowed.extend(sp.load_balancer_source_ranges.iter().map(|r| Prefix { addr: r.addr, len: r.prefix }));
            // The node reaching its own LoadBalancer IP comes from that IP (it is local): let
            // it in when a node IP is in the ranges, as the other modes do.
            if node.node_ips.iter().any(|n| sp.load_balancer_source_ranges.iter().any(|r| r.contains(n))) {
                allowed.extend(sp.load_balancer_vips.iter().filter(|v| Family::of(v) == family).map(|v| Prefix::host(*v)));
            }
        }
        if external_open {
            part.frontends.insert(key(*ip, sp.port), external_fe(allowed));
        }
    }
    if sp.node_port != 0 && !sp.node_port_blocked() && external_open {
        for ip in &node.nodeport {
            part.frontends.entry(key(*ip, sp.node_port)).or_insert_with(|| external_fe(vec![]));
        }
    }
    Some(part)
}
