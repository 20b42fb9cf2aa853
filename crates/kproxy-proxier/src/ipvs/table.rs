//! IPVS mode's nftables table, in place of upstream's ipsets and iptables chains: masquerade
//! (off-cluster sources, external IPs, NodePorts, hairpin), source ranges, Local policies
//! without local endpoints, and rejects for Services without endpoints. IPVS does the DNAT.
//! Its sets have nftables mode's names and shapes (see docs/design.md, IPVS mode).

use kproxy_nftables::consts::IPPROTO_TCP;
use kproxy_nftables::{
    Chain, ChainType, Cidr, ElemData, Element as NftElement, Family, Field, Hook, Op, SetDef, Stmt, Table, Tuple, Val, Verdict,
};

use super::build::{host, Element, IpvsConfig, NoEndpoint};
use crate::nftables::layout::{
    self, base, jump, rule, CLUSTER_IPS, FIREWALL_IPS, HAIRPIN, MASQUERADE_NODEPORTS, MASQUERADE_SERVICES, NODEPORT_IPS,
    NO_ENDPOINT_NODEPORTS, NO_ENDPOINT_SERVICES,
};

pub const TABLE: &str = "kproxy-ipvs";
const TABLE_COMMENT: &str = "rules for kproxy's IPVS mode";
pub const NO_LOCAL_SERVICES: &str = "no-local-endpoint-services";
pub const NO_LOCAL_NODEPORTS: &str = "no-local-endpoint-nodeports";
pub const BOUND_ADDRESSES: &str = "ipvs-addresses";
pub const BOUND_PORTS: &str = "ipvs-services";
pub const HEALTH_CHECK_PORTS: &str = "health-check-nodeports";
const MARK_FOR_MASQ: &str = "mark-for-masquerade";
const MASQUERADING: &str = "masquerading";
const SERVICES: &str = "services";
const REJECT_CHAIN: &str = "reject-chain";
pub const FIREWALL_CHECK: &str = "firewall-check";
const ENDPOINTS_CHECK: &str = "endpoints-check";
const ADDRESS_CHECK: &str = "address-check";

/// What the fixed rules depend on besides the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableShape {
    pub family: Family,
    /// NodePorts answer on every local address (else on `nodeport-ips`).
    pub nodeports_all: bool,
}

fn sets(f: Family) -> Vec<SetDef> {
    let wanted = [
        CLUSTER_IPS,
        NODEPORT_IPS,
        HAIRPIN,
        MASQUERADE_SERVICES,
        MASQUERADE_NODEPORTS,
        NO_ENDPOINT_SERVICES,
        NO_ENDPOINT_NODEPORTS,
        FIREWALL_IPS,
    ];
    let all = layout::sets(f);
    let mut out: Vec<SetDef> = all.iter().filter(|s| wanted.contains(&s.name.as_str())).cloned().collect();
    let like = |name: &str, shape: &str, comment: &str| {
        let mut s = all.iter().find(|s| s.name == shape).expect("nftables mode defines it").clone();
        s.name = name.into();
        s.comment = Some(comment.into());
        s
    };
    out.push(like(NO_LOCAL_SERVICES, MASQUERADE_SERVICES, "eTP Local external IPs and LoadBalancer IPs without a local endpoint"));
    out.push(like(NO_LOCAL_NODEPORTS, MASQUERADE_NODEPORTS, "eTP Local NodePorts without a local endpoint"));
    out.push(like(BOUND_ADDRESSES, CLUSTER_IPS, "Service addresses on kube-ipvs0"));
    out.push(like(BOUND_PORTS, MASQUERADE_SERVICES, "Service address . protocol . port on kube-ipvs0"));
    out.push(like(HEALTH_CHECK_PORTS, MASQUERADE_NODEPORTS, "healthCheckNodePorts"));
    out
}

fn vip() -> Vec<Field> {
    vec![Field::Daddr, Field::L4Proto, Field::Dport]
}

fn port() -> Vec<Field> {
    vec![Field::L4Proto, Field::Dport]
}

fn nodeport_daddr(shape: &TableShape) -> Vec<Stmt> {
    layout::nodeport_match(shape.family, shape.nodeports_all)
}

/// What matches traffic not from this node's pods: everything when the detector cannot
/// tell; None when every source is a pod (a /0 pod range).
fn not_pod(cfg: &IpvsConfig) -> Option<Vec<Stmt>> {
    match &cfg.detector {
        Some(crate::local::LocalDetector::Cidr(c)) if c.prefix == 0 => None,
        Some(d) => Some(vec![d.matches(true)]),
        None => Some(vec![]),
    }
}

