//! iptables mode's sync state: the desired ServicePorts, each one's part of the ruleset, and
//! the chains the last restore that landed left in the kernel. A full sync writes every chain;
//! a partial one writes only the chains whose rules changed and deletes the ones gone, as
//! upstream's MinimizeIPTablesRestore (the shared chains too, only when they changed). The
//! agent runs the tools (iptables-restore, iptables -C/-I); this side decides what they get.

use std::collections::{BTreeMap, BTreeSet};

use kproxy_nftables::Family;

use super::assemble::{build, ensured_chains, jumps, shared_chains, tables};
use super::build::{service_part, IptablesConfig, Part};
use super::restore::{render_restore, render_save, Chain, Rule, TableName};
use super::writer::RestoreWriter;
use crate::desired::{Desired, NodeAddressing};
use crate::wire::{Rejected, ServicePortRecord};

/// One sync's restore input and what goes with it.
pub struct Plan {
    /// `iptables-restore --noflush` inputs, to apply in turn: the chains to write and the ones
    /// to delete (none when nothing changed; one unless chunking is on).
    pub restores: Vec<String>,
    /// Rules kept in the built-in chains, in the order they belong at the top.
    pub jumps: Vec<(TableName, &'static str, Rule)>,
    /// Chains the jumps need that the restore does not write: made to exist, never flushed.
    pub ensure: Vec<(TableName, &'static str)>,
    /// Chains written and deleted.
    pub chains: usize,
    /// Rules written, per table (`iptables_last`).
    pub rules: Vec<(TableName, usize)>,
    /// Rules owned after this sync, per table (`iptables_total`).
    pub total: Vec<(TableName, usize)>,
    pub full: bool,
    pub rejected: Vec<Rejected>,
}

type Chains = BTreeMap<TableName, BTreeSet<String>>;
type Shared = BTreeMap<(TableName, String), Vec<Rule>>;

pub struct IptablesSync {
    desired: Desired,
    cfg: IptablesConfig,
    /// Each ServicePort's part, by key (the shared chains list them in this order).
    parts: BTreeMap<String, Part>,
    /// The node addressing the parts were built with.
    node: NodeAddressing,
    /// The shared chains as the last restore that landed wrote them.
    shared: Shared,
    /// Chains in the kernel as far as we know: the last restore that landed, and what `adopt` found.
    applied: Chains,
    pending: Option<Pending>,
    /// No restore has landed yet, or one failed: what the kernel holds is unknown until a full one lands.
    rewrite_all: bool,
    /// Split each plan into restores of at most this many jump rules (the nft backend).
    max_jumps: Option<usize>,
}

struct Pending {
    written: Vec<(TableName, String)>,
    deleted: Vec<(TableName, String)>,
    shared: Option<Shared>,
    full: bool,
}

/// A chain name this mode makes: a per-ServicePort prefix and 16 base32 characters, as
/// names.rs makes them (the dispatch chains are KUBE-SVC- ones).
pub fn is_service_chain(name: &str) -> bool {
    ["KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-"].iter().any(|p| {
        name.strip_prefix(p).is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)))
    })
}

fn keyed(shared: Vec<(TableName, Chain)>) -> Shared {
    shared.into_iter().map(|(t, c)| ((t, c.name), c.rules)).collect()
}

/// The chains `--cleanup` removes, as upstream's CleanupLeftovers: not KUBE-MARK-MASQ, KUBE-FIREWALL,
/// KUBE-PROXY-FIREWALL or the canaries, which upstream leaves (the kubelet shares some).
const CLEANUP_NAT: &[&str] = &["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING"];
const CLEANUP_FILTER: &[&str] = &["KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-NODEPORTS"];

impl IptablesSync {
    pub fn new(cfg: IptablesConfig) -> Self {
        let mut desired = Desired::new(cfg.family);
        desired.keep_loopback_nodeports(cfg.localhost_nodeports);
        Self {
            desired,
            cfg,
            parts: BTreeMap::new(),
            node: NodeAddressing::default(),
            shared: Shared::new(),
            applied: Chains::new(),
            pending: None,
            rewrite_all: true,
            max_jumps: None,
        }
    }

