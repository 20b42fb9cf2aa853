//! One ServicePort, validated, and the dynamic objects it contributes.

use std::net::IpAddr;

use kproxy_nftables::{ElemData, Element, Family, Stmt, Val, Verdict};

use crate::layout::{slots_chain, REJECT_CHAIN};
use crate::naming::service_chain;

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
    /// Sorted by "IP:port" string as upstream, deduplicated.
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
        endpoints.sort_by_key(|(a, p)| format!("{a}:{p}"));
        endpoints.dedup();
        Ok(ServicePort { key: s.key.clone(), display: format!("{}/{}:{}", s.namespace, s.name, s.port_name), protocol, cluster_ip, port: svc_port, endpoints })
    }

    fn vip_key(&self) -> Vec<Val> {
        vec![Val::ip(self.cluster_ip), Val::Proto(self.protocol), Val::Port(self.port)]
    }
}

/// The dynamic objects one ServicePort owns, as last programmed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rendered {
    pub chain: Option<(String, Vec<Stmt>)>,
    pub service_ip: Option<Element>,
    pub no_endpoint: Option<Element>,
    /// Endpoint slots: (ServicePort VIP key . slot, endpoint address . port).
    pub slots: Vec<(Vec<Val>, Vec<Val>)>,
    pub cluster_ip: Option<IpAddr>,
    pub hairpins: Vec<IpAddr>,
}

/// Renders `sp`: a per-ServicePort chain that hands off to the shared
/// `endpoints-mod-N` chain, and N slots in the shared endpoint map.
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
    let chain = service_chain(&sp.key);
    r.service_ip = Some(Element { key: sp.vip_key(), data: Some(ElemData::Verdict(Verdict::Goto(chain.clone()))), comment: None });
    r.chain = Some((chain, vec![Stmt::Verdict(Verdict::Goto(slots_chain(sp.endpoints.len())))]));
    r.slots = sp
        .endpoints
        .iter()
        .enumerate()
        .map(|(i, (ip, p))| {
            let mut key = sp.vip_key();
            key.push(Val::Int(i as u32));
            (key, vec![Val::ip(*ip), Val::Port(*p)])
        })
        .collect();
    r.hairpins = sp.endpoints.iter().map(|(ip, _)| *ip).collect();
    r.hairpins.sort();
    r.hairpins.dedup();
    r
}
