//! The engine: a tokio runtime of proxy threads, the Services, and the frontends (one
//! listening socket per address, protocol and port). The agent's sync turns into calls
//! here; each takes effect at once and leaves connections already relaying alone.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

use crate::pool::{Service, ServiceSpec};
use crate::prefix::{LocalSources, Prefix};
use crate::socket::{tcp_listener, udp_socket};
use crate::stats::{EngineCounters, Failure, Snapshot};
use crate::udp::Sessions;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

/// Where a frontend listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrontendKey {
    pub proto: Proto,
    pub addr: SocketAddr,
}

/// Which Service a frontend feeds, and how it routes each client to one of its pools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontend {
    pub service: String,
    pub pool: usize,
    /// Clients from the local sources (this node's pods and addresses) take this pool
    /// instead: upstream's short-circuit of external traffic policy Local.
    pub local_pool: Option<usize>,
    /// Allowed client prefixes; empty allows every client (loadBalancerSourceRanges).
    pub allowed: Vec<Prefix>,
}

#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Proxy threads.
    pub threads: usize,
    pub udp_idle_timeout: Duration,
    /// Copy buffer per direction of each TCP connection.
    pub buffer_bytes: usize,
    /// Bulk flows go zero-copy (splice through a pipe) after their first `SPLICE_AFTER` bytes.
    pub splice: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).min(4);
        Self { threads, udp_idle_timeout: Duration::from_millis(250), buffer_bytes: 64 * 1024, splice: true }
    }
}

/// A frontend's route as the proxy threads read it, swapped whole on change.
pub(crate) struct Binding {
    pub service: Arc<Service>,
    pool: usize,
    local_pool: Option<usize>,
    allowed: Vec<Prefix>,
}

impl Binding {
    /// The pool for `client`, or why it is refused.
    pub fn route(&self, client: IpAddr, local: &LocalSources) -> Result<usize, Failure> {
        if !self.allowed.is_empty() && !self.allowed.iter().any(|p| p.contains(&client)) {
            return Err(Failure::SourceRange);
        }
        let pool = match self.local_pool {
            Some(p) if local.contains(&client) => p,
            _ => self.pool,
        };
        if self.service.has_endpoints(pool) {
            Ok(pool)
        } else {
            Err(Failure::NoEndpoint)
        }
    }
}

#[derive(Clone)]
pub(crate) struct Slot(Arc<RwLock<Arc<Binding>>>);

impl Slot {
    pub fn get(&self) -> Arc<Binding> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, b: Binding) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(b);
    }
}

/// What the proxy threads share.
pub(crate) struct Ctx {
    pub opts: EngineOptions,
    pub counters: EngineCounters,
    /// The local sources of each family (IPv4, IPv6), set by each family's proxier.
    local: RwLock<[Arc<LocalSources>; 2]>,
    epoch: Instant,
}

impl Ctx {
    /// The local sources of the client's family.
    pub fn local_sources(&self, client: IpAddr) -> Arc<LocalSources> {
        let v6 = matches!(client, IpAddr::V6(a) if a.to_ipv4_mapped().is_none());
        self.local.read().unwrap_or_else(|p| p.into_inner())[v6 as usize].clone()
    }

    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

struct Open {
    spec: Frontend,
    slot: Slot,
    task: JoinHandle<()>,
    sessions: Option<Sessions>,
}

impl Open {
    /// Aborts its tasks; the sockets close when the proxy threads drop them (`finish`).
    fn abort(self) -> Vec<JoinHandle<()>> {
        self.task.abort();
        let mut tasks = vec![self.task];
        if let Some(s) = self.sessions {
            tasks.extend(s.abort_all());
        }
        tasks
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no Service {0:?} in the proxy")]
    UnknownService(String),
    #[error("cannot listen on {addr} ({proto:?}): {source}")]
    Listen { proto: Proto, addr: SocketAddr, source: io::Error },
    #[error("cannot start the proxy threads: {0}")]
    Runtime(io::Error),
}

impl EngineError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            EngineError::Listen { source, .. } | EngineError::Runtime(source) => source.raw_os_error(),
            EngineError::UnknownService(_) => None,
        }
    }
}

/// Engine-wide counters at one moment.
#[derive(Debug, Clone, Default)]
pub struct EngineSnapshot {
    pub fd_exhausted: u64,
    pub accept_errors: u64,
    pub last_error: Option<String>,
}

