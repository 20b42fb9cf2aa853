//! Encoders for the nf_tables expressions kproxy uses, each one
//! `NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA { ... } }`.

use kproxy_netlink::MsgBuffer;

use crate::atoms::Verdict;
use crate::consts::*;

fn expr(b: &mut MsgBuffer, name: &str, body: impl FnOnce(&mut MsgBuffer)) {
    let elem = b.nest_start(NFTA_LIST_ELEM);
    b.attr_str(NFTA_EXPR_NAME, name);
    let data = b.nest_start(NFTA_EXPR_DATA);
    body(b);
    b.nest_end(data);
    b.nest_end(elem);
}

fn data_value(b: &mut MsgBuffer, ty: u16, bytes: &[u8]) {
    let n = b.nest_start(ty);
    b.attr(NFTA_DATA_VALUE, bytes);
    b.nest_end(n);
}

/// `NFTA_DATA_VERDICT { CODE, CHAIN? }` inside an attribute of type `ty`.
pub fn verdict_data(b: &mut MsgBuffer, ty: u16, v: &Verdict) {
    let outer = b.nest_start(ty);
    let inner = b.nest_start(NFTA_DATA_VERDICT);
    b.attr_u32_be(NFTA_VERDICT_CODE, v.code() as u32);
    if let Some(chain) = v.chain() {
        b.attr_str(NFTA_VERDICT_CHAIN, chain);
    }
    b.nest_end(inner);
    b.nest_end(outer);
}

pub fn payload(b: &mut MsgBuffer, base: u32, offset: u32, len: u32, dreg: u32) {
    expr(b, "payload", |b| {
        b.attr_u32_be(NFTA_PAYLOAD_DREG, dreg);
        b.attr_u32_be(NFTA_PAYLOAD_BASE, base);
        b.attr_u32_be(NFTA_PAYLOAD_OFFSET, offset);
        b.attr_u32_be(NFTA_PAYLOAD_LEN, len);
    });
}

pub fn meta_load(b: &mut MsgBuffer, key: u32, dreg: u32) {
    expr(b, "meta", |b| {
        b.attr_u32_be(NFTA_META_KEY, key);
        b.attr_u32_be(NFTA_META_DREG, dreg);
    });
}

pub fn meta_set(b: &mut MsgBuffer, key: u32, sreg: u32) {
    expr(b, "meta", |b| {
        b.attr_u32_be(NFTA_META_KEY, key);
        b.attr_u32_be(NFTA_META_SREG, sreg);
    });
}

pub fn ct_load(b: &mut MsgBuffer, key: u32, dreg: u32) {
    expr(b, "ct", |b| {
        b.attr_u32_be(NFTA_CT_DREG, dreg);
        b.attr_u32_be(NFTA_CT_KEY, key);
    });
}

/// `ct original <key>`: a field of the connection's original direction.
pub fn ct_load_original(b: &mut MsgBuffer, key: u32, dreg: u32) {
    expr(b, "ct", |b| {
        b.attr_u32_be(NFTA_CT_DREG, dreg);
        b.attr_u32_be(NFTA_CT_KEY, key);
        b.attr_u8(NFTA_CT_DIRECTION, IP_CT_DIR_ORIGINAL);
    });
}

pub fn cmp(b: &mut MsgBuffer, sreg: u32, op: u32, data: &[u8]) {
    expr(b, "cmp", |b| {
        b.attr_u32_be(NFTA_CMP_SREG, sreg);
        b.attr_u32_be(NFTA_CMP_OP, op);
        data_value(b, NFTA_CMP_DATA, data);
    });
}

/// reg = (reg & mask) ^ xor
pub fn bitwise(b: &mut MsgBuffer, reg: u32, mask: &[u8], xor: &[u8]) {
    expr(b, "bitwise", |b| {
        b.attr_u32_be(NFTA_BITWISE_SREG, reg);
        b.attr_u32_be(NFTA_BITWISE_DREG, reg);
        b.attr_u32_be(NFTA_BITWISE_LEN, mask.len() as u32);
        data_value(b, NFTA_BITWISE_MASK, mask);
        data_value(b, NFTA_BITWISE_XOR, xor);
    });
}

