//! Chains and sets a ServicePort owns, named as upstream names them: the
//! session-affinity chains, and the source-range firewall.
//!
//! Affinity stays O(1) per new connection: one dynamic map per endpoint list,
//! `client address : endpoint`, instead of upstream's set and rule per endpoint.
//! A known client is sent where the map says (and its timeout restarted); a new
//! one picks an endpoint chain by random slot, which records it.

use kproxy_nftables::consts::*;
use kproxy_nftables::{ElemData, Element, Family, Field, SetData, SetDef, Stmt, Tuple, Val, Verdict};

use super::layout::{hex, LocalDetector, UD_AFFINITY_V4, UD_AFFINITY_V6, UD_CLIENTS_V4, UD_CLIENTS_V6, UD_SLOT_VMAP};
use super::names::{endpoint_base, service_base};
use super::objects::{Affinity, Ep, ServicePort, ServicePortObjects};
use super::shared::external_local_rules;

/// The chains a ServicePort with affinity sends its paths to.
pub struct OwnTargets {
    cluster_ip: Option<String>,
    external: Option<String>,
}

impl OwnTargets {
    pub fn target(&self, is_cluster_ip: bool) -> Option<String> {
        if is_cluster_ip {
            self.cluster_ip.clone()
        } else {
            self.external.clone()
        }
    }
}

fn family(sp: &ServicePort) -> Family {
    Family::of(&sp.cluster_ip)
}

fn addr_type(f: Family) -> u32 {
    if f == Family::Ip {
        TYPE_IPADDR
    } else {
        TYPE_IP6ADDR
    }
}

fn affinity_map(f: Family, name: String) -> SetDef {
    let at = addr_type(f);
    let alen = f.addr_len() as u32;
    let ip = f.keyword();
    SetDef {
        name,
        key_type: at,
        key_len: alen,
        data: SetData::Value { ty: (at << 6) | TYPE_INET_SERVICE, len: alen + 4 },
        decl: format!("typeof {ip} saddr : {ip} daddr . th dport ; flags dynamic,timeout"),
        comment: None,
        udata_prefix: hex(if f == Family::Ip { UD_AFFINITY_V4 } else { UD_AFFINITY_V6 }),
        size: None,
        dynamic: true,
    }
}

/// The clients an affinity map knows, with the same timeouts: the test that a client is
/// known (kernels before 6.2 refuse a plain lookup into a map, and nft cannot show one).
fn clients_set(f: Family, name: String) -> SetDef {
    SetDef {
        name,
        key_type: addr_type(f),
        key_len: f.addr_len() as u32,
        data: SetData::None,
        decl: format!("typeof {} saddr ; flags dynamic,timeout", f.keyword()),
        comment: None,
        udata_prefix: hex(if f == Family::Ip { UD_CLIENTS_V4 } else { UD_CLIENTS_V6 }),
        size: None,
        dynamic: true,
    }
}

fn slot_vmap(name: String) -> SetDef {
    SetDef {
        name,
        key_type: TYPE_INTEGER,
        key_len: 4,
        data: SetData::Verdict,
        decl: "typeof numgen random mod 1 : verdict".into(),
        comment: None,
        udata_prefix: hex(UD_SLOT_VMAP),
        size: None,
        dynamic: false,
    }
}

fn ep_val(ep: Ep) -> Tuple {
    Tuple::new(&[Val::ip(ep.0), Val::Port(ep.1)])
}

/// One endpoint list behind affinity: its dispatch chain, map and slot vmap.
struct Sticky {
    chain: String,
    map: String,
    clients: String,
    vmap: String,
    endpoints: Vec<Ep>,
}

