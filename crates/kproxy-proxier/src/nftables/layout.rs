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
pub const NODEPORT_IPS: &str = "nodeport-ips";
pub const SERVICE_NODEPORTS: &str = "service-nodeports";
pub const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
pub const MASQUERADE_NODEPORTS: &str = "masquerade-nodeports";
pub const NODEPORT_ENDPOINT_ADDRS: &str = "nodeport-endpoint-addrs";
pub const LOCAL_ENDPOINT_ADDRS: &str = "local-endpoint-addrs";
pub const NODEPORT_LOCAL_ENDPOINT_ADDRS: &str = "nodeport-local-endpoint-addrs";
pub const FIREWALL_IPS: &str = "firewall-ips";
pub const FIREWALL_CHECK: &str = "firewall-check";
pub const NODEPORT_ENDPOINTS_CHECK: &str = "nodeport-endpoints-check";
// ClientIP affinity (docs/design.md): which endpoint each client of a path sticks to, and
// who records it after DNAT, per endpoint list (the local list serves Local policies).
pub const AFFINITY_ENDPOINTS: &str = "affinity-endpoints";
pub const LOCAL_AFFINITY_ENDPOINTS: &str = "local-affinity-endpoints";
pub const NODEPORT_AFFINITY_ENDPOINTS: &str = "nodeport-affinity-endpoints";
pub const NODEPORT_LOCAL_AFFINITY_ENDPOINTS: &str = "nodeport-local-affinity-endpoints";
pub const AFFINITY_MEMBERS: &str = "affinity-members";
pub const LOCAL_AFFINITY_MEMBERS: &str = "local-affinity-members";
pub const NODEPORT_AFFINITY_MEMBERS: &str = "nodeport-affinity-members";
pub const NODEPORT_LOCAL_AFFINITY_MEMBERS: &str = "nodeport-local-affinity-members";
pub const AFFINITY_RECORDERS: &str = "affinity-recorders";
pub const LOCAL_AFFINITY_RECORDERS: &str = "local-affinity-recorders";
pub const NODEPORT_AFFINITY_RECORDERS: &str = "nodeport-affinity-recorders";
pub const NODEPORT_LOCAL_AFFINITY_RECORDERS: &str = "nodeport-local-affinity-recorders";
pub const RECORD_AFFINITY: &str = "record-affinity";

pub use crate::local::LocalDetector;

impl LocalDetector {
    /// Statements that match pod traffic (`negate`: anything else).
    pub fn matches(&self, negate: bool) -> Stmt {
        match self {
            LocalDetector::Cidr(c) => Stmt::AddrIn { field: Field::Saddr, cidr: *c, negate },
            LocalDetector::Interface(n) => Stmt::IifName { name: n.clone(), prefix: false, negate },
            LocalDetector::InterfacePrefix(n) => Stmt::IifName { name: n.clone(), prefix: true, negate },
        }
    }
}

