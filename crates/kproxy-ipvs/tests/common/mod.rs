//! One table of expectations for every IpvsBackend: tests/kernel.rs runs it
//! against the Fake (always) and against the kernel (where IPVS exists).
//! Addresses are documentation ranges (198.51.100.0/24, 203.0.113.0/24,
//! 2001:db8::/32), and only services there are touched, so a host's own IPVS
//! table survives a run.

use std::net::{IpAddr, SocketAddr};

use kproxy_ipvs::error::*;
use kproxy_ipvs::text::render;
use kproxy_ipvs::*;

pub fn key(s: &str, protocol: u8) -> ServiceKey {
    let a: SocketAddr = s.parse().unwrap();
    ServiceKey { addr: a.ip(), protocol, port: a.port() }
}

pub fn dk(s: &str) -> DestKey {
    let a: SocketAddr = s.parse().unwrap();
    DestKey { addr: a.ip(), port: a.port() }
}

fn ours(addr: &IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.octets()[..3] == [198, 51, 100],
        IpAddr::V6(a) => a.segments()[..2] == [0x2001, 0xdb8],
    }
}

/// Deletes the services in our ranges, whatever state an earlier run left.
pub fn clean(b: &mut dyn IpvsBackend) {
    let ops: Vec<Op> = b.services().unwrap().into_iter().filter(|s| ours(&s.key.addr)).map(|s| Op::DeleteService(s.key)).collect();
    let results = b.apply(&ops).unwrap();
    assert!(results.iter().all(|r| r.is_ok()), "cleaning up: {results:?}");
}

/// Applies `steps` as one pipeline and checks each op's result.
fn expect(b: &mut dyn IpvsBackend, steps: Vec<(Op, Result<(), i32>)>) {
    let (ops, want): (Vec<Op>, Vec<_>) = steps.into_iter().unzip();
    let got = b.apply(&ops).unwrap();
    for ((op, want), got) in ops.iter().zip(&want).zip(&got) {
        assert_eq!(got, want, "{}", text::render_ops(std::slice::from_ref(op)).trim());
    }
    assert_eq!(got.len(), want.len());
}

/// Our services with their destinations, as ipvsadm-save prints them.
pub fn state(b: &mut dyn IpvsBackend) -> String {
    let mut all = vec![];
    for s in b.services().unwrap().into_iter().filter(|s| ours(&s.key.addr)) {
        let dests = b.destinations(&s.key).unwrap();
        assert!(dests.iter().all(|d| d.stats == DestStats::default()), "no traffic, no connections: {dests:?}");
        all.push((s, dests.into_iter().map(|d| d.dest).collect()));
    }
    render(&all)
}

fn dest(addr: &str, weight: u32, forward: Forward) -> Destination {
    Destination { forward, ..Destination::masq(dk(addr), weight) }
}

