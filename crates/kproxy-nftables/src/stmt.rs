//! Rule statements: the only way rules are written. Each renders to nft text
//! and to netlink expressions, so both stay in step by construction. They are
//! generic nf_tables building blocks; kproxy's rule shapes are composed from
//! them in the proxier crate.

use std::fmt::Write as _;

use kproxy_netlink::MsgBuffer;

use std::net::IpAddr;

use crate::atoms::{proto_name, Family, Val, Verdict};
use crate::cidr::Cidr;
use crate::consts::*;
use crate::expr;

/// A value a statement loads into a register: a header field, a connection's
/// original destination, a generated number, or a constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    /// `ip saddr` / `ip6 saddr`
    Saddr,
    /// `ip daddr` / `ip6 daddr`
    Daddr,
    /// `meta l4proto`
    L4Proto,
    /// `th dport`
    Dport,
    /// `ct original ip daddr`: the destination before DNAT.
    CtOrigDaddr,
    /// `ct original proto-dst`: the port before DNAT (nft needs a `meta l4proto` match first).
    CtOrigProtoDst,
    /// `numgen random mod N`
    NumgenRandom(u32),
    /// A constant (`update` keys may hold them; nft refuses them in lookup keys).
    Value(Val),
}

impl Field {
    /// Bytes the field occupies in a register (before 4-byte padding).
    pub fn len(self, f: Family) -> usize {
        match self {
            Field::Saddr | Field::Daddr | Field::CtOrigDaddr => f.addr_len(),
            Field::L4Proto => 1,
            Field::Dport | Field::CtOrigProtoDst => 2,
            Field::NumgenRandom(_) => 4,
            Field::Value(v) => {
                let mut b = Vec::new();
                v.put(&mut b, false);
                b.len()
            }
        }
    }

    fn render(self, f: Family, out: &mut String) {
        let ip = f.keyword();
        let _ = match self {
            Field::Saddr => write!(out, "{ip} saddr"),
            Field::Daddr => write!(out, "{ip} daddr"),
            Field::L4Proto => write!(out, "meta l4proto"),
            Field::Dport => write!(out, "th dport"),
            Field::CtOrigDaddr => write!(out, "ct original {ip} daddr"),
            Field::CtOrigProtoDst => write!(out, "ct original proto-dst"),
            Field::NumgenRandom(n) => write!(out, "numgen random mod {n}"),
            // A protocol by number: nft reads `tcp` here as the start of a `tcp …` match.
            Field::Value(Val::Proto(p)) => write!(out, "{p}"),
            Field::Value(v) => write!(out, "{v}"),
        };
    }

