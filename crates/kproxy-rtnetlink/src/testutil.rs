//! Builders for the tests: replies laid out as the kernel sends them, with the
//! attributes the readers skip.

use std::net::IpAddr;

use kproxy_netlink::{MsgBuffer, NLMSG_DONE, NLMSG_ERROR, NLM_F_CAPPED, NLM_F_MULTI};

use crate::*;

const IFLA_MTU: u16 = 4;
const IFA_LABEL: u16 = 3;
const IFA_CACHEINFO: u16 = 6;
const IFA_FLAGS: u16 = 8;

fn octets(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// RTM_NEWLINK for `l`: ifinfomsg (ARPHRD_ETHER), name, mtu, and the link kind when it has one.
pub fn put_link_message(b: &mut MsgBuffer, seq: u32, flags: u16, l: &Link) {
    b.begin_msg(RTM_NEWLINK, flags, seq);
    let mut h = [0u8; 16];
    h[2..4].copy_from_slice(&1u16.to_ne_bytes());
    h[4..8].copy_from_slice(&l.index.to_ne_bytes());
    let iff = if l.up { IFF_UP | 0x40 } else { 0 } | 0x1002; // RUNNING, BROADCAST|MULTICAST
    h[8..12].copy_from_slice(&iff.to_ne_bytes());
    b.put_raw(&h);
    b.attr_str(IFLA_IFNAME, &l.name);
    b.attr(IFLA_MTU, &1500u32.to_ne_bytes());
    if let Some(kind) = &l.kind {
        let n = b.nest_start(IFLA_LINKINFO);
        b.attr_str(IFLA_INFO_KIND, kind);
        b.nest_end(n);
    }
    b.end_msg();
}

/// RTM_NEWADDR for `a`: IPv4 carries IFA_ADDRESS (the peer, if any) and IFA_LOCAL;
/// IPv6 only IFA_ADDRESS, unless there is a peer.
pub fn put_addr_message(b: &mut MsgBuffer, seq: u32, flags: u16, a: &LinkAddr, peer: Option<IpAddr>) {
    b.begin_msg(RTM_NEWADDR, flags, seq);
    let family = if a.addr.is_ipv4() { AF_INET } else { AF_INET6 };
    let mut h = [family, a.prefix_len, 0x80, 0, 0, 0, 0, 0];
    h[4..8].copy_from_slice(&a.index.to_ne_bytes());
    b.put_raw(&h);
    let local = octets(&a.addr);
    b.attr(IFA_ADDRESS, &peer.as_ref().map(octets).unwrap_or_else(|| local.clone()));
    if a.addr.is_ipv4() || peer.is_some() {
        b.attr(IFA_LOCAL, &local);
    }
    if a.addr.is_ipv4() {
        b.attr_str(IFA_LABEL, "kube-ipvs0");
    }
    b.attr(IFA_FLAGS, &0x80u32.to_ne_bytes());
    b.attr(IFA_CACHEINFO, &[0xff; 16]);
    if a.proto != 0 {
        b.attr(IFA_PROTO, &[a.proto]);
    }
    b.end_msg();
}

/// NLMSG_DONE with the dump's status (0, or a negative errno).
pub fn put_done(b: &mut MsgBuffer, seq: u32, flags: u16, status: i32) {
    b.begin_msg(NLMSG_DONE, flags | NLM_F_MULTI, seq);
    b.put_raw(&status.to_ne_bytes());
    b.end_msg();
}

/// NLMSG_ERROR answering `seq` (errno 0: an ack), as a capped ack.
pub fn put_ack(b: &mut MsgBuffer, seq: u32, errno: i32) {
    b.begin_msg(NLMSG_ERROR, NLM_F_CAPPED, seq);
    let mut p = (-errno).to_ne_bytes().to_vec();
    let mut echoed = MsgBuffer::default();
    echoed.begin_msg(RTM_NEWADDR, 0x605, seq);
    echoed.end_msg();
    p.extend_from_slice(echoed.as_bytes());
    b.put_raw(&p);
    b.end_msg();
}
