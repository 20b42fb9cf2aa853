//! The chains that ServicePorts share: one per endpoint count (and, for
//! externalTrafficPolicy Local, per pair of counts). A ServicePort's elements
//! point at them; its endpoints are elements of the slot maps they read. They
//! carry no Service in their rules, so an endpoint change never rewrites one.

use kproxy_nftables::{Field, Stmt, Verdict};

use super::layout::*;

/// What a shared chain does, by endpoint counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Shape {
    /// `endpoints-mod-N`: one of a VIP's N slots in `endpoint-addrs`.
    Vip(usize),
    /// `local-endpoints-mod-N`: one of a VIP's N slots in `local-endpoint-addrs`.
    VipLocal(usize),
    /// `nodeport-endpoints-mod-N`: one of a NodePort's N slots in `nodeport-endpoint-addrs`.
    NodePort(usize),
    /// `nodeport-local-endpoints-mod-N`.
    NodePortLocal(usize),
    /// `external-local-N-M`: externalTrafficPolicy Local on a VIP with N cluster and M local endpoints.
    ExternalLocal(usize, usize),
    /// `nodeport-external-local-N-M`: the same for a NodePort.
    NodePortExternalLocal(usize, usize),
}

/// A shared chain; `sticky` (ClientIP affinity, named `sticky-…`) first sends a known
/// client to the endpoint its affinity map holds for this path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SharedChain {
    pub shape: Shape,
    pub sticky: bool,
}

impl SharedChain {
    pub fn new(shape: Shape, sticky: bool) -> SharedChain {
        SharedChain { shape, sticky }
    }

    pub fn name(&self) -> String {
        let base = match self.shape {
            Shape::Vip(n) => format!("endpoints-mod-{n}"),
            Shape::VipLocal(n) => format!("local-endpoints-mod-{n}"),
            Shape::NodePort(n) => format!("nodeport-endpoints-mod-{n}"),
            Shape::NodePortLocal(n) => format!("nodeport-local-endpoints-mod-{n}"),
            Shape::ExternalLocal(n, m) => format!("external-local-{n}-{m}"),
            Shape::NodePortExternalLocal(n, m) => format!("nodeport-external-local-{n}-{m}"),
        };
        if self.sticky {
            format!("sticky-{base}")
        } else {
            base
        }
    }

    /// The shared chains this one jumps to; they must exist first.
    pub fn deps(&self) -> Vec<SharedChain> {
        let (cluster, local) = match self.shape {
            Shape::ExternalLocal(n, m) => (Shape::Vip(n), Shape::VipLocal(m)),
            Shape::NodePortExternalLocal(n, m) => (Shape::NodePort(n), Shape::NodePortLocal(m)),
            _ => return Vec::new(),
        };
        [cluster, local].into_iter().map(|s| SharedChain::new(s, self.sticky)).filter(|c| c.count() > 0).collect()
    }

    fn count(&self) -> usize {
        match self.shape {
            Shape::Vip(n) | Shape::VipLocal(n) | Shape::NodePort(n) | Shape::NodePortLocal(n) => n,
            Shape::ExternalLocal(n, m) | Shape::NodePortExternalLocal(n, m) => n + m,
        }
    }

    pub fn rules(&self, detector: Option<&LocalDetector>) -> Vec<Vec<Stmt>> {
        use Field::*;
        let (slot, sticky) = match self.shape {
            Shape::Vip(n) => (dnat_vip_slot(n as u32, ENDPOINT_ADDRS), (vec![Saddr, L4Proto, Daddr, Dport], AFFINITY_ENDPOINTS)),
            Shape::VipLocal(n) => {
                (dnat_vip_slot(n as u32, LOCAL_ENDPOINT_ADDRS), (vec![Saddr, L4Proto, Daddr, Dport], LOCAL_AFFINITY_ENDPOINTS))
            }
            Shape::NodePort(n) => {
                (dnat_nodeport_slot(n as u32, NODEPORT_ENDPOINT_ADDRS), (vec![Saddr, L4Proto, Dport], NODEPORT_AFFINITY_ENDPOINTS))
            }
            Shape::NodePortLocal(n) => (
                dnat_nodeport_slot(n as u32, NODEPORT_LOCAL_ENDPOINT_ADDRS),
                (vec![Saddr, L4Proto, Dport], NODEPORT_LOCAL_AFFINITY_ENDPOINTS),
            ),
            Shape::ExternalLocal(..) | Shape::NodePortExternalLocal(..) => {
                let deps = self.deps();
                let pick = |local: bool| deps.iter().find(|d| matches!(d.shape, Shape::VipLocal(_) | Shape::NodePortLocal(_)) == local);
                let cluster = pick(false).map(|c| c.name());
                let local = pick(true).map(|c| c.name());
                return external_local_rules(detector, cluster.as_deref(), local.as_deref());
            }
        };
        if !self.sticky {
            return vec![vec![slot]];
        }
        // A known client's entry is a lookup miss once it expires: then it is picked anew.
        let (fields, map) = sticky;
        vec![vec![Stmt::DnatMap { fields, map: map.into() }], vec![slot]]
    }
}

/// upstream's `external-…` chain under externalTrafficPolicy Local: pods and the node itself
/// reach every endpoint (the node's traffic masqueraded); anyone else only local endpoints,
/// with the source kept. With no local endpoint it falls through to the no-endpoint drop.
pub fn external_local_rules(detector: Option<&LocalDetector>, cluster: Option<&str>, local: Option<&str>) -> Vec<Vec<Stmt>> {
    let mut rules = Vec::new();
    if let Some(c) = cluster {
        match detector {
            // A /0 pod range holds every source: everything short-circuits.
            Some(LocalDetector::Cidr(cidr)) if cidr.prefix == 0 => return vec![vec![goto(c)]],
            // short-circuit pod traffic
            Some(d) => rules.push(vec![d.matches(false), goto(c)]),
            None => {}
        }
        // masquerade and short-circuit the node's own traffic
        rules.push(vec![Stmt::FibLocal { daddr: false }, jump(MARK_FOR_MASQ)]);
        rules.push(vec![Stmt::FibLocal { daddr: false }, goto(c)]);
    }
    if let Some(l) = local {
        rules.push(vec![goto(l)]);
    }
    rules
}

/// `drop`, or the reject chain when the ServicePort has no endpoint at all.
pub fn no_endpoint_verdict(has_any: bool) -> Verdict {
    if has_any {
        Verdict::Drop
    } else {
        Verdict::Goto(super::layout::REJECT_CHAIN.into())
    }
}