pub struct Engine {
    rt: Option<tokio::runtime::Runtime>,
    ctx: Arc<Ctx>,
    services: Mutex<HashMap<String, Arc<Service>>>,
    frontends: Mutex<BTreeMap<FrontendKey, Open>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    pub fn new(opts: EngineOptions) -> Result<Self, EngineError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(opts.threads.max(1))
            .thread_name("kproxy-userspace")
            .enable_io()
            .enable_time()
            .build()
            .map_err(EngineError::Runtime)?;
        let ctx =
            Arc::new(Ctx { opts, counters: EngineCounters::default(), local: RwLock::new(Default::default()), epoch: Instant::now() });
        Ok(Self { rt: Some(rt), ctx, services: Mutex::new(HashMap::new()), frontends: Mutex::new(BTreeMap::new()) })
    }

    /// The process's one engine, started with `opts` by its first caller (later callers'
    /// options are ignored): both families' proxiers share its threads.
    pub fn shared(opts: EngineOptions) -> Result<Arc<Engine>, EngineError> {
        static SHARED: std::sync::OnceLock<Mutex<Option<Arc<Engine>>>> = std::sync::OnceLock::new();
        let mut slot = lock(SHARED.get_or_init(|| Mutex::new(None)));
        if let Some(e) = slot.as_ref() {
            return Ok(e.clone());
        }
        let e = Arc::new(Engine::new(opts)?);
        *slot = Some(e.clone());
        Ok(e)
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt.as_ref().expect("runtime lives until drop")
    }

    /// One family's clients that take a frontend's local pool: the node's pod range, its
    /// addresses and the Service addresses.
    pub fn set_local_sources(&self, ipv6: bool, v: LocalSources) {
        self.ctx.local.write().unwrap_or_else(|p| p.into_inner())[ipv6 as usize] = Arc::new(v);
    }

    /// Adds the Service, or swaps in its new pools, affinity and cap.
    pub fn upsert_service(&self, spec: &ServiceSpec) {
        let mut services = lock(&self.services);
        match services.get(&spec.name) {
            Some(s) => s.update(spec),
            None => {
                services.insert(spec.name.clone(), Arc::new(Service::new(spec)));
            }
        }
    }

    /// Removes the Service and closes its frontends.
    pub fn remove_service(&self, name: &str) -> bool {
        let mut frontends = lock(&self.frontends);
        let keys: Vec<FrontendKey> = frontends.iter().filter(|(_, o)| o.spec.service == name).map(|(k, _)| *k).collect();
        let tasks: Vec<JoinHandle<()>> = keys.iter().filter_map(|k| frontends.remove(k)).flat_map(Open::abort).collect();
        drop(frontends);
        self.finish(tasks);
        lock(&self.services).remove(name).is_some()
    }

    fn binding(&self, fe: &Frontend) -> Result<Binding, EngineError> {
        let service = lock(&self.services).get(&fe.service).cloned().ok_or_else(|| EngineError::UnknownService(fe.service.clone()))?;
        Ok(Binding { service, pool: fe.pool, local_pool: fe.local_pool, allowed: fe.allowed.clone() })
    }

    /// Listens at `key` for `fe`'s Service, or re-routes the open frontend there.
    pub fn open(&self, key: FrontendKey, fe: &Frontend) -> Result<(), EngineError> {
        let binding = self.binding(fe)?;
        let mut frontends = lock(&self.frontends);
        if let Some(o) = frontends.get_mut(&key) {
            o.slot.set(binding);
            o.spec = fe.clone();
            return Ok(());
        }
        let listen = |e| EngineError::Listen { proto: key.proto, addr: key.addr, source: e };
        let slot = Slot(Arc::new(RwLock::new(Arc::new(binding))));
        let _guard = self.rt().enter();
        let (task, sessions) = match key.proto {
            Proto::Tcp => {
                let l = TcpListener::from_std(tcp_listener(&key.addr).map_err(listen)?).map_err(listen)?;
                (self.rt().spawn(crate::tcp::serve(l, slot.clone(), self.ctx.clone())), None)
            }
            Proto::Udp => {
                let u = Arc::new(UdpSocket::from_std(udp_socket(&key.addr).map_err(listen)?).map_err(listen)?);
                let sessions = Sessions::default();
                (self.rt().spawn(crate::udp::serve(u, slot.clone(), self.ctx.clone(), sessions.clone())), Some(sessions))
            }
        };
        frontends.insert(key, Open { spec: fe.clone(), slot, task, sessions });
        Ok(())
    }

    /// Stops listening at `key`; its connections run on to their end (UDP sessions end).
    /// The socket is closed when this returns: a new client is refused by the kernel.
    pub fn close(&self, key: &FrontendKey) -> bool {
        self.close_all(std::slice::from_ref(key)) == 1
    }

    /// `close` for many frontends at once; returns how many were open.
    pub fn close_all(&self, keys: &[FrontendKey]) -> usize {
        let mut frontends = lock(&self.frontends);
        let open: Vec<Open> = keys.iter().filter_map(|k| frontends.remove(k)).collect();
        drop(frontends);
        let n = open.len();
        self.finish(open.into_iter().flat_map(Open::abort).collect());
        n
    }

    /// Waits until aborted tasks have dropped their sockets (never called on a proxy thread).
    fn finish(&self, tasks: Vec<JoinHandle<()>>) {
        if tasks.is_empty() {
            return;
        }
        self.rt().block_on(async {
            for t in tasks {
                let _ = t.await;
            }
        });
    }

    /// One Service's counters.
    pub fn service_stats(&self, name: &str) -> Option<Snapshot> {
        lock(&self.services).get(name).map(|s| s.stats.snapshot())
    }

    /// Every Service's counters, by name.
    pub fn stats(&self) -> Vec<(String, Snapshot)> {
        let mut v: Vec<(String, Snapshot)> = lock(&self.services).values().map(|s| (s.name().to_string(), s.stats.snapshot())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    pub fn counters(&self) -> EngineSnapshot {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.ctx.counters;
        EngineSnapshot {
            fd_exhausted: c.fd_exhausted.load(Relaxed),
            accept_errors: c.accept_errors.load(Relaxed),
            last_error: lock(&c.last_error).clone(),
        }
    }

    /// Closes every frontend and Service.
    pub fn clear(&self) {
        let all = std::mem::take(&mut *lock(&self.frontends));
        self.finish(all.into_values().flat_map(Open::abort).collect());
        lock(&self.services).clear();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.clear();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
