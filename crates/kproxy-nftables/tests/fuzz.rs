//! Fuzz target for the nftables readers: the monitor's notification parsing
//! (monitor::collect_foreign) and the set-element dump parsing (conn::parse_set_elements).
//! Stable Rust, run by `cargo test`; KPROXY_FUZZ_ITERS / KPROXY_FUZZ_SEED as in
//! kproxy-netlink/tests/fuzzkit/mod.rs; scripts/fuzz.sh runs it longer.

#[path = "../../kproxy-netlink/tests/fuzzkit/mod.rs"]
mod fuzzkit;

use kproxy_netlink::messages;
use kproxy_nftables::conn::parse_set_elements;
use kproxy_nftables::encode::encode_batch;
use kproxy_nftables::monitor::collect_foreign;
use kproxy_nftables::*;

/// One datagram as notifications and as a set dump. Must not panic; the tables reported
/// are distinct, none when every socket is ours; element bytes come from the datagram.
pub fn fuzz_nft(data: &[u8]) {
    let mut foreign = Vec::new();
    collect_foreign(data, &|pid| pid == 7, &mut foreign);
    for (i, t) in foreign.iter().enumerate() {
        assert!(!foreign[..i].contains(t), "{t:?} reported twice");
    }
    let mut none = Vec::new();
    collect_foreign(data, &|_| true, &mut none);
    assert!(none.is_empty());
    for m in messages(data) {
        let mut out = Vec::new();
        parse_set_elements(m.payload, &mut out);
        for (k, d) in &out {
            assert!(k.len() + d.len() <= m.payload.len());
        }
    }
}

fn elem(ip: [u8; 4], to: &str) -> Element {
    Element { key: Tuple::new(&[Val::V4(ip.into())]), data: Some(ElemData::Verdict(Verdict::Goto(to.into()))), comment: None }
}

fn batch() -> Vec<u8> {
    let mut t = Transaction { family: Family::Ip, table: "t".into(), ops: vec![] };
    t.push(Op::AddTable(Table { family: Family::Ip, name: "t".into(), comment: None }));
    t.push(Op::AddChain(Chain { name: "a".into(), base: None }));
    t.push(Op::AddSet(SetDef {
        name: "m".into(),
        key_type: consts::TYPE_IPADDR,
        key_len: 4,
        data: SetData::Verdict,
        decl: "type ipv4_addr : verdict".into(),
        comment: None,
        udata_prefix: vec![],
        size: Some(16),
        dynamic: false,
    }));
    t.push(Op::AddElements { set: "m".into(), elems: vec![elem([10, 0, 0, 1], "a"), elem([10, 0, 0, 2], "a")] });
    encode_batch(&t, 100, Some(3)).bytes.as_bytes().to_vec()
}

fn corpus() -> Vec<Vec<u8>> {
    let b = batch();
    // The batch as the kernel would echo it to a listener: each message on its own too.
    let mut out = vec![b.clone()];
    let mut at = 0;
    for m in messages(&b) {
        let len = 16 + m.payload.len();
        out.push(b[at..at + len].to_vec());
        at += (len + 3) & !3;
    }
    out
}

#[test]
fn the_corpus_parses() {
    let b = batch();
    let mut foreign = Vec::new();
    collect_foreign(&b, &|_| false, &mut foreign);
    assert_eq!(foreign, vec![(Family::Ip.nfproto(), "t".to_string())]);
    let mut elems = Vec::new();
    for m in messages(&b) {
        parse_set_elements(m.payload, &mut elems);
    }
    assert_eq!(elems.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), vec![vec![10, 0, 0, 1], vec![10, 0, 0, 2]]);
}

#[test]
fn fuzz_nftables_readers() {
    fuzzkit::run("nftables readers", 1_000_000, &corpus(), fuzz_nft);
}
