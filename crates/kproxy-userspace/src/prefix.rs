//! An address prefix, for source checks (loadBalancerSourceRanges, the node's own pods).

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    /// The one-address prefix of `addr`.
    pub fn host(addr: IpAddr) -> Self {
        Self { addr, len: if addr.is_ipv4() { 32 } else { 128 } }
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        // An IPv4 client of an IPv6 socket arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(*ip),
            v4 => *v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(p), IpAddr::V4(a)) => mask_eq(&p.octets(), &a.octets(), self.len),
            (IpAddr::V6(p), IpAddr::V6(a)) => mask_eq(&p.octets(), &a.octets(), self.len),
            _ => false,
        }
    }
}

/// Who counts as local for a family: prefixes (the pod range) and single addresses (the
/// node's own and the Service addresses, thousands of them), looked up per new client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalSources {
    pub prefixes: Vec<Prefix>,
    pub hosts: HashSet<IpAddr>,
}

impl LocalSources {
    pub fn contains(&self, ip: &IpAddr) -> bool {
        let plain = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(*ip),
            v4 => *v4,
        };
        self.hosts.contains(&plain) || self.prefixes.iter().any(|p| p.contains(&plain))
    }
}

fn mask_eq(p: &[u8], a: &[u8], len: u8) -> bool {
    let (whole, rest) = ((len / 8) as usize, len % 8);
    if p[..whole] != a[..whole] {
        return false;
    }
    rest == 0 || (p[whole] ^ a[whole]) >> (8 - rest) == 0
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Prefix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (a, l) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a.parse().map_err(|_| format!("bad address in {s:?}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = if l.is_empty() { max } else { l.parse::<u8>().map_err(|_| format!("bad prefix length in {s:?}"))? };
        if len > max {
            return Err(format!("prefix length {len} is over {max} in {s:?}"));
        }
        Ok(Self { addr, len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_by_family_and_length() {
        let cases = [
            ("10.0.0.0/8", "10.2.3.4", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("10.1.2.0/23", "10.1.3.255", true),
            ("10.1.2.0/23", "10.1.4.0", false),
            ("0.0.0.0/0", "192.0.2.1", true),
            ("0.0.0.0/0", "2001:db8::1", false),
            ("203.0.113.7/32", "::ffff:203.0.113.7", true),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/33", "2001:db8:8000::1", false),
            ("fd00::1/128", "fd00::1", true),
        ];
        for (p, ip, want) in cases {
            let p: Prefix = p.parse().unwrap();
            assert_eq!(p.contains(&ip.parse().unwrap()), want, "{p} contains {ip}");
        }
    }

    #[test]
    fn parse_errors() {
        for bad in ["10.0.0.0/33", "x/8", "::/129", "10.0.0.0/-1"] {
            assert!(bad.parse::<Prefix>().is_err(), "{bad}");
        }
        assert_eq!("10.0.0.1".parse::<Prefix>().unwrap(), Prefix::host("10.0.0.1".parse().unwrap()));
    }
}