/// Options that shape the fixed rules.
#[derive(Debug, Clone)]
pub struct LayoutConfig {
    pub family: Family,
    /// None: no off-cluster masquerade rule and no pod short-circuit, as upstream's no-op detector.
    pub detector: Option<LocalDetector>,
    pub masquerade_all: bool,
    /// NodePorts answer on every local address (a 0.0.0.0/0 or ::/0 nodePortAddresses) rather than `nodeport-ips`.
    pub nodeports_all: bool,
    /// ServiceCIDR ranges: an unallocated IP in them is dropped.
    pub service_cidrs: Vec<Cidr>,
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
const UD_PORT_VERDICT_MAP: &str = UD_VERDICT_MAP;
const UD_NODEPORT_ADDRS_V4: &str = "000400000000010400000000034a00040d0000000142000e00040900000001060004100000000114000407000000010c00040b000000010402000000021a0004170000000112000401000000010401000000020400000000043400040d000000012c0014000407000000010c00040c00000001040c0000000114000407000000010c00040b000000010402000000060400000000";
const UD_NODEPORT_ADDRS_V6: &str = "000400000000010400000000034a00040d0000000142000e00040900000001060004100000000114000407000000010c00040b000000010402000000021a0004170000000112000401000000010401000000020400000000043400040d000000012c0014000407000000010c00040d0000000104090000000114000407000000010c00040b000000010402000000060400000000";
const UD_AFFINITY_V4: &str = "000400000000010400000000035a00040d00000001520014000407000000010c00040c00000001040b000000010e00040900000001060004100000000214000407000000010c00040c00000001040c0000000314000407000000010c00040b000000010402000000043400040d000000012c0014000407000000010c00040c00000001040c0000000114000407000000010c00040b000000010402000000060400000000";
const UD_AFFINITY_V6: &str = "000400000000010400000000035a00040d00000001520014000407000000010c00040d000000010408000000010e00040900000001060004100000000214000407000000010c00040d0000000104090000000314000407000000010c00040b000000010402000000043400040d000000012c0014000407000000010c00040d0000000104090000000114000407000000010c00040b000000010402000000060400000000";
const UD_NODEPORT_AFFINITY_V4: &str = "000400000000010400000000034400040d000000013c0014000407000000010c00040c00000001040b000000010e00040900000001060004100000000214000407000000010c00040b000000010402000000043400040d000000012c0014000407000000010c00040c00000001040c0000000114000407000000010c00040b000000010402000000060400000000";
const UD_NODEPORT_AFFINITY_V6: &str = "000400000000010400000000034400040d000000013c0014000407000000010c00040d000000010408000000010e00040900000001060004100000000214000407000000010c00040b000000010402000000043400040d000000012c0014000407000000010c00040d0000000104090000000114000407000000010c00040b000000010402000000060400000000";
const UD_ENDPOINT_ADDRS_V4: &str = "000400000000010400000000036000040d00000001580014000407000000010c00040c00000001040c000000010e00040900000001060004100000000214000407000000010c00040b000000010402000000031a0004170000000112000401000000010401000000020400000000043400040d000000012c0014000407000000010c00040c00000001040c0000000114000407000000010c00040b000000010402000000060400000000";
const UD_ENDPOINT_ADDRS_V6: &str = "000400000000010400000000036000040d00000001580014000407000000010c00040d000000010409000000010e00040900000001060004100000000214000407000000010c00040b000000010402000000031a0004170000000112000401000000010401000000020400000000043400040d000000012c0014000407000000010c00040d0000000104090000000114000407000000010c00040b000000010402000000060400000000";

pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).filter_map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
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
    let ip = f.keyword();
    let def = |name: &str, key_type: u32, key_len: u32, data: SetData, decl: String, comment: &str, udata: &str| SetDef {
        name: name.into(),
        key_type,
        key_len,
        data,
        decl,
        comment: Some(comment.into()),
        udata_prefix: hex(udata),
        size: None,
        dynamic: false,
    };
    let vip = concat(&[at, TYPE_INET_PROTOCOL, TYPE_INET_SERVICE]);
    let port = concat(&[TYPE_INET_PROTOCOL, TYPE_INET_SERVICE]);
    let vip_decl = format!("type {an} . inet_proto . inet_service");
    let verdict_map =
        |name: &str, comment: &str| def(name, vip, alen + 8, SetData::Verdict, format!("{vip_decl} : verdict"), comment, UD_VERDICT_MAP);
    let port_map = |name: &str, comment: &str| {
        def(name, port, 8, SetData::Verdict, "type inet_proto . inet_service : verdict".into(), comment, UD_PORT_VERDICT_MAP)
    };
    let slots = |name: &str, comment: &str| {
        let ud = if f == Family::Ip { UD_ENDPOINT_ADDRS_V4 } else { UD_ENDPOINT_ADDRS_V6 };
        def(
            name,
            concat(&[at, TYPE_INET_PROTOCOL, TYPE_INET_SERVICE, TYPE_INTEGER]),
            alen + 12,
            SetData::Value { ty: concat(&[at, TYPE_INET_SERVICE]), len: alen + 4 },
            format!("typeof {ip} daddr . meta l4proto . th dport . numgen random mod 1 : {ip} daddr . th dport"),
            comment,
            ud,
        )
    };
    let port_slots = |name: &str, comment: &str| {
        let ud = if f == Family::Ip { UD_NODEPORT_ADDRS_V4 } else { UD_NODEPORT_ADDRS_V6 };
        def(
            name,
            concat(&[TYPE_INET_PROTOCOL, TYPE_INET_SERVICE, TYPE_INTEGER]),
            12,
            SetData::Value { ty: concat(&[at, TYPE_INET_SERVICE]), len: alen + 4 },
            format!("typeof meta l4proto . th dport . numgen random mod 1 : {ip} daddr . th dport"),
            comment,
            ud,
        )
    };
    let endpoint = SetData::Value { ty: concat(&[at, TYPE_INET_SERVICE]), len: alen + 4 };
    let sticky = |name: &str, key_type: u32, key_len: u32, decl: String, comment: &str, udata: &str| SetDef {
        dynamic: true,
        ..def(name, key_type, key_len, endpoint.clone(), format!("{decl} ; flags dynamic,timeout"), comment, udata)
    };
    let affinity = |name: &str, comment: &str| {
        let ud = if f == Family::Ip { UD_AFFINITY_V4 } else { UD_AFFINITY_V6 };
        let decl = format!("typeof {ip} saddr . meta l4proto . {ip} daddr . th dport : {ip} daddr . th dport");
        sticky(name, concat(&[at, TYPE_INET_PROTOCOL, at, TYPE_INET_SERVICE]), alen * 2 + 8, decl, comment, ud)
    };
    let nodeport_affinity = |name: &str, comment: &str| {
        let ud = if f == Family::Ip { UD_NODEPORT_AFFINITY_V4 } else { UD_NODEPORT_AFFINITY_V6 };
        let decl = format!("typeof {ip} saddr . meta l4proto . th dport : {ip} daddr . th dport");
        sticky(name, concat(&[at, TYPE_INET_PROTOCOL, TYPE_INET_SERVICE]), alen + 8, decl, comment, ud)
    };
    // `type`, not `typeof`: nft cannot type `ct original proto-dst` in a declaration.
    let members = |name: &str, comment: &str| {
        let key = concat(&[at, TYPE_INET_PROTOCOL, TYPE_INET_SERVICE, at, TYPE_INET_SERVICE]);
        let decl = format!("type {an} . inet_proto . inet_service . {an} . inet_service");
        def(name, key, alen * 2 + 12, SetData::None, decl, comment, UD_HAIRPIN)
    };
    let nodeport_members = |name: &str, comment: &str| {
        let key = concat(&[TYPE_INET_PROTOCOL, TYPE_INET_SERVICE, at, TYPE_INET_SERVICE]);
        let decl = format!("type inet_proto . inet_service . {an} . inet_service");
        def(name, key, alen + 12, SetData::None, decl, comment, UD_HAIRPIN)
    };
    vec![
        def(CLUSTER_IPS, at, alen, SetData::None, format!("type {an}"), "Active ClusterIPs", UD_CLUSTER_IPS),
        def(NODEPORT_IPS, at, alen, SetData::None, format!("type {an}"), "IPs that accept NodePort traffic", UD_CLUSTER_IPS),
        def(
            HAIRPIN,
            concat(&[at, at]),
            alen * 2,
            SetData::None,
            format!("type {an} . {an}"),
            "endpoint pairs that need hairpin masquerade",
            UD_HAIRPIN,
        ),
        def(
            MASQUERADE_SERVICES,
            vip,
            alen + 8,
            SetData::None,
            vip_decl.clone(),
            "external IPs and LoadBalancer IPs whose traffic is always masqueraded",
            UD_HAIRPIN,
        ),
        def(
            MASQUERADE_NODEPORTS,
            port,
            8,
            SetData::None,
            "type inet_proto . inet_service".into(),
            "NodePorts whose traffic is always masqueraded",
            UD_HAIRPIN,
        ),
        verdict_map(SERVICE_IPS, "ClusterIP, ExternalIP and LoadBalancer IP traffic"),
        verdict_map(NO_ENDPOINT_SERVICES, "vmap to drop or reject packets to services with no endpoints"),
        verdict_map(FIREWALL_IPS, "destinations that are subject to LoadBalancerSourceRanges"),
        port_map(SERVICE_NODEPORTS, "NodePort traffic"),
        port_map(NO_ENDPOINT_NODEPORTS, "vmap to drop or reject packets to service nodeports with no endpoints"),
        slots(ENDPOINT_ADDRS, "service IP . protocol . port . slot : endpoint address . port"),
        slots(LOCAL_ENDPOINT_ADDRS, "service IP . protocol . port . slot : local endpoint address . port"),
        port_slots(NODEPORT_ENDPOINT_ADDRS, "protocol . NodePort . slot : endpoint address . port"),
        port_slots(NODEPORT_LOCAL_ENDPOINT_ADDRS, "protocol . NodePort . slot : local endpoint address . port"),
        affinity(AFFINITY_ENDPOINTS, "client . protocol . service IP . port : endpoint address . port"),
        affinity(LOCAL_AFFINITY_ENDPOINTS, "client . protocol . service IP . port : local endpoint address . port"),
        nodeport_affinity(NODEPORT_AFFINITY_ENDPOINTS, "client . protocol . NodePort : endpoint address . port"),
        nodeport_affinity(NODEPORT_LOCAL_AFFINITY_ENDPOINTS, "client . protocol . NodePort : local endpoint address . port"),
        members(AFFINITY_MEMBERS, "service IP . protocol . port . endpoint address . port, with affinity"),
        members(LOCAL_AFFINITY_MEMBERS, "service IP . protocol . port . local endpoint address . port, with affinity"),
        nodeport_members(NODEPORT_AFFINITY_MEMBERS, "protocol . NodePort . endpoint address . port, with affinity"),
        nodeport_members(NODEPORT_LOCAL_AFFINITY_MEMBERS, "protocol . NodePort . local endpoint address . port, with affinity"),
        verdict_map(AFFINITY_RECORDERS, "who records a client of this path's endpoint list"),
        verdict_map(LOCAL_AFFINITY_RECORDERS, "who records a client of this path's local endpoint list"),
        port_map(NODEPORT_AFFINITY_RECORDERS, "who records a client of this NodePort's endpoint list"),
        port_map(NODEPORT_LOCAL_AFFINITY_RECORDERS, "who records a client of this NodePort's local endpoint list"),
    ]
}

