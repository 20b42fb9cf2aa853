//! Builders for the tests: replies laid out as the kernel sends them.

use kproxy_netlink::{MsgBuffer, NLMSG_DONE, NLMSG_ERROR, NLM_F_CAPPED};

/// Hex grouped by 4 bytes, the golden fixtures' format.
pub fn hex(b: &[u8]) -> String {
    b.chunks(4).map(|c| c.iter().map(|x| format!("{x:02x}")).collect::<String>()).collect::<Vec<_>>().join(" ")
}

/// One generic-netlink message: header, genl header (version 1), `attrs`.
pub fn genl_msg(family: u16, seq: u32, flags: u16, cmd: u8, attrs: &[u8]) -> Vec<u8> {
    let mut b = MsgBuffer::default();
    b.begin_msg(family, flags, seq);
    b.put_raw(&[cmd, 1, 0, 0]);
    b.put_raw(attrs);
    b.end_msg();
    b.as_bytes().to_vec()
}

/// NLMSG_DONE with the dump's status (0, or a negative errno).
pub fn done(seq: u32, status: i32) -> Vec<u8> {
    let mut b = MsgBuffer::default();
    b.begin_msg(NLMSG_DONE, 0x2, seq);
    b.put_raw(&status.to_ne_bytes());
    b.end_msg();
    b.as_bytes().to_vec()
}

/// A capped NLMSG_ERROR answering `seq` (errno 0: an ack).
pub fn ack(seq: u32, errno: i32) -> Vec<u8> {
    let mut b = MsgBuffer::default();
    b.begin_msg(NLMSG_ERROR, NLM_F_CAPPED, seq);
    let mut p = (-errno).to_ne_bytes().to_vec();
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&20u32.to_ne_bytes());
    h[4..6].copy_from_slice(&0x20u16.to_ne_bytes());
    h[6..8].copy_from_slice(&5u16.to_ne_bytes());
    h[8..12].copy_from_slice(&seq.to_ne_bytes());
    p.extend_from_slice(&h);
    b.put_raw(&p);
    b.end_msg();
    b.as_bytes().to_vec()
}

fn stats_nests(b: &mut MsgBuffer, stats: u16, stats64: u16) {
    for (ty, width) in [(stats, 4usize), (stats64, 8)] {
        let n = b.nest_start(ty);
        for attr in 1..=10u16 {
            b.attr(attr, &vec![0u8; if attr == 4 || attr == 5 { 8 } else { width }]);
        }
        b.nest_end(n);
    }
}

/// The attributes of a GET_SERVICE dump message, in ip_vs_genl_fill_service's order,
/// HASHED set and both stats nests included.
pub fn kernel_service(s: &crate::Service) -> Vec<u8> {
    use crate::consts::*;
    let mut b = MsgBuffer::default();
    let n = b.nest_start(IPVS_CMD_ATTR_SERVICE);
    b.attr(IPVS_SVC_ATTR_AF, &crate::msg::af(&s.key.addr).to_ne_bytes());
    b.attr(IPVS_SVC_ATTR_PROTOCOL, &u16::from(s.key.protocol).to_ne_bytes());
    let mut addr = [0u8; 16];
    match s.key.addr {
        std::net::IpAddr::V4(a) => addr[..4].copy_from_slice(&a.octets()),
        std::net::IpAddr::V6(a) => addr = a.octets(),
    }
    b.attr(IPVS_SVC_ATTR_ADDR, &addr);
    b.attr(IPVS_SVC_ATTR_PORT, &s.key.port.to_be_bytes());
    b.attr_str(IPVS_SVC_ATTR_SCHED_NAME, &s.scheduler);
    b.attr(IPVS_SVC_ATTR_FLAGS, &[(s.flags | crate::FLAG_HASHED).to_ne_bytes(), u32::MAX.to_ne_bytes()].concat());
    b.attr(IPVS_SVC_ATTR_TIMEOUT, &s.timeout.to_ne_bytes());
    let mask = if s.key.addr.is_ipv4() { s.netmask.to_be_bytes() } else { s.netmask.to_ne_bytes() };
    b.attr(IPVS_SVC_ATTR_NETMASK, &mask);
    stats_nests(&mut b, 10, 12);
    b.nest_end(n);
    b.as_bytes().to_vec()
}

/// The attributes of a GET_DEST dump message, in ip_vs_genl_fill_dest's order.
/// Without `family`, as kernels before 4.2 sent it.
pub fn kernel_dest(d: &crate::DestinationState, family: bool) -> Vec<u8> {
    use crate::consts::*;
    let mut b = MsgBuffer::default();
    let n = b.nest_start(IPVS_CMD_ATTR_DEST);
    let mut addr = [0u8; 16];
    match d.dest.key.addr {
        std::net::IpAddr::V4(a) => addr[..4].copy_from_slice(&a.octets()),
        std::net::IpAddr::V6(a) => addr = a.octets(),
    }
    b.attr(IPVS_DEST_ATTR_ADDR, &addr);
    b.attr(IPVS_DEST_ATTR_PORT, &d.dest.key.port.to_be_bytes());
    b.attr(IPVS_DEST_ATTR_FWD_METHOD, &d.dest.forward.code().to_ne_bytes());
    b.attr(IPVS_DEST_ATTR_WEIGHT, &d.dest.weight.to_ne_bytes());
    b.attr_u8(IPVS_DEST_ATTR_TUN_TYPE, 0);
    b.attr(IPVS_DEST_ATTR_TUN_PORT, &[0, 0]);
    b.attr(IPVS_DEST_ATTR_TUN_FLAGS, &[0, 0]);
    b.attr(IPVS_DEST_ATTR_U_THRESH, &d.dest.upper_threshold.to_ne_bytes());
    b.attr(IPVS_DEST_ATTR_L_THRESH, &d.dest.lower_threshold.to_ne_bytes());
    b.attr(IPVS_DEST_ATTR_ACTIVE_CONNS, &d.stats.active_conns.to_ne_bytes());
    b.attr(IPVS_DEST_ATTR_INACT_CONNS, &d.stats.inactive_conns.to_ne_bytes());
    b.attr(IPVS_DEST_ATTR_PERSIST_CONNS, &d.stats.persist_conns.to_ne_bytes());
    if family {
        b.attr(IPVS_DEST_ATTR_ADDR_FAMILY, &crate::msg::af(&d.dest.key.addr).to_ne_bytes());
    }
    stats_nests(&mut b, 10, 12);
    b.nest_end(n);
    b.as_bytes().to_vec()
}
