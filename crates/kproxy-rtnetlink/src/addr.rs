//! Address messages (struct ifaddrmsg + IFA_* attributes): add, delete, dump; and
//! the reader of RTM_NEWADDR replies. Addresses are in network byte order.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use kproxy_netlink::{attrs, MsgBuffer, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST};

use crate::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkAddr {
    pub index: u32,
    pub addr: IpAddr,
    pub prefix_len: u8,
    /// IFA_PROTO, 0 when unset.
    pub proto: u8,
}

fn octets(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// struct ifaddrmsg: family, prefixlen, flags, scope, index (8 bytes).
fn put_ifaddrmsg(b: &mut MsgBuffer, family: u8, prefix_len: u8, flags: u8, index: u32) {
    let mut h = [family, prefix_len, flags, 0, 0, 0, 0, 0];
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    b.put_raw(&h);
}

/// RTM_NEWADDR (`add`) or RTM_DELADDR, as `ip addr add|del ADDR/LEN dev X [nodad]` sends
/// it: scope global (0), IFA_LOCAL and IFA_ADDRESS both the address. IPv6 adds skip
/// duplicate address detection, else the address stays tentative (unusable) for a while.
/// A non-zero `proto` goes in IFA_PROTO (`ip addr add ... proto N`).
pub fn put_addr(b: &mut MsgBuffer, seq: u32, add: bool, index: u32, ip: &IpAddr, prefix_len: u8, proto: u8) {
    let (ty, flags) =
        if add { (RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL) } else { (RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK) };
    let (family, ifa_flags) = match ip {
        IpAddr::V4(_) => (AF_INET, 0),
        IpAddr::V6(_) => (AF_INET6, if add { IFA_F_NODAD } else { 0 }),
    };
    b.begin_msg(ty, flags, seq);
    put_ifaddrmsg(b, family, prefix_len, ifa_flags, index);
    let o = octets(ip);
    b.attr(IFA_LOCAL, &o);
    b.attr(IFA_ADDRESS, &o);
    if proto != 0 {
        b.attr(IFA_PROTO, &[proto]);
    }
    b.end_msg();
}

/// A dump of every address of both families; the kernel filters by link only under
/// strict checking, so the caller filters.
pub fn put_dump_addrs(b: &mut MsgBuffer, seq: u32) {
    b.begin_msg(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq);
    put_ifaddrmsg(b, AF_UNSPEC, 0, 0, 0);
    b.end_msg();
}

fn ip_of(family: u8, p: &[u8]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(p).ok()?))),
        _ => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(p).ok()?))),
    }
}

