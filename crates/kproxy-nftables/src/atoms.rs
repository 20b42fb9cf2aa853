//! Leaf values of nf_tables: families, verdicts, key fields and tuples. Depends on nothing else in the crate.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::consts::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Ip,
    Ip6,
}

impl Family {
    pub fn nfproto(self) -> u8 {
        match self {
            Family::Ip => NFPROTO_IPV4,
            Family::Ip6 => NFPROTO_IPV6,
        }
    }
    /// The family keyword in nft syntax, also the address-match prefix (`ip daddr`, `ip6 daddr`).
    pub fn keyword(self) -> &'static str {
        match self {
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
        }
    }
    pub fn addr_len(self) -> usize {
        match self {
            Family::Ip => 4,
            Family::Ip6 => 16,
        }
    }
    pub fn of(ip: &IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::Ip
        } else {
            Family::Ip6
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    Accept,
    Drop,
    Return,
    Jump(String),
    Goto(String),
}

impl Verdict {
    pub fn code(&self) -> i32 {
        match self {
            Verdict::Accept => NF_ACCEPT,
            Verdict::Drop => NF_DROP,
            Verdict::Return => NFT_RETURN,
            Verdict::Jump(_) => NFT_JUMP,
            Verdict::Goto(_) => NFT_GOTO,
        }
    }
    pub fn chain(&self) -> Option<&str> {
        match self {
            Verdict::Jump(c) | Verdict::Goto(c) => Some(c),
            _ => None,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Accept => f.write_str("accept"),
            Verdict::Drop => f.write_str("drop"),
            Verdict::Return => f.write_str("return"),
            Verdict::Jump(c) => write!(f, "jump {c}"),
            Verdict::Goto(c) => write!(f, "goto {c}"),
        }
    }
}

/// One field of a set key or map value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Val {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
    /// An IP protocol number (inet_proto).
    Proto(u8),
    /// A transport port (inet_service), big-endian on the wire.
    Port(u16),
    /// A host-endian 32-bit integer (numgen output).
    Int(u32),
}

impl Val {
    pub fn ip(ip: IpAddr) -> Val {
        match ip {
            IpAddr::V4(a) => Val::V4(a),
            IpAddr::V6(a) => Val::V6(a),
        }
    }
    /// Appends the wire bytes; in a concatenation every field is padded to 4 bytes.
    pub fn put(&self, out: &mut Vec<u8>, pad: bool) {
        let start = out.len();
        match self {
            Val::V4(a) => out.extend_from_slice(&a.octets()),
            Val::V6(a) => out.extend_from_slice(&a.octets()),
            Val::Proto(p) => out.push(*p),
            Val::Port(p) => out.extend_from_slice(&p.to_be_bytes()),
            Val::Int(i) => out.extend_from_slice(&i.to_ne_bytes()),
        }
        if pad {
            let n = (out.len() - start + 3) & !3;
            out.resize(start + n, 0);
        }
    }
}

pub fn proto_name(p: u8) -> Option<&'static str> {
    match p {
        6 => Some("tcp"),
        17 => Some("udp"),
        132 => Some("sctp"),
        _ => None,
    }
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::V4(a) => write!(f, "{a}"),
            Val::V6(a) => write!(f, "{a}"),
            Val::Proto(p) => match proto_name(*p) {
                Some(n) => f.write_str(n),
                None => write!(f, "{p}"),
            },
            Val::Port(p) => write!(f, "{p}"),
            Val::Int(i) => write!(f, "{i}"),
        }
    }
}

/// A key or value of up to five fields, stored inline: a full sync builds
/// hundreds of thousands of them, and this keeps them off the heap.
#[derive(Clone, Copy)]
pub struct Tuple {
    len: u8,
    vals: [Val; 5],
}

impl Tuple {
    pub const MAX: usize = 5;

    /// Panics on more than five fields: every set kproxy defines has at most five.
    pub fn new(vals: &[Val]) -> Tuple {
        assert!(vals.len() <= Self::MAX, "tuple of {} fields", vals.len());
        let mut t = Tuple { len: vals.len() as u8, vals: [Val::Int(0); 5] };
        t.vals[..vals.len()].copy_from_slice(vals);
        t
    }

    pub fn with(mut self, v: Val) -> Tuple {
        assert!((self.len as usize) < Self::MAX, "tuple full");
        self.vals[self.len as usize] = v;
        self.len += 1;
        self
    }

    /// This tuple followed by `rest`'s fields.
    pub fn extend_from(self, rest: &[Val]) -> Tuple {
        rest.iter().fold(self, |t, v| t.with(*v))
    }

    pub fn as_slice(&self) -> &[Val] {
        &self.vals[..self.len as usize]
    }
}

impl std::ops::Deref for Tuple {
    type Target = [Val];
    fn deref(&self) -> &[Val] {
        self.as_slice()
    }
}

impl PartialEq for Tuple {
    fn eq(&self, o: &Self) -> bool {
        self.as_slice() == o.as_slice()
    }
}
impl Eq for Tuple {}
impl PartialOrd for Tuple {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Tuple {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.as_slice().cmp(o.as_slice())
    }
}
impl std::hash::Hash for Tuple {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_slice().hash(h)
    }
}
impl fmt::Debug for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// Encodes a key or value tuple as the kernel expects it.
pub fn encode_vals(vals: &[Val]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    put_vals(&mut out, vals);
    out
}

pub fn put_vals(out: &mut Vec<u8>, vals: &[Val]) {
    let concat = vals.len() > 1;
    for v in vals {
        v.put(out, concat);
    }
}

pub fn render_vals(vals: &[Val]) -> String {
    vals.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(" . ")
}
