//! Turns a Transaction into one NFNL batch: BATCH_BEGIN, messages, BATCH_END.

use kproxy_netlink::{MsgBuffer, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST};

use crate::atoms::{put_vals, Tuple, Val};
use crate::consts::*;
use crate::expr::verdict_data;
use crate::objects::{ElemData, Element, SetData};
use crate::tx::{Op, Transaction};
use crate::udata;

/// Element messages are split well below nla_len's 64 KiB.
const ELEMENT_MSG_BUDGET: usize = 32 * 1024;

/// What each message of the batch was, for naming the object a kernel error refers to.
#[derive(Debug, Clone)]
pub struct MsgInfo {
    pub seq: u32,
    pub what: String,
}

pub struct EncodedBatch {
    pub bytes: MsgBuffer,
    pub msgs: Vec<MsgInfo>,
    /// Sequence number of the last object message, which carries NLM_F_ACK.
    pub last_seq: u32,
}

struct Encoder<'a> {
    b: MsgBuffer,
    tx: &'a Transaction,
    seq: u32,
    msgs: Vec<MsgInfo>,
    scratch: Vec<u8>,
}

impl<'a> Encoder<'a> {
    fn begin(&mut self, msg: u16, flags: u16, what: impl FnOnce() -> String) {
        self.seq += 1;
        self.b.begin_msg(nft_type(msg), NLM_F_REQUEST | flags, self.seq);
        self.b.put_raw(&[self.tx.family.nfproto(), 0, 0, 0]);
        self.msgs.push(MsgInfo { seq: self.seq, what: what() });
    }

    fn op(&mut self, op: &Op) {
        let t = &self.tx.table;
        let fam = self.tx.family.keyword();
        match op {
            Op::AddTable(table) => {
                self.begin(NFT_MSG_NEWTABLE, NLM_F_CREATE, || format!("add table {fam} {t}"));
                self.b.attr_str(NFTA_TABLE_NAME, t);
                self.b.attr_u32_be(NFTA_TABLE_FLAGS, 0);
                if let Some(c) = &table.comment {
                    self.b.attr(NFTA_TABLE_USERDATA, &udata::comment(udata::COMMENT, c));
                }
            }
            Op::DeleteTable => {
                self.begin(NFT_MSG_DELTABLE, 0, || format!("delete table {fam} {t}"));
                self.b.attr_str(NFTA_TABLE_NAME, t);
            }
            Op::AddChain(c) => {
                self.begin(NFT_MSG_NEWCHAIN, NLM_F_CREATE, || format!("add chain {fam} {t} {}", c.name));
                self.b.attr_str(NFTA_CHAIN_TABLE, t);
                self.b.attr_str(NFTA_CHAIN_NAME, &c.name);
                if let Some(base) = &c.base {
                    let h = self.b.nest_start(NFTA_CHAIN_HOOK);
                    self.b.attr_u32_be(NFTA_HOOK_HOOKNUM, base.hook.number());
                    self.b.attr_u32_be(NFTA_HOOK_PRIORITY, base.priority as u32);
                    self.b.nest_end(h);
                    self.b.attr_u32_be(NFTA_CHAIN_POLICY, NF_ACCEPT as u32);
                    self.b.attr_str(NFTA_CHAIN_TYPE, if base.ty == crate::objects::ChainType::Nat { "nat" } else { "filter" });
                }
            }
            Op::FlushChain(name) => {
                self.begin(NFT_MSG_DELRULE, 0, || format!("flush chain {fam} {t} {name}"));
                self.b.attr_str(NFTA_RULE_TABLE, t);
                self.b.attr_str(NFTA_RULE_CHAIN, name);
            }
            Op::DeleteChain(name) => {
                self.begin(NFT_MSG_DELCHAIN, 0, || format!("delete chain {fam} {t} {name}"));
                self.b.attr_str(NFTA_CHAIN_TABLE, t);
                self.b.attr_str(NFTA_CHAIN_NAME, name);
            }
            Op::AddRule(r) => {
                self.begin(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, || format!("add rule {fam} {t} {}", r.chain));
                self.b.attr_str(NFTA_RULE_TABLE, t);
                self.b.attr_str(NFTA_RULE_CHAIN, &r.chain);
                let list = self.b.nest_start(NFTA_RULE_EXPRESSIONS);
                for s in &r.stmts {
                    s.encode(self.tx.family, &mut self.b);
                }
                self.b.nest_end(list);
            }
            Op::AddSet(s) => {
                self.begin(NFT_MSG_NEWSET, NLM_F_CREATE, || format!("add set {fam} {t} {}", s.name));
                self.b.attr_str(NFTA_SET_TABLE, t);
                self.b.attr_str(NFTA_SET_NAME, &s.name);
                let dynamic = if s.dynamic { NFT_SET_TIMEOUT | NFT_SET_EVAL } else { 0 };
                self.b.attr_u32_be(NFTA_SET_FLAGS, if s.is_map() { NFT_SET_MAP } else { 0 } | dynamic);
                self.b.attr_u32_be(NFTA_SET_KEY_TYPE, s.key_type);
                self.b.attr_u32_be(NFTA_SET_KEY_LEN, s.key_len);
                match &s.data {
                    SetData::None => {}
                    SetData::Verdict => {
                        self.b.attr_u32_be(NFTA_SET_DATA_TYPE, NFT_DATA_VERDICT);
                        self.b.attr_u32_be(NFTA_SET_DATA_LEN, 0);
                    }
                    SetData::Value { ty, len } => {
                        self.b.attr_u32_be(NFTA_SET_DATA_TYPE, *ty);
                        self.b.attr_u32_be(NFTA_SET_DATA_LEN, *len);
                    }
                }
                if let Some(size) = s.size {
                    let d = self.b.nest_start(NFTA_SET_DESC);
                    self.b.attr_u32_be(NFTA_SET_DESC_SIZE, size);
                    self.b.nest_end(d);
                }
                self.b.attr_u32_be(NFTA_SET_ID, self.seq);
                let mut ud = s.udata_prefix.clone();
                if let Some(c) = &s.comment {
                    udata::put_str(&mut ud, udata::SET_COMMENT, c);
                }
                if !ud.is_empty() {
                    self.b.attr(NFTA_SET_USERDATA, &ud);
                }
            }
            Op::DeleteSet(name) => {
                self.begin(NFT_MSG_DELSET, 0, || format!("delete set {fam} {t} {name}"));
                self.b.attr_str(NFTA_SET_TABLE, t);
                self.b.attr_str(NFTA_SET_NAME, name);
            }
            Op::FlushSet(name) => {
                // DELSETELEM without an element list flushes the set.
                self.begin(NFT_MSG_DELSETELEM, 0, || format!("flush set {fam} {t} {name}"));
                self.b.attr_str(NFTA_SET_ELEM_LIST_TABLE, t);
                self.b.attr_str(NFTA_SET_ELEM_LIST_SET, name);
            }
            Op::AddElements { set, elems } => self.elements(NFT_MSG_NEWSETELEM, set, elems.iter().map(Elem::Add)),
            Op::DeleteElements { set, keys } => self.elements(NFT_MSG_DELSETELEM, set, keys.iter().map(Elem::Del)),
        }
        self.b.end_msg();
    }

