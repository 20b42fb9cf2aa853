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
/// there are more than `above`; fewer stay one flat list, as upstream's. Rules without a
/// single destination stay at the top, after the tree.
pub fn dispatch(rules: Vec<Rule>, above: usize) -> (Vec<Rule>, Vec<Chain>) {
    if rules.len() <= above {
        return (rules, Vec::new());
    }
    let (mut keyed, mut rest): (Vec<(IpAddr, Rule)>, Vec<Rule>) = (Vec::new(), Vec::new());
    for r in rules {
        match destination(&r) {
            Some(ip) => keyed.push((ip, r)),
            None => rest.push(r),
        }
    }
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
    top.extend(rest);
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
        out.push(Rule { matches: vec![Match::Destination { cidr: prefix, negated: false }], target: Target::Jump(name) });
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

    /// The rules a packet to `ip` walks, in order, and the capture rule it lands on.
    fn walk(top: &[Rule], chains: &[Chain], ip: IpAddr, port: u16) -> (usize, Option<String>) {
        let mut walked = 0;
        for r in top {
            walked += 1;
            let dst_ok = r.matches.iter().all(|m| match m {
                Match::Destination { cidr, .. } => cidr.contains(&ip),
                Match::ProtocolModule(_, Some(p)) => *p == port,
                _ => true,
            });
            if !dst_ok {
                continue;
            }
            match &r.target {
                Target::Jump(c) if c.starts_with("KUBE-SVCS-") => {
                    let chain = chains.iter().find(|ch| &ch.name == c).unwrap();
                    let (n, hit) = walk(&chain.rules, chains, ip, port);
                    walked += n;
                    if hit.is_some() {
                        return (walked, hit);
                    }
                }
                Target::Jump(c) => return (walked, Some(c.clone())),
                _ => {}
            }
        }
        (walked, None)
    }

    #[test]
    fn few_rules_stay_one_flat_list() {
        let rules: Vec<Rule> = (0..10).map(|i| capture(&format!("10.96.0.{i}"), 80)).collect();
        let (top, chains) = dispatch(rules.clone(), 128);
        assert_eq!(top, rules);
        assert!(chains.is_empty());
    }

    #[test]
    fn every_packet_lands_where_the_flat_list_sends_it_and_walks_few_rules() {
        // 50k ClusterIPs spread over a /12, two ports on some, and a few IPv6 and odd addresses.
        let mut rules = Vec::new();
        let mut targets = Vec::new();
        let mut x: u32 = 12345;
        for i in 0..50_000u32 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let ip = IpAddr::V4((0x0a60_0000 | (x >> 12) & 0x000f_ffff).into());
            let port = if i % 7 == 0 { 443 } else { 80 };
            rules.push(capture(&ip.to_string(), port));
            targets.push((ip, port));
        }
        for (ip, port) in [("fd00::1", 80), ("fd00::2", 80), ("203.0.113.9", 53)] {
            rules.push(capture(ip, port));
            targets.push((ip.parse().unwrap(), port));
        }
        let (top, chains) = dispatch(rules.clone(), 128);
        let mut worst = 0;
        for (ip, port) in targets.iter().step_by(97).chain(targets.iter().rev().take(3)) {
            // The flat list's first match for (ip, port): every rule for it has this target.
            let flat = Some(format!("KUBE-SVC-{ip}-{port}"));
            let (walked, tree) = walk(&top, &chains, *ip, *port);
            assert_eq!(tree, flat, "{ip}:{port}");
            worst = worst.max(walked);
        }
        // Four 4-bit levels under the /12 and a leaf: far from 50k.
        assert!(worst < 100, "walked {worst} rules");
        // A miss falls through the tree, as it falls through the flat list.
        assert_eq!(walk(&top, &chains, "10.96.0.0".parse().unwrap(), 9).1, None);
        let mut names: Vec<&str> = chains.iter().map(|c| c.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), chains.len(), "dispatch chain names are unique");
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
