//! The conntrack reconciler's binding: one pass (dump, decide, delete) on the libuv pool.
// Test builds compile #[napi] exports out, and nothing in Rust calls them.
#![cfg_attr(test, allow(dead_code))]

use napi::bindgen_prelude::AsyncTask;
use napi::{Env, Task};
use napi_derive::napi;

use kproxy_conntrack::{parse_services, reconcile, CtError, Family};
use kproxy_proxier::{Code, ProxierError};

use crate::errors::{coded, no_panic, to_napi};

#[napi(object)]
pub struct ConntrackReport {
    /// UDP flows of the family in the table.
    pub flows: u32,
    /// Flows found stale.
    pub stale: u32,
    pub deleted: u32,
    /// Stale flows gone before their delete (ENOENT).
    pub missing: u32,
    /// Deletes the kernel refused otherwise; `failedErrno` is the first one's errno.
    pub failed: u32,
    pub failed_errno: Option<i32>,
    /// The table changed during the dump (NLM_F_DUMP_INTR): the pass used what it got.
    pub interrupted: bool,
    pub duration_ms: f64,
}

pub struct ReconcileTask {
    family: String,
    services: String,
}

fn ct_error(e: CtError) -> napi::Error {
    let code = match e {
        CtError::Io(_) => Code::NetlinkIo,
        CtError::Kernel { .. } => Code::KernelRejected,
        CtError::NoReply(_) => Code::NoAck,
        CtError::Input(_) => Code::InvalidOption,
    };
    to_napi(ProxierError { code, message: e.to_string(), errno: e.errno() })
}

impl Task for ReconcileTask {
    type Output = ConntrackReport;
    type JsValue = ConntrackReport;

    fn compute(&mut self) -> napi::Result<ConntrackReport> {
        no_panic(|| {
            let family = Family::parse(&self.family)
                .ok_or_else(|| coded(Code::InvalidOption, format!("family must be IPv4 or IPv6, got {:?}", self.family)))?;
            let services = parse_services(&self.services, family).map_err(ct_error)?;
            let r = reconcile(family, &services).map_err(ct_error)?;
            Ok(ConntrackReport {
                flows: r.flows as u32,
                stale: r.stale as u32,
                deleted: r.outcome.deleted as u32,
                missing: r.outcome.missing as u32,
                failed: r.outcome.failed as u32,
                failed_errno: r.outcome.first_errno,
                interrupted: r.interrupted,
                duration_ms: r.duration.as_secs_f64() * 1000.0,
            })
        })
    }

    fn resolve(&mut self, _env: Env, output: ConntrackReport) -> napi::Result<ConntrackReport> {
        Ok(output)
    }
}

/// Deletes the family's stale UDP conntrack flows (upstream's CleanStaleEntries).
/// `services`: one UDP ServicePort per line, `VIPS PORT NODEPORT ENDPOINTS`
/// (crates/kproxy-conntrack/src/decide.rs), serving endpoints only.
#[napi(ts_return_type = "Promise<ConntrackReport>")]
pub fn reconcile_conntrack(family: String, services: String) -> AsyncTask<ReconcileTask> {
    AsyncTask::new(ReconcileTask { family, services })
}
