//! The workspace's layering: crates depend only downwards (netlink → nftables →
//! proxier → napi), and the proxier's shared core never reaches into a mode.

use std::path::Path;

const CRATES: &[&str] = &[
    "kproxy-netlink",
    "kproxy-nftables",
    "kproxy-conntrack",
    "kproxy-ipvs",
    "kproxy-rtnetlink",
    "kproxy-userspace",
    "kproxy-proxier",
    "kproxy-napi",
];
/// Modules of kproxy-proxier that every mode shares.
const SHARED: &[&str] = &["counts", "desired", "error", "foreign", "local", "node", "service", "sync", "wire"];
const MODES: &[&str] = &["nftables", "iptables", "ipvs", "userspace"];

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn crates_depend_only_on_lower_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for (i, name) in CRATES.iter().enumerate() {
        let toml = read(&root.join(name).join("Cargo.toml"));
        let deps = toml.split("[dev-dependencies]").next().unwrap();
        for (j, other) in CRATES.iter().enumerate() {
            let uses = deps.lines().any(|l| l.trim_start().starts_with(&format!("{other} ")));
            assert!(!uses || j < i, "{name} depends on {other}, which is not below it");
        }
    }
}

#[test]
fn the_shared_core_imports_no_mode() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for m in SHARED {
        let text = read(&src.join(format!("{m}.rs")));
        for mode in MODES {
            assert!(!text.contains(&format!("crate::{mode}")), "src/{m}.rs uses crate::{mode}: shared code must not know a mode");
        }
    }
}

#[test]
fn unsafe_code_lives_only_in_the_syscall_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for name in CRATES {
        let lib = read(&root.join(name).join("src/lib.rs"));
        match *name {
            "kproxy-netlink" => assert!(lib.contains("#![deny(unsafe_code)]"), "{name}: unsafe only where allowed"),
            // napi-rs macros generate FFI glue; hand-written unsafe is still denied.
            "kproxy-napi" => assert!(lib.contains("#![deny(unsafe_code)]"), "{name} must deny unsafe"),
            _ => assert!(lib.contains("#![forbid(unsafe_code)]"), "{name} must forbid unsafe"),
        }
    }
    let netlink = root.join("kproxy-netlink/src");
    for entry in std::fs::read_dir(&netlink).unwrap() {
        let p = entry.unwrap().path();
        let text = read(&p);
        let blocks = text.matches("unsafe {").count();
        let file = p.file_name().unwrap().to_str().unwrap().to_owned();
        if file != "socket.rs" && file != "lib.rs" {
            assert_eq!(blocks, 0, "{file} has unsafe blocks; they belong in socket.rs");
        }
        // Every unsafe block is preceded by a SAFETY comment.
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if l.contains("unsafe {") {
                let window = lines[i.saturating_sub(3)..i].join("\n") + l;
                assert!(window.contains("SAFETY:"), "{file}:{}: unsafe block without a SAFETY comment", i + 1);
            }
        }
    }
}
