//! Between syncs: is what kproxy programmed still there? One services dump (no real servers)
//! against the view, and the table's presence. A difference makes the next sync full, so that
//! it repairs whatever else is pending (a partial sync would not look).
//!
//! Only kproxy's own virtual servers count: one that another process added is left to the
//! periodic sync, as upstream's is, so that a neighbour managing IPVS (keepalived, say) is
//! not fought every second.

use std::collections::BTreeSet;

use kproxy_ipvs::text::service_id as id;
use kproxy_nftables::Family;

use super::backends::ipvs_error;
use super::reconcile::same_service;
use super::sync::IpvsSync;
use super::table::TABLE;
use crate::error::ProxierError;

impl IpvsSync {
    /// The first difference between the kernel and the last sync's result, in words (and
    /// the next sync is then full); None when there is none, or the next sync is full anyway.
    pub fn drift(&mut self) -> Result<Option<String>, ProxierError> {
        if self.needs_full {
            return Ok(None);
        }
        let found = self.first_difference()?;
        self.needs_full = found.is_some();
        Ok(found)
    }

    fn first_difference(&mut self) -> Result<Option<String>, ProxierError> {
        let family = self.family();
        if !self.table.exists(family)? {
            let name = if family == Family::Ip { "ip" } else { "ip6" };
            return Ok(Some(format!("the table {name} {TABLE} is gone")));
        }
        let mut seen = BTreeSet::new();
        for s in self.ipvs.get()?.services().map_err(ipvs_error)? {
            let Some((mine, _)) = self.view.get(&s.key) else { continue };
            if !same_service(mine, &s) {
                return Ok(Some(format!("virtual server {} was changed", id(&s.key))));
            }
            seen.insert(s.key);
        }
        Ok(self.view.keys().find(|k| !seen.contains(k)).map(|k| format!("virtual server {} is gone", id(k))))
    }
}
