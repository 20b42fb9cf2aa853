//! Listens to the kernel's ruleset notifications (the NFNLGRP_NFTABLES group,
//! what `nft monitor` reads) to learn which tables other processes changed.
//! Every object notification's first attribute is its table's name, and its
//! nlmsg_pid is the port id of the socket whose batch caused it.

use kproxy_netlink::{attrs, messages, NetlinkSocket, NETLINK_NETFILTER};

use crate::consts::*;
use crate::error::NftError;

const NFNLGRP_NFTABLES: u32 = 7;
const ENOBUFS: i32 = 105;
/// Room for bursts of foreign changes between two syncs (overflow costs a full sync).
const RECV_BUFFER: usize = 16 << 20;

pub struct Monitor {
    sock: NetlinkSocket,
}

/// What one drain saw.
#[derive(Debug, Default)]
pub struct Drained {
    /// (nfproto family, table) changed by a batch from a socket not ours.
    pub foreign: Vec<(u8, String)>,
    /// Notifications were lost (the queue overflowed): anything may have changed.
    pub overflowed: bool,
}

/// RECV_BUFFER, or `KPROXY_NFT_MONITOR_BUFFER_BYTES` (0: the kernel's default, about 208 KiB):
/// tests shrink it to make the queue overflow with a modest burst.
fn recv_buffer() -> usize {
    std::env::var("KPROXY_NFT_MONITOR_BUFFER_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(RECV_BUFFER)
}

impl Monitor {
    pub fn open() -> Result<Self, NftError> {
        let sock = NetlinkSocket::open(NETLINK_NETFILTER)?;
        sock.join_group(NFNLGRP_NFTABLES)?;
        let bytes = recv_buffer();
        if bytes > 0 {
            sock.ensure_recv_buffer(bytes)?;
        }
        Ok(Self { sock })
    }

    /// Stops listening (the kernel then builds no notifications for us), e.g. during our
    /// own full replace, whose hundred thousand notifications would cost more than the batch.
    pub fn pause(&self) -> Result<(), NftError> {
        Ok(self.sock.leave_group(NFNLGRP_NFTABLES)?)
    }

    pub fn resume(&self) -> Result<(), NftError> {
        Ok(self.sock.join_group(NFNLGRP_NFTABLES)?)
    }

    /// Reads every queued notification without blocking. `is_own(portid)` says
    /// which sockets are ours; their changes are not reported.
    pub fn drain(&mut self, is_own: &dyn Fn(u32) -> bool) -> Result<Drained, NftError> {
        let mut out = Drained::default();
        loop {
            let dgram = match self.sock.recv(true) {
                Ok(Some(d)) => d,
                Ok(None) => return Ok(out),
                Err(e) if e.raw_os_error() == Some(ENOBUFS) => {
                    out.overflowed = true;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            collect_foreign(dgram, is_own, &mut out.foreign);
        }
    }
}

/// Adds to `foreign` each (family, table) one notification datagram names, once,
/// skipping our own sockets' changes and generation notices. Pure, for the fuzz test.
pub fn collect_foreign(dgram: &[u8], is_own: &dyn Fn(u32) -> bool, foreign: &mut Vec<(u8, String)>) {
    for m in messages(dgram) {
        if m.ty >> 8 != NFNL_SUBSYS_NFTABLES || m.ty & 0xff == NFT_MSG_NEWGEN || is_own(m.pid) {
            continue;
        }
        let Some(family) = m.payload.first().copied() else { continue };
        let table = attrs(m.payload.get(4..).unwrap_or(&[])).find(|a| a.ty == 1).and_then(|a| a.str());
        if let Some(t) = table {
            if !foreign.iter().any(|(f, n)| *f == family && n == t) {
                foreign.push((family, t.to_owned()));
            }
        }
    }
}
