//! How long does decoding the wire take at scale? `cargo run --release --example wire_decode [services] [endpoints]`
use std::time::Instant;

use kproxy_proxier::wire::decode;

fn main() {
    let services: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let eps: usize = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let mut text = String::from("kproxy-wire 1\tkey\tnamespace\tname\tportName\tprotocol\ttype\tclusterIP\tport\tnodePort\texternalIPs\tloadBalancerVIPs\tloadBalancerSourceRanges\tsessionAffinity\tstickyMaxAgeSeconds\texternalPolicyLocal\tinternalPolicyLocal\thealthCheckNodePort\ttrafficDistribution\tendpoints\n");
    for s in 0..services {
        let e: Vec<String> = (0..eps).map(|e| format!("10.64.{}.{},8080,RSC", ((s * 64 + e) >> 8) & 255, (s * 64 + e) & 255)).collect();
        text.push_str(&format!(
            "bench/svc-{s}/tcp/http\tbench\tsvc-{s}\thttp\tTCP\tClusterIP\t172.20.{}.{}\t80\t0\t\t\t\tNone\t0\t0\t0\t0\t\t{}\n",
            s >> 8,
            s & 255,
            e.join(" ")
        ));
    }
    for _ in 0..5 {
        let t = Instant::now();
        let (recs, rej) = decode(&text).expect("header");
        println!("decode {:?}: {} records, {} rejected, {} bytes", t.elapsed(), recs.len(), rej.len(), text.len());
    }
}
