//! One ServicePort, validated for one family: what every mode's rule builder
//! reads. The agent has already validated the Kubernetes objects and selected
//! the endpoints; this checks what the kernel would choke on.

use std::net::IpAddr;

use kproxy_nftables::{Cidr, Family};

use crate::wire::{EndpointFlags, ServicePortRecord};

/// Longest key accepted: namespace (63) / name (63) / proto / port name (15), with slack.
const MAX_KEY_LEN: usize = 256;
/// Longest namespace, name or port name: a DNS label.
const MAX_LABEL_LEN: usize = 63;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub addr: IpAddr,
    pub port: u16,
    /// Conditions, and which traffic the agent selected it for.
    pub flags: EndpointFlags,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub key: String,
    /// `ns/name:portName`, upstream's ServicePortName string, for comments.
    pub display: String,
    pub protocol: u8,
    pub service_type: String,
    pub cluster_ip: IpAddr,
    pub port: u16,
    /// 0 when none.
    pub node_port: u16,
    pub external_ips: Vec<IpAddr>,
    pub load_balancer_vips: Vec<IpAddr>,
    pub load_balancer_source_ranges: Vec<Cidr>,
    /// 0 without ClientIP affinity.
    pub sticky_max_age_seconds: u32,
    pub external_policy_local: bool,
    pub internal_policy_local: bool,
    pub health_check_node_port: u16,
    pub traffic_distribution: String,
    pub endpoints: Vec<Endpoint>,
    /// External IPs and LoadBalancer IPs another ServicePort owns on this port: no mode
    /// programs them here (desired.rs decides, and retries when they are released).
    pub blocked: Vec<IpAddr>,
}

fn port(p: u32, what: &str) -> Result<u16, String> {
    if (1..=65535).contains(&p) {
        Ok(p as u16)
    } else {
        Err(format!("{what} {p} out of range 1-65535"))
    }
}

fn optional_port(p: u32, what: &str) -> Result<u16, String> {
    if p == 0 {
        Ok(0)
    } else {
        port(p, what)
    }
}

fn addr_of(s: &str, what: &str, family: Family) -> Result<IpAddr, String> {
    let addr: IpAddr = s.parse().map_err(|_| format!("bad {what} {s:?}"))?;
    if Family::of(&addr) != family {
        return Err(format!("{what} {addr} is not {}", family.keyword()));
    }
    Ok(addr)
}

pub fn protocol_number(p: &str) -> Option<u8> {
    match p {
        "TCP" => Some(6),
        "UDP" => Some(17),
        "SCTP" => Some(132),
        _ => None,
    }
}

impl ServicePort {
    pub fn validate(s: &ServicePortRecord, family: Family) -> Result<ServicePort, String> {
        if s.key.is_empty() || s.key.len() > MAX_KEY_LEN || s.key.chars().any(|c| c.is_whitespace() || c == '"') {
            return Err(format!("invalid key {:?}", s.key.chars().take(80).collect::<String>()));
        }
        // Names reach rule comments (nft's, and iptables-restore lines): no blank, quote, backslash (an escape) or control character.
        for (what, v) in [("namespace", &s.namespace), ("name", &s.name), ("port name", &s.port_name)] {
            if v.chars().any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\') {
                return Err(format!("invalid {what} {:?}", v.chars().take(80).collect::<String>()));
            }
            // DNS labels, as the API server (and the agent's validation) bound them.
            if v.len() > MAX_LABEL_LEN {
                return Err(format!("{what} longer than {MAX_LABEL_LEN} bytes ({}): {:?}…", v.len(), v.chars().take(40).collect::<String>()));
            }
        }
        let protocol = protocol_number(&s.protocol).ok_or_else(|| format!("unknown protocol {:?}", s.protocol))?;
        let cluster_ip: IpAddr = s.cluster_ip.parse().map_err(|_| format!("bad clusterIP {:?}", s.cluster_ip))?;
        if Family::of(&cluster_ip) != family {
            return Err(format!("clusterIP {cluster_ip} is not {}", family.keyword()));
        }
        let mut endpoints = Vec::with_capacity(s.endpoints.len());
        for e in &s.endpoints {
            let addr: IpAddr = e.ip.parse().map_err(|_| format!("bad endpoint address {:?}", e.ip))?;
            if Family::of(&addr) != family {
                return Err(format!("endpoint {addr} is not {}", family.keyword()));
            }
            endpoints.push(Endpoint { addr, port: port(e.port, "endpoint port")?, flags: e.flags });
        }
        endpoints.sort_unstable();
        // The same address listed twice keeps every selection either copy had.
        endpoints.dedup_by(|dup, kept| {
            let same = (dup.addr, dup.port) == (kept.addr, kept.port);
            if same {
                kept.flags = kept.flags.union(dup.flags);
            }
            same
        });
        let ips = |v: &[std::borrow::Cow<'_, str>], what: &str| v.iter().map(|s| addr_of(s, what, family)).collect::<Result<Vec<_>, _>>();
        let mut ranges = Vec::with_capacity(s.load_balancer_source_ranges.len());
        for r in &s.load_balancer_source_ranges {
            let c: Cidr = r.parse().map_err(|e| format!("bad loadBalancerSourceRange {r:?}: {e}"))?;
            if Family::of(&c.addr) != family {
                return Err(format!("loadBalancerSourceRange {c} is not {}", family.keyword()));
            }
            ranges.push(c);
        }
        Ok(ServicePort {
            key: s.key.to_string(),
            display: format!("{}/{}:{}", s.namespace, s.name, s.port_name),
            protocol,
            service_type: s.service_type.to_string(),
            cluster_ip,
            port: port(s.port, "port")?,
            node_port: optional_port(s.node_port, "nodePort")?,
            external_ips: ips(&s.external_ips, "externalIP")?,
            load_balancer_vips: ips(&s.load_balancer_vips, "loadBalancer IP")?,
            load_balancer_source_ranges: ranges,
            sticky_max_age_seconds: s.sticky_max_age_seconds,
            external_policy_local: s.external_policy_local,
            internal_policy_local: s.internal_policy_local,
            health_check_node_port: optional_port(s.health_check_node_port, "healthCheckNodePort")?,
            traffic_distribution: s.traffic_distribution.to_string(),
            endpoints,
            blocked: Vec::new(),
        })
    }

