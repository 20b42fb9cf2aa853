//! The fixed part of the ruleset: table, base chains, helper chains, sets and
//! maps. Names follow upstream's nftables mode; see docs/design.md for where
//! and why kproxy deviates (one shared endpoint map, no per-endpoint chains).

use kproxy_nftables::consts::*;
use kproxy_nftables::{BaseChain, Chain, ChainType, Cidr, Family, Field, Hook, Op, Rule, SetData, SetDef, Stmt, Table, Verdict};

pub const TABLE: &str = "kube-proxy";
pub const TABLE_COMMENT: &str = "rules for kube-proxy";
pub const CLUSTER_IPS: &str = "cluster-ips";
pub const SERVICE_IPS: &str = "service-ips";
pub const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
pub const ENDPOINT_ADDRS: &str = "endpoint-addrs";
pub const HAIRPIN: &str = "hairpin-connections";
pub const MASQUERADE_SERVICES: &str = "masquerade-services";
pub const MARK_FOR_MASQ: &str = "mark-for-masquerade";
pub const MASQUERADING: &str = "masquerading";
pub const SERVICES: &str = "services";
pub const SERVICE_ENDPOINTS_CHECK: &str = "service-endpoints-check";
pub const CLUSTER_IPS_CHECK: &str = "cluster-ips-check";
pub const REJECT_CHAIN: &str = "reject-chain";

/// Options that shape the fixed rules.
#[derive(Debug, Clone)]
pub struct LayoutConfig {
    pub family: Family,
    pub cluster_cidr: Option<Cidr>,
    pub masquerade_all: bool,
    pub masquerade_bit: u32,
}

impl LayoutConfig {
    pub fn mark(&self) -> u32 {
        1u32 << self.masquerade_bit
    }
}

// nft's userdata for each set (the TLVs before the comment), captured with
// scripts/capture-set-udata.sh: byte orders and `typeof` descriptions, so that
// `nft list` prints sets made over netlink exactly as if nft had made them.
const UD_CLUSTER_IPS: &str = "000402000000";
const UD_HAIRPIN: &str = "000400000000030800040d0000000100";
const UD_VERDICT_MAP: &str = "000400000000010400000000030800040d0000000100060400000000";
const UD_ENDPOINT_ADDRS_V4: &str = "000400000000010400000000036000040d00000001580014000407000000010c00040c00000001040c000000010e00040900000001060004100000000214000407000000010c00040b000000010402000000031a0004170000000112000401000000010401000000020400000000043400040d000000012c0014000407000000010c00040c00000001040c0000000114000407000000010c00040b000000010402000000060400000000";
const UD_ENDPOINT_ADDRS_V6: &str = "000400000000010400000000036000040d00000001580014000407000000010c00040d000000010409000000010e00040900000001060004100000000214000407000000010c00040b000000010402000000031a0004170000000112000401000000010401000000020400000000043400040d000000012c0014000407000000010c00040d0000000104090000000114000407000000010c00040b000000010402000000060400000000";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).filter_map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// The shared chain that picks one of `n` endpoints for any ServicePort with n endpoints.
pub fn slots_chain(n: usize) -> String {
    format!("endpoints-mod-{n}")
}

fn addr_type(f: Family) -> (u32, &'static str) {
    match f {
        Family::Ip => (TYPE_IPADDR, "ipv4_addr"),
        Family::Ip6 => (TYPE_IP6ADDR, "ipv6_addr"),
    }
}

fn concat(types: &[u32]) -> u32 {
    types.iter().fold(0, |acc, t| (acc << 6) | t)
}

