//! The node's addresses as the modes need them, for one family: where NodePorts answer,
//! every local address, and the node's own IPs.

use std::net::IpAddr;

use kproxy_nftables::Family;

use crate::desired::NodeAddressing;

/// The node's addresses as a part needs them (this family's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeAddrs {
    /// Where NodePorts answer.
    pub nodeport: Vec<IpAddr>,
    /// Every address of the node but the mode's own Service addresses: an external IP that
    /// is one needs no address added (as upstream).
    pub local: Vec<IpAddr>,
    /// The node's IPs: LoadBalancer IPs may reach themselves when one is in the source ranges.
    pub node_ips: Vec<IpAddr>,
}

impl NodeAddrs {
    /// From the host's addresses (`local`, any family) and the agent's node addressing.
    pub fn resolve(family: Family, local: Vec<IpAddr>, node: &NodeAddressing) -> Self {
        let local: Vec<IpAddr> = local.into_iter().filter(|ip| Family::of(ip) == family).collect();
        let nodeport = if node.nodeports_all { local.clone() } else { node.nodeport_ips.clone() };
        Self { nodeport, local, node_ips: node.node_ips.clone() }
    }
}
