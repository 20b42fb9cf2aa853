//! Link messages (struct ifinfomsg + IFLA_* attributes): look-up by name, dump,
//! create, flags, delete; and the reader of RTM_NEWLINK replies.

use kproxy_netlink::{attrs, MsgBuffer, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST};

use crate::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// IFLA_INFO_KIND ("dummy", "bridge"); None for devices without a link type (lo, NICs).
    pub kind: Option<String>,
    /// IFF_UP: administratively up.
    pub up: bool,
}

/// struct ifinfomsg: family, pad, type, index, flags, change (16 bytes).
fn put_ifinfomsg(b: &mut MsgBuffer, index: u32, flags: u32, change: u32) {
    let mut h = [0u8; 16];
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    h[8..12].copy_from_slice(&flags.to_ne_bytes());
    h[12..16].copy_from_slice(&change.to_ne_bytes());
    b.put_raw(&h);
}

/// RTM_GETLINK for one name; answered by one RTM_NEWLINK or an error (ENODEV).
pub fn put_get_link(b: &mut MsgBuffer, seq: u32, name: &str) {
    b.begin_msg(RTM_GETLINK, NLM_F_REQUEST, seq);
    put_ifinfomsg(b, 0, 0, 0);
    b.attr(IFLA_EXT_MASK, &RTEXT_FILTER_SKIP_STATS.to_ne_bytes());
    b.attr_str(IFLA_IFNAME, name);
    b.end_msg();
}

pub fn put_dump_links(b: &mut MsgBuffer, seq: u32) {
    b.begin_msg(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq);
    put_ifinfomsg(b, 0, 0, 0);
    b.attr(IFLA_EXT_MASK, &RTEXT_FILTER_SKIP_STATS.to_ne_bytes());
    b.end_msg();
}

/// RTM_NEWLINK creating `name` of `kind`, as `ip link add NAME type KIND` sends it.
pub fn put_new_link(b: &mut MsgBuffer, seq: u32, name: &str, kind: &str) {
    b.begin_msg(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq);
    put_ifinfomsg(b, 0, 0, 0);
    b.attr_str(IFLA_IFNAME, name);
    let n = b.nest_start(IFLA_LINKINFO);
    b.attr_str(IFLA_INFO_KIND, kind);
    b.nest_end(n);
    b.end_msg();
}

/// RTM_NEWLINK changing only IFF_UP of an existing link (`ip link set X up|down`).
pub fn put_set_up(b: &mut MsgBuffer, seq: u32, index: u32, up: bool) {
    b.begin_msg(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq);
    put_ifinfomsg(b, index, if up { IFF_UP } else { 0 }, IFF_UP);
    b.end_msg();
}

/// RTM_DELLINK by name: one request, ENODEV when there is none.
pub fn put_del_link(b: &mut MsgBuffer, seq: u32, name: &str) {
    b.begin_msg(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, seq);
    put_ifinfomsg(b, 0, 0, 0);
    b.attr_str(IFLA_IFNAME, name);
    b.end_msg();
}

/// Reads the payload of an RTM_NEWLINK message.
pub fn parse_link(p: &[u8]) -> Result<Option<Link>, &'static str> {
    const WHAT: &str = "link message shorter than ifinfomsg";
    let index = p.get(4..8).ok_or(WHAT)?;
    let flags = p.get(8..12).ok_or(WHAT)?;
    let index = u32::from_ne_bytes(index.try_into().map_err(|_| WHAT)?);
    let flags = u32::from_ne_bytes(flags.try_into().map_err(|_| WHAT)?);
    let mut name = None;
    let mut kind = None;
    for a in attrs(p.get(16..).ok_or(WHAT)?) {
        match a.ty {
            IFLA_IFNAME => name = a.str().map(str::to_owned),
            IFLA_LINKINFO => kind = attrs(a.payload).find(|i| i.ty == IFLA_INFO_KIND).and_then(|i| i.str()).map(str::to_owned),
            _ => {}
        }
    }
    let name = name.ok_or("link message without IFLA_IFNAME")?;
    Ok(Some(Link { index, name, kind, up: flags & IFF_UP != 0 }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use kproxy_netlink::messages;

    #[test]
    fn create_is_laid_out_as_ip_link_add_sends_it() {
        let mut b = MsgBuffer::default();
        put_new_link(&mut b, 7, "kube-ipvs0", "dummy");
        let m = messages(b.as_bytes()).next().unwrap();
        assert_eq!((m.ty, m.flags, m.seq), (RTM_NEWLINK, 0x605, 7));
        assert_eq!(&m.payload[..16], &[0; 16]);
        let a: Vec<_> = attrs(&m.payload[16..]).collect();
        assert_eq!((a[0].ty, a[0].str()), (IFLA_IFNAME, Some("kube-ipvs0")));
        assert_eq!(a[1].ty, IFLA_LINKINFO);
        assert!(a[1].nested);
        let info: Vec<_> = attrs(a[1].payload).collect();
        assert_eq!((info[0].ty, info[0].str()), (IFLA_INFO_KIND, Some("dummy")));
    }

    #[test]
    fn set_up_changes_only_iff_up() {
        let mut b = MsgBuffer::default();
        put_set_up(&mut b, 1, 9, true);
        put_set_up(&mut b, 2, 9, false);
        let m: Vec<_> = messages(b.as_bytes()).collect();
        // ifinfomsg: index 9, flags IFF_UP / 0, change IFF_UP; exactly what `ip link set` sends
        assert_eq!(m[0].payload, &[0, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0][..]);
        assert_eq!(m[1].payload, &[0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0][..]);
        assert_eq!(m[0].flags, NLM_F_REQUEST | NLM_F_ACK);
    }

    #[test]
    fn get_and_delete_name_the_link() {
        let mut b = MsgBuffer::default();
        put_get_link(&mut b, 3, "eth0");
        put_del_link(&mut b, 4, "eth0");
        put_dump_links(&mut b, 5);
        let m: Vec<_> = messages(b.as_bytes()).collect();
        assert_eq!((m[0].ty, m[0].flags), (RTM_GETLINK, NLM_F_REQUEST));
        assert!(attrs(&m[0].payload[16..]).any(|a| a.ty == IFLA_IFNAME && a.str() == Some("eth0")));
        assert!(attrs(&m[0].payload[16..]).any(|a| a.ty == IFLA_EXT_MASK && a.payload == 8u32.to_ne_bytes()));
        assert_eq!((m[1].ty, m[1].flags), (RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK));
        assert_eq!((m[2].ty, m[2].flags), (RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP));
    }

    #[test]
    fn links_round_trip_through_the_kernel_layout() {
        let dummy = Link { index: 12, name: "kube-ipvs0".into(), kind: Some("dummy".into()), up: false };
        let lo = Link { index: 1, name: "lo".into(), kind: None, up: true };
        for l in [dummy, lo] {
            let mut b = MsgBuffer::default();
            put_link_message(&mut b, 1, 0, &l);
            let m = messages(b.as_bytes()).next().unwrap();
            assert_eq!(parse_link(m.payload), Ok(Some(l)));
        }
    }

    #[test]
    fn short_or_nameless_links_are_malformed() {
        assert!(parse_link(&[0; 8]).is_err());
        assert!(parse_link(&[0; 16]).is_err());
    }
}
