//! Upstream's chain and set names for per-ServicePort objects:
//! `<prefix>HASH8-ns/svc/proto/port`, HASH8 the first 8 characters of
//! base32(sha256(name)), truncated to upstream's length limit.

use std::net::IpAddr;

use sha2::{Digest, Sha256};

/// Upstream's chainNameBaseLengthMax: 256 (NFT_NAME_MAXLEN) minus room for the longest prefix.
const BASE_MAX: usize = 240;
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The first 8 base32 characters (40 bits) of sha256(s).
fn hash8(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    let bits = d[..5].iter().fold(0u64, |acc, b| (acc << 8) | *b as u64);
    (0..8).map(|i| BASE32[((bits >> (35 - 5 * i)) & 31) as usize] as char).collect()
}

/// Upstream's hashAndTruncate.
fn hash_and_truncate(name: &str) -> String {
    let mut out = format!("{}-{name}", hash8(name));
    if out.len() > BASE_MAX {
        let mut cut = BASE_MAX - 3;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
    }
    out
}

/// `HASH-ns/svc/proto/port` for a ServicePort key (`ns/svc/proto/port`).
pub fn service_base(key: &str) -> String {
    hash_and_truncate(key)
}

/// `HASH-ns/svc/proto/port__10.0.0.1/80`; in IPv6 addresses `:` becomes `.`, as upstream.
pub fn endpoint_base(key: &str, ip: IpAddr, port: u16) -> String {
    let ip = ip.to_string().replace(':', ".");
    hash_and_truncate(&format!("{key}__{ip}/{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_upstreams_test_data() {
        // From upstream's pkg/proxy/nftables/proxier_test.go expectations.
        assert_eq!(service_base("ns1/svc1/tcp/p80"), "ULMVA6XW-ns1/svc1/tcp/p80");
        assert_eq!(service_base("ns2/svc2/tcp/p80"), "42NFTM6N-ns2/svc2/tcp/p80");
        assert_eq!(service_base("ns5/svc5/tcp/p80"), "HVFWP5L3-ns5/svc5/tcp/p80");
        assert_eq!(endpoint_base("ns1/svc1/tcp/p80", "10.180.0.1".parse().unwrap(), 80), "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80");
        let long = "n".repeat(300);
        let b = service_base(&long);
        assert_eq!(b.len(), BASE_MAX);
        assert!(b.ends_with("..."));
    }
}
