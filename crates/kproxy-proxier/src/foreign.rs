//! Did anyone else change our tables? Shared by every family's syncer in the
//! process, so that one family's commits never look foreign to the other.
//!
//! The nf_tables monitor group (what `nft monitor` reads) says which tables
//! each batch touched and, through the sender's port id, whether the batch
//! was ours: a commit by a CNI or firewalld to its own table leaves ours
//! alone and keeps syncs partial. During our own full replace the monitor is
//! paused (the kernel would build one notification per element); generations
//! that pass while it is paused and are not ours count as changes to every
//! kproxy table. Without a monitor, a ledger of the generations our batches
//! produced decides: any other generation counts as a change.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Mutex, MutexGuard, OnceLock};

use kproxy_nftables::{Family, Monitor};

/// Own generations kept; older ones no syncer can still ask about.
const KEEP_GENERATIONS: usize = 4096;

#[derive(Default)]
struct Watch {
    /// None until opened; Some(None) when it could not be opened (not retried per sync).
    monitor: Option<Option<Monitor>>,
    own_ports: HashSet<u32>,
    own_generations: BTreeSet<u32>,
    /// Our tables changed by others since their syncer last looked.
    touched: HashSet<(u8, String)>,
    /// Tables kproxy owns, to mark all touched when notifications were lost.
    ours: HashSet<(u8, String)>,
}

fn watch() -> MutexGuard<'static, Watch> {
    static W: OnceLock<Mutex<Watch>> = OnceLock::new();
    W.get_or_init(|| Mutex::new(Watch::default())).lock().unwrap_or_else(|p| p.into_inner())
}

impl Watch {
    fn monitor(&self) -> Option<&Monitor> {
        self.monitor.as_ref().and_then(|m| m.as_ref())
    }

    fn touch_all(&mut self) {
        let all: Vec<_> = self.ours.iter().cloned().collect();
        self.touched.extend(all);
    }

    fn remember(&mut self, generation: u32) {
        self.own_generations.insert(generation);
        while self.own_generations.len() > KEEP_GENERATIONS {
            self.own_generations.pop_first();
        }
    }

    /// Reads what the monitor queued. False when there is no working monitor.
    fn drain(&mut self) -> bool {
        let own = &self.own_ports;
        let Some(Some(m)) = self.monitor.as_mut() else { return false };
        match m.drain(&|p| own.contains(&p)) {
            Ok(d) => {
                if d.overflowed {
                    self.touch_all();
                }
                for t in d.foreign {
                    if self.ours.contains(&t) {
                        self.touched.insert(t);
                    }
                }
                true
            }
            Err(_) => {
                // A broken monitor: fall back to the ledger, and assume the worst once.
                self.monitor = Some(None);
                self.touch_all();
                false
            }
        }
    }
}

/// Starts listening (once per process) and records a table and a socket as ours.
/// Call when a syncer opens its connection, before its first commit.
pub fn register(family: Family, table: &str, port_id: Option<u32>) {
    let mut w = watch();
    if w.monitor.is_none() {
        w.monitor = Some(Monitor::open().ok());
    }
    w.ours.insert((family.nfproto(), table.to_owned()));
    if let Some(p) = port_id {
        w.own_ports.insert(p);
    }
}

/// Our partial batch committed and moved the ruleset to `generation`.
pub fn committed(generation: u32) {
    watch().remember(generation);
}

/// Before our full replace of a table: read what is queued, then stop listening.
pub fn pause_for_full() {
    let mut w = watch();
    w.drain();
    if let Some(m) = w.monitor() {
        let _ = m.pause();
    }
}

/// After our full replace (committed or not). `before` is the generation the batch was
/// built on, `ours` the one it produced if it committed, `now` the generation read after
/// listening again: any other generation in between may have touched any of our tables.
pub fn resume_after_full(family: Family, table: &str, before: u32, ours: Option<u32>, now: Option<u32>) {
    let mut w = watch();
    let resumed = w.monitor().map(|m| m.resume().is_ok());
    if resumed == Some(false) {
        w.monitor = Some(None);
    }
    if let Some(g) = ours {
        w.remember(g);
        w.touched.remove(&(family.nfproto(), table.to_owned()));
    }
    if now != Some(ours.unwrap_or(before)) {
        w.touch_all();
    }
}

/// Has anything but kproxy changed `table` since generation `since` (this syncer's
/// last commit), the ruleset now being at `now`?
pub fn changed(family: Family, table: &str, since: Option<u32>, now: u32) -> bool {
    let Some(since) = since else { return true };
    let mut w = watch();
    // Drained at every sync: our own partial batches notify too, and must not pile up.
    let monitored = w.drain();
    let touched = w.touched.remove(&(family.nfproto(), table.to_owned()));
    if monitored {
        return touched;
    }
    let all_ours =
        now >= since && (now - since) as usize <= KEEP_GENERATIONS && (since.wrapping_add(1)..=now).all(|g| w.own_generations.contains(&g));
    touched || !all_ours
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a monitor (none registered in this test binary), only the ledger decides.
    #[test]
    fn generations_of_either_family_are_ours_and_gaps_are_not() {
        let (v4, v6) = (Family::Ip, Family::Ip6);
        committed(101);
        committed(102);
        committed(103);
        assert!(!changed(v4, "t", Some(101), 103), "the other family's commit in between is ours");
        assert!(!changed(v6, "t", Some(102), 103));
        assert!(changed(v4, "t", Some(103), 104), "104 is nobody we know");
        assert!(changed(v4, "t", None, 103), "never synced: assume the worst");
        assert!(changed(v4, "t", Some(103), 90), "the generation went backwards");
    }
}
