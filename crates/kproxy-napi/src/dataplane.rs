//! `NftDataplane`: one IP family's kproxy table, programmed over netlink (or
//! applied to the in-memory fake when `fake` is set).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use napi::bindgen_prelude::AsyncTask;
use napi::{Env, Task};
use napi_derive::napi;

use kproxy_nftables::{Cidr, Conn, Fake, Family, NftError, Op, Transaction};
use kproxy_rules::{LayoutConfig, Model};

use crate::errors::{coded, from_nft, no_panic};

/// One sync's changes. `upserts` is the wire text of `wire.rs`. With `full`,
/// `upserts` is the complete desired state and the table is replaced.
#[napi(object)]
pub struct SyncRequest {
    pub full: bool,
    pub upserts: String,
    pub deletes: Vec<String>,
    /// Also return the transaction as nft text (for debug logs; costs time at scale).
    pub explain: Option<bool>,
}

#[napi(object)]
pub struct RejectedSpec {
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
    /// Time spent planning (validate, diff, build) and committing (encode, kernel).
    pub plan_ms: f64,
    pub commit_ms: f64,
    pub rejected: Vec<RejectedSpec>,
    /// The committed transaction as nft text, when `explain` was set.
    pub text: Option<String>,
}

#[napi(object)]
pub struct DataplaneOptions {
    /// "IPv4" or "IPv6".
    pub family: String,
    pub cluster_cidr: Option<String>,
    pub masquerade_all: Option<bool>,
    pub masquerade_bit: Option<u32>,
    /// Apply to an in-memory fake with kernel semantics instead of the kernel.
    pub fake: Option<bool>,
}

enum Backend {
    Kernel { conn: Option<Conn>, last_genid: Option<u32> },
    Fake(Fake),
}

struct Inner {
    model: Model,
    backend: Backend,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn parse_family(s: &str) -> napi::Result<Family> {
    match s {
        "IPv4" => Ok(Family::Ip),
        "IPv6" => Ok(Family::Ip6),
        _ => Err(coded("E_INVALID_OPTION", format!("family must be IPv4 or IPv6, got {s:?}"))),
    }
}

#[napi]
pub struct NftDataplane {
    inner: Arc<Mutex<Inner>>,
}

#[napi]
impl NftDataplane {
    #[napi(constructor, catch_unwind)]
    pub fn new(opts: DataplaneOptions) -> napi::Result<Self> {
        let family = parse_family(&opts.family)?;
        let cluster_cidr = match opts.cluster_cidr.as_deref() {
            None | Some("") => None,
            Some(s) => {
                let c: Cidr = s.parse().map_err(|e| coded("E_INVALID_OPTION", e))?;
                if Family::of(&c.addr) != family {
                    return Err(coded("E_INVALID_OPTION", format!("clusterCidr {c} is not {}", opts.family)));
                }
                Some(c)
            }
        };
        let masquerade_bit = opts.masquerade_bit.unwrap_or(14);
        if masquerade_bit > 31 {
            return Err(coded("E_INVALID_OPTION", format!("masqueradeBit must be 0-31, got {masquerade_bit}")));
        }
        let cfg = LayoutConfig { family, cluster_cidr, masquerade_all: opts.masquerade_all.unwrap_or(false), masquerade_bit };
        let backend =
            if opts.fake.unwrap_or(false) { Backend::Fake(Fake::new()) } else { Backend::Kernel { conn: None, last_genid: None } };
        Ok(Self { inner: Arc::new(Mutex::new(Inner { model: Model::new(cfg), backend })) })
    }

    /// Applies the changes and programs them as one atomic transaction.
    #[napi(ts_return_type = "Promise<SyncReport>")]
    pub fn sync(&self, req: SyncRequest) -> AsyncTask<SyncTask> {
        AsyncTask::new(SyncTask { inner: self.inner.clone(), req: Some(req) })
    }

    /// The desired ruleset as canonical sorted `nft -f` text.
    #[napi(catch_unwind)]
    pub fn render(&self) -> String {
        lock(&self.inner).model.render_text()
    }

    /// The fake backend's current table (sorted text); empty for the kernel backend.
    #[napi(catch_unwind)]
    pub fn fake_dump(&self) -> String {
        let g = lock(&self.inner);
        match &g.backend {
            Backend::Fake(f) => f.dump(g.model.config().family, kproxy_rules::layout::TABLE),
            Backend::Kernel { .. } => String::new(),
        }
    }

    /// Test hook for the fake backend: another process deleted our table.
    #[napi(catch_unwind)]
    pub fn fake_delete_table(&self) {
        let mut g = lock(&self.inner);
        let family = g.model.config().family;
        if let Backend::Fake(f) = &mut g.backend {
            f.remove_table(family, kproxy_rules::layout::TABLE);
        }
    }

    /// Deletes this family's kproxy table (missing is fine).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn cleanup(&self) -> AsyncTask<CleanupTask> {
        AsyncTask::new(CleanupTask { inner: self.inner.clone() })
    }
}

pub struct SyncTask {
    inner: Arc<Mutex<Inner>>,
    req: Option<SyncRequest>,
}

impl Inner {
    fn conn(conn: &mut Option<Conn>) -> Result<&mut Conn, NftError> {
        Ok(match conn {
            Some(c) => c,
            None => conn.insert(Conn::open()?),
        })
    }