    fn encode(self, f: Family, b: &mut MsgBuffer, reg: u32) {
        match self {
            Field::Saddr => expr::payload(b, NFT_PAYLOAD_NETWORK_HEADER, saddr_offset(f), f.addr_len() as u32, reg),
            Field::Daddr => expr::payload(b, NFT_PAYLOAD_NETWORK_HEADER, daddr_offset(f), f.addr_len() as u32, reg),
            Field::L4Proto => expr::meta_load(b, NFT_META_L4PROTO, reg),
            Field::Dport => expr::payload(b, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, reg),
            Field::CtOrigDaddr => expr::ct_load_original(b, if f == Family::Ip { NFT_CT_DST_IP } else { NFT_CT_DST_IP6 }, reg),
            Field::CtOrigProtoDst => expr::ct_load_original(b, NFT_CT_PROTO_DST, reg),
            Field::NumgenRandom(n) => expr::numgen_random(b, reg, n, 0),
            Field::Value(v) => {
                let mut bytes = Vec::new();
                v.put(&mut bytes, false);
                expr::immediate_data(b, reg, &bytes);
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stmt {
    /// `ct state new`
    CtStateNew,
    /// `ct status dnat`
    CtStatusDnat,
    /// `meta l4proto tcp`
    L4Proto(u8),
    /// `th dport 80` (after `meta l4proto`, as nft needs)
    DportIs(u16),
    /// `ip saddr 10.0.0.0/8`, `ip daddr != 127.0.0.0/8`: an address field (Saddr or Daddr) in a prefix.
    AddrIn {
        field: Field,
        cidr: Cidr,
        negate: bool,
    },
    /// `fib saddr type local` / `fib daddr type local`: the address is one of the node's own.
    FibLocal {
        daddr: bool,
    },
    /// `iifname "br0"`, or with `prefix` `iifname "veth*"`; `negate`: `iifname != ...`.
    IifName {
        name: String,
        prefix: bool,
        negate: bool,
    },
    /// `update @set { ip saddr . tcp . 10.96.0.1 . 80 timeout 10800s : ip daddr . th dport }`:
    /// adds the key with `data` if absent (an existing element keeps its data) and restarts
    /// its timeout.
    UpdateSet {
        set: String,
        key: Vec<Field>,
        timeout_s: u32,
        /// None for a plain set.
        data: Option<Vec<Field>>,
    },
    /// `dnat to 10.0.0.1:80` (after `meta l4proto`).
    DnatTo {
        addr: IpAddr,
        port: u16,
    },
    /// `ip saddr . ip daddr @set`: the concatenated fields are in the set.
    InSet {
        fields: Vec<Field>,
        set: String,
    },
    /// `ip daddr . meta l4proto . th dport vmap @map`
    Vmap {
        fields: Vec<Field>,
        map: String,
    },
    /// `dnat to ip daddr . th dport map @map`: the map's value is `address . port`.
    DnatMap {
        fields: Vec<Field>,
        map: String,
    },
    /// `mark and 0x4000 == 0`
    MarkBitsClear(u32),
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

fn render_fields(f: Family, fields: &[Field], out: &mut String) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push_str(" . ");
        }
        field.render(f, out);
    }
}

/// Loads the fields into consecutive registers from R0, as nft lays out a concatenation.
fn encode_fields(f: Family, fields: &[Field], b: &mut MsgBuffer) {
    let mut reg = R0;
    for field in fields {
        field.encode(f, b, reg);
        reg = reg_after(reg, field.len(f));
    }
}

impl Stmt {
    pub fn render(&self, f: Family, out: &mut String) {
        let _ = match self {
            Stmt::CtStateNew => write!(out, "ct state new"),
            Stmt::CtStatusDnat => write!(out, "ct status dnat"),
            Stmt::L4Proto(p) => match proto_name(*p) {
                Some(n) => write!(out, "meta l4proto {n}"),
                None => write!(out, "meta l4proto {p}"),
            },
            Stmt::DportIs(p) => write!(out, "th dport {p}"),
            Stmt::AddrIn { field, cidr, negate } => {
                field.render(f, out);
                write!(out, "{}{cidr}", if *negate { " != " } else { " " })
            }
            Stmt::FibLocal { daddr } => write!(out, "fib {} type local", if *daddr { "daddr" } else { "saddr" }),
            Stmt::IifName { name, prefix, negate } => {
                write!(out, "iifname {}\"{name}{}\"", if *negate { "!= " } else { "" }, if *prefix { "*" } else { "" })
            }
            Stmt::UpdateSet { set, key, timeout_s, data } => {
                write!(out, "update @{set} {{ ").ok();
                render_fields(f, key, out);
                write!(out, " timeout {timeout_s}s").ok();
                if let Some(d) = data {
                    out.push_str(" : ");
                    render_fields(f, d, out);
                }
                write!(out, " }}")
            }
            Stmt::DnatTo { addr: IpAddr::V6(a), port } => write!(out, "dnat to [{a}]:{port}"),
            Stmt::DnatTo { addr, port } => write!(out, "dnat to {addr}:{port}"),
            Stmt::InSet { fields, set } => {
                render_fields(f, fields, out);
                write!(out, " @{set}")
            }
            Stmt::Vmap { fields, map } => {
                render_fields(f, fields, out);
                write!(out, " vmap @{map}")
            }
            Stmt::DnatMap { fields, map } => {
                out.push_str("dnat to ");
                render_fields(f, fields, out);
                write!(out, " map @{map}")
            }
            Stmt::MarkBitsClear(m) => write!(out, "mark and {m:#x} == 0"),
            Stmt::MarkOr(m) => write!(out, "mark set mark or {m:#x}"),
            Stmt::MarkXor(m) => write!(out, "mark set mark xor {m:#x}"),
            Stmt::MasqueradeFullyRandom => write!(out, "masquerade fully-random"),
            Stmt::RejectTcpReset => write!(out, "reject with tcp reset"),
            Stmt::Reject => write!(out, "reject"),
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
            Stmt::DportIs(p) => {
                expr::payload(b, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, R0);
                expr::cmp(b, R0, NFT_CMP_EQ, &p.to_be_bytes());
            }
            Stmt::AddrIn { field, cidr: c, negate } => {
                // The kernel refuses a zero-length load or compare: callers never build a /0
                // match (it would be "always" or "never"; see kproxy-proxier's nftables layout).
                debug_assert!(c.prefix > 0, "AddrIn with a /0 prefix");
                let offset = if *field == Field::Daddr { daddr_offset(f) } else { saddr_offset(f) };
                let op = if *negate { NFT_CMP_NEQ } else { NFT_CMP_EQ };
                // As nft does: a byte-aligned prefix loads just its bytes; any other loads the
                // whole address and masks it.
                if c.prefix % 8 == 0 {
                    let n = c.prefix as usize / 8;
                    expr::payload(b, NFT_PAYLOAD_NETWORK_HEADER, offset, n as u32, R0);
                    expr::cmp(b, R0, op, &c.network_bytes()[..n]);
                } else {
                    expr::payload(b, NFT_PAYLOAD_NETWORK_HEADER, offset, alen as u32, R0);
                    expr::bitwise(b, R0, &c.mask_bytes(), &vec![0; alen]);
                    expr::cmp(b, R0, op, &c.network_bytes());
                }
            }
            Stmt::FibLocal { daddr } => {
                expr::fib_addrtype(b, if *daddr { NFTA_FIB_F_DADDR } else { NFTA_FIB_F_SADDR }, R0);
                expr::cmp(b, R0, NFT_CMP_EQ, &RTN_LOCAL.to_ne_bytes());
            }
            Stmt::IifName { name, prefix, negate } => {
                expr::meta_load(b, NFT_META_IIFNAME, R0);
                let mut bytes = name.as_bytes().to_vec();
                if !*prefix {
                    bytes.resize(IFNAMSIZ, 0);
                }
                expr::cmp(b, R0, if *negate { NFT_CMP_NEQ } else { NFT_CMP_EQ }, &bytes);
            }
            Stmt::UpdateSet { set, key, timeout_s, data } => {
                encode_fields(f, key, b);
                // As nft does, the data starts at the next 16-byte register after the key's;
                // where that would overrun the registers (IPv6), right after the key.
                let words = |fs: &[Field]| fs.iter().map(|k| k.len(f).div_ceil(4)).sum::<usize>() as u32;
                let key_words = words(key);
                let data_words = data.as_deref().map_or(0, words);
                let aligned = key_words.div_ceil(4) * 4;
                let data_reg = R0 + if aligned + data_words <= 16 { aligned } else { key_words };
                debug_assert!(data_reg - R0 + data_words <= 16, "update key and data overrun the 16 registers");
                if let Some(d) = data {
                    let mut reg = data_reg;
                    for field in d {
                        field.encode(f, b, reg);
                        reg = reg_after(reg, field.len(f));
                    }
                }
                expr::dynset_update(b, set, R0, data.is_some().then_some(data_reg), *timeout_s as u64 * 1000);
            }
            Stmt::DnatTo { addr, port } => {
                let mut a = Vec::new();
                Val::ip(*addr).put(&mut a, false);
                expr::immediate_data(b, R0, &a);
                // nft keeps the port in the next 16-byte register.
                let preg = R0 + alen.div_ceil(16) as u32 * 4;
                expr::immediate_data(b, preg, &port.to_be_bytes());
                expr::dnat_specified(b, f.nfproto(), R0, preg);
            }
            Stmt::InSet { fields, set } => {
                encode_fields(f, fields, b);
                expr::lookup(b, set, R0, None);
            }
            Stmt::Vmap { fields, map } => {
                encode_fields(f, fields, b);
                expr::lookup(b, map, R0, Some(NFT_REG_VERDICT));
            }
            Stmt::DnatMap { fields, map } => {
                encode_fields(f, fields, b);
                expr::lookup(b, map, R0, Some(R0));
                expr::dnat(b, f.nfproto(), R0, reg_after(R0, alen));
            }
            Stmt::MarkBitsClear(m) => {
                expr::meta_load(b, NFT_META_MARK, R0);
                expr::bitwise(b, R0, &m.to_ne_bytes(), &[0; 4]);
                expr::cmp(b, R0, NFT_CMP_EQ, &[0; 4]);
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
            Stmt::InSet { set, .. } | Stmt::UpdateSet { set, .. } => Some(set),
            Stmt::Vmap { map, .. } | Stmt::DnatMap { map, .. } => Some(map),
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
