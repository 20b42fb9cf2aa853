//! Where does a full program's time go? plan, encode, kernel. Run as root inside
//! a throwaway netns: `ip netns exec X cargo run --release --example profile_full`.
use std::time::Instant;

use kproxy_nftables::{encode::encode_batch, Conn, Family};
use kproxy_proxier::nftables::{LayoutConfig, LocalDetector, Planner};
use kproxy_proxier::wire::{EndpointFlags, EndpointRecord, ServicePortRecord};
use kproxy_proxier::Desired;

fn main() {
    let services: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let eps: usize = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let mut desired = Desired::new(Family::Ip);
    let mut m = Planner::new(LayoutConfig {
        family: Family::Ip,
        detector: "10.64.0.0/10".parse().ok().map(LocalDetector::Cidr),
        nodeports_all: false,
        service_cidrs: Vec::new(),
        masquerade_all: false,
        masquerade_bit: 14,
    });
    let specs: Vec<ServicePortRecord> = (0..services)
        .map(|s| ServicePortRecord {
            key: format!("bench/svc-{s}/tcp/http").into(),
            namespace: "bench".into(),
            name: format!("svc-{s}").into(),
            port_name: "http".into(),
            protocol: "TCP".into(),
            cluster_ip: format!("172.20.{}.{}", s >> 8, s & 255).into(),
            port: 80,
            endpoints: (0..eps)
                .map(|e| EndpointRecord {
                    ip: format!("10.64.{}.{}", ((s * 64 + e) >> 8) & 255, (s * 64 + e) & 255).into(),
                    port: 8080,
                    flags: EndpointFlags { ready: true, cluster: true, ..Default::default() },
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    let t = Instant::now();
    desired.update(&specs, &[]);
    let t_update = t.elapsed();
    let t = Instant::now();
    let (tx, _) = m.plan(&mut desired, true);
    let t_plan = t.elapsed();
    let t = Instant::now();
    let b = encode_batch(&tx, 1, None);
    let t_encode = t.elapsed();
    let mut conn = Conn::open().expect("netlink");
    // MONITOR=active|paused: also listen to ruleset notifications, as the agent does.
    let monitor = match std::env::var("MONITOR").as_deref() {
        Ok("active") => Some(kproxy_nftables::Monitor::open().expect("monitor")),
        Ok("paused") => {
            let m = kproxy_nftables::Monitor::open().expect("monitor");
            m.pause().expect("pause");
            Some(m)
        }
        _ => None,
    };
    // Optional: drop the element ops of one set to see its share of the kernel's time.
    let mut tx = tx;
    if let Some(skip) = std::env::args().nth(3) {
        tx.ops.retain(|op| !matches!(op, kproxy_nftables::Op::AddElements { set, .. } if *set == skip));
        if skip == "modrules" {
            tx.ops.retain(|op| !matches!(op, kproxy_nftables::Op::AddRule(r) if r.chain.starts_with("endpoints-mod-")));
        }
        if skip == "chains" {
            tx.ops.retain(|op| !matches!(op, kproxy_nftables::Op::AddElements { set, .. } if set == "service-ips"));
            tx.ops.retain(|op| match op {
                kproxy_nftables::Op::AddChain(c) => !c.name.contains('/'),
                kproxy_nftables::Op::AddRule(r) => !r.chain.contains('/'),
                _ => true,
            });
        }
    }
    let t = Instant::now();
    let stats = conn.commit(&tx, None).expect("commit");
    let t_commit = t.elapsed();
    drop(monitor);
    println!(
        "update {:?} plan {:?} encode {:?} commit(encode+kernel) {:?}; {} objects {} bytes {} msgs",
        t_update,
        t_plan,
        t_encode,
        t_commit,
        stats.objects,
        b.bytes.len(),
        stats.messages
    );
}
