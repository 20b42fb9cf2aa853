//! An in-memory IPVS with the kernel's semantics (net/netfilter/ipvs/ip_vs_ctl.c,
//! ip_vs_genl_set_cmd): the same checks, in the same order, with the same errnos.
//! tests/kernel.rs holds it and the kernel to one table of expectations.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

use crate::error::*;
use crate::*;

/// The schedulers of a current kernel ("none" binds none); twos arrived in 6.2.
pub const SCHEDULERS: &[&str] = &["rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos", "none"];
/// IP_VS_SCHEDNAME_MAXLEN - 1: a longer name fails the attribute policy.
const SCHED_NAME_MAX: usize = 15;
/// The kernel keeps timeouts in jiffies: above INT_MAX / HZ is EINVAL (HZ 250, Debian's).
const TIMEOUT_MAX: u32 = i32::MAX as u32 / 250;
/// The kernel's defaults (ip_vs_proto_tcp.c, ip_vs_proto_udp.c).
pub const DEFAULT_TIMEOUTS: Timeouts = Timeouts { tcp: 900, tcp_fin: 120, udp: 300 };

#[derive(Debug, Clone)]
struct Entry {
    svc: Service,
    dests: BTreeMap<DestKey, DestinationState>,
}

#[derive(Debug, Clone)]
pub struct Fake {
    services: BTreeMap<ServiceKey, Entry>,
    timeouts: Timeouts,
    info: Info,
    fail_next: VecDeque<i32>,
}

impl Default for Fake {
    fn default() -> Self {
        Fake {
            services: BTreeMap::new(),
            timeouts: DEFAULT_TIMEOUTS,
            info: Info { version: consts::IP_VS_VERSION_CODE, conn_tab_size: 4096 },
            fail_next: VecDeque::new(),
        }
    }
}

impl Fake {
    /// Test hook: the connection counters a dump reports. False if there is no such destination.
    pub fn set_stats(&mut self, svc: &ServiceKey, dest: &DestKey, stats: DestStats) -> bool {
        match self.services.get_mut(svc).and_then(|e| e.dests.get_mut(dest)) {
            Some(d) => {
                d.stats = stats;
                true
            }
            None => false,
        }
    }

    /// Test hook: the next op applied fails with `errno` and changes nothing. Calls queue up.
    pub fn fail_next(&mut self, errno: i32) {
        self.fail_next.push_back(errno);
    }

    /// Everything, as `ipvsadm-save -n` prints it (sorted).
    pub fn render(&self) -> String {
        let all: Vec<_> = self.services.values().map(|e| (e.svc.clone(), e.dests.values().map(|d| d.dest.clone()).collect())).collect();
        text::render(&all)
    }

    fn apply_one(&mut self, op: &Op) -> Result<(), i32> {
        if let Some(errno) = self.fail_next.pop_front() {
            return Err(errno);
        }
        if let Op::AddService(s) | Op::EditService(s) = op {
            if s.scheduler.len() > SCHED_NAME_MAX {
                return Err(EINVAL); // the nest fails its policy before anything is looked up
            }
        }
        let key = op.service();
        let Some(entry) = self.services.get_mut(key) else {
            if let Op::AddService(s) = op {
                check_service(s)?;
                let svc = Service { flags: s.flags & !FLAG_HASHED, ..s.clone() };
                self.services.insert(s.key, Entry { svc, dests: BTreeMap::new() });
                return Ok(());
            }
            return Err(ESRCH);
        };
        if let Op::AddDest(_, d) | Op::EditDest(_, d) = op {
            // Only tunnels may cross families (ipvs->sync_state aside).
            if d.key.addr.is_ipv4() != key.addr.is_ipv4() && d.forward != Forward::Tunnel {
                return Err(EINVAL);
            }
            if d.weight > i32::MAX as u32 || d.lower_threshold > d.upper_threshold {
                return Err(ERANGE);
            }
        }
        match op {
            Op::AddService(_) => Err(EEXIST),
            Op::EditService(s) => {
                check_service(s)?;
                entry.svc = Service { flags: s.flags & !FLAG_HASHED, ..s.clone() };
                Ok(())
            }
            Op::DeleteService(_) => {
                self.services.remove(key);
                Ok(())
            }
            Op::AddDest(_, d) => {
                if entry.dests.contains_key(&d.key) {
                    return Err(EEXIST);
                }
                if !unicast(&d.key.addr) {
                    return Err(EINVAL);
                }
                entry.dests.insert(d.key, DestinationState { dest: d.clone(), stats: DestStats::default() });
                Ok(())
            }
            Op::EditDest(_, d) => {
                let state = entry.dests.get_mut(&d.key).ok_or(ENOENT)?;
                state.dest = d.clone();
                Ok(())
            }
            Op::DeleteDest(_, dk) => entry.dests.remove(dk).map(|_| ()).ok_or(ENOENT),
        }
    }
}

/// ip_vs_add_service / ip_vs_edit_service: the scheduler must exist, a v6 netmask be a prefix length.
fn check_service(s: &Service) -> Result<(), i32> {
    if !SCHEDULERS.contains(&s.scheduler.as_str()) {
        return Err(ENOENT);
    }
    if s.key.addr.is_ipv6() && !(1..=128).contains(&s.netmask) {
        return Err(EINVAL);
    }
    Ok(())
}

