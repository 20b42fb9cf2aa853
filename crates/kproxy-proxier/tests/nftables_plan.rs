//! The rule model against the fake dataplane: golden text, and partial syncs
//! that must always land on exactly what a full sync would build.

mod common;

use common::Model;
use common::{cfg, golden_model, spec, with_external};
use kproxy_nftables::{Fake, Family};
use kproxy_proxier::nftables::LocalDetector;
use kproxy_proxier::ServicePortRecord as ServicePortSpec;

#[test]
fn golden_ipv4_ruleset() {
    let m = golden_model(Family::Ip);
    let text = m.render_text();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/ipv4.nft"), &text).unwrap();
    }
    let golden = include_str!("golden/ipv4.nft");
    assert_eq!(text, golden, "rendered ruleset differs from tests/golden/ipv4.nft:\n{text}");
}

#[test]
fn golden_ipv6_ruleset() {
    let m = golden_model(Family::Ip6);
    let text = m.render_text();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/ipv6.nft"), &text).unwrap();
    }
    assert_eq!(text, include_str!("golden/ipv6.nft"), "rendered ruleset differs from tests/golden/ipv6.nft:\n{text}");
}

#[test]
fn invalid_specs_are_rejected_with_reasons() {
    let mut m = Model::new(cfg(Family::Ip));
    let cases = [
        (spec("a", "b", "p", "TCP", "10.96.0.300", 80, &[]), "bad clusterIP"),
        (spec("a", "b", "p", "ICMP", "10.96.0.1", 80, &[]), "unknown protocol"),
        (spec("a", "b", "p", "TCP", "10.96.0.1", 70000, &[]), "out of range"),
        (spec("a", "b", "p", "TCP", "fd00::1", 80, &[]), "is not ip"),
        (spec("a", "b", "p", "TCP", "10.96.0.1", 80, &[("fd00::5", 80)]), "is not ip"),
        (spec("a", "b", "p", "TCP", "10.96.0.1", 80, &[("10.0.0.1", 0)]), "out of range"),
        // Names reach rule comments: nothing that could end one or start a new line.
        (spec("a\"", "b", "p", "TCP", "10.96.0.1", 80, &[]), "invalid"),
        (spec("a", "b\n-A X", "p", "TCP", "10.96.0.1", 80, &[]), "invalid"),
        (spec("a", "b", "p q", "TCP", "10.96.0.1", 80, &[]), "invalid"),
    ];
    for (s, want) in cases {
        let r = m.update(&[s], &[]);
        assert_eq!(r.len(), 1);
        assert!(r[0].reason.contains(want), "{} !~ {want}", r[0].reason);
    }
    assert_eq!(m.desired.len(), 0);
}

/// A small deterministic generator, so failures reproduce.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn random_spec(r: &mut Lcg, family: Family, svc: u64) -> ServicePortSpec<'static> {
    let n = r.next(7) as usize;
    let eps: Vec<(String, u32)> = (0..n)
        .map(|_| {
            let host = r.next(12) + 1;
            let ip = if family == Family::Ip { format!("10.244.0.{host}") } else { format!("fd00:244::{host:x}") };
            (ip, 8000 + r.next(3) as u32)
        })
        .collect();
    let cip = if family == Family::Ip { format!("10.96.0.{}", svc % 5 + 1) } else { format!("fd00:96::{:x}", svc % 5 + 1) };
    let proto = ["TCP", "UDP", "SCTP"][(svc % 3) as usize];
    let eps: Vec<(&str, u32)> = eps.iter().map(|(i, p)| (i.as_str(), *p)).collect();
    let mut s = spec("ns", &format!("svc{svc}"), "p", proto, &cip, 80 + svc as u32, &eps);
    // Sometimes internalTrafficPolicy Local, with some endpoints on this node.
    s.internal_policy_local = r.next(4) == 0;
    for e in s.endpoints.iter_mut() {
        e.flags.is_local = r.next(2) == 0;
        e.flags.local = e.flags.is_local;
    }
    // Sometimes a NodePort (some shared: one owner), affinity, an external policy Local,
    // a LoadBalancer IP with source ranges.
    if r.next(3) == 0 {
        s.node_port = 30000 + r.next(8) as u32;
    }
    if r.next(4) == 0 {
        s.session_affinity = "ClientIP".into();
        s.sticky_max_age_seconds = 1 + r.next(3) as u32;
    }
    s.external_policy_local = r.next(3) == 0;
    if r.next(4) == 0 {
        let lb = if family == Family::Ip { format!("198.51.100.{}", r.next(3) + 1) } else { format!("2001:db8:1::{:x}", r.next(3) + 1) };
        let range = if family == Family::Ip { "203.0.113.0/24" } else { "2001:db8:2::/48" };
        s.load_balancer_vips = vec![lb.into()];
        s.load_balancer_source_ranges = if r.next(2) == 0 { vec![range.into()] } else { vec![] };
    }
    // Sometimes an external IP, shared by several Services (their ports differ).
    let ext = if family == Family::Ip { format!("192.0.2.{}", r.next(3) + 1) } else { format!("2001:db8::{:x}", r.next(3) + 1) };
    if r.next(3) == 0 {
        with_external(s, &[ext.as_str()])
    } else {
        s
    }
}

