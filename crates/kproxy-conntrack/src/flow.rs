//! A conntrack flow as ctnetlink carries it: parsed from dump messages, encoded into
//! delete requests. Addresses and ports are big-endian on the wire.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use kproxy_netlink::{attrs, MsgBuffer, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};

use crate::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// "IPv4" / "IPv6", as the model and the metrics' ip_family label spell them.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// AF_INET / AF_INET6, the nfgenmsg family.
    pub fn af(self) -> u8 {
        match self {
            Family::V4 => 2,
            Family::V6 => 10,
        }
    }

    pub fn of(ip: &IpAddr) -> Self {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
}

/// One direction of a flow. Ports are 0 for protocols without them (ICMP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub src_port: u16,
    pub dst_port: u16,
}

impl Tuple {
    pub fn src_addr(&self) -> SocketAddr {
        SocketAddr::new(self.src, self.src_port)
    }
    pub fn dst_addr(&self) -> SocketAddr {
        SocketAddr::new(self.dst, self.dst_port)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    pub orig: Tuple,
    pub reply: Tuple,
    /// CTA_ZONE; 0 (the default zone) when absent.
    pub zone: u16,
    /// CTA_ID: a delete that names it cannot hit a newer flow with the same tuple.
    pub id: Option<u32>,
}

fn be16(p: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(p.get(0..2)?.try_into().ok()?))
}

fn ip(p: &[u8]) -> Option<IpAddr> {
    match p.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(p).ok()?))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(p).ok()?))),
        _ => None,
    }
}