/// ip_vs_new_dest's address check, without a routing table: IPv4 must not be
/// 0.0.0.0/8, broadcast or multicast (the kernel wants RTN_UNICAST or RTN_LOCAL),
/// IPv6 must be unicast and not link-local.
fn unicast(addr: &IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.octets()[0] != 0 && !a.is_broadcast() && !a.is_multicast(),
        IpAddr::V6(a) => !a.is_unspecified() && !a.is_multicast() && (a.segments()[0] & 0xffc0) != 0xfe80,
    }
}

impl IpvsBackend for Fake {
    fn apply(&mut self, ops: &[Op]) -> Result<OpResults, IpvsError> {
        Ok(ops.iter().map(|op| self.apply_one(op)).collect())
    }

    fn services(&mut self) -> Result<Vec<Service>, IpvsError> {
        Ok(self.services.values().map(|e| e.svc.clone()).collect())
    }

    fn destinations(&mut self, svc: &ServiceKey) -> Result<Vec<DestinationState>, IpvsError> {
        Ok(self.services.get(svc).map(|e| e.dests.values().cloned().collect()).unwrap_or_default())
    }

    fn info(&mut self) -> Result<Info, IpvsError> {
        Ok(self.info)
    }

    fn timeouts(&mut self) -> Result<Timeouts, IpvsError> {
        Ok(self.timeouts)
    }

    fn set_timeouts(&mut self, t: &Timeouts) -> Result<(), IpvsError> {
        if [t.tcp, t.tcp_fin, t.udp].iter().any(|&v| v > TIMEOUT_MAX) {
            return Err(IpvsError::Kernel { errno: EINVAL, what: "set timeouts" });
        }
        for (have, want) in [(&mut self.timeouts.tcp, t.tcp), (&mut self.timeouts.tcp_fin, t.tcp_fin), (&mut self.timeouts.udp, t.udp)] {
            if want != 0 {
                *have = want;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str, protocol: u8) -> ServiceKey {
        let a: std::net::SocketAddr = s.parse().unwrap();
        ServiceKey { addr: a.ip(), protocol, port: a.port() }
    }

    fn dest(s: &str) -> DestKey {
        let a: std::net::SocketAddr = s.parse().unwrap();
        DestKey { addr: a.ip(), port: a.port() }
    }

    #[test]
    fn deleting_a_service_deletes_its_destinations() {
        let mut f = Fake::default();
        let k = key("10.96.0.10:80", IPPROTO_TCP);
        let ops = [Op::AddService(Service::new(k, "rr")), Op::AddDest(k, Destination::masq(dest("10.244.1.2:8080"), 1))];
        assert_eq!(f.apply(&ops).unwrap(), vec![Ok(()), Ok(())]);
        assert_eq!(f.apply(&[Op::DeleteService(k), Op::AddService(Service::new(k, "rr"))]).unwrap(), vec![Ok(()), Ok(())]);
        assert_eq!(f.destinations(&k).unwrap(), vec![]);
    }

    #[test]
    fn stats_and_injected_failures() {
        let mut f = Fake::default();
        let k = key("[fd00::10]:53", IPPROTO_UDP);
        let d = dest("[fd00::2]:53");
        f.fail_next(12);
        let ops = [Op::AddService(Service::new(k, "rr")), Op::AddService(Service::new(k, "rr")), Op::AddDest(k, Destination::masq(d, 1))];
        assert_eq!(f.apply(&ops).unwrap(), vec![Err(12), Ok(()), Ok(())]);
        let stats = DestStats { active_conns: 3, inactive_conns: 2, persist_conns: 1 };
        assert!(f.set_stats(&k, &d, stats));
        assert!(!f.set_stats(&k, &dest("[fd00::3]:53"), stats));
        assert_eq!(f.destinations(&k).unwrap()[0].stats, stats);
        f.apply(&[Op::EditDest(k, Destination::masq(d, 0))]).unwrap();
        assert_eq!(f.destinations(&k).unwrap()[0].stats, stats, "an edit keeps the counters");
    }

    #[test]
    fn hashed_is_never_stored_and_timeouts_keep_what_is_zero() {
        let mut f = Fake::default();
        let k = key("10.96.0.10:80", IPPROTO_TCP);
        f.apply(&[Op::AddService(Service { flags: FLAG_HASHED | FLAG_ONEPACKET, ..Service::new(k, "rr") })]).unwrap();
        assert_eq!(f.services().unwrap()[0].flags, FLAG_ONEPACKET);
        f.set_timeouts(&Timeouts { tcp: 0, tcp_fin: 30, udp: 0 }).unwrap();
        assert_eq!(f.timeouts().unwrap(), Timeouts { tcp: 900, tcp_fin: 30, udp: 300 });
        let e = f.set_timeouts(&Timeouts { tcp: u32::MAX, ..Default::default() }).unwrap_err();
        assert_eq!(e.errno(), Some(EINVAL));
    }
}
