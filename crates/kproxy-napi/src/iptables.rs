//! The iptables mode's binding: the desired state and the ruleset in Rust, the restore input
//! out. The agent applies it with `iptables-restore --noflush` (the tool every node has) and
//! ensures the jumps from the built-in chains; then tells this side whether it landed.

use std::collections::{BTreeMap, BTreeSet};

use napi_derive::napi;

use kproxy_nftables::Family;
use kproxy_proxier::iptables::restore::{render_restore, render_save, rule_args, TableName};
use kproxy_proxier::iptables::{build, IptablesConfig};
use kproxy_proxier::{sync::parse_family, wire, Code, Desired};

use crate::errors::{coded, to_napi};
use crate::options::{detector, LocalDetectorOption};
use crate::sync_task::{RejectedServicePort, SyncRequest};

#[napi(object)]
pub struct IptablesOptions {
    /// "IPv4" or "IPv6".
    pub family: String,
    pub local_detector: Option<LocalDetectorOption>,
    pub masquerade_all: Option<bool>,
    pub masquerade_bit: Option<u32>,
}

/// A rule kproxy keeps in a built-in chain: `iptables -t <table> -I <chain> <args>`.
#[napi(object)]
pub struct IptablesJump {
    pub table: String,
    pub chain: String,
    pub args: Vec<String>,
}

#[napi(object)]
pub struct IptablesPlan {
    /// `iptables-restore --noflush` input: every owned chain, and the stale ones deleted.
    pub restore: String,
    /// In the order they belong at the top of their chains.
    pub jumps: Vec<IptablesJump>,
    pub rejected: Vec<RejectedServicePort>,
    pub chains: u32,
    pub rules: u32,
    pub plan_ms: f64,
}

#[napi]
pub struct IptablesRules {
    desired: Desired,
    cfg: IptablesConfig,
    /// The chains of the last restore that landed, and of the one in flight.
    applied: BTreeMap<TableName, BTreeSet<String>>,
    pending: Option<BTreeMap<TableName, BTreeSet<String>>>,
}

fn config(opts: &IptablesOptions) -> napi::Result<IptablesConfig> {
    let family = parse_family(&opts.family).map_err(to_napi)?;
    let detector = match &opts.local_detector {
        None => None,
        Some(d) => Some(detector(d, family, &opts.family)?),
    };
    let masquerade_bit = opts.masquerade_bit.unwrap_or(14);
    if masquerade_bit > 31 {
        return Err(coded(Code::InvalidOption, format!("masqueradeBit must be 0-31, got {masquerade_bit}")));
    }
    Ok(IptablesConfig { family, detector, masquerade_all: opts.masquerade_all.unwrap_or(false), masquerade_bit })
}

#[napi]
impl IptablesRules {
    #[napi(constructor, catch_unwind)]
    pub fn new(opts: IptablesOptions) -> napi::Result<Self> {
        let cfg = config(&opts)?;
        Ok(Self { desired: Desired::new(cfg.family), cfg, applied: BTreeMap::new(), pending: None })
    }

