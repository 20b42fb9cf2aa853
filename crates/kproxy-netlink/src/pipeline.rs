//! Many requests in flight on one socket, one ack each: the sequence numbers that tell
//! their answers apart, and the tally of those answers.

use crate::{messages, NlMsgError, NLMSG_ERROR};

/// Sequence numbers for requests of `n` messages; a block never wraps through 0 (which
/// the kernel's own notifications use).
pub struct Seq(u32);

impl Seq {
    pub fn new(first: u32) -> Self {
        Self(first.max(1))
    }

    /// The first of `n` consecutive numbers.
    pub fn next(&mut self, n: usize) -> u32 {
        let n = n.max(1) as u32;
        if self.0.checked_add(n).is_none() {
            self.0 = 1;
        }
        let s = self.0;
        self.0 += n;
        s
    }
}

/// The acks of requests with sequence numbers first..first+len, one result each: Ok, or
/// the positive errno the kernel answered.
pub struct AckTally {
    first: u32,
    results: Vec<Option<Result<(), i32>>>,
    pub pending: usize,
}

impl AckTally {
    pub fn new(first: u32, len: usize) -> Self {
        Self { first, results: vec![None; len], pending: len }
    }

    pub fn feed(&mut self, dgram: &[u8]) {
        for m in messages(dgram) {
            let at = m.seq.wrapping_sub(self.first) as usize;
            if m.ty != NLMSG_ERROR || at >= self.results.len() || self.results[at].is_some() {
                continue;
            }
            let Some(e) = NlMsgError::parse(&m) else { continue };
            self.results[at] = Some(if e.errno == 0 { Ok(()) } else { Err(e.errno) });
            self.pending -= 1;
        }
    }

    /// The results in request order; None while acks are pending.
    pub fn results(self) -> Option<Vec<Result<(), i32>>> {
        self.results.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_blocks_never_wrap_through_zero() {
        let mut s = Seq::new(u32::MAX - 2);
        assert_eq!(s.next(2), u32::MAX - 2);
        assert_eq!(s.next(5), 1, "a block that would wrap starts again at 1");
        assert_eq!(s.next(1), 6);
        assert_eq!(Seq::new(0).next(1), 1);
    }
}
