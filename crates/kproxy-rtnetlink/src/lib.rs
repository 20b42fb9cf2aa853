//! rtnetlink (NETLINK_ROUTE) links and addresses: IPVS mode's dummy device
//! `kube-ipvs0` and the Service addresses it holds, without shelling out to `ip`.
//! Requests are encoded by pure functions (`link`, `addr`), replies read by pure
//! readers (`reply`), so hand-built datagrams test both; `conn` does the I/O.
#![forbid(unsafe_code)]

pub mod addr;
pub mod conn;
pub mod error;
pub mod link;
pub mod reply;
#[cfg(test)]
mod testutil;

pub use addr::LinkAddr;
pub use conn::Rtnl;
pub use error::RtnlError;
pub use kproxy_netlink::AckTally;
pub use link::Link;
pub use reply::DumpReader;

pub const NETLINK_ROUTE: i32 = 0;

// Facts from include/uapi/linux/rtnetlink.h.
pub const RTM_NEWLINK: u16 = 16;
pub const RTM_DELLINK: u16 = 17;
pub const RTM_GETLINK: u16 = 18;
pub const RTM_NEWADDR: u16 = 20;
pub const RTM_DELADDR: u16 = 21;
pub const RTM_GETADDR: u16 = 22;
/// RTEXT_FILTER_SKIP_STATS: a link dump without the per-link counters is far smaller.
pub const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;

// include/uapi/linux/if_link.h
pub const IFLA_IFNAME: u16 = 3;
pub const IFLA_LINKINFO: u16 = 18;
pub const IFLA_EXT_MASK: u16 = 29;
pub const IFLA_INFO_KIND: u16 = 1;

// include/uapi/linux/if_addr.h
pub const IFA_ADDRESS: u16 = 1;
pub const IFA_LOCAL: u16 = 2;
/// The address's protocol (who put it there; Linux 6.1+): kproxy marks its own on shared links.
pub const IFA_PROTO: u16 = 11;
pub const IFA_F_NODAD: u8 = 0x02;
pub const IFA_F_TENTATIVE: u8 = 0x40;

/// include/uapi/linux/if.h
pub const IFF_UP: u32 = 0x1;
/// linux/netlink.h: set on dump messages when the table changed during the dump.
pub const NLM_F_DUMP_INTR: u16 = 0x10;

pub const AF_UNSPEC: u8 = 0;
pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;

pub const EPERM: i32 = 1;
pub const EEXIST: i32 = 17;
pub const ENODEV: i32 = 19;
pub const EADDRNOTAVAIL: i32 = 99;