    /// (ClusterIP, protocol, port).
    pub fn cluster_vip(&self) -> (IpAddr, u8, u16) {
        (self.cluster_ip, self.protocol, self.port)
    }

    /// (IP, protocol, port) of every external IP and LoadBalancer IP, without the ClusterIP,
    /// and the NodePort as (unspecified address, protocol, nodePort): each has one owner.
    pub fn external_vips(&self) -> Vec<(IpAddr, u8, u16)> {
        let mut v: Vec<(IpAddr, u8, u16)> = self
            .external_ips
            .iter()
            .chain(self.load_balancer_vips.iter())
            .filter(|ip| **ip != self.cluster_ip && !ip.is_unspecified())
            .map(|ip| (*ip, self.protocol, self.port))
            .collect();
        if self.node_port != 0 {
            v.push((nodeport_owner_ip(self.cluster_ip), self.protocol, self.node_port));
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Ownership blocked this ServicePort's NodePort (another one holds it).
    pub fn node_port_blocked(&self) -> bool {
        self.blocked.contains(&nodeport_owner_ip(self.cluster_ip))
    }

    /// The endpoints that serve local-policy traffic, as address and port.
    pub fn local_endpoints(&self) -> impl Iterator<Item = (IpAddr, u16)> + '_ {
        self.endpoints.iter().filter(|e| e.flags.local).map(|e| (e.addr, e.port))
    }

    /// The endpoints that serve cluster-policy traffic, as address and port.
    pub fn cluster_endpoints(&self) -> impl Iterator<Item = (IpAddr, u16)> + '_ {
        self.endpoints.iter().filter(|e| e.flags.cluster).map(|e| (e.addr, e.port))
    }
}

/// The address that stands for "every node address" when NodePorts are owned like VIPs.
pub fn nodeport_owner_ip(family_of: IpAddr) -> IpAddr {
    match family_of {
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    }
}

/// "10.0.0.1 port 80", or "NodePort 30080" for the NodePort's owner key.
pub fn describe_vip(ip: IpAddr, port: u16) -> String {
    if ip.is_unspecified() {
        format!("NodePort {port}")
    } else {
        format!("{ip} port {port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn names_longer_than_a_dns_label_are_refused_here_too_not_only_by_the_agent() {
        let rec = |ns: &str, name: &str, port_name: &str| ServicePortRecord {
            key: Cow::Owned(format!("{}/{}/tcp/{}", &ns[..ns.len().min(60)], &name[..name.len().min(60)], &port_name[..port_name.len().min(60)])),
            namespace: Cow::Owned(ns.into()),
            name: Cow::Owned(name.into()),
            port_name: Cow::Owned(port_name.into()),
            protocol: "TCP".into(),
            cluster_ip: "10.96.0.1".into(),
            port: 80,
            ..Default::default()
        };
        let long = "a".repeat(64);
        assert!(ServicePort::validate(&rec("ns", "web", "http"), Family::Ip).is_ok());
        assert!(ServicePort::validate(&rec(&"a".repeat(63), "web", "http"), Family::Ip).is_ok(), "63 is a label");
        for (r, what) in [(rec(&long, "web", "http"), "namespace"), (rec("ns", &long, "http"), "name"), (rec("ns", "web", &long), "port name")] {
            let e = ServicePort::validate(&r, Family::Ip).unwrap_err();
            assert!(e.starts_with(&format!("{what} longer than 63 bytes (64)")), "{e}");
        }
    }
}