/// Partial syncs keep endpoints in their slots, so slot numbers depend on
/// history. Checks each ServicePort's slots are exactly 0..N-1, then
/// renumbers them in value order so dumps compare by content.
fn normalize_slots(dump: &str) -> String {
    let mut groups: std::collections::BTreeMap<String, Vec<(u32, String)>> = Default::default();
    let mut out = Vec::new();
    for l in dump.lines() {
        let slot_map =
            ["endpoint-addrs", "local-endpoint-addrs", "nodeport-endpoint-addrs", "nodeport-local-endpoint-addrs"].iter().find_map(|m| {
                l.strip_prefix(&format!("add element ip kube-proxy {m} {{ "))
                    .or_else(|| l.strip_prefix(&format!("add element ip6 kube-proxy {m} {{ ")))
                    .map(|r| (m, r))
            });
        if let Some((map, rest)) = slot_map {
            let (k, v) = rest.trim_end_matches(" }").split_once(" : ").unwrap();
            let (vip, slot) = k.rsplit_once(" . ").unwrap();
            groups.entry(format!("{map} {vip}")).or_default().push((slot.parse().unwrap(), v.to_string()));
        } else {
            out.push(l.to_string());
        }
    }
    for (vip, mut slots) in groups {
        slots.sort();
        assert!(slots.iter().enumerate().all(|(i, (s, _))| *s == i as u32), "slots of {vip} are not 0..N-1: {slots:?}");
        let mut vals: Vec<String> = slots.into_iter().map(|(_, v)| v).collect();
        vals.sort();
        out.push(format!("slots {vip}: {}", vals.join(", ")));
    }
    out.join("\n")
}

