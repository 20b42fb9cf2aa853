//! Rule statements: the only way rules are written. Each renders to nft
//! text and to netlink expressions, so both stay in step by construction.

use std::fmt::Write as _;
use std::net::IpAddr;

use kproxy_netlink::MsgBuffer;

use crate::cidr::Cidr;
use crate::consts::*;
use crate::expr;
use crate::types::{proto_name, Family, Verdict};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stmt {
    /// `ct state new`
    CtStateNew,
    /// `ct status dnat`
    CtStatusDnat,
    /// `meta l4proto tcp`
    L4Proto(u8),
    /// `ip saddr != 10.0.0.0/8`
    SaddrNotIn(Cidr),
    /// `ip daddr @set`
    DaddrIn(String),
    /// `ip saddr . ip daddr @set`
    SaddrDaddrIn(String),
    /// `mark and 0x4000 == 0`
    MarkBitsClear(u32),
    /// `ip daddr . meta l4proto . th dport vmap @map`
    DaddrProtoPortVmap(String),
    /// `mark set mark or 0x4000`
    MarkOr(u32),
    /// `mark set mark xor 0x4000`
    MarkXor(u32),
    /// `masquerade fully-random`
    MasqueradeFullyRandom,
    /// `reject with tcp reset`
    RejectTcpReset,
    /// `reject` (ICMP / ICMPv6 port unreachable)
    Reject,
    /// `dnat to ip daddr . meta l4proto . th dport . numgen random mod N map @map`:
    /// picks slot 0..N-1 of the destination ServicePort in a shared map.
    DnatSlot {
        modulus: u32,
        map: String,
    },
    Verdict(Verdict),
}

const R0: u32 = NFT_REG32_00;

fn reg_after(reg: u32, len: usize) -> u32 {
    reg + len.div_ceil(4) as u32
}

fn daddr_offset(f: Family) -> u32 {
    match f {
        Family::Ip => 16,
        Family::Ip6 => 24,
    }
}

fn saddr_offset(f: Family) -> u32 {
    match f {
        Family::Ip => 12,
        Family::Ip6 => 8,
    }
}

impl Stmt {
    pub fn render(&self, f: Family, out: &mut String) {
        let ip = f.keyword();
        let _ = match self {
            Stmt::CtStateNew => write!(out, "ct state new"),
            Stmt::CtStatusDnat => write!(out, "ct status dnat"),
            Stmt::L4Proto(p) => match proto_name(*p) {
                Some(n) => write!(out, "meta l4proto {n}"),
                None => write!(out, "meta l4proto {p}"),
            },
            Stmt::SaddrNotIn(c) => write!(out, "{ip} saddr != {c}"),
            Stmt::DaddrIn(s) => write!(out, "{ip} daddr @{s}"),
            Stmt::SaddrDaddrIn(s) => write!(out, "{ip} saddr . {ip} daddr @{s}"),
            Stmt::MarkBitsClear(m) => write!(out, "mark and {m:#x} == 0"),
            Stmt::DaddrProtoPortVmap(m) => write!(out, "{ip} daddr . meta l4proto . th dport vmap @{m}"),
            Stmt::MarkOr(m) => write!(out, "mark set mark or {m:#x}"),
            Stmt::MarkXor(m) => write!(out, "mark set mark xor {m:#x}"),
            Stmt::MasqueradeFullyRandom => write!(out, "masquerade fully-random"),
            Stmt::RejectTcpReset => write!(out, "reject with tcp reset"),
            Stmt::Reject => write!(out, "reject"),
            Stmt::DnatSlot { modulus, map } => {
                write!(out, "dnat to {ip} daddr . meta l4proto . th dport . numgen random mod {modulus} map @{map}")
            }
            Stmt::Verdict(v) => write!(out, "{v}"),
        };
    }

