//! A connection to nf_tables: reads the generation id and commits batches.

use kproxy_netlink::{attrs, messages, MsgBuffer, NetlinkSocket, NlMsgError, NETLINK_NETFILTER, NLMSG_DONE, NLMSG_ERROR, NLM_F_REQUEST};

use crate::atoms::Family;
use crate::consts::*;
use crate::encode::encode_batch;
use crate::error::{NftError, ERESTART};
use crate::tx::Transaction;

#[derive(Debug, Clone, Copy, Default)]
pub struct CommitStats {
    pub messages: usize,
    pub bytes: usize,
    pub objects: usize,
}

pub struct Conn {
    sock: NetlinkSocket,
    seq: u32,
}

impl Conn {
    /// Opens a NETLINK_NETFILTER socket in the current network namespace.
    pub fn open() -> Result<Self, NftError> {
        let sock = NetlinkSocket::open(NETLINK_NETFILTER)?;
        sock.ensure_recv_buffer(4 << 20)?;
        Ok(Self { sock, seq: 1 })
    }

    /// This connection's netlink port id (notifications of its batches carry it).
    pub fn port_id(&self) -> Result<u32, NftError> {
        Ok(self.sock.port_id()?)
    }

    fn next_seq(&mut self, n: u32) -> u32 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(n.max(1));
        if self.seq < s {
            self.seq = 1; // wrapped; 0 is left unused
        }
        s
    }

    /// The ruleset generation id: it rises once per committed batch, from anyone.
    pub fn genid(&mut self) -> Result<u32, NftError> {
        let seq = self.next_seq(1);
        let mut b = MsgBuffer::default();
        b.begin_msg(nft_type(NFT_MSG_GETGEN), NLM_F_REQUEST, seq);
        b.put_raw(&[0, 0, 0, 0]);
        b.end_msg();
        self.sock.send(b.as_bytes())?;
        loop {
            let Some(dgram) = self.sock.recv(false)? else {
                return Err(NftError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer to the generation request")));
            };
            for m in messages(dgram) {
                if m.seq != seq {
                    continue;
                }
                if m.ty == NLMSG_ERROR {
                    let e = NlMsgError::parse(&m).ok_or(NftError::NoAck)?;
                    if e.errno != 0 {
                        return Err(NftError::Kernel { errno: e.errno, what: "get generation".into(), detail: e.ext_msg });
                    }
                    continue;
                }
                if m.ty == nft_type(NFT_MSG_NEWGEN) {
                    for a in kproxy_netlink::attrs(m.payload.get(4..).unwrap_or(&[])) {
                        if a.ty == NFTA_GEN_ID {
                            return a.u32_be().ok_or(NftError::NoAck);
                        }
                    }
                }
            }
        }
    }

    /// Every element of a set as (key bytes, data bytes; empty for a plain set), as the kernel
    /// holds them now (the packet path's too; expired ones are not listed).
    pub fn list_elements(&mut self, family: Family, table: &str, set: &str) -> Result<Vec<crate::objects::ElementBytes>, NftError> {
        const NLM_F_DUMP: u16 = 0x300;
        let seq = self.next_seq(1);
        let mut b = MsgBuffer::default();
        b.begin_msg(nft_type(NFT_MSG_GETSETELEM), NLM_F_REQUEST | NLM_F_DUMP, seq);
        b.put_raw(&[family.nfproto(), 0, 0, 0]);
        b.attr_str(NFTA_SET_ELEM_LIST_TABLE, table);
        b.attr_str(NFTA_SET_ELEM_LIST_SET, set);
        b.end_msg();
        self.sock.send(b.as_bytes())?;
        let mut out = Vec::new();
        loop {
            let Some(dgram) = self.sock.recv(false)? else {
                return Err(NftError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer listing a set")));
            };
            for m in messages(dgram) {
                if m.seq != seq {
                    continue;
                }
                match m.ty {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let e = NlMsgError::parse(&m).ok_or(NftError::NoAck)?;
                        if e.errno != 0 {
                            return Err(NftError::Kernel { errno: e.errno, what: format!("list set {set}"), detail: e.ext_msg });
                        }
                    }
                    _ => parse_set_elements(m.payload, &mut out),
                }
            }
        }
    }

    /// Sends `tx` as one atomic batch. Committed iff Ok.
    pub fn commit(&mut self, tx: &Transaction, genid: Option<u32>) -> Result<CommitStats, NftError> {
        if tx.is_empty() {
            return Ok(CommitStats::default());
        }
        let first = self.next_seq(0);
        let batch = encode_batch(tx, first, genid);
        self.next_seq(batch.msgs.len() as u32 + 2);
        if batch.bytes.overflowed() {
            return Err(NftError::Oversize);
        }
        let bytes = batch.bytes.as_bytes();
        self.sock.ensure_send_buffer(bytes.len() + (64 << 10))?;
        self.sock.send(bytes)?;
        // The kernel ran the whole batch inside sendmsg; every reply is queued now.
        let mut first_error: Option<NlMsgError> = None;
        let mut acked = false;
        while let Some(dgram) = self.sock.recv(true)? {
            for m in messages(dgram) {
                if m.ty != NLMSG_ERROR {
                    continue;
                }
                let Some(e) = NlMsgError::parse(&m) else { continue };
                if e.errno != 0 {
                    if first_error.as_ref().map(|f| e.seq < f.seq).unwrap_or(true) {
                        first_error = Some(e);
                    }
                } else if e.seq == batch.last_seq {
                    acked = true;
                }
            }
        }
        if let Some(e) = first_error {
            if e.errno == ERESTART {
                return Err(NftError::GenerationChanged);
            }
            let what = batch.msgs.iter().find(|m| m.seq == e.seq).map(|m| m.what.clone()).unwrap_or_else(|| "batch".into());
            let detail = explain_refusal(e.errno, &what).map(str::to_owned).or(e.ext_msg);
            return Err(NftError::Kernel { errno: e.errno, what, detail });
        }
        if !acked {
            return Err(NftError::NoAck);
        }
        Ok(CommitStats { messages: batch.msgs.len() + 2, bytes: bytes.len(), objects: tx.object_count() })
    }
}

