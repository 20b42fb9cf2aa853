//! Pure readers of the kernel's reply datagrams, so hand-built datagrams can
//! test them: `ReplyReader` for one dump or one acked request (a pipeline of
//! acked commands is kproxy-netlink's `AckTally`).

use kproxy_netlink::{done_errno, messages, NlMsgError, NLMSG_DONE, NLMSG_ERROR};

use crate::consts::GENL_HDRLEN;
use crate::IpvsError;

/// Reads the answer to request `seq`: the messages of family `family` go to the
/// caller, one by one; NLMSG_DONE (dumps) or the ack (other requests) ends it.
pub struct ReplyReader {
    seq: u32,
    family: u16,
    what: &'static str,
}

impl ReplyReader {
    pub fn new(seq: u32, family: u16, what: &'static str) -> Self {
        Self { seq, family, what }
    }

    /// Reads one datagram; Ok(true) once the answer is complete. `on_msg` gets
    /// each message's genl command and its attributes (after the genl header).
    pub fn feed(&mut self, dgram: &[u8], mut on_msg: impl FnMut(u8, &[u8]) -> Result<(), IpvsError>) -> Result<bool, IpvsError> {
        for m in messages(dgram) {
            if m.seq != self.seq {
                continue; // a late answer to an earlier request
            }
            match m.ty {
                NLMSG_DONE => {
                    if let Some(errno) = done_errno(&m) {
                        return Err(IpvsError::Kernel { errno, what: self.what });
                    }
                    return Ok(true);
                }
                NLMSG_ERROR => {
                    let e = NlMsgError::parse(&m).ok_or(IpvsError::Malformed("NLMSG_ERROR"))?;
                    if e.errno != 0 {
                        return Err(IpvsError::Kernel { errno: e.errno, what: self.what });
                    }
                    return Ok(true);
                }
                ty if ty == self.family => {
                    let cmd = *m.payload.first().ok_or(IpvsError::Malformed("message without genl header"))?;
                    on_msg(cmd, m.payload.get(GENL_HDRLEN..).unwrap_or(&[]))?;
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
    use crate::testutil::*;
    use kproxy_netlink::AckTally;

    const FAM: u16 = 0x20;

    #[test]
    fn a_dump_collects_its_messages_over_several_datagrams_until_done() {
        let mut r = ReplyReader::new(7, FAM, "dump");
        let mut seen = Vec::new();
        let mut collect = |cmd, a: &[u8]| {
            seen.push((cmd, a.to_vec()));
            Ok(())
        };
        let d1 = [genl_msg(FAM, 7, 0x2, 1, &[1, 2, 3, 4]), genl_msg(FAM, 6, 0x2, 1, &[9, 9, 9, 9])].concat();
        assert!(!r.feed(&d1, &mut collect).unwrap());
        let d2 = [genl_msg(FAM, 7, 0x2, 5, &[]), done(7, 0)].concat();
        assert!(r.feed(&d2, &mut collect).unwrap());
        assert_eq!(seen, vec![(1, vec![1, 2, 3, 4]), (5, vec![])]);
    }

    #[test]
    fn an_acked_request_ends_at_its_ack_and_errors_carry_the_errno() {
        let mut r = ReplyReader::new(3, FAM, "info");
        let d = [genl_msg(FAM, 3, 0, 14, &[]), ack(3, 0)].concat();
        let mut n = 0;
        let count = |_, _: &[u8]| {
            n += 1;
            Ok(())
        };
        assert!(r.feed(&d, count).unwrap());
        assert_eq!(n, 1);

        let e = ReplyReader::new(4, FAM, "set timeouts").feed(&ack(4, 22), |_, _| Ok(())).unwrap_err();
        assert!(matches!(e, IpvsError::Kernel { errno: 22, what: "set timeouts" }), "{e}");
        let e = ReplyReader::new(5, FAM, "dump").feed(&done(5, -105), |_, _| Ok(())).unwrap_err();
        assert_eq!(e.errno(), Some(105));
    }

    #[test]
    fn a_done_status_of_i32_min_is_an_error_not_a_panic() {
        let e = ReplyReader::new(5, FAM, "dump").feed(&done(5, i32::MIN), |_, _| Ok(())).unwrap_err();
        assert_eq!(e.errno(), Some(i32::MAX));
    }

    #[test]
    fn acks_are_matched_to_ops_by_sequence_number() {
        let mut t = AckTally::new(100, 3);
        t.feed(&[ack(99, 0), ack(101, 17), ack(100, 0)].concat());
        assert_eq!(t.pending, 1);
        t.feed(&[ack(101, 0), ack(103, 0), ack(102, 3)].concat()); // a duplicate, one past the chunk
        assert_eq!(t.pending, 0);
        assert_eq!(t.results().unwrap(), vec![Ok(()), Err(17), Err(3)]);
    }

    #[test]
    fn sequence_numbers_may_wrap_inside_a_chunk() {
        let mut t = AckTally::new(u32::MAX, 2);
        t.feed(&[ack(0, 0), ack(u32::MAX, 2)].concat());
        assert_eq!(t.results().unwrap(), vec![Err(2), Ok(())]);
    }
}
