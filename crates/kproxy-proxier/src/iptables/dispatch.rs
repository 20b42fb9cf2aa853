//! Beyond upstream: nat KUBE-SERVICES as a shallow tree of chains by destination prefix.
//! Upstream's KUBE-SERVICES is one list that a new connection walks to its Service (about
//! 24 ns a rule); here each level matches 4 more address bits, so a connection walks at most
//! FANOUT rules a level and LEAF_MAX at the end. Every capture rule matches one destination
//! address, so a packet can only match rules inside its own prefix, and the rules of one
//! address keep their order: the tree matches exactly what the flat list matches.

use std::net::IpAddr;

use kproxy_nftables::Cidr;

use super::names::dispatch_chain;
use super::restore::{Chain, Match, Rule, Target};

const STEP_BITS: u32 = 4;
/// A prefix with at most this many rules keeps them in one chain.
const LEAF_MAX: usize = 16;

fn width(ip: &IpAddr) -> u32 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

fn bits(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(*a) as u128,
        IpAddr::V6(a) => u128::from(*a),
    }
}

fn prefix_of(ip: &IpAddr, len: u32) -> Cidr {
    let w = width(ip);
    let mask = if len == 0 { 0 } else { (u128::MAX >> (128 - w)) & !((1u128 << (w - len)) - 1) };
    let b = bits(ip) & mask;
    let addr = match ip {
        IpAddr::V4(_) => IpAddr::V4((b as u32).into()),
        IpAddr::V6(_) => IpAddr::V6(b.into()),
    };
    Cidr { addr, prefix: len as u8 }
}

/// The one destination address a capture rule matches.
fn destination(r: &Rule) -> Option<IpAddr> {
    r.matches.iter().find_map(|m| match m {
        Match::Destination { cidr, negated: false } if cidr.prefix as u32 == width(&cidr.addr) => Some(cidr.addr),
        _ => None,
    })
}

/// Splits `rules` into the rules KUBE-SERVICES keeps and the dispatch chains below it, once
/// there are more than `above`; fewer stay one flat list, as upstream's. So does a list with
/// a rule that matches more than one destination: moving it could change what matches first.
pub fn dispatch(rules: Vec<Rule>, above: usize) -> (Vec<Rule>, Vec<Chain>) {
    if rules.len() <= above || rules.iter().any(|r| destination(r).is_none()) {
        return (rules, Vec::new());
    }
    let mut keyed: Vec<(IpAddr, Rule)> = rules.into_iter().map(|r| (destination(&r).expect("checked above"), r)).collect();
    // Stable: the rules of one address keep their order.
    keyed.sort_by_key(|(ip, _)| (ip.is_ipv6(), bits(ip)));
    let mut chains = Vec::new();
    let mut top = Vec::new();
    // Each family is its own subtree (a chain holds one family's rules anyway).
    let split = keyed.iter().position(|(ip, _)| ip.is_ipv6()).unwrap_or(keyed.len());
    let v6 = keyed.split_off(split);
    for group in [keyed, v6] {
        if !group.is_empty() {
            top.extend(node(group, &mut chains));
        }
    }
    (top, chains)
}

