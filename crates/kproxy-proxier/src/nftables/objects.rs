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
    /// Sorted by address then port, deduplicated. (Upstream sorts by the
    /// "IP:port" string; the order only fixes which slot each endpoint gets.)
    pub endpoints: Vec<(IpAddr, u16)>,
}

impl ServicePort {
    pub fn from_model(sp: &ModelPort) -> ServicePort {
        let mut endpoints: Vec<(IpAddr, u16)> = sp.cluster_endpoints().collect();
        endpoints.sort_unstable();
        endpoints.dedup();
        ServicePort {
            key: sp.key.clone(),
            display: sp.display.clone(),
            protocol: sp.protocol,
            cluster_ip: sp.cluster_ip,
            external: external_vips(sp),
            port: sp.port,
            endpoints,
        }
    }

    /// This ServicePort with its endpoints ordered to keep each surviving
    /// endpoint in the slot it had in `previous`: new endpoints fill the holes,
    /// then the tail moves into any hole left. A one-endpoint change then
    /// rewrites one slot instead of shifting all of them.
    pub fn keeping_slots_of(&self, previous: &[(IpAddr, u16)]) -> ServicePort {
        use std::collections::HashSet;
        let wanted: HashSet<&(IpAddr, u16)> = self.endpoints.iter().collect();
        let had: HashSet<&(IpAddr, u16)> = previous.iter().collect();
        let mut added = self.endpoints.iter().filter(|e| !had.contains(e)).copied();
        let mut slots: Vec<Option<(IpAddr, u16)>> =
            previous.iter().map(|e| if wanted.contains(e) { Some(*e) } else { added.next() }).collect();
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
        let endpoints: Vec<(IpAddr, u16)> = slots.into_iter().flatten().collect();
        ServicePort { endpoints, ..self.clone() }
    }

    fn vip_key(&self, ip: IpAddr) -> Tuple {
        Tuple::new(&[Val::ip(ip), Val::Proto(self.protocol), Val::Port(self.port)])
    }

    /// The ClusterIP first, then the external VIPs.
    fn vips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        std::iter::once(self.cluster_ip).chain(self.external.iter().copied())
    }
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
    let mut v: Vec<IpAddr> = sp.external_ips.iter().chain(lb).copied().filter(|ip| *ip != sp.cluster_ip).collect();
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
    if sp.endpoints.is_empty() {
        r.no_endpoints = sp
            .vips()
            .map(|ip| Element {
                key: sp.vip_key(ip),
                data: Some(ElemData::Verdict(Verdict::Goto(REJECT_CHAIN.into()))),
                comment: Some(sp.display.clone()),
            })
            .collect();
        return r;
    }
    let chain = slots_chain(sp.endpoints.len());
    for ip in sp.vips() {
        let key = sp.vip_key(ip);
        r.service_ips.push(Element { key, data: Some(ElemData::Verdict(Verdict::Goto(chain.clone()))), comment: Some(sp.display.clone()) });
        for (i, (eip, p)) in sp.endpoints.iter().enumerate() {
            r.slots.push((key.with(Val::Int(i as u32)), Tuple::new(&[Val::ip(*eip), Val::Port(*p)])));
        }
    }
    r.hairpins = sp.endpoints.iter().map(|(ip, _)| *ip).collect();
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
            assert_eq!(sp(now).keeping_slots_of(&prev).endpoints, sp(want).endpoints, "now {now:?}");
        }
    }
}
