//! The kernel connection: a NETLINK_GENERIC socket talking to the "IPVS" family.
//! Reply handling is pure (reply.rs), so only the sending and receiving is here.

use kproxy_netlink::{AckTally, MsgBuffer, NetlinkSocket, Seq};

use crate::consts::*;
use crate::genl::resolve_family;
use crate::msg::*;
use crate::reply::ReplyReader;
use crate::*;

/// Commands per datagram. The kernel handles a whole datagram before we read,
/// so all its acks (skbs of about 1 KiB each) must fit the receive buffer at
/// once, even the default 208 KiB one should forcing a larger one fail. In the
/// test VM, 300 overflowed the default (apply failed at once) and 128 fit.
const ACK_CHUNK: usize = 128;
const RECV_BUFFER: usize = 4 << 20;

pub struct Ipvs {
    sock: NetlinkSocket,
    family: u16,
    seq: Seq,
}

impl Ipvs {
    /// Opens a generic-netlink socket in the current network namespace and
    /// resolves the IPVS family; NotAvailable when the kernel has none.
    pub fn open() -> Result<Self, IpvsError> {
        let mut sock = NetlinkSocket::open(NETLINK_GENERIC)?;
        let family = resolve_family(&mut sock, IPVS_GENL_NAME)?.ok_or(IpvsError::NotAvailable)?;
        // Best effort: without CAP_NET_ADMIN it stays at rmem_max, which ACK_CHUNK allows for.
        let _ = sock.ensure_recv_buffer(RECV_BUFFER);
        Ok(Self { sock, family, seq: Seq::new(1) })
    }

    /// The family id the kernel gave IPVS at registration.
    pub fn family_id(&self) -> u16 {
        self.family
    }

    /// Sends one request and hands each message of its answer to `on_msg`.
    fn request(
        &mut self,
        what: &'static str,
        encode: impl FnOnce(&mut MsgBuffer, u16, u32),
        mut on_msg: impl FnMut(u8, &[u8]) -> Result<(), IpvsError>,
    ) -> Result<(), IpvsError> {
        let seq = self.seq.next(1);
        let mut b = MsgBuffer::default();
        encode(&mut b, self.family, seq);
        self.sock.send(b.as_bytes())?;
        let mut reader = ReplyReader::new(seq, self.family, what);
        loop {
            let Some(dgram) = self.sock.recv(false)? else { return Err(IpvsError::NoReply(what)) };
            if reader.feed(dgram, &mut on_msg)? {
                return Ok(());
            }
        }
    }
}

impl IpvsBackend for Ipvs {
    fn apply(&mut self, ops: &[Op]) -> Result<OpResults, IpvsError> {
        let mut results = Vec::with_capacity(ops.len());
        for chunk in ops.chunks(ACK_CHUNK) {
            let first = self.seq.next(chunk.len());
            let mut b = MsgBuffer::with_capacity(chunk.len() * 208);
            for (i, op) in chunk.iter().enumerate() {
                encode_op(&mut b, self.family, op, first.wrapping_add(i as u32));
            }
            if b.overflowed() {
                return Err(IpvsError::Malformed("an op outgrew a netlink attribute"));
            }
            self.sock.send(b.as_bytes())?;
            let mut tally = AckTally::new(first, chunk.len());
            while tally.pending > 0 {
                let Some(dgram) = self.sock.recv(false)? else { return Err(IpvsError::NoReply("apply")) };
                tally.feed(dgram);
            }
            results.extend(tally.results().ok_or(IpvsError::NoReply("apply"))?);
        }
        Ok(results)
    }

    fn services(&mut self) -> Result<Vec<Service>, IpvsError> {
        let mut out = Vec::new();
        self.request("service dump", encode_dump_services, |cmd, payload| {
            if cmd == IPVS_CMD_NEW_SERVICE {
                out.extend(parse_service(payload)?);
            }
            Ok(())
        })?;
        out.sort_by_key(|s| s.key); // the kernel's order is its hash table's
        Ok(out)
    }

    fn destinations(&mut self, svc: &ServiceKey) -> Result<Vec<DestinationState>, IpvsError> {
        let mut out = Vec::new();
        let family = af(&svc.addr);
        self.request(
            "destination dump",
            |b, fam, seq| encode_dump_dests(b, fam, seq, svc),
            |cmd, payload| {
                if cmd == IPVS_CMD_NEW_DEST {
                    out.push(parse_dest(payload, family)?);
                }
                Ok(())
            },
        )?;
        out.sort_by_key(|d| d.dest.key); // the kernel's order is newest first
        Ok(out)
    }

    fn info(&mut self) -> Result<Info, IpvsError> {
        let mut info = None;
        self.request("info", encode_get_info, |cmd, payload| {
            if cmd == IPVS_CMD_SET_INFO {
                info = Some(parse_info(payload)?);
            }
            Ok(())
        })?;
        info.ok_or(IpvsError::Malformed("GET_INFO acked without a reply"))
    }

    fn timeouts(&mut self) -> Result<Timeouts, IpvsError> {
        let mut t = None;
        self.request("timeouts", encode_get_config, |cmd, payload| {
            if cmd == IPVS_CMD_SET_CONFIG {
                t = Some(parse_timeouts(payload));
            }
            Ok(())
        })?;
        t.ok_or(IpvsError::Malformed("GET_CONFIG acked without a reply"))
    }

    fn set_timeouts(&mut self, t: &Timeouts) -> Result<(), IpvsError> {
        self.request("set timeouts", |b, fam, seq| encode_set_config(b, fam, seq, t), |_, _| Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_of_ops_fits_one_datagram_of_the_default_send_buffer() {
        // The largest op: a v6 AddDest.
        let key = ServiceKey { addr: "fd00::1".parse().unwrap(), protocol: IPPROTO_TCP, port: 80 };
        let d = Destination::masq(DestKey { addr: "fd00::2".parse().unwrap(), port: 80 }, 1);
        let mut b = MsgBuffer::default();
        for i in 0..ACK_CHUNK {
            encode_op(&mut b, 0x20, &Op::AddDest(key, d.clone()), i as u32);
        }
        assert!(b.len() <= ACK_CHUNK * 208, "{}", b.len());
        assert!(b.len() < 208 * 1024);
    }
}
