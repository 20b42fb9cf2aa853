//! How traffic from this node's pods is told apart (upstream's detect-local modes): shared
//! by the modes, each of which matches it in its own rules.

use kproxy_nftables::Cidr;

/// How traffic from this node's pods is told apart (upstream's detect-local modes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalDetector {
    /// ClusterCIDR or NodeCIDR: the source address is in the prefix.
    Cidr(Cidr),
    /// BridgeInterface: it came in on this interface.
    Interface(String),
    /// InterfaceNamePrefix: it came in on an interface whose name starts so.
    InterfacePrefix(String),
}
