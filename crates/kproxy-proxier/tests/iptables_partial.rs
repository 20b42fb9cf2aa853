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

/// kproxy's own chains (the jumps from built-in chains are the agent's), by name, each with
/// its rules in order: a partial restore may add chains in any order, never reorder rules.
fn owned(save: &str) -> Vec<(String, Vec<String>)> {
    let mut chains: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut table = "";
    for l in save.lines() {
        if let Some(t) = l.strip_prefix('*') {
            table = t;
        } else if let Some(c) = l.strip_prefix(":KUBE-") {
            chains.entry(format!("{table} KUBE-{}", c.split(' ').next().unwrap())).or_default();
        } else if let Some(rest) = l.strip_prefix("-A KUBE-") {
            let chain = rest.split(' ').next().unwrap();
            chains.entry(format!("{table} KUBE-{chain}")).or_default().push(l.to_string());
        }
    }
    chains.into_iter().collect()
}

struct Step {
    name: &'static str,
    /// The restores of the sync, applied in turn.
    restores: Vec<String>,
    render: String,
}

const KEY: &str = "default/keep/tcp/http";

/// A full sync of the matrix, then one endpoint moves, a Service goes, and it comes back.
/// Four rules at most in KUBE-SERVICES before it dispatches: the matrix's dozen Services
/// make a tree.
fn steps(chunking: Option<usize>) -> (IptablesSync, Vec<Step>) {
    steps_with(4, chunking)
}

fn steps_with(dispatch_above: usize, chunking: Option<usize>) -> (IptablesSync, Vec<Step>) {
    let (all, _) = decode(MATRIX).unwrap();
    let keep = all.iter().find(|r| r.key == KEY).unwrap().clone();
    let mut moved: ServicePortRecord = keep.clone();
    moved.endpoints[0].ip = Cow::Borrowed("10.244.1.9");
    let mut s = sync(dispatch_above);
    s.set_chunking(chunking);
    let mut steps = Vec::new();
    let mut step = |s: &mut IptablesSync, name, full, up: &[ServicePortRecord], del: &[String]| {
        let plan = s.plan(full, up, del);
        s.committed(true);
        steps.push(Step { name, restores: plan.restores, render: s.render() });
    };
    step(&mut s, "full", true, &all, &[]);
    step(&mut s, "one endpoint moves", false, std::slice::from_ref(&moved), &[]);
    step(&mut s, "a Service goes", false, &[], &[KEY.to_string()]);
    step(&mut s, "it comes back", false, std::slice::from_ref(&keep), &[]);
    (s, steps)
}

#[test]
fn partial_syncs_write_only_the_changed_chains() {
    let (mut s, steps) = steps(None);
    let keep = decode(MATRIX).unwrap().0.into_iter().find(|r| r.key == KEY).unwrap();
    assert!(steps[0].render.contains("--comment \"kproxy dispatch "), "the matrix's KUBE-SERVICES dispatches");
    assert!(steps.iter().all(|st| st.restores.len() == 1), "one restore a sync without chunking");

    // What each partial restore wrote, line by line.
    let ep = &steps[1].restores[0];
    // The ServicePort's KUBE-SVC chain (the masquerade rule, 3 affinity checks and 3 balancing
    // rules) and the new endpoint's KUBE-SEP (2 rules); the old KUBE-SEP deleted; no shared
    // chain, no filter table.
    assert_eq!(count(ep, "-A "), 9, "{ep}");
    assert_eq!(count(ep, "-A KUBE-SVC-"), 7, "{ep}");
    assert_eq!(count(ep, "-X KUBE-SEP-"), 1, "{ep}");
    assert!(!ep.contains("KUBE-SERVICES") && !ep.contains("*filter"), "{ep}");
    let gone = &steps[2].restores[0];
    // Its own chains go (KUBE-SVC and three KUBE-SEP) and only the dispatch leaf that held its
    // ClusterIP rule is rewritten, not KUBE-SERVICES or the other leaves.
    assert_eq!(count(gone, "-X "), 4, "{gone}");
    assert_eq!(count(gone, "-A KUBE-SVC-"), count(gone, "-A KUBE-SVC-").min(16), "{gone}");
    let leaves: std::collections::BTreeSet<&str> =
        gone.lines().filter(|l| l.starts_with("-A KUBE-SVC-")).map(|l| l.split(' ').nth(1).unwrap()).collect();
    assert_eq!(leaves.len(), 1, "one dispatch leaf rewritten: {gone}");
    assert!(!gone.contains(":KUBE-SERVICES"), "{gone}");
    assert!(count(gone, "-A ") <= 16, "one leaf holds 16 rules at most: {gone}");
    // Nothing changed: nothing to write.
    assert!(s.plan(false, std::slice::from_ref(&keep), &[]).restores.is_empty());
    s.committed(true);
    apply_in_turn(&steps, "one");
}

