//! Builders for the tests: netlink headers in native byte order, and dump messages
//! laid out as the kernel sends them.

use std::net::SocketAddr;

use kproxy_netlink::MsgBuffer;

use crate::flow::put_tuple;
use crate::*;

pub fn nlmsghdr(len: u32, ty: u16, flags: u16, seq: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&len.to_ne_bytes());
    h[4..6].copy_from_slice(&ty.to_ne_bytes());
    h[6..8].copy_from_slice(&flags.to_ne_bytes());
    h[8..12].copy_from_slice(&seq.to_ne_bytes());
    h
}

pub fn nla(len: u16, ty: u16) -> [u8; 4] {
    let mut h = [0u8; 4];
    h[0..2].copy_from_slice(&len.to_ne_bytes());
    h[2..4].copy_from_slice(&ty.to_ne_bytes());
    h
}

fn tuple(src: SocketAddr, dst: SocketAddr) -> Tuple {
    Tuple { src: src.ip(), dst: dst.ip(), proto: IPPROTO_UDP, src_port: src.port(), dst_port: dst.port() }
}

/// A UDP flow client -> orig_dst, answered by backend (either family).
pub fn udp_flow(client: &str, orig_dst: &str, backend: &str) -> Flow {
    let (c, d, b) = (client.parse().unwrap(), orig_dst.parse().unwrap(), backend.parse().unwrap());
    Flow { orig: tuple(c, d), reply: tuple(b, c), zone: 0, id: None }
}

/// One IPCTNL_MSG_CT_NEW dump message for `f`, with the attributes a kernel adds
/// around the tuples (status, timeout) when `extras`.
pub fn dump_message(seq: u32, f: &Flow, extras: bool) -> Vec<u8> {
    let mut b = MsgBuffer::default();
    put_dump_message(&mut b, seq, 0x2, f, extras);
    b.as_bytes().to_vec()
}

pub fn put_dump_message(b: &mut MsgBuffer, seq: u32, flags: u16, f: &Flow, extras: bool) {
    b.begin_msg(ct_type(IPCTNL_MSG_CT_NEW), flags, seq);
    b.put_raw(&[Family::of(&f.orig.src).af(), 0, 0, 0]);
    put_tuple(b, CTA_TUPLE_ORIG, &f.orig);
    put_tuple(b, CTA_TUPLE_REPLY, &f.reply);
    if extras {
        b.attr_u32_be(CTA_STATUS, 0x18e);
        b.attr_u32_be(CTA_TIMEOUT, 29);
    }
    if f.zone != 0 {
        b.attr(CTA_ZONE, &f.zone.to_be_bytes());
    }
    if let Some(id) = f.id {
        b.attr_u32_be(CTA_ID, id);
    }
    b.end_msg();
}

/// NLMSG_DONE with the dump's status (0, or a negative errno).
pub fn put_done(b: &mut MsgBuffer, seq: u32, flags: u16, status: i32) {
    b.begin_msg(kproxy_netlink::NLMSG_DONE, flags | 0x2, seq);
    b.put_raw(&status.to_ne_bytes());
    b.end_msg();
}

/// NLMSG_ERROR answering `seq` (errno 0: an ack), as a capped ack.
pub fn put_ack(b: &mut MsgBuffer, seq: u32, errno: i32) {
    b.begin_msg(kproxy_netlink::NLMSG_ERROR, kproxy_netlink::NLM_F_CAPPED, seq);
    let mut p = (-errno).to_ne_bytes().to_vec();
    p.extend(nlmsghdr(16, ct_type(IPCTNL_MSG_CT_DELETE), 0x5, seq));
    b.put_raw(&p);
    b.end_msg();
}
