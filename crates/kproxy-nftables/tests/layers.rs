//! The crate's modules form layers with no cycle: consts → atoms → expr →
//! stmt → objects → tx → encode/text → conn/fake/monitor → trace. A module may only
//! `use crate::` modules of a lower layer.

use std::collections::BTreeMap;

const LAYERS: &[(&str, u32)] = &[
    ("consts", 0),
    ("atoms", 1),
    ("cidr", 1),
    ("error", 1),
    ("udata", 1),
    ("expr", 2),
    ("stmt", 3),
    ("objects", 4),
    ("tx", 5),
    ("encode", 6),
    ("text", 6),
    ("conn", 7),
    ("fake", 7),
    ("monitor", 7),
    ("trace", 8),
];

fn crate_uses(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + 7..];
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

#[test]
fn modules_only_use_lower_layers() {
    let layer: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let module = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if module == "lib" {
            continue;
        }
        let own = *layer.get(module.as_str()).unwrap_or_else(|| panic!("src/{module}.rs has no layer in tests/layers.rs"));
        seen += 1;
        for dep in crate_uses(&std::fs::read_to_string(&path).unwrap()) {
            let l = *layer.get(dep.as_str()).unwrap_or_else(|| panic!("{module} uses unknown module crate::{dep}"));
            assert!(l < own, "{module} (layer {own}) uses crate::{dep} (layer {l}): an upward or sideways arrow");
        }
    }
    assert_eq!(seen, LAYERS.len(), "every layered module exists");
}