pub fn scenario(b: &mut dyn IpvsBackend) {
    clean(b);
    let s4 = key("198.51.100.10:80", IPPROTO_TCP);
    let u4 = key("198.51.100.10:53", IPPROTO_UDP);
    let sc = key("198.51.100.11:9000", IPPROTO_SCTP);
    let s6 = key("[2001:db8::10]:80", IPPROTO_TCP);
    let missing = key("198.51.100.99:80", IPPROTO_TCP);
    let d1 = Destination::masq(dk("203.0.113.1:8080"), 1);
    let thresholds = Destination { upper_threshold: 100, lower_threshold: 10, ..Destination::masq(dk("203.0.113.2:8080"), 2) };
    let d6 = Destination::masq(dk("[2001:db8:1::1]:8080"), 1);
    let ok = Ok(());
    expect(
        b,
        vec![
            (Op::AddService(Service::new(s4, "rr")), ok),
            (Op::AddService(Service::new(s4, "rr")), Err(EEXIST)),
            (Op::AddService(Service::new(s4, "nosuch")), Err(EEXIST)), // existence is checked first
            (Op::AddService(Service::new(key("198.51.100.12:80", IPPROTO_TCP), "nosuch")), Err(ENOENT)),
            (Op::AddService(Service::new(key("198.51.100.12:80", IPPROTO_TCP), "a-scheduler-name")), Err(EINVAL)),
            (Op::AddService(Service::new(u4, "wrr").with_flags(FLAG_ONEPACKET)), ok),
            (Op::AddService(Service::new(sc, "mh").with_flags(FLAG_SCHED2)), ok),
            (Op::AddService(Service { netmask: 64, ..Service::new(s6, "rr").persistent(60) }), ok),
            (Op::AddService(Service { netmask: 129, ..Service::new(key("[2001:db8::12]:80", IPPROTO_TCP), "rr") }), Err(EINVAL)),
            (Op::AddDest(s4, d1.clone()), ok),
            (Op::AddDest(s4, d1.clone()), Err(EEXIST)),
            (Op::AddDest(s4, thresholds.clone()), ok),
            (Op::AddDest(missing, d1.clone()), Err(ESRCH)),
            (Op::AddDest(s4, d6.clone()), Err(EINVAL)), // another family needs a tunnel
            (Op::AddDest(s4, dest("[2001:db8:1::2]:80", 1, Forward::Tunnel)), ok),
            (Op::AddDest(s4, dest("127.0.0.1:80", 1, Forward::Local)), ok),
            (Op::AddDest(s6, d6.clone()), ok),
            (Op::AddDest(s4, Destination { lower_threshold: 10, upper_threshold: 5, ..d1.clone() }), Err(ERANGE)),
            (Op::AddDest(s4, Destination::masq(dk("203.0.113.3:80"), 1 << 31)), Err(ERANGE)),
            (Op::AddDest(s4, Destination::masq(dk("224.0.0.1:80"), 1)), Err(EINVAL)),
            (Op::AddDest(s4, Destination::masq(dk("0.0.0.0:80"), 1)), Err(EINVAL)),
            (Op::AddDest(s6, Destination::masq(dk("[fe80::1]:80"), 1)), Err(EINVAL)),
            (Op::AddDest(u4, dest("203.0.113.3:53", 0, Forward::Route)), ok),
            (Op::AddDest(u4, dest("203.0.113.4:53", 2, Forward::Tunnel)), ok),
        ],
    );
    expect(
        b,
        vec![
            (Op::EditService(Service::new(s4, "wrr").persistent(600)), ok),
            (Op::EditService(Service::new(missing, "rr")), Err(ESRCH)),
            (Op::EditService(Service::new(s4, "nosuch")), Err(ENOENT)),
            (Op::EditService(Service { netmask: 0, ..Service::new(s6, "rr") }), Err(EINVAL)),
            (Op::EditDest(s4, Destination::masq(d1.key, 5)), ok),
            (Op::EditDest(s4, Destination::masq(dk("203.0.113.9:8080"), 1)), Err(ENOENT)),
            (Op::EditDest(missing, d1.clone()), Err(ESRCH)),
            (Op::EditDest(s4, Destination { lower_threshold: 10, ..d1.clone() }), Err(ERANGE)),
            (Op::DeleteDest(s4, dk("203.0.113.9:8080")), Err(ENOENT)),
            (Op::DeleteDest(missing, d1.key), Err(ESRCH)),
            (Op::DeleteDest(s4, thresholds.key), ok),
            (Op::DeleteService(missing), Err(ESRCH)),
        ],
    );
    assert_eq!(
        state(b),
        "\
-A -t 198.51.100.10:80 -s wrr -p 600
-a -t 198.51.100.10:80 -r 127.0.0.1:80 -g -w 1
-a -t 198.51.100.10:80 -r 203.0.113.1:8080 -m -w 5
-a -t 198.51.100.10:80 -r [2001:db8:1::2]:80 -i -w 1 --tun-type ipip
-A -u 198.51.100.10:53 -s wrr -o
-a -u 198.51.100.10:53 -r 203.0.113.3:53 -g -w 0
-a -u 198.51.100.10:53 -r 203.0.113.4:53 -i -w 2 --tun-type ipip
-A --sctp-service 198.51.100.11:9000 -s mh -b mh-port
-A -t [2001:db8::10]:80 -s rr -p 60 -M 64
-a -t [2001:db8::10]:80 -r [2001:db8:1::1]:8080 -m -w 1
"
    );
    // What the text does not show: the exact fields of a service and of a destination.
    let s6_read = b.services().unwrap().into_iter().find(|s| s.key == s6).unwrap();
    assert_eq!(s6_read, Service { netmask: 64, ..Service::new(s6, "rr").persistent(60) });
    let u4_dests = b.destinations(&u4).unwrap();
    assert_eq!(u4_dests[0].dest.forward, Forward::Route);
    assert!(b.destinations(&s4).unwrap().iter().any(|d| d.dest.forward == Forward::Local));
    assert_eq!(b.destinations(&missing).unwrap(), vec![], "the kernel dumps nothing for a missing service");

    // Deleting a service deletes its destinations: re-added, it has none.
    expect(b, vec![(Op::DeleteService(s4), ok), (Op::AddService(Service::new(s4, "rr")), ok)]);
    assert_eq!(b.destinations(&s4).unwrap(), vec![]);

    timeouts(b);
    let info = b.info().unwrap();
    assert_eq!((info.version, info.version_string().as_str()), (0x010201, "1.2.1"));
    assert!(info.conn_tab_size.is_power_of_two(), "{info:?}");

    many_ops(b);
    clean(b);
}

