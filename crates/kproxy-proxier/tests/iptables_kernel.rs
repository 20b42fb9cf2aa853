//! iptables mode's render through the real tools and kernel: in a fresh network namespace,
//! `iptables-restore` takes it and `iptables-save` prints it back unchanged, with both of
//! Debian's backends (nft, and legacy where the kernel has it). Needs root, `unshare` and the
//! iptables package; without them it says so and fails, as the other kernel tests do.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{local_at, spec, with};
use kproxy_nftables::{Cidr, Family};
use kproxy_proxier::iptables::restore::render_save;
use kproxy_proxier::iptables::{build, IptablesConfig};
use kproxy_proxier::local::LocalDetector;
use kproxy_proxier::Desired;

fn ruleset(family: Family, interface_detector: bool) -> String {
    let v4 = family == Family::Ip;
    let ip = |a: &str, b: &str| if v4 { a.to_string() } else { b.to_string() };
    let (e1, e2, e3) = (ip("10.244.1.2", "fd00:244:0:1::2"), ip("10.244.2.2", "fd00:244:0:2::2"), ip("10.244.3.2", "fd00:244:0:3::2"));
    let eps3 = [(e1.as_str(), 8080), (e2.as_str(), 8080), (e3.as_str(), 8080)];
    let records = vec![
        spec("default", "three", "http", "TCP", &ip("10.96.0.40", "fd00:96::40"), 80, &eps3),
        spec("default", "dns", "dns", "UDP", &ip("10.96.0.10", "fd00:96::10"), 53, &[(e1.as_str(), 53)]),
        spec("default", "sctp", "s", "SCTP", &ip("10.96.0.41", "fd00:96::41"), 9000, &[(e2.as_str(), 9000)]),
        spec("default", "none", "", "TCP", &ip("10.96.0.42", "fd00:96::42"), 81, &[]),
        // The policies the matrix lacks: both Local on a NodePort, iTP Local without a local
        // endpoint, and a LoadBalancer without a NodePort (allocateLoadBalancerNodePorts false).
        with(spec("default", "both", "p", "TCP", &ip("10.96.0.43", "fd00:96::43"), 80, &eps3), |s| {
            s.service_type = "NodePort".into();
            s.node_port = 30100;
            s.internal_policy_local = true;
            s.external_policy_local = true;
            local_at(s, &[0]);
        }),
        with(spec("default", "itp", "p", "TCP", &ip("10.96.0.44", "fd00:96::44"), 80, &eps3), |s| s.internal_policy_local = true),
        with(spec("default", "lbnonp", "p", "TCP", &ip("10.96.0.45", "fd00:96::45"), 80, &eps3), |s| {
            s.service_type = "LoadBalancer".into();
            s.load_balancer_vips = vec![ip("198.51.100.45", "2001:db8:51::45").into()];
            s.external_policy_local = true;
            local_at(s, &[1]);
        }),
    ];
    let mut d = Desired::new(family);
    assert!(d.update(&records, &[]).is_empty());
    let cidr: Cidr = ip("10.244.0.0/16", "fd00:244::/48").parse().unwrap();
    let detector = if interface_detector { LocalDetector::InterfacePrefix("veth".into()) } else { LocalDetector::Cidr(cidr) };
    let cfg = IptablesConfig { dispatch_above: usize::MAX, ..IptablesConfig::new(family, Some(detector)) };
    let rs = build(&d, &cfg);
    render_save(&rs.tables, &rs.jumps, !v4)
}

