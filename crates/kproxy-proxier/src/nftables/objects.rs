//! What one ServicePort puts in the nftables ruleset: its VIPs (the ClusterIP,
//! and the external IPs and LoadBalancer IPs it serves with Cluster policy) and
//! the endpoint slots of the shared map, per VIP.

use std::net::IpAddr;

use kproxy_nftables::{ElemData, Element, Tuple, Val, Verdict};

use super::layout::{slots_chain, REJECT_CHAIN};
use crate::service::ServicePort as ModelPort;

/// The part of a ServicePort that nftables mode programs today: the ClusterIP
/// and the endpoints for cluster traffic, in slot order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub key: String,
    /// `ns/name:portName`, upstream's ServicePortName string, for comments.
    pub display: String,
    pub protocol: u8,
    pub cluster_ip: IpAddr,
    /// External IPs and LoadBalancer IPs served like the ClusterIP, masqueraded
    /// (externalTrafficPolicy Cluster); sorted, without the ClusterIP.
    pub external: Vec<IpAddr>,
    pub port: u16,
    /// The ClusterIP's endpoints in slot order: the cluster endpoints, or the local
    /// ones under internalTrafficPolicy Local. Sorted by address then port when new
    /// (upstream sorts by the "IP:port" string; the order only fixes the slots).
    pub endpoints: Vec<(IpAddr, u16)>,
    /// The external VIPs' endpoints in slot order (Cluster policy); empty without them.
    pub external_endpoints: Vec<(IpAddr, u16)>,
    /// Some endpoint is usable anywhere: a VIP whose policy leaves it none drops
    /// (upstream), where a ServicePort without any endpoint rejects.
    pub has_any: bool,
}

impl ServicePort {
    pub fn from_model(sp: &ModelPort) -> ServicePort {
        let sorted = |mut v: Vec<(IpAddr, u16)>| {
            v.sort_unstable();
            v.dedup();
            v
        };
        let cluster = sorted(sp.cluster_endpoints().collect());
        let local = sorted(sp.local_endpoints().collect());
        let external = external_vips(sp);
        let has_any = !cluster.is_empty() || !local.is_empty();
        let external_endpoints = if external.is_empty() { Vec::new() } else { cluster.clone() };
        let endpoints = if sp.internal_policy_local { local } else { cluster };
        ServicePort {
            key: sp.key.clone(),
            display: sp.display.clone(),
            protocol: sp.protocol,
            cluster_ip: sp.cluster_ip,
            external,
            port: sp.port,
            endpoints,
            external_endpoints,
            has_any,
        }
    }

    /// This ServicePort with every endpoint list ordered to keep the slots `previous` gave them.
    pub fn keeping_slots_of(&self, previous: &ServicePort) -> ServicePort {
        ServicePort {
            endpoints: keep_slots(&self.endpoints, &previous.endpoints),
            external_endpoints: keep_slots(&self.external_endpoints, &previous.external_endpoints),
            ..self.clone()
        }
    }

    /// The `endpoints-mod-N` chains this ServicePort's VIPs go to.
    pub fn moduli(&self) -> impl Iterator<Item = usize> + '_ {
        let ext = if self.external.is_empty() { 0 } else { self.external_endpoints.len() };
        [self.endpoints.len(), ext].into_iter().filter(|n| *n > 0)
    }

    fn vip_key(&self, ip: IpAddr) -> Tuple {
        Tuple::new(&[Val::ip(ip), Val::Proto(self.protocol), Val::Port(self.port)])
    }

    /// The ClusterIP first, then the external VIPs.
    fn vips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        std::iter::once(self.cluster_ip).chain(self.external.iter().copied())
    }
}

/// `now` ordered to keep each surviving endpoint in the slot it had in `previous`:
/// new endpoints fill the holes, then the tail moves into any hole left. A
/// one-endpoint change then rewrites one slot instead of shifting all of them.
fn keep_slots(now: &[(IpAddr, u16)], previous: &[(IpAddr, u16)]) -> Vec<(IpAddr, u16)> {
    use std::collections::HashSet;
    let wanted: HashSet<&(IpAddr, u16)> = now.iter().collect();
    let had: HashSet<&(IpAddr, u16)> = previous.iter().collect();
    let mut added = now.iter().filter(|e| !had.contains(e)).copied();
    let mut slots: Vec<Option<(IpAddr, u16)>> = previous.iter().map(|e| if wanted.contains(e) { Some(*e) } else { added.next() }).collect();
    slots.extend(added.map(Some));
    // Close the holes from the end so slots stay 0..N-1.
    let mut i = 0;
    while i < slots.len() {
        if slots[i].is_none() {
            let last = slots.pop().flatten();
            if i < slots.len() {
                slots[i] = last;
                continue;
            }
        }
        i += 1;
    }
    slots.into_iter().flatten().collect()
}

