//! The chains that ServicePorts share: one per endpoint count (and, for
//! externalTrafficPolicy Local, per pair of counts). A ServicePort's elements
//! point at them; its endpoints are elements of the slot maps they read. They
//! carry no Service in their rules, so an endpoint change never rewrites one.

use kproxy_nftables::{Stmt, Verdict};

use super::layout::{
    dnat_nodeport_slot, dnat_vip_slot, goto, jump, LocalDetector, ENDPOINT_ADDRS, LOCAL_ENDPOINT_ADDRS, MARK_FOR_MASQ,
    NODEPORT_ENDPOINT_ADDRS, NODEPORT_LOCAL_ENDPOINT_ADDRS,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SharedChain {
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

impl SharedChain {
    pub fn name(&self) -> String {
        match self {
            SharedChain::Vip(n) => format!("endpoints-mod-{n}"),
            SharedChain::VipLocal(n) => format!("local-endpoints-mod-{n}"),
            SharedChain::NodePort(n) => format!("nodeport-endpoints-mod-{n}"),
            SharedChain::NodePortLocal(n) => format!("nodeport-local-endpoints-mod-{n}"),
            SharedChain::ExternalLocal(n, m) => format!("external-local-{n}-{m}"),
            SharedChain::NodePortExternalLocal(n, m) => format!("nodeport-external-local-{n}-{m}"),
        }
    }

    /// The shared chains this one jumps to; they must exist first.
    pub fn deps(&self) -> Vec<SharedChain> {
        let (cluster, local) = match *self {
            SharedChain::ExternalLocal(n, m) => (SharedChain::Vip(n), SharedChain::VipLocal(m)),
            SharedChain::NodePortExternalLocal(n, m) => (SharedChain::NodePort(n), SharedChain::NodePortLocal(m)),
            _ => return Vec::new(),
        };
        [cluster, local].into_iter().filter(|c| c.count() > 0).collect()
    }

    fn count(&self) -> usize {
        match *self {
            SharedChain::Vip(n) | SharedChain::VipLocal(n) | SharedChain::NodePort(n) | SharedChain::NodePortLocal(n) => n,
            SharedChain::ExternalLocal(n, m) | SharedChain::NodePortExternalLocal(n, m) => n + m,
        }
    }

    pub fn rules(&self, detector: Option<&LocalDetector>) -> Vec<Vec<Stmt>> {
        match *self {
            SharedChain::Vip(n) => vec![vec![dnat_vip_slot(n as u32, ENDPOINT_ADDRS)]],
            SharedChain::VipLocal(n) => vec![vec![dnat_vip_slot(n as u32, LOCAL_ENDPOINT_ADDRS)]],
            SharedChain::NodePort(n) => vec![vec![dnat_nodeport_slot(n as u32, NODEPORT_ENDPOINT_ADDRS)]],
            SharedChain::NodePortLocal(n) => vec![vec![dnat_nodeport_slot(n as u32, NODEPORT_LOCAL_ENDPOINT_ADDRS)]],
            SharedChain::ExternalLocal(..) | SharedChain::NodePortExternalLocal(..) => {
                let deps = self.deps();
                let pick =
                    |local: bool| deps.iter().find(|d| matches!(d, SharedChain::VipLocal(_) | SharedChain::NodePortLocal(_)) == local);
                let cluster = pick(false).map(|c| c.name());
                let local = pick(true).map(|c| c.name());
                external_local_rules(detector, cluster.as_deref(), local.as_deref())
            }
        }
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
