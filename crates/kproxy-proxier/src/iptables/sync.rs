//! iptables mode's sync state: the desired ServicePorts, the chains the last restore that
//! landed left in the kernel, and each sync's restore input. The agent runs the tools
//! (iptables-restore, iptables -C/-I); this side decides what they get.

use std::collections::{BTreeMap, BTreeSet};

use kproxy_nftables::Family;

use super::build::{build, IptablesConfig};
use super::restore::{render_restore, render_save, Rule, TableName};
use crate::desired::Desired;
use crate::wire::{Rejected, ServicePortRecord};

/// One sync's restore input and what goes with it.
pub struct Plan {
    /// `iptables-restore --noflush` input: every owned chain, and the stale ones deleted.
    pub restore: String,
    /// Rules kept in the built-in chains, in the order they belong at the top.
    pub jumps: Vec<(TableName, &'static str, Rule)>,
    pub chains: usize,
    /// Rules written, per table (the `iptables_total`/`_last` metrics).
    pub rules: Vec<(TableName, usize)>,
    pub rejected: Vec<Rejected>,
}

type Chains = BTreeMap<TableName, BTreeSet<String>>;

pub struct IptablesSync {
    desired: Desired,
    cfg: IptablesConfig,
    /// Chains in the kernel as far as we know: the last restore that landed, and what `adopt` found.
    applied: Chains,
    pending: Option<Chains>,
}

/// A per-ServicePort chain name as names.rs makes them: a prefix and 16 base32 characters.
pub fn is_service_chain(name: &str) -> bool {
    ["KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-"].iter().any(|p| {
        name.strip_prefix(p).is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)))
    })
}

/// The chains `--cleanup` removes, as upstream's CleanupLeftovers: not KUBE-MARK-MASQ, KUBE-FIREWALL,
/// KUBE-PROXY-FIREWALL or the canaries, which upstream leaves (the kubelet shares some).
const CLEANUP_NAT: &[&str] = &["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING"];
const CLEANUP_FILTER: &[&str] = &["KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-NODEPORTS"];

impl IptablesSync {
    pub fn new(cfg: IptablesConfig) -> Self {
        Self { desired: Desired::new(cfg.family), cfg, applied: Chains::new(), pending: None }
    }

    pub fn desired_mut(&mut self) -> &mut Desired {
        &mut self.desired
    }

    fn v6(&self) -> bool {
        self.cfg.family == Family::Ip6
    }

    /// Per-Service chains found in the kernel's nat table (another run's, upstream's): owned
    /// from now on, so that the next restore deletes the ones no longer wanted.
    pub fn adopt(&mut self, nat_chains: &[String]) {
        let nat = self.applied.entry(TableName::Nat).or_default();
        nat.extend(nat_chains.iter().filter(|c| is_service_chain(c)).cloned());
    }

    /// Takes the changes and plans the whole ruleset: every owned chain is rewritten (the
    /// restore is one transaction per table either way), the stale ones deleted.
    pub fn plan(&mut self, full: bool, upserts: &[ServicePortRecord], deletes: &[String]) -> Plan {
        let rejected = if full { self.desired.replace_all(upserts) } else { self.desired.update(upserts, deletes) };
        // Every chain is rebuilt: nothing is tracked per change.
        self.desired.take_dirty();
        let rs = build(&self.desired, &self.cfg);
        let now: Chains = rs.tables.iter().map(|(t, table)| (*t, table.chains.iter().map(|c| c.name.clone()).collect())).collect();
        let stale: Vec<(TableName, Vec<String>)> = self
            .applied
            .iter()
            .map(|(t, before)| (*t, before.difference(now.get(t).unwrap_or(&BTreeSet::new())).cloned().collect::<Vec<_>>()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let restore = render_restore(&rs.tables, &stale, self.v6());
        let chains = rs.tables.iter().map(|(_, t)| t.chains.len()).sum();
        let rules = rs.tables.iter().map(|(n, t)| (*n, t.chains.iter().map(|c| c.rules.len()).sum())).collect();
        self.pending = Some(now);
        Plan { restore, jumps: rs.jumps, chains, rules, rejected }
    }

    /// Whether the last plan's restore landed. If not, its chains may or may not be there:
    /// the next restore deletes whichever of both sets it does not want.
    pub fn committed(&mut self, ok: bool) {
        if let Some(p) = self.pending.take() {
            if ok {
                self.applied = p;
            } else {
                for (t, chains) in p {
                    self.applied.entry(t).or_default().extend(chains);
                }
            }
        }
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
