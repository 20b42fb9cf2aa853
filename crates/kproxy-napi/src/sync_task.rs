//! The async tasks every mode's binding shares: sync and cleanup run a
//! `Syncer` on the libuv pool, and no panic crosses into Node.

use std::sync::{Arc, Mutex, MutexGuard};

use napi::{Env, Task};
use napi_derive::napi;

use kproxy_proxier::{Code, Mode, Outcome, Syncer};

use crate::errors::{coded, no_panic, to_napi};

/// One sync's changes. `upserts` is wire text (crates/kproxy-proxier/src/wire.rs).
/// With `full`, `upserts` is the complete desired state and the rules are replaced.
#[napi(object)]
pub struct SyncRequest {
    pub full: bool,
    pub upserts: String,
    pub deletes: Vec<String>,
    /// Also return the transaction as text (for debug logs; costs time at scale).
    pub explain: Option<bool>,
    /// Node addressing; omitted: unchanged.
    pub node: Option<NodeAddressing>,
    /// ServiceCIDR ranges of this family; omitted: unchanged.
    pub service_cidrs: Option<Vec<String>>,
}

#[napi(object)]
pub struct NodeAddressing {
    pub node_port_all: bool,
    pub node_port_ips: Vec<String>,
    pub node_ips: Vec<String>,
}

#[napi(object)]
pub struct RejectedServicePort {
    pub key: String,
    pub reason: String,
}

#[napi(object)]
pub struct SyncReport {
    pub full: bool,
    pub objects: u32,
    pub messages: u32,
    pub bytes: u32,
    pub duration_ms: f64,
    pub plan_ms: f64,
    pub commit_ms: f64,
    pub rejected: Vec<RejectedServicePort>,
    pub text: Option<String>,
    /// The best-effort transaction after the sync (stale chains, affinity purges) failed.
    pub cleanup_failed: bool,
    /// A quick sync (`syncNow`) left that transaction for `afterCommit`.
    pub after_commit_pending: bool,
}

impl From<Outcome> for SyncReport {
    fn from(o: Outcome) -> Self {
        SyncReport {
            full: o.full,
            objects: o.stats.objects as u32,
            messages: o.stats.messages as u32,
            bytes: o.stats.bytes as u32,
            duration_ms: o.duration_ms,
            plan_ms: o.plan_ms,
            commit_ms: o.commit_ms,
            rejected: o.rejected.into_iter().map(|r| RejectedServicePort { key: r.key, reason: r.reason }).collect(),
            text: o.text,
            cleanup_failed: o.cleanup_failed,
            after_commit_pending: o.after_commit_pending,
        }
    }
}

pub type Shared<M> = Arc<Mutex<Syncer<M>>>;

pub fn lock<M: Mode>(m: &Mutex<Syncer<M>>) -> MutexGuard<'_, Syncer<M>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One sync, on the calling thread.
pub fn run_sync<M: Mode>(syncer: &Shared<M>, req: SyncRequest) -> napi::Result<SyncReport> {
    guarded(syncer, |s| {
        if let Some(n) = &req.node {
            s.set_node(n.node_port_all, &n.node_port_ips, &n.node_ips).map_err(to_napi)?;
        }
        if let Some(c) = &req.service_cidrs {
            s.set_service_cidrs(c).map_err(to_napi)?;
        }
        s.sync(req.full, &req.upserts, &req.deletes, req.explain.unwrap_or(false)).map(SyncReport::from).map_err(to_napi)
    })
}

/// A small partial sync on the calling thread, or None when it belongs on the pool (a full
/// replace, a foreign change, node or ServiceCIDR changes); nothing changed then.
pub fn run_sync_quick<M: Mode>(syncer: &Shared<M>, req: SyncRequest) -> napi::Result<Option<SyncReport>> {
    if req.full || req.node.is_some() || req.service_cidrs.is_some() || req.explain.unwrap_or(false) {
        return Ok(None);
    }
    guarded(syncer, |s| s.sync_quick(&req.upserts, &req.deletes).map(|o| o.map(SyncReport::from)).map_err(to_napi))
}

/// Runs `f` on the locked syncer; after any failure (a caught panic included) the kernel
/// state is unknown.
fn guarded<M: Mode, T>(syncer: &Shared<M>, f: impl FnOnce(&mut Syncer<M>) -> napi::Result<T>) -> napi::Result<T> {
    let result = no_panic(|| f(&mut lock(syncer)));
    if result.is_err() {
        lock(syncer).invalidate();
    }
    result
}

/// The after-commit work a quick sync left, on the pool: `true` if it failed.
pub struct AfterCommitTask<M: Mode> {
    pub syncer: Shared<M>,
}

impl<M: Mode> Task for AfterCommitTask<M> {
    type Output = bool;
    type JsValue = bool;

    fn compute(&mut self) -> napi::Result<bool> {
        let syncer = self.syncer.clone();
        no_panic(|| Ok(!lock(&syncer).run_after_commit()))
    }

    fn resolve(&mut self, _env: Env, output: bool) -> napi::Result<bool> {
        Ok(output)
    }
}

pub struct SyncTask<M: Mode> {
    pub syncer: Shared<M>,
    pub req: Option<SyncRequest>,
}

impl<M: Mode> Task for SyncTask<M> {
    type Output = SyncReport;
    type JsValue = SyncReport;

    fn compute(&mut self) -> napi::Result<SyncReport> {
        let req = self.req.take().ok_or_else(|| coded(Code::Internal, "sync task ran twice"))?;
        run_sync(&self.syncer, req)
    }

    fn resolve(&mut self, _env: Env, output: SyncReport) -> napi::Result<SyncReport> {
        Ok(output)
    }
}

pub struct CleanupTask<M: Mode> {
    pub syncer: Shared<M>,
}

impl<M: Mode> Task for CleanupTask<M> {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> napi::Result<()> {
        let syncer = self.syncer.clone();
        no_panic(|| lock(&syncer).cleanup().map_err(to_napi))
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> napi::Result<()> {
        Ok(())
    }
}

/// One job on a mode's state, run on the libuv pool with the state locked; no panic
/// crosses into Node. The IPVS and userspace bindings run every task through it.
pub struct StateTask<S: Send + 'static, R> {
    state: Arc<Mutex<S>>,
    job: Option<StateJob<S, R>>,
}

type StateJob<S, R> = Box<dyn FnOnce(&mut S) -> napi::Result<R> + Send>;

impl<S: Send + 'static, R> StateTask<S, R> {
    pub fn new(state: &Arc<Mutex<S>>, job: impl FnOnce(&mut S) -> napi::Result<R> + Send + 'static) -> Self {
        Self { state: state.clone(), job: Some(Box::new(job)) }
    }
}

impl<S: Send + 'static, R: napi::bindgen_prelude::ToNapiValue + napi::bindgen_prelude::TypeName + Send + 'static> Task for StateTask<S, R> {
    type Output = R;
    type JsValue = R;

    fn compute(&mut self) -> napi::Result<R> {
        let job = self.job.take().ok_or_else(|| coded(Code::Internal, "task ran twice"))?;
        let state = self.state.clone();
        no_panic(move || job(&mut state.lock().unwrap_or_else(|p| p.into_inner())))
    }

    fn resolve(&mut self, _env: Env, output: R) -> napi::Result<R> {
        Ok(output)
    }
}
