//! The planner's collections on the hot path of a full sync, which gathers a few
//! hundred thousand elements into a handful of sets.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use kproxy_nftables::{Element, Tuple};

/// Lists per set, in set-name order. There are a couple of dozen sets and their names
/// are constants, so a scan by address beats a tree of string compares.
pub struct PerSet<T>(Vec<(&'static str, Vec<T>)>);

impl<T> Default for PerSet<T> {
    fn default() -> Self {
        PerSet(Vec::new())
    }
}

impl<T> PerSet<T> {
    fn index(&self, set: &str) -> Option<usize> {
        let by_address = self.0.iter().position(|(n, _)| std::ptr::eq(*n, set));
        by_address.or_else(|| self.0.iter().position(|(n, _)| *n == set))
    }

    pub fn entry(&mut self, set: &'static str) -> &mut Vec<T> {
        let i = match self.index(set) {
            Some(i) => i,
            None => {
                let i = self.0.partition_point(|(n, _)| *n < set);
                self.0.insert(i, (set, Vec::new()));
                i
            }
        };
        &mut self.0[i].1
    }

    pub fn get(&self, set: &str) -> Option<&Vec<T>> {
        self.index(set).map(|i| &self.0[i].1)
    }

    pub fn get_mut(&mut self, set: &str) -> Option<&mut Vec<T>> {
        self.index(set).map(|i| &mut self.0[i].1)
    }

    pub fn drop_empty(&mut self) {
        self.0.retain(|(_, v)| !v.is_empty());
    }

    /// The lists, in set-name order.
    pub fn take(&mut self) -> Vec<(&'static str, Vec<T>)> {
        std::mem::take(&mut self.0)
    }
}

/// The element changes of one transaction, by set.
#[derive(Default)]
pub struct ElementOps {
    pub adds: PerSet<Element>,
    pub dels: PerSet<Tuple>,
}

impl ElementOps {
    pub fn add(&mut self, set: &'static str, e: Element) {
        self.adds.entry(set).push(e);
    }
    pub fn del(&mut self, set: &'static str, key: Tuple) {
        self.dels.entry(set).push(key);
    }
    pub fn net_change(&self, set: &str) -> isize {
        self.adds.get(set).map_or(0, |v| v.len() as isize) - self.dels.get(set).map_or(0, |v| v.len() as isize)
    }
}

/// A multiply-rotate hasher for the planner's address reference counts. SipHash's
/// flood resistance buys nothing here: the addresses come from the API server.
#[derive(Default)]
pub struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    /// Mixes the high bits down: the table indexes by the low ones, and a product's low
    /// bits depend only on its inputs' low bits (the first octets, shared by a whole range).
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

pub type RefCounts = HashMap<IpAddr, usize, BuildHasherDefault<AddrHasher>>;

/// Counts one more reference; true for the first.
pub fn bump(refs: &mut RefCounts, ip: IpAddr) -> bool {
    let n = refs.entry(ip).or_insert(0);
    *n += 1;
    *n == 1
}

/// Counts one reference less; true when the last one went.
pub fn unbump(refs: &mut RefCounts, ip: IpAddr) -> bool {
    match refs.get_mut(&ip) {
        Some(n) if *n > 1 => {
            *n -= 1;
            false
        }
        Some(_) => {
            refs.remove(&ip);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_come_out_in_set_name_order_whatever_the_insert_order() {
        let mut p = PerSet::<u32>::default();
        for (set, v) in [("b", 1), ("a", 2), ("c", 3), ("b", 4)] {
            p.entry(set).push(v);
        }
        assert_eq!(p.get(&String::from("b")), Some(&vec![1, 4]), "found by value, not only by address");
        assert_eq!(p.take(), vec![("a", vec![2]), ("b", vec![1, 4]), ("c", vec![3])]);
    }

    #[test]
    fn reference_counts_say_first_and_last() {
        let mut r = RefCounts::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(bump(&mut r, ip));
        assert!(!bump(&mut r, ip));
        assert!(!unbump(&mut r, ip));
        assert!(unbump(&mut r, ip));
        assert!(!unbump(&mut r, ip));
    }
}