/// A CTA_TUPLE_ORIG / CTA_TUPLE_REPLY nest. None unless both addresses and the protocol are there.
pub fn parse_tuple(nest: &[u8]) -> Option<Tuple> {
    let (mut src, mut dst, mut proto) = (None, None, None);
    let (mut src_port, mut dst_port) = (0, 0);
    for a in attrs(nest) {
        match a.ty {
            CTA_TUPLE_IP => {
                for b in attrs(a.payload) {
                    match b.ty {
                        CTA_IP_V4_SRC | CTA_IP_V6_SRC => src = ip(b.payload),
                        CTA_IP_V4_DST | CTA_IP_V6_DST => dst = ip(b.payload),
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for b in attrs(a.payload) {
                    match b.ty {
                        CTA_PROTO_NUM => proto = b.payload.first().copied(),
                        CTA_PROTO_SRC_PORT => src_port = be16(b.payload)?,
                        CTA_PROTO_DST_PORT => dst_port = be16(b.payload)?,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let (src, dst) = (src?, dst?);
    if src.is_ipv4() != dst.is_ipv4() {
        return None;
    }
    Some(Tuple { src, dst, proto: proto?, src_port, dst_port })
}

/// The payload of one IPCTNL_MSG_CT_NEW message (nfgenmsg, then attributes).
pub fn parse_flow(payload: &[u8]) -> Option<Flow> {
    let (mut orig, mut reply, mut zone, mut id) = (None, None, 0, None);
    for a in attrs(payload.get(4..)?) {
        match a.ty {
            CTA_TUPLE_ORIG => orig = parse_tuple(a.payload),
            CTA_TUPLE_REPLY => reply = parse_tuple(a.payload),
            CTA_ZONE => zone = be16(a.payload)?,
            CTA_ID => id = a.u32_be(),
            _ => {}
        }
    }
    Some(Flow { orig: orig?, reply: reply?, zone, id })
}

fn nfgenmsg(family: Family) -> [u8; 4] {
    [family.af(), NFNETLINK_V0, 0, 0]
}

/// Appends a dump request for every flow of `family`.
pub fn encode_dump(b: &mut MsgBuffer, family: Family, seq: u32) {
    b.begin_msg(ct_type(IPCTNL_MSG_CT_GET), NLM_F_REQUEST | NLM_F_DUMP, seq);
    b.put_raw(&nfgenmsg(family));
    b.end_msg();
}

// Port protocols only (UDP, TCP, SCTP): ICMP tuples carry type/code/id instead.
pub(crate) fn put_tuple(b: &mut MsgBuffer, ty: u16, t: &Tuple) {
    let outer = b.nest_start(ty);
    let n = b.nest_start(CTA_TUPLE_IP);
    match (t.src, t.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            b.attr(CTA_IP_V4_SRC, &s.octets());
            b.attr(CTA_IP_V4_DST, &d.octets());
        }
        (s, d) => {
            b.attr(CTA_IP_V6_SRC, &v6(s).octets());
            b.attr(CTA_IP_V6_DST, &v6(d).octets());
        }
    }
    b.nest_end(n);
    let n = b.nest_start(CTA_TUPLE_PROTO);
    b.attr_u8(CTA_PROTO_NUM, t.proto);
    b.attr(CTA_PROTO_SRC_PORT, &t.src_port.to_be_bytes());
    b.attr(CTA_PROTO_DST_PORT, &t.dst_port.to_be_bytes());
    b.nest_end(n);
    b.nest_end(outer);
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V6(a) => a,
        IpAddr::V4(a) => a.to_ipv6_mapped(),
    }
}

/// Appends a delete request for `flow`, acked. It always names the original tuple: a
/// CT_DELETE without a tuple flushes the whole table.
pub fn encode_delete(b: &mut MsgBuffer, family: Family, flow: &Flow, seq: u32) {
    b.begin_msg(ct_type(IPCTNL_MSG_CT_DELETE), NLM_F_REQUEST | NLM_F_ACK, seq);
    b.put_raw(&nfgenmsg(family));
    put_tuple(b, CTA_TUPLE_ORIG, &flow.orig);
    if flow.zone != 0 {
        b.attr(CTA_ZONE, &flow.zone.to_be_bytes());
    }
    if let Some(id) = flow.id {
        b.attr_u32_be(CTA_ID, id);
    }
    b.end_msg();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    /// One IPv4 UDP flow as the kernel dumps it, written out attribute by attribute:
    /// 192.168.100.2:41000 -> 10.96.0.10:53, answered by 10.244.1.2:8053, id 0x01020304.
    fn kernel_v4_message() -> Vec<u8> {
        let mut m = Vec::new();
        m.extend(nlmsghdr(132, ct_type(IPCTNL_MSG_CT_NEW), 0x2, 7)); // NLM_F_MULTI
        m.extend([2, 0, 0, 0]); // nfgenmsg: AF_INET, version 0, res_id 0
        for (ty, src, dst, sport, dport) in [
            (CTA_TUPLE_ORIG, [192, 168, 100, 2], [10, 96, 0, 10], 41000u16, 53u16),
            (CTA_TUPLE_REPLY, [10, 244, 1, 2], [192, 168, 100, 2], 8053, 41000),
        ] {
            m.extend(nla(52, ty | 0x8000));
            m.extend(nla(20, CTA_TUPLE_IP | 0x8000));
            m.extend(nla(8, CTA_IP_V4_SRC));
            m.extend(src);
            m.extend(nla(8, CTA_IP_V4_DST));
            m.extend(dst);
            m.extend(nla(28, CTA_TUPLE_PROTO | 0x8000));
            m.extend(nla(5, CTA_PROTO_NUM));
            m.extend([17, 0, 0, 0]);
            m.extend(nla(6, CTA_PROTO_SRC_PORT));
            m.extend(sport.to_be_bytes());
            m.extend([0, 0]);
            m.extend(nla(6, CTA_PROTO_DST_PORT));
            m.extend(dport.to_be_bytes());
            m.extend([0, 0]);
        }
        m.extend(nla(8, CTA_ID));
        m.extend([1, 2, 3, 4]);
        assert_eq!(m.len(), 132);
        m
    }

    #[test]
    fn parses_a_kernel_layout_ipv4_flow() {
        let bytes = kernel_v4_message();
        let msg = kproxy_netlink::messages(&bytes).next().unwrap();
        let f = parse_flow(msg.payload).unwrap();
        assert_eq!(f.orig.src_addr().to_string(), "192.168.100.2:41000");
        assert_eq!(f.orig.dst_addr().to_string(), "10.96.0.10:53");
        assert_eq!(f.orig.proto, IPPROTO_UDP);
        assert_eq!(f.reply.src_addr().to_string(), "10.244.1.2:8053");
        assert_eq!(f.reply.dst_addr().to_string(), "192.168.100.2:41000");
        assert_eq!(f.id, Some(0x0102_0304));
        assert_eq!(f.zone, 0);
    }

    #[test]
    fn parses_ipv6_and_skips_attributes_it_does_not_read() {
        let f = udp_flow("[fd00:100::2]:5000", "[fd00:96::10]:53", "[fd00:244:0:1::2]:8053");
        let f = Flow { zone: 7, ..f };
        let bytes = dump_message(7, &f, true);
        let msg = kproxy_netlink::messages(&bytes).next().unwrap();
        assert_eq!(parse_flow(msg.payload), Some(f));
    }

    #[test]
    fn a_flow_without_both_tuples_is_not_parsed() {
        let f = udp_flow("10.0.0.1:1", "10.96.0.10:53", "10.244.1.2:8053");
        let mut b = MsgBuffer::default();
        b.begin_msg(ct_type(IPCTNL_MSG_CT_NEW), 0, 1);
        b.put_raw(&[2, 0, 0, 0]);
        put_tuple(&mut b, CTA_TUPLE_ORIG, &f.orig);
        b.end_msg();
        let msg = kproxy_netlink::messages(b.as_bytes()).next().unwrap();
        assert_eq!(parse_flow(msg.payload), None);
        assert_eq!(parse_flow(&[2, 0]), None);
    }

    #[test]
    fn delete_names_the_original_tuple_id_and_zone() {
        let mut f = udp_flow("192.168.100.2:41000", "10.96.0.10:53", "10.244.1.2:8053");
        f.id = Some(0x0102_0304);
        let mut b = MsgBuffer::default();
        encode_delete(&mut b, Family::V4, &f, 9);
        let mut want = Vec::new();
        want.extend(nlmsghdr(16 + 4 + 52 + 8, ct_type(IPCTNL_MSG_CT_DELETE), NLM_F_REQUEST | NLM_F_ACK, 9));
        want.extend([2, 0, 0, 0]);
        want.extend(kernel_v4_message()[20..72].iter()); // the CTA_TUPLE_ORIG nest, byte for byte
        want.extend(nla(8, CTA_ID));
        want.extend([1, 2, 3, 4]);
        assert_eq!(b.as_bytes(), &want[..]);

        // A zone goes along (big-endian u16); no id, no CTA_ID.
        let mut b = MsgBuffer::default();
        encode_delete(&mut b, Family::V4, &Flow { zone: 3, id: None, ..f }, 10);
        let msg = kproxy_netlink::messages(b.as_bytes()).next().unwrap();
        let top: Vec<_> = attrs(&msg.payload[4..]).map(|a| (a.ty, a.payload.to_vec())).collect();
        assert_eq!(top.iter().map(|a| a.0).collect::<Vec<_>>(), vec![CTA_TUPLE_ORIG, CTA_ZONE]);
        assert_eq!(top[1].1, vec![0, 3]);
    }

    #[test]
    fn dump_request_is_a_get_with_the_dump_flags_and_family() {
        let mut b = MsgBuffer::default();
        encode_dump(&mut b, Family::V6, 5);
        let mut want = nlmsghdr(20, 0x0101, NLM_F_REQUEST | NLM_F_DUMP, 5).to_vec();
        want.extend([10, 0, 0, 0]);
        assert_eq!(b.as_bytes(), &want[..]);
    }

    #[test]
    fn family_names() {
        assert_eq!(Family::parse("IPv4"), Some(Family::V4));
        assert_eq!(Family::parse("IPv6").map(Family::af), Some(10));
        assert_eq!(Family::parse("ipv4"), None);
    }
}