pub fn sets(f: Family) -> Vec<SetDef> {
    let (at, an) = addr_type(f);
    let alen = f.addr_len() as u32;
    let verdict_map = |name: &str, comment: &str| SetDef {
        name: name.into(),
        key_type: concat(&[at, TYPE_INET_PROTOCOL, TYPE_INET_SERVICE]),
        key_len: alen + 8,
        data: SetData::Verdict,
        decl: format!("type {an} . inet_proto . inet_service : verdict"),
        comment: Some(comment.into()),
        udata_prefix: hex(UD_VERDICT_MAP),
        size: None,
    };
    vec![
        SetDef {
            name: CLUSTER_IPS.into(),
            key_type: at,
            key_len: alen,
            data: SetData::None,
            decl: format!("type {an}"),
            comment: Some("Active ClusterIPs".into()),
            udata_prefix: hex(UD_CLUSTER_IPS),
            size: None,
        },
        SetDef {
            name: HAIRPIN.into(),
            key_type: concat(&[at, at]),
            key_len: alen * 2,
            data: SetData::None,
            decl: format!("type {an} . {an}"),
            comment: Some("endpoint pairs that need hairpin masquerade".into()),
            udata_prefix: hex(UD_HAIRPIN),
            size: None,
        },
        SetDef {
            name: MASQUERADE_SERVICES.into(),
            key_type: concat(&[at, TYPE_INET_PROTOCOL, TYPE_INET_SERVICE]),
            key_len: alen + 8,
            data: SetData::None,
            decl: format!("type {an} . inet_proto . inet_service"),
            comment: Some("external IPs and LoadBalancer IPs whose traffic is always masqueraded".into()),
            udata_prefix: hex(UD_HAIRPIN),
            size: None,
        },
        verdict_map(SERVICE_IPS, "ClusterIP, ExternalIP and LoadBalancer IP traffic"),
        verdict_map(NO_ENDPOINT_SERVICES, "vmap to drop or reject packets to services with no endpoints"),
        SetDef {
            name: ENDPOINT_ADDRS.into(),
            key_type: concat(&[at, TYPE_INET_PROTOCOL, TYPE_INET_SERVICE, TYPE_INTEGER]),
            key_len: alen + 12,
            data: SetData::Value { ty: concat(&[at, TYPE_INET_SERVICE]), len: alen + 4 },
            decl: format!("typeof {ip} daddr . meta l4proto . th dport . numgen random mod 1 : {ip} daddr . th dport", ip = f.keyword()),
            comment: Some("service IP . protocol . port . slot : endpoint address . port".into()),
            udata_prefix: hex(if f == Family::Ip { UD_ENDPOINT_ADDRS_V4 } else { UD_ENDPOINT_ADDRS_V6 }),
            size: None,
        },
    ]
}

fn base(name: &str, ty: ChainType, hook: Hook, priority: i32) -> Chain {
    Chain { name: name.into(), base: Some(BaseChain { ty, hook, priority }) }
}

fn regular(name: &str) -> Chain {
    Chain { name: name.into(), base: None }
}

fn rule(chain: &str, stmts: Vec<Stmt>) -> Op {
    Op::AddRule(Rule { chain: chain.into(), stmts })
}

fn jump(c: &str) -> Stmt {
    Stmt::Verdict(Verdict::Jump(c.into()))
}

fn goto(c: &str) -> Stmt {
    Stmt::Verdict(Verdict::Goto(c.into()))
}

/// `ip daddr @set`
fn daddr_in(set: &str) -> Stmt {
    Stmt::InSet { fields: vec![Field::Daddr], set: set.into() }
}

/// `ip daddr . meta l4proto . th dport vmap @map`: a ServicePort's VIP picks the verdict.
fn vip_vmap(map: &str) -> Stmt {
    Stmt::Vmap { fields: vec![Field::Daddr, Field::L4Proto, Field::Dport], map: map.into() }
}

/// `dnat to ip daddr . meta l4proto . th dport . numgen random mod N map @endpoint-addrs`:
/// picks slot 0..N-1 of the destination ServicePort in the shared endpoint map.
pub fn dnat_slot(n: u32) -> Stmt {
    Stmt::DnatMap { fields: vec![Field::Daddr, Field::L4Proto, Field::Dport, Field::NumgenRandom(n)], map: ENDPOINT_ADDRS.into() }
}

