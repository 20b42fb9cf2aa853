//! The tracer over a hand-built ruleset: each row is one new connection and
//! what the rules must do to it (generic nf_tables semantics, no kproxy shapes).

use std::net::IpAddr;

use kproxy_nftables::trace::{trace, Fate, Packet};
use kproxy_nftables::*;

const T: &str = "t";

fn base(name: &str, ty: ChainType, hook: Hook, priority: i32) -> Op {
    Op::AddChain(Chain { name: name.into(), base: Some(BaseChain { ty, hook, priority }) })
}
fn chain(name: &str) -> Op {
    Op::AddChain(Chain { name: name.into(), base: None })
}
fn rule(chain: &str, stmts: Vec<Stmt>) -> Op {
    Op::AddRule(Rule { chain: chain.into(), stmts })
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
fn map(name: &str, data: SetData) -> Op {
    Op::AddSet(SetDef {
        name: name.into(),
        key_type: 0,
        key_len: 0,
        data,
        decl: String::new(),
        comment: None,
        udata_prefix: vec![],
        size: None,
        dynamic: false,
    })
}

/// prerouting: 10.0.0.1:80/tcp → random of two backends via a vmap and a dnat map;
/// 10.0.0.2 is dropped; 10.0.0.3 rejected (tcp reset); postrouting masquerades marked packets.
fn ruleset() -> Fake {
    let vip = |a: &str| Tuple::new(&[Val::ip(ip(a)), Val::Proto(6), Val::Port(80)]);
    let fields = vec![Field::Daddr, Field::L4Proto, Field::Dport];
    let ops = vec![
        Op::AddTable(Table { family: Family::Ip, name: T.into(), comment: None }),
        map("vips", SetData::Verdict),
        map("backends", SetData::Value { ty: 0, len: 8 }),
        map("cluster", SetData::None),
        chain("lb"),
        chain("mark"),
        chain("deny"),
        base("pre", ChainType::Nat, Hook::Prerouting, -100),
        base("post", ChainType::Nat, Hook::Postrouting, 100),
        base("fwd", ChainType::Filter, Hook::Forward, 0),
        rule("mark", vec![Stmt::MarkOr(0x4000)]),
        rule(
            "pre",
            vec![
                Stmt::AddrIn { field: Field::Saddr, cidr: "10.244.0.0/16".parse().unwrap(), negate: true },
                Stmt::Verdict(Verdict::Jump("mark".into())),
            ],
        ),
        rule("pre", vec![Stmt::Vmap { fields: fields.clone(), map: "vips".into() }]),
        rule("lb", vec![Stmt::DnatMap { fields: vec![Field::Daddr, Field::NumgenRandom(2)], map: "backends".into() }]),
        rule("deny", vec![Stmt::L4Proto(6), Stmt::RejectTcpReset]),
        rule("deny", vec![Stmt::Reject]),
        rule(
            "fwd",
            vec![Stmt::CtStateNew, Stmt::InSet { fields: vec![Field::Daddr], set: "cluster".into() }, Stmt::Verdict(Verdict::Drop)],
        ),
        rule("post", vec![Stmt::MarkBitsClear(0x4000), Stmt::Verdict(Verdict::Return)]),
        rule("post", vec![Stmt::MasqueradeFullyRandom]),
        Op::AddElements {
            set: "vips".into(),
            elems: vec![
                Element { key: vip("10.0.0.1"), data: Some(ElemData::Verdict(Verdict::Goto("lb".into()))), comment: Some("svc-a".into()) },
                Element { key: vip("10.0.0.2"), data: Some(ElemData::Verdict(Verdict::Drop)), comment: None },
                Element { key: vip("10.0.0.3"), data: Some(ElemData::Verdict(Verdict::Goto("deny".into()))), comment: None },
            ],
        },
        Op::AddElements {
            set: "cluster".into(),
            elems: vec![Element { key: Tuple::new(&[Val::ip(ip("10.0.0.1"))]), data: None, comment: None }],
        },
        Op::AddElements {
            set: "backends".into(),
            elems: (0..2u32)
                .map(|i| Element {
                    key: Tuple::new(&[Val::ip(ip("10.0.0.1")), Val::Int(i)]),
                    data: Some(ElemData::Vals(Tuple::new(&[Val::ip(ip(&format!("10.244.{}.2", i + 1))), Val::Port(8080)]))),
                    comment: None,
                })
                .collect(),
        },
    ];
    let mut f = Fake::new();
    f.apply(&Transaction { family: Family::Ip, table: T.into(), ops }).expect("ruleset applies");
    f
}

type Row = (&'static str, &'static str, &'static str, u8, u16, &'static [(Fate, Option<&'static str>, bool)]);

#[test]
fn connections_meet_their_fate() {
    let f = ruleset();
    let rows: &[Row] = &[
        (
            "from a pod: both backends, not masqueraded",
            "10.244.9.9",
            "10.0.0.1",
            6,
            80,
            &[(Fate::Accept, Some("10.244.1.2:8080"), false), (Fate::Accept, Some("10.244.2.2:8080"), false)],
        ),
        (
            "from outside: both backends, masqueraded",
            "192.0.2.1",
            "10.0.0.1",
            6,
            80,
            &[(Fate::Accept, Some("10.244.1.2:8080"), true), (Fate::Accept, Some("10.244.2.2:8080"), true)],
        ),
        ("a drop verdict in the vmap", "10.244.9.9", "10.0.0.2", 6, 80, &[(Fate::Drop, None, false)]),
        ("goto a reject chain, tcp", "10.244.9.9", "10.0.0.3", 6, 80, &[(Fate::RejectTcpReset, None, false)]),
        ("no vmap match, then the forward filter drops it", "10.244.9.9", "10.0.0.1", 17, 80, &[(Fate::Drop, None, false)]),
        ("not a VIP at all: accepted untouched", "10.244.9.9", "10.244.1.2", 6, 80, &[(Fate::Accept, None, false)]),
    ];
    for (what, src, dst, proto, dport, want) in rows {
        let p = Packet { src: ip(src), dst: ip(dst), proto: *proto, dport: *dport, from_node: false, iif: None };
        let mut got: Vec<(Fate, Option<String>, bool)> =
            trace(&f, Family::Ip, &p).into_iter().map(|o| (o.fate, o.dnat.map(|(a, p)| format!("{a}:{p}")), o.masquerade)).collect();
        got.sort();
        let want: Vec<(Fate, Option<String>, bool)> = want.iter().map(|(f, d, m)| (*f, d.map(str::to_owned), *m)).collect();
        assert_eq!(got, want, "{what}");
    }
}

#[test]
fn the_path_names_the_rules_and_the_comment_names_the_service() {
    let f = ruleset();
    let p = Packet { src: ip("10.244.9.9"), dst: ip("10.0.0.1"), proto: 6, dport: 80, from_node: false, iif: None };
    let out = trace(&f, Family::Ip, &p);
    assert_eq!(out[0].comments, vec!["svc-a".to_string()]);
    assert!(out[0].path.iter().any(|r| r == "t pre: ip daddr . meta l4proto . th dport vmap @vips"), "{:?}", out[0].path);
    assert!(out[0].path.iter().any(|r| r.starts_with("t lb: dnat to ip daddr . numgen random mod 2 map @backends")), "{:?}", out[0].path);
}
