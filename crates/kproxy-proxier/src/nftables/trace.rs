//! `explain`: the tracer over this mode's desired ruleset, answered as JSON in
//! the shape of ts/proxier/types.ts `TraceResult`.

use std::net::IpAddr;

use kproxy_nftables::trace::{trace_with_local, Fate, Packet};
use kproxy_nftables::{Cidr, Fake, Family, Transaction};

use crate::error::{Code, ProxierError};
use crate::service::protocol_number;

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn host_port(ip: IpAddr, port: u16) -> String {
    if ip.is_ipv6() {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// Traces a new connection `src` → `dst:port/protocol` through the full transaction `tx`;
/// `local` are the prefixes the node delivers to itself (usually none: ClusterIPs are not local);
/// `iif` the interface a received packet came in on ("" for none).
#[allow(clippy::too_many_arguments)]
pub fn explain(
    tx: &Transaction,
    src: &str,
    dst: &str,
    port: u32,
    protocol: &str,
    from_node: bool,
    iif: &str,
    local: &[String],
) -> Result<String, ProxierError> {
    let bad = |m: String| ProxierError::new(Code::InvalidOption, m);
    let src: IpAddr = src.parse().map_err(|_| bad(format!("bad source address {src:?}")))?;
    let dst: IpAddr = dst.parse().map_err(|_| bad(format!("bad destination address {dst:?}")))?;
    if Family::of(&src) != tx.family || Family::of(&dst) != tx.family {
        return Err(bad(format!("{src} → {dst} is not {}", tx.family.keyword())));
    }
    let proto = protocol_number(protocol).ok_or_else(|| bad(format!("unknown protocol {protocol:?}")))?;
    let dport = u16::try_from(port).ok().filter(|p| *p > 0).ok_or_else(|| bad(format!("port {port} out of range 1-65535")))?;
    let mut nets = Vec::with_capacity(local.len());
    for c in local {
        nets.push(c.parse::<Cidr>().map_err(|e| bad(format!("bad local CIDR {c:?}: {e}")))?);
    }
    let mut fake = Fake::new();
    fake.apply(tx).map_err(|e| ProxierError::new(Code::Internal, format!("the desired ruleset does not apply: {e:?}")))?;
    let outcomes = trace_with_local(
        &fake,
        tx.family,
        &Packet { src, dst, proto, dport, from_node, iif: (!iif.is_empty()).then(|| iif.to_owned()) },
        &nets,
    );
    let mut items: Vec<String> = outcomes
        .iter()
        .map(|o| {
            let (verdict, with) = match o.fate {
                Fate::Accept if o.dnat.is_some() => ("DNAT", None),
                Fate::Accept => ("ACCEPT", None),
                Fate::Drop => ("DROP", None),
                Fate::RejectTcpReset => ("REJECT", Some("tcp reset")),
                Fate::RejectIcmp => ("REJECT", Some("icmp port-unreachable")),
            };
            let mut s = format!("{{\"verdict\":\"{verdict}\"");
            if let Some((ip, p)) = o.dnat {
                s.push_str(&format!(",\"endpoint\":{}", json_str(&host_port(ip, p))));
            }
            s.push_str(&format!(",\"masquerade\":{}", o.masquerade));
            if let Some(w) = with {
                s.push_str(&format!(",\"rejectWith\":\"{w}\""));
            }
            s.push('}');
            s
        })
        .collect();
    items.sort();
    items.dedup();
    let first = outcomes.first();
    let service = first.and_then(|o| o.comments.first()).map(|c| format!(",\"service\":{}", json_str(c))).unwrap_or_default();
    let path: Vec<String> = first.map(|o| o.path.iter().map(|p| json_str(p)).collect()).unwrap_or_default();
    Ok(format!("{{\"outcomes\":[{}]{service},\"path\":[{}]}}", items.join(","), path.join(",")))
}
