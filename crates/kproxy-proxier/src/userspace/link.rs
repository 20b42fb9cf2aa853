//! The link that holds the Service addresses, so the proxy can listen on them: a dummy
//! device of kproxy's own, or, on a kernel without the dummy driver, `lo`, where kproxy
//! marks its addresses with IFA_PROTO to tell them from the host's. A fake of both.

use std::collections::BTreeSet;
use std::net::IpAddr;

use kproxy_rtnetlink::{Rtnl, RtnlError};

use crate::error::{rtnl_error, Code, ProxierError};

/// The dummy device of userspace mode.
pub const LINK: &str = "kproxy-vips";
/// IFA_PROTO of kproxy's addresses on a shared link ('k').
pub const ADDR_PROTO: u8 = 0x6b;
/// What the kernel answers a link kind it has no driver for.
const EOPNOTSUPP: i32 = 95;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    Dummy,
    Loopback,
}

impl LinkKind {
    pub fn describe(self) -> &'static str {
        match self {
            LinkKind::Dummy => "kproxy-vips (dummy)",
            LinkKind::Loopback => "lo (no dummy driver)",
        }
    }
}

pub enum VipLink {
    Kernel { conn: Option<Rtnl>, at: Option<(u32, LinkKind)> },
    Fake { kind: LinkKind, exists: bool, addrs: BTreeSet<IpAddr>, node: Vec<IpAddr> },
}

fn link_local(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v) if (v.segments()[0] & 0xffc0) == 0xfe80)
}

impl VipLink {
    pub fn kernel() -> Self {
        VipLink::Kernel { conn: None, at: None }
    }

    pub fn fake(kind: LinkKind, node: Vec<IpAddr>) -> Self {
        VipLink::Fake { kind, exists: false, addrs: BTreeSet::new(), node }
    }

    fn rtnl(conn: &mut Option<Rtnl>) -> Result<&mut Rtnl, ProxierError> {
        if conn.is_none() {
            *conn = Some(Rtnl::open().map_err(rtnl_error)?);
        }
        Ok(conn.as_mut().expect("just opened"))
    }

    /// The link's index and kind, the dummy made (and up) if missing.
    pub fn ensure(&mut self) -> Result<(u32, LinkKind), ProxierError> {
        match self {
            VipLink::Fake { kind, exists, .. } => {
                *exists = true;
                Ok((1, *kind))
            }
            VipLink::Kernel { conn, at } => {
                let r = Self::rtnl(conn)?;
                let found = match r.ensure_link(LINK, "dummy") {
                    Ok(l) => {
                        // Up, so IPv6 addresses are usable (IPv4 ones are local either way).
                        r.set_up(l.index, true).map_err(rtnl_error)?;
                        (l.index, LinkKind::Dummy)
                    }
                    Err(RtnlError::Kernel { errno: EOPNOTSUPP, .. }) => {
                        let lo = r.link("lo").map_err(rtnl_error)?;
                        let lo = lo.ok_or_else(|| ProxierError::new(Code::Internal, "no dummy driver and no lo link"))?;
                        (lo.index, LinkKind::Loopback)
                    }
                    Err(e) => return Err(rtnl_error(e)),
                };
                *at = Some(found);
                Ok(found)
            }
        }
    }

    /// The link as the last `ensure` found it.
    pub fn current(&self) -> Option<(u32, LinkKind)> {
        match self {
            VipLink::Fake { kind, exists, .. } => exists.then_some((1, *kind)),
            VipLink::Kernel { at, .. } => *at,
        }
    }

    /// kproxy's addresses on the link (the dummy's kernel-made link-local one aside).
    pub fn ours(&mut self) -> Result<Vec<IpAddr>, ProxierError> {
        let Some((index, kind)) = self.current() else { return Ok(Vec::new()) };
        match self {
            VipLink::Fake { addrs, .. } => Ok(addrs.iter().copied().collect()),
            VipLink::Kernel { conn, .. } => {
                let all = Self::rtnl(conn)?.addresses(Some(index)).map_err(rtnl_error)?;
                Ok(all
                    .into_iter()
                    .filter(|a| match kind {
                        LinkKind::Dummy => !link_local(&a.addr),
                        LinkKind::Loopback => a.proto == ADDR_PROTO,
                    })
                    .map(|a| a.addr)
                    .collect())
            }
        }
    }

