//! The sync loop every mode shares: validate the changes into the desired
//! state, notice foreign changes to our tables, plan, commit one atomic batch
//! guarded by the ruleset generation, and rebuild once as full if someone
//! committed in between. A mode only plans; it never talks to the kernel.

use std::time::Instant;

use kproxy_nftables::{text, CommitStats, Conn, Fake, Family, NftError, Transaction};

use crate::desired::Desired;
use crate::error::{Code, ProxierError};
use crate::wire::{self, Rejected};
use crate::{fault, foreign};

/// Lists a set's elements, as (key bytes, data bytes), from the backend.
pub type ReadSet<'a> = dyn FnMut(&str) -> Result<Vec<kproxy_nftables::ElementBytes>, NftError> + 'a;

/// What a mode provides: its rules, planned from the desired state.
pub trait Mode: Send + 'static {
    fn family(&self) -> Family;
    /// The nf_tables table this mode owns in its family.
    fn table(&self) -> &'static str;
    /// The next transaction and whether it replaces everything. The mode assumes
    /// it commits; `invalidate` is called when it did not.
    fn plan(&mut self, desired: &mut Desired, force_full: bool) -> (Transaction, bool);
    /// The kernel state is unknown: the next plan must be full.
    fn invalidate(&mut self);
    /// Canonical text of the desired ruleset.
    fn render_text(&self, desired: &Desired) -> String;
    /// The full transaction for the desired state, without changing the mode.
    fn full_transaction(&self, desired: &Desired) -> Transaction;
    /// The transaction that removes the mode's rules.
    fn cleanup(&self) -> Transaction;
    /// Best-effort work after a committed sync, as its own transaction (as upstream deletes
    /// stale chains); `read` lists what the kernel holds. None: nothing to do.
    fn after_commit(&mut self, _read: &mut ReadSet<'_>) -> Result<Option<Transaction>, NftError> {
        Ok(None)
    }
    /// The after-commit work failed; the mode takes it back (to retry, or to do it another way).
    fn after_commit_failed(&mut self) {}
    /// The next plan will be a full replace whatever changes (a quick sync then declines).
    fn next_plan_full(&self, _desired: &Desired) -> bool {
        true
    }
    /// `after_commit` has work now (a quick sync then leaves it for `run_after_commit`).
    fn after_commit_due(&self) -> bool {
        false
    }
}

pub enum Backend {
    Kernel {
        conn: Option<Conn>,
        last_genid: Option<u32>,
    },
    /// In-memory nf_tables with kernel semantics (tests, `plan`, `trace`).
    Fake(Fake),
}

#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub full: bool,
    pub stats: CommitStats,
    pub duration_ms: f64,
    /// Time spent planning (validate, diff, build) and committing (encode, kernel).
    pub plan_ms: f64,
    pub commit_ms: f64,
    pub rejected: Vec<Rejected>,
    pub text: Option<String>,
    /// The best-effort transaction after the sync failed (upstream's cleanup failures).
    pub cleanup_failed: bool,
    /// A quick sync left its after-commit work for `run_after_commit`.
    pub after_commit_pending: bool,
}

pub struct Syncer<M: Mode> {
    mode: M,
    desired: Desired,
    backend: Backend,
}

impl<M: Mode> Syncer<M> {
    pub fn new(mode: M, fake: bool) -> Self {
        let desired = Desired::new(mode.family());
        let backend = if fake { Backend::Fake(Fake::new()) } else { Backend::Kernel { conn: None, last_genid: None } };
        Self { mode, desired, backend }
    }

    pub fn desired(&self) -> &Desired {
        &self.desired
    }

    pub fn fake(&self) -> Option<&Fake> {
        match &self.backend {
            Backend::Fake(f) => Some(f),
            Backend::Kernel { .. } => None,
        }
    }

    pub fn fake_mut(&mut self) -> Option<&mut Fake> {
        match &mut self.backend {
            Backend::Fake(f) => Some(f),
            Backend::Kernel { .. } => None,
        }
    }

    pub fn render(&self) -> String {
        self.mode.render_text(&self.desired)
    }

    /// Marks the kernel state unknown (after any failure, a caught panic included).
    pub fn invalidate(&mut self) {
        self.mode.invalidate();
    }

