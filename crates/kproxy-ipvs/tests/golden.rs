//! Our requests against ipvsadm's own, byte for byte, and our parsers against the
//! kernel's own replies. tests/golden/*.txt are recorded by scripts/capture-ipvsadm.sh
//! (ipvsadm 1.31 under strace, Linux 6.1 in the test VM).
//!
//! Masked before comparing, as they legitimately differ: nlmsg_type of IPVS
//! messages (the family id is assigned at registration, per boot), nlmsg_seq and
//! nlmsg_pid (libnl starts from the clock and its port id; we from 1 and 0, for
//! the kernel to fill in). Flags are compared: we send ipvsadm's (REQUEST|ACK,
//! and REQUEST|ACK|DUMP for dumps).

use std::net::SocketAddr;

use kproxy_ipvs::consts::*;
use kproxy_ipvs::genl::encode_get_family;
use kproxy_ipvs::msg::*;
use kproxy_ipvs::reply::ReplyReader;
use kproxy_ipvs::*;
use kproxy_netlink::MsgBuffer;

struct Fixture {
    name: &'static str,
    requests: Vec<Vec<u8>>,
    replies: Vec<Vec<u8>>,
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn hex(b: &[u8]) -> String {
    b.chunks(4).map(|c| c.iter().map(|x| format!("{x:02x}")).collect::<String>()).collect::<Vec<_>>().join(" ")
}

fn load(name: &'static str) -> Fixture {
    let path = format!("{}/tests/golden/{name}.txt", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut f = Fixture { name, requests: vec![], replies: vec![] };
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("> ") {
            f.requests.push(unhex(h));
        } else if let Some(h) = line.strip_prefix("< ") {
            f.replies.push(unhex(h));
        }
    }
    f
}

fn ty(m: &[u8]) -> u16 {
    u16::from_ne_bytes([m[4], m[5]])
}

impl Fixture {
    /// ipvsadm's (first) IPVS request with genl command `cmd`.
    fn request(&self, cmd: u8) -> &[u8] {
        self.requests
            .iter()
            .find(|m| ty(m) != GENL_ID_CTRL && m[16] == cmd)
            .unwrap_or_else(|| panic!("{}: no request with command {cmd}", self.name))
    }

