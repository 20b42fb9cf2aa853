//! The wire that carries ServicePorts across N-API: text, because converting
//! 100k JS endpoint objects field by field costs more than the kernel does.
//!
//! The first line is the header: `kproxy-wire 1`, then the column names, all
//! tab-separated. Every further line is one ServicePort, one value per column.
//! Lists are space-separated. An endpoint is `ip,port,flags`, flags being any of
//! R(eady) S(erving) T(erminating) N (on this node) C (serves cluster traffic)
//! L (serves local traffic). Kubernetes names hold no tabs, spaces or newlines.
//! Unknown columns are ignored; missing ones take their defaults, except the
//! required ones. tests/fixtures/wire/ holds examples both codecs decode alike.

use std::borrow::Cow;

use crate::error::{Code, ProxierError};

pub const MAGIC: &str = "kproxy-wire";
pub const VERSION: u32 = 1;
const REQUIRED: [&str; 5] = ["key", "protocol", "clusterIP", "port", "endpoints"];

/// An endpoint's conditions and the selection the agent made for it (the wire's flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, PartialOrd, Ord)]
pub struct EndpointFlags {
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// On this node.
    pub is_local: bool,
    /// In the ServicePort's clusterEndpoints.
    pub cluster: bool,
    /// In the ServicePort's localEndpoints.
    pub local: bool,
}

impl EndpointFlags {
    /// Both sets of flags: an endpoint listed twice keeps every selection it had.
    pub fn union(self, o: EndpointFlags) -> EndpointFlags {
        EndpointFlags {
            ready: self.ready || o.ready,
            serving: self.serving || o.serving,
            terminating: self.terminating || o.terminating,
            is_local: self.is_local || o.is_local,
            cluster: self.cluster || o.cluster,
            local: self.local || o.local,
        }
    }
}

/// One endpoint as sent. Decoded records borrow from the wire text (no allocation per
/// field); tests may own theirs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointRecord<'a> {
    pub ip: Cow<'a, str>,
    pub port: u32,
    pub flags: EndpointFlags,
}

/// One ServicePort as sent (one IP family), before validation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServicePortRecord<'a> {
    pub key: Cow<'a, str>,
    pub namespace: Cow<'a, str>,
    pub name: Cow<'a, str>,
    pub port_name: Cow<'a, str>,
    pub protocol: Cow<'a, str>,
    pub service_type: Cow<'a, str>,
    pub cluster_ip: Cow<'a, str>,
    pub port: u32,
    pub node_port: u32,
    pub external_ips: Vec<Cow<'a, str>>,
    pub load_balancer_vips: Vec<Cow<'a, str>>,
    pub load_balancer_source_ranges: Vec<Cow<'a, str>>,
    pub session_affinity: Cow<'a, str>,
    pub sticky_max_age_seconds: u32,
    pub external_policy_local: bool,
    pub internal_policy_local: bool,
    pub health_check_node_port: u32,
    pub traffic_distribution: Cow<'a, str>,
    pub endpoints: Vec<EndpointRecord<'a>>,
}

/// A row the codec or a mode refused, by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub key: String,
    pub reason: String,
}

/// A decimal u32: digits only (no sign), as the TS codec reads it too.
fn digits(v: &str) -> Option<u32> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<u32>().ok()
}

fn num(v: &str, what: &str) -> Result<u32, String> {
    if v.is_empty() {
        return Ok(0);
    }
    digits(v).ok_or_else(|| format!("bad {what} {v:?}"))
}

fn flag(v: &str, what: &str) -> Result<bool, String> {
    match v {
        "" | "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(format!("bad {what} {v:?}, want 0 or 1")),
    }
}

fn list(v: &str) -> Vec<Cow<'_, str>> {
    if v.is_empty() {
        return Vec::new();
    }
    v.split(' ').filter(|s| !s.is_empty()).map(Cow::Borrowed).collect()
}

