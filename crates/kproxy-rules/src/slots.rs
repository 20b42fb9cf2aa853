//! Allocates blocks of consecutive keys in the shared endpoint map. A
//! ServicePort with N endpoints owns a block of capacity next_pow2(N), so
//! adding or removing an endpoint usually rewrites a few elements in place.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub offset: u32,
    pub cap: u32,
}

#[derive(Debug, Default, Clone)]
pub struct SlotAllocator {
    next: u32,
    free: HashMap<u32, Vec<u32>>,
}

pub fn capacity_for(n: usize) -> u32 {
    (n.max(1) as u32).next_power_of_two().max(2)
}

impl SlotAllocator {
    pub fn alloc(&mut self, n: usize) -> Option<Block> {
        let cap = capacity_for(n);
        if let Some(off) = self.free.get_mut(&cap).and_then(|v| v.pop()) {
            return Some(Block { offset: off, cap });
        }
        let off = self.next;
        self.next = self.next.checked_add(cap)?;
        Some(Block { offset: off, cap })
    }

    pub fn free(&mut self, b: Block) {
        self.free.entry(b.cap).or_default().push(b.offset);
    }

    /// Keeps `old` if `n` still fits it, else moves to a new block.
    pub fn resize(&mut self, old: Option<Block>, n: usize) -> Option<Block> {
        match old {
            Some(b) if n == 0 => {
                self.free(b);
                None
            }
            None if n == 0 => None,
            Some(b) if n as u32 <= b.cap => Some(b),
            Some(b) => {
                self.free(b);
                self.alloc(n)
            }
            None => self.alloc(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_do_not_overlap_and_are_reused() {
        let mut a = SlotAllocator::default();
        let b1 = a.alloc(3).unwrap();
        let b2 = a.alloc(10).unwrap();
        assert_eq!(b1, Block { offset: 0, cap: 4 });
        assert_eq!(b2, Block { offset: 4, cap: 16 });
        assert_eq!(a.resize(Some(b1), 4), Some(b1));
        let moved = a.resize(Some(b1), 5).unwrap();
        assert_eq!(moved, Block { offset: 20, cap: 8 });
        // the freed 4-block at 0 is reused for the next 3..4-endpoint service
        assert_eq!(a.alloc(3).unwrap(), Block { offset: 0, cap: 4 });
        assert_eq!(a.alloc(1).unwrap(), Block { offset: 28, cap: 2 });
    }
}
