//! What one ServicePort puts in the nftables ruleset. Most ServicePorts only
//! add elements: their VIPs and NodePort point at shared chains, and their
//! endpoints fill slots of the shared maps. ServicePorts with session
//! affinity (their recorders) and LoadBalancers with source ranges also own
//! chains (own.rs), named as upstream names them.

use std::net::IpAddr;

use kproxy_nftables::{Cidr, ElemData, Element, Stmt, Tuple, Val, Verdict};

use super::layout::*;
use super::own;
use super::shared::{no_endpoint_verdict, Shape, SharedChain};
use crate::service::ServicePort as ModelPort;

pub type Ep = (IpAddr, u16);

/// The part of a ServicePort nftables mode programs, with every endpoint list in slot order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub key: String,
    /// `ns/name:portName`, upstream's ServicePortName string, for comments.
    pub display: String,
    pub protocol: u8,
    pub cluster_ip: IpAddr,
    pub port: u16,
    /// 0 when none.
    pub node_port: u16,
    /// External IPs and LoadBalancer IPs this ServicePort serves; sorted, without the ClusterIP.
    pub external: Vec<IpAddr>,
    /// The LoadBalancer IPs among `external` that source ranges guard.
    pub firewalled: Vec<IpAddr>,
    pub source_ranges: Vec<Cidr>,
    /// A node IP is inside the source ranges: the LoadBalancer IPs may be sources too (upstream).
    pub allow_lb_sources: bool,
    pub external_local: bool,
    /// ClientIP affinity timeout; 0 without affinity.
    pub affinity_s: u32,
    /// The ClusterIP's endpoints: the cluster ones, or the local ones under internalTrafficPolicy Local.
    /// Sorted by address then port when new (the order only fixes the slots).
    pub endpoints: Vec<Ep>,
    /// Cluster endpoints for external VIPs and the NodePort; empty without them.
    pub external_endpoints: Vec<Ep>,
    /// Local endpoints for external VIPs and the NodePort under externalTrafficPolicy Local.
    pub external_local_endpoints: Vec<Ep>,
    /// Some endpoint is usable anywhere: a path whose policy leaves it none drops (upstream),
    /// where a ServicePort without any endpoint rejects.
    pub has_any: bool,
    /// The ClusterIP's endpoints are the local ones (internalTrafficPolicy Local).
    pub internal_local: bool,
    /// With affinity: the cluster and the local endpoints (local ones only if a policy is Local).
    pub sticky_lists: (Vec<Ep>, Vec<Ep>),
}

fn sorted(mut v: Vec<Ep>) -> Vec<Ep> {
    v.sort_unstable();
    v.dedup();
    v
}

impl ServicePort {
    pub fn from_model(sp: &ModelPort, node_ips: &[IpAddr]) -> ServicePort {
        let cluster = sorted(sp.cluster_endpoints().collect());
        let local = sorted(sp.local_endpoints().collect());
        let mut external: Vec<IpAddr> = sp
            .external_ips
            .iter()
            .chain(&sp.load_balancer_vips)
            .copied()
            .filter(|ip| *ip != sp.cluster_ip && !ip.is_unspecified() && !sp.blocked.contains(ip))
            .collect();
        external.sort_unstable();
        external.dedup();
        // A range of every address (0.0.0.0/0, ::/0) lets everyone in: no firewall (upstream's
        // `ip saddr != { 0.0.0.0/0 } drop` never drops).
        let ranges = &sp.load_balancer_source_ranges;
        let open = ranges.is_empty() || ranges.iter().any(|c| c.prefix == 0);
        let firewalled: Vec<IpAddr> =
            if open { Vec::new() } else { sp.load_balancer_vips.iter().copied().filter(|ip| external.contains(ip)).collect() };
        let externally = !external.is_empty() || (sp.node_port != 0 && !sp.node_port_blocked());
        let has_any = !cluster.is_empty() || !local.is_empty();
        let any_local = sp.internal_policy_local || (sp.external_policy_local && externally);
        let sticky_lists = if sp.sticky_max_age_seconds > 0 {
            (cluster.clone(), if any_local { local.clone() } else { Vec::new() })
        } else {
            Default::default()
        };
        ServicePort {
            sticky_lists,
            key: sp.key.clone(),
            display: sp.display.clone(),
            protocol: sp.protocol,
            cluster_ip: sp.cluster_ip,
            port: sp.port,
            node_port: if sp.node_port_blocked() { 0 } else { sp.node_port },
            firewalled,
            source_ranges: ranges.clone(),
            allow_lb_sources: node_ips.iter().any(|n| ranges.iter().any(|r| r.contains(n))),
            external_local: sp.external_policy_local && externally,
            affinity_s: sp.sticky_max_age_seconds,
            external_endpoints: if externally { cluster.clone() } else { Vec::new() },
            external_local_endpoints: if externally && sp.external_policy_local { local.clone() } else { Vec::new() },
            endpoints: if sp.internal_policy_local { local } else { cluster },
            external,
            has_any,
            internal_local: sp.internal_policy_local,
        }
    }

