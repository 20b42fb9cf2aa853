//! Where IPVS mode's three kinds of state go: IPVS itself, the addresses on kube-ipvs0,
//! and the nftables table. Each has the kernel and a fake with its semantics (tests, `plan`).

use std::collections::BTreeSet;
use std::net::IpAddr;

use kproxy_ipvs::{Fake as FakeIpvs, Ipvs, IpvsBackend, IpvsError};
use kproxy_nftables::{Conn, Fake as FakeNft, Family, NftError, Transaction};
use kproxy_rtnetlink::Rtnl;

use crate::error::{rtnl_error, Code, ProxierError};

/// The dummy device that holds every Service address, as upstream's.
pub const DUMMY: &str = "kube-ipvs0";

pub fn ipvs_error(e: IpvsError) -> ProxierError {
    match e {
        IpvsError::NotAvailable => ProxierError::new(
            Code::InvalidOption,
            "the kernel has no IPVS (modprobe ip_vs failed or it is not built); the nftables and iptables modes need no IPVS",
        ),
        IpvsError::Io(e) => ProxierError::new(Code::NetlinkIo, format!("IPVS: {e}")),
        IpvsError::Kernel { errno, what } => {
            ProxierError { code: Code::KernelRejected, message: format!("IPVS {what}: errno {errno}"), errno: Some(errno) }
        }
        other => ProxierError::new(Code::NoAck, format!("IPVS: {other}")),
    }
}

/// IPVS, opened on first use (so a fake-only caller never needs the kernel's).
pub enum IpvsSide {
    Kernel(Option<Ipvs>),
    Fake(FakeIpvs),
}

impl IpvsSide {
    pub fn get(&mut self) -> Result<&mut dyn IpvsBackend, ProxierError> {
        Ok(match self {
            IpvsSide::Fake(f) => f,
            IpvsSide::Kernel(conn) => {
                if conn.is_none() {
                    *conn = Some(Ipvs::open().map_err(ipvs_error)?);
                }
                conn.as_mut().expect("just opened")
            }
        })
    }
}

/// kube-ipvs0 and its addresses, or a fake of them.
pub enum LinkSide {
    Kernel(Option<Rtnl>),
    Fake { exists: bool, addrs: BTreeSet<IpAddr>, node: Vec<IpAddr> },
}

impl LinkSide {
    pub fn fake(node: Vec<IpAddr>) -> Self {
        LinkSide::Fake { exists: false, addrs: BTreeSet::new(), node }
    }

    fn rtnl(conn: &mut Option<Rtnl>) -> Result<&mut Rtnl, ProxierError> {
        if conn.is_none() {
            *conn = Some(Rtnl::open().map_err(rtnl_error)?);
        }
        Ok(conn.as_mut().expect("just opened"))
    }

    /// kube-ipvs0's index, made if missing (left down, as upstream leaves it).
    pub fn ensure(&mut self) -> Result<u32, ProxierError> {
        match self {
            LinkSide::Fake { exists, .. } => {
                *exists = true;
                Ok(1)
            }
            LinkSide::Kernel(c) => Ok(Self::rtnl(c)?.ensure_link(DUMMY, "dummy").map_err(rtnl_error)?.index),
        }
    }

    /// kube-ipvs0's index, if it exists.
    pub fn find(&mut self) -> Result<Option<u32>, ProxierError> {
        match self {
            LinkSide::Fake { exists, .. } => Ok(exists.then_some(1)),
            LinkSide::Kernel(c) => Ok(Self::rtnl(c)?.link(DUMMY).map_err(rtnl_error)?.map(|l| l.index)),
        }
    }

    /// The addresses on kube-ipvs0 (both families).
    pub fn addresses(&mut self, index: u32) -> Result<Vec<IpAddr>, ProxierError> {
        match self {
            LinkSide::Fake { addrs, .. } => Ok(addrs.iter().copied().collect()),
            LinkSide::Kernel(c) => Ok(Self::rtnl(c)?.addresses(Some(index)).map_err(rtnl_error)?.into_iter().map(|a| a.addr).collect()),
        }
    }