fn endpoint(tok: &str) -> Result<EndpointRecord<'_>, String> {
    let mut parts = tok.splitn(3, ',');
    let (Some(ip), Some(port)) = (parts.next(), parts.next()) else { return Err(format!("malformed endpoint {tok:?}")) };
    let flags = parts.next().unwrap_or("");
    if let Some(c) = flags.chars().find(|c| !"RSTNCL".contains(*c)) {
        return Err(format!("malformed endpoint {tok:?}: unknown flag {:?}", c.to_string()));
    }
    Ok(EndpointRecord {
        ip: Cow::Borrowed(ip),
        port: digits(port).ok_or_else(|| format!("bad endpoint port {port:?}"))?,
        flags: EndpointFlags {
            ready: flags.contains('R'),
            serving: flags.contains('S'),
            terminating: flags.contains('T'),
            is_local: flags.contains('N'),
            cluster: flags.contains('C'),
            local: flags.contains('L'),
        },
    })
}

/// The columns this side reads; their positions are resolved once per batch.
const KNOWN: [&str; 19] = [
    "key",
    "namespace",
    "name",
    "portName",
    "protocol",
    "type",
    "clusterIP",
    "port",
    "nodePort",
    "externalIPs",
    "loadBalancerVIPs",
    "loadBalancerSourceRanges",
    "sessionAffinity",
    "stickyMaxAgeSeconds",
    "externalPolicyLocal",
    "internalPolicyLocal",
    "healthCheckNodePort",
    "trafficDistribution",
    "endpoints",
];
// Positions in KNOWN.
const KEY: usize = 0;
const NAMESPACE: usize = 1;
const NAME: usize = 2;
const PORT_NAME: usize = 3;
const PROTOCOL: usize = 4;
const TYPE: usize = 5;
const CLUSTER_IP: usize = 6;
const PORT: usize = 7;
const NODE_PORT: usize = 8;
const EXTERNAL_IPS: usize = 9;
const LB_VIPS: usize = 10;
const LB_SOURCE_RANGES: usize = 11;
const SESSION_AFFINITY: usize = 12;
const STICKY_MAX_AGE: usize = 13;
const EXTERNAL_POLICY_LOCAL: usize = 14;
const INTERNAL_POLICY_LOCAL: usize = 15;
const HEALTH_CHECK_NODE_PORT: usize = 16;
const TRAFFIC_DISTRIBUTION: usize = 17;
const ENDPOINTS: usize = 18;
const MISSING: usize = usize::MAX;

struct Columns {
    /// Fields per row, as the header has them.
    width: usize,
    /// Row position of each KNOWN column, or MISSING.
    at: [usize; KNOWN.len()],
}

impl Columns {
    fn parse(header: &str) -> Result<Columns, ProxierError> {
        let mut f = header.split('\t');
        let magic = f.next().unwrap_or("");
        let version = magic.strip_prefix(MAGIC).and_then(|v| v.strip_prefix(' ')).and_then(digits);
        match version {
            Some(VERSION) => {}
            Some(v) => {
                return Err(ProxierError::new(Code::WireVersion, format!("wire version {v} is not supported (this addon reads {VERSION})")))
            }
            None => {
                return Err(ProxierError::new(
                    Code::WireVersion,
                    format!("not a kproxy wire header: {:?}", magic.chars().take(40).collect::<String>()),
                ))
            }
        }
        let names: Vec<&str> = f.collect();
        if let Some((i, dup)) = names.iter().enumerate().find(|(i, n)| names[..*i].contains(n)) {
            return Err(ProxierError::new(Code::WireVersion, format!("wire header names column {dup:?} twice (at {i})")));
        }
        let mut at = [MISSING; KNOWN.len()];
        for (i, known) in KNOWN.iter().enumerate() {
            at[i] = names.iter().position(|n| n == known).unwrap_or(MISSING);
        }
        if let Some(missing) = REQUIRED.iter().find(|c| !names.contains(c)) {
            return Err(ProxierError::new(Code::WireVersion, format!("wire header lacks the required column {missing:?}")));
        }
        Ok(Columns { width: names.len(), at })
    }

    fn get<'a>(&self, row: &[&'a str], col: usize) -> &'a str {
        row.get(self.at[col]).copied().unwrap_or("")
    }
}