/// What an errno means for this message, where the kernel's word for it misleads: a set at
/// its size cap answers ENFILE, "too many open files in system".
fn explain_refusal(errno: i32, what: &str) -> Option<&'static str> {
    const ENFILE: i32 = 23;
    (errno == ENFILE && what.contains(" element "))
        .then_some("the set is full: it holds as many elements as its size (NFTA_SET_DESC_SIZE) allows; a full sync sizes it again")
}

/// The (key, data) of each element in one NEWSETELEM dump message (`payload`: after the
/// netlink header). Pure, for the fuzz test.
pub fn parse_set_elements(payload: &[u8], out: &mut Vec<crate::objects::ElementBytes>) {
    let value = |nest: &[u8]| attrs(nest).find(|a| a.ty == NFTA_DATA_VALUE).map(|a| a.payload.to_vec()).unwrap_or_default();
    let body = payload.get(4..).unwrap_or(&[]);
    for list in attrs(body).filter(|a| a.ty == NFTA_SET_ELEM_LIST_ELEMENTS) {
        for elem in attrs(list.payload).filter(|a| a.ty == NFTA_LIST_ELEM) {
            let (mut key, mut data) = (Vec::new(), Vec::new());
            for a in attrs(elem.payload) {
                match a.ty {
                    NFTA_SET_ELEM_KEY => key = value(a.payload),
                    NFTA_SET_ELEM_DATA => data = value(a.payload),
                    _ => {}
                }
            }
            out.push((key, data));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::explain_refusal;

    #[test]
    fn a_full_set_is_named_as_such_and_other_refusals_keep_the_kernels_words() {
        assert!(explain_refusal(23, "add element ip kube-proxy cluster-ips").unwrap().contains("the set is full"));
        assert_eq!(explain_refusal(23, "add chain ip kube-proxy x"), None, "ENFILE elsewhere is not about a set");
        assert_eq!(explain_refusal(2, "add element ip kube-proxy cluster-ips"), None);
    }
}