    /// This ServicePort with every endpoint list ordered to keep the slots `previous` gave them.
    pub fn keeping_slots_of(&self, previous: &ServicePort) -> ServicePort {
        ServicePort {
            endpoints: keep_slots(&self.endpoints, &previous.endpoints),
            external_endpoints: keep_slots(&self.external_endpoints, &previous.external_endpoints),
            external_local_endpoints: keep_slots(&self.external_local_endpoints, &previous.external_local_endpoints),
            ..self.clone()
        }
    }

    fn vip_key(&self, ip: IpAddr) -> Tuple {
        Tuple::new(&[Val::ip(ip), Val::Proto(self.protocol), Val::Port(self.port)])
    }

    fn nodeport_key(&self) -> Tuple {
        Tuple::new(&[Val::Proto(self.protocol), Val::Port(self.node_port)])
    }

    pub fn sticky(&self) -> bool {
        self.affinity_s > 0
    }
}

/// `now` ordered to keep each surviving endpoint in the slot it had in `previous`:
/// new endpoints fill the holes, then the tail moves into any hole left. A
/// one-endpoint change then rewrites one slot instead of shifting all of them.
fn keep_slots(now: &[Ep], previous: &[Ep]) -> Vec<Ep> {
    use std::collections::HashSet;
    let wanted: HashSet<&Ep> = now.iter().collect();
    let had: HashSet<&Ep> = previous.iter().collect();
    let mut added = now.iter().filter(|e| !had.contains(e)).copied();
    let mut slots: Vec<Option<Ep>> = previous.iter().map(|e| if wanted.contains(e) { Some(*e) } else { added.next() }).collect();
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

/// The entries a ServicePort's recorder writes into one affinity map: keys that start
/// with `prefix` after the client address, pointing at one of `endpoints`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffinityKeys {
    pub map: &'static str,
    pub prefix: Tuple,
    pub endpoints: Vec<Ep>,
}

/// The objects one ServicePort owns, as last programmed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServicePortObjects {
    /// Elements of the fixed sets and maps.
    pub elements: Vec<(&'static str, Element)>,
    /// The shared chains its elements point at.
    pub shared: Vec<SharedChain>,
    /// Chains of its own (name, rules), callees before callers.
    pub chains: Vec<(String, Vec<Vec<Stmt>>)>,
    /// The affinity entries it records: when a key or an endpoint goes, its clients are
    /// deleted after the commit (plan.rs).
    pub affinity: Vec<AffinityKeys>,
    pub cluster_ip: Option<IpAddr>,
    pub hairpins: Vec<IpAddr>,
}

fn verdict(key: Tuple, v: Verdict, comment: &str) -> Element {
    Element { key, data: Some(ElemData::Verdict(v)), comment: Some(comment.to_owned()) }
}

fn plain(key: Tuple) -> Element {
    Element { key, data: None, comment: None }
}

fn slot(key: Tuple, i: usize, ep: Ep) -> Element {
    Element { key: key.with(Val::Int(i as u32)), data: Some(ElemData::Vals(Tuple::new(&[Val::ip(ep.0), Val::Port(ep.1)]))), comment: None }
}

/// Where one path (a VIP or the NodePort) goes, and the slots that back it.
struct Path<'a> {
    key: Tuple,
    nodeport: bool,
    cluster: &'a [Ep],
    /// Some under externalTrafficPolicy Local.
    local: Option<&'a [Ep]>,
    /// ClientIP affinity: through the `sticky-…` chains.
    sticky: bool,
    /// `cluster` is the local list (a sticky ClusterIP under internalTrafficPolicy Local,
    /// whose clients are recorded in the local affinity map).
    local_list: bool,
}

impl ServicePortObjects {
    fn add(&mut self, set: &'static str, e: Element) {
        self.elements.push((set, e));
    }

    fn share(&mut self, c: SharedChain) {
        if !self.shared.contains(&c) {
            self.shared.extend(c.deps().into_iter().filter(|d| !self.shared.contains(d)).collect::<Vec<_>>());
            self.shared.push(c);
        }
    }