fn record<'a>(cols: &Columns, row: &[&'a str]) -> Result<ServicePortRecord<'a>, String> {
    if row.len() != cols.width {
        return Err(format!("malformed record: {} fields, the header has {}", row.len(), cols.width));
    }
    let g = |c: usize| cols.get(row, c);
    let mut endpoints = Vec::with_capacity(16);
    for tok in g(ENDPOINTS).split(' ').filter(|t| !t.is_empty()) {
        endpoints.push(endpoint(tok)?);
    }
    Ok(ServicePortRecord {
        key: Cow::Borrowed(g(KEY)),
        namespace: Cow::Borrowed(g(NAMESPACE)),
        name: Cow::Borrowed(g(NAME)),
        port_name: Cow::Borrowed(g(PORT_NAME)),
        protocol: Cow::Borrowed(g(PROTOCOL)),
        service_type: Cow::Borrowed(g(TYPE)),
        cluster_ip: Cow::Borrowed(g(CLUSTER_IP)),
        port: num(g(PORT), "port")?,
        node_port: num(g(NODE_PORT), "nodePort")?,
        external_ips: list(g(EXTERNAL_IPS)),
        load_balancer_vips: list(g(LB_VIPS)),
        load_balancer_source_ranges: list(g(LB_SOURCE_RANGES)),
        session_affinity: Cow::Borrowed(g(SESSION_AFFINITY)),
        sticky_max_age_seconds: num(g(STICKY_MAX_AGE), "stickyMaxAgeSeconds")?,
        external_policy_local: flag(g(EXTERNAL_POLICY_LOCAL), "externalPolicyLocal")?,
        internal_policy_local: flag(g(INTERNAL_POLICY_LOCAL), "internalPolicyLocal")?,
        health_check_node_port: num(g(HEALTH_CHECK_NODE_PORT), "healthCheckNodePort")?,
        traffic_distribution: Cow::Borrowed(g(TRAFFIC_DISTRIBUTION)),
        endpoints,
    })
}

/// Decodes a batch. A bad header refuses the whole batch; a bad row refuses that row.
pub fn decode(text: &str) -> Result<(Vec<ServicePortRecord<'_>>, Vec<Rejected>), ProxierError> {
    let mut lines = text.split('\n').filter(|l| !l.is_empty());
    let Some(header) = lines.next() else { return Ok((Vec::new(), Vec::new())) };
    let cols = Columns::parse(header)?;
    let mut records = Vec::new();
    let mut rejected = Vec::new();
    let mut row: Vec<&str> = Vec::with_capacity(cols.width);
    for line in lines {
        row.clear();
        row.extend(line.split('\t'));
        match record(&cols, &row) {
            Ok(r) => records.push(r),
            Err(reason) => {
                let key = cols.get(&row, KEY).chars().take(256).collect();
                rejected.push(Rejected { key, reason });
            }
        }
    }
    Ok((records, rejected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_foreign_versions_and_missing_columns() {
        let cases = [
            ("kproxy-wire 2\tkey\tprotocol\tclusterIP\tport\n", "version 2 is not supported"),
            ("ns/a/tcp/p\tns\n", "not a kproxy wire header"),
            ("kproxy-wire 1\tkey\tprotocol\tport\n", "required column \"clusterIP\""),
            ("kproxy-wire1\tkey\tprotocol\tclusterIP\tport\tendpoints\n", "not a kproxy wire header"),
            ("kproxy-wire +1\tkey\tprotocol\tclusterIP\tport\tendpoints\n", "not a kproxy wire header"),
            ("kproxy-wire 1\tkey\tprotocol\tclusterIP\tport\tendpoints\tport\n", "column \"port\" twice"),
            ("kproxy-wire 1\tkey\tprotocol\tclusterIP\tport\n", "required column \"endpoints\""),
        ];
        for (text, want) in cases {
            let e = decode(text).unwrap_err();
            assert_eq!(e.code, Code::WireVersion);
            assert!(e.message.contains(want), "{text:?}: {}", e.message);
        }
    }

    #[test]
    fn columns_may_come_in_any_order_and_unknown_ones_are_ignored() {
        let text = "kproxy-wire 1\tport\tfuture\tclusterIP\tprotocol\tkey\tendpoints\n80\tx\t10.96.0.1\tTCP\tns/a/tcp/\t\n";
        let (recs, rej) = decode(text).unwrap();
        assert!(rej.is_empty());
        assert_eq!((recs[0].port, recs[0].cluster_ip.as_ref(), recs[0].key.as_ref()), (80, "10.96.0.1", "ns/a/tcp/"));
        assert!(recs[0].endpoints.is_empty());
    }
}
