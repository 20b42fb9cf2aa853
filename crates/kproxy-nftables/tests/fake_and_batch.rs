//! The fake's kernel semantics and the batch framing, without a kernel.

use kproxy_netlink::{attrs, messages, NLM_F_ACK};
use kproxy_nftables::consts::*;
use kproxy_nftables::encode::encode_batch;
use kproxy_nftables::*;

fn table() -> Op {
    Op::AddTable(Table { family: Family::Ip, name: "t".into(), comment: None })
}

fn chain(name: &str) -> Op {
    Op::AddChain(Chain { name: name.into(), base: None })
}

fn set(name: &str, size: Option<u32>) -> Op {
    Op::AddSet(SetDef {
        name: name.into(),
        key_type: consts::TYPE_IPADDR,
        key_len: 4,
        data: SetData::Verdict,
        decl: "type ipv4_addr : verdict".into(),
        comment: None,
        udata_prefix: vec![],
        size,
        dynamic: false,
    })
}

fn elem(ip: [u8; 4], to: &str) -> Element {
    Element { key: Tuple::new(&[Val::V4(ip.into())]), data: Some(ElemData::Verdict(Verdict::Goto(to.into()))), comment: None }
}

fn tx(ops: Vec<Op>) -> Transaction {
    Transaction { family: Family::Ip, table: "t".into(), ops }
}

#[test]
fn fake_rejects_what_the_kernel_rejects_and_applies_nothing() {
    let base = tx(vec![table(), chain("a"), set("m", None)]);
    // (case, transaction after `base`, expected errno)
    let cases: Vec<(&str, Transaction, i32)> = vec![
        ("rule in a missing chain", tx(vec![Op::AddRule(Rule { chain: "nope".into(), stmts: vec![Stmt::Verdict(Verdict::Accept)] })]), 2),
        (
            "jump to a missing chain",
            tx(vec![Op::AddRule(Rule { chain: "a".into(), stmts: vec![Stmt::Verdict(Verdict::Jump("nope".into()))] })]),
            2,
        ),
        (
            "lookup in a missing set",
            tx(vec![Op::AddRule(Rule { chain: "a".into(), stmts: vec![Stmt::InSet { fields: vec![Field::Daddr], set: "nope".into() }] })]),
            2,
        ),
        ("element pointing at a missing chain", tx(vec![Op::AddElements { set: "m".into(), elems: vec![elem([1, 1, 1, 1], "nope")] }]), 2),
        (
            "deleting a missing element",
            tx(vec![Op::DeleteElements { set: "m".into(), keys: vec![Tuple::new(&[Val::V4([9, 9, 9, 9].into())])] }]),
            2,
        ),
        (
            "deleting a chain a map points at",
            tx(vec![Op::AddElements { set: "m".into(), elems: vec![elem([1, 1, 1, 1], "a")] }, Op::DeleteChain("a".into())]),
            16,
        ),
        (
            "the same key with other data",
            tx(vec![chain("b"), Op::AddElements { set: "m".into(), elems: vec![elem([1, 1, 1, 1], "a"), elem([1, 1, 1, 1], "b")] }]),
            17,
        ),
    ];
    for (what, t, errno) in cases {
        let mut f = Fake::new();
        f.apply(&base).unwrap();
        let before = f.dump(Family::Ip, "t");
        let err = f.apply(&t).expect_err(what);
        assert_eq!(err.errno, errno, "{what}: {err:?}");
        assert_eq!(f.dump(Family::Ip, "t"), before, "{what}: a failed transaction must change nothing");
    }
}

#[test]
fn fake_enforces_set_size_like_the_kernel() {
    let mut f = Fake::new();
    f.apply(&tx(vec![table(), chain("a"), set("m", Some(1))])).unwrap();
    f.apply(&tx(vec![Op::AddElements { set: "m".into(), elems: vec![elem([1, 1, 1, 1], "a")] }])).unwrap();
    let err = f.apply(&tx(vec![Op::AddElements { set: "m".into(), elems: vec![elem([2, 2, 2, 2], "a")] }])).unwrap_err();
    assert_eq!(err.errno, 23, "ENFILE");
}

#[test]
fn batch_is_framed_with_subsystem_genid_and_one_ack() {
    let elems: Vec<Element> = (0..3000u32).map(|i| elem(i.to_be_bytes(), "a")).collect();
    let t = tx(vec![table(), chain("a"), set("m", Some(4096)), Op::AddElements { set: "m".into(), elems }]);
    let b = encode_batch(&t, 100, Some(0xdead_beef));
    let msgs: Vec<_> = messages(b.bytes.as_bytes()).collect();
    // BATCH_BEGIN carries res_id = NFNL_SUBSYS_NFTABLES (big-endian) and the genid.
    assert_eq!(msgs[0].ty, NFNL_MSG_BATCH_BEGIN);
    assert_eq!(&msgs[0].payload[2..4], &NFNL_SUBSYS_NFTABLES.to_be_bytes());
    let genid = attrs(&msgs[0].payload[4..]).find(|a| a.ty == NFNL_BATCH_GENID).unwrap();
    assert_eq!(genid.u32_be(), Some(0xdead_beef));
    assert_eq!(msgs.last().unwrap().ty, NFNL_MSG_BATCH_END);
    // 3000 elements do not fit one nlattr (64 KiB): they are split over several messages.
    let elem_msgs = msgs.iter().filter(|m| m.ty == nft_type(NFT_MSG_NEWSETELEM)).count();
    assert!(elem_msgs >= 3, "{elem_msgs} element messages");
    assert!(!b.bytes.overflowed());
    // Only the last object message asks for an ack; sequence numbers rise by one.
    let acked: Vec<_> = msgs.iter().filter(|m| m.flags & NLM_F_ACK != 0).collect();
    assert_eq!(acked.len(), 1);
    assert_eq!(acked[0].seq, b.last_seq);
    assert!(msgs.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    // The set asks for its size hint.
    let newset = msgs.iter().find(|m| m.ty == nft_type(NFT_MSG_NEWSET)).unwrap();
    let desc = attrs(&newset.payload[4..]).find(|a| a.ty == NFTA_SET_DESC).unwrap();
    assert_eq!(attrs(desc.payload).next().unwrap().u32_be(), Some(4096));
}

#[test]
fn text_rendering_matches_nft_syntax() {
    let t = tx(vec![
        table(),
        Op::AddChain(Chain {
            name: "nat-prerouting".into(),
            base: Some(BaseChain { ty: ChainType::Nat, hook: Hook::Prerouting, priority: -100 }),
        }),
        chain("a"),
        Op::FlushChain("a".into()),
        Op::AddElements { set: "m".into(), elems: vec![Element { comment: Some("ns/svc:\"p\"".into()), ..elem([10, 96, 0, 1], "a") }] },
        Op::DeleteElements { set: "m".into(), keys: vec![Tuple::new(&[Val::V4([10, 96, 0, 1].into())])] },
    ]);
    assert_eq!(
        text::render_tx(&t),
        "add table ip t\n\
         add chain ip t nat-prerouting { type nat hook prerouting priority -100 ; }\n\
         add chain ip t a\n\
         flush chain ip t a\n\
         add element ip t m { 10.96.0.1 comment \"ns/svc:p\" : goto a }\n\
         delete element ip t m { 10.96.0.1 }\n"
    );
}
