//! The proxy with real sockets on loopback: each row is a client flow through a frontend,
//! and what the client sees.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use kproxy_userspace::{Engine, EngineOptions, Frontend, FrontendKey, LocalSources, Prefix, Proto, ServiceSpec};

/// A TCP backend that answers each connection with its name, then echoes until EOF and
/// closes; or, for "sink" backends, reads to EOF and answers with the byte count.
fn backend(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            std::thread::spawn(move || {
                if name.starts_with("sink") {
                    let mut n = 0u64;
                    let mut h = 0u64;
                    let mut buf = [0u8; 65536];
                    loop {
                        match c.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(k) => {
                                for b in &buf[..k] {
                                    h = h.wrapping_mul(31).wrapping_add(*b as u64);
                                }
                                n += k as u64;
                            }
                        }
                    }
                    let _ = write!(c, "{n} {h}");
                    return;
                }
                let _ = c.write_all(format!("{name}\n").as_bytes());
                let mut buf = [0u8; 4096];
                while let Ok(k) = c.read(&mut buf) {
                    if k == 0 || c.write_all(&buf[..k]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn free_port(ip: &str) -> SocketAddr {
    let l = TcpListener::bind(format!("{ip}:0")).unwrap();
    l.local_addr().unwrap()
}

fn engine() -> Engine {
    engine_with(true)
}

fn engine_with(splice: bool) -> Engine {
    Engine::new(EngineOptions { threads: 2, udp_idle_timeout: Duration::from_millis(200), buffer_bytes: 16 * 1024, splice }).unwrap()
}

fn service(name: &str, pools: Vec<Vec<SocketAddr>>) -> ServiceSpec {
    ServiceSpec { name: name.into(), pools, affinity: None, max_connections: 0 }
}

fn frontend(service: &str) -> Frontend {
    Frontend { service: service.into(), pool: 0, local_pool: None, allowed: vec![] }
}

fn tcp(addr: SocketAddr) -> FrontendKey {
    FrontendKey { proto: Proto::Tcp, addr }
}

/// The backend's greeting, or the error the client met.
fn hello(addr: SocketAddr) -> Result<String, ErrorKind> {
    let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.kind())?;
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match c.read(&mut b) {
            Ok(0) => return if line.is_empty() { Err(ErrorKind::UnexpectedEof) } else { Ok(String::from_utf8(line).unwrap()) },
            Ok(_) if b[0] == b'\n' => return Ok(String::from_utf8(line).unwrap()),
            Ok(_) => line.push(b[0]),
            Err(e) => return Err(e.kind()),
        }
    }
}

#[test]
fn tcp_flows() {
    let (a, b) = (backend("a"), backend("b"));
    let dead = free_port("127.0.0.1"); // nothing listens: connects are refused
    let e = engine();
    e.upsert_service(&service("ns/rr:p", vec![vec![a, b]]));
    e.upsert_service(&service("ns/retry:p", vec![vec![dead, a]]));
    e.upsert_service(&service("ns/none:p", vec![vec![], vec![b]]));
    e.upsert_service(&service("ns/ranges:p", vec![vec![a]]));
    e.upsert_service(&service("ns/local:p", vec![vec![], vec![b]]));
    let (rr, retry, none, ranges, local, ranges_ok) = (
        free_port("127.0.1.1"),
        free_port("127.0.1.2"),
        free_port("127.0.1.3"),
        free_port("127.0.1.4"),
        free_port("127.0.1.5"),
        free_port("127.0.1.6"),
    );
    e.open(tcp(rr), &frontend("ns/rr:p")).unwrap();
    e.open(tcp(retry), &frontend("ns/retry:p")).unwrap();
    e.open(tcp(none), &frontend("ns/none:p")).unwrap();
    e.open(tcp(ranges), &Frontend { allowed: vec!["10.0.0.0/8".parse().unwrap()], ..frontend("ns/ranges:p") }).unwrap();
    e.open(tcp(ranges_ok), &Frontend { allowed: vec!["127.0.0.0/8".parse().unwrap()], ..frontend("ns/ranges:p") }).unwrap();
    e.open(tcp(local), &Frontend { local_pool: Some(1), ..frontend("ns/local:p") }).unwrap();

    type Row<'a> = (&'a str, SocketAddr, Vec<Result<&'a str, ErrorKind>>);
    let rows: Vec<Row> = vec![
        ("round robin over both endpoints", rr, vec![Ok("a"), Ok("b"), Ok("a"), Ok("b")]),
        ("a refused connect goes on to the next endpoint", retry, vec![Ok("a"), Ok("a")]),
        ("an empty pool resets at once", none, vec![Err(ErrorKind::ConnectionReset)]),
        ("a source outside the ranges is reset", ranges, vec![Err(ErrorKind::ConnectionReset)]),
        ("a source inside the ranges passes", ranges_ok, vec![Ok("a")]),
        ("not a local source: the empty pool resets", local, vec![Err(ErrorKind::ConnectionReset)]),
    ];
    for (what, addr, want) in rows {
        let mut got: Vec<Result<String, ErrorKind>> = want.iter().map(|_| hello(addr)).collect();
        if addr == rr && got.first() == Some(&Ok("b".to_string())) {
            // Round robin may start on either endpoint: compare the alternation.
            got.iter_mut().for_each(|g| *g = g.clone().map(|n| if n == "a" { "b".into() } else { "a".into() }));
        }
        let want: Vec<Result<String, ErrorKind>> = want.into_iter().map(|r| r.map(str::to_string)).collect();
        assert_eq!(got, want, "{what}");
    }
    // A local source (loopback here) takes the local pool.
    e.set_local_sources(false, LocalSources { prefixes: vec!["127.0.0.0/8".parse::<Prefix>().unwrap()], ..Default::default() });
    assert_eq!(hello(local), Ok("b".into()), "a local source takes the local pool");

    let stats: std::collections::HashMap<String, kproxy_userspace::Snapshot> = e.stats().into_iter().collect();
    assert!(stats["ns/retry:p"].connect_errors >= 1, "the refused connect is counted");
    assert_eq!(stats["ns/none:p"].failed[0], 1, "no_endpoint");
    assert_eq!(stats["ns/ranges:p"].failed[3], 1, "source_range");
    assert_eq!(stats["ns/rr:p"].accepted, 4);
    assert_eq!(stats["ns/rr:p"].connect_count, 4);
}

#[test]
fn changes_leave_open_connections_alone() {
    let (a, b) = (backend("a"), backend("b"));
    let e = engine();
    let vip = free_port("127.0.2.1");
    e.upsert_service(&service("ns/svc:p", vec![vec![a]]));
    e.open(tcp(vip), &frontend("ns/svc:p")).unwrap();
    let mut open = TcpStream::connect(vip).unwrap();
    open.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = [0u8; 2];
    open.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"a\n");

    // The endpoint leaves: new connections go to b, the open one still talks to a.
    e.upsert_service(&service("ns/svc:p", vec![vec![b]]));
    assert_eq!(hello(vip), Ok("b".into()));
    open.write_all(b"ping").unwrap();
    let mut echo = [0u8; 4];
    open.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"ping");

    // The Service goes: its listener closes (refused), the open connection runs on.
    e.remove_service("ns/svc:p");
    assert_eq!(hello(vip), Err(ErrorKind::ConnectionRefused));
    open.write_all(b"pong").unwrap();
    open.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"pong");
    drop(open);
    std::thread::sleep(Duration::from_millis(50));
    assert!(e.stats().is_empty());
}

