//! The shared table (tests/common) against the Fake and against the running
//! kernel. Where the kernel has no IPVS (or we lack CAP_NET_ADMIN) the kernel
//! test prints why and passes; the test VM runs it for real:
//!   cargo test -p kproxy-ipvs --no-run   # note target/debug/deps/kernel-*
//!   tests/vm/run.sh 'modprobe ip_vs; ip link set lo up; target/debug/deps/kernel-* --test-threads=1'
//! (lo must be up: the kernel wants IPv4 destinations unicast by its routing table.)
//! With KPROXY_IPVS_KEEP=1 the kernel test leaves its services for `ipvsadm-save -n` to print.

mod common;

use kproxy_ipvs::*;

#[test]
fn the_fake_meets_the_table() {
    common::scenario(&mut Fake::default());
}

#[test]
fn the_kernel_meets_the_table() {
    let mut ipvs = match Ipvs::open() {
        Ok(ipvs) => ipvs,
        Err(IpvsError::NotAvailable) => return println!("skipped: no IPVS"),
        // qemu-user emulates rtnetlink but not generic netlink (EPROTONOSUPPORT); a real kernel
        // always has it, so this skip is only for runs that say they are emulated.
        Err(e) if e.errno() == Some(93) && std::env::var_os("KPROXY_TEST_EMULATED").is_some() => {
            return println!("skipped: no generic netlink under qemu-user")
        }
        Err(e) => panic!("opening IPVS: {e}"),
    };
    // GET_INFO needs CAP_NET_ADMIN like every IPVS command.
    if let Err(e) = ipvs.info() {
        assert_eq!(e.errno(), Some(error::EPERM), "{e}");
        return println!("skipped: IPVS needs CAP_NET_ADMIN");
    }
    println!("IPVS family id {}", ipvs.family_id());
    common::scenario(&mut ipvs);
    if std::env::var_os("KPROXY_IPVS_KEEP").is_some() {
        keep(&mut ipvs);
    }
}

/// Leaves a set of services behind and prints our rendering of it, to compare with ipvsadm-save's.
fn keep(b: &mut dyn IpvsBackend) {
    use common::{dk, key};
    let s4 = key("198.51.100.10:80", IPPROTO_TCP);
    let local = Destination { forward: Forward::Local, ..Destination::masq(dk("127.0.0.1:80"), 1) };
    let ops = [
        Op::AddService(Service { netmask: 0xffff_ff00, ..Service::new(s4, "sh").persistent(30) }.with_flags(FLAG_SCHED1 | FLAG_SCHED2)),
        Op::AddDest(s4, local),
        Op::AddDest(s4, Destination { upper_threshold: 9, lower_threshold: 3, ..Destination::masq(dk("203.0.113.1:8080"), 4) }),
        Op::AddService(Service::new(common::key("[2001:db8::10]:53", IPPROTO_UDP), "rr").persistent(0)),
    ];
    assert!(b.apply(&ops).unwrap().iter().all(|r| r.is_ok()));
    print!("OURS-BEGIN\n{}OURS-END\n", common::state(b));
}
