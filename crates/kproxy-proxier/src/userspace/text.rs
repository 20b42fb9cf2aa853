//! userspace mode's canonical text: the link, its addresses, and per Service its pools
//! and frontends, one line each, sorted (golden tests, `plan`, debug).

use std::collections::BTreeSet;
use std::fmt::Write;
use std::net::IpAddr;

use kproxy_userspace::Proto;

use super::build::{Part, POOL_NAMES};

pub fn render<'a>(link: &str, addresses: impl Iterator<Item = &'a IpAddr>, parts: impl Iterator<Item = &'a Part>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "link {link}");
    let addresses: BTreeSet<&IpAddr> = addresses.collect();
    for a in addresses {
        let _ = writeln!(out, "address {a}");
    }
    let mut parts: Vec<&Part> = parts.collect();
    parts.sort_by(|a, b| a.display.cmp(&b.display));
    for p in parts {
        let proto = match p.proto {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        };
        let mut head = format!("service {} {proto}", p.display);
        if let Some(a) = p.service.affinity {
            let _ = write!(head, " affinity {}s", a.as_secs());
        }
        if p.service.max_connections > 0 {
            let _ = write!(head, " max-connections {}", p.service.max_connections);
        }
        let _ = writeln!(out, "{head}");
        for (i, pool) in p.service.pools.iter().enumerate() {
            let eps: Vec<String> = pool.iter().map(|e| e.to_string()).collect();
            let _ = writeln!(out, "  pool {} {}", POOL_NAMES[i], if eps.is_empty() { "-".to_string() } else { eps.join(" ") });
        }
        for (k, f) in &p.frontends {
            let mut line = format!("  listen {} {}", k.addr, POOL_NAMES[f.pool]);
            if let Some(l) = f.local_pool {
                let _ = write!(line, " local-sources {}", POOL_NAMES[l]);
            }
            if !f.allowed.is_empty() {
                let allowed: Vec<String> = f.allowed.iter().map(|a| a.to_string()).collect();
                let _ = write!(line, " allow {}", allowed.join(","));
            }
            let _ = writeln!(out, "{line}");
        }
    }
    out
}