#[test]
fn a_long_transfer_arrives_whole_and_half_close_passes_through() {
    // Spliced after its first 256 KiB, and buffered all the way.
    for (splice, at) in [(true, "127.0.3.1"), (false, "127.0.3.2")] {
        long_transfer(engine_with(splice), at);
    }
}

fn long_transfer(e: Engine, at: &str) {
    let sink = backend("sink");
    let vip = free_port(at);
    e.upsert_service(&service("ns/bulk:p", vec![vec![sink]]));
    e.open(tcp(vip), &frontend("ns/bulk:p")).unwrap();
    let mut c = TcpStream::connect(vip).unwrap();
    let (mut n, mut h) = (0u64, 0u64);
    let mut chunk = vec![0u8; 1 << 20];
    for i in 0..200u64 {
        for (j, b) in chunk.iter_mut().enumerate() {
            *b = (i as usize * 7 + j * 13) as u8;
        }
        for b in &chunk {
            h = h.wrapping_mul(31).wrapping_add(*b as u64);
        }
        n += chunk.len() as u64;
        c.write_all(&chunk).unwrap();
    }
    // Half-close: the backend sees EOF and only then answers, on the still-open direction.
    c.shutdown(Shutdown::Write).unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, format!("{n} {h}"));
    let s = &e.stats()[0].1;
    assert_eq!(s.bytes_in, n);
    assert_eq!(s.bytes_out, answer.len() as u64);
}

