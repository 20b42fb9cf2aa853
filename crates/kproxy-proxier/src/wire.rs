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

use std::collections::HashMap;

use crate::error::{Code, ProxierError};

pub const MAGIC: &str = "kproxy-wire";
pub const VERSION: u32 = 1;
const REQUIRED: [&str; 4] = ["key", "protocol", "clusterIP", "port"];

/// One endpoint as sent: conditions and the selection made by the agent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointRecord {
    pub ip: String,
    pub port: u32,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    pub is_local: bool,
    /// In the ServicePort's clusterEndpoints.
    pub cluster: bool,
    /// In the ServicePort's localEndpoints.
    pub local: bool,
}

/// One ServicePort as sent (one IP family), before validation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServicePortRecord {
    pub key: String,
    pub namespace: String,
    pub name: String,
    pub port_name: String,
    pub protocol: String,
    pub service_type: String,
    pub cluster_ip: String,
    pub port: u32,
    pub node_port: u32,
    pub external_ips: Vec<String>,
    pub load_balancer_vips: Vec<String>,
    pub load_balancer_source_ranges: Vec<String>,
    pub session_affinity: String,
    pub sticky_max_age_seconds: u32,
    pub external_policy_local: bool,
    pub internal_policy_local: bool,
    pub health_check_node_port: u32,
    pub traffic_distribution: String,
    pub endpoints: Vec<EndpointRecord>,
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

fn list(v: &str) -> Vec<String> {
    v.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

fn endpoint(tok: &str) -> Result<EndpointRecord, String> {
    let mut parts = tok.splitn(3, ',');
    let (Some(ip), Some(port)) = (parts.next(), parts.next()) else { return Err(format!("malformed endpoint {tok:?}")) };
    let flags = parts.next().unwrap_or("");
    if let Some(c) = flags.chars().find(|c| !"RSTNCL".contains(*c)) {
        return Err(format!("malformed endpoint {tok:?}: unknown flag {:?}", c.to_string()));
    }
    Ok(EndpointRecord {
        ip: ip.to_owned(),
        port: digits(port).ok_or_else(|| format!("bad endpoint port {port:?}"))?,
        ready: flags.contains('R'),
        serving: flags.contains('S'),
        terminating: flags.contains('T'),
        is_local: flags.contains('N'),
        cluster: flags.contains('C'),
        local: flags.contains('L'),
    })
}

/// Column positions, resolved once per batch from the header.
struct Columns(HashMap<String, usize>);

impl Columns {
    fn parse(header: &str) -> Result<Columns, ProxierError> {
        let mut f = header.split('\t');
        let magic = f.next().unwrap_or("");
        let version = magic.strip_prefix(MAGIC).map(str::trim).and_then(|v| v.parse::<u32>().ok());
        match version {
            Some(VERSION) => {}
            Some(v) => return Err(ProxierError::new(Code::WireVersion, format!("wire version {v} is not supported (this addon reads {VERSION})"))),
            None => return Err(ProxierError::new(Code::WireVersion, format!("not a kproxy wire header: {:?}", magic.chars().take(40).collect::<String>()))),
        }
        let cols: HashMap<String, usize> = f.enumerate().map(|(i, n)| (n.to_owned(), i)).collect();
        if let Some(missing) = REQUIRED.iter().find(|c| !cols.contains_key(**c)) {
            return Err(ProxierError::new(Code::WireVersion, format!("wire header lacks the required column {missing:?}")));
        }
        Ok(Columns(cols))
    }

    fn get<'a>(&self, row: &[&'a str], name: &str) -> &'a str {
        self.0.get(name).and_then(|i| row.get(*i)).copied().unwrap_or("")
    }
}

fn record(cols: &Columns, row: &[&str]) -> Result<ServicePortRecord, String> {
    if row.len() != cols.0.len() {
        return Err(format!("malformed record: {} fields, the header has {}", row.len(), cols.0.len()));
    }
    let g = |n: &str| cols.get(row, n);
    let mut endpoints = Vec::new();
    for tok in g("endpoints").split(' ').filter(|t| !t.is_empty()) {
        endpoints.push(endpoint(tok)?);
    }
    Ok(ServicePortRecord {
        key: g("key").to_owned(),
        namespace: g("namespace").to_owned(),
        name: g("name").to_owned(),
        port_name: g("portName").to_owned(),
        protocol: g("protocol").to_owned(),
        service_type: g("type").to_owned(),
        cluster_ip: g("clusterIP").to_owned(),
        port: num(g("port"), "port")?,
        node_port: num(g("nodePort"), "nodePort")?,
        external_ips: list(g("externalIPs")),
        load_balancer_vips: list(g("loadBalancerVIPs")),
        load_balancer_source_ranges: list(g("loadBalancerSourceRanges")),
        session_affinity: g("sessionAffinity").to_owned(),
        sticky_max_age_seconds: num(g("stickyMaxAgeSeconds"), "stickyMaxAgeSeconds")?,
        external_policy_local: flag(g("externalPolicyLocal"), "externalPolicyLocal")?,
        internal_policy_local: flag(g("internalPolicyLocal"), "internalPolicyLocal")?,
        health_check_node_port: num(g("healthCheckNodePort"), "healthCheckNodePort")?,
        traffic_distribution: g("trafficDistribution").to_owned(),
        endpoints,
    })
}

/// Decodes a batch. A bad header refuses the whole batch; a bad row refuses that row.
pub fn decode(text: &str) -> Result<(Vec<ServicePortRecord>, Vec<Rejected>), ProxierError> {
    let mut lines = text.split('\n').filter(|l| !l.is_empty());
    let Some(header) = lines.next() else { return Ok((Vec::new(), Vec::new())) };
    let cols = Columns::parse(header)?;
    let mut records = Vec::new();
    let mut rejected = Vec::new();
    let mut row: Vec<&str> = Vec::with_capacity(cols.0.len());
    for line in lines {
        row.clear();
        row.extend(line.split('\t'));
        match record(&cols, &row) {
            Ok(r) => records.push(r),
            Err(reason) => {
                let key = cols.get(&row, "key").chars().take(256).collect();
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
        ];
        for (text, want) in cases {
            let e = decode(text).unwrap_err();
            assert_eq!(e.code, Code::WireVersion);
            assert!(e.message.contains(want), "{text:?}: {}", e.message);
        }
    }

    #[test]
    fn columns_may_come_in_any_order_and_unknown_ones_are_ignored() {
        let text = "kproxy-wire 1\tport\tfuture\tclusterIP\tprotocol\tkey\n80\tx\t10.96.0.1\tTCP\tns/a/tcp/\n";
        let (recs, rej) = decode(text).unwrap();
        assert!(rej.is_empty());
        assert_eq!((recs[0].port, recs[0].cluster_ip.as_str(), recs[0].key.as_str()), (80, "10.96.0.1", "ns/a/tcp/"));
        assert!(recs[0].endpoints.is_empty());
    }
}
