//! Did anyone else change our tables? Shared by every family's syncer in the
//! process, so that one family's commits never look foreign to the other.
//!
//! The nf_tables monitor group (what `nft monitor` reads) says which tables
//! each batch touched and, through the sender's port id, whether the batch
//! was ours: a commit by a CNI or firewalld to its own table leaves ours
//! alone and keeps syncs partial. A ledger of the generations our batches
//! produced covers what the monitor cannot see: while it is paused for our own
//! full replace (the kernel would build one notification per element), after
//! its queue overflowed, or when it could not be opened. Then a table counts as
//! changed unless every generation since its syncer's last commit is ours.
//! The agent syncs the families one after the other; pausing assumes it.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Mutex, MutexGuard, OnceLock};

use kproxy_nftables::{Family, Monitor};

/// Own generations kept; older ones no syncer can still ask about.
const KEEP_GENERATIONS: usize = 4096;

type TableKey = (u8, String);

#[derive(Default)]
struct Watch {
    /// None until opened; Some(None) when it could not be opened (not retried per sync).
    monitor: Option<Option<Monitor>>,
    own_ports: HashSet<u32>,
    own_generations: BTreeSet<u32>,
    /// Our tables that others changed, as the monitor saw it.
    touched: HashSet<TableKey>,
    /// Our tables the monitor may have missed a change to: the ledger decides.
    unseen: HashSet<TableKey>,
    /// Tables kproxy owns.
    ours: HashSet<TableKey>,
    /// Times the monitor's socket buffer overflowed (ENOBUFS) and notifications were lost.
    overflows: u64,
}

fn watch() -> MutexGuard<'static, Watch> {
    static W: OnceLock<Mutex<Watch>> = OnceLock::new();
    W.get_or_init(|| Mutex::new(Watch::default())).lock().unwrap_or_else(|p| p.into_inner())
}

fn key(family: Family, table: &str) -> TableKey {
    (family.nfproto(), table.to_owned())
}

/// The generation after `g`: the kernel skips 0 when it wraps.
pub fn next_generation(g: u32) -> u32 {
    match g.wrapping_add(1) {
        0 => 1,
        n => n,
    }
}

impl Watch {
    fn monitor(&self) -> Option<&Monitor> {
        self.monitor.as_ref().and_then(|m| m.as_ref())
    }

    fn all_unseen(&mut self) {
        let all: Vec<_> = self.ours.iter().cloned().collect();
        self.unseen.extend(all);
    }

    fn remember(&mut self, generation: u32) {
        self.own_generations.insert(generation);
        while self.own_generations.len() > KEEP_GENERATIONS {
            self.own_generations.pop_first();
        }
    }

    /// Is every generation after `since` up to `now` one of ours?
    fn all_ours(&self, since: u32, now: u32) -> bool {
        now >= since
            && (now - since) as usize <= KEEP_GENERATIONS
            && (since.wrapping_add(1)..=now).all(|g| self.own_generations.contains(&g))
    }

    /// Reads what the monitor queued. False when there is no working monitor.
    fn drain(&mut self) -> bool {
        let own = &self.own_ports;
        let Some(Some(m)) = self.monitor.as_mut() else { return false };
        match m.drain(&|p| own.contains(&p)) {
            Ok(d) => {
                if d.overflowed {
                    self.overflows += 1;
                    self.all_unseen();
                }
                for t in d.foreign {
                    if self.ours.contains(&t) {
                        self.touched.insert(t);
                    }
                }
                true
            }
            Err(_) => {
                // A broken monitor: from now on the ledger decides.
                self.monitor = Some(None);
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
    w.ours.insert(key(family, table));
    if let Some(p) = port_id {
        w.own_ports.insert(p);
    }
}

/// Our batch committed and moved the ruleset to `generation`.
pub fn committed(generation: u32) {
    watch().remember(generation);
}

/// The monitor stopped for our own full replace. Dropping it listens again; if
/// `resume` was not called (a panic), every table's changes count as unseen.
pub struct Paused {
    resumed: bool,
}

impl Paused {
    /// Listens again. Read the generation only after this, so nothing slips between.
    pub fn resume(mut self) {
        self.resumed = true;
        rejoin(false);
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        if !self.resumed {
            rejoin(true);
        }
    }
}

fn rejoin(unknown: bool) {
    let mut w = watch();
    if w.monitor().is_some_and(|m| m.resume().is_err()) {
        w.monitor = Some(None);
    }
    if unknown {
        w.all_unseen();
    }
}

/// Before our full replace: read what is queued, then stop listening.
pub fn pause_for_full() -> Paused {
    let mut w = watch();
    w.drain();
    if let Some(m) = w.monitor() {
        let _ = m.pause();
    }
    Paused { resumed: false }
}

/// After our full replace of `table`, committed (`ours`) or not, with the monitor back:
/// generations between `before` and `now` that the ledger does not know may have touched
/// any of our tables while nobody listened.
pub fn after_full(family: Family, table: &str, before: u32, ours: Option<u32>, now: Option<u32>) {
    let mut w = watch();
    if let Some(g) = ours {
        w.remember(g);
    }
    let quiet = now.is_some_and(|n| w.all_ours(before, n) || n == before);
    if !quiet {
        w.all_unseen();
    }
    if let Some(g) = ours {
        // Our replace repaired everything before it; only what came after it counts.
        let k = key(family, table);
        w.touched.remove(&k);
        if now == Some(g) {
            w.unseen.remove(&k);
        }
    }
}

/// Between syncs, without consuming it: has someone else changed `table`, as the monitor
/// saw it? Polled so that drift is repaired at once, not at the next periodic sync. None:
/// no working monitor, and the periodic sync's ledger check is the only repair.
pub fn pending(family: Family, table: &str) -> Option<bool> {
    let mut w = watch();
    if !w.drain() {
        return None;
    }
    // Unseen (the queue overflowed): a sync asks the ledger at once, rather than the next periodic one.
    let k = key(family, table);
    Some(w.touched.contains(&k) || w.unseen.contains(&k))
}

/// How often, in this process, the monitor's socket buffer overflowed (ENOBUFS) and
/// notifications were lost; each time the ledger decided instead.
pub fn overflows() -> u64 {
    watch().overflows
}

/// Has anything but kproxy changed `table` since generation `since` (this syncer's
/// last commit), the ruleset now being at `now`?
pub fn changed(family: Family, table: &str, since: Option<u32>, now: u32) -> bool {
    let Some(since) = since else { return true };
    let mut w = watch();
    // Drained at every sync: our own partial batches notify too, and must not pile up.
    let monitored = w.drain();
    let k = key(family, table);
    let touched = w.touched.remove(&k);
    let unseen = w.unseen.remove(&k);
    touched || ((unseen || !monitored) && !w.all_ours(since, now))
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
        assert_eq!(next_generation(u32::MAX), 1, "the kernel skips 0");
    }
}