#[test]
fn the_connection_cap_resets_the_one_over() {
    let a = backend("a");
    let e = engine();
    let vip = free_port("127.0.4.1");
    e.upsert_service(&ServiceSpec { max_connections: 1, ..service("ns/cap:p", vec![vec![a]]) });
    e.open(tcp(vip), &frontend("ns/cap:p")).unwrap();
    let mut first = TcpStream::connect(vip).unwrap();
    let mut buf = [0u8; 2];
    first.read_exact(&mut buf).unwrap();
    assert_eq!(hello(vip), Err(ErrorKind::ConnectionReset));
    drop(first);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(hello(vip), Ok("a".into()));
    assert_eq!(e.stats()[0].1.failed[2], 1, "limit");
}

#[test]
fn affinity_keeps_the_client_on_one_endpoint() {
    let (a, b) = (backend("a"), backend("b"));
    let e = engine();
    let vip = free_port("127.0.5.1");
    e.upsert_service(&ServiceSpec { affinity: Some(Duration::from_secs(30)), ..service("ns/sticky:p", vec![vec![a, b]]) });
    e.open(tcp(vip), &frontend("ns/sticky:p")).unwrap();
    let first = hello(vip).unwrap();
    for _ in 0..6 {
        assert_eq!(hello(vip).unwrap(), first);
    }
}

fn udp_echo(name: &'static str) -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let mut reply = format!("{name}:").into_bytes();
            reply.extend_from_slice(&buf[..n]);
            let _ = s.send_to(&reply, from);
        }
    });
    addr
}

#[test]
fn udp_sessions() {
    let (a, b) = (udp_echo("a"), udp_echo("b"));
    let e = engine();
    let vip = UdpSocket::bind("127.0.6.1:0").unwrap().local_addr().unwrap();
    let key = FrontendKey { proto: Proto::Udp, addr: vip };
    e.upsert_service(&service("ns/dns:p", vec![vec![a, b]]));
    e.open(key, &frontend("ns/dns:p")).unwrap();
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let ask = |msg: &str| -> (String, SocketAddr) {
        c.send_to(msg.as_bytes(), vip).unwrap();
        let mut buf = [0u8; 2048];
        let (n, from) = c.recv_from(&mut buf).unwrap();
        (String::from_utf8_lossy(&buf[..n]).into_owned(), from)
    };
    let (r1, from) = ask("q1");
    assert_eq!(from, vip, "the reply comes from the Service address");
    let who = r1.split(':').next().unwrap().to_string();
    // One session per client address and port: the same endpoint while it is busy.
    for i in 0..3 {
        assert_eq!(ask(&format!("q{i}")).0, format!("{who}:q{i}"));
    }
    assert_eq!(e.stats()[0].1.active, 1);
    // Idle for longer than the timeout: the session ends, the next datagram starts another (round robin).
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(e.stats()[0].1.active, 0);
    let other = ask("again").0;
    assert_ne!(other.split(':').next().unwrap(), who);

    // No listener: the kernel answers ICMP port unreachable, seen as a refused connection.
    e.close(&key);
    let c2 = UdpSocket::bind("127.0.0.1:0").unwrap();
    c2.connect(vip).unwrap();
    c2.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    c2.send(b"x").unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(c2.recv(&mut buf).unwrap_err().kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn a_listen_failure_names_the_address() {
    let e = engine();
    let taken = TcpListener::bind("127.0.7.1:0").unwrap();
    e.upsert_service(&service("ns/x:p", vec![vec![]]));
    let err = e.open(tcp(taken.local_addr().unwrap()), &frontend("ns/x:p")).unwrap_err();
    assert_eq!(err.errno(), Some(98), "EADDRINUSE: {err}");
    assert!(err.to_string().contains("127.0.7.1"), "{err}");
    assert!(e.open(tcp(free_port("127.0.7.2")), &frontend("ns/missing:p")).is_err());
}