    /// Writes elements into as many messages as the size budget needs.
    fn elements<'e>(&mut self, msg: u16, set: &str, elems: impl Iterator<Item = Elem<'e>>) {
        let verb = if msg == NFT_MSG_NEWSETELEM { "add" } else { "delete" };
        let flags = if msg == NFT_MSG_NEWSETELEM { NLM_F_CREATE } else { 0 };
        let fam = self.tx.family.keyword();
        let mut elems = elems.peekable();
        while elems.peek().is_some() {
            let t = self.tx.table.clone();
            self.begin(msg, flags, || format!("{verb} element {fam} {t} {set}"));
            self.b.attr_str(NFTA_SET_ELEM_LIST_TABLE, &t);
            self.b.attr_str(NFTA_SET_ELEM_LIST_SET, set);
            let list = self.b.nest_start(NFTA_SET_ELEM_LIST_ELEMENTS);
            for e in elems.by_ref() {
                self.element(&e);
                if self.b.current_msg_len() > ELEMENT_MSG_BUDGET {
                    break;
                }
            }
            self.b.nest_end(list);
            self.b.end_msg();
        }
    }

    fn element(&mut self, e: &Elem<'_>) {
        let item = self.b.nest_start(NFTA_LIST_ELEM);
        let key = self.b.nest_start(NFTA_SET_ELEM_KEY);
        self.scratch.clear();
        put_vals(&mut self.scratch, e.key());
        self.b.attr(NFTA_DATA_VALUE, &self.scratch);
        self.b.nest_end(key);
        if let Elem::Add(el) = e {
            match &el.data {
                Some(ElemData::Verdict(v)) => verdict_data(&mut self.b, NFTA_SET_ELEM_DATA, v),
                Some(ElemData::Vals(v)) => {
                    let d = self.b.nest_start(NFTA_SET_ELEM_DATA);
                    self.scratch.clear();
                    put_vals(&mut self.scratch, v);
                    self.b.attr(NFTA_DATA_VALUE, &self.scratch);
                    self.b.nest_end(d);
                }
                None => {}
            }
            if let Some(c) = &el.comment {
                self.b.attr(NFTA_SET_ELEM_USERDATA, &udata::comment(udata::COMMENT, c));
            }
        }
        self.b.nest_end(item);
    }
}

enum Elem<'e> {
    Add(&'e Element),
    Del(&'e Tuple),
}

impl Elem<'_> {
    fn key(&self) -> &[Val] {
        match self {
            Elem::Add(e) => e.key.as_slice(),
            Elem::Del(k) => k,
        }
    }
}

/// Encodes `tx` as a complete batch. With `genid`, the kernel refuses the
/// batch (ERESTART) if the ruleset generation changed since it was read.
pub fn encode_batch(tx: &Transaction, first_seq: u32, genid: Option<u32>) -> EncodedBatch {
    let mut b = MsgBuffer::with_capacity(4096 + tx.object_count() * 96);
    // BATCH_BEGIN's nfgenmsg carries res_id = subsystem (big-endian).
    b.begin_msg(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, first_seq);
    let res = NFNL_SUBSYS_NFTABLES.to_be_bytes();
    b.put_raw(&[0, 0, res[0], res[1]]);
    if let Some(g) = genid {
        b.attr_u32_be(NFNL_BATCH_GENID, g);
    }
    b.end_msg();
    let mut enc = Encoder { b, tx, seq: first_seq, msgs: Vec::new(), scratch: Vec::with_capacity(64) };
    for op in &tx.ops {
        enc.op(op);
    }
    let last_seq = enc.seq;
    // Ask for an ack on the last object message only: errors always come back,
    // and one ack tells us the kernel got to the end.
    let mut bytes = enc.b;
    if last_seq > first_seq {
        bytes.or_last_msg_flags(NLM_F_ACK);
    }
    let end_seq = enc.seq + 1;
    bytes.begin_msg(NFNL_MSG_BATCH_END, NLM_F_REQUEST, end_seq);
    bytes.put_raw(&[0, 0, res[0], res[1]]);
    bytes.end_msg();
    EncodedBatch { bytes, msgs: enc.msgs, last_seq }
}