    /// The kernel's replies to `req`: ipvsadm opens a socket per request, so seq and pid together tell them apart.
    fn replies_to(&self, req: &[u8]) -> Vec<&[u8]> {
        self.replies.iter().filter(|m| m[8..16] == req[8..16]).map(|m| m.as_slice()).collect()
    }
}

/// Zeroes what legitimately differs (see the top of the file).
fn masked(m: &[u8]) -> String {
    let mut m = m.to_vec();
    if ty(&m) != GENL_ID_CTRL {
        m[4..6].fill(0);
    }
    m[8..16].fill(0);
    hex(&m)
}

fn assert_same(f: &Fixture, cmd: u8, ours: &MsgBuffer) {
    assert_eq!(masked(ours.as_bytes()), masked(f.request(cmd)), "{}: our request (left) differs from ipvsadm's", f.name);
}

fn assert_op(name: &'static str, cmd: u8, op: Op) {
    let mut b = MsgBuffer::default();
    encode_op(&mut b, 0x20, &op, 1);
    assert_same(&load(name), cmd, &b);
}

fn key(s: &str, protocol: u8) -> ServiceKey {
    let a: SocketAddr = s.parse().unwrap();
    ServiceKey { addr: a.ip(), protocol, port: a.port() }
}

fn dk(s: &str) -> DestKey {
    let a: SocketAddr = s.parse().unwrap();
    DestKey { addr: a.ip(), port: a.port() }
}

fn vip() -> ServiceKey {
    key("10.96.0.10:80", IPPROTO_TCP)
}

#[test]
fn service_requests_match_ipvsadm() {
    let cases = [
        ("add-service-tcp", Service::new(vip(), "rr")),
        ("add-service-udp", Service::new(key("10.96.0.10:53", IPPROTO_UDP), "rr")),
        ("add-service-sctp", Service::new(key("10.96.0.11:9000", IPPROTO_SCTP), "rr")),
        ("add-service-v6", Service::new(key("[fd00:96::10]:80", IPPROTO_TCP), "rr")),
        (
            "add-service-persistent",
            Service { netmask: 0xffff_ff00, ..Service::new(key("10.96.0.13:80", IPPROTO_TCP), "wrr").persistent(300) },
        ),
        ("add-service-v6-persistent", Service { netmask: 64, ..Service::new(key("[fd00:96::11]:80", IPPROTO_TCP), "rr").persistent(60) }),
        ("add-service-mh-port", Service::new(key("10.96.0.14:443", IPPROTO_TCP), "mh").with_flags(FLAG_SCHED2)),
        ("add-service-onepacket", Service::new(key("10.96.0.12:53", IPPROTO_UDP), "rr").with_flags(FLAG_ONEPACKET)),
    ];
    for (name, s) in cases {
        assert_op(name, IPVS_CMD_NEW_SERVICE, Op::AddService(s));
    }
    assert_op("edit-service", IPVS_CMD_SET_SERVICE, Op::EditService(Service::new(vip(), "wrr").persistent(600)));
    assert_op("delete-service", IPVS_CMD_DEL_SERVICE, Op::DeleteService(vip()));
}

#[test]
fn destination_requests_match_ipvsadm() {
    let route =
        Destination { forward: Forward::Route, upper_threshold: 100, lower_threshold: 10, ..Destination::masq(dk("10.244.1.3:80"), 2) };
    let tunnel = Destination { forward: Forward::Tunnel, ..Destination::masq(dk("10.244.1.4:80"), 3) };
    let v6 = key("[fd00:96::10]:80", IPPROTO_TCP);
    let cases = [
        ("add-dest-masq", IPVS_CMD_NEW_DEST, Op::AddDest(vip(), Destination::masq(dk("10.244.1.2:8080"), 1))),
        ("add-dest-route-thresholds", IPVS_CMD_NEW_DEST, Op::AddDest(vip(), route)),
        ("add-dest-tunnel", IPVS_CMD_NEW_DEST, Op::AddDest(vip(), tunnel)),
        ("add-dest-v6", IPVS_CMD_NEW_DEST, Op::AddDest(v6, Destination::masq(dk("[fd00:244::2]:8080"), 1))),
        ("edit-dest", IPVS_CMD_SET_DEST, Op::EditDest(vip(), Destination::masq(dk("10.244.1.2:8080"), 0))),
        ("delete-dest", IPVS_CMD_DEL_DEST, Op::DeleteDest(vip(), dk("10.244.1.2:8080"))),
        ("delete-dest-v6", IPVS_CMD_DEL_DEST, Op::DeleteDest(v6, dk("[fd00:244::2]:8080"))),
    ];
    for (name, cmd, op) in cases {
        assert_op(name, cmd, op);
    }
}

#[test]
fn the_family_lookup_matches_libnl() {
    let f = load("add-service-tcp");
    let theirs = f.requests.iter().find(|m| ty(m) == GENL_ID_CTRL).unwrap();
    let mut b = MsgBuffer::default();
    encode_get_family(&mut b, 1, IPVS_GENL_NAME);
    assert_eq!(masked(b.as_bytes()), masked(theirs));
}

/// Feeds the kernel's replies to `req` through our reader, as conn.rs does. A dump
/// must end (NLMSG_DONE); for other requests ipvsadm stops reading at the reply,
/// so the kernel's ack that follows is not in the fixture.
fn read_replies(f: &Fixture, req: &[u8], mut on_msg: impl FnMut(u8, &[u8])) {
    let seq = u32::from_ne_bytes(req[8..12].try_into().unwrap());
    let mut r = ReplyReader::new(seq, ty(req), "golden");
    let mut done = false;
    for m in f.replies_to(req) {
        assert!(!done, "{}: a reply after the end", f.name);
        done = r
            .feed(m, |cmd, p| {
                on_msg(cmd, p);
                Ok(())
            })
            .unwrap();
    }
    let dump = u16::from_ne_bytes([req[6], req[7]]) & kproxy_netlink::NLM_F_DUMP != 0;
    assert!(done || !dump, "{}: the dump never ended", f.name);
}

#[test]
fn timeouts_and_info_requests_match_and_their_replies_parse() {
    let mut b = MsgBuffer::default();
    encode_set_config(&mut b, 0x20, 1, &Timeouts { tcp: 900, tcp_fin: 120, udp: 300 });
    assert_same(&load("set-timeouts"), IPVS_CMD_SET_CONFIG, &b);

    let f = load("timeouts");
    let mut b = MsgBuffer::default();
    encode_get_config(&mut b, 0x20, 1);
    assert_same(&f, IPVS_CMD_GET_CONFIG, &b);
    let mut t = None;
    read_replies(&f, f.request(IPVS_CMD_GET_CONFIG), |_, p| t = Some(parse_timeouts(p)));
    assert_eq!(t, Some(Timeouts { tcp: 900, tcp_fin: 120, udp: 300 }));

    let mut b = MsgBuffer::default();
    encode_get_info(&mut b, 0x20, 1);
    assert_same(&f, IPVS_CMD_GET_INFO, &b);
    let mut info = None;
    read_replies(&f, f.request(IPVS_CMD_GET_INFO), |cmd, p| {
        assert_eq!(cmd, IPVS_CMD_SET_INFO);
        info = Some(parse_info(p).unwrap());
    });
    let info = info.unwrap();
    assert_eq!((info.version_string().as_str(), info.conn_tab_size), ("1.2.1", 4096));
}

/// `ipvsadm -L -n` over one service with one destination: both dump requests, both dumps.
fn check_list(name: &'static str, svc: Service, dest: Destination) {
    let f = load(name);
    let mut b = MsgBuffer::default();
    encode_dump_services(&mut b, 0x20, 1);
    assert_same(&f, IPVS_CMD_GET_SERVICE, &b);
    let mut got = vec![];
    read_replies(&f, f.request(IPVS_CMD_GET_SERVICE), |cmd, p| {
        assert_eq!(cmd, IPVS_CMD_NEW_SERVICE);
        got.extend(parse_service(p).unwrap());
    });
    assert_eq!(got, vec![svc.clone()], "{name}");

    let mut b = MsgBuffer::default();
    encode_dump_dests(&mut b, 0x20, 1, &svc.key);
    assert_same(&f, IPVS_CMD_GET_DEST, &b);
    let mut got = vec![];
    read_replies(&f, f.request(IPVS_CMD_GET_DEST), |cmd, p| {
        assert_eq!(cmd, IPVS_CMD_NEW_DEST);
        got.push(parse_dest(p, af(&svc.key.addr)).unwrap());
    });
    assert_eq!(got, vec![DestinationState { dest, stats: DestStats::default() }], "{name}");
}

#[test]
fn dumps_match_ipvsadm_and_the_kernels_dumps_parse() {
    check_list(
        "list-v4",
        Service { netmask: 0xffff_ff00, ..Service::new(key("10.96.0.13:80", IPPROTO_TCP), "wrr").persistent(300) },
        Destination { upper_threshold: 100, lower_threshold: 10, ..Destination::masq(dk("10.244.1.2:8080"), 5) },
    );
    check_list("list-v6", Service::new(key("[fd00:96::10]:80", IPPROTO_TCP), "rr"), Destination::masq(dk("[fd00:244::2]:8080"), 1));
}