    /// Splits every plan into restores of at most `max_jumps` jump rules, applied in turn
    /// (writer.rs); None: one restore.
    pub fn set_chunking(&mut self, max_jumps: Option<usize>) {
        self.max_jumps = max_jumps;
    }

    pub fn desired_mut(&mut self) -> &mut Desired {
        &mut self.desired
    }

    fn v6(&self) -> bool {
        self.cfg.family == Family::Ip6
    }

    /// Per-Service chains found in the kernel's nat table (another run's, upstream's): owned
    /// from now on, so that the next full restore deletes the ones no longer wanted.
    pub fn adopt(&mut self, nat_chains: &[String]) {
        let nat = self.applied.entry(TableName::Nat).or_default();
        nat.extend(nat_chains.iter().filter(|c| is_service_chain(c)).cloned());
    }

    /// Takes the changes and plans the restore: every chain on a full sync (and until one
    /// lands), else only the chains whose rules changed.
    pub fn plan(&mut self, full: bool, upserts: &[ServicePortRecord], deletes: &[String]) -> Plan {
        let rejected = if full { self.desired.replace_all(upserts) } else { self.desired.update(upserts, deletes) };
        let dirty = self.desired.take_dirty();
        let full = full || self.rewrite_all || *self.desired.node() != self.node;
        let mut w = RestoreWriter::new(self.v6());
        let pending = if full { self.plan_full(&mut w) } else { self.plan_partial(&mut w, dirty) };
        let chains = pending.written.len() + pending.deleted.len();
        let rules = w.rules();
        let total = self.total(pending.shared.as_ref().unwrap_or(&self.shared));
        self.pending = Some(pending);
        let restores = match self.max_jumps {
            Some(n) => w.finish_chunked(n),
            None => Some(w.finish()).filter(|r| !r.is_empty()).into_iter().collect(),
        };
        // Tests only (KPROXY_FAULT_REJECT): a restore the kernel refuses, somewhere in the sync.
        let restores = crate::fault::maybe_poison_restores(restores);
        Plan { restores, jumps: jumps(), ensure: ensured_chains(&self.cfg), chains, rules, total, full, rejected }
    }

    fn plan_full(&mut self, w: &mut RestoreWriter) -> Pending {
        self.node = self.desired.node().clone();
        let (cfg, node_ips) = (&self.cfg, &self.node.node_ips);
        self.parts = self.desired.values().map(|sp| (sp.key.clone(), service_part(cfg, node_ips, sp))).collect();
        let shared = shared_chains(self.parts.values(), &self.node, &self.cfg);
        let mut written = Vec::new();
        for (t, table) in tables(shared.clone(), self.parts.values().flat_map(|p| p.chains.iter())) {
            for c in &table.chains {
                w.write(t, c);
                written.push((t, c.name.clone()));
            }
        }
        let now: BTreeSet<(TableName, &str)> = written.iter().map(|(t, n)| (*t, n.as_str())).collect();
        let deleted: Vec<(TableName, String)> = self
            .applied
            .iter()
            .flat_map(|(t, names)| names.iter().map(move |n| (*t, n)))
            .filter(|(t, n)| !now.contains(&(*t, n.as_str())))
            .map(|(t, n)| (t, n.clone()))
            .collect();
        for (t, n) in &deleted {
            w.delete(*t, n);
        }
        Pending { written, deleted, shared: Some(keyed(shared)), full: true }
    }