/// Reads the payload of an RTM_NEWADDR message; Ok(None) for families other than
/// IPv4/IPv6 (an AF_UNSPEC dump also walks e.g. MCTP's addresses).
pub fn parse_addr(p: &[u8]) -> Result<Option<LinkAddr>, &'static str> {
    let h = p.get(0..8).ok_or("address message shorter than ifaddrmsg")?;
    let (family, prefix_len) = (h[0], h[1]);
    if family != AF_INET && family != AF_INET6 {
        return Ok(None);
    }
    let index = u32::from_ne_bytes([h[4], h[5], h[6], h[7]]);
    let (mut local, mut address, mut proto) = (None, None, 0);
    for a in attrs(&p[8..]) {
        match a.ty {
            IFA_LOCAL => local = Some(a.payload),
            IFA_ADDRESS => address = Some(a.payload),
            IFA_PROTO if !a.payload.is_empty() => proto = a.payload[0],
            _ => {}
        }
    }
    // IFA_ADDRESS is the peer on point-to-point links; IFA_LOCAL, when present, is ours.
    let raw = local.or(address).ok_or("address message without IFA_LOCAL or IFA_ADDRESS")?;
    let addr = ip_of(family, raw).ok_or("address of the wrong length for its family")?;
    Ok(Some(LinkAddr { index, addr, prefix_len, proto }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use kproxy_netlink::messages;

    #[test]
    fn v4_add_matches_what_ip_addr_add_sends() {
        let mut b = MsgBuffer::default();
        put_addr(&mut b, 0x6b0fa027, true, 2, &"10.96.0.1".parse().unwrap(), 32, 0);
        // `strace -xx ip addr add 10.96.0.1/32 dev kube-ipvs0` (ifindex 2), sequence number included
        let ip = b"\x28\x00\x00\x00\x14\x00\x05\x06\x27\xa0\x0f\x6b\x00\x00\x00\x00\
\x02\x20\x00\x00\x02\x00\x00\x00\x08\x00\x02\x00\x0a\x60\x00\x01\x08\x00\x01\x00\x0a\x60\x00\x01";
        assert_eq!(b.as_bytes(), &ip[..]);
    }

    #[test]
    fn v6_add_has_nodad_and_delete_does_not() {
        let ip: IpAddr = "fd00::1".parse().unwrap();
        let mut b = MsgBuffer::default();
        put_addr(&mut b, 1, true, 2, &ip, 128, 0);
        put_addr(&mut b, 2, false, 2, &ip, 128, 0);
        let m: Vec<_> = messages(b.as_bytes()).collect();
        assert_eq!((m[0].ty, m[0].flags), (RTM_NEWADDR, 0x605));
        assert_eq!(&m[0].payload[..8], &[10, 128, IFA_F_NODAD, 0, 2, 0, 0, 0]);
        assert_eq!((m[1].ty, m[1].flags), (RTM_DELADDR, 0x005));
        assert_eq!(&m[1].payload[..8], &[10, 128, 0, 0, 2, 0, 0, 0]);
        let a: Vec<_> = attrs(&m[1].payload[8..]).map(|a| (a.ty, a.payload.to_vec())).collect();
        assert_eq!(a, vec![(IFA_LOCAL, octets(&ip)), (IFA_ADDRESS, octets(&ip))]);
    }

    #[test]
    fn an_owner_mark_goes_in_ifa_proto() {
        let mut b = MsgBuffer::default();
        put_addr(&mut b, 1, true, 1, &"10.96.0.1".parse().unwrap(), 32, 0x6b);
        let m: Vec<_> = messages(b.as_bytes()).collect();
        let a: Vec<_> = attrs(&m[0].payload[8..]).map(|a| (a.ty, a.payload.to_vec())).collect();
        assert_eq!(a.last(), Some(&(IFA_PROTO, vec![0x6b])));
    }

    #[test]
    fn addresses_round_trip_through_the_kernel_layout() {
        for (ip, len, proto) in [("10.96.0.10", 32, 0), ("fd00:96::10", 128, 0), ("192.168.1.7", 24, 0), ("10.96.0.11", 32, 0x6b)] {
            let a = LinkAddr { index: 5, addr: ip.parse().unwrap(), prefix_len: len, proto };
            let mut b = MsgBuffer::default();
            put_addr_message(&mut b, 1, 0, &a, None);
            let m = messages(b.as_bytes()).next().unwrap();
            assert_eq!(parse_addr(m.payload), Ok(Some(a)));
        }
    }

    #[test]
    fn the_local_address_wins_over_a_peer() {
        let a = LinkAddr { index: 3, addr: "10.0.0.1".parse().unwrap(), prefix_len: 32, proto: 0 };
        let mut b = MsgBuffer::default();
        put_addr_message(&mut b, 1, 0, &a, Some("10.0.0.2".parse().unwrap()));
        let m = messages(b.as_bytes()).next().unwrap();
        assert_eq!(parse_addr(m.payload), Ok(Some(a)));
    }

    #[test]
    fn other_families_are_skipped_and_bad_ones_refused() {
        assert_eq!(parse_addr(&[45, 8, 0, 0, 1, 0, 0, 0]), Ok(None)); // AF_MCTP
        assert!(parse_addr(&[2, 32, 0, 0]).is_err());
        assert!(parse_addr(&[2, 32, 0, 0, 1, 0, 0, 0]).is_err()); // no address attribute
        let mut b = MsgBuffer::default();
        b.attr(IFA_LOCAL, &[1, 2, 3]);
        let p = [&[2u8, 32, 0, 0, 1, 0, 0, 0][..], b.as_bytes()].concat();
        assert!(parse_addr(&p).is_err());
    }
}
