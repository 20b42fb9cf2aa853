//! TCP frontends: accept, route the client to a pool, connect to an endpoint (the next one
//! when a connect fails, as upstream's userspace proxier did), then copy both ways. Each
//! side's end of data is passed on as a half-close; an error on either side resets both.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};

use crate::engine::{Binding, Ctx, Slot};
use crate::socket::reset;
use crate::splice::{Pipe, SPLICE_AFTER};
use crate::stats::{Failure, Stats, EMFILE, ENFILE};

/// A new connection's first buffer; bulk flows grow theirs to the configured size.
const FIRST_READ: usize = 4096;

/// upstream's endpointDialTimeouts: one connect attempt per timeout, each on the next endpoint.
pub const DIAL_TIMEOUTS: [Duration; 4] =
    [Duration::from_millis(250), Duration::from_millis(500), Duration::from_secs(1), Duration::from_secs(2)];

pub(crate) async fn serve(listener: TcpListener, binding: Slot, ctx: Arc<Ctx>) {
    loop {
        match listener.accept().await {
            Ok((sock, peer)) => {
                let b = binding.get();
                tokio::spawn(relay(sock, peer, b, ctx.clone()));
            }
            Err(e) => {
                ctx.counters.accept_error(&e);
                // Out of descriptors: the pending connection stays queued; wait for some to close.
                let fd = matches!(e.raw_os_error(), Some(n) if n == EMFILE || n == ENFILE);
                tokio::time::sleep(Duration::from_millis(if fd { 100 } else { 5 })).await;
            }
        }
    }
}

async fn relay(client: TcpStream, peer: SocketAddr, b: Arc<Binding>, ctx: Arc<Ctx>) {
    let svc = &b.service;
    svc.stats.accepted();
    let pool = match b.route(peer.ip(), &ctx.local_sources(peer.ip())) {
        Ok(p) => p,
        Err(why) => return refuse(client, &svc.stats, why),
    };
    if svc.full() {
        return refuse(client, &svc.stats, Failure::Limit);
    }
    let _active = svc.stats.enter();
    let mut tried = Vec::new();
    let mut upstream = None;
    for timeout in DIAL_TIMEOUTS {
        let Some(ep) = svc.pick(pool, peer.ip(), &tried) else { break };
        let t0 = Instant::now();
        match tokio::time::timeout(timeout, TcpStream::connect(ep)).await {
            Ok(Ok(s)) => {
                svc.stats.connected(t0.elapsed());
                upstream = Some(s);
                break;
            }
            _ => {
                svc.stats.connect_error();
                tried.push(ep);
            }
        }
    }
    let Some(upstream) = upstream else {
        let why = if tried.is_empty() { Failure::NoEndpoint } else { Failure::Connect };
        return refuse(client, &svc.stats, why);
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    copy_both(client, upstream, &svc.stats, ctx.opts.buffer_bytes, ctx.opts.splice).await;
}

fn refuse(client: TcpStream, stats: &Stats, why: Failure) {
    stats.failed(why);
    reset(client);
}

/// One direction: buffered at first, then (bulk flows, `splice` on) zero-copy.
async fn pump(mut r: ReadHalf<'_>, mut w: WriteHalf<'_>, size: usize, splice: bool, count: impl Fn(usize)) -> io::Result<()> {
    // Capacity, not zeroed bytes: a short connection never pays for a 64 KiB memset, and
    // the buffer grows to `size` only as far as reads fill it.
    let mut buf: Vec<u8> = Vec::with_capacity(size.min(FIRST_READ));
    let mut moved = 0u64;
    loop {
        if splice && moved >= SPLICE_AFTER {
            if let Some(pipe) = Pipe::new() {
                crate::splice::relay(r.as_ref(), w.as_ref(), &pipe, &count).await?;
                return w.shutdown().await;
            }
        }
        buf.clear();
        let n = r.read_buf(&mut buf).await?;
        if n == 0 {
            // The half-close goes on to the other side; the other direction keeps going.
            return w.shutdown().await;
        }
        w.write_all(&buf[..n]).await?;
        count(n);
        moved += n as u64;
        if n == buf.capacity() && buf.capacity() < size {
            buf.reserve_exact(size - buf.len());
        }
    }
}

/// Copies until both sides have ended; buffers are `size` bytes each way.
async fn copy_both(mut client: TcpStream, mut upstream: TcpStream, stats: &Stats, size: usize, splice: bool) {
    let ok = {
        let (cr, cw) = client.split();
        let (ur, uw) = upstream.split();
        let up = pump(cr, uw, size, splice, |n| stats.add_in(n));
        let down = pump(ur, cw, size, splice, |n| stats.add_out(n));
        tokio::try_join!(up, down).is_ok()
    };
    if !ok {
        // One side reset or failed: so does the other, as it would see on a direct connection.
        reset(client);
        reset(upstream);
    }
}
