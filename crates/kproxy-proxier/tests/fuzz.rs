//! Fuzz target for the N-API wire decoder (stable Rust, run by `cargo test`; see
//! kproxy-netlink/tests/fuzzkit/mod.rs and scripts/fuzz.sh for longer runs).

#[path = "../../kproxy-netlink/tests/fuzzkit/mod.rs"]
mod fuzzkit;

use kproxy_proxier::wire::{decode, ServicePortRecord};

const COLUMNS: &str = "key\tnamespace\tname\tportName\tprotocol\ttype\tclusterIP\tport\tnodePort\texternalIPs\tloadBalancerVIPs\tloadBalancerSourceRanges\tsessionAffinity\tstickyMaxAgeSeconds\texternalPolicyLocal\tinternalPolicyLocal\thealthCheckNodePort\ttrafficDistribution\tendpoints";

/// A test-side encoder for decoded records, every column present.
fn encode(recs: &[ServicePortRecord<'_>]) -> String {
    let mut s = format!("kproxy-wire 1\t{COLUMNS}\n");
    for r in recs {
        let eps: Vec<String> = r
            .endpoints
            .iter()
            .map(|e| {
                let f = e.flags;
                let flags: String = [(f.ready, 'R'), (f.serving, 'S'), (f.terminating, 'T'), (f.is_local, 'N'), (f.cluster, 'C'), (f.local, 'L')]
                    .iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, c)| *c)
                    .collect();
                format!("{},{},{}", e.ip, e.port, flags)
            })
            .collect();
        let fields = [
            r.key.to_string(),
            r.namespace.to_string(),
            r.name.to_string(),
            r.port_name.to_string(),
            r.protocol.to_string(),
            r.service_type.to_string(),
            r.cluster_ip.to_string(),
            r.port.to_string(),
            r.node_port.to_string(),
            r.external_ips.join(" "),
            r.load_balancer_vips.join(" "),
            r.load_balancer_source_ranges.join(" "),
            r.session_affinity.to_string(),
            r.sticky_max_age_seconds.to_string(),
            u8::from(r.external_policy_local).to_string(),
            u8::from(r.internal_policy_local).to_string(),
            r.health_check_node_port.to_string(),
            r.traffic_distribution.to_string(),
            eps.join(" "),
        ];
        s.push_str(&fields.join("\t"));
        s.push('\n');
    }
    s
}

/// Decodes any text (bytes read lossily as UTF-8). Must not panic; whatever decodes
/// re-encodes to a batch that decodes to equal records, with no row rejected.
pub fn fuzz_wire(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok((recs, rejected)) = decode(&text) else { return };
    for r in &rejected {
        assert!(r.key.chars().count() <= 256);
    }
    let again = encode(&recs);
    let (back, rej) = decode(&again).unwrap_or_else(|e| panic!("re-encoded batch refused: {e:?}\n{again:?}"));
    assert!(rej.is_empty(), "re-encoded rows refused: {rej:?}\n{again:?}");
    assert_eq!(back, recs, "{again:?}");
}

fn corpus() -> Vec<Vec<u8>> {
    let fixture = include_str!("../../../tests/fixtures/wire/v1.tsv");
    let mut out = vec![fixture.as_bytes().to_vec()];
    for line in fixture.lines().skip(1) {
        out.push(format!("kproxy-wire 1\t{COLUMNS}\n{line}\n").into_bytes());
    }
    out.push(b"kproxy-wire 1\tport\tfuture\tclusterIP\tprotocol\tkey\tendpoints\n80\tx\t10.96.0.1\tTCP\tns/a/tcp/\t10.0.0.1,80,RS\n".to_vec());
    out.push(b"kproxy-wire 1\tkey\tprotocol\tclusterIP\tport\tendpoints\n\n\tTCP\t\t\t,,\n".to_vec());
    out
}

#[test]
fn fuzz_wire_decoder() {
    fuzzkit::run("wire decode", 300_000, &corpus(), fuzz_wire);
}
