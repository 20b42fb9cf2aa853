//! Upstream's chain names: `service-HASH8-ns/svc/proto/port`, where HASH8 is
//! the first 8 characters of base32(sha256(base)), so `nft list` output reads
//! the same as under kube-proxy.

use sha2::{Digest, Sha256};

/// Longest base (hash + name) before truncation, leaving room for a 16-byte prefix in 256.
const CHAIN_BASE_MAX: usize = 240;
const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn base32_prefix8(bytes: &[u8]) -> String {
    // 8 base32 characters carry 40 bits: the first 5 bytes.
    let mut v: u64 = 0;
    for b in &bytes[..5] {
        v = (v << 8) | *b as u64;
    }
    (0..8).rev().map(|i| B32[((v >> (i * 5)) & 31) as usize] as char).collect()
}

pub fn hash_and_truncate(base: &str) -> String {
    let digest = Sha256::digest(base.as_bytes());
    let mut name = format!("{}-{}", base32_prefix8(&digest), base);
    if name.len() > CHAIN_BASE_MAX {
        let mut cut = CHAIN_BASE_MAX - 3;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
        name.push_str("...");
    }
    name
}

/// The per-ServicePort chain (Cluster traffic policy).
pub fn service_chain(key: &str) -> String {
    format!("service-{}", hash_and_truncate(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc4648() {
        // base32("foobar") = MZXW6YTBOI======; its first 8 chars cover the first 5 bytes.
        assert_eq!(base32_prefix8(b"fooba"), "MZXW6YTB");
    }

    #[test]
    fn names_are_hashed_and_bounded() {
        let n = service_chain("ns1/svc1/tcp/p80");
        assert!(n.starts_with("service-"));
        assert!(n.ends_with("-ns1/svc1/tcp/p80"));
        assert_eq!(n.len(), "service-".len() + 8 + 1 + "ns1/svc1/tcp/p80".len());
        let long = service_chain(&format!("ns/{}/tcp/p", "a".repeat(400)));
        assert!(long.len() <= 8 + 240 && long.ends_with("..."));
    }
}