    /// Adds and deletes host addresses; returns how many the kernel refused (an address
    /// already there, or already gone, is not a failure).
    pub fn change(&mut self, index: u32, add: &[IpAddr], delete: &[IpAddr]) -> Result<usize, ProxierError> {
        match self {
            LinkSide::Fake { addrs, .. } => {
                addrs.extend(add.iter().copied());
                for a in delete {
                    addrs.remove(a);
                }
                Ok(0)
            }
            LinkSide::Kernel(c) => {
                let host = |v: &[IpAddr]| v.iter().map(|a| (*a, super::build::host(*a).prefix)).collect::<Vec<_>>();
                let (added, deleted) = Self::rtnl(c)?.change_addresses(index, &host(add), &host(delete), 0).map_err(rtnl_error)?;
                let refused = |r: &Vec<Result<(), i32>>, fine: i32| r.iter().filter(|r| matches!(r, Err(e) if *e != fine)).count();
                Ok(refused(&added, kproxy_rtnetlink::EEXIST) + refused(&deleted, kproxy_rtnetlink::EADDRNOTAVAIL))
            }
        }
    }

    /// Every address of the node but kube-ipvs0's, loopback and IPv6 link-local ones: where
    /// NodePorts answer when they answer on every address.
    pub fn node_addresses(&mut self) -> Result<Vec<IpAddr>, ProxierError> {
        let all = match self {
            LinkSide::Fake { node, .. } => node.clone(),
            LinkSide::Kernel(c) => {
                let r = Self::rtnl(c)?;
                let dummy = r.link(DUMMY).map_err(rtnl_error)?.map(|l| l.index);
                r.addresses(None).map_err(rtnl_error)?.into_iter().filter(|a| Some(a.index) != dummy).map(|a| a.addr).collect()
            }
        };
        let link_local = |ip: &IpAddr| matches!(ip, IpAddr::V6(v) if (v.segments()[0] & 0xffc0) == 0xfe80);
        let mut v: Vec<IpAddr> = all.into_iter().filter(|ip| !ip.is_loopback() && !link_local(ip)).collect();
        v.sort_unstable();
        v.dedup();
        Ok(v)
    }

    pub fn delete(&mut self) -> Result<bool, ProxierError> {
        match self {
            LinkSide::Fake { exists, addrs, .. } => {
                addrs.clear();
                Ok(std::mem::replace(exists, false))
            }
            LinkSide::Kernel(c) => Self::rtnl(c)?.delete_link(DUMMY).map_err(rtnl_error),
        }
    }
}

/// The nftables side.
pub enum TableSide {
    Kernel(Option<Conn>),
    Fake(FakeNft),
}

impl TableSide {
    /// Whether the table is there (someone may have flushed the ruleset).
    pub fn exists(&mut self, family: Family) -> Result<bool, ProxierError> {
        match self {
            TableSide::Fake(f) => Ok(f.has_table(family, super::table::TABLE)),
            TableSide::Kernel(conn) => {
                if conn.is_none() {
                    *conn = Some(Conn::open().map_err(|e| ProxierError::from(&e))?);
                }
                let c = conn.as_mut().expect("just opened");
                // A small set's elements: cheap, and ENOENT when the table is gone.
                match c.list_elements(family, super::table::TABLE, crate::nftables::layout::FIREWALL_IPS) {
                    Ok(_) => Ok(true),
                    Err(NftError::Kernel { errno: 2, .. }) => Ok(false),
                    Err(e) => Err(ProxierError::from(&e)),
                }
            }
        }
    }

    pub fn commit(&mut self, tx: &Transaction) -> Result<usize, ProxierError> {
        if tx.is_empty() {
            return Ok(0);
        }
        match self {
            TableSide::Fake(f) => {
                f.apply(tx).map_err(|e| ProxierError::from(&NftError::Kernel { errno: e.errno, what: e.what, detail: None }))?;
                Ok(0)
            }
            TableSide::Kernel(conn) => {
                if conn.is_none() {
                    *conn = Some(Conn::open().map_err(|e| ProxierError::from(&e))?);
                }
                let c = conn.as_mut().expect("just opened");
                Ok(c.commit(tx, None).map_err(|e| ProxierError::from(&e))?.bytes)
            }
        }
    }
}
