//! Fuzz target for the generic-netlink (IPVS) readers: the reply reader, GET_SERVICE
//! and GET_DEST dump messages, GET_INFO, GET_CONFIG and the family lookup's reply.
//! Stable Rust, run by `cargo test`; KPROXY_FUZZ_ITERS / KPROXY_FUZZ_SEED as in
//! kproxy-netlink/tests/fuzzkit/mod.rs; scripts/fuzz.sh runs it longer.

#[path = "../../kproxy-netlink/tests/fuzzkit/mod.rs"]
mod fuzzkit;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::consts::*;
use crate::genl::parse_family_id;
use crate::msg::{af, parse_dest, parse_info, parse_service, parse_timeouts};
use crate::reply::ReplyReader;
use crate::testutil::*;
use crate::*;

const FAM: u16 = 0x20;
const CMD_NEW_SERVICE: u8 = 4;
const CMD_NEW_DEST: u8 = 8;

/// One datagram as a dump's answer. Must not panic; a service or destination that
/// parses, laid out again as the kernel sends it, parses equal.
pub fn fuzz_genl(data: &[u8]) {
    for (fam, what) in [(FAM, "dump"), (GENL_ID_CTRL, "family lookup")] {
        let mut r = ReplyReader::new(1, fam, what);
        let _ = r.feed(data, |cmd, p| {
            let _ = parse_info(p);
            let _ = parse_timeouts(p);
            let _ = parse_family_id(p);
            if let Ok(Some(s)) = parse_service(p) {
                let again = parse_service(&kernel_service(&s));
                assert_eq!(again.as_ref().ok().and_then(|x| x.as_ref()), Some(&s), "service round trip");
            }
            for family in [AF_INET, AF_INET6] {
                if let Ok(d) = parse_dest(p, family) {
                    let again = parse_dest(&kernel_dest(&d, cmd & 1 == 0), af(&d.dest.key.addr));
                    assert_eq!(again.ok().as_ref(), Some(&d), "destination round trip");
                }
            }
            Ok(())
        });
    }
}

fn corpus() -> Vec<Vec<u8>> {
    let v4 = ServiceKey { addr: IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10)), protocol: 6, port: 80 };
    let v6 = ServiceKey { addr: IpAddr::V6(Ipv6Addr::new(0xfd00, 0x96, 0, 0, 0, 0, 0, 0x53)), protocol: 17, port: 53 };
    let services = [Service::new(v4, "rr"), Service::new(v6, "sh").persistent(10800).with_flags(FLAG_SCHED1)];
    let mut out = Vec::new();
    let mut dump = Vec::new();
    for s in &services {
        dump.extend(genl_msg(FAM, 1, 0x2, CMD_NEW_SERVICE, &kernel_service(s)));
    }
    dump.extend(done(1, 0));
    out.push(dump);
    let dests = [
        DestinationState { dest: Destination::masq(DestKey { addr: IpAddr::V4(Ipv4Addr::new(10, 244, 1, 2)), port: 8080 }, 1), stats: DestStats { active_conns: 3, inactive_conns: 1, persist_conns: 0 } },
        DestinationState { dest: Destination::masq(DestKey { addr: services[1].key.addr, port: 8053 }, 5), stats: DestStats::default() },
    ];
    for (i, d) in dests.iter().enumerate() {
        out.push([genl_msg(FAM, 1, 0x2, CMD_NEW_DEST, &kernel_dest(d, i == 0)), done(1, 0)].concat());
    }
    let mut info = kproxy_netlink::MsgBuffer::default();
    info.attr(IPVS_INFO_ATTR_VERSION, &0x010203u32.to_ne_bytes());
    info.attr(IPVS_INFO_ATTR_CONN_TAB_SIZE, &4096u32.to_ne_bytes());
    out.push([genl_msg(FAM, 1, 0, 14, info.as_bytes()), ack(1, 0)].concat());
    let mut t = kproxy_netlink::MsgBuffer::default();
    t.attr(IPVS_CMD_ATTR_TIMEOUT_TCP, &900u32.to_ne_bytes());
    t.attr(IPVS_CMD_ATTR_TIMEOUT_TCP_FIN, &120u32.to_ne_bytes());
    t.attr(IPVS_CMD_ATTR_TIMEOUT_UDP, &300u32.to_ne_bytes());
    out.push([genl_msg(FAM, 1, 0, 13, t.as_bytes()), ack(1, 22)].concat());
    let mut f = kproxy_netlink::MsgBuffer::default();
    f.attr_str(CTRL_ATTR_FAMILY_NAME, "IPVS");
    f.attr(CTRL_ATTR_FAMILY_ID, &FAM.to_ne_bytes());
    f.attr(3, &1u32.to_ne_bytes());
    out.push([genl_msg(GENL_ID_CTRL, 1, 0, CTRL_CMD_NEWFAMILY, f.as_bytes()), ack(1, 0)].concat());
    out.push(done(1, -105));
    out
}

#[test]
fn fuzz_ipvs_genl() {
    fuzzkit::run("ipvs genl", 500_000, &corpus(), fuzz_genl);
}