/// Ops that create the table with its fixed chains and rules, empty sets, and no firewall rules.
pub fn fixed_ops(cfg: &IpvsConfig, shape: &TableShape) -> Vec<Op> {
    let f = shape.family;
    let mark = cfg.mark();
    let mut ops = vec![Op::AddTable(Table { family: f, name: TABLE.into(), comment: Some(TABLE_COMMENT.into()) })];
    ops.extend(sets(f).into_iter().map(Op::AddSet));
    for c in [MARK_FOR_MASQ, MASQUERADING, SERVICES, REJECT_CHAIN, FIREWALL_CHECK, ENDPOINTS_CHECK, ADDRESS_CHECK] {
        ops.push(Op::AddChain(Chain { name: c.into(), base: None }));
    }
    // Before IPVS: it takes input at priority 98 and output at -98.
    for c in [
        base("filter-input", ChainType::Filter, Hook::Input, 0),
        base("filter-output", ChainType::Filter, Hook::Output, -110),
        base("nat-prerouting", ChainType::Nat, Hook::Prerouting, -100),
        base("nat-output", ChainType::Nat, Hook::Output, -100),
        base("nat-postrouting", ChainType::Nat, Hook::Postrouting, 100),
    ] {
        ops.push(Op::AddChain(c));
    }
    ops.push(rule(MARK_FOR_MASQ, vec![Stmt::MarkOr(mark)]));
    // IPVS is not netfilter NAT: no `ct status dnat` here. After IPVS a pod reaching itself
    // has its own address as source and destination.
    ops.push(rule(MASQUERADING, vec![Stmt::InSet { fields: vec![Field::Saddr, Field::Daddr], set: HAIRPIN.into() }, jump(MARK_FOR_MASQ)]));
    ops.push(rule(MASQUERADING, vec![Stmt::MarkBitsClear(mark), Stmt::Verdict(Verdict::Return)]));
    ops.push(rule(MASQUERADING, vec![Stmt::MarkXor(mark)]));
    ops.push(rule(MASQUERADING, vec![Stmt::MasqueradeFullyRandom]));
    let cluster_ip = Stmt::InSet { fields: vec![Field::Daddr], set: CLUSTER_IPS.into() };
    if cfg.masquerade_all {
        ops.push(rule(SERVICES, vec![cluster_ip, jump(MARK_FOR_MASQ)]));
    } else if let Some(d) = &cfg.detector {
        if !matches!(d, crate::local::LocalDetector::Cidr(c) if c.prefix == 0) {
            ops.push(rule(SERVICES, vec![cluster_ip, d.matches(true), jump(MARK_FOR_MASQ)]));
        }
    } else {
        // No detector: the node's own connections to a ClusterIP (whose source is then that
        // local address) are masqueraded, as upstream's `src,dst` match does.
        ops.push(rule(SERVICES, vec![Stmt::InSet { fields: vec![Field::Saddr], set: CLUSTER_IPS.into() }, jump(MARK_FOR_MASQ)]));
    }
    ops.push(rule(SERVICES, vec![Stmt::InSet { fields: vip(), set: MASQUERADE_SERVICES.into() }, jump(MARK_FOR_MASQ)]));
    let np = nodeport_daddr(shape);
    ops.push(rule(
        SERVICES,
        [np.clone(), vec![Stmt::InSet { fields: port(), set: MASQUERADE_NODEPORTS.into() }, jump(MARK_FOR_MASQ)]].concat(),
    ));
    ops.push(rule(REJECT_CHAIN, vec![Stmt::L4Proto(IPPROTO_TCP), Stmt::RejectTcpReset]));
    ops.push(rule(REJECT_CHAIN, vec![Stmt::Reject]));
    ops.push(rule(FIREWALL_CHECK, vec![Stmt::Verdict(Verdict::Drop)]));
    // Source ranges first, then Services without (local) endpoints; new connections only.
    ops.push(rule(ENDPOINTS_CHECK, vec![Stmt::Vmap { fields: vip(), map: FIREWALL_IPS.into() }]));
    ops.push(rule(ENDPOINTS_CHECK, vec![Stmt::Vmap { fields: vip(), map: NO_ENDPOINT_SERVICES.into() }]));
    let np_vmap = Stmt::Vmap { fields: port(), map: NO_ENDPOINT_NODEPORTS.into() };
    ops.push(rule(ENDPOINTS_CHECK, [np.clone(), vec![np_vmap]].concat()));
    // Pods still reach an eTP Local Service without local endpoints (upstream's fallback).
    if let Some(pods_pass) = not_pod(cfg) {
        let drop = Stmt::Verdict(Verdict::Drop);
        let svc = [pods_pass.clone(), vec![Stmt::InSet { fields: vip(), set: NO_LOCAL_SERVICES.into() }, drop.clone()]].concat();
        ops.push(rule(ENDPOINTS_CHECK, svc));
        let nodeports = [pods_pass, np, vec![Stmt::InSet { fields: port(), set: NO_LOCAL_NODEPORTS.into() }, drop]].concat();
        ops.push(rule(ENDPOINTS_CHECK, nodeports));
    }
    // Upstream's KUBE-IPVS-FILTER: kube-ipvs0's addresses answer on Service ports and
    // healthCheckNodePorts only, so nothing else the node listens on is reached through them.
    ops.push(rule(ADDRESS_CHECK, vec![Stmt::InSet { fields: vip(), set: BOUND_PORTS.into() }, Stmt::Verdict(Verdict::Return)]));
    ops.push(rule(ADDRESS_CHECK, vec![Stmt::InSet { fields: port(), set: HEALTH_CHECK_PORTS.into() }, Stmt::Verdict(Verdict::Return)]));
    ops.push(rule(
        ADDRESS_CHECK,
        vec![Stmt::InSet { fields: vec![Field::Daddr], set: BOUND_ADDRESSES.into() }, Stmt::Verdict(Verdict::Goto(REJECT_CHAIN.into()))],
    ));
    ops.push(rule("filter-input", vec![Stmt::CtStateNew, jump(ADDRESS_CHECK)]));
    for c in ["filter-input", "filter-output"] {
        ops.push(rule(c, vec![Stmt::CtStateNew, jump(ENDPOINTS_CHECK)]));
    }
    ops.push(rule("nat-prerouting", vec![jump(SERVICES)]));
    ops.push(rule("nat-output", vec![jump(SERVICES)]));
    ops.push(rule("nat-postrouting", vec![jump(MASQUERADING)]));
    ops
}

