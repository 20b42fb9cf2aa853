//! Conntrack over ctnetlink (NETLINK_NETFILTER, subsystem CTNETLINK): dump one family's
//! flows, delete flows by their original tuple, and upstream kube-proxy's decision of
//! which UDP flows are stale (pkg/proxy/conntrack/cleanup.go, 1.33+).
#![forbid(unsafe_code)]

pub mod conn;
pub mod decide;
pub mod error;
pub mod flow;
#[cfg(test)]
mod testutil;

pub use conn::{reconcile, Conntrack, DeleteOutcome, Dump, DumpReader, Report};
pub use decide::{parse_services, stale_flows, ServicePortInfo};
pub use error::CtError;
pub use flow::{Family, Flow, Tuple};

// Facts from include/uapi/linux/netfilter/nfnetlink.h and nfnetlink_conntrack.h.
pub const NFNL_SUBSYS_CTNETLINK: u16 = 1;
pub const NFNETLINK_V0: u8 = 0;

pub const IPCTNL_MSG_CT_NEW: u16 = 0;
pub const IPCTNL_MSG_CT_GET: u16 = 1;
pub const IPCTNL_MSG_CT_DELETE: u16 = 2;

// enum ctattr_type
pub const CTA_TUPLE_ORIG: u16 = 1;
pub const CTA_TUPLE_REPLY: u16 = 2;
pub const CTA_STATUS: u16 = 3;
pub const CTA_TIMEOUT: u16 = 7;
pub const CTA_ID: u16 = 12;
pub const CTA_ZONE: u16 = 18;

// enum ctattr_tuple
pub const CTA_TUPLE_IP: u16 = 1;
pub const CTA_TUPLE_PROTO: u16 = 2;

// enum ctattr_ip
pub const CTA_IP_V4_SRC: u16 = 1;
pub const CTA_IP_V4_DST: u16 = 2;
pub const CTA_IP_V6_SRC: u16 = 3;
pub const CTA_IP_V6_DST: u16 = 4;

// enum ctattr_l4proto
pub const CTA_PROTO_NUM: u16 = 1;
pub const CTA_PROTO_SRC_PORT: u16 = 2;
pub const CTA_PROTO_DST_PORT: u16 = 3;

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// linux/netlink.h: set on dump messages when the table changed during the dump.
pub const NLM_F_DUMP_INTR: u16 = 0x10;

/// The nlmsg_type of a ctnetlink message.
pub const fn ct_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_CTNETLINK << 8) | msg
}
