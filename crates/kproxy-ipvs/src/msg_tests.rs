//! Round trips of msg.rs, and parsing of replies laid out as the kernel sends them.

use super::*;
use crate::testutil::*;

fn key(s: &str, protocol: u8) -> ServiceKey {
    let a: std::net::SocketAddr = s.parse().unwrap();
    ServiceKey { addr: a.ip(), protocol, port: a.port() }
}

fn dk(s: &str) -> DestKey {
    let a: std::net::SocketAddr = s.parse().unwrap();
    DestKey { addr: a.ip(), port: a.port() }
}

/// The attributes after the nlmsghdr and genl header of the one message in `b`.
fn body(b: &MsgBuffer) -> &[u8] {
    &b.as_bytes()[16 + GENL_HDRLEN..]
}

fn services() -> Vec<Service> {
    vec![
        Service::new(key("10.96.0.10:80", IPPROTO_TCP), "rr"),
        Service { netmask: 0xffff_ff00, ..Service::new(key("10.96.0.13:53", IPPROTO_UDP), "wrr").persistent(300) },
        Service { netmask: 64, ..Service::new(key("[fd00:96::11]:9000", IPPROTO_SCTP), "mh").with_flags(FLAG_SCHED2) },
    ]
}

#[test]
fn a_service_request_parses_back_to_the_service() {
    for s in services() {
        let mut b = MsgBuffer::default();
        encode_op(&mut b, 0x20, &Op::AddService(s.clone()), 1);
        assert_eq!(parse_service(body(&b)).unwrap(), Some(s));
    }
}

#[test]
fn a_destination_request_parses_back_to_the_destination() {
    let k = key("[fd00:96::10]:80", IPPROTO_TCP);
    let dests = [
        Destination::masq(dk("[fd00:244::2]:8080"), 7),
        Destination { forward: Forward::Tunnel, upper_threshold: 100, lower_threshold: 10, ..Destination::masq(dk("10.244.1.2:80"), 0) },
    ];
    for d in dests {
        let mut b = MsgBuffer::default();
        encode_op(&mut b, 0x20, &Op::EditDest(k, d.clone()), 1);
        assert_eq!(parse_dest(body(&b), AF_INET6).unwrap(), DestinationState { dest: d, stats: DestStats::default() });
    }
}

#[test]
fn dumped_services_drop_hashed_and_skip_the_stats() {
    for s in services() {
        assert_eq!(parse_service(&kernel_service(&s)).unwrap(), Some(s));
    }
}

#[test]
fn dumped_destinations_carry_their_counters_and_fall_back_to_the_service_family() {
    let d = DestinationState {
        dest: Destination { forward: Forward::Route, ..Destination::masq(dk("10.244.1.2:8080"), 3) },
        stats: DestStats { active_conns: 5, inactive_conns: 6, persist_conns: 7 },
    };
    assert_eq!(parse_dest(&kernel_dest(&d, true), AF_INET6).unwrap(), d);
    assert_eq!(parse_dest(&kernel_dest(&d, false), AF_INET).unwrap(), d);
}

#[test]
fn fwmark_services_are_skipped_and_truncated_ones_refused() {
    let mut b = MsgBuffer::default();
    let n = b.nest_start(IPVS_CMD_ATTR_SERVICE);
    b.attr(IPVS_SVC_ATTR_AF, &AF_INET.to_ne_bytes());
    b.attr(IPVS_SVC_ATTR_FWMARK, &5u32.to_ne_bytes());
    b.attr_str(IPVS_SVC_ATTR_SCHED_NAME, "rr");
    b.nest_end(n);
    assert_eq!(parse_service(b.as_bytes()).unwrap(), None);

    let mut b = MsgBuffer::default();
    let n = b.nest_start(IPVS_CMD_ATTR_SERVICE);
    b.attr(IPVS_SVC_ATTR_AF, &AF_INET.to_ne_bytes());
    b.attr(IPVS_SVC_ATTR_ADDR, &[10, 0, 0, 1]);
    b.nest_end(n);
    assert!(matches!(parse_service(b.as_bytes()), Err(IpvsError::Malformed(_))));
    assert!(matches!(parse_dest(&[], AF_INET), Err(IpvsError::Malformed(_))));
}

#[test]
fn info_and_timeouts() {
    let mut b = MsgBuffer::default();
    b.attr(IPVS_INFO_ATTR_VERSION, &0x010201u32.to_ne_bytes());
    b.attr(IPVS_INFO_ATTR_CONN_TAB_SIZE, &4096u32.to_ne_bytes());
    let info = parse_info(b.as_bytes()).unwrap();
    assert_eq!((info.version_string().as_str(), info.conn_tab_size), ("1.2.1", 4096));
    assert!(parse_info(&[]).is_err());

    let t = Timeouts { tcp: 900, tcp_fin: 0, udp: 300 };
    let mut b = MsgBuffer::default();
    encode_set_config(&mut b, 0x20, 1, &t);
    assert_eq!(parse_timeouts(body(&b)), t, "zeros are sent, to be left alone by the kernel");
}

#[test]
fn dumps_are_flagged_and_name_the_service_by_its_identity_only() {
    let mut b = MsgBuffer::default();
    encode_dump_dests(&mut b, 0x20, 9, &key("10.96.0.10:80", IPPROTO_TCP));
    assert_eq!(
        hex(b.as_bytes()),
        "44000000 20000503 09000000 00000000 08010000 30000180 06000100 02000000 06000200 06000000 \
         14000300 0a60000a 00000000 00000000 00000000 06000400 00500000"
    );
}
