//! Options every mode's binding reads the same way.

use napi_derive::napi;

use kproxy_nftables::{Cidr, Family};
use kproxy_proxier::local::LocalDetector;
use kproxy_proxier::{sync::parse_family, Code};

use crate::errors::{coded, to_napi};

#[napi(object)]
pub struct LocalDetectorOption {
    pub mode: String,
    pub value: String,
}

fn detector(d: &LocalDetectorOption, family: Family, fam: &str) -> napi::Result<LocalDetector> {
    let invalid = |m: String| coded(Code::InvalidOption, m);
    match d.mode.as_str() {
        "ClusterCIDR" | "NodeCIDR" => {
            let c: Cidr = d.value.parse().map_err(|e| invalid(format!("{} {:?}: {e}", d.mode, d.value)))?;
            if Family::of(&c.addr) != family {
                return Err(invalid(format!("{} {c} is not {fam}", d.mode)));
            }
            Ok(LocalDetector::Cidr(c))
        }
        // Interface names: what the kernel accepts (IFNAMSIZ less the NUL), no quotes.
        // Only what interface names are made of: the name reaches iptables-restore lines (`-i NAME`).
        "BridgeInterface" | "InterfaceNamePrefix"
            if d.value.is_empty() || d.value.len() > 15 || !d.value.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.@-".contains(&b)) =>
        {
            Err(invalid(format!("{} {:?} is not an interface name", d.mode, d.value)))
        }
        "BridgeInterface" => Ok(LocalDetector::Interface(d.value.clone())),
        "InterfaceNamePrefix" => Ok(LocalDetector::InterfacePrefix(d.value.clone())),
        m => Err(invalid(format!("unknown detect-local mode {m:?}"))),
    }
}

/// What every mode's options share: the family, the local detector and the masquerade bit, checked.
pub(crate) fn common(
    family: &str,
    local_detector: &Option<LocalDetectorOption>,
    masquerade_bit: Option<u32>,
) -> napi::Result<(Family, Option<LocalDetector>, u32)> {
    let fam = parse_family(family).map_err(to_napi)?;
    let detector = match local_detector {
        None => None,
        Some(d) => Some(detector(d, fam, family)?),
    };
    let bit = masquerade_bit.unwrap_or(14);
    if bit > 31 {
        return Err(coded(Code::InvalidOption, format!("masqueradeBit must be 0-31, got {bit}")));
    }
    Ok((fam, detector, bit))
}