/// Partial syncs never remove the shared chains, and delete a ServicePort's own chains a
/// sync later (flushed meanwhile); drop the chains that `reference` does not have.
fn without_unused_mod_chains(dump: &str, reference: &str) -> String {
    let chain_of = |l: &str| l.split(' ').nth(4).unwrap_or("").to_string();
    let known: std::collections::BTreeSet<String> = reference.lines().filter(|l| l.starts_with("add chain")).map(chain_of).collect();
    dump.lines()
        .filter(|l| !((l.starts_with("add chain") || l.starts_with("add rule")) && !known.contains(&chain_of(l))))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn partial_syncs_converge_to_the_full_render() {
    for family in [Family::Ip, Family::Ip6] {
        let mut r = Lcg(42);
        let mut m = Model::new(cfg(family));
        let mut fake = Fake::new();
        for step in 0..300 {
            let mut upserts = Vec::new();
            let mut deletes = Vec::new();
            for _ in 0..=r.next(3) {
                let svc = r.next(12);
                if r.next(4) == 0 {
                    deletes.push(random_spec(&mut r, family, svc).key.to_string());
                } else {
                    upserts.push(random_spec(&mut r, family, svc));
                }
            }
            m.update(&upserts, &deletes);
            let (tx, full) = m.plan(false);
            assert_eq!(full, step == 0, "only the first sync is full");
            fake.apply(&tx).unwrap_or_else(|e| panic!("step {step}: {e:?}\n{}", kproxy_nftables::text::render_tx(&tx)));
            {
                let want = m.render_text();
                assert_eq!(
                    normalize_slots(&without_unused_mod_chains(&fake.dump(family, "kube-proxy"), &want)),
                    normalize_slots(&without_unused_mod_chains(&want, &want)),
                    "diverged at step {step}"
                );
            }
        }
    }
}

#[test]
fn a_service_address_has_one_owner() {
    let mut m = Model::new(cfg(Family::Ip));
    let a = spec("a", "a", "p", "TCP", "10.96.0.1", 80, &[("10.244.0.1", 80)]);
    let b = spec("b", "b", "p", "TCP", "10.96.0.1", 80, &[("10.244.0.2", 80)]);
    assert!(m.update(std::slice::from_ref(&a), &[]).is_empty());
    let r = m.update(std::slice::from_ref(&b), &[]);
    assert_eq!(r.len(), 1);
    assert!(r[0].reason.contains("already used by a/a/tcp/p"), "{}", r[0].reason);
    // Another protocol or port on the same IP is fine; once a is gone, b may take the address.
    assert!(m.update(&[spec("c", "c", "p", "UDP", "10.96.0.1", 80, &[])], &[]).is_empty());
    assert!(m.update(&[b], &[a.key.to_string()]).is_empty());
    let mut fake = Fake::new();
    fake.apply(&m.plan(false).0).unwrap();
    assert!(fake.dump(Family::Ip, "kube-proxy").contains("10.96.0.1 . tcp . 80 . 0 : 10.244.0.2 . 80"));
}

#[test]
fn two_service_ports_may_swap_addresses_in_one_sync_in_any_order() {
    for swapped_first in [false, true] {
        let mut m = Model::new(cfg(Family::Ip));
        let a80 = spec("ns", "a", "p", "TCP", "10.96.0.1", 80, &[("10.244.0.1", 8080)]);
        let b81 = spec("ns", "b", "p", "TCP", "10.96.0.1", 81, &[("10.244.0.2", 8080)]);
        assert!(m.update(&[a80, b81], &[]).is_empty());
        let mut fake = Fake::new();
        fake.apply(&m.plan(false).0).unwrap();
        let a81 = spec("ns", "a", "p", "TCP", "10.96.0.1", 81, &[("10.244.0.1", 8080)]);
        let b80 = spec("ns", "b", "p", "TCP", "10.96.0.1", 80, &[("10.244.0.2", 8080)]);
        let batch = if swapped_first { vec![b80, a81] } else { vec![a81, b80] };
        assert_eq!(m.update(&batch, &[]), vec![], "order {swapped_first}");
        fake.apply(&m.plan(false).0).unwrap();
        let dump = fake.dump(Family::Ip, "kube-proxy");
        assert!(dump.contains("10.96.0.1 . tcp . 80 . 0 : 10.244.0.2 . 8080"), "{dump}");
        assert!(dump.contains("10.96.0.1 . tcp . 81 . 0 : 10.244.0.1 . 8080"), "{dump}");
    }
}

#[test]
fn a_refused_change_keeps_the_last_good_version() {
    let mut m = Model::new(cfg(Family::Ip));
    let a = spec("ns", "a", "p", "TCP", "10.96.0.1", 80, &[("10.244.0.1", 8080)]);
    let b = spec("ns", "b", "p", "TCP", "10.96.0.2", 80, &[("10.244.0.2", 8080)]);
    assert!(m.update(&[a, b], &[]).is_empty());
    // b moves onto a's address: refused, and b stays where it was.
    let r = m.update(&[spec("ns", "b", "p", "TCP", "10.96.0.1", 80, &[("10.244.0.9", 8080)])], &[]);
    assert_eq!(r.len(), 1, "{r:?}");
    let text = m.render_text();
    assert!(text.contains("10.96.0.2 . tcp . 80 . 0 : 10.244.0.2 . 8080"), "{text}");
    assert!(text.contains("10.96.0.1 . tcp . 80 . 0 : 10.244.0.1 . 8080"), "{text}");
}

#[test]
fn a_zero_length_cluster_cidr_masquerades_nothing_and_still_programs() {
    let mut c = cfg(Family::Ip);
    c.detector = Some(LocalDetector::Cidr("0.0.0.0/0".parse().unwrap()));
    let mut m = Model::new(c);
    m.update(&[spec("a", "a", "p", "TCP", "10.96.0.1", 80, &[("10.244.0.1", 80)])], &[]);
    assert!(!m.render_text().contains("saddr !="));
}

#[test]
fn failed_commit_forces_a_full_replace() {
    let mut m = Model::new(cfg(Family::Ip));
    m.update(&[spec("a", "b", "p", "TCP", "10.96.0.1", 80, &[("10.244.0.1", 80)])], &[]);
    let (_, full) = m.plan(false);
    assert!(full);
    m.committed(true);
    m.update(&[spec("a", "b", "p", "TCP", "10.96.0.1", 80, &[("10.244.0.2", 80)])], &[]);
    let (tx, full) = m.plan(false);
    assert!(!full);
    // one slot rewritten (delete + add) and the hairpin entry swapped (delete + add)
    assert_eq!(tx.object_count(), 4, "a one-endpoint change is a handful of objects:\n{}", kproxy_nftables::text::render_tx(&tx));
    m.committed(false);
    let (_, full) = m.plan(false);
    assert!(full, "after a failure the next sync is full");
}

#[test]
fn someone_deleting_the_table_is_repaired_by_a_full_sync() {
    let mut m = Model::new(cfg(Family::Ip));
    let mut fake = Fake::new();
    m.update(&[spec("a", "b", "p", "TCP", "10.96.0.1", 80, &[("10.244.0.1", 80)])], &[]);
    fake.apply(&m.plan(false).0).unwrap();
    fake.remove_table(Family::Ip, "kube-proxy");
    m.invalidate();
    fake.apply(&m.plan(false).0).unwrap();
    assert_eq!(fake.dump(Family::Ip, "kube-proxy"), m.render_text());
}

#[test]
fn a_partial_sync_creates_the_chain_an_external_vip_needs() {
    let mut m = Model::new(cfg(Family::Ip));
    let mut fake = Fake::new();
    m.update(&[spec("ns", "a", "p", "TCP", "10.96.0.1", 80, &[("10.244.0.1", 80), ("10.244.0.2", 80), ("10.244.0.3", 80)])], &[]);
    fake.apply(&m.plan(false).0).unwrap();
    // Two endpoints behind two VIPs: endpoints-mod-2 is needed (not mod-4, the slot count).
    let b = with_external(spec("ns", "b", "p", "TCP", "10.96.0.2", 80, &[("10.244.0.4", 80), ("10.244.0.5", 80)]), &["192.0.2.2"]);
    m.update(&[b], &[]);
    let (tx, full) = m.plan(false);
    assert!(!full);
    fake.apply(&tx).unwrap_or_else(|e| panic!("{e:?}\n{}", kproxy_nftables::text::render_tx(&tx)));
    assert_eq!(fake.dump(Family::Ip, "kube-proxy"), m.render_text());
}

fn dump_after(m: &mut Model, fake: &mut Fake) -> String {
    let (tx, _) = m.plan(false);
    fake.apply(&tx).unwrap_or_else(|e| panic!("{e:?}\n{}", kproxy_nftables::text::render_tx(&tx)));
    let dump = fake.dump(Family::Ip, "kube-proxy");
    assert_eq!(dump, m.render_text(), "partial and full agree");
    dump
}

#[test]
fn an_external_address_stays_with_its_holder_and_passes_on_when_released() {
    let mut m = Model::new(cfg(Family::Ip));
    let mut fake = Fake::new();
    let ext = |eps: &[(&str, u32)]| with_external(spec("ns", "ext", "p", "TCP", "10.96.0.1", 80, eps), &["192.0.2.51"]);
    // "a-thief" sorts first, and wants the same external IP:port.
    let thief = |eps: &[(&str, u32)]| with_external(spec("ns", "a-thief", "p", "TCP", "10.96.0.2", 80, eps), &["192.0.2.51"]);
    assert!(m.update(&[ext(&[("10.244.0.1", 80)])], &[]).is_empty());
    dump_after(&mut m, &mut fake);
    let r = m.update(&[thief(&[("10.244.0.9", 80)])], &[]);
    assert_eq!(r.len(), 1, "the blocked address is reported: {r:?}");
    // Both change in one sync, the thief first: the holder keeps the address.
    m.update(&[thief(&[("10.244.0.8", 80)]), ext(&[("10.244.0.2", 80)])], &[]);
    let dump = dump_after(&mut m, &mut fake);
    assert!(dump.contains("192.0.2.51 . tcp . 80 . 0 : 10.244.0.2 . 80"), "{dump}");
    assert!(dump.contains("10.96.0.2 . tcp . 80 . 0 : 10.244.0.8 . 80"), "the blocked ServicePort keeps its ClusterIP:\n{dump}");
    // The holder lets go: the address passes to the one waiting, in the same sync.
    m.update(&[spec("ns", "ext", "p", "TCP", "10.96.0.1", 80, &[("10.244.0.2", 80)])], &[]);
    let dump = dump_after(&mut m, &mut fake);
    assert!(dump.contains("192.0.2.51 . tcp . 80 . 0 : 10.244.0.8 . 80"), "{dump}");
}

#[test]
fn a_cluster_ip_wins_over_an_external_claim_on_the_same_address() {
    let mut m = Model::new(cfg(Family::Ip));
    let mut fake = Fake::new();
    // "ext" claims 10.96.0.7:80 as an external IP before any Service has it as its ClusterIP.
    assert!(m
        .update(&[with_external(spec("ns", "ext", "p", "TCP", "10.96.0.1", 80, &[("10.244.0.1", 80)]), &["10.96.0.7"])], &[])
        .is_empty());
    dump_after(&mut m, &mut fake);
    assert!(m.update(&[spec("ns", "owner", "p", "TCP", "10.96.0.7", 80, &[("10.244.0.7", 80)])], &[]).is_empty());
    let dump = dump_after(&mut m, &mut fake);
    assert!(dump.contains("10.96.0.7 . tcp . 80 . 0 : 10.244.0.7 . 80"), "{dump}");
    assert!(!dump.contains("10.96.0.7 . tcp . 80 . 0 : 10.244.0.1 . 80"), "{dump}");
}

/// Clients of an endpoint that leaves lose their affinity; the other clients keep theirs,
/// and when the ServicePort goes, so do its entries, but not another ServicePort's.
#[test]
fn affinity_entries_of_a_leaving_endpoint_or_service_are_purged_after_the_commit() {
    use kproxy_nftables::{ElemData, Element, Op, Transaction, Tuple, Val};
    let sticky = |name: &str, vip: &str, eps: &[(&str, u32)]| {
        let mut s = spec("ns", name, "p", "TCP", vip, 80, eps);
        s.session_affinity = "ClientIP".into();
        s.sticky_max_age_seconds = 60;
        s
    };
    let other = sticky("o", "10.96.0.8", &[("10.244.0.2", 80)]);
    let mut m = Model::new(cfg(Family::Ip));
    let mut fake = Fake::new();
    m.update(&[sticky("s", "10.96.0.9", &[("10.244.0.1", 80), ("10.244.0.2", 80)]), other.clone()], &[]);
    fake.apply(&m.plan(false).0).unwrap();
    // What the packet path would have recorded: on 10.96.0.9, client .7 on endpoint .1 and
    // client .8 on .2; on 10.96.0.8, client .8 on .2.
    let key =
        |c: u8, vip: u8| Tuple::new(&[Val::V4([192, 0, 2, c].into()), Val::Proto(6), Val::V4([10, 96, 0, vip].into()), Val::Port(80)]);
    let ep = |e: u8| Tuple::new(&[Val::V4([10, 244, 0, e].into()), Val::Port(80)]);
    let entry = |c: u8, vip: u8, e: u8| Element { key: key(c, vip), data: Some(ElemData::Vals(ep(e))), comment: None };
    let mut seed = Transaction::new(Family::Ip, "kube-proxy");
    seed.push(Op::AddElements { set: "affinity-endpoints".into(), elems: vec![entry(7, 9, 1), entry(8, 9, 2), entry(8, 8, 2)] });
    fake.apply(&seed).unwrap();
    let after_commit = |m: &mut Model, fake: &mut Fake| {
        let mut read = |set: &str| {
            fake.list_elements(Family::Ip, "kube-proxy", set).map_err(|e| kproxy_nftables::NftError::Kernel {
                errno: e.errno,
                what: e.what,
                detail: None,
            })
        };
        let tx = m.planner.after_commit(&mut read).unwrap();
        if let Some(tx) = &tx {
            fake.apply(tx).unwrap();
        }
        tx.is_some()
    };
    let line = |c: u8, vip: u8, e: u8| {
        format!("add element ip kube-proxy affinity-endpoints {{ 192.0.2.{c} . tcp . 10.96.0.{vip} . 80 : 10.244.0.{e} . 80 }}")
    };
    // Endpoint .2 leaves 10.96.0.9.
    m.update(&[sticky("s", "10.96.0.9", &[("10.244.0.1", 80)])], &[]);
    let (tx, full) = m.plan(false);
    assert!(!full);
    fake.apply(&tx).unwrap();
    assert!(after_commit(&mut m, &mut fake), "a purge");
    let dump = fake.dump(Family::Ip, "kube-proxy");
    assert!(dump.contains(&line(7, 9, 1)), "{dump}");
    assert!(!dump.contains(&line(8, 9, 2)), "the client of the endpoint that left is forgotten:\n{dump}");
    assert!(dump.contains(&line(8, 8, 2)), "another Service's client of that endpoint stays:\n{dump}");
    // Nothing is left to do after that.
    assert!(!after_commit(&mut m, &mut fake));
    // The ServicePort goes: its clients go with it.
    m.update(&[], &["ns/s/tcp/p".to_string()]);
    let (tx, _) = m.plan(false);
    fake.apply(&tx).unwrap();
    after_commit(&mut m, &mut fake);
    let dump = fake.dump(Family::Ip, "kube-proxy");
    assert!(!dump.contains(&line(7, 9, 1)), "{dump}");
    assert!(dump.contains(&line(8, 8, 2)), "{dump}");
}

/// internalTrafficPolicy Local with affinity and no external path: only the local list's objects.
#[test]
fn affinity_builds_only_the_lists_a_path_uses() {
    let mut s = spec("ns", "s", "p", "TCP", "10.96.0.9", 80, &[("10.244.0.1", 80), ("10.244.0.2", 80)]);
    s.session_affinity = "ClientIP".into();
    s.sticky_max_age_seconds = 60;
    s.internal_policy_local = true;
    common::local_at(&mut s, &[0]);
    let mut m = Model::new(cfg(Family::Ip));
    m.update(&[s], &[]);
    let text = m.render_text();
    assert!(text.contains("add chain ip kube-proxy local-affinity-"), "{text}");
    assert!(
        !text.lines().any(|l| l.starts_with("add chain ip kube-proxy affinity-") && l.contains("ns/s/")),
        "no cluster recorder when no path uses it:\n{text}"
    );
    assert!(!text.contains("10.244.0.2"), "the remote endpoint is in no list:\n{text}");
    assert!(text.contains("goto sticky-local-endpoints-mod-1"), "{text}");
}