    pub fn encode(&self, f: Family, b: &mut MsgBuffer) {
        let alen = f.addr_len();
        match self {
            Stmt::CtStateNew => {
                expr::ct_load(b, NFT_CT_STATE, R0);
                expr::bitwise(b, R0, &CT_STATE_NEW.to_ne_bytes(), &[0; 4]);
                expr::cmp(b, R0, NFT_CMP_NEQ, &[0; 4]);
            }
            Stmt::CtStatusDnat => {
                expr::ct_load(b, NFT_CT_STATUS, R0);
                expr::bitwise(b, R0, &CT_STATUS_DNAT.to_ne_bytes(), &[0; 4]);
                expr::cmp(b, R0, NFT_CMP_NEQ, &[0; 4]);
            }
            Stmt::L4Proto(p) => {
                expr::meta_load(b, NFT_META_L4PROTO, R0);
                expr::cmp(b, R0, NFT_CMP_EQ, &[*p]);
            }
            Stmt::SaddrNotIn(c) => {
                // As nft does: a byte-aligned prefix loads just its bytes; any other loads the
                // whole address and masks it.
                if c.prefix % 8 == 0 {
                    let n = c.prefix as usize / 8;
                    expr::payload(b, NFT_PAYLOAD_NETWORK_HEADER, saddr_offset(f), n as u32, R0);
                    expr::cmp(b, R0, NFT_CMP_NEQ, &c.network_bytes()[..n]);
                } else {
                    expr::payload(b, NFT_PAYLOAD_NETWORK_HEADER, saddr_offset(f), alen as u32, R0);
                    expr::bitwise(b, R0, &c.mask_bytes(), &vec![0; alen]);
                    expr::cmp(b, R0, NFT_CMP_NEQ, &c.network_bytes());
                }
            }
            Stmt::DaddrIn(s) => {
                expr::payload(b, NFT_PAYLOAD_NETWORK_HEADER, daddr_offset(f), alen as u32, R0);
                expr::lookup(b, s, R0, None);
            }
            Stmt::SaddrDaddrIn(s) => {
                let r1 = reg_after(R0, alen);
                expr::payload(b, NFT_PAYLOAD_NETWORK_HEADER, saddr_offset(f), alen as u32, R0);
                expr::payload(b, NFT_PAYLOAD_NETWORK_HEADER, daddr_offset(f), alen as u32, r1);
                expr::lookup(b, s, R0, None);
            }
            Stmt::MarkBitsClear(m) => {
                expr::meta_load(b, NFT_META_MARK, R0);
                expr::bitwise(b, R0, &m.to_ne_bytes(), &[0; 4]);
                expr::cmp(b, R0, NFT_CMP_EQ, &[0; 4]);
            }
            Stmt::DaddrProtoPortVmap(m) => {
                let r1 = reg_after(R0, alen);
                let r2 = r1 + 1;
                expr::payload(b, NFT_PAYLOAD_NETWORK_HEADER, daddr_offset(f), alen as u32, R0);
                expr::meta_load(b, NFT_META_L4PROTO, r1);
                expr::payload(b, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, r2);
                expr::lookup(b, m, R0, Some(NFT_REG_VERDICT));
            }
            Stmt::MarkOr(m) => {
                expr::meta_load(b, NFT_META_MARK, R0);
                expr::bitwise(b, R0, &(!m).to_ne_bytes(), &m.to_ne_bytes());
                expr::meta_set(b, NFT_META_MARK, R0);
            }
            Stmt::MarkXor(m) => {
                expr::meta_load(b, NFT_META_MARK, R0);
                expr::bitwise(b, R0, &u32::MAX.to_ne_bytes(), &m.to_ne_bytes());
                expr::meta_set(b, NFT_META_MARK, R0);
            }
            Stmt::MasqueradeFullyRandom => expr::masq(b, NF_NAT_RANGE_PROTO_RANDOM_FULLY),
            Stmt::RejectTcpReset => expr::reject(b, NFT_REJECT_TCP_RST, 0),
            Stmt::Reject => {
                let code = if f == Family::Ip { ICMP_PORT_UNREACH } else { ICMPV6_PORT_UNREACH };
                expr::reject(b, NFT_REJECT_ICMP_UNREACH, code)
            }
            Stmt::DnatSlot { modulus, map } => {
                let r1 = reg_after(R0, alen);
                expr::payload(b, NFT_PAYLOAD_NETWORK_HEADER, daddr_offset(f), alen as u32, R0);
                expr::meta_load(b, NFT_META_L4PROTO, r1);
                expr::payload(b, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, r1 + 1);
                expr::numgen_random(b, r1 + 2, *modulus, 0);
                expr::lookup(b, map, R0, Some(R0));
                expr::dnat(b, f.nfproto(), R0, reg_after(R0, alen));
            }
            Stmt::Verdict(v) => expr::immediate_verdict(b, v),
        }
    }

    /// Chains this statement refers to (for reference checks).
    pub fn chain_ref(&self) -> Option<&str> {
        match self {
            Stmt::Verdict(v) => v.chain(),
            _ => None,
        }
    }

    /// Sets and maps this statement refers to.
    pub fn set_ref(&self) -> Option<&str> {
        match self {
            Stmt::DaddrIn(s) | Stmt::SaddrDaddrIn(s) | Stmt::DaddrProtoPortVmap(s) => Some(s),
            Stmt::DnatSlot { map, .. } => Some(map),
            _ => None,
        }
    }
}

pub fn render_rule(f: Family, stmts: &[Stmt]) -> String {
    let mut out = String::new();
    for (i, s) in stmts.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        s.render(f, &mut out);
    }
    out
}

/// Is `ip` in the family `f`?
pub fn same_family(f: Family, ip: &IpAddr) -> bool {
    Family::of(ip) == f
}