    /// Adds and deletes host addresses; returns how many the kernel refused (one already
    /// there, or already gone, is no failure).
    pub fn change(&mut self, add: &[IpAddr], delete: &[IpAddr]) -> Result<usize, ProxierError> {
        let (index, _) = self.ensure_known()?;
        match self {
            VipLink::Fake { addrs, .. } => {
                addrs.extend(add.iter().copied());
                for a in delete {
                    addrs.remove(a);
                }
                Ok(0)
            }
            VipLink::Kernel { conn, at } => {
                let host = |v: &[IpAddr]| v.iter().map(|a| (*a, if a.is_ipv4() { 32 } else { 128 })).collect::<Vec<_>>();
                let (added, deleted) =
                    Self::rtnl(conn)?.change_addresses(index, &host(add), &host(delete), ADDR_PROTO).map_err(rtnl_error)?;
                let refused = |r: &Vec<Result<(), i32>>, fine: i32| r.iter().filter(|r| matches!(r, Err(e) if *e != fine)).count();
                let n = refused(&added, kproxy_rtnetlink::EEXIST) + refused(&deleted, kproxy_rtnetlink::EADDRNOTAVAIL);
                if added.contains(&Err(kproxy_rtnetlink::ENODEV)) {
                    *at = None; // the link went: found again next time
                }
                Ok(n)
            }
        }
    }

    fn ensure_known(&mut self) -> Result<(u32, LinkKind), ProxierError> {
        match self.current() {
            Some(c) => Ok(c),
            None => self.ensure(),
        }
    }

    /// Every address of the node but kproxy's, loopback and IPv6 link-local ones: where
    /// NodePorts answer when they answer on every address.
    pub fn node_addresses(&mut self) -> Result<Vec<IpAddr>, ProxierError> {
        let current = self.current();
        let all: Vec<IpAddr> = match self {
            VipLink::Fake { node, .. } => node.clone(),
            VipLink::Kernel { conn, .. } => {
                let r = Self::rtnl(conn)?;
                let dummy = r.link(LINK).map_err(rtnl_error)?.map(|l| l.index);
                let lo = matches!(current, Some((_, LinkKind::Loopback)));
                r.addresses(None)
                    .map_err(rtnl_error)?
                    .into_iter()
                    .filter(|a| Some(a.index) != dummy && !(lo && a.proto == ADDR_PROTO))
                    .map(|a| a.addr)
                    .collect()
            }
        };
        let mut v: Vec<IpAddr> = all.into_iter().filter(|ip| !ip.is_loopback() && !link_local(ip)).collect();
        v.sort_unstable();
        v.dedup();
        Ok(v)
    }

    /// Deletes the dummy, and kproxy's marked addresses on lo; returns how many addresses went.
    pub fn cleanup(&mut self) -> Result<usize, ProxierError> {
        match self {
            VipLink::Fake { exists, addrs, .. } => {
                *exists = false;
                Ok(std::mem::take(addrs).len())
            }
            VipLink::Kernel { conn, at } => {
                let r = Self::rtnl(conn)?;
                let mut n = 0;
                if let Some(l) = r.link(LINK).map_err(rtnl_error)? {
                    n += r.addresses(Some(l.index)).map_err(rtnl_error)?.iter().filter(|a| !link_local(&a.addr)).count();
                    r.delete_link(LINK).map_err(rtnl_error)?;
                }
                if let Some(lo) = r.link("lo").map_err(rtnl_error)? {
                    let marked: Vec<(IpAddr, u8)> = r
                        .addresses(Some(lo.index))
                        .map_err(rtnl_error)?
                        .into_iter()
                        .filter(|a| a.proto == ADDR_PROTO)
                        .map(|a| (a.addr, a.prefix_len))
                        .collect();
                    let (_, deleted) = r.change_addresses(lo.index, &[], &marked, 0).map_err(rtnl_error)?;
                    n += deleted.iter().filter(|d| d.is_ok()).count();
                }
                *at = None;
                Ok(n)
            }
        }
    }
}
