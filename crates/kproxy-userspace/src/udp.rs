//! UDP frontends: one session per client address and port, with its own socket connected
//! to the endpoint chosen when the session began. Replies go back from the frontend's
//! socket, so they come from the Service address. A session with no datagram either way
//! for the idle timeout (upstream's udpIdleTimeout) ends; so does one whose endpoint
//! answers with an error (ICMP unreachable), and the client's next datagram starts anew.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::engine::{Ctx, Slot};
use crate::stats::Failure;

/// Largest UDP payload.
const DATAGRAM: usize = 65_535;

pub(crate) struct Session {
    upstream: Arc<UdpSocket>,
    /// Milliseconds since the engine started, at the last datagram either way.
    last: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

/// A frontend's sessions, by client; closing the frontend aborts them.
#[derive(Clone, Default)]
pub(crate) struct Sessions(Arc<Mutex<HashMap<SocketAddr, Session>>>);

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Session>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn abort_all(&self) -> Vec<JoinHandle<()>> {
        self.lock()
            .drain()
            .map(|(_, s)| {
                s.task.abort();
                s.task
            })
            .collect()
    }

    /// The client's session, touched.
    fn get(&self, client: &SocketAddr, now: u64) -> Option<Arc<UdpSocket>> {
        self.lock().get(client).map(|s| {
            s.last.store(now, Relaxed);
            s.upstream.clone()
        })
    }

    /// Ends the client's session if it is still `upstream`'s.
    fn end(&self, client: &SocketAddr, upstream: &Arc<UdpSocket>) {
        let mut m = self.lock();
        if m.get(client).is_some_and(|s| Arc::ptr_eq(&s.upstream, upstream)) {
            m.remove(client);
        }
    }
}

pub(crate) async fn serve(sock: Arc<UdpSocket>, binding: Slot, ctx: Arc<Ctx>, sessions: Sessions) {
    let mut buf = vec![0u8; DATAGRAM];
    loop {
        let (n, client) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                ctx.counters.accept_error(&e);
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let up = match sessions.get(&client, ctx.now_ms()) {
            Some(up) => up,
            None => match open(&sock, client, &binding, &ctx, &sessions).await {
                Some(up) => up,
                None => continue,
            },
        };
        let b = binding.get();
        if let Ok(m) = up.send(&buf[..n]).await {
            b.service.stats.add_in(m);
        }
    }
}

fn unspecified(ip: IpAddr) -> SocketAddr {
    match ip {
        IpAddr::V4(_) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
        IpAddr::V6(_) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0),
    }
}

async fn open(sock: &Arc<UdpSocket>, client: SocketAddr, binding: &Slot, ctx: &Arc<Ctx>, sessions: &Sessions) -> Option<Arc<UdpSocket>> {
    let b = binding.get();
    let stats = b.service.stats.clone();
    stats.accepted();
    let pool = match b.route(client.ip(), &ctx.local_sources(client.ip())) {
        Ok(p) => p,
        Err(why) => {
            stats.failed(why);
            return None;
        }
    };
    if b.service.full() {
        stats.failed(Failure::Limit);
        return None;
    }
    let Some(ep) = b.service.pick(pool, client.ip(), &[]) else {
        stats.failed(Failure::NoEndpoint);
        return None;
    };
    let t0 = std::time::Instant::now();
    let up = match UdpSocket::bind(unspecified(ep.ip())).await {
        Ok(u) if u.connect(ep).await.is_ok() => Arc::new(u),
        Ok(_) | Err(_) => {
            stats.connect_error();
            stats.failed(Failure::Connect);
            return None;
        }
    };
    stats.connected(t0.elapsed());
    let last = Arc::new(AtomicU64::new(ctx.now_ms()));
    let active = stats.enter();
    let (reply, up2, last2, ctx2, sessions2) = (sock.clone(), up.clone(), last.clone(), ctx.clone(), sessions.clone());
    let task = tokio::spawn(async move {
        let _active = active;
        let idle = ctx2.opts.udp_idle_timeout;
        let mut buf = vec![0u8; DATAGRAM];
        let mut wait = idle;
        loop {
            match tokio::time::timeout(wait, up2.recv(&mut buf)).await {
                Ok(Ok(n)) => {
                    wait = idle;
                    last2.store(ctx2.now_ms(), Relaxed);
                    if let Ok(m) = reply.send_to(&buf[..n], client).await {
                        stats.add_out(m);
                    }
                }
                Ok(Err(_)) => break,
                Err(_) => {
                    let quiet = ctx2.now_ms().saturating_sub(last2.load(Relaxed));
                    if quiet >= idle.as_millis() as u64 {
                        break;
                    }
                    // The client spoke meanwhile: wait out the rest of its idle time.
                    wait = idle - Duration::from_millis(quiet);
                }
            }
        }
        sessions2.end(&client, &up2);
    });
    sessions.lock().insert(client, Session { upstream: up.clone(), last, task });
    Some(up)
}
