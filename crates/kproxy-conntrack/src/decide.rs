//! Which UDP flows are stale, as upstream's CleanStaleEntries decides (1.33+): a flow whose
//! original destination is a ServicePort's VIP:port, or whose original destination port is
//! its NodePort (any address), is stale unless its reply source IP:port is one of that
//! ServicePort's serving endpoints. ServicePorts without serving endpoints are left alone;
//! policies, topology and terminating state are ignored on purpose.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use crate::{CtError, Family, Flow, IPPROTO_UDP};

/// One UDP ServicePort of one family, reduced to what the decision reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServicePortInfo {
    /// ClusterIP, external IPs and load-balancer VIPs.
    pub vips: Vec<IpAddr>,
    pub port: u16,
    /// 0 when none.
    pub node_port: u16,
    /// The serving endpoints.
    pub endpoints: Vec<SocketAddr>,
}

/// The flows to delete, in dump order.
pub fn stale_flows(flows: &[Flow], services: &[ServicePortInfo]) -> Vec<Flow> {
    // Upstream keys maps by VIP:port and NodePort, last writer wins; two ServicePorts
    // claiming one key (say, a shared external IP) get the union here, which never
    // deletes a flow to an endpoint of either.
    let mut by_vip: HashMap<SocketAddr, HashSet<SocketAddr>> = HashMap::new();
    let mut by_node_port: HashMap<u16, HashSet<SocketAddr>> = HashMap::new();
    for sp in services.iter().filter(|sp| !sp.endpoints.is_empty()) {
        for vip in &sp.vips {
            by_vip.entry(SocketAddr::new(*vip, sp.port)).or_default().extend(&sp.endpoints);
        }
        if sp.node_port != 0 {
            by_node_port.entry(sp.node_port).or_default().extend(&sp.endpoints);
        }
    }
    let stale = |eps: Option<&HashSet<SocketAddr>>, backend: &SocketAddr| eps.is_some_and(|e| !e.contains(backend));
    flows
        .iter()
        .filter(|f| f.orig.proto == IPPROTO_UDP)
        .filter(|f| {
            let backend = f.reply.src_addr();
            stale(by_vip.get(&f.orig.dst_addr()), &backend) || stale(by_node_port.get(&f.orig.dst_port), &backend)
        })
        .copied()
        .collect()
}

/// The binding's input: one ServicePort per line, `VIPS PORT NODEPORT ENDPOINTS`, lists
/// comma-separated or `-` when empty, IPv6 endpoints in brackets:
/// `10.96.0.10,203.0.113.9 53 30053 10.244.1.2:8053,10.244.2.2:8053`.
pub fn parse_services(text: &str, family: Family) -> Result<Vec<ServicePortInfo>, CtError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: String| CtError::Input(format!("line {}: {what}: {line:?}", i + 1));
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [vips, port, node_port, endpoints] = fields[..] else {
            return Err(bad("want 4 fields: VIPS PORT NODEPORT ENDPOINTS".into()));
        };
        let mut sp = ServicePortInfo {
            port: port.parse().map_err(|_| bad(format!("bad port {port:?}")))?,
            node_port: node_port.parse().map_err(|_| bad(format!("bad node port {node_port:?}")))?,
            ..Default::default()
        };
        for v in list(vips) {
            let ip: IpAddr = v.parse().map_err(|_| bad(format!("bad IP {v:?}")))?;
            sp.vips.push(ip);
        }
        for e in list(endpoints) {
            let ep: SocketAddr = e.parse().map_err(|_| bad(format!("bad endpoint {e:?} (want ip:port, [ip6]:port)")))?;
            sp.endpoints.push(ep);
        }
        let addrs = sp.vips.iter().copied().chain(sp.endpoints.iter().map(|e| e.ip()));
        if let Some(other) = addrs.into_iter().find(|a| Family::of(a) != family) {
            return Err(bad(format!("{other} is not {}", family.name())));
        }
        out.push(sp);
    }
    Ok(out)
}

