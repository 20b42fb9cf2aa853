//! A NETLINK_ROUTE connection: links and addresses. Encoding and reply reading are
//! pure (link, addr, reply); this file only sends requests and feeds the readers.

use std::net::IpAddr;

use kproxy_netlink::{AckTally, MsgBuffer, NetlinkSocket, Seq};

use crate::addr::{parse_addr, put_addr, put_dump_addrs};
use crate::link::{parse_link, put_del_link, put_dump_links, put_get_link, put_new_link, put_set_up};
use crate::*;

/// Address requests per datagram. The kernel answers a whole datagram before we read,
/// so its acks (~1 KiB each in socket accounting) must fit the receive buffer, even
/// the unprivileged one (rmem_max, ~416 KiB).
const ADDR_CHUNK: usize = 256;
/// Dumps redone when the table changed under them before one is used as it is.
const DUMP_ATTEMPTS: usize = 3;

pub struct Rtnl {
    sock: NetlinkSocket,
    seq: Seq,
}

type Parse<T> = fn(&[u8]) -> Result<Option<T>, &'static str>;

impl Rtnl {
    /// Opens a NETLINK_ROUTE socket in the current network namespace.
    pub fn open() -> Result<Self, RtnlError> {
        let sock = NetlinkSocket::open(NETLINK_ROUTE)?;
        sock.ensure_recv_buffer(4 << 20)?;
        Ok(Self { sock, seq: Seq::new(1) })
    }

    /// Sends one request and reads its answer (a dump, or one message).
    fn query<T>(
        &mut self,
        encode: impl FnOnce(&mut MsgBuffer, u32),
        ty: u16,
        parse: Parse<T>,
        what: &'static str,
    ) -> Result<DumpReader<T>, RtnlError> {
        let seq = self.seq.next(1);
        let mut b = MsgBuffer::default();
        encode(&mut b, seq);
        self.sock.send(b.as_bytes())?;
        let mut reader = DumpReader::new(seq, ty, parse, what);
        loop {
            let Some(dgram) = self.sock.recv(false)? else { return Err(RtnlError::NoReply(what)) };
            if reader.feed(dgram)? {
                return Ok(reader);
            }
        }
    }

    /// A dump, redone a few times if the kernel flags it inconsistent; the last one
    /// is returned regardless (the next sync sees the rest).
    fn dump<T>(&mut self, encode: fn(&mut MsgBuffer, u32), ty: u16, parse: Parse<T>, what: &'static str) -> Result<Vec<T>, RtnlError> {
        let mut attempt = 1;
        loop {
            let r = self.query(encode, ty, parse, what)?;
            if !r.interrupted || attempt == DUMP_ATTEMPTS {
                return Ok(r.items);
            }
            attempt += 1;
        }
    }

    /// Sends one request of `n` messages (sequence numbers first..first+n) and
    /// collects one ack each.
    fn pipelined(
        &mut self,
        n: usize,
        encode: impl FnOnce(&mut MsgBuffer, u32),
        what: &'static str,
    ) -> Result<Vec<Result<(), i32>>, RtnlError> {
        let first = self.seq.next(n);
        let mut b = MsgBuffer::with_capacity(n * 64);
        encode(&mut b, first);
        self.sock.send(b.as_bytes())?;
        let mut tally = AckTally::new(first, n);
        while tally.pending > 0 {
            let Some(dgram) = self.sock.recv(false)? else { return Err(RtnlError::NoReply(what)) };
            tally.feed(dgram);
        }
        tally.results().ok_or(RtnlError::NoReply(what))
    }

    /// One acked request; a refusal is an error.
    fn request(&mut self, encode: impl FnOnce(&mut MsgBuffer, u32), what: &'static str) -> Result<(), RtnlError> {
        match self.pipelined(1, encode, what)?.pop() {
            Some(Ok(())) => Ok(()),
            Some(Err(errno)) => Err(RtnlError::Kernel { errno, what }),
            None => Err(RtnlError::NoReply(what)),
        }
    }