/// The rules that stand for `group` in its parent chain: the rules themselves when few, or
/// one jump per 4-bit step below the group's common prefix.
fn node(group: Vec<(IpAddr, Rule)>, chains: &mut Vec<Chain>) -> Vec<Rule> {
    let (first, last) = (group[0].0, group[group.len() - 1].0);
    let w = width(&first);
    let common = ((bits(&first) ^ bits(&last)) << (128 - w)).leading_zeros().min(w);
    if group.len() <= LEAF_MAX || common == w {
        return group.into_iter().map(|(_, r)| r).collect();
    }
    let len = (common + STEP_BITS).min(w);
    let mut out = Vec::new();
    let mut rest = group.into_iter().peekable();
    while let Some((ip, r)) = rest.next() {
        let prefix = prefix_of(&ip, len);
        let mut sub = vec![(ip, r)];
        while rest.peek().is_some_and(|(next, _)| prefix.contains(next)) {
            sub.push(rest.next().unwrap());
        }
        if sub.len() == 1 {
            out.push(sub.pop().unwrap().1);
            continue;
        }
        let name = dispatch_chain(&prefix);
        let rules = node(sub, chains);
        chains.push(Chain { name: name.clone(), rules });
        let matches = vec![Match::Destination { cidr: prefix, negated: false }, Match::Comment(format!("kproxy dispatch {prefix}"))];
        out.push(Rule { matches, target: Target::Jump(name) });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(ip: &str, port: u16) -> Rule {
        let ip: IpAddr = ip.parse().unwrap();
        Rule {
            matches: vec![
                Match::Destination { cidr: Cidr { addr: ip, prefix: if ip.is_ipv4() { 32 } else { 128 } }, negated: false },
                Match::Protocol(6),
                Match::ProtocolModule(6, Some(port)),
            ],
            target: Target::Jump(format!("KUBE-SVC-{ip}-{port}")),
        }
    }

    /// What a packet to `ip`:`port` meets: the Service chains it jumps to, in order, as if
    /// every one of them returned (a KUBE-FW- chain or an eTP Local KUBE-EXT- chain can), and
    /// the rules walked until the first of them.
    fn walk(top: &[Rule], chains: &[Chain], ip: IpAddr, port: u16) -> (Vec<String>, usize) {
        let (mut hits, mut walked, mut first) = (Vec::new(), 0, None);
        visit(top, chains, ip, port, &mut hits, &mut walked, &mut first);
        (hits, first.unwrap_or(walked))
    }

    fn visit(
        rules: &[Rule],
        chains: &[Chain],
        ip: IpAddr,
        port: u16,
        hits: &mut Vec<String>,
        walked: &mut usize,
        first: &mut Option<usize>,
    ) {
        for r in rules {
            *walked += 1;
            let matched = r.matches.iter().all(|m| match m {
                Match::Destination { cidr, negated } => cidr.contains(&ip) != *negated,
                Match::ProtocolModule(_, Some(p)) => *p == port,
                _ => true,
            });
            let Target::Jump(c) = &r.target else { continue };
            if !matched {
                continue;
            }
            match chains.iter().find(|ch| &ch.name == c) {
                Some(chain) => visit(&chain.rules, chains, ip, port, hits, walked, first),
                None => {
                    first.get_or_insert(*walked);
                    hits.push(c.clone());
                }
            }
        }
    }

    #[test]
    fn few_rules_stay_one_flat_list() {
        let rules: Vec<Rule> = (0..10).map(|i| capture(&format!("10.96.0.{i}"), 80)).collect();
        let (top, chains) = dispatch(rules.clone(), 128);
        assert_eq!(top, rules);
        assert!(chains.is_empty());
    }

    #[test]
    fn every_packet_meets_what_the_flat_list_gives_it_in_order_and_walks_few_rules() {
        // 50k ClusterIPs spread over a /12, two ports on some, a second chain for the same
        // address and port on others (met in order if the first returns), a few IPv6 and odd ones.
        let mut rules = Vec::new();
        let mut targets = Vec::new();
        let mut x: u32 = 12345;
        for i in 0..50_000u32 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let ip = IpAddr::V4((0x0a60_0000 | (x >> 12) & 0x000f_ffff).into());
            let port = if i % 7 == 0 { 443 } else { 80 };
            rules.push(capture(&ip.to_string(), port));
            if i % 11 == 0 {
                let mut second = capture(&ip.to_string(), port);
                second.target = Target::Jump(format!("KUBE-EXT-{ip}-{port}"));
                rules.push(second);
            }
            targets.push((ip, port));
        }
        for (ip, port) in [("fd00::1", 80), ("fd00::2", 80), ("203.0.113.9", 53)] {
            rules.push(capture(ip, port));
            targets.push((ip.parse().unwrap(), port));
        }
        let (top, chains) = dispatch(rules.clone(), 128);
        let mut worst = 0;
        for (ip, port) in targets.iter().step_by(977).chain(targets.iter().rev().take(3)).chain(targets.iter().step_by(11).take(5)) {
            let (flat, _) = walk(&rules, &[], *ip, *port);
            let (tree, walked) = walk(&top, &chains, *ip, *port);
            assert!(!flat.is_empty());
            assert_eq!(tree, flat, "{ip}:{port}");
            worst = worst.max(walked);
        }
        // Four 4-bit levels under the /12 and a leaf: far from 50k.
        assert!(worst < 100, "walked {worst} rules");
        // A miss falls through the tree, as it falls through the flat list.
        assert!(walk(&top, &chains, "10.96.0.0".parse().unwrap(), 9).0.is_empty());
        let mut names: Vec<&str> = chains.iter().map(|c| c.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), chains.len(), "dispatch chain names are unique");
        assert!(chains.iter().all(|c| c.name.len() <= 28), "iptables chain names are 28 characters at most");
    }

    #[test]
    fn a_rule_for_more_than_one_address_keeps_the_list_flat() {
        let mut rules: Vec<Rule> = (0..200).map(|i| capture(&format!("10.96.{}.{}", i / 200, i % 200), 80)).collect();
        rules.insert(
            100,
            Rule {
                matches: vec![Match::Destination { cidr: "10.96.0.0/16".parse().unwrap(), negated: false }],
                target: Target::Jump("KUBE-X".into()),
            },
        );
        let (top, chains) = dispatch(rules.clone(), 128);
        assert_eq!(top, rules);
        assert!(chains.is_empty());
    }

    #[test]
    fn one_address_with_many_ports_stays_in_order() {
        let rules: Vec<Rule> = (0..40)
            .map(|p| capture("10.96.0.1", 1000 + p))
            .chain((0..200).map(|i| capture(&format!("10.97.{}.{}", i / 200, i % 200), 80)))
            .collect();
        let (top, chains) = dispatch(rules, 128);
        let leaf = chains.iter().find(|c| c.rules.iter().any(|r| r.target == Target::Jump("KUBE-SVC-10.96.0.1-1000".into()))).unwrap();
        let ports: Vec<String> = leaf.rules.iter().map(|r| format!("{:?}", r.target)).collect();
        assert_eq!(ports.len(), 40);
        assert!(ports.windows(2).all(|w| w[0] < w[1]));
        assert!(top.len() <= 16);
    }
}