/// The same syncs in pieces of at most 3 jump rules (how the agent writes the nft backend):
/// every piece loads where it falls, and after each sync the kernel holds the render.
#[test]
fn chunked_syncs_load_piece_by_piece_and_end_as_the_render() {
    let (_, chunked) = steps(Some(3));
    assert!(chunked[0].restores.len() > 10, "the full sync is in pieces: {}", chunked[0].restores.len());
    for st in &chunked {
        for piece in &st.restores {
            let jumps = piece.lines().filter(|l| l.starts_with("-A ") && l.contains(" -j KUBE-")).count();
            let longest = piece.lines().filter(|l| l.starts_with(':')).count();
            assert!(jumps <= 3 || longest == 1 || piece.contains("-X "), "{piece}");
        }
    }
    apply_in_turn(&chunked, "chunked");
}

/// Crossing the tree's threshold both ways: the Service that goes brings KUBE-SERVICES under
/// it (the dispatch chains are deleted, the list is flat again), and its return over it.
#[test]
fn crossing_the_dispatch_threshold_rewrites_kube_services_and_deletes_the_tree() {
    let mut flat = sync(usize::MAX);
    flat.plan(true, &decode(MATRIX).unwrap().0, &[]);
    let render = flat.render();
    let nat = &render[render.find("*nat").unwrap()..];
    let rules = count(nat, "-A KUBE-SERVICES -d ");
    let (_, steps) = steps_with(rules - 1, None);
    let dispatches = |st: &Step| st.render.contains("kproxy dispatch");
    let shape: Vec<bool> = steps.iter().map(dispatches).collect();
    assert_eq!(shape, [true, true, false, true], "tree, tree, flat, tree ({rules} rules)");
    assert!(steps[2].restores[0].contains("-X KUBE-SVC-") && steps[2].restores[0].contains(":KUBE-SERVICES "));
    apply_in_turn(&steps, "threshold");
}

/// Applies each step's restores in turn in a fresh namespace, on both backends, and checks
/// iptables-save against the step's render.
fn apply_in_turn(steps: &[Step], tag: &str) {
    let dir = std::env::temp_dir().join(format!("kproxy-ipt-partial-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut legacy_missing = false;
    for backend in ["nft", "legacy"] {
        let mut script = String::from("set -e\n");
        for (i, st) in steps.iter().enumerate() {
            for (k, piece) in st.restores.iter().enumerate() {
                let f = dir.join(format!("{i}-{k}"));
                std::fs::write(&f, piece).unwrap();
                script.push_str(&format!("iptables-{backend}-restore --noflush < {}\n", f.display()));
            }
            script.push_str(&format!("iptables-{backend}-save > {}\n", dir.join(format!("{i}.{backend}")).display()));
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
    let keep = all.iter().find(|r| r.key == KEY).unwrap().clone();
    let mut moved = keep.clone();
    moved.endpoints[0].ip = Cow::Borrowed("10.244.1.9");
    let partial = s.plan(false, std::slice::from_ref(&moved), &[]).restores.concat();
    assert!(partial.len() < first.restores.concat().len() / 4);
    // The chain the failed restore may have made, for the endpoint that moved.
    let made =
        partial.lines().find_map(|l| l.strip_prefix(":KUBE-SEP-")).map(|c| format!("KUBE-SEP-{}", c.split(' ').next().unwrap())).unwrap();
    s.committed(false);
    // The endpoint moves back: the next plan is full although the agent asks for a partial one,
    // and deletes the chain the failed attempt may have left.
    let again = s.plan(false, std::slice::from_ref(&keep), &[]);
    let text = again.restores.concat();
    assert!(again.full);
    assert_eq!(count(&text, "-A "), count(&s.render(), "-A KUBE-"));
    assert!(text.contains(&format!("-X {made}\n")), "{made} deleted");
    assert!(!s.render().contains(&made));
}
