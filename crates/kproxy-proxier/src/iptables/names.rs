//! Upstream's iptables chain names: `KUBE-SVC-`, `KUBE-SVL-`, `KUBE-EXT-`, `KUBE-FW-` and
//! `KUBE-SEP-` followed by the first 16 characters of base32(sha256(...)), so that a chain
//! here is named as upstream would name it for the same ServicePort (and `iptables-save |
//! grep KUBE-SVC` habits keep working).

use std::net::IpAddr;

use sha2::{Digest, Sha256};

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The first 16 base32 characters (80 bits) of sha256(s).
fn hash16(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    let bits = d[..10].iter().fold(0u128, |acc, b| (acc << 8) | *b as u128);
    (0..16).map(|i| BASE32[((bits >> (75 - 5 * i)) & 31) as usize] as char).collect()
}

/// Upstream's ServicePortName.String(): `ns/name:port`, or `ns/name` for an unnamed port.
pub fn service_port_name(namespace: &str, name: &str, port_name: &str) -> String {
    if port_name.is_empty() {
        format!("{namespace}/{name}")
    } else {
        format!("{namespace}/{name}:{port_name}")
    }
}

/// The lower-case protocol upstream hashes with ("tcp", "udp", "sctp").
pub fn protocol_name(protocol: u8) -> &'static str {
    match protocol {
        6 => "tcp",
        17 => "udp",
        132 => "sctp",
        _ => "unknown",
    }
}

/// Per-ServicePort chains; `spn` is service_port_name(), `proto` protocol_name().
pub struct ServiceChains {
    /// KUBE-SVC-: the cluster endpoints.
    pub cluster: String,
    /// KUBE-SVL-: the local endpoints (a Local policy).
    pub local: String,
    /// KUBE-EXT-: external traffic (NodePort, external and load-balancer IPs).
    pub external: String,
    /// KUBE-FW-: load-balancer source ranges.
    pub firewall: String,
}

impl ServiceChains {
    pub fn new(spn: &str, proto: &str) -> Self {
        let h = hash16(&format!("{spn}{proto}"));
        Self {
            cluster: format!("KUBE-SVC-{h}"),
            local: format!("KUBE-SVL-{h}"),
            external: format!("KUBE-EXT-{h}"),
            firewall: format!("KUBE-FW-{h}"),
        }
    }
}

/// A dispatch chain of KUBE-SERVICES (kproxy's, not upstream's), for the Services under one
/// destination prefix. Named as a KUBE-SVC- chain (of a hash no ServicePort name can give,
/// as no ServicePortName holds a blank), so that upstream kube-proxy's cleanup and its stale
/// chain deletion, which know only its own prefixes, take these chains too.
pub fn dispatch_chain(prefix: &kproxy_nftables::Cidr) -> String {
    format!("KUBE-SVC-{}", hash16(&format!("dispatch {prefix}")))
}

/// KUBE-SEP-: one endpoint of a ServicePort; the endpoint as upstream prints it (ip:port, [ip6]:port).
pub fn endpoint_chain(spn: &str, proto: &str, ip: IpAddr, port: u16) -> String {
    let ep = match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    };
    format!("KUBE-SEP-{}", hash16(&format!("{spn}{proto}{ep}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_chains_are_named_as_upstream_names_them() {
        // Chains of well-known Services as upstream kube-proxy names them on every cluster.
        let cases = [
            (("default", "kubernetes", "https", 6), "KUBE-SVC-NPX46M4PTMTKRN6Y"),
            (("kube-system", "kube-dns", "dns", 17), "KUBE-SVC-TCOU7JCQXEZGVUNU"),
            (("kube-system", "kube-dns", "dns-tcp", 6), "KUBE-SVC-ERIFXISQEP7F7OF4"),
            (("kube-system", "kube-dns", "metrics", 6), "KUBE-SVC-JD5MR3NA4I4DYORP"),
        ];
        for ((ns, name, port, proto), want) in cases {
            let chains = ServiceChains::new(&service_port_name(ns, name, port), protocol_name(proto));
            assert_eq!(chains.cluster, want, "{ns}/{name}:{port}");
            assert_eq!(&chains.local[9..], &want[9..], "one hash for SVC and SVL");
            assert!(chains.firewall.starts_with("KUBE-FW-") && chains.external.starts_with("KUBE-EXT-"));
        }
    }

    #[test]
    fn unnamed_ports_hash_without_a_colon() {
        assert_eq!(service_port_name("ns", "svc", ""), "ns/svc");
        assert_ne!(ServiceChains::new("ns/svc", "tcp").cluster, ServiceChains::new("ns/svc:", "tcp").cluster);
    }

    #[test]
    fn endpoint_chains_depend_on_the_endpoint_and_fit_iptables_names() {
        // Upstream's iptables proxier_test.go: ns4/svc4:p80 with endpoints 10.180.0.4 and .5.
        let svc4 = service_port_name("ns4", "svc4", "p80");
        assert_eq!(ServiceChains::new(&svc4, "tcp").cluster, "KUBE-SVC-4SW47YFZTEDKD3PK");
        assert_eq!(endpoint_chain(&svc4, "tcp", "10.180.0.4".parse().unwrap(), 80), "KUBE-SEP-UKSFD7AGPMPPLUHC");
        assert_eq!(endpoint_chain(&svc4, "tcp", "10.180.0.5".parse().unwrap(), 80), "KUBE-SEP-C6EBXVWJJZMIWKLZ");
        let spn = service_port_name("ns1", "svc1", "p80");
        let a = endpoint_chain(&spn, "tcp", "10.180.0.1".parse().unwrap(), 80);
        let b = endpoint_chain(&spn, "tcp", "10.180.0.2".parse().unwrap(), 80);
        let c = endpoint_chain(&spn, "tcp", "fd00::1".parse().unwrap(), 80);
        assert_ne!(a, b);
        assert!(a.starts_with("KUBE-SEP-") && c.starts_with("KUBE-SEP-"));
        // iptables chain names are at most 28 characters.
        assert!([a, b, c].iter().all(|n| n.len() == 25));
    }
}
