//! The nftables mode's binding: options in, the shared sync tasks out.

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::AsyncTask;
use napi_derive::napi;

use kproxy_nftables::Family;
use kproxy_proxier::nftables::{layout::TABLE, LayoutConfig, NftablesMode};
use kproxy_proxier::{foreign, Syncer};

use crate::errors::to_napi;
use crate::options::{common, LocalDetectorOption};
use crate::sync_task::{lock, run_sync_quick, AfterCommitTask, CleanupTask, Shared, SyncReport, SyncRequest, SyncTask};

#[napi(object)]
pub struct NftablesOptions {
    /// "IPv4" or "IPv6".
    pub family: String,
    /// detect-local: mode (ClusterCIDR, NodeCIDR, BridgeInterface, InterfaceNamePrefix) and its value.
    pub local_detector: Option<LocalDetectorOption>,
    pub masquerade_all: Option<bool>,
    pub masquerade_bit: Option<u32>,
    /// Apply to an in-memory fake with kernel semantics instead of the kernel.
    pub fake: Option<bool>,
}

#[napi]
pub struct NftablesProxier {
    syncer: Shared<NftablesMode>,
    /// Kept outside the syncer: the drift poll must not wait for a sync holding its lock.
    family: Family,
}

fn layout(opts: &NftablesOptions) -> napi::Result<LayoutConfig> {
    let (family, detector, masquerade_bit) = common(&opts.family, &opts.local_detector, opts.masquerade_bit)?;
    Ok(LayoutConfig {
        family,
        detector,
        masquerade_all: opts.masquerade_all.unwrap_or(false),
        masquerade_bit,
        nodeports_all: false,
        service_cidrs: Vec::new(),
    })
}

#[napi]
impl NftablesProxier {
    #[napi(constructor, catch_unwind)]
    pub fn new(opts: NftablesOptions) -> napi::Result<Self> {
        let cfg = layout(&opts)?;
        let family = cfg.family;
        let syncer = Syncer::new(NftablesMode::new(cfg), opts.fake.unwrap_or(false));
        Ok(Self { syncer: Arc::new(Mutex::new(syncer)), family })
    }

    /// Whether another process changed this family's table since the last sync, as the
    /// kernel's ruleset notifications tell (null: none to go by, e.g. the fake). Cheap: the
    /// agent polls it and syncs when it turns true (the sync is then full for this family).
    #[napi(catch_unwind)]
    pub fn foreign_change_pending(&self) -> Option<bool> {
        foreign::pending(self.family, TABLE)
    }

    /// Times (per process, both families) the notifications' socket buffer overflowed.
    #[napi(catch_unwind)]
    pub fn monitor_overflows(&self) -> f64 {
        foreign::overflows() as f64
    }

    /// Applies the changes and programs them as one atomic transaction.
    #[napi(ts_return_type = "Promise<SyncReport>")]
    pub fn sync(&self, req: SyncRequest) -> AsyncTask<SyncTask<NftablesMode>> {
        AsyncTask::new(SyncTask { syncer: self.syncer.clone(), req: Some(req) })
    }

    /// `sync` on the calling thread, for small partial syncs (their plan and commit take a
    /// fraction of a millisecond, less than a task's two thread hand-offs). null: it declined,
    /// changing nothing (a full replace or a foreign change): use `sync`. Its after-commit
    /// work is left for `afterCommit`.
    #[napi]
    pub fn sync_now(&self, req: SyncRequest) -> napi::Result<Option<SyncReport>> {
        run_sync_quick(&self.syncer, req)
    }

    /// The after-commit work (stale chains, affinity purges) a `syncNow` left, on the pool.
    /// Resolves true if it failed (it is retried after the next sync).
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn after_commit(&self) -> AsyncTask<AfterCommitTask<NftablesMode>> {
        AsyncTask::new(AfterCommitTask { syncer: self.syncer.clone() })
    }

    /// The desired ruleset as canonical sorted `nft -f` text.
    #[napi(catch_unwind)]
    pub fn render(&self) -> String {
        lock(&self.syncer).render()
    }

    /// Traces one new connection through the desired ruleset; JSON (see ts/proxier/types.ts TraceResult).
    #[napi(catch_unwind)]
    #[allow(clippy::too_many_arguments)]
    pub fn explain(
        &self,
        src: String,
        dst: String,
        port: u32,
        protocol: String,
        from_node: bool,
        iif: String,
        local_cidrs: Vec<String>,
    ) -> napi::Result<String> {
        let g = lock(&self.syncer);
        let tx = g.full_transaction();
        kproxy_proxier::nftables::trace::explain(&tx, &src, &dst, port, &protocol, from_node, &iif, &local_cidrs).map_err(to_napi)
    }

    /// The fake backend's current table (sorted text); empty for the kernel backend.
    #[napi(catch_unwind)]
    pub fn fake_dump(&self) -> String {
        let g = lock(&self.syncer);
        let family = g.desired().family();
        g.fake().map(|f| f.dump(family, TABLE)).unwrap_or_default()
    }

    /// Test hook for the fake backend: another process deleted our table.
    #[napi(catch_unwind)]
    pub fn fake_delete_table(&self) {
        let mut g = lock(&self.syncer);
        let family = g.desired().family();
        if let Some(f) = g.fake_mut() {
            f.remove_table(family, TABLE);
        }
    }

    /// Test hook for the fake backend: the next batch is refused with `errno`.
    #[napi(catch_unwind)]
    pub fn fake_fail_next(&self, errno: i32) {
        if let Some(f) = lock(&self.syncer).fake_mut() {
            f.fail_next(errno);
        }
    }

    /// Deletes this family's kproxy table (missing is fine).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn cleanup(&self) -> AsyncTask<CleanupTask<NftablesMode>> {
        AsyncTask::new(CleanupTask { syncer: self.syncer.clone() })
    }
}
