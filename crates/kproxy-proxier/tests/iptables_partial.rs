//! iptables mode's partial syncs through the real tools: after a full restore, each change
//! writes only the chains it touched (the lines are counted), and `iptables-save` still shows
//! exactly the render, with KUBE-SERVICES as a dispatch tree. Both backends where the kernel
//! has them (the nft one must work). Needs root, `unshare` and the iptables package.

use std::borrow::Cow;
use std::process::Command;

use kproxy_nftables::{Cidr, Family};
use kproxy_proxier::iptables::{IptablesConfig, IptablesSync};
use kproxy_proxier::local::LocalDetector;
use kproxy_proxier::wire::{decode, ServicePortRecord};

const MATRIX: &str = include_str!("../../../tests/fixtures/iptables/matrix.ipv4.wire");

fn sync(dispatch_above: usize) -> IptablesSync {
    let cidr: Cidr = "10.244.0.0/16".parse().unwrap();
    let mut s = IptablesSync::new(IptablesConfig { dispatch_above, ..IptablesConfig::new(Family::Ip, Some(LocalDetector::Cidr(cidr))) });
    s.desired_mut().set_node(true, &[], &["192.168.100.1".into()]).unwrap();
    s
}

fn count(text: &str, prefix: &str) -> usize {
    text.lines().filter(|l| l.starts_with(prefix)).count()
}

/// The lines of kproxy's own chains, sorted (the jumps from built-in chains are the agent's).
fn owned(save: &str) -> Vec<String> {
    let mut v: Vec<String> = save.lines().filter(|l| l.starts_with(":KUBE-") || l.starts_with("-A KUBE-")).map(String::from).collect();
    v.sort();
    v
}

struct Step {
    name: &'static str,
    restore: String,
    render: String,
}

#[test]
fn partial_syncs_write_only_the_changed_chains() {
    let (all, _) = decode(MATRIX).unwrap();
    let key = "default/keep/tcp/http";
    let keep = all.iter().find(|r| r.key == key).unwrap().clone();
    let mut moved: ServicePortRecord = keep.clone();
    moved.endpoints[0].ip = Cow::Borrowed("10.244.1.9");
    // Four rules at most in KUBE-SERVICES before it dispatches: the matrix's dozen Services make a tree.
    let mut s = sync(4);
    let mut steps = Vec::new();
    let mut step = |s: &mut IptablesSync, name, full, up: &[ServicePortRecord], del: &[String]| {
        let plan = s.plan(full, up, del);
        s.committed(true);
        steps.push(Step { name, restore: plan.restore, render: s.render() });
    };
    step(&mut s, "full", true, &all, &[]);
    step(&mut s, "one endpoint moves", false, std::slice::from_ref(&moved), &[]);
    step(&mut s, "a Service goes", false, &[], &[key.to_string()]);
    step(&mut s, "it comes back", false, std::slice::from_ref(&keep), &[]);
    assert!(steps[0].render.contains(":KUBE-SVCS-"), "the matrix's KUBE-SERVICES dispatches");

    // What each partial restore wrote, line by line.
    let ep = &steps[1].restore;
    // The ServicePort's KUBE-SVC chain (the masquerade rule, 3 affinity checks and 3 balancing
    // rules) and the new endpoint's KUBE-SEP (2 rules); the old KUBE-SEP deleted; no shared
    // chain, no filter table.
    assert_eq!(count(ep, "-A "), 9, "{ep}");
    assert_eq!(count(ep, "-A KUBE-SVC-"), 7, "{ep}");
    assert_eq!(count(ep, "-X KUBE-SEP-"), 1, "{ep}");
    assert!(!ep.contains("KUBE-SERVICES") && !ep.contains("*filter"), "{ep}");
    let gone = &steps[2].restore;
    // Its own chains go (KUBE-SVC and three KUBE-SEP) and only the dispatch leaf that held its
    // ClusterIP rule is rewritten, not KUBE-SERVICES or the other leaves.
    assert_eq!(count(gone, "-X "), 4, "{gone}");
    assert_eq!(count(gone, ":KUBE-SVCS-"), 1, "{gone}");
    assert!(!gone.contains(":KUBE-SERVICES"), "{gone}");
    assert!(count(gone, "-A ") <= 16, "one leaf holds 16 rules at most: {gone}");
    // Nothing changed: nothing to write.
    assert_eq!(s.plan(false, std::slice::from_ref(&keep), &[]).restore, "");
    s.committed(true);

    let dir = std::env::temp_dir().join(format!("kproxy-ipt-partial-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut legacy_missing = false;
    for backend in ["nft", "legacy"] {
        let mut script = String::from("set -e\n");
        for (i, st) in steps.iter().enumerate() {
            let f = dir.join(format!("{i}"));
            std::fs::write(&f, &st.restore).unwrap();
            let f = f.display();
            script.push_str(&format!("iptables-{backend}-restore --noflush < {f}\niptables-{backend}-save > {f}.{backend}\n"));
        }
        let out = Command::new("unshare").args(["-n", "sh", "-c", &script]).output().expect("unshare");
        let err = String::from_utf8_lossy(&out.stderr);
        if backend == "legacy" && (err.contains("Table does not exist") || err.contains("can't initialize")) {
            legacy_missing = true;
            continue;
        }
        assert!(out.status.success(), "{backend}: {err}");
        for (i, st) in steps.iter().enumerate() {
            let saved = std::fs::read_to_string(dir.join(format!("{i}.{backend}"))).unwrap();
            assert_eq!(owned(&saved), owned(&st.render), "{backend}, after {:?}: iptables-save differs from the render", st.name);
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    if legacy_missing {
        eprintln!("no legacy x_tables in this kernel: the legacy backend is not checked");
    }
}

/// A restore that failed leaves the kernel unknown: the next plan writes everything, even
/// when the agent asks for a partial one, and deletes what either attempt might have left.
#[test]
fn after_a_failed_restore_the_next_plan_is_full() {
    let (all, _) = decode(MATRIX).unwrap();
    let mut s = sync(4);
    let first = s.plan(true, &all, &[]);
    s.committed(true);
    let mut moved = all[0].clone();
    moved.endpoints.truncate(1);
    let partial = s.plan(false, std::slice::from_ref(&moved), &[]);
    assert!(!partial.full && partial.restore.len() < first.restore.len() / 4);
    s.committed(false);
    let again = s.plan(false, &[], &[]);
    assert!(again.full);
    assert_eq!(count(&again.restore, "-A "), count(&s.render(), "-A KUBE-"));
}
