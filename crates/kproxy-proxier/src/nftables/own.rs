//! Chains a ServicePort owns, named as upstream names them: the affinity
//! recorders, and the source-range firewall.
//!
//! Affinity stays O(1) per new connection, with no chain per endpoint: the shared
//! `sticky-…` chains send a known client where the path's affinity map says, and
//! pick a new one's endpoint by slot. After DNAT, `record-affinity` checks that
//! the endpoint is in the list of the connection's original path (a member set)
//! and jumps to that list's recorder, which writes the client into the affinity
//! map of every path the list serves. An endpoint change only changes plain
//! elements, never a verdict or a rule, which would make the kernel validate the
//! whole table.

use kproxy_nftables::{ElemData, Element, Field, Stmt, Tuple, Val, Verdict};

use super::layout::*;
use super::names::service_base;
use super::objects::{AffinityKeys, Ep, ServicePort, ServicePortObjects};

/// One endpoint list behind affinity, and the paths that read its affinity maps.
struct List<'a> {
    recorder: String,
    endpoints: &'a [Ep],
    vips: Vec<std::net::IpAddr>,
    nodeport: bool,
    maps: (&'static str, &'static str),
    members: (&'static str, &'static str),
    recorders: (&'static str, &'static str),
}

/// Builds the affinity recorders of `sp` into `r`: their chains, and their elements in
/// the recorder maps for every path of the ServicePort and every endpoint of the list.
pub fn affinity_recorders(sp: &ServicePort, r: &mut ServicePortObjects) {
    let base = service_base(&sp.key);
    let (cluster, local) = (&sp.sticky_lists.0, &sp.sticky_lists.1);
    let lists = [
        List {
            recorder: format!("affinity-{base}"),
            endpoints: cluster,
            // The cluster list serves the ClusterIP unless internalTrafficPolicy is Local, and
            // every external path (Cluster policy, or the short-circuits of Local).
            vips: [(!sp.internal_local).then_some(sp.cluster_ip)].into_iter().flatten().chain(sp.external.iter().copied()).collect(),
            nodeport: sp.node_port != 0,
            maps: (AFFINITY_ENDPOINTS, NODEPORT_AFFINITY_ENDPOINTS),
            members: (AFFINITY_MEMBERS, NODEPORT_AFFINITY_MEMBERS),
            recorders: (AFFINITY_RECORDERS, NODEPORT_AFFINITY_RECORDERS),
        },
        List {
            recorder: format!("local-affinity-{base}"),
            endpoints: local,
            vips: [sp.internal_local.then_some(sp.cluster_ip)]
                .into_iter()
                .flatten()
                .chain(sp.external.iter().copied().filter(|_| sp.external_local))
                .collect(),
            nodeport: sp.node_port != 0 && sp.external_local,
            maps: (LOCAL_AFFINITY_ENDPOINTS, NODEPORT_LOCAL_AFFINITY_ENDPOINTS),
            members: (LOCAL_AFFINITY_MEMBERS, NODEPORT_LOCAL_AFFINITY_MEMBERS),
            recorders: (LOCAL_AFFINITY_RECORDERS, NODEPORT_LOCAL_AFFINITY_RECORDERS),
        },
    ];
    for l in lists.iter().filter(|l| !l.endpoints.is_empty() && (!l.vips.is_empty() || l.nodeport)) {
        let proto = Val::Proto(sp.protocol);
        let mut keys: Vec<(&'static str, Tuple)> =
            l.vips.iter().map(|ip| (l.maps.0, Tuple::new(&[proto, Val::ip(*ip), Val::Port(sp.port)]))).collect();
        if l.nodeport {
            keys.push((l.maps.1, Tuple::new(&[proto, Val::Port(sp.node_port)])));
        }
        // One rule per path: a rule holds at most 128 expressions, and a full map then
        // stops only its own update.
        let rules = keys
            .iter()
            .map(|(map, prefix)| {
                let key = std::iter::once(Field::Saddr).chain(prefix.iter().map(|v| Field::Value(*v))).collect();
                let data = Some(vec![Field::Daddr, Field::Dport]);
                vec![Stmt::UpdateSet { set: (*map).into(), key, timeout_s: sp.affinity_s, data }]
            })
            .collect();
        r.chains.push((l.recorder.clone(), rules));
        for (map, prefix) in keys {
            r.affinity.push(AffinityKeys { map, prefix, endpoints: l.endpoints.to_vec() });
        }
        // Any path of the ServicePort that reached one of the list's endpoints records.
        let jump = || Some(ElemData::Verdict(Verdict::Jump(l.recorder.clone())));
        let plain = |key: Tuple| Element { key, data: None, comment: None };
        for ip in std::iter::once(sp.cluster_ip).chain(sp.external.iter().copied()) {
            let path = Tuple::new(&[Val::ip(ip), proto, Val::Port(sp.port)]);
            r.elements.push((l.recorders.0, Element { key: path, data: jump(), comment: None }));
            for ep in l.endpoints {
                r.elements.push((l.members.0, plain(path.extend_from(&[Val::ip(ep.0), Val::Port(ep.1)]))));
            }
        }
        if sp.node_port != 0 {
            let path = Tuple::new(&[proto, Val::Port(sp.node_port)]);
            r.elements.push((l.recorders.1, Element { key: path, data: jump(), comment: None }));
            for ep in l.endpoints {
                r.elements.push((l.members.1, plain(path.extend_from(&[Val::ip(ep.0), Val::Port(ep.1)]))));
            }
        }
    }
}

/// `firewall-HASH-…`: a source outside the ranges is dropped before DNAT. Sources in the
/// ranges return; so do the LoadBalancer IPs themselves when a node IP is in the ranges.
pub fn firewall_chain(sp: &ServicePort, r: &mut ServicePortObjects) -> String {
    debug_assert!(sp.source_ranges.iter().all(|c| c.prefix > 0), "a /0 range means no firewall (objects.rs)");
    let name = format!("firewall-{}", service_base(&sp.key));
    let mut rules: Vec<Vec<Stmt>> = sp
        .source_ranges
        .iter()
        .map(|c| vec![Stmt::AddrIn { field: Field::Saddr, cidr: *c, negate: false }, Stmt::Verdict(Verdict::Return)])
        .collect();
    if sp.allow_lb_sources {
        for ip in &sp.firewalled {
            let cidr = kproxy_nftables::Cidr { addr: *ip, prefix: if ip.is_ipv4() { 32 } else { 128 } };
            rules.push(vec![Stmt::AddrIn { field: Field::Saddr, cidr, negate: false }, Stmt::Verdict(Verdict::Return)]);
        }
    }
    rules.push(vec![Stmt::Verdict(Verdict::Drop)]);
    r.chains.push((name.clone(), rules));
    name
}