    fn conn<'a>(conn: &'a mut Option<Conn>, family: Family, table: &str) -> Result<&'a mut Conn, NftError> {
        Ok(match conn {
            Some(c) => c,
            None => {
                let c = Conn::open()?;
                foreign::register(family, table, c.port_id().ok());
                conn.insert(c)
            }
        })
    }

    /// The ruleset generation now (None for the fake).
    fn read_genid(&mut self) -> Result<Option<u32>, NftError> {
        let (family, table) = (self.mode.family(), self.mode.table());
        match &mut self.backend {
            Backend::Fake(_) => Ok(None),
            Backend::Kernel { conn, .. } => Ok(Some(Self::conn(conn, family, table)?.genid()?)),
        }
    }

    /// Has anyone else changed our table since our last batch (`now` is the current genid)?
    fn foreign_change(&self, now: Option<u32>) -> bool {
        let (family, table) = (self.mode.family(), self.mode.table());
        match &self.backend {
            Backend::Fake(f) => !f.has_table(family, table),
            Backend::Kernel { last_genid, .. } => now.is_none_or(|n| foreign::changed(family, table, *last_genid, n)),
        }
    }

    /// Did anyone else change our table between generations `from` and `to`?
    fn foreign_change_since(&self, from: Option<u32>, to: Option<u32>) -> bool {
        let (family, table) = (self.mode.family(), self.mode.table());
        match (&self.backend, from, to) {
            (Backend::Fake(f), _, _) => !f.has_table(family, table),
            (Backend::Kernel { .. }, Some(from), Some(to)) => foreign::changed(family, table, Some(from), to),
            _ => true,
        }
    }

    /// Commits `tx` as one batch the kernel refuses (ERESTART) unless the ruleset is
    /// still at generation `expected`. Empty transactions send nothing.
    fn commit(&mut self, tx: &Transaction, expected: Option<u32>, full: bool) -> Result<CommitStats, NftError> {
        let (family, table) = (self.mode.family(), self.mode.table());
        match &mut self.backend {
            Backend::Fake(f) => {
                f.apply(tx).map_err(|e| NftError::Kernel { errno: e.errno, what: e.what, detail: None })?;
                Ok(CommitStats { messages: tx.ops.len(), bytes: 0, objects: tx.object_count() })
            }
            Backend::Kernel { conn, last_genid } => {
                if tx.is_empty() {
                    return Ok(CommitStats::default());
                }
                // Tests only (KPROXY_FAULT_REJECT): a batch the kernel will refuse somewhere inside.
                let poisoned = fault::maybe_poison(tx);
                let tx: &Transaction = &poisoned;
                let c = Self::conn(conn, family, table)?;
                let genid = match expected {
                    Some(g) => g,
                    None => c.genid()?,
                };
                if !full {
                    let stats = c.commit(tx, Some(genid))?;
                    // Batches commit one at a time, so ours moved the generation by exactly one.
                    let ours = foreign::next_generation(genid);
                    *last_genid = Some(ours);
                    foreign::committed(ours);
                    return Ok(stats);
                }
                let paused = foreign::pause_for_full();
                let result = c.commit(tx, Some(genid));
                paused.resume();
                let ours = result.as_ref().ok().map(|_| foreign::next_generation(genid));
                let now = c.genid().ok();
                foreign::after_full(family, table, genid, ours, now);
                if ours.is_some() {
                    *last_genid = ours;
                }
                result
            }
        }
    }

    /// Runs the mode's after-commit transaction; false if it failed (the mode was told).
    fn after_commit(&mut self) -> bool {
        let (family, table) = (self.mode.family(), self.mode.table());
        let Syncer { mode, backend, .. } = self;
        let mut read = |set: &str| -> Result<Vec<kproxy_nftables::ElementBytes>, NftError> {
            match backend {
                Backend::Fake(f) => {
                    f.list_elements(family, table, set).map_err(|e| NftError::Kernel { errno: e.errno, what: e.what, detail: None })
                }
                Backend::Kernel { conn, .. } => Self::conn(conn, family, table)?.list_elements(family, table, set),
            }
        };
        let tx = match mode.after_commit(&mut read) {
            Ok(Some(tx)) => tx,
            Ok(None) => return true,
            Err(_) => {
                self.mode.after_commit_failed();
                return false;
            }
        };
        if self.commit(&tx, None, false).is_err() {
            self.mode.after_commit_failed();
            return false;
        }
        true
    }

    /// Sets where NodePorts answer and the node's own IPs (applied by the next sync).
    pub fn set_node(&mut self, nodeports_all: bool, nodeport_ips: &[String], node_ips: &[String]) -> Result<(), ProxierError> {
        self.desired.set_node(nodeports_all, nodeport_ips, node_ips).map_err(|m| ProxierError::new(Code::InvalidOption, m))
    }

    /// Sets the ServiceCIDR ranges (applied by the next sync).
    pub fn set_service_cidrs(&mut self, cidrs: &[String]) -> Result<(), ProxierError> {
        self.desired.set_service_cidrs(cidrs).map_err(|m| ProxierError::new(Code::InvalidOption, m))
    }

    /// Applies one sync request: `upserts` is wire text; with `full` it is the whole state.
    pub fn sync(&mut self, full: bool, upserts: &str, deletes: &[String], explain: bool) -> Result<Outcome, ProxierError> {
        self.sync_with(full, upserts, deletes, explain, false).map(|o| o.expect("a sync that may not decline"))
    }

    /// A partial sync done on the caller's thread: None (nothing changed) when it would be a
    /// full replace or another program changed the table, which the pool's `sync` handles; its
    /// after-commit work (purges that dump maps, stale chains) waits for `run_after_commit`.
    pub fn sync_quick(&mut self, upserts: &str, deletes: &[String]) -> Result<Option<Outcome>, ProxierError> {
        self.sync_with(false, upserts, deletes, false, true)
    }

    /// The after-commit work a quick sync left; false if it failed (counted as upstream's
    /// cleanup failures).
    pub fn run_after_commit(&mut self) -> bool {
        self.after_commit()
    }

    fn sync_with(
        &mut self,
        full: bool,
        upserts: &str,
        deletes: &[String],
        explain: bool,
        quick: bool,
    ) -> Result<Option<Outcome>, ProxierError> {
        let start = Instant::now();
        let nft = |e: NftError| ProxierError::from(&e);
        let early_genid = if quick {
            if self.mode.next_plan_full(&self.desired) {
                return Ok(None);
            }
            let genid = self.read_genid().map_err(nft)?;
            // The check consumes what the monitor saw: remember it as a full plan ahead.
            if self.foreign_change(genid) {
                self.mode.invalidate();
                return Ok(None);
            }
            Some(genid)
        } else {
            None
        };
        let (records, mut rejected) = wire::decode(upserts)?;
        if full {
            rejected.extend(self.desired.replace_all(&records));
        } else {
            rejected.extend(self.desired.update(&records, deletes));
        }
        drop(records);
        // One generation read decides "did someone else change our table?" and is the
        // generation the batch must still find, so nothing slips in between.
        let genid = match early_genid {
            Some(g) => g,
            None => self.read_genid().map_err(nft)?,
        };
        if !quick && self.foreign_change(genid) {
            self.mode.invalidate();
        }
        let (mut tx, mut was_full) = self.mode.plan(&mut self.desired, full);
        let planned = Instant::now();
        let mut result = self.commit(&tx, genid, was_full);
        if matches!(result, Err(NftError::GenerationChanged)) {
            // Someone committed between our read and our batch. If they left our table
            // alone, the same batch still applies; otherwise rebuild from scratch, once.
            let again = self.read_genid().map_err(nft)?;
            if self.foreign_change_since(genid, again) {
                self.mode.invalidate();
                (tx, was_full) = self.mode.plan(&mut self.desired, true);
            }
            result = self.commit(&tx, again, was_full);
        }
        let stats = match result {
            Ok(s) => s,
            Err(e) => {
                self.mode.invalidate();
                return Err(nft(e));
            }
        };
        let cleanup_failed = !quick && !self.after_commit();
        let text = explain.then(|| text::render_tx(&tx));
        let commit_ms = planned.elapsed().as_secs_f64() * 1000.0;
        let plan_ms = (planned - start).as_secs_f64() * 1000.0;
        drop(tx);
        if was_full {
            kproxy_netlink::release_free_memory();
        }
        Ok(Some(Outcome {
            full: was_full,
            stats,
            duration_ms: start.elapsed().as_secs_f64() * 1000.0,
            plan_ms,
            commit_ms,
            rejected,
            text,
            cleanup_failed,
            after_commit_pending: quick && self.mode.after_commit_due(),
        }))
    }

    /// Removes the mode's rules (missing ones are fine).
    pub fn cleanup(&mut self) -> Result<(), ProxierError> {
        let tx = self.mode.cleanup();
        self.mode.invalidate();
        match self.commit(&tx, None, false) {
            Ok(_) => Ok(()),
            Err(NftError::Kernel { errno: 2, .. }) => Ok(()), // ENOENT: nothing to clean
            Err(e) => Err(ProxierError::from(&e)),
        }
    }

    /// The full transaction for the desired state (tracer, benchmarks).
    pub fn full_transaction(&self) -> Transaction {
        self.mode.full_transaction(&self.desired)
    }
}

/// Parses "IPv4"/"IPv6".
pub fn parse_family(s: &str) -> Result<Family, ProxierError> {
    match s {
        "IPv4" => Ok(Family::Ip),
        "IPv6" => Ok(Family::Ip6),
        _ => Err(ProxierError::new(Code::InvalidOption, format!("family must be IPv4 or IPv6, got {s:?}"))),
    }
}
