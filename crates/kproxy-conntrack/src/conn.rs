//! A ctnetlink connection: dump one family's flows, delete flows, and the reconcile
//! pass that ties them to the decision. Reply handling is pure (DumpReader, AckTally)
//! so hand-built datagrams can test it.

use std::time::{Duration, Instant};

use kproxy_netlink::{done_errno, messages, MsgBuffer, NetlinkSocket, NlMsgError, Seq, NETLINK_NETFILTER, NLMSG_DONE, NLMSG_ERROR};

use crate::error::ENOENT;
use crate::flow::{encode_delete, encode_dump, parse_flow};
use crate::*;

/// Deletes per datagram: their acks must fit the receive buffer.
const DELETE_CHUNK: usize = 128;

pub struct Conntrack {
    sock: NetlinkSocket,
    seq: Seq,
}

#[derive(Debug, Default)]
pub struct Dump {
    pub flows: Vec<Flow>,
    /// NLM_F_DUMP_INTR: the table changed during the dump, some flows may be missing.
    pub interrupted: bool,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct DeleteOutcome {
    pub deleted: usize,
    /// ENOENT: gone already (expired, or a newer flow with another id).
    pub missing: usize,
    /// Refused with another errno.
    pub failed: usize,
    pub first_errno: Option<i32>,
}

/// Collects one dump's flows from its reply datagrams.
pub struct DumpReader {
    seq: u32,
    family: Family,
    proto: Option<u8>,
    pub dump: Dump,
}

impl DumpReader {
    /// Keeps flows of `family` (and of `proto`, when given) answering request `seq`.
    pub fn new(seq: u32, family: Family, proto: Option<u8>) -> Self {
        Self { seq, family, proto, dump: Dump::default() }
    }

    /// Reads one datagram; Ok(true) once the dump is complete.
    pub fn feed(&mut self, dgram: &[u8]) -> Result<bool, CtError> {
        for m in messages(dgram) {
            if m.seq != self.seq {
                continue;
            }
            if m.flags & NLM_F_DUMP_INTR != 0 {
                self.dump.interrupted = true;
            }
            match m.ty {
                NLMSG_DONE => {
                    if let Some(errno) = done_errno(&m) {
                        return Err(CtError::Kernel { errno, what: "dump" });
                    }
                    return Ok(true);
                }
                NLMSG_ERROR => {
                    let e = NlMsgError::parse(&m).ok_or(CtError::NoReply("dump"))?;
                    if e.errno != 0 {
                        return Err(CtError::Kernel { errno: e.errno, what: "dump" });
                    }
                }
                t if t == ct_type(IPCTNL_MSG_CT_NEW) => {
                    let Some(flow) = parse_flow(m.payload) else { continue };
                    let family_ok = Family::of(&flow.orig.src) == self.family;
                    let proto_ok = match self.proto {
                        None => true,
                        Some(p) => p == flow.orig.proto,
                    };
                    if family_ok && proto_ok {
                        self.dump.flows.push(flow);
                    }
                }
                _ => {}
            }
        }
        Ok(false)
    }
}

/// Counts the acks of one chunk of deletes (sequence numbers first..first+len).
pub struct AckTally {
    first: u32,
    len: u32,
    pub pending: u32,
    pub outcome: DeleteOutcome,
}

impl AckTally {
    pub fn new(first: u32, len: u32) -> Self {
        Self { first, len, pending: len, outcome: DeleteOutcome::default() }
    }

    pub fn feed(&mut self, dgram: &[u8]) {
        for m in messages(dgram) {
            if m.ty != NLMSG_ERROR || m.seq.wrapping_sub(self.first) >= self.len {
                continue;
            }
            let Some(e) = NlMsgError::parse(&m) else { continue };
            self.pending = self.pending.saturating_sub(1);
            match e.errno {
                0 => self.outcome.deleted += 1,
                ENOENT => self.outcome.missing += 1,
                errno => {
                    self.outcome.failed += 1;
                    self.outcome.first_errno.get_or_insert(errno);
                }
            }
        }
    }
}

impl Conntrack {
    /// Opens a NETLINK_NETFILTER socket in the current network namespace.
    pub fn open() -> Result<Self, CtError> {
        let sock = NetlinkSocket::open(NETLINK_NETFILTER)?;
        sock.ensure_recv_buffer(4 << 20)?;
        Ok(Self { sock, seq: Seq::new(1) })
    }

    /// Every flow of `family` (of `proto` only, when given).
    pub fn dump(&mut self, family: Family, proto: Option<u8>) -> Result<Dump, CtError> {
        let seq = self.seq.next(1);
        let mut b = MsgBuffer::default();
        encode_dump(&mut b, family, seq);
        self.sock.send(b.as_bytes())?;
        let mut reader = DumpReader::new(seq, family, proto);
        loop {
            let Some(dgram) = self.sock.recv(false)? else { return Err(CtError::NoReply("dump")) };
            if reader.feed(dgram)? {
                return Ok(reader.dump);
            }
        }
    }

