//! The iptables mode's binding: the desired state and the ruleset in Rust, the restore input
//! out. The agent applies it with `iptables-restore --noflush` (the tool every node has) and
//! ensures the jumps from the built-in chains; then tells this side whether it landed.

use napi_derive::napi;

use kproxy_nftables::Family;
use kproxy_proxier::iptables::restore::{rule_args, Rule, TableName};
use kproxy_proxier::iptables::{IptablesConfig, IptablesSync, DISPATCH_ABOVE};
use kproxy_proxier::{wire, Code};

use crate::errors::{coded, to_napi};
use crate::options::{common, LocalDetectorOption};
use crate::sync_task::{RejectedServicePort, SyncRequest};

#[napi(object)]
pub struct IptablesOptions {
    /// "IPv4" or "IPv6".
    pub family: String,
    pub local_detector: Option<LocalDetectorOption>,
    pub masquerade_all: Option<bool>,
    pub masquerade_bit: Option<u32>,
    /// nat KUBE-SERVICES becomes a dispatch tree above this many rules (kproxy's default when unset).
    pub dispatch_above: Option<u32>,
    /// The benchmark's baseline: partial syncs write every shared chain, as upstream's do.
    pub upstream_partial: Option<bool>,
    /// `--iptables-localhost-nodeports` (default true).
    pub localhost_node_ports: Option<bool>,
    /// KUBE-FORWARD's conntrack-INVALID drop (default true; false with tcp_be_liberal).
    pub drop_invalid: Option<bool>,
}

/// A rule kproxy keeps in a built-in chain: `iptables -t <table> -I <chain> <args>`.
#[napi(object)]
pub struct IptablesJump {
    pub table: String,
    pub chain: String,
    pub args: Vec<String>,
}

#[napi(object)]
pub struct IptablesChain {
    pub table: String,
    pub chain: String,
}

#[napi(object)]
pub struct IptablesCleanup {
    /// Delete these first: a chain still referenced cannot be deleted.
    pub jumps: Vec<IptablesJump>,
    pub restore: String,
}

#[napi(object)]
pub struct IptablesPlan {
    /// `iptables-restore --noflush` inputs, applied in turn: the chains to write and the ones to
    /// delete (none when nothing changed; one unless chunking is on).
    pub restores: Vec<String>,
    /// Every chain written (a full sync, or the first after a failed restore).
    pub full: bool,
    /// In the order they belong at the top of their chains.
    pub jumps: Vec<IptablesJump>,
    /// Chains to make exist (`-N`, an existing one is fine) before the jumps: never flushed.
    pub ensure_chains: Vec<IptablesChain>,
    pub rejected: Vec<RejectedServicePort>,
    pub chains: u32,
    pub rules: u32,
    /// Rules written, per table.
    pub filter_rules: u32,
    pub nat_rules: u32,
    /// Rules owned, per table.
    pub filter_total: u32,
    pub nat_total: u32,
    pub plan_ms: f64,
}

#[napi]
pub struct IptablesRules {
    sync: IptablesSync,
    v6: bool,
}

fn config(opts: &IptablesOptions) -> napi::Result<IptablesConfig> {
    let (family, detector, masquerade_bit) = common(&opts.family, &opts.local_detector, opts.masquerade_bit)?;
    Ok(IptablesConfig {
        masquerade_all: opts.masquerade_all.unwrap_or(false),
        masquerade_bit,
        dispatch_above: opts.dispatch_above.map_or(DISPATCH_ABOVE, |n| n as usize),
        upstream_partial: opts.upstream_partial.unwrap_or(false),
        localhost_nodeports: opts.localhost_node_ports.unwrap_or(true),
        drop_invalid: opts.drop_invalid.unwrap_or(true),
        ..IptablesConfig::new(family, detector)
    })
}

fn jumps(v: &[(TableName, &'static str, Rule)], v6: bool) -> Vec<IptablesJump> {
    v.iter().map(|(t, c, r)| IptablesJump { table: t.as_str().into(), chain: (*c).into(), args: rule_args(r, v6) }).collect()
}

#[napi]
impl IptablesRules {
    #[napi(constructor, catch_unwind)]
    pub fn new(opts: IptablesOptions) -> napi::Result<Self> {
        let cfg = config(&opts)?;
        let v6 = cfg.family == Family::Ip6;
        Ok(Self { sync: IptablesSync::new(cfg), v6 })
    }

    /// Per-Service chains found in the kernel's nat table (iptables-save): deleted by the next
    /// restore unless still wanted.
    #[napi(catch_unwind)]
    pub fn adopt(&mut self, nat_chains: Vec<String>) {
        self.sync.adopt(&nat_chains);
    }

    /// Takes the changes and plans the restore: every chain on a full sync, else the changed ones.
    #[napi(catch_unwind)]
    pub fn plan(&mut self, req: SyncRequest) -> napi::Result<IptablesPlan> {
        let started = std::time::Instant::now();
        let (records, bad) = wire::decode(&req.upserts).map_err(to_napi)?;
        if let Some(n) = req.node {
            self.sync.desired_mut().set_node(n.node_port_all, &n.node_port_ips, &n.node_ips).map_err(|e| coded(Code::InvalidOption, e))?;
        }
        let plan = self.sync.plan(req.full, &records, &req.deletes);
        let in_table = |v: &[(TableName, usize)], t: TableName| v.iter().filter(|(n, _)| *n == t).map(|(_, n)| *n as u32).sum();
        let rejected = bad.into_iter().chain(plan.rejected).map(|r| RejectedServicePort { key: r.key, reason: r.reason }).collect();
        Ok(IptablesPlan {
            restores: plan.restores,
            jumps: jumps(&plan.jumps, self.v6),
            ensure_chains: plan.ensure.iter().map(|(t, c)| IptablesChain { table: t.as_str().into(), chain: (*c).into() }).collect(),
            rejected,
            chains: plan.chains as u32,
            rules: plan.rules.iter().map(|(_, n)| *n as u32).sum(),
            filter_rules: in_table(&plan.rules, TableName::Filter),
            nat_rules: in_table(&plan.rules, TableName::Nat),
            filter_total: in_table(&plan.total, TableName::Filter),
            nat_total: in_table(&plan.total, TableName::Nat),
            full: plan.full,
            plan_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    /// Splits each plan into restores of at most `max_jumps` jump rules, applied in turn (0: one
    /// restore): iptables-nft-restore's time grows with the jumps of one input times their targets.
    #[napi(catch_unwind)]
    pub fn set_chunking(&mut self, max_jumps: u32) {
        self.sync.set_chunking((max_jumps > 0).then_some(max_jumps as usize));
    }

    /// Whether the last plan's restores all landed.
    #[napi(catch_unwind)]
    pub fn committed(&mut self, ok: bool) {
        self.sync.committed(ok);
    }

    /// The desired ruleset as iptables-save prints it (golden tests, `plan`, debug).
    #[napi(catch_unwind)]
    pub fn render(&self) -> String {
        self.sync.render()
    }

    /// `--cleanup`, as upstream's: the jumps to delete, then the restore that removes the chains
    /// (upstream's list, and the per-Service ones among `nat_chains`, iptables-save's).
    #[napi(catch_unwind)]
    pub fn cleanup(&self, nat_chains: Vec<String>) -> IptablesCleanup {
        let (j, restore) = self.sync.cleanup(&nat_chains);
        IptablesCleanup { jumps: jumps(&j, self.v6), restore }
    }
}
