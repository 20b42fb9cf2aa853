//! The compact text form of ServicePort upserts that crosses the N-API
//! boundary. Converting 100k JS endpoint objects field by field costs more
//! than the kernel does; one string parses in a few milliseconds.
//!
//! One ServicePort per line, tab-separated:
//! `key ns name portName protocol clusterIP port endpoints`, where endpoints
//! is space-separated `ip,port`. Kubernetes names cannot hold tabs or newlines.

use kproxy_rules::{Rejected, ServicePortSpec};

pub fn parse_upserts(text: &str) -> (Vec<ServicePortSpec>, Vec<Rejected>) {
    let mut specs = Vec::new();
    let mut rejected = Vec::new();
    for line in text.split('\n').filter(|l| !l.is_empty()) {
        match parse_line(line) {
            Ok(s) => specs.push(s),
            Err(reason) => {
                let key = line.split('\t').next().unwrap_or("").chars().take(256).collect();
                rejected.push(Rejected { key, reason });
            }
        }
    }
    (specs, rejected)
}

fn parse_line(line: &str) -> Result<ServicePortSpec, String> {
    let f: Vec<&str> = line.split('\t').collect();
    if f.len() != 8 {
        return Err(format!("malformed record: {} fields, want 8", f.len()));
    }
    let port = f[6].parse::<u32>().map_err(|_| format!("bad port {:?}", f[6]))?;
    let mut endpoints = Vec::new();
    for ep in f[7].split(' ').filter(|e| !e.is_empty()) {
        let (ip, p) = ep.rsplit_once(',').ok_or_else(|| format!("malformed endpoint {ep:?}"))?;
        endpoints.push((ip.to_string(), p.parse::<u32>().map_err(|_| format!("bad endpoint port {p:?}"))?));
    }
    Ok(ServicePortSpec {
        key: f[0].into(),
        namespace: f[1].into(),
        name: f[2].into(),
        port_name: f[3].into(),
        protocol: f[4].into(),
        cluster_ip: f[5].into(),
        port,
        endpoints,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records_and_rejects_malformed_ones() {
        let text = "ns/a/tcp/http\tns\ta\thttp\tTCP\t10.96.0.1\t80\t10.0.0.1,8080 fd00::1,8080\n\
                    ns/b/udp/\tns\tb\t\tUDP\t10.96.0.2\t53\t\n\
                    broken\tline\n\
                    ns/c/tcp/p\tns\tc\tp\tTCP\t10.96.0.3\t80\t10.0.0.1\n";
        let (specs, rejected) = parse_upserts(text);
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].endpoints, vec![("10.0.0.1".into(), 8080), ("fd00::1".into(), 8080)]);
        assert_eq!(specs[1].port_name, "");
        assert!(specs[1].endpoints.is_empty());
        assert_eq!(rejected.len(), 2);
        assert_eq!(rejected[0].key, "broken");
        assert!(rejected[1].reason.contains("malformed endpoint"));
    }
}