pub fn lookup(b: &mut MsgBuffer, set: &str, sreg: u32, dreg: Option<u32>) {
    expr(b, "lookup", |b| {
        b.attr_str(NFTA_LOOKUP_SET, set);
        b.attr_u32_be(NFTA_LOOKUP_SREG, sreg);
        if let Some(d) = dreg {
            b.attr_u32_be(NFTA_LOOKUP_DREG, d);
        }
    });
}

pub fn immediate_verdict(b: &mut MsgBuffer, v: &Verdict) {
    expr(b, "immediate", |b| {
        b.attr_u32_be(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
        verdict_data(b, NFTA_IMMEDIATE_DATA, v);
    });
}

pub fn masq(b: &mut MsgBuffer, flags: u32) {
    expr(b, "masq", |b| b.attr_u32_be(NFTA_MASQ_FLAGS, flags));
}

pub fn reject(b: &mut MsgBuffer, ty: u32, code: u8) {
    expr(b, "reject", |b| {
        b.attr_u32_be(NFTA_REJECT_TYPE, ty);
        b.attr_u8(NFTA_REJECT_ICMP_CODE, code);
    });
}

pub fn numgen_random(b: &mut MsgBuffer, dreg: u32, modulus: u32, offset: u32) {
    expr(b, "numgen", |b| {
        b.attr_u32_be(NFTA_NG_DREG, dreg);
        b.attr_u32_be(NFTA_NG_MODULUS, modulus);
        b.attr_u32_be(NFTA_NG_TYPE, NFT_NG_RANDOM);
        b.attr_u32_be(NFTA_NG_OFFSET, offset);
    });
}

pub fn dnat(b: &mut MsgBuffer, nfproto: u8, addr_reg: u32, proto_reg: u32) {
    nat(b, nfproto, addr_reg, proto_reg, None);
}

fn nat(b: &mut MsgBuffer, nfproto: u8, addr_reg: u32, proto_reg: u32, flags: Option<u32>) {
    expr(b, "nat", |b| {
        b.attr_u32_be(NFTA_NAT_TYPE, NFT_NAT_DNAT);
        b.attr_u32_be(NFTA_NAT_FAMILY, nfproto as u32);
        b.attr_u32_be(NFTA_NAT_REG_ADDR_MIN, addr_reg);
        b.attr_u32_be(NFTA_NAT_REG_PROTO_MIN, proto_reg);
        if let Some(f) = flags {
            b.attr_u32_be(NFTA_NAT_FLAGS, f);
        }
    });
}

/// `fib saddr|daddr type` into `dreg`.
pub fn fib_addrtype(b: &mut MsgBuffer, flags: u32, dreg: u32) {
    expr(b, "fib", |b| {
        b.attr_u32_be(NFTA_FIB_DREG, dreg);
        b.attr_u32_be(NFTA_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
        b.attr_u32_be(NFTA_FIB_FLAGS, flags);
    });
}

pub fn immediate_data(b: &mut MsgBuffer, dreg: u32, bytes: &[u8]) {
    expr(b, "immediate", |b| {
        b.attr_u32_be(NFTA_IMMEDIATE_DREG, dreg);
        data_value(b, NFTA_IMMEDIATE_DATA, bytes);
    });
}

/// `update @set { key timeout T : data }` from the packet path.
pub fn dynset_update(b: &mut MsgBuffer, set: &str, key_reg: u32, data_reg: Option<u32>, timeout_ms: u64) {
    expr(b, "dynset", |b| {
        b.attr_str(NFTA_DYNSET_SET_NAME, set);
        b.attr_u32_be(NFTA_DYNSET_OP, NFT_DYNSET_OP_UPDATE);
        b.attr_u32_be(NFTA_DYNSET_SREG_KEY, key_reg);
        if let Some(d) = data_reg {
            b.attr_u32_be(NFTA_DYNSET_SREG_DATA, d);
        }
        if timeout_ms > 0 {
            b.attr(NFTA_DYNSET_TIMEOUT, &timeout_ms.to_be_bytes());
        }
    });
}

/// DNAT to fixed registers, with the port marked as given (as nft does for `dnat to A:P`).
pub fn dnat_specified(b: &mut MsgBuffer, nfproto: u8, addr_reg: u32, proto_reg: u32) {
    nat(b, nfproto, addr_reg, proto_reg, Some(NF_NAT_RANGE_PROTO_SPECIFIED));
}