/// The external VIPs this mode programs for `sp`. Not yet with externalTrafficPolicy
/// Local (its semantics differ: local endpoints, source kept), nor LoadBalancer IPs
/// with source ranges (without the firewall they would be open to everyone): those
/// Services are reported as using unsupported features, and only their ClusterIP works.
fn external_vips(sp: &ModelPort) -> Vec<IpAddr> {
    if sp.external_policy_local {
        return Vec::new();
    }
    let lb = if sp.load_balancer_source_ranges.is_empty() { &sp.load_balancer_vips[..] } else { &[] };
    let mut v: Vec<IpAddr> =
        sp.external_ips.iter().chain(lb).copied().filter(|ip| *ip != sp.cluster_ip && !sp.blocked.contains(ip)).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The dynamic objects one ServicePort owns, as last programmed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServicePortObjects {
    /// One per VIP, all pointing at the same shared chain.
    pub service_ips: Vec<Element>,
    pub no_endpoints: Vec<Element>,
    /// External VIPs: their traffic is always masqueraded.
    pub masquerade: Vec<Tuple>,
    /// Endpoint slots: (VIP key . slot, endpoint address . port), for every VIP.
    pub slots: Vec<(Tuple, Tuple)>,
    pub cluster_ip: Option<IpAddr>,
    pub hairpins: Vec<IpAddr>,
}

/// Renders `sp`: its VIP goes straight to the shared `endpoints-mod-N` chain,
/// and its N endpoints fill slots 0..N-1 of the shared endpoint map, which
/// keeps a full sync at a few objects per endpoint and no chain per Service.
pub fn objects_of(sp: &ServicePort) -> ServicePortObjects {
    let mut r = ServicePortObjects { cluster_ip: Some(sp.cluster_ip), ..Default::default() };
    r.masquerade = sp.external.iter().map(|ip| sp.vip_key(*ip)).collect();
    for ip in sp.vips() {
        let key = sp.vip_key(ip);
        let endpoints = if ip == sp.cluster_ip { &sp.endpoints } else { &sp.external_endpoints };
        if endpoints.is_empty() {
            // None for this policy while others exist: drop, as upstream; none at all: reject.
            let verdict = if sp.has_any { Verdict::Drop } else { Verdict::Goto(REJECT_CHAIN.into()) };
            r.no_endpoints.push(Element { key, data: Some(ElemData::Verdict(verdict)), comment: Some(sp.display.clone()) });
            continue;
        }
        let chain = slots_chain(endpoints.len());
        r.service_ips.push(Element { key, data: Some(ElemData::Verdict(Verdict::Goto(chain))), comment: Some(sp.display.clone()) });
        for (i, (eip, p)) in endpoints.iter().enumerate() {
            r.slots.push((key.with(Val::Int(i as u32)), Tuple::new(&[Val::ip(*eip), Val::Port(*p)])));
        }
        r.hairpins.extend(endpoints.iter().map(|(ip, _)| *ip));
    }
    r.hairpins.sort();
    r.hairpins.dedup();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(eps: &[(u8, u16)]) -> ServicePort {
        ServicePort {
            key: "k".into(),
            display: "d".into(),
            protocol: 6,
            cluster_ip: "10.96.0.1".parse().unwrap(),
            external: vec![],
            port: 80,
            endpoints: eps.iter().map(|(h, p)| (IpAddr::from([10, 0, 0, *h]), *p)).collect(),
            external_endpoints: vec![],
            has_any: !eps.is_empty(),
        }
    }

    /// (endpoints now, expected slot order), as (last octet, port) pairs.
    type SlotCase<'a> = (&'a [(u8, u16)], &'a [(u8, u16)]);

    #[test]
    fn surviving_endpoints_keep_their_slots() {
        let prev = sp(&[(1, 80), (2, 80), (3, 80), (4, 80)]).endpoints;
        let cases: &[SlotCase] = &[
            // replace one: the newcomer takes the freed slot
            (&[(1, 80), (3, 80), (4, 80), (9, 80)], &[(1, 80), (9, 80), (3, 80), (4, 80)]),
            // remove one: the tail moves into the hole
            (&[(1, 80), (3, 80), (4, 80)], &[(1, 80), (4, 80), (3, 80)]),
            // add one: appended
            (&[(1, 80), (2, 80), (3, 80), (4, 80), (5, 80)], &[(1, 80), (2, 80), (3, 80), (4, 80), (5, 80)]),
            // remove the last two
            (&[(1, 80), (2, 80)], &[(1, 80), (2, 80)]),
            // remove all but the last
            (&[(4, 80)], &[(4, 80)]),
        ];
        for (now, want) in cases {
            assert_eq!(keep_slots(&sp(now).endpoints, &prev), sp(want).endpoints, "now {now:?}");
        }
    }
}