/// The set an element goes in, and the element as the set holds it.
pub fn element(e: &Element) -> (&'static str, NftElement) {
    let key = Tuple::new(&e.key());
    let verdict = |v: Verdict| Some(ElemData::Verdict(v));
    let reject = || verdict(Verdict::Goto(REJECT_CHAIN.into()));
    let (set, data) = match e {
        Element::ClusterIp(_) => (CLUSTER_IPS, None),
        Element::BoundAddress(_) => (BOUND_ADDRESSES, None),
        Element::BoundPort(..) => (BOUND_PORTS, None),
        Element::HealthCheckPort(_) => (HEALTH_CHECK_PORTS, None),
        Element::Hairpin(_) => (HAIRPIN, None),
        Element::MasqueradeService(..) => (MASQUERADE_SERVICES, None),
        Element::MasqueradeNodePort(..) => (MASQUERADE_NODEPORTS, None),
        Element::Firewall(..) => (FIREWALL_IPS, verdict(Verdict::Jump(FIREWALL_CHECK.into()))),
        Element::NoEndpointService(.., NoEndpoint::Reject) => (NO_ENDPOINT_SERVICES, reject()),
        Element::NoEndpointService(.., NoEndpoint::DropInternal) => (NO_ENDPOINT_SERVICES, verdict(Verdict::Drop)),
        Element::NoEndpointService(.., NoEndpoint::DropExternal) => (NO_LOCAL_SERVICES, None),
        Element::NoEndpointNodePort(.., NoEndpoint::DropExternal) => (NO_LOCAL_NODEPORTS, None),
        Element::NoEndpointNodePort(..) => (NO_ENDPOINT_NODEPORTS, reject()),
    };
    (set, NftElement { key, data, comment: None })
}

/// The `nodeport-ips` elements.
pub fn nodeport_ip(ip: std::net::IpAddr) -> NftElement {
    NftElement { key: Tuple::new(&[Val::ip(ip)]), data: None, comment: None }
}

/// `firewall-check`'s rules for the allowed sources, before its final drop.
pub fn firewall_rules(allowed: &[(std::net::IpAddr, u8, u16, Cidr)]) -> Vec<Op> {
    let mut ops = Vec::with_capacity(allowed.len() + 2);
    ops.push(Op::FlushChain(FIREWALL_CHECK.into()));
    for (ip, proto, port, src) in allowed {
        let mut stmts =
            vec![Stmt::AddrIn { field: Field::Daddr, cidr: host(*ip), negate: false }, Stmt::L4Proto(*proto), Stmt::DportIs(*port)];
        // (A /0 range opens the LB IP: build.rs leaves it out of firewall-ips.)
        if src.prefix > 0 {
            stmts.push(Stmt::AddrIn { field: Field::Saddr, cidr: *src, negate: false });
        }
        stmts.push(Stmt::Verdict(Verdict::Return));
        ops.push(rule(FIREWALL_CHECK, stmts));
    }
    ops.push(rule(FIREWALL_CHECK, vec![Stmt::Verdict(Verdict::Drop)]));
    ops
}
