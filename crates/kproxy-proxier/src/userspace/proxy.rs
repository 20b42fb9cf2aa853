//! Where userspace mode's Services and frontends go: the proxy threads (kproxy-userspace's
//! engine, one per process for both families), or a fake that keeps them in memory and
//! answers listen failures the way the kernel would (tests, `plan`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kproxy_userspace::{Engine, EngineOptions, Frontend, FrontendKey, LocalSources, ServiceSpec, Snapshot};

use crate::error::{Code, ProxierError};

/// EADDRINUSE, as the fake answers a frontend someone else holds.
pub const EADDRINUSE: i32 = 98;

#[derive(Debug, Default)]
pub struct FakeProxy {
    pub services: BTreeMap<String, ServiceSpec>,
    pub frontends: BTreeMap<FrontendKey, Frontend>,
    /// Frontends another process listens on: opening one fails.
    pub taken: BTreeSet<FrontendKey>,
    pub local_sources: [LocalSources; 2],
}

pub enum ProxySide {
    /// Not started yet: `--cleanup` and other modes' start-up cleanup never start threads.
    Pending(EngineOptions),
    Engine(Arc<Engine>),
    Fake(FakeProxy),
}

impl ProxySide {
    /// Starts (or joins) the process's proxy threads; the first sync calls it.
    pub fn start(&mut self) -> Result<(), ProxierError> {
        if let ProxySide::Pending(opts) = self {
            let e = Engine::shared(opts.clone()).map_err(|e| ProxierError::new(Code::Internal, e.to_string()))?;
            *self = ProxySide::Engine(e);
        }
        Ok(())
    }

    pub fn upsert(&mut self, spec: &ServiceSpec) {
        match self {
            ProxySide::Engine(e) => e.upsert_service(spec),
            ProxySide::Pending(_) => {}
            ProxySide::Fake(f) => {
                f.services.insert(spec.name.clone(), spec.clone());
            }
        }
    }

    /// Removes the Service and closes its frontends.
    pub fn remove(&mut self, name: &str) {
        match self {
            ProxySide::Engine(e) => {
                e.remove_service(name);
            }
            ProxySide::Pending(_) => {}
            ProxySide::Fake(f) => {
                f.services.remove(name);
                f.frontends.retain(|_, fe| fe.service != name);
            }
        }
    }

    /// Listens (or re-routes); Err: the errno (if any) and the reason.
    pub fn open(&mut self, key: FrontendKey, fe: &Frontend) -> Result<(), (Option<i32>, String)> {
        match self {
            ProxySide::Engine(e) => e.open(key, fe).map_err(|err| (err.errno(), err.to_string())),
            ProxySide::Pending(_) => Err((None, "the proxy is not started".into())),
            ProxySide::Fake(f) => {
                if !f.services.contains_key(&fe.service) {
                    return Err((None, format!("no Service {:?} in the proxy", fe.service)));
                }
                if f.taken.contains(&key) && !f.frontends.contains_key(&key) {
                    return Err((Some(EADDRINUSE), format!("cannot listen on {}: address in use", key.addr)));
                }
                f.frontends.insert(key, fe.clone());
                Ok(())
            }
        }
    }

    pub fn close_all(&mut self, keys: &[FrontendKey]) -> usize {
        match self {
            ProxySide::Engine(e) => e.close_all(keys),
            ProxySide::Pending(_) => 0,
            ProxySide::Fake(f) => keys.iter().filter(|k| f.frontends.remove(k).is_some()).count(),
        }
    }

    pub fn set_local_sources(&mut self, ipv6: bool, v: LocalSources) {
        match self {
            ProxySide::Engine(e) => e.set_local_sources(ipv6, v),
            ProxySide::Pending(_) => {}
            ProxySide::Fake(f) => f.local_sources[ipv6 as usize] = v,
        }
    }

    pub fn stats(&self, name: &str) -> Option<Snapshot> {
        match self {
            ProxySide::Engine(e) => e.service_stats(name),
            ProxySide::Pending(_) => None,
            ProxySide::Fake(f) => f.services.contains_key(name).then(Snapshot::default),
        }
    }
}
