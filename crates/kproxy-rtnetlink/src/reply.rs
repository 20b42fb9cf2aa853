//! Pure readers of reply datagrams: one request's dump (or single GET answer), and the
//! acks of a block of pipelined requests.

use kproxy_netlink::{done_errno, messages, NlMsgError, NLMSG_DONE, NLMSG_ERROR, NLM_F_MULTI};

use crate::*;

/// Collects the answer to request `seq`: messages of type `ty` until NLMSG_DONE, or
/// the single non-multipart message a plain GET gets.
pub struct DumpReader<T> {
    seq: u32,
    ty: u16,
    parse: fn(&[u8]) -> Result<Option<T>, &'static str>,
    what: &'static str,
    pub items: Vec<T>,
    /// NLM_F_DUMP_INTR: the table changed during the dump, it may be inconsistent.
    pub interrupted: bool,
}

impl<T> DumpReader<T> {
    pub fn new(seq: u32, ty: u16, parse: fn(&[u8]) -> Result<Option<T>, &'static str>, what: &'static str) -> Self {
        Self { seq, ty, parse, what, items: Vec::new(), interrupted: false }
    }

    /// Reads one datagram; Ok(true) once the answer is complete.
    pub fn feed(&mut self, dgram: &[u8]) -> Result<bool, RtnlError> {
        for m in messages(dgram) {
            if m.seq != self.seq {
                continue;
            }
            if m.flags & NLM_F_DUMP_INTR != 0 {
                self.interrupted = true;
            }
            match m.ty {
                NLMSG_DONE => {
                    if let Some(errno) = done_errno(&m) {
                        return Err(RtnlError::Kernel { errno, what: self.what });
                    }
                    return Ok(true);
                }
                NLMSG_ERROR => {
                    let e = NlMsgError::parse(&m).ok_or(RtnlError::Malformed("error message"))?;
                    if e.errno != 0 {
                        return Err(RtnlError::Kernel { errno: e.errno, what: self.what });
                    }
                    return Ok(true);
                }
                t if t == self.ty => {
                    if let Some(item) = (self.parse)(m.payload).map_err(RtnlError::Malformed)? {
                        self.items.push(item);
                    }
                    if m.flags & NLM_F_MULTI == 0 {
                        return Ok(true);
                    }
                }
                _ => {}
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::parse_addr;
    use crate::link::parse_link;
    use crate::testutil::*;
    use kproxy_netlink::AckTally;
    use kproxy_netlink::MsgBuffer;

    fn a(index: u32, ip: &str, prefix_len: u8) -> LinkAddr {
        LinkAddr { index, addr: ip.parse().unwrap(), prefix_len, proto: 0 }
    }

    #[test]
    fn a_done_status_of_i32_min_is_an_error_not_a_panic() {
        let mut d = MsgBuffer::default();
        put_done(&mut d, 6, 0, i32::MIN);
        let e = DumpReader::new(6, RTM_NEWLINK, parse_link, "link dump").feed(d.as_bytes()).unwrap_err();
        assert_eq!(e.errno(), Some(i32::MAX));
    }

    #[test]
    fn a_dump_over_several_datagrams_ends_at_done() {
        let mut r = DumpReader::new(40, RTM_NEWADDR, parse_addr, "address dump");
        let mut d1 = MsgBuffer::default();
        put_addr_message(&mut d1, 40, NLM_F_MULTI, &a(1, "127.0.0.1", 8), None);
        put_addr_message(&mut d1, 39, NLM_F_MULTI, &a(1, "10.0.0.9", 8), None); // another request's
        put_addr_message(&mut d1, 40, NLM_F_MULTI, &a(2, "10.96.0.1", 32), None);
        assert!(!r.feed(d1.as_bytes()).unwrap());
        let mut d2 = MsgBuffer::default();
        put_addr_message(&mut d2, 40, NLM_F_MULTI, &a(2, "fd00:96::1", 128), None);
        put_done(&mut d2, 40, 0, 0);
        assert!(r.feed(d2.as_bytes()).unwrap());
        assert_eq!(r.items, vec![a(1, "127.0.0.1", 8), a(2, "10.96.0.1", 32), a(2, "fd00:96::1", 128)]);
        assert!(!r.interrupted);
    }

    #[test]
    fn an_interrupted_dump_is_flagged() {
        let mut r = DumpReader::new(2, RTM_NEWADDR, parse_addr, "address dump");
        let mut d = MsgBuffer::default();
        put_addr_message(&mut d, 2, NLM_F_MULTI | NLM_F_DUMP_INTR, &a(2, "10.96.0.1", 32), None);
        put_done(&mut d, 2, NLM_F_DUMP_INTR, 0);
        assert!(r.feed(d.as_bytes()).unwrap());
        assert!(r.interrupted);
    }

    #[test]
    fn a_plain_get_is_answered_by_one_message() {
        let l = Link { index: 3, name: "kube-ipvs0".into(), kind: Some("dummy".into()), up: false };
        let mut r = DumpReader::new(5, RTM_NEWLINK, parse_link, "link get");
        let mut d = MsgBuffer::default();
        put_link_message(&mut d, 5, 0, &l);
        assert!(r.feed(d.as_bytes()).unwrap());
        assert_eq!(r.items, vec![l]);
    }

    #[test]
    fn kernel_errors_and_malformed_messages_end_the_answer() {
        let mut d = MsgBuffer::default();
        put_ack(&mut d, 3, ENODEV);
        let e = DumpReader::new(3, RTM_NEWLINK, parse_link, "link get").feed(d.as_bytes()).unwrap_err();
        assert!(matches!(e, RtnlError::Kernel { errno: ENODEV, what: "link get" }), "{e:?}");

        let mut d = MsgBuffer::default();
        put_done(&mut d, 4, 0, -105);
        let e = DumpReader::new(4, RTM_NEWLINK, parse_link, "link dump").feed(d.as_bytes()).unwrap_err();
        assert_eq!(e.errno(), Some(105));

        let mut d = MsgBuffer::default();
        d.begin_msg(RTM_NEWLINK, NLM_F_MULTI, 6);
        d.put_raw(&[0; 8]);
        d.end_msg();
        let e = DumpReader::new(6, RTM_NEWLINK, parse_link, "link dump").feed(d.as_bytes()).unwrap_err();
        assert!(matches!(e, RtnlError::Malformed(_)), "{e:?}");
    }

    #[test]
    fn acks_are_placed_by_sequence_number() {
        let mut t = AckTally::new(100, 4);
        let mut d = MsgBuffer::default();
        put_ack(&mut d, 102, EADDRNOTAVAIL);
        put_ack(&mut d, 99, 0); // not ours
        put_ack(&mut d, 100, 0);
        put_ack(&mut d, 100, EEXIST); // a duplicate does not count twice
        put_ack(&mut d, 101, EEXIST);
        t.feed(d.as_bytes());
        assert_eq!(t.pending, 1);
        let mut d = MsgBuffer::default();
        put_ack(&mut d, 103, 0);
        put_ack(&mut d, 104, 0); // past the block
        t.feed(d.as_bytes());
        assert_eq!(t.pending, 0);
        assert_eq!(t.results(), Some(vec![Ok(()), Err(EEXIST), Err(EADDRNOTAVAIL), Ok(())]));
    }

    #[test]
    fn a_block_across_the_sequence_wrap_is_tallied() {
        let mut t = AckTally::new(u32::MAX, 2);
        let mut d = MsgBuffer::default();
        put_ack(&mut d, 0, EEXIST);
        put_ack(&mut d, u32::MAX, 0);
        t.feed(d.as_bytes());
        assert_eq!(t.results(), Some(vec![Ok(()), Err(EEXIST)]));
        assert_eq!(AckTally::new(1, 1).results(), None);
    }
}