    /// A path through the shared chains: its slots, and the chain its verdict goes to.
    fn shared_path(&mut self, p: &Path) -> Option<String> {
        let (slots, local_slots) =
            if p.nodeport { (NODEPORT_ENDPOINT_ADDRS, NODEPORT_LOCAL_ENDPOINT_ADDRS) } else { (ENDPOINT_ADDRS, LOCAL_ENDPOINT_ADDRS) };
        let first = if p.local_list { local_slots } else { slots };
        for (i, ep) in p.cluster.iter().enumerate() {
            self.add(first, slot(p.key, i, *ep));
        }
        self.hairpins.extend(p.cluster.iter().map(|e| e.0));
        let n = p.cluster.len();
        let shape = match p.local {
            None if n == 0 => return None,
            None if p.nodeport => Shape::NodePort(n),
            None if p.local_list => Shape::VipLocal(n),
            None => Shape::Vip(n),
            Some(local) => {
                for (i, ep) in local.iter().enumerate() {
                    self.add(local_slots, slot(p.key, i, *ep));
                }
                self.hairpins.extend(local.iter().map(|e| e.0));
                let m = local.len();
                if n + m == 0 {
                    return None;
                }
                if p.nodeport {
                    Shape::NodePortExternalLocal(n, m)
                } else {
                    Shape::ExternalLocal(n, m)
                }
            }
        };
        let chain = SharedChain::new(shape, p.sticky);
        self.share(chain);
        Some(chain.name())
    }
}

/// Renders `sp`: its paths go to shared chains and its endpoints are slot elements; with
/// affinity the chains are the sticky ones and it owns recorders (own.rs).
pub fn objects_of(sp: &ServicePort) -> ServicePortObjects {
    let mut r = ServicePortObjects { cluster_ip: Some(sp.cluster_ip), ..Default::default() };
    let sticky = sp.sticky();
    if sticky {
        own::affinity_recorders(sp, &mut r);
    }
    let local_list = sticky && sp.internal_local;
    let mut paths = vec![Path { key: sp.vip_key(sp.cluster_ip), nodeport: false, cluster: &sp.endpoints, local: None, sticky, local_list }];
    let local = sp.external_local.then_some(&sp.external_local_endpoints[..]);
    for ip in &sp.external {
        paths.push(Path { key: sp.vip_key(*ip), nodeport: false, cluster: &sp.external_endpoints, local, sticky, local_list: false });
    }
    if sp.node_port != 0 {
        paths.push(Path { key: sp.nodeport_key(), nodeport: true, cluster: &sp.external_endpoints, local, sticky, local_list: false });
    }
    for (i, p) in paths.iter().enumerate() {
        let is_cluster_ip = i == 0;
        let (map, no_eps, masq) = if p.nodeport {
            (SERVICE_NODEPORTS, NO_ENDPOINT_NODEPORTS, MASQUERADE_NODEPORTS)
        } else {
            (SERVICE_IPS, NO_ENDPOINT_SERVICES, MASQUERADE_SERVICES)
        };
        let target = r.shared_path(p);
        // No endpoint for this path's policy (local ones under Local): drop if others exist, else reject.
        let usable = if is_cluster_ip { !p.cluster.is_empty() } else { p.local.map_or(!p.cluster.is_empty(), |l| !l.is_empty()) };
        if !usable {
            r.add(no_eps, verdict(p.key, no_endpoint_verdict(sp.has_any), &sp.display));
        }
        if let Some(chain) = target {
            r.add(map, verdict(p.key, Verdict::Goto(chain), &sp.display));
            if !is_cluster_ip && !sp.external_local {
                r.add(masq, plain(p.key));
            }
        }
    }
    if !sp.firewalled.is_empty() {
        let chain = own::firewall_chain(sp, &mut r);
        for ip in &sp.firewalled {
            r.add(FIREWALL_IPS, verdict(sp.vip_key(*ip), Verdict::Goto(chain.clone()), &sp.display));
        }
    }
    r.hairpins.sort_unstable();
    r.hairpins.dedup();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps(v: &[(u8, u16)]) -> Vec<Ep> {
        v.iter().map(|(h, p)| (IpAddr::from([10, 0, 0, *h]), *p)).collect()
    }

    /// (endpoints now, expected slot order), as (last octet, port) pairs.
    type SlotCase<'a> = (&'a [(u8, u16)], &'a [(u8, u16)]);

    #[test]
    fn surviving_endpoints_keep_their_slots() {
        let prev = eps(&[(1, 80), (2, 80), (3, 80), (4, 80)]);
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
            assert_eq!(keep_slots(&eps(now), &prev), eps(want), "now {now:?}");
        }
    }
}