    /// The link called `name`, or None.
    pub fn link(&mut self, name: &str) -> Result<Option<Link>, RtnlError> {
        match self.query(|b, seq| put_get_link(b, seq, name), RTM_NEWLINK, parse_link, "link get") {
            Ok(r) => Ok(r.items.into_iter().next()),
            Err(RtnlError::Kernel { errno: ENODEV, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every link of the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>, RtnlError> {
        self.dump(put_dump_links, RTM_NEWLINK, parse_link, "link dump")
    }

    /// Creates a link of `kind` ("dummy"); Ok(existing link) if one of that name and kind exists;
    /// Err Kernel{EEXIST} if the name is taken by another kind.
    pub fn ensure_link(&mut self, name: &str, kind: &str) -> Result<Link, RtnlError> {
        let of_kind =
            |l: Link| if l.kind.as_deref() == Some(kind) { Ok(l) } else { Err(RtnlError::Kernel { errno: EEXIST, what: "link create" }) };
        if let Some(l) = self.link(name)? {
            return of_kind(l);
        }
        match self.request(|b, seq| put_new_link(b, seq, name, kind), "link create") {
            // EEXIST: another creator won the race; its link is judged like ours.
            Ok(()) | Err(RtnlError::Kernel { errno: EEXIST, .. }) => {}
            Err(e) => return Err(e),
        }
        match self.link(name)? {
            Some(l) => of_kind(l),
            None => Err(RtnlError::Kernel { errno: ENODEV, what: "link create" }),
        }
    }

    /// Sets or clears IFF_UP.
    pub fn set_up(&mut self, index: u32, up: bool) -> Result<(), RtnlError> {
        self.request(|b, seq| put_set_up(b, seq, index, up), "link set up")
    }

    /// Deletes the link called `name`; false when there is none.
    pub fn delete_link(&mut self, name: &str) -> Result<bool, RtnlError> {
        match self.request(|b, seq| put_del_link(b, seq, name), "link delete") {
            Ok(()) => Ok(true),
            Err(RtnlError::Kernel { errno: ENODEV, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every address (of one link when `index` is Some), both families.
    pub fn addresses(&mut self, index: Option<u32>) -> Result<Vec<LinkAddr>, RtnlError> {
        let mut all = self.dump(put_dump_addrs, RTM_NEWADDR, parse_addr, "address dump")?;
        if let Some(i) = index {
            all.retain(|a| a.index == i);
        }
        Ok(all)
    }

    /// Adds and deletes addresses on one link, pipelined (many requests per datagram,
    /// one ack each); one result per address, in order, Ok or the positive errno. Adding
    /// an existing address answers EEXIST and deleting a missing one EADDRNOTAVAIL: they
    /// are reported, the caller decides. Adds go first, so a re-prefixed address is never
    /// missing in between. IPv6 adds carry IFA_F_NODAD; a non-zero `proto` marks the adds
    /// as IFA_PROTO (so an owner tells its addresses on a shared link such as lo).
    #[allow(clippy::type_complexity)]
    pub fn change_addresses(
        &mut self,
        index: u32,
        add: &[(IpAddr, u8)],
        delete: &[(IpAddr, u8)],
        proto: u8,
    ) -> Result<(Vec<Result<(), i32>>, Vec<Result<(), i32>>), RtnlError> {
        let ops: Vec<(bool, IpAddr, u8)> =
            add.iter().map(|&(ip, len)| (true, ip, len)).chain(delete.iter().map(|&(ip, len)| (false, ip, len))).collect();
        let mut results = Vec::with_capacity(ops.len());
        for chunk in ops.chunks(ADDR_CHUNK) {
            let acks = self.pipelined(
                chunk.len(),
                |b, first| {
                    for (i, (is_add, ip, len)) in chunk.iter().enumerate() {
                        put_addr(b, first.wrapping_add(i as u32), *is_add, index, ip, *len, if *is_add { proto } else { 0 });
                    }
                },
                "address change",
            )?;
            results.extend(acks);
        }
        let deleted = results.split_off(add.len());
        Ok((results, deleted))
    }
}