/// Ops that create the fixed ruleset in an empty table.
pub fn fixed_ops(cfg: &LayoutConfig) -> Vec<Op> {
    let mark = cfg.mark();
    let mut ops = vec![Op::AddTable(Table { family: cfg.family, name: TABLE.into(), comment: Some(TABLE_COMMENT.into()) })];
    ops.extend(sets(cfg.family).into_iter().map(Op::AddSet));
    for c in [MARK_FOR_MASQ, MASQUERADING, SERVICES, SERVICE_ENDPOINTS_CHECK, CLUSTER_IPS_CHECK, REJECT_CHAIN] {
        ops.push(Op::AddChain(regular(c)));
    }
    for c in [
        base("filter-input", ChainType::Filter, Hook::Input, 0),
        base("filter-forward", ChainType::Filter, Hook::Forward, 0),
        base("filter-output", ChainType::Filter, Hook::Output, 0),
        base("nat-prerouting", ChainType::Nat, Hook::Prerouting, -100),
        base("nat-output", ChainType::Nat, Hook::Output, -100),
        base("nat-postrouting", ChainType::Nat, Hook::Postrouting, 100),
    ] {
        ops.push(Op::AddChain(c));
    }
    ops.push(rule(MARK_FOR_MASQ, vec![Stmt::MarkOr(mark)]));
    ops.push(rule(
        MASQUERADING,
        vec![Stmt::CtStatusDnat, Stmt::InSet { fields: vec![Field::Saddr, Field::Daddr], set: HAIRPIN.into() }, jump(MARK_FOR_MASQ)],
    ));
    ops.push(rule(MASQUERADING, vec![Stmt::MarkBitsClear(mark), Stmt::Verdict(Verdict::Return)]));
    ops.push(rule(MASQUERADING, vec![Stmt::MarkXor(mark)]));
    ops.push(rule(MASQUERADING, vec![Stmt::MasqueradeFullyRandom]));
    // ClusterIP traffic from outside the cluster is masqueraded (one rule for all Services).
    if cfg.masquerade_all {
        ops.push(rule(SERVICES, vec![daddr_in(CLUSTER_IPS), jump(MARK_FOR_MASQ)]));
    } else if let Some(cidr) = cfg.cluster_cidr.filter(|c| c.prefix > 0) {
        // (A /0 cluster CIDR leaves no source outside it: no rule.)
        ops.push(rule(SERVICES, vec![daddr_in(CLUSTER_IPS), Stmt::SaddrNotIn(cidr), jump(MARK_FOR_MASQ)]));
    }
    // externalTrafficPolicy Cluster: traffic to an external or LoadBalancer IP is always
    // masqueraded (upstream's external-* chain: jump mark-for-masquerade), one rule for all.
    ops.push(rule(
        SERVICES,
        vec![
            Stmt::InSet { fields: vec![Field::Daddr, Field::L4Proto, Field::Dport], set: MASQUERADE_SERVICES.into() },
            jump(MARK_FOR_MASQ),
        ],
    ));
    ops.push(rule(SERVICES, vec![vip_vmap(SERVICE_IPS)]));
    ops.push(rule(SERVICE_ENDPOINTS_CHECK, vec![vip_vmap(NO_ENDPOINT_SERVICES)]));
    // An undefined port on a ClusterIP: TCP gets a reset at once (upstream: ICMP, which the
    // kernel rate-limits together with redirects, so repeated connects stall).
    ops.push(rule(CLUSTER_IPS_CHECK, vec![daddr_in(CLUSTER_IPS), goto(REJECT_CHAIN)]));
    ops.push(rule(REJECT_CHAIN, vec![Stmt::L4Proto(6), Stmt::RejectTcpReset]));
    ops.push(rule(REJECT_CHAIN, vec![Stmt::Reject]));
    // Upstream checks undefined ClusterIP ports on forward and output only. kproxy also checks
    // input: where a node routes the Service range to itself, a ClusterIP port no Service has
    // would otherwise reach whatever listens on the node (its sshd, say).
    for c in ["filter-input", "filter-forward", "filter-output"] {
        ops.push(rule(c, vec![Stmt::CtStateNew, jump(SERVICE_ENDPOINTS_CHECK)]));
        ops.push(rule(c, vec![Stmt::CtStateNew, jump(CLUSTER_IPS_CHECK)]));
    }
    ops.push(rule("nat-prerouting", vec![jump(SERVICES)]));
    ops.push(rule("nat-output", vec![jump(SERVICES)]));
    ops.push(rule("nat-postrouting", vec![jump(MASQUERADING)]));
    ops
}
