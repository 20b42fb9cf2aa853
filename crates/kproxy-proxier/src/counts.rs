//! Keys (table elements, Service addresses) by how many parts hold them: several
//! ServicePorts share a ClusterIP or an endpoint's hairpin element, and only the last one
//! to go takes it out of the kernel.

use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct Counts<K: Ord + Clone>(BTreeMap<K, u32>);

impl<K: Ord + Clone> Default for Counts<K> {
    fn default() -> Self {
        Self(BTreeMap::new())
    }
}

impl<K: Ord + Clone> Counts<K> {
    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn add(&mut self, k: &K) {
        *self.0.entry(k.clone()).or_insert(0) += 1;
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.0.keys()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, k: &K) -> bool {
        self.0.contains_key(k)
    }

    /// Applies one sync's net changes (per key, parts that gained it minus parts that lost
    /// it): the keys that appeared and the ones that went.
    pub fn apply(&mut self, delta: BTreeMap<K, i64>) -> (Vec<K>, Vec<K>) {
        let (mut added, mut gone) = (Vec::new(), Vec::new());
        for (k, d) in delta.into_iter().filter(|(_, d)| *d != 0) {
            let before = self.0.get(&k).copied().unwrap_or(0) as i64;
            let after = (before + d).max(0);
            if after == 0 {
                self.0.remove(&k);
            } else {
                self.0.insert(k.clone(), after as u32);
            }
            match (before, after) {
                (0, a) if a > 0 => added.push(k),
                (b, 0) if b > 0 => gone.push(k),
                _ => {}
            }
        }
        (added, gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_holder_adds_and_the_last_removes() {
        let mut c: Counts<u8> = Counts::default();
        assert_eq!(c.apply([(1, 2), (2, 1)].into()), (vec![1, 2], vec![]));
        assert_eq!(c.apply([(1, -1), (2, -1), (3, 1)].into()), (vec![3], vec![2]));
        assert_eq!(c.apply([(1, -1)].into()), (vec![], vec![1]));
        assert!(!c.contains(&1) && c.contains(&3));
    }
}