fn list(field: &str) -> Vec<&str> {
    if field == "-" {
        Vec::new()
    } else {
        field.split(',').collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tuple;

    fn tuple(src: &str, dst: &str) -> Tuple {
        let (s, d): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
        Tuple { src: s.ip(), dst: d.ip(), proto: IPPROTO_UDP, src_port: s.port(), dst_port: d.port() }
    }

    /// A flow from `client` to `orig_dst`, answered by `backend` (the reply source).
    fn flow(client: &str, orig_dst: &str, backend: &str) -> Flow {
        let b: SocketAddr = backend.parse().unwrap();
        let c: SocketAddr = client.parse().unwrap();
        Flow { orig: tuple(client, orig_dst), reply: tuple(&b.to_string(), &c.to_string()), zone: 0, id: Some(1) }
    }

    fn sp(vips: &[&str], port: u16, node_port: u16, endpoints: &[&str]) -> ServicePortInfo {
        ServicePortInfo {
            vips: vips.iter().map(|v| v.parse().unwrap()).collect(),
            port,
            node_port,
            endpoints: endpoints.iter().map(|e| e.parse().unwrap()).collect(),
        }
    }

    const DELETED: bool = true;
    const KEPT: bool = false;

    #[test]
    fn stale_flow_table() {
        let dns = || sp(&["10.96.0.10"], 53, 0, &["10.244.1.2:8053", "10.244.2.2:8053"]);
        let cases: Vec<(&str, Flow, Vec<ServicePortInfo>, bool)> = vec![
            ("ClusterIP, reply from a serving endpoint", flow("10.0.0.5:4000", "10.96.0.10:53", "10.244.1.2:8053"), vec![dns()], KEPT),
            ("ClusterIP, reply from a gone endpoint", flow("10.0.0.5:4000", "10.96.0.10:53", "10.244.9.2:8053"), vec![dns()], DELETED),
            (
                "ClusterIP, endpoint IP serving on another port only",
                flow("10.0.0.5:4000", "10.96.0.10:53", "10.244.1.2:9999"),
                vec![dns()],
                DELETED,
            ),
            // No DNAT happened (created while the Service had no endpoints): the reply comes from the VIP itself.
            ("ClusterIP, never DNATed", flow("10.0.0.5:4000", "10.96.0.10:53", "10.96.0.10:53"), vec![dns()], DELETED),
            ("ClusterIP, other port of the VIP", flow("10.0.0.5:4000", "10.96.0.10:54", "10.244.9.2:8053"), vec![dns()], KEPT),
            ("not a Service address", flow("10.0.0.5:4000", "8.8.8.8:53", "8.8.8.8:53"), vec![dns()], KEPT),
            (
                "ServicePort without endpoints is skipped",
                flow("10.0.0.5:4000", "10.96.0.10:53", "10.244.9.2:8053"),
                vec![sp(&["10.96.0.10"], 53, 0, &[])],
                KEPT,
            ),
            (
                "external IP, gone endpoint",
                flow("192.0.2.7:4000", "203.0.113.9:53", "10.244.9.2:8053"),
                vec![sp(&["10.96.0.10", "203.0.113.9"], 53, 0, &["10.244.1.2:8053"])],
                DELETED,
            ),
            (
                "load-balancer VIP, serving endpoint",
                flow("192.0.2.7:4000", "198.51.100.1:53", "10.244.1.2:8053"),
                vec![sp(&["10.96.0.10", "198.51.100.1"], 53, 0, &["10.244.1.2:8053"])],
                KEPT,
            ),
            (
                "NodePort on any address, gone endpoint",
                flow("192.0.2.7:4000", "172.18.0.3:30053", "10.244.9.2:8053"),
                vec![sp(&["10.96.0.10"], 53, 30053, &["10.244.1.2:8053"])],
                DELETED,
            ),
            (
                "NodePort, serving endpoint",
                flow("192.0.2.7:4000", "172.18.0.3:30053", "10.244.1.2:8053"),
                vec![sp(&["10.96.0.10"], 53, 30053, &["10.244.1.2:8053"])],
                KEPT,
            ),
            (
                "NodePort of a ServicePort without endpoints",
                flow("192.0.2.7:4000", "172.18.0.3:30053", "10.244.9.2:8053"),
                vec![sp(&["10.96.0.10"], 53, 30053, &[])],
                KEPT,
            ),
            // As upstream: the NodePort check runs even when the VIP check passed.
            (
                "VIP fine, but its port is another ServicePort's NodePort",
                flow("10.0.0.5:4000", "10.96.0.10:30053", "10.244.1.2:8053"),
                vec![sp(&["10.96.0.10"], 30053, 0, &["10.244.1.2:8053"]), sp(&["10.96.0.20"], 53, 30053, &["10.244.7.2:53"])],
                DELETED,
            ),
            (
                "two ServicePorts share an external IP:port: either's endpoint keeps the flow",
                flow("192.0.2.7:4000", "203.0.113.9:53", "10.244.2.2:8053"),
                vec![
                    sp(&["10.96.0.10", "203.0.113.9"], 53, 0, &["10.244.1.2:8053"]),
                    sp(&["10.96.0.11", "203.0.113.9"], 53, 0, &["10.244.2.2:8053"]),
                ],
                KEPT,
            ),
            (
                "IPv6 ClusterIP, gone endpoint",
                flow("[fd00::5]:4000", "[fd00:96::10]:53", "[fd00:244:0:9::2]:8053"),
                vec![sp(&["fd00:96::10"], 53, 0, &["[fd00:244:0:1::2]:8053"])],
                DELETED,
            ),
            (
                "IPv6 ClusterIP, serving endpoint",
                flow("[fd00::5]:4000", "[fd00:96::10]:53", "[fd00:244:0:1::2]:8053"),
                vec![sp(&["fd00:96::10"], 53, 0, &["[fd00:244:0:1::2]:8053"])],
                KEPT,
            ),
            ("no ServicePorts at all", flow("10.0.0.5:4000", "10.96.0.10:53", "10.244.9.2:8053"), vec![], KEPT),
        ];
        let wrong: Vec<String> = cases
            .iter()
            .filter(|(_, f, services, want)| stale_flows(std::slice::from_ref(f), services).is_empty() == *want)
            .map(|(name, _, _, want)| format!("{name}: should be {}", if *want { "deleted" } else { "kept" }))
            .collect();
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn tcp_flows_are_never_stale() {
        let mut f = flow("10.0.0.5:4000", "10.96.0.10:53", "10.244.9.2:8053");
        f.orig.proto = crate::IPPROTO_TCP;
        f.reply.proto = crate::IPPROTO_TCP;
        assert!(stale_flows(&[f], &[sp(&["10.96.0.10"], 53, 30053, &["10.244.1.2:8053"])]).is_empty());
    }

    #[test]
    fn returns_exactly_the_stale_flows_in_dump_order() {
        let services = [sp(&["10.96.0.10"], 53, 0, &["10.244.1.2:8053"])];
        let flows = [
            flow("10.0.0.5:1", "10.96.0.10:53", "10.244.9.2:8053"),
            flow("10.0.0.5:2", "10.96.0.10:53", "10.244.1.2:8053"),
            flow("10.0.0.5:3", "10.96.0.10:53", "10.244.8.2:8053"),
        ];
        assert_eq!(stale_flows(&flows, &services), vec![flows[0], flows[2]]);
    }

    #[test]
    fn parses_the_binding_text() {
        let text = "# vips port nodePort endpoints\n10.96.0.10,203.0.113.9 53 30053 10.244.1.2:8053,10.244.2.2:8053\n\n10.96.0.11 53 0 -\n";
        let got = parse_services(text, Family::V4).unwrap();
        assert_eq!(
            got,
            vec![sp(&["10.96.0.10", "203.0.113.9"], 53, 30053, &["10.244.1.2:8053", "10.244.2.2:8053"]), sp(&["10.96.0.11"], 53, 0, &[]),]
        );
        let v6 = parse_services("fd00:96::10 53 0 [fd00:244:0:1::2]:8053", Family::V6).unwrap();
        assert_eq!(v6, vec![sp(&["fd00:96::10"], 53, 0, &["[fd00:244:0:1::2]:8053"])]);
    }

    #[test]
    fn rejects_malformed_or_wrong_family_lines() {
        for (text, family, needle) in [
            ("10.96.0.10 53 0", Family::V4, "want 4 fields"),
            ("10.96.0.10 99999 0 -", Family::V4, "bad port"),
            ("10.96.0.x 53 0 -", Family::V4, "bad IP"),
            ("10.96.0.10 53 0 10.244.1.2", Family::V4, "bad endpoint"),
            ("fd00:96::10 53 0 -", Family::V4, "is not IPv4"),
            ("fd00:96::10 53 0 10.244.1.2:53", Family::V6, "is not IPv6"),
        ] {
            let e = parse_services(text, family).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}
