//! The IPVS objects as plain data, the operations on them, and the backend trait
//! that the kernel connection and the fake both implement.

use std::net::IpAddr;

use crate::IpvsError;

/// IP_VS_SVC_F_* service flags.
pub const FLAG_PERSISTENT: u32 = 0x1;
/// Set by the kernel on every live service; never meaningful in a request.
pub const FLAG_HASHED: u32 = 0x2;
pub const FLAG_ONEPACKET: u32 = 0x4;
/// Scheduler flags: sh-fallback / mh-fallback, sh-port / mh-port, and a third unused one.
pub const FLAG_SCHED1: u32 = 0x8;
pub const FLAG_SCHED2: u32 = 0x10;
pub const FLAG_SCHED3: u32 = 0x20;

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_SCTP: u8 = 132;

/// A virtual service: what the kernel looks services up by (fwmark services are not modelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub addr: IpAddr,
    /// 6, 17 or 132.
    pub protocol: u8,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub key: ServiceKey,
    pub scheduler: String,
    /// FLAG_*; FLAG_HASHED is dropped when read back.
    pub flags: u32,
    /// Persistence in seconds, 0 = none.
    pub timeout: u32,
    /// v4: the mask as a host u32 (0xffff_ffff), v6: the prefix length (128).
    pub netmask: u32,
}

impl Service {
    /// No flags, no persistence, the full netmask of the key's family.
    pub fn new(key: ServiceKey, scheduler: &str) -> Self {
        Service { key, scheduler: scheduler.to_owned(), flags: 0, timeout: 0, netmask: full_netmask(&key.addr) }
    }

    /// Adds FLAG_* bits (ONEPACKET, the scheduler flags).
    pub fn with_flags(mut self, flags: u32) -> Self {
        self.flags |= flags;
        self
    }

    /// Client-IP affinity for `timeout` seconds (ipvsadm's -p).
    pub fn persistent(mut self, timeout: u32) -> Self {
        self.flags |= FLAG_PERSISTENT;
        self.timeout = timeout;
        self
    }
}

/// The netmask ipvsadm sends when none is given: 255.255.255.255 or /128.
pub fn full_netmask(addr: &IpAddr) -> u32 {
    if addr.is_ipv4() {
        0xffff_ffff
    } else {
        128
    }
}

/// A real server of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestKey {
    pub addr: IpAddr,
    pub port: u16,
}

/// IP_VS_CONN_F_* forwarding method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Forward {
    #[default]
    Masq,
    Local,
    Tunnel,
    Route,
}

impl Forward {
    pub fn code(self) -> u32 {
        match self {
            Forward::Masq => crate::consts::IP_VS_CONN_F_MASQ,
            Forward::Local => crate::consts::IP_VS_CONN_F_LOCALNODE,
            Forward::Tunnel => crate::consts::IP_VS_CONN_F_TUNNEL,
            Forward::Route => crate::consts::IP_VS_CONN_F_DROUTE,
        }
    }

    /// The kernel masks the attribute with IP_VS_CONN_F_FWD_MASK; bypass (4) and above are not destinations.
    pub fn from_code(code: u32) -> Option<Self> {
        match code & crate::consts::IP_VS_CONN_F_FWD_MASK {
            0 => Some(Forward::Masq),
            1 => Some(Forward::Local),
            2 => Some(Forward::Tunnel),
            3 => Some(Forward::Route),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub key: DestKey,
    pub weight: u32,
    pub forward: Forward,
    /// Connection thresholds, 0 = unlimited.
    pub upper_threshold: u32,
    pub lower_threshold: u32,
}

impl Destination {
    /// A NAT destination without thresholds: what kube-proxy creates.
    pub fn masq(key: DestKey, weight: u32) -> Self {
        Destination { key, weight, forward: Forward::Masq, upper_threshold: 0, lower_threshold: 0 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DestStats {
    pub active_conns: u32,
    pub inactive_conns: u32,
    pub persist_conns: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationState {
    pub dest: Destination,
    pub stats: DestStats,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    AddService(Service),
    /// Replaces scheduler, flags, timeout and netmask.
    EditService(Service),
    /// Deletes its destinations too.
    DeleteService(ServiceKey),
    AddDest(ServiceKey, Destination),
    EditDest(ServiceKey, Destination),
    DeleteDest(ServiceKey, DestKey),
}

impl Op {
    pub fn service(&self) -> &ServiceKey {
        match self {
            Op::AddService(s) | Op::EditService(s) => &s.key,
            Op::DeleteService(k) | Op::AddDest(k, _) | Op::EditDest(k, _) | Op::DeleteDest(k, _) => k,
        }
    }
}

/// Connection timeouts in seconds; 0 in set_timeouts leaves one as it is (the kernel's own rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// IP_VS_VERSION_CODE: 0x010201.
    pub version: u32,
    /// Buckets of the connection hash table (the ip_vs conn_tab_bits parameter).
    pub conn_tab_size: u32,
}

impl Info {
    /// "1.2.1", as `ipvsadm` prints it.
    pub fn version_string(&self) -> String {
        let v = self.version;
        format!("{}.{}.{}", (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff)
    }
}

/// One result per op, in order: Ok or the positive errno the kernel answered.
pub type OpResults = Vec<Result<(), i32>>;

/// IPVS as the proxier sees it: the kernel (`Ipvs`) or the in-memory `Fake`.
pub trait IpvsBackend {
    /// Applies every op in order; one failing does not stop the rest (as the kernel does).
    fn apply(&mut self, ops: &[Op]) -> Result<OpResults, IpvsError>;
    /// Sorted by key.
    fn services(&mut self) -> Result<Vec<Service>, IpvsError>;
    /// Sorted by key; empty for a service that does not exist, as the kernel's dump answers.
    fn destinations(&mut self, svc: &ServiceKey) -> Result<Vec<DestinationState>, IpvsError>;
    fn info(&mut self) -> Result<Info, IpvsError>;
    fn timeouts(&mut self) -> Result<Timeouts, IpvsError>;
    fn set_timeouts(&mut self, t: &Timeouts) -> Result<(), IpvsError>;
}