pub fn base(name: &str, ty: ChainType, hook: Hook, priority: i32) -> Chain {
    Chain { name: name.into(), base: Some(BaseChain { ty, hook, priority }) }
}

fn regular(name: &str) -> Chain {
    Chain { name: name.into(), base: None }
}

pub fn rule(chain: &str, stmts: Vec<Stmt>) -> Op {
    Op::AddRule(Rule { chain: chain.into(), stmts })
}

pub fn jump(c: &str) -> Stmt {
    Stmt::Verdict(Verdict::Jump(c.into()))
}

pub fn goto(c: &str) -> Stmt {
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

/// `dnat to meta l4proto . th dport . numgen random mod N map @nodeport-endpoint-addrs`.
pub fn dnat_nodeport_slot(n: u32, map: &str) -> Stmt {
    Stmt::DnatMap { fields: vec![Field::L4Proto, Field::Dport, Field::NumgenRandom(n)], map: map.into() }
}

/// `dnat to ip daddr . meta l4proto . th dport . numgen random mod N map @<map>`.
pub fn dnat_vip_slot(n: u32, map: &str) -> Stmt {
    Stmt::DnatMap { fields: vec![Field::Daddr, Field::L4Proto, Field::Dport, Field::NumgenRandom(n)], map: map.into() }
}

fn loopback(f: Family) -> Cidr {
    match f {
        Family::Ip => "127.0.0.0/8".parse().expect("loopback"),
        Family::Ip6 => "::1/128".parse().expect("loopback"),
    }
}

/// What selects NodePort traffic: `ip daddr @nodeport-ips`, or any local address but
/// loopback (IPVS mode's table too).
pub fn nodeport_match(family: Family, nodeports_all: bool) -> Vec<Stmt> {
    if nodeports_all {
        vec![Stmt::FibLocal { daddr: true }, Stmt::AddrIn { field: Field::Daddr, cidr: loopback(family), negate: true }]
    } else {
        vec![daddr_in(NODEPORT_IPS)]
    }
}

fn nodeport_daddr(cfg: &LayoutConfig) -> Vec<Stmt> {
    nodeport_match(cfg.family, cfg.nodeports_all)
}

fn port_in(set: &str) -> Stmt {
    Stmt::InSet { fields: vec![Field::L4Proto, Field::Dport], set: set.into() }
}

fn port_vmap(map: &str) -> Stmt {
    Stmt::Vmap { fields: vec![Field::L4Proto, Field::Dport], map: map.into() }
}

/// The rules of `cluster-ips-check`, which change with the ServiceCIDRs.
pub fn cluster_ips_check_rules(cfg: &LayoutConfig) -> Vec<Vec<Stmt>> {
    // An undefined port on a ClusterIP: TCP gets a reset at once (upstream: ICMP, which the
    // kernel rate-limits together with redirects, so repeated connects stall).
    let mut rules = vec![vec![daddr_in(CLUSTER_IPS), goto(REJECT_CHAIN)]];
    // (A /0 ServiceCIDR would drop all forwarded traffic: it is ignored.)
    for c in cfg.service_cidrs.iter().filter(|c| c.prefix > 0) {
        rules.push(vec![Stmt::AddrIn { field: Field::Daddr, cidr: *c, negate: false }, Stmt::Verdict(Verdict::Drop)]);
    }
    rules
}

/// A DNATed connection whose original path has affinity, and whose endpoint is in that
/// path's list, goes to the path's recorder. One rule per protocol and list: nft needs the
/// protocol matched before it can type `ct original proto-dst`.
fn record_affinity_rules(cfg: &LayoutConfig) -> Vec<Vec<Stmt>> {
    use Field::*;
    // A NodePort connection was addressed to a NodePort address (with every local address
    // taking NodePorts, the endpoint membership alone decides).
    let nodeport_guard = || (!cfg.nodeports_all).then(|| Stmt::InSet { fields: vec![CtOrigDaddr], set: NODEPORT_IPS.into() });
    let vip = || vec![CtOrigDaddr, L4Proto, CtOrigProtoDst];
    let port = || vec![L4Proto, CtOrigProtoDst];
    let mut rules = Vec::new();
    for proto in [IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP] {
        for (path, members, recorders) in [
            (vip(), AFFINITY_MEMBERS, AFFINITY_RECORDERS),
            (vip(), LOCAL_AFFINITY_MEMBERS, LOCAL_AFFINITY_RECORDERS),
            (port(), NODEPORT_AFFINITY_MEMBERS, NODEPORT_AFFINITY_RECORDERS),
            (port(), NODEPORT_LOCAL_AFFINITY_MEMBERS, NODEPORT_LOCAL_AFFINITY_RECORDERS),
        ] {
            let member = [path.clone(), vec![Daddr, Dport]].concat();
            let guard = if path[0] == CtOrigDaddr { None } else { nodeport_guard() };
            let mut rule = vec![Stmt::L4Proto(proto)];
            rule.extend(guard);
            rule.push(Stmt::InSet { fields: member, set: members.into() });
            rule.push(Stmt::Vmap { fields: path, map: recorders.into() });
            rules.push(rule);
        }
    }
    rules
}

/// Ops that create the fixed ruleset in an empty table.
pub fn fixed_ops(cfg: &LayoutConfig) -> Vec<Op> {
    let mark = cfg.mark();
    let mut ops = vec![Op::AddTable(Table { family: cfg.family, name: TABLE.into(), comment: Some(TABLE_COMMENT.into()) })];
    ops.extend(sets(cfg.family).into_iter().map(Op::AddSet));
    for c in [
        MARK_FOR_MASQ,
        MASQUERADING,
        SERVICES,
        FIREWALL_CHECK,
        SERVICE_ENDPOINTS_CHECK,
        NODEPORT_ENDPOINTS_CHECK,
        CLUSTER_IPS_CHECK,
        REJECT_CHAIN,
        RECORD_AFFINITY,
    ] {
        ops.push(Op::AddChain(regular(c)));
    }
    for c in [
        base("filter-prerouting-pre-dnat", ChainType::Filter, Hook::Prerouting, -110),
        base("filter-output-pre-dnat", ChainType::Filter, Hook::Output, -110),
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
    } else if let Some(d) = &cfg.detector {
        // (A /0 cluster CIDR leaves no source outside it: no rule.)
        if !matches!(d, LocalDetector::Cidr(c) if c.prefix == 0) {
            ops.push(rule(SERVICES, vec![daddr_in(CLUSTER_IPS), d.matches(true), jump(MARK_FOR_MASQ)]));
        }
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
    // NodePorts after every Service IP, so an IP:port a Service has wins over a NodePort.
    let np = nodeport_daddr(cfg);
    ops.push(rule(SERVICES, [np.clone(), vec![port_in(MASQUERADE_NODEPORTS), jump(MARK_FOR_MASQ)]].concat()));
    ops.push(rule(SERVICES, [np.clone(), vec![port_vmap(SERVICE_NODEPORTS)]].concat()));
    ops.push(rule(FIREWALL_CHECK, vec![vip_vmap(FIREWALL_IPS)]));
    ops.push(rule(SERVICE_ENDPOINTS_CHECK, vec![vip_vmap(NO_ENDPOINT_SERVICES)]));
    ops.push(rule(NODEPORT_ENDPOINTS_CHECK, [np, vec![port_vmap(NO_ENDPOINT_NODEPORTS)]].concat()));
    for r in cluster_ips_check_rules(cfg) {
        ops.push(rule(CLUSTER_IPS_CHECK, r));
    }
    ops.push(rule(REJECT_CHAIN, vec![Stmt::L4Proto(6), Stmt::RejectTcpReset]));
    ops.push(rule(REJECT_CHAIN, vec![Stmt::Reject]));
    // Source ranges are checked before DNAT, on new connections only.
    for c in ["filter-prerouting-pre-dnat", "filter-output-pre-dnat"] {
        ops.push(rule(c, vec![Stmt::CtStateNew, jump(FIREWALL_CHECK)]));
    }
    // NodePorts without endpoints: only on input, where traffic to the node's own IPs arrives.
    ops.push(rule("filter-input", vec![Stmt::CtStateNew, jump(NODEPORT_ENDPOINTS_CHECK)]));
    // Upstream checks undefined ClusterIP ports on forward and output only. kproxy also checks
    // input: where a node routes the Service range to itself, a ClusterIP port no Service has
    // would otherwise reach whatever listens on the node (its sshd, say).
    for c in ["filter-input", "filter-forward", "filter-output"] {
        ops.push(rule(c, vec![Stmt::CtStateNew, jump(SERVICE_ENDPOINTS_CHECK)]));
        ops.push(rule(c, vec![Stmt::CtStateNew, jump(CLUSTER_IPS_CHECK)]));
    }
    // Affinity: a new connection that was DNATed is recorded by the recorder of its
    // original destination and the endpoint it reached (docs/design.md).
    for c in ["filter-input", "filter-forward", "filter-output"] {
        ops.push(rule(c, vec![Stmt::CtStateNew, Stmt::CtStatusDnat, jump(RECORD_AFFINITY)]));
    }
    for r in record_affinity_rules(cfg) {
        ops.push(rule(RECORD_AFFINITY, r));
    }
    ops.push(rule("nat-prerouting", vec![jump(SERVICES)]));
    ops.push(rule("nat-output", vec![jump(SERVICES)]));
    ops.push(rule("nat-postrouting", vec![jump(MASQUERADING)]));
    ops
}