    fn plan_partial(&mut self, w: &mut RestoreWriter, dirty: BTreeSet<String>) -> Pending {
        let (mut written, mut deleted) = (Vec::new(), Vec::new());
        let mut shared_changed = false;
        for key in dirty {
            let old = self.parts.remove(&key).unwrap_or_default();
            let sp = self.desired.get(&key);
            let new = sp.map(|sp| service_part(&self.cfg, &self.node.node_ips, sp)).unwrap_or_default();
            for c in &new.chains {
                if old.chains.iter().find(|o| o.name == c.name) != Some(c) {
                    w.write(TableName::Nat, c);
                    written.push((TableName::Nat, c.name.clone()));
                }
            }
            for o in old.chains.iter().filter(|o| !new.chains.iter().any(|c| c.name == o.name)) {
                deleted.push((TableName::Nat, o.name.clone()));
            }
            shared_changed |= old.shared != new.shared;
            if sp.is_some() {
                self.parts.insert(key, new);
            }
        }
        let mut shared = None;
        if shared_changed || self.cfg.upstream_partial {
            let now = keyed(shared_chains(self.parts.values(), &self.node, &self.cfg));
            for ((t, name), rules) in &now {
                if self.cfg.upstream_partial || self.shared.get(&(*t, name.clone())) != Some(rules) {
                    w.write(*t, &Chain { name: name.clone(), rules: rules.clone() });
                    written.push((*t, name.clone()));
                }
            }
            deleted.extend(self.shared.keys().filter(|k| !now.contains_key(*k)).cloned());
            shared = Some(now);
        }
        // The deletions come last in each table: every chain that jumped to them is rewritten first.
        for (t, n) in &deleted {
            w.delete(*t, n);
        }
        Pending { written, deleted, shared, full: false }
    }

    /// Rules owned, per table, with `shared` as the shared chains.
    fn total(&self, shared: &Shared) -> Vec<(TableName, usize)> {
        let mut by: BTreeMap<TableName, usize> = BTreeMap::new();
        for ((t, _), rules) in shared {
            *by.entry(*t).or_default() += rules.len();
        }
        *by.entry(TableName::Nat).or_default() += self.parts.values().flat_map(|p| p.chains.iter()).map(|c| c.rules.len()).sum::<usize>();
        by.into_iter().collect()
    }

    /// Whether the last plan's restores all landed. If not, its chains may or may not be there:
    /// the next plan is full, and deletes whichever of both sets it does not want.
    pub fn committed(&mut self, ok: bool) {
        let Some(p) = self.pending.take() else { return };
        if ok && p.full {
            self.applied.clear();
        }
        if ok {
            for (t, n) in &p.deleted {
                self.applied.entry(*t).or_default().remove(n);
            }
            if let Some(s) = p.shared {
                self.shared = s;
            }
        }
        for (t, n) in p.written {
            self.applied.entry(t).or_default().insert(n);
        }
        self.rewrite_all = !ok;
    }

    /// The desired ruleset as iptables-save prints it.
    pub fn render(&self) -> String {
        let rs = build(&self.desired, &self.cfg);
        render_save(&rs.tables, &rs.jumps, self.v6())
    }

    /// `--cleanup`: the jumps to delete first (all but the kubelet-shared KUBE-FIREWALL ones),
    /// then restore input that flushes and deletes upstream's cleanup chains and every
    /// per-Service chain in `nat_chains` (iptables-save's).
    pub fn cleanup(&self, nat_chains: &[String]) -> (Vec<(TableName, &'static str, Rule)>, String) {
        let rs = build(&Desired::new(self.cfg.family), &self.cfg);
        let jumps = rs.jumps.into_iter().filter(|(_, _, r)| r.target != super::restore::Target::Jump("KUBE-FIREWALL".into())).collect();
        let mut nat: Vec<String> = CLEANUP_NAT.iter().map(|c| c.to_string()).collect();
        nat.extend(nat_chains.iter().filter(|c| is_service_chain(c)).cloned());
        nat.sort();
        nat.dedup();
        let stale = vec![(TableName::Filter, CLEANUP_FILTER.iter().map(|c| c.to_string()).collect()), (TableName::Nat, nat)];
        let empty = vec![(TableName::Filter, Default::default()), (TableName::Nat, Default::default())];
        (jumps, render_restore(&empty, &stale, self.v6()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_modes_service_chain_names_are_adopted() {
        assert!(is_service_chain("KUBE-SVC-NPX46M4PTMTKRN6Y"));
        assert!(is_service_chain("KUBE-SEP-UKSFD7AGPMPPLUHC"));
        for bad in [
            "KUBE-SERVICES",
            "KUBE-SVC-short",
            "KUBE-SVC-npx46m4ptmtkrn6y",
            "KUBE-SVC-NPX46M4PTMTKRN6Y\n-A",
            "KUBE-XYZ-NPX46M4PTMTKRN6Y",
            "KUBE-SVC-NPX46M4PTMTKRN01",
        ] {
            assert!(!is_service_chain(bad), "{bad:?}");
        }
    }
}