    /// The kernel's ruleset generation now (None for the fake).
    fn read_genid(&mut self) -> Result<Option<u32>, NftError> {
        match &mut self.backend {
            Backend::Fake(_) => Ok(None),
            Backend::Kernel { conn, .. } => Ok(Some(Self::conn(conn)?.genid()?)),
        }
    }

    /// Has anyone else committed to nftables since our last batch (`now` is the current genid)?
    fn foreign_change(&self, now: Option<u32>) -> bool {
        match &self.backend {
            Backend::Fake(f) => !f.has_table(self.model.config().family, kproxy_rules::layout::TABLE),
            Backend::Kernel { last_genid, .. } => last_genid.is_none() || *last_genid != now,
        }
    }

    /// Commits `tx` as one batch that the kernel refuses (ERESTART) unless the
    /// ruleset is still at generation `expected`. Empty transactions send nothing
    /// and leave the recorded generation alone, so foreign commits stay visible.
    fn commit(&mut self, tx: &Transaction, expected: Option<u32>) -> Result<kproxy_nftables::CommitStats, NftError> {
        match &mut self.backend {
            Backend::Fake(f) => {
                f.apply(tx).map_err(|e| NftError::Kernel { errno: e.errno, what: e.what, detail: None })?;
                Ok(kproxy_nftables::CommitStats { messages: tx.ops.len(), bytes: 0, objects: tx.object_count() })
            }
            Backend::Kernel { conn, last_genid } => {
                if tx.is_empty() {
                    return Ok(kproxy_nftables::CommitStats::default());
                }
                let c = Self::conn(conn)?;
                let genid = match expected {
                    Some(g) => g,
                    None => c.genid()?,
                };
                let stats = c.commit(tx, Some(genid))?;
                // Batches commit one at a time, so ours moved the generation by exactly one.
                *last_genid = Some(genid.wrapping_add(1));
                Ok(stats)
            }
        }
    }

    fn sync(&mut self, req: SyncRequest) -> napi::Result<SyncReport> {
        let start = Instant::now();
        let req_explain = req.explain.unwrap_or(false);
        let (upserts, mut rejected) = crate::wire::parse_upserts(&req.upserts);
        if req.full {
            rejected.extend(self.model.replace_all(&upserts));
        } else {
            rejected.extend(self.model.update(&upserts, &req.deletes));
        }
        // One generation read decides "did someone else change nftables?" and is the
        // generation the batch must still find, so nothing slips in between.
        let genid = self.read_genid().map_err(|e| from_nft(&e))?;
        if self.foreign_change(genid) {
            self.model.invalidate();
        }
        let (mut tx, mut full) = self.model.plan(req.full);
        let planned = Instant::now();
        let mut result = self.commit(&tx, genid);
        if matches!(result, Err(NftError::GenerationChanged)) {
            // Someone committed between our read and our batch: rebuild from scratch once.
            self.model.committed(false);
            (tx, full) = self.model.plan(true);
            let again = self.read_genid().map_err(|e| from_nft(&e))?;
            result = self.commit(&tx, again);
        }
        let stats = match result {
            Ok(s) => s,
            Err(e) => {
                self.model.committed(false);
                return Err(from_nft(&e));
            }
        };
        self.model.committed(true);
        let text = req_explain.then(|| kproxy_nftables::text::render_tx(&tx));
        let commit_ms = planned.elapsed().as_secs_f64() * 1000.0;
        let plan_ms = (planned - start).as_secs_f64() * 1000.0;
        drop(tx);
        if full {
            kproxy_netlink::release_free_memory();
        }
        Ok(SyncReport {
            full,
            objects: stats.objects as u32,
            messages: stats.messages as u32,
            bytes: stats.bytes as u32,
            duration_ms: start.elapsed().as_secs_f64() * 1000.0,
            plan_ms,
            commit_ms,
            rejected: rejected.into_iter().map(|r| RejectedSpec { key: r.key, reason: r.reason }).collect(),
            text,
        })
    }
}

impl Task for SyncTask {
    type Output = SyncReport;
    type JsValue = SyncReport;

    fn compute(&mut self) -> napi::Result<SyncReport> {
        let req = self.req.take().ok_or_else(|| coded("E_INTERNAL", "sync task ran twice"))?;
        let inner = self.inner.clone();
        let task_inner = self.inner.clone();
        let result = no_panic(move || lock(&task_inner).sync(req));
        if result.is_err() {
            // After any failure (a caught panic included) the kernel state is unknown.
            lock(&inner).model.invalidate();
        }
        result
    }

    fn resolve(&mut self, _env: Env, output: SyncReport) -> napi::Result<SyncReport> {
        Ok(output)
    }
}

pub struct CleanupTask {
    inner: Arc<Mutex<Inner>>,
}

impl Task for CleanupTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> napi::Result<()> {
        let inner = self.inner.clone();
        no_panic(move || {
            let mut g = lock(&inner);
            let mut tx = Transaction::new(g.model.config().family, kproxy_rules::layout::TABLE);
            tx.push(Op::DeleteTable);
            g.model.invalidate();
            match g.commit(&tx, None) {
                Ok(_) => Ok(()),
                Err(NftError::Kernel { errno: 2, .. }) => Ok(()), // ENOENT: nothing to clean
                Err(e) => Err(from_nft(&e)),
            }
        })
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> napi::Result<()> {
        Ok(())
    }
}
