//! Netlink framing (message and attribute builders and parsers) and the raw
//! `NETLINK_NETFILTER` socket. This is kproxy's syscall layer: the only crate
//! allowed `unsafe`, and only in `socket.rs`.
#![deny(unsafe_code)]

pub mod buffer;
pub mod parse;
pub mod pipeline;
#[allow(unsafe_code)]
pub mod socket;

pub use buffer::MsgBuffer;
pub use parse::{attrs, done_errno, messages, Attr, NlMsg, NlMsgError};
pub use pipeline::{AckTally, Seq};
pub use socket::NetlinkSocket;

pub const NLMSG_HDRLEN: usize = 16;
pub const NLA_HDRLEN: usize = 4;
pub const NLA_F_NESTED: u16 = 1 << 15;
pub const NLA_TYPE_MASK: u16 = !(1 << 15 | 1 << 14);

pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_MULTI: u16 = 0x2;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_REPLACE: u16 = 0x100;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_APPEND: u16 = 0x800;
pub const NLM_F_DUMP: u16 = 0x300;
/// Set on NLMSG_ERROR replies that carry extended-ack TLVs.
pub const NLM_F_ACK_TLVS: u16 = 0x200;
pub const NLM_F_CAPPED: u16 = 0x100;

pub const NLMSGERR_ATTR_MSG: u16 = 1;
pub const NLMSGERR_ATTR_OFFS: u16 = 2;

pub const NETLINK_NETFILTER: i32 = 12;

/// Rounds up to netlink's 4-byte alignment.
pub const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Hands freed heap memory back to the kernel. A full sync allocates tens of
/// MiB that are freed at once; glibc keeps them otherwise, inflating RSS.
#[allow(unsafe_code)]
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and trims the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
