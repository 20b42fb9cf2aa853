//! One ServicePort, validated, and the dynamic objects it contributes.

use std::net::IpAddr;

use kproxy_nftables::{ElemData, Element, Family, Tuple, Val, Verdict};

use crate::layout::{slots_chain, REJECT_CHAIN};

/// Longest key accepted: namespace (63) / name (63) / proto / port name (15), with slack.
const MAX_KEY_LEN: usize = 256;

/// A ServicePort as the agent sends it (one IP family).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortSpec {
    pub key: String,
    pub namespace: String,
    pub name: String,
    pub port_name: String,
    pub protocol: String,
    pub cluster_ip: String,
    pub port: u32,
    pub endpoints: Vec<(String, u32)>,
}

/// A validated ServicePort.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub key: String,
    /// `ns/name:portName`, upstream's ServicePortName string, for comments.
    pub display: String,
    pub protocol: u8,
    pub cluster_ip: IpAddr,
    pub port: u16,
    /// Sorted by address then port, deduplicated. (Upstream sorts by the
    /// "IP:port" string; the order only fixes which slot each endpoint gets.)
    pub endpoints: Vec<(IpAddr, u16)>,
}

fn port(p: u32, what: &str) -> Result<u16, String> {
    if (1..=65535).contains(&p) {
        Ok(p as u16)
    } else {
        Err(format!("{what} {p} out of range 1-65535"))
    }
}

impl ServicePort {
    pub fn validate(s: &ServicePortSpec, family: Family) -> Result<ServicePort, String> {
        if s.key.is_empty() || s.key.len() > MAX_KEY_LEN || s.key.chars().any(|c| c.is_whitespace() || c == '"') {
            return Err(format!("invalid key {:?}", s.key.chars().take(80).collect::<String>()));
        }
        let protocol = match s.protocol.as_str() {
            "TCP" => 6,
            "UDP" => 17,
            "SCTP" => 132,
            p => return Err(format!("unknown protocol {p:?}")),
        };
        let cluster_ip: IpAddr = s.cluster_ip.parse().map_err(|_| format!("bad clusterIP {:?}", s.cluster_ip))?;
        if Family::of(&cluster_ip) != family {
            return Err(format!("clusterIP {cluster_ip} is not {}", family.keyword()));
        }
        let svc_port = port(s.port, "port")?;
        let mut endpoints = Vec::with_capacity(s.endpoints.len());
        for (ip, p) in &s.endpoints {
            let addr: IpAddr = ip.parse().map_err(|_| format!("bad endpoint address {ip:?}"))?;
            if Family::of(&addr) != family {
                return Err(format!("endpoint {addr} is not {}", family.keyword()));
            }
            endpoints.push((addr, port(*p, "endpoint port")?));
        }
        endpoints.sort_unstable();
        endpoints.dedup();
        Ok(ServicePort {
            key: s.key.clone(),
            display: format!("{}/{}:{}", s.namespace, s.name, s.port_name),
            protocol,
            cluster_ip,
            port: svc_port,
            endpoints,
        })
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

    /// (ClusterIP, protocol, port): what the kernel maps must hold once.
    pub fn vip(&self) -> (IpAddr, u8, u16) {
        (self.cluster_ip, self.protocol, self.port)
    }

    fn vip_key(&self) -> Tuple {
        Tuple::new(&[Val::ip(self.cluster_ip), Val::Proto(self.protocol), Val::Port(self.port)])
    }
}

/// The dynamic objects one ServicePort owns, as last programmed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rendered {
    pub service_ip: Option<Element>,
    pub no_endpoint: Option<Element>,
    /// Endpoint slots: (ServicePort VIP key . slot, endpoint address . port).
    pub slots: Vec<(Tuple, Tuple)>,
    pub cluster_ip: Option<IpAddr>,
    pub hairpins: Vec<IpAddr>,
}

/// Renders `sp`: its VIP goes straight to the shared `endpoints-mod-N` chain,
/// and its N endpoints fill slots 0..N-1 of the shared endpoint map, which
/// keeps a full sync at a few objects per endpoint and no chain per Service.
pub fn render(sp: &ServicePort) -> Rendered {
    let mut r = Rendered { cluster_ip: Some(sp.cluster_ip), ..Default::default() };
    if sp.endpoints.is_empty() {
        r.no_endpoint = Some(Element {
            key: sp.vip_key(),
            data: Some(ElemData::Verdict(Verdict::Goto(REJECT_CHAIN.into()))),
            comment: Some(sp.display.clone()),
        });
        return r;
    }
    r.service_ip = Some(Element {
        key: sp.vip_key(),
        data: Some(ElemData::Verdict(Verdict::Goto(slots_chain(sp.endpoints.len())))),
        comment: Some(sp.display.clone()),
    });
    r.slots = sp
        .endpoints
        .iter()
        .enumerate()
        .map(|(i, (ip, p))| (sp.vip_key().with(Val::Int(i as u32)), Tuple::new(&[Val::ip(*ip), Val::Port(*p)])))
        .collect();
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
