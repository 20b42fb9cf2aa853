//! The iptables ruleset as data, rendered as `iptables-restore` input in the order and spelling
//! `iptables-save` prints, so that a ruleset read back from the kernel compares equal to its
//! render. Every value reaches the text through a typed field (addresses, ports, chain names
//! built by names.rs, comments from validated keys): nothing can add a line or an option.

use std::fmt::Write;
use std::net::IpAddr;

use kproxy_nftables::Cidr;

use super::names::protocol_name;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TableName {
    Mangle,
    Filter,
    Nat,
}

impl TableName {
    pub fn as_str(self) -> &'static str {
        match self {
            TableName::Mangle => "mangle",
            TableName::Filter => "filter",
            TableName::Nat => "nat",
        }
    }

    /// The built-in chains, in iptables-save's order.
    pub fn builtins(self) -> &'static [&'static str] {
        match self {
            TableName::Mangle => &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
            TableName::Filter => &["INPUT", "FORWARD", "OUTPUT"],
            TableName::Nat => &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
        }
    }
}

/// One match of a rule. The builder lists them in iptables-save's order: the built-in
/// matches (source, destination, input interface, protocol) first, then modules.
#[derive(Debug, Clone, PartialEq)]
pub enum Match {
    Source {
        cidr: Cidr,
        negated: bool,
    },
    Destination {
        cidr: Cidr,
        negated: bool,
    },
    /// `-i name`, or `-i prefix+` for a prefix.
    InInterface {
        name: String,
        prefix: bool,
        negated: bool,
    },
    Protocol(u8),
    Comment(String),
    /// `-m <proto>` alone (iptables-save prints it after `-p`), or with `--dport N`.
    ProtocolModule(u8, Option<u16>),
    /// `-m addrtype --dst-type LOCAL`.
    DestinationLocal,
    /// `-m addrtype --src-type LOCAL`.
    SourceLocal,
    /// `-m recent --rcheck --seconds N --reap --name NAME` (affinity: seen within N s).
    RecentCheck {
        name: String,
        seconds: u32,
    },
    /// `-m recent --set --name NAME` (affinity: remember this source).
    RecentSet {
        name: String,
    },
    /// `-m mark [!] --mark M/M`.
    Mark {
        mark: u32,
        negated: bool,
    },
    /// `-m statistic --mode random --probability P`.
    Probability(f64),
    /// `-m conntrack [!] --ctstate STATES` (e.g. "INVALID", "RELATED,ESTABLISHED").
    CtState {
        states: &'static str,
        negated: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// No target: the rule only counts (upstream's last KUBE-FW rule says what happens next).
    None,
    Jump(String),
    Return,
    Accept,
    Drop,
    /// `-j REJECT --reject-with icmp-port-unreachable` (icmp6-port-unreachable for IPv6).
    Reject,
    /// `-j MARK --set-xmark M/M` (iptables-save's spelling of --or-mark M).
    OrMark(u32),
    /// `-j MARK --set-xmark M/0` (iptables-save's spelling of --xor-mark M).
    XorMark(u32),
    Masquerade {
        random_fully: bool,
    },
    Dnat(IpAddr, u16),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub matches: Vec<Match>,
    pub target: Target,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    pub name: String,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub chains: Vec<Chain>,
}

const NOT: [&str; 2] = ["", "! "];

/// The probability as the kernel keeps it (a 31-bit fraction, as libxt_statistic rounds it),
/// printed with iptables-save's 11 decimals: valid restore input that reads back the same.
fn probability_text(p: f64) -> String {
    let q = (p * 2f64.powi(31)).round();
    format!("{:.11}", q / 2f64.powi(31))
}

fn render_match(out: &mut String, m: &Match, v6: bool) {
    // The recent match keeps whole source addresses.
    let mask = if v6 { "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" } else { "255.255.255.255" };
    match m {
        Match::Source { cidr, negated } => write!(out, " {}-s {cidr}", NOT[*negated as usize]).unwrap(),
        Match::Destination { cidr, negated } => write!(out, " {}-d {cidr}", NOT[*negated as usize]).unwrap(),
        Match::InInterface { name, prefix, negated } => {
            write!(out, " {}-i {name}{}", NOT[*negated as usize], if *prefix { "+" } else { "" }).unwrap()
        }
        Match::Protocol(p) => write!(out, " -p {}", protocol_name(*p)).unwrap(),
        // iptables-save quotes every comment; validated names hold no quote or newline.
        Match::Comment(c) => write!(out, " -m comment --comment \"{c}\"").unwrap(),
        Match::ProtocolModule(p, None) => write!(out, " -m {}", protocol_name(*p)).unwrap(),
        Match::ProtocolModule(p, Some(port)) => write!(out, " -m {} --dport {port}", protocol_name(*p)).unwrap(),
        Match::DestinationLocal => out.push_str(" -m addrtype --dst-type LOCAL"),
        Match::SourceLocal => out.push_str(" -m addrtype --src-type LOCAL"),
        Match::RecentCheck { name, seconds } => {
            write!(out, " -m recent --rcheck --seconds {seconds} --reap --name {name} --mask {mask} --rsource").unwrap()
        }
        Match::RecentSet { name } => write!(out, " -m recent --set --name {name} --mask {mask} --rsource").unwrap(),
        Match::Mark { mark, negated } => write!(out, " -m mark {}--mark {mark:#x}/{mark:#x}", NOT[*negated as usize]).unwrap(),
        Match::Probability(p) => write!(out, " -m statistic --mode random --probability {}", probability_text(*p)).unwrap(),
        Match::CtState { states, negated } => write!(out, " -m conntrack {}--ctstate {states}", NOT[*negated as usize]).unwrap(),
    }
}

fn render_target(out: &mut String, t: &Target, v6: bool) {
    match t {
        Target::None => {}
        Target::Jump(c) => write!(out, " -j {c}").unwrap(),
        Target::Return => out.push_str(" -j RETURN"),
        Target::Accept => out.push_str(" -j ACCEPT"),
        Target::Drop => out.push_str(" -j DROP"),
        Target::Reject => {
            write!(out, " -j REJECT --reject-with {}", if v6 { "icmp6-port-unreachable" } else { "icmp-port-unreachable" }).unwrap()
        }
        Target::OrMark(m) => write!(out, " -j MARK --set-xmark {m:#x}/{m:#x}").unwrap(),
        Target::XorMark(m) => write!(out, " -j MARK --set-xmark {m:#x}/0x0").unwrap(),
        Target::Masquerade { random_fully } => out.push_str(if *random_fully { " -j MASQUERADE --random-fully" } else { " -j MASQUERADE" }),
        Target::Dnat(ip, port) => match ip {
            IpAddr::V4(a) => write!(out, " -j DNAT --to-destination {a}:{port}").unwrap(),
            IpAddr::V6(a) => write!(out, " -j DNAT --to-destination [{a}]:{port}").unwrap(),
        },
    }
}

/// `-A CHAIN ...` for one rule.
pub fn render_rule(chain: &str, r: &Rule, v6: bool) -> String {
    let mut out = format!("-A {chain}");
    for m in &r.matches {
        render_match(&mut out, m, v6);
    }
    render_target(&mut out, &r.target, v6);
    out
}

/// One rule's arguments after the chain, as `iptables -I CHAIN <args>` takes them (the
/// comment one argument, unquoted).
pub fn rule_args(r: &Rule, v6: bool) -> Vec<String> {
    let text = render_rule("X", r, v6);
    let mut out = Vec::new();
    let mut rest = text.strip_prefix("-A X").unwrap_or(&text).trim_start();
    while !rest.is_empty() {
        // Comments are the only quoted arguments, and hold no quote (validated names).
        let (tok, after) = if let Some(q) = rest.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            (&q[..end], q.get(end + 1..).unwrap_or(""))
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        out.push(tok.to_string());
        rest = after.trim_start();
    }
    out
}

/// Every chain of `tables` written, and the `stale` ones deleted.
pub fn render_restore(tables: &[(TableName, Table)], stale: &[(TableName, Vec<String>)], v6: bool) -> String {
    let mut w = super::writer::RestoreWriter::new(v6);
    for (name, table) in tables {
        for c in &table.chains {
            w.write(*name, c);
        }
    }
    for (name, gone) in stale {
        for c in gone {
            w.delete(*name, c);
        }
    }
    w.finish()
}

/// What `iptables-save` prints on a node where only these rules exist: the built-in chains
/// (policy ACCEPT) with `jumps` in them, then the owned chains. Tests compare it with the
/// kernel's own dump, and with upstream's.
pub fn render_save(tables: &[(TableName, Table)], jumps: &[(TableName, &str, Rule)], v6: bool) -> String {
    let mut out = String::new();
    for (name, table) in tables {
        writeln!(out, "*{}", name.as_str()).unwrap();
        for b in name.builtins() {
            writeln!(out, ":{b} ACCEPT [0:0]").unwrap();
        }
        for c in &table.chains {
            writeln!(out, ":{} - [0:0]", c.name).unwrap();
        }
        for b in name.builtins() {
            for (_, _, r) in jumps.iter().filter(|(t, c, _)| t == name && c == b) {
                writeln!(out, "{}", render_rule(b, r, v6)).unwrap();
            }
        }
        for c in &table.chains {
            for r in &c.rules {
                writeln!(out, "{}", render_rule(&c.name, r, v6)).unwrap();
            }
        }
        out.push_str("COMMIT\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_print_as_iptables_save_prints_them() {
        let cidr = |s: &str| s.parse::<Cidr>().unwrap();
        let r = Rule {
            matches: vec![
                Match::Destination { cidr: cidr("10.96.0.1/32"), negated: false },
                Match::Protocol(6),
                Match::Comment("default/kubernetes:https cluster IP".into()),
                Match::ProtocolModule(6, Some(443)),
            ],
            target: Target::Jump("KUBE-SVC-NPX46M4PTMTKRN6Y".into()),
        };
        assert_eq!(
            render_rule("KUBE-SERVICES", &r, false),
            "-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment \"default/kubernetes:https cluster IP\" -m tcp --dport 443 -j KUBE-SVC-NPX46M4PTMTKRN6Y"
        );
        let lb = Rule {
            matches: vec![Match::Comment("ns/svc:p".into()), Match::Probability(1.0 / 3.0)],
            target: Target::Jump("KUBE-SEP-X".into()),
        };
        // 1/3 as the kernel holds it: round(2^31/3) / 2^31.
        assert_eq!(
            render_rule("C", &lb, false),
            "-A C -m comment --comment \"ns/svc:p\" -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-X"
        );
        assert_eq!(probability_text(0.5), "0.50000000000");
        let rej = Rule { matches: vec![], target: Target::Reject };
        assert_eq!(render_rule("C", &rej, true), "-A C -j REJECT --reject-with icmp6-port-unreachable");
        let dnat = Rule {
            matches: vec![Match::Protocol(6), Match::ProtocolModule(6, None)],
            target: Target::Dnat("fd00::1".parse().unwrap(), 80),
        };
        assert_eq!(render_rule("C", &dnat, true), "-A C -p tcp -m tcp -j DNAT --to-destination [fd00::1]:80");
        let masq = Rule {
            matches: vec![
                Match::Source { cidr: cidr("10.244.0.0/16"), negated: true },
                Match::InInterface { name: "veth".into(), prefix: true, negated: false },
            ],
            target: Target::Jump("KUBE-MARK-MASQ".into()),
        };
        assert_eq!(render_rule("C", &masq, false), "-A C ! -s 10.244.0.0/16 -i veth+ -j KUBE-MARK-MASQ");
        assert_eq!(
            render_rule("C", &Rule { matches: vec![Match::Mark { mark: 0x4000, negated: true }], target: Target::Return }, false),
            "-A C -m mark ! --mark 0x4000/0x4000 -j RETURN"
        );
    }
}
