//! Zero-copy readers for netlink messages, attributes and error replies.

use crate::{
    align4, NLA_F_NESTED, NLA_HDRLEN, NLA_TYPE_MASK, NLMSGERR_ATTR_MSG, NLMSGERR_ATTR_OFFS, NLMSG_HDRLEN, NLM_F_ACK_TLVS, NLM_F_CAPPED,
};

#[derive(Debug, Clone, Copy)]
pub struct NlMsg<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
    pub payload: &'a [u8],
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Iterates the messages of one datagram. Stops at the first malformed header.
pub fn messages(buf: &[u8]) -> impl Iterator<Item = NlMsg<'_>> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let len = u32_at(buf, at)? as usize;
        if len < NLMSG_HDRLEN || at + len > buf.len() {
            return None;
        }
        let msg = NlMsg {
            ty: u16_at(buf, at + 4)?,
            flags: u16_at(buf, at + 6)?,
            seq: u32_at(buf, at + 8)?,
            pid: u32_at(buf, at + 12)?,
            payload: &buf[at + NLMSG_HDRLEN..at + len],
        };
        at += align4(len);
        Some(msg)
    })
}

#[derive(Debug, Clone, Copy)]
pub struct Attr<'a> {
    pub ty: u16,
    pub nested: bool,
    pub payload: &'a [u8],
}

impl<'a> Attr<'a> {
    pub fn u32_be(&self) -> Option<u32> {
        Some(u32::from_be_bytes(self.payload.get(0..4)?.try_into().ok()?))
    }
    pub fn str(&self) -> Option<&'a str> {
        let end = self.payload.iter().position(|&c| c == 0).unwrap_or(self.payload.len());
        std::str::from_utf8(&self.payload[..end]).ok()
    }
}

/// Iterates the attributes in `buf`. Stops at the first malformed one.
pub fn attrs(buf: &[u8]) -> impl Iterator<Item = Attr<'_>> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let len = u16_at(buf, at)? as usize;
        let ty = u16_at(buf, at + 2)?;
        if len < NLA_HDRLEN || at + len > buf.len() {
            return None;
        }
        let a = Attr { ty: ty & NLA_TYPE_MASK, nested: ty & NLA_F_NESTED != 0, payload: &buf[at + NLA_HDRLEN..at + len] };
        at += align4(len);
        Some(a)
    })
}

/// The positive errno an NLMSG_DONE reports (its payload is the dump's status:
/// 0, or a negative errno); None when the dump ended cleanly. Saturating, since
/// negating a hostile i32::MIN overflows.
pub fn done_errno(msg: &NlMsg<'_>) -> Option<i32> {
    let status = i32::from_ne_bytes(msg.payload.get(0..4)?.try_into().ok()?);
    (status < 0).then(|| status.saturating_neg())
}

/// An NLMSG_ERROR reply: errno 0 is an ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NlMsgError {
    /// Positive errno (the kernel sends it negated); 0 for an ack.
    pub errno: i32,
    /// Sequence number of the request this answers.
    pub seq: u32,
    pub ext_msg: Option<String>,
    /// Byte offset of the offending attribute within the request message.
    pub ext_offset: Option<u32>,
}

impl NlMsgError {
    pub fn parse(msg: &NlMsg<'_>) -> Option<Self> {
        let p = msg.payload;
        let err = i32::from_ne_bytes(p.get(0..4)?.try_into().ok()?);
        let seq = u32_at(p, 4 + 8)?;
        let orig_len = u32_at(p, 4)? as usize;
        // With NETLINK_CAP_ACK (or on success) only the request header is echoed.
        let echoed = if msg.flags & NLM_F_CAPPED != 0 || err == 0 { NLMSG_HDRLEN } else { align4(orig_len) };
        // i32::MIN has no positive errno (negating it overflows): not a kernel reply.
        let errno = err.checked_neg()?;
        let mut out = NlMsgError { errno, seq, ext_msg: None, ext_offset: None };
        if msg.flags & NLM_F_ACK_TLVS != 0 {
            if let Some(tlvs) = p.get(4 + echoed..) {
                for a in attrs(tlvs) {
                    match a.ty {
                        NLMSGERR_ATTR_MSG => out.ext_msg = a.str().map(str::to_owned),
                        NLMSGERR_ATTR_OFFS => {
                            out.ext_offset = a.payload.get(0..4).map(|b| u32::from_ne_bytes(b.try_into().unwrap_or([0; 4])))
                        }
                        _ => {}
                    }
                }
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MsgBuffer, NLMSG_ERROR};

    #[test]
    fn walks_messages_and_nested_attributes() {
        let mut b = MsgBuffer::default();
        for seq in 1..=2 {
            b.begin_msg(0x0a03, 0, seq);
            b.put_raw(&[2, 0, 0, 0]);
            b.attr_str(1, "t");
            let n = b.nest_start(4);
            b.attr_u32_be(1, 3);
            b.nest_end(n);
            b.end_msg();
        }
        let msgs: Vec<_> = messages(b.as_bytes()).collect();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[1].seq, 2);
        let a: Vec<_> = attrs(&msgs[0].payload[4..]).collect();
        assert_eq!(a[0].str(), Some("t"));
        assert!(a[1].nested);
        assert_eq!(attrs(a[1].payload).next().unwrap().u32_be(), Some(3));
    }

    #[test]
    fn an_error_of_i32_min_is_malformed_not_a_panic() {
        // Found by tests/fuzz.rs: negating i32::MIN overflowed (a panic in debug builds).
        let mut p = i32::MIN.to_ne_bytes().to_vec();
        p.extend_from_slice(&[20, 0, 0, 0, 3, 10, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0]);
        let msg = NlMsg { ty: NLMSG_ERROR, flags: NLM_F_CAPPED, seq: 9, pid: 0, payload: &p };
        assert_eq!(NlMsgError::parse(&msg), None);
    }

    #[test]
    fn parses_error_with_extended_ack() {
        // NLMSG_ERROR, capped, with TLVs: -ENOENT for seq 9, msg "no such chain", offset 36
        let mut p = Vec::new();
        p.extend_from_slice(&(-2i32).to_ne_bytes());
        p.extend_from_slice(&[20, 0, 0, 0, 3, 10, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0]);
        let mut tl = MsgBuffer::default();
        tl.attr_str(NLMSGERR_ATTR_MSG, "no such chain");
        tl.attr(NLMSGERR_ATTR_OFFS, &36u32.to_ne_bytes());
        p.extend_from_slice(tl.as_bytes());
        let msg = NlMsg { ty: NLMSG_ERROR, flags: NLM_F_CAPPED | NLM_F_ACK_TLVS, seq: 9, pid: 0, payload: &p };
        let e = NlMsgError::parse(&msg).unwrap();
        assert_eq!(e.errno, 2);
        assert_eq!(e.seq, 9);
        assert_eq!(e.ext_msg.as_deref(), Some("no such chain"));
        assert_eq!(e.ext_offset, Some(36));
    }
}