/// Builds the affinity chains into `r` and says where each path goes.
pub fn affinity_chains(sp: &ServicePort, detector: Option<&LocalDetector>, r: &mut ServicePortObjects) -> OwnTargets {
    let base = service_base(&sp.key);
    let f = family(sp);
    let (mut cluster_eps, local_eps) = sp.sticky_lists.clone();
    // The cluster list serves the ClusterIP under internalTrafficPolicy Cluster, and every
    // external path (Cluster policy, or the short-circuits of Local): without those, no chain.
    let external_paths = !sp.external.is_empty() || sp.node_port != 0;
    if sp.internal_local && !external_paths {
        cluster_eps.clear();
    }
    let lists = [
        Sticky {
            chain: format!("service-{base}"),
            map: format!("affinity-{base}"),
            clients: format!("affinity-clients-{base}"),
            vmap: format!("endpoints-{base}"),
            endpoints: cluster_eps,
        },
        Sticky {
            chain: format!("local-{base}"),
            map: format!("local-affinity-{base}"),
            clients: format!("local-affinity-clients-{base}"),
            vmap: format!("local-endpoints-{base}"),
            endpoints: local_eps,
        },
    ];
    let used: Vec<&Sticky> = lists.iter().filter(|l| !l.endpoints.is_empty()).collect();
    // Endpoint chains first: the vmaps point at them. Each records the client in every list it is in.
    let mut all: Vec<Ep> = used.iter().flat_map(|l| l.endpoints.iter().copied()).collect();
    all.sort_unstable();
    all.dedup();
    for ep in &all {
        // Record, then DNAT, in two rules: a full map stops its rule, and then only
        // affinity is lost, never the DNAT.
        let mut record = Vec::new();
        for l in used.iter().filter(|l| l.endpoints.contains(ep)) {
            record.push(Stmt::UpdateSet { set: l.map.clone(), key: vec![Field::Saddr], timeout_s: sp.affinity_s, data: Some(ep_val(*ep)) });
            record.push(Stmt::UpdateSet { set: l.clients.clone(), key: vec![Field::Saddr], timeout_s: sp.affinity_s, data: None });
        }
        let rules = vec![record, vec![Stmt::L4Proto(sp.protocol), Stmt::DnatTo { addr: ep.0, port: ep.1 }]];
        r.chains.push((endpoint_chain(sp, *ep), rules));
    }
    for l in &used {
        // A known client: restart its timeouts and DNAT to its endpoint. `update` keeps an
        // existing element's data; the first endpoint is written only if the map's element
        // expired between the two updates, and it is a live endpoint.
        let timeout_s = sp.affinity_s;
        let sticky = vec![
            Stmt::InSet { fields: vec![Field::Saddr], set: l.clients.clone() },
            Stmt::UpdateSet { set: l.clients.clone(), key: vec![Field::Saddr], timeout_s, data: None },
            Stmt::UpdateSet { set: l.map.clone(), key: vec![Field::Saddr], timeout_s, data: Some(ep_val(l.endpoints[0])) },
            Stmt::L4Proto(sp.protocol),
            Stmt::DnatMap { fields: vec![Field::Saddr], map: l.map.clone() },
        ];
        let pick = vec![Stmt::Vmap { fields: vec![Field::NumgenRandom(l.endpoints.len() as u32)], map: l.vmap.clone() }];
        let elems = l
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, ep)| Element {
                key: Tuple::new(&[Val::Int(i as u32)]),
                data: Some(ElemData::Verdict(Verdict::Goto(endpoint_chain(sp, *ep)))),
                comment: None,
            })
            .collect();
        r.sets.push((affinity_map(f, l.map.clone()), Vec::new()));
        r.sets.push((clients_set(f, l.clients.clone()), Vec::new()));
        r.sets.push((slot_vmap(l.vmap.clone()), elems));
        r.chains.push((l.chain.clone(), vec![sticky, pick]));
        r.affinity.push(Affinity { map: l.map.clone(), clients: l.clients.clone(), endpoints: l.endpoints.clone() });
        r.hairpins.extend(l.endpoints.iter().map(|e| e.0));
    }
    let chain_of = |i: usize| (!lists[i].endpoints.is_empty()).then(|| lists[i].chain.clone());
    let (service, local) = (chain_of(0), chain_of(1));
    let cluster_ip = if sp.internal_local { local.clone() } else { service.clone() };
    let external = if sp.external_local {
        let name = format!("external-{base}");
        let rules = external_local_rules(detector, service.as_deref(), local.as_deref());
        r.chains.push((name.clone(), rules));
        Some(name)
    } else {
        service
    };
    OwnTargets { cluster_ip, external }
}

fn endpoint_chain(sp: &ServicePort, ep: Ep) -> String {
    format!("endpoint-{}", endpoint_base(&sp.key, ep.0, ep.1))
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