/// `<tool>-restore` then `<tool>-save` in a new network namespace; None when the backend is
/// not available in this kernel (legacy x_tables).
fn round_trip(tool: &str, input: &str) -> Result<String, String> {
    let script = format!("{tool}-restore && {tool}-save");
    let mut child = Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("unshare: {e}"))?;
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        return Err(format!("{tool}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.starts_with('#')).map(|l| format!("{l}\n")).collect())
}

/// Which tables a dump holds, in its order: the nft backend lists them as it made them.
fn by_table(save: &str) -> Vec<(String, String)> {
    let mut tables: Vec<(String, String)> = Vec::new();
    for line in save.lines() {
        if let Some(t) = line.strip_prefix('*') {
            tables.push((t.to_string(), String::new()));
        }
        if let Some(last) = tables.last_mut() {
            last.1.push_str(line);
            last.1.push('\n');
        }
    }
    tables.sort();
    tables
}

/// The packet matrix's cluster (every Service feature), from the fixture the agent's tracker made.
fn matrix(family: Family) -> String {
    let wire = if family == Family::Ip {
        include_str!("../../../tests/fixtures/iptables/matrix.ipv4.wire")
    } else {
        include_str!("../../../tests/fixtures/iptables/matrix.ipv6.wire")
    };
    let (records, _) = kproxy_proxier::wire::decode(wire).unwrap();
    let mut d = Desired::new(family);
    d.set_node(true, &[], &[if family == Family::Ip { "192.168.100.1".into() } else { "fd00:100::1".into() }]).unwrap();
    assert!(d.update(&records, &[]).is_empty());
    let cidr: Cidr = (if family == Family::Ip { "10.244.0.0/16" } else { "fd00:244::/48" }).parse().unwrap();
    let rs = build(&d, &IptablesConfig { dispatch_above: usize::MAX, ..IptablesConfig::new(family, Some(LocalDetector::Cidr(cidr))) });
    render_save(&rs.tables, &rs.jumps, family == Family::Ip6)
}

#[test]
fn the_render_loads_and_reads_back_unchanged() {
    let mut legacy_missing = Vec::new();
    let cases = [
        (Family::Ip, ruleset(Family::Ip, false)),
        (Family::Ip6, ruleset(Family::Ip6, false)),
        (Family::Ip, ruleset(Family::Ip, true)),
        (Family::Ip, matrix(Family::Ip)),
        (Family::Ip6, matrix(Family::Ip6)),
    ];
    assert!(cases[2].1.contains("-i veth+") && cases[3].1.contains("--rcheck") && cases[3].1.contains("KUBE-FW-"));
    for (family, input) in cases {
        let prefix = if family == Family::Ip { "iptables" } else { "ip6tables" };
        for backend in ["nft", "legacy"] {
            let tool = format!("{prefix}-{backend}");
            match round_trip(&tool, &input) {
                Ok(back) => assert_eq!(by_table(&back), by_table(&input), "{tool}: iptables-save differs from the render"),
                // The legacy backend needs the kernel's x_tables (ip_tables); the nft one must work.
                Err(e) if backend == "legacy" && (e.contains("Table does not exist") || e.contains("can't initialize")) => {
                    legacy_missing.push(tool)
                }
                Err(e) => panic!("{e}\n--- input:\n{input}"),
            }
        }
    }
    if !legacy_missing.is_empty() {
        eprintln!("no legacy x_tables in this kernel: {legacy_missing:?} not checked");
    }
}

/// The restores the agent sends, one after the other with `--noflush` in one namespace: a
/// Service that goes takes its chains with it (the same process remembers them), and a new
/// process adopts the chains another run left (from iptables-save) and deletes the unwanted.
/// After each, kproxy's chains in iptables-save are exactly the render's.
#[test]
fn successive_restores_delete_what_went_away() {
    use kproxy_proxier::iptables::IptablesSync;
    let cidr: Cidr = "10.244.0.0/16".parse().unwrap();
    let new_sync = || {
        let mut s = IptablesSync::new(IptablesConfig {
            dispatch_above: usize::MAX,
            ..IptablesConfig::new(Family::Ip, Some(LocalDetector::Cidr(cidr)))
        });
        s.desired_mut().set_node(true, &[], &["192.168.100.1".into()]).unwrap();
        s
    };
    let (all, _) = kproxy_proxier::wire::decode(include_str!("../../../tests/fixtures/iptables/matrix.ipv4.wire")).unwrap();
    let fewer: Vec<_> = all.iter().filter(|r| !r.key.starts_with("default/np/") && !r.key.starts_with("default/fw/")).cloned().collect();
    let dir = std::env::temp_dir().join(format!("kproxy-ipt-seq-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str| dir.join(name).display().to_string();
    // One process: everything, then fewer.
    let mut one = new_sync();
    let a = one.plan(true, &all, &[]).restores.concat();
    one.committed(true);
    let render_all = one.render();
    let b = one.plan(true, &fewer, &[]).restores.concat();
    one.committed(true);
    let render_fewer = one.render();
    // A new process on a node that still has everything: it adopts those chains, then wants fewer.
    let mut two = new_sync();
    two.adopt(&chains_of(&render_all));
    let c = two.plan(true, &fewer, &[]).restores.concat();
    for (name, text) in [("a", &a), ("b", &b), ("c", &c)] {
        std::fs::write(file(name), text).unwrap();
    }
    let (ra, rb, rc) = (file("a"), file("b"), file("c"));
    let script = format!(
        "iptables-nft-restore --noflush < {ra} && iptables-nft-save > {ra}.save && \
         iptables-nft-restore --noflush < {rb} && iptables-nft-save > {rb}.save && \
         iptables-nft-restore --noflush < {ra} && iptables-nft-restore --noflush < {rc} && iptables-nft-save > {rc}.save"
    );
    let out = Command::new("unshare").args(["-n", "sh", "-c", &script]).output().expect("unshare");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let saved = |f: &str| std::fs::read_to_string(format!("{f}.save")).unwrap();
    assert_eq!(owned(&saved(&ra)), owned(&render_all), "after everything");
    assert_eq!(owned(&saved(&rb)), owned(&render_fewer), "after fewer: the gone Services' chains are deleted");
    assert_eq!(owned(&saved(&rc)), owned(&render_fewer), "a new process deleted what the last run left");
    assert!(render_all.contains("KUBE-FW-KQB2SHMJTLDSIG3J") && !render_fewer.contains("KUBE-FW-KQB2SHMJTLDSIG3J"));
    std::fs::remove_dir_all(&dir).ok();
}

/// The chain declarations of a dump.
fn chains_of(save: &str) -> Vec<String> {
    save.lines().filter_map(|l| l.strip_prefix(':')).filter_map(|l| l.split(' ').next()).map(String::from).collect()
}

/// The lines of kproxy's own chains (declarations and rules), sorted: what the restores control
/// (the jumps from built-in chains are the agent's, with iptables -C/-I).
fn owned(save: &str) -> Vec<String> {
    let mut v: Vec<String> = save.lines().filter(|l| l.starts_with(":KUBE-") || l.starts_with("-A KUBE-")).map(String::from).collect();
    v.sort();
    v
}