    /// Takes the changes and plans the whole ruleset (every owned chain is rewritten: the
    /// restore is one transaction per table either way).
    #[napi(catch_unwind)]
    pub fn plan(&mut self, req: SyncRequest) -> napi::Result<IptablesPlan> {
        let started = std::time::Instant::now();
        let (records, bad) = wire::decode(&req.upserts).map_err(to_napi)?;
        if let Some(n) = req.node {
            self.desired.set_node(n.node_port_all, &n.node_port_ips, &n.node_ips).map_err(|e| coded(Code::InvalidOption, e))?;
        }
        let mut rejected = if req.full { self.desired.replace_all(&records) } else { self.desired.update(&records, &req.deletes) };
        rejected.extend(bad);
        let rs = build(&self.desired, &self.cfg);
        let v6 = self.cfg.family == Family::Ip6;
        let now: BTreeMap<TableName, BTreeSet<String>> =
            rs.tables.iter().map(|(t, table)| (*t, table.chains.iter().map(|c| c.name.clone()).collect())).collect();
        let stale: Vec<(TableName, Vec<String>)> = self
            .applied
            .iter()
            .map(|(t, before)| (*t, before.difference(now.get(t).unwrap_or(&BTreeSet::new())).cloned().collect::<Vec<_>>()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let restore = render_restore(&rs.tables, &stale, v6);
        let chains = rs.tables.iter().map(|(_, t)| t.chains.len()).sum::<usize>() as u32;
        let rules = rs.tables.iter().flat_map(|(_, t)| &t.chains).map(|c| c.rules.len()).sum::<usize>() as u32;
        let jumps = rs
            .jumps
            .iter()
            .map(|(t, c, r)| IptablesJump { table: t.as_str().into(), chain: (*c).into(), args: rule_args(r, v6) })
            .collect();
        self.pending = Some(now);
        Ok(IptablesPlan {
            restore,
            jumps,
            rejected: rejected.into_iter().map(|r| RejectedServicePort { key: r.key, reason: r.reason }).collect(),
            chains,
            rules,
            plan_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    /// The last plan landed (or not: then its stale chains are deleted by the next one).
    #[napi(catch_unwind)]
    pub fn committed(&mut self, ok: bool) {
        if let Some(p) = self.pending.take() {
            if ok {
                self.applied = p;
            } else {
                // Whatever landed, the next restore must clean up both sets.
                for (t, chains) in p {
                    self.applied.entry(t).or_default().extend(chains);
                }
            }
        }
    }

    /// The desired ruleset as iptables-save prints it (golden tests, `plan`, debug).
    #[napi(catch_unwind)]
    pub fn render(&self) -> String {
        let rs = build(&self.desired, &self.cfg);
        render_save(&rs.tables, &rs.jumps, self.cfg.family == Family::Ip6)
    }

    /// `iptables-restore --noflush` input that flushes and deletes every chain of this mode:
    /// the fixed ones, the ones this process applied, and `found` (nat chains another run left,
    /// from iptables-save; only names this mode makes are taken).
    #[napi(catch_unwind)]
    pub fn cleanup_restore(&self, found: Vec<String>) -> String {
        let rs = build(&Desired::new(self.cfg.family), &self.cfg);
        let mut stale: BTreeMap<TableName, BTreeSet<String>> =
            rs.tables.iter().map(|(t, table)| (*t, table.chains.iter().map(|c| c.name.clone()).collect())).collect();
        for (t, chains) in &self.applied {
            stale.entry(*t).or_default().extend(chains.iter().cloned());
        }
        stale.entry(TableName::Nat).or_default().extend(found.into_iter().filter(|c| is_service_chain(c)));
        let empty: Vec<_> = rs.tables.iter().map(|(t, _)| (*t, Default::default())).collect();
        let stale: Vec<(TableName, Vec<String>)> = stale.into_iter().map(|(t, v)| (t, v.into_iter().collect())).collect();
        render_restore(&empty, &stale, self.cfg.family == Family::Ip6)
    }

    /// The jumps from the built-in chains this mode keeps (for `--cleanup` to delete).
    #[napi(catch_unwind)]
    pub fn jumps(&self) -> Vec<IptablesJump> {
        let rs = build(&Desired::new(self.cfg.family), &self.cfg);
        let v6 = self.cfg.family == Family::Ip6;
        rs.jumps.iter().map(|(t, c, r)| IptablesJump { table: t.as_str().into(), chain: (*c).into(), args: rule_args(r, v6) }).collect()
    }
}

/// A per-ServicePort chain name as names.rs makes them: a prefix and 16 base32 characters.
fn is_service_chain(name: &str) -> bool {
    ["KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-"].iter().any(|p| {
        name.strip_prefix(p).is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)))
    })
}