/// 0 leaves a timeout as it is; the original ones are restored.
fn timeouts(b: &mut dyn IpvsBackend) {
    let orig = b.timeouts().unwrap();
    assert!(orig.tcp > 0 && orig.tcp_fin > 0 && orig.udp > 0, "{orig:?}");
    b.set_timeouts(&Timeouts { tcp: 1000, tcp_fin: 0, udp: 200 }).unwrap();
    assert_eq!(b.timeouts().unwrap(), Timeouts { tcp: 1000, tcp_fin: orig.tcp_fin, udp: 200 });
    let e = b.set_timeouts(&Timeouts { tcp: u32::MAX, ..Timeouts::default() }).unwrap_err();
    assert_eq!(e.errno(), Some(EINVAL), "{e}");
    b.set_timeouts(&orig).unwrap();
    assert_eq!(b.timeouts().unwrap(), orig);
}

/// 100 services of 100 destinations: 10,100 ops in one apply, many datagrams.
fn many_ops(b: &mut dyn IpvsBackend) {
    let keys: Vec<ServiceKey> = (0..100).map(|i| key(&format!("198.51.100.{}:80", 100 + i), IPPROTO_TCP)).collect();
    let mut ops = vec![];
    for k in &keys {
        ops.push(Op::AddService(Service::new(*k, "rr")));
        for j in 1..=100 {
            ops.push(Op::AddDest(*k, Destination::masq(dk(&format!("203.0.113.{j}:8080")), j)));
        }
    }
    let results = b.apply(&ops).unwrap();
    assert_eq!(results.len(), 10_100);
    assert!(results.iter().all(|r| r.is_ok()), "{:?}", results.iter().find(|r| r.is_err()));
    let last = b.destinations(&keys[99]).unwrap();
    assert_eq!(last.len(), 100);
    assert_eq!(last.iter().map(|d| d.dest.weight).sum::<u32>(), 5050);
    // Every op fails alike and the pipeline goes on: a second run is all EEXIST.
    let again = b.apply(&ops).unwrap();
    assert!(again.iter().all(|r| *r == Err(EEXIST)));
    let results = b.apply(&keys.iter().map(|k| Op::DeleteService(*k)).collect::<Vec<_>>()).unwrap();
    assert!(results.iter().all(|r| r.is_ok()));
}