    /// Deletes `flows` by their original tuple (and id, zone). Per-flow refusals are counted, not fatal.
    pub fn delete(&mut self, family: Family, flows: &[Flow]) -> Result<DeleteOutcome, CtError> {
        let mut total = DeleteOutcome::default();
        for chunk in flows.chunks(DELETE_CHUNK) {
            let first = self.seq.next(chunk.len());
            let mut b = MsgBuffer::with_capacity(chunk.len() * 96);
            for (i, f) in chunk.iter().enumerate() {
                encode_delete(&mut b, family, f, first.wrapping_add(i as u32));
            }
            self.sock.send(b.as_bytes())?;
            let mut tally = AckTally::new(first, chunk.len() as u32);
            while tally.pending > 0 {
                let Some(dgram) = self.sock.recv(false)? else { return Err(CtError::NoReply("delete")) };
                tally.feed(dgram);
            }
            let o = tally.outcome;
            total.deleted += o.deleted;
            total.missing += o.missing;
            total.failed += o.failed;
            total.first_errno = total.first_errno.or(o.first_errno);
        }
        Ok(total)
    }
}

#[derive(Debug)]
pub struct Report {
    /// UDP flows in the dump.
    pub flows: usize,
    pub stale: usize,
    pub outcome: DeleteOutcome,
    pub interrupted: bool,
    pub duration: Duration,
}

/// One reconcile pass for `family`: dump the UDP flows, delete the stale ones.
/// An interrupted dump is used as it is, as upstream does: the next pass sees the rest.
pub fn reconcile(family: Family, services: &[ServicePortInfo]) -> Result<Report, CtError> {
    let start = Instant::now();
    let mut ct = Conntrack::open()?;
    let dump = ct.dump(family, Some(IPPROTO_UDP))?;
    let stale = stale_flows(&dump.flows, services);
    let outcome = if stale.is_empty() { DeleteOutcome::default() } else { ct.delete(family, &stale)? };
    Ok(Report { flows: dump.flows.len(), stale: stale.len(), outcome, interrupted: dump.interrupted, duration: start.elapsed() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn flows() -> [Flow; 3] {
        let mut tcp = udp_flow("10.0.0.5:2", "10.96.0.10:80", "10.244.1.2:8080");
        tcp.orig.proto = IPPROTO_TCP;
        tcp.reply.proto = IPPROTO_TCP;
        [
            Flow { id: Some(11), ..udp_flow("10.0.0.5:1", "10.96.0.10:53", "10.244.1.2:8053") },
            tcp,
            Flow { id: Some(12), zone: 4, ..udp_flow("10.0.0.5:3", "10.96.0.10:53", "10.244.2.2:8053") },
        ]
    }

    #[test]
    fn a_done_status_of_i32_min_is_an_error_not_a_panic() {
        let mut d = MsgBuffer::default();
        put_done(&mut d, 6, 0, i32::MIN);
        let e = DumpReader::new(6, Family::V4, None).feed(d.as_bytes()).unwrap_err();
        assert_eq!(e.errno(), Some(i32::MAX));
    }

    #[test]
    fn a_dump_over_several_datagrams_keeps_the_family_and_protocol_asked_for() {
        let [a, tcp, c] = flows();
        let v6 = udp_flow("[fd00::5]:1", "[fd00:96::10]:53", "[fd00:244:0:1::2]:8053");
        let mut r = DumpReader::new(40, Family::V4, Some(IPPROTO_UDP));
        let mut d1 = MsgBuffer::default();
        put_dump_message(&mut d1, 40, 0x2, &a, true);
        put_dump_message(&mut d1, 40, 0x2, &tcp, true);
        put_dump_message(&mut d1, 39, 0x2, &c, true); // another request's answer
        assert!(!r.feed(d1.as_bytes()).unwrap());
        let mut d2 = MsgBuffer::default();
        put_dump_message(&mut d2, 40, 0x2, &v6, false);
        put_dump_message(&mut d2, 40, 0x2, &c, false);
        put_done(&mut d2, 40, 0, 0);
        assert!(r.feed(d2.as_bytes()).unwrap());
        assert_eq!(r.dump.flows, vec![a, c]);
        assert!(!r.dump.interrupted);
    }

    #[test]
    fn an_interrupted_dump_is_flagged_and_still_returned() {
        let [a, ..] = flows();
        let mut r = DumpReader::new(2, Family::V4, None);
        let mut d = MsgBuffer::default();
        put_dump_message(&mut d, 2, 0x2 | NLM_F_DUMP_INTR, &a, false);
        put_done(&mut d, 2, NLM_F_DUMP_INTR, 0);
        assert!(r.feed(d.as_bytes()).unwrap());
        assert_eq!(r.dump.flows, vec![a]);
        assert!(r.dump.interrupted);
    }

    #[test]
    fn kernel_errors_end_the_dump() {
        let mut d = MsgBuffer::default();
        put_ack(&mut d, 3, 1);
        let e = DumpReader::new(3, Family::V4, None).feed(d.as_bytes()).unwrap_err();
        assert_eq!(e.errno(), Some(1));
        assert!(e.to_string().contains("CAP_NET_ADMIN"), "{e}");

        let mut d = MsgBuffer::default();
        put_done(&mut d, 4, 0, -105);
        let e = DumpReader::new(4, Family::V4, None).feed(d.as_bytes()).unwrap_err();
        assert_eq!(e.errno(), Some(105));
    }

    #[test]
    fn acks_are_tallied_by_sequence_number() {
        let mut t = AckTally::new(100, 4);
        let mut d = MsgBuffer::default();
        put_ack(&mut d, 100, 0);
        put_ack(&mut d, 99, 0); // not ours
        put_ack(&mut d, 101, ENOENT);
        put_ack(&mut d, 102, 16); // EBUSY
        t.feed(d.as_bytes());
        assert_eq!(t.pending, 1);
        let mut d = MsgBuffer::default();
        put_ack(&mut d, 103, 0);
        put_ack(&mut d, 104, 0); // past the chunk
        t.feed(d.as_bytes());
        assert_eq!(t.pending, 0);
        assert_eq!(t.outcome, DeleteOutcome { deleted: 2, missing: 1, failed: 1, first_errno: Some(16) });
    }
}
