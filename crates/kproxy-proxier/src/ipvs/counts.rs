//! IPVS mode's table elements as nftables element operations.

use std::collections::BTreeMap;

use kproxy_nftables::{Element as NftElement, Op as NftOp, Transaction};

use super::build::Element;
use super::table::element;

/// Adds (or deletes) the elements, one op per set.
pub fn push_elements<'a>(tx: &mut Transaction, elements: impl Iterator<Item = &'a Element>, add: bool) {
    let mut by_set: BTreeMap<&'static str, Vec<NftElement>> = BTreeMap::new();
    for e in elements {
        let (set, el) = element(e);
        by_set.entry(set).or_default().push(el);
    }
    for (set, elems) in by_set {
        tx.push(if add {
            NftOp::AddElements { set: set.into(), elems }
        } else {
            NftOp::DeleteElements { set: set.into(), keys: elems.into_iter().map(|e| e.key).collect() }
        });
    }
}
