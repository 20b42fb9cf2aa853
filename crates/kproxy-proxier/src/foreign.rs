//! Did anyone else change our tables? Shared by every family's syncer in the
//! process, so that one family's commits never look foreign to the other.
//!
//! The genid rises once per committed batch from anyone. Generations our own
//! batches produced are recorded here; if every generation since a syncer's
//! last commit is ours, nothing foreign happened. Otherwise the nf_tables
//! monitor says which tables the other batches touched: a commit by a CNI or
//! firewalld to its own table leaves ours alone and keeps syncs partial.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Mutex, MutexGuard, OnceLock};

use kproxy_nftables::{Family, Monitor};

/// Own generations kept; older ones no syncer can still ask about.
const KEEP_GENERATIONS: usize = 4096;

#[derive(Default)]
struct Watch {
    /// None until opened; Err-state is remembered so a missing monitor is not retried per sync.
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

/// Starts listening (once per process) and records a table as ours. Call before the first commit.
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

/// Our batch committed and moved the ruleset to `generation`. After a full replace
/// of `table`, earlier foreign changes to it are repaired.
pub fn committed(generation: u32, family: Family, table: &str, full: bool) {
    let mut w = watch();
    w.own_generations.insert(generation);
    while w.own_generations.len() > KEEP_GENERATIONS {
        w.own_generations.pop_first();
    }
    if full {
        drain(&mut w);
        w.touched.remove(&(family.nfproto(), table.to_owned()));
    }
}

fn drain(w: &mut Watch) -> bool {
    let own = w.own_ports.clone();
    let Some(Some(m)) = w.monitor.as_mut() else { return false };
    match m.drain(&|p| own.contains(&p)) {
        Ok(d) => {
            if d.overflowed {
                let all: Vec<_> = w.ours.iter().cloned().collect();
                w.touched.extend(all);
            }
            for t in d.foreign {
                if w.ours.contains(&t) {
                    w.touched.insert(t);
                }
            }
            true
        }
        Err(_) => false,
    }
}

/// Has anything but kproxy changed `table` since generation `since` (this syncer's
/// last commit), the ruleset now being at `now`?
pub fn changed(family: Family, table: &str, since: Option<u32>, now: u32) -> bool {
    let Some(since) = since else { return true };
    let mut w = watch();
    let all_ours = now >= since && (now - since) as usize <= KEEP_GENERATIONS && (since.wrapping_add(1)..=now).all(|g| w.own_generations.contains(&g));
    let key = (family.nfproto(), table.to_owned());
    if all_ours && !w.touched.contains(&key) {
        return false;
    }
    // Without a working monitor every foreign generation counts as a change to us.
    if !drain(&mut w) {
        return !all_ours || w.touched.contains(&key);
    }
    w.touched.remove(&key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a monitor (none registered in this test binary), only the ledger decides.
    #[test]
    fn generations_of_either_family_are_ours_and_gaps_are_not() {
        let (v4, v6) = (Family::Ip, Family::Ip6);
        committed(101, v4, "t", false);
        committed(102, v6, "t", false);
        committed(103, v4, "t", false);
        assert!(!changed(v4, "t", Some(101), 103), "the other family's commit in between is ours");
        assert!(!changed(v6, "t", Some(102), 103));
        assert!(changed(v4, "t", Some(103), 104), "104 is nobody we know");
        assert!(changed(v4, "t", None, 103), "never synced: assume the worst");
        assert!(changed(v4, "t", Some(103), 90), "the generation went backwards");
    }
}
