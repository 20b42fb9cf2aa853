//! From the virtual servers the node has to the ones it should have, as IPVS operations in
//! an order that never opens a hole: services added or changed in place first, then their
//! new real servers, then the old real servers (TCP ones drained at weight 0, as upstream's
//! graceful termination), and the services that went last. IPVS has no transactions, so a
//! reader mid-sync sees a mix of old and new, but never a Service with neither.

use std::collections::{BTreeMap, BTreeSet};

use kproxy_ipvs::{DestKey, DestStats, Destination, Op, Service, ServiceKey, FLAG_HASHED};

/// Virtual servers by key, each with its real servers by key.
pub type Servers = BTreeMap<ServiceKey, (Service, BTreeMap<DestKey, Destination>)>;

/// Real servers at weight 0 waiting for their connections to end.
pub type Draining = BTreeSet<(ServiceKey, DestKey)>;

const TCP: u8 = 6;

/// Equal as far as kproxy sets them (the kernel adds the hashed flag to what it lists).
pub fn same_service(a: &Service, b: &Service) -> bool {
    a.scheduler == b.scheduler && (a.flags & !FLAG_HASHED) == (b.flags & !FLAG_HASHED) && a.timeout == b.timeout && a.netmask == b.netmask
}

fn same_dest(a: &Destination, b: &Destination) -> bool {
    a.weight == b.weight && a.forward == b.forward && a.upper_threshold == b.upper_threshold && a.lower_threshold == b.lower_threshold
}

/// The operations that take `have` to `want` for the services in `scope`. Real servers
/// that go are drained when TCP (recorded in `draining`) and deleted otherwise; a draining
/// one that comes back gets its weight again.
pub fn diff(want: &Servers, have: &Servers, scope: &BTreeSet<ServiceKey>, draining: &mut Draining) -> Vec<Op> {
    let (mut services, mut adds, mut removals, mut gone) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let empty = BTreeMap::new();
    for key in scope {
        match (want.get(key), have.get(key)) {
            (Some((ws, wd)), h) => {
                let hd = match h {
                    None => {
                        services.push(Op::AddService(ws.clone()));
                        &empty
                    }
                    Some((hs, hd)) => {
                        if !same_service(ws, hs) {
                            services.push(Op::EditService(ws.clone()));
                        }
                        hd
                    }
                };
                for (dk, d) in wd {
                    match hd.get(dk) {
                        None => adds.push(Op::AddDest(*key, d.clone())),
                        Some(h) => {
                            let back = draining.remove(&(*key, *dk));
                            if back || !same_dest(d, h) {
                                adds.push(Op::EditDest(*key, d.clone()));
                            }
                        }
                    }
                }
                for (dk, h) in hd.iter().filter(|(dk, _)| !wd.contains_key(dk)) {
                    if key.protocol != TCP {
                        draining.remove(&(*key, *dk));
                        removals.push(Op::DeleteDest(*key, *dk));
                    } else {
                        draining.insert((*key, *dk));
                        if h.weight != 0 {
                            removals.push(Op::EditDest(*key, Destination { weight: 0, ..h.clone() }));
                        }
                    }
                }
            }
            (None, Some((_, hd))) => {
                for dk in hd.keys() {
                    draining.remove(&(*key, *dk));
                }
                gone.push(Op::DeleteService(*key));
            }
            (None, None) => {}
        }
    }
    services.extend(adds);
    services.extend(removals);
    services.extend(gone);
    services
}

/// Draining real servers whose connections have ended: delete them. `stats` has the
/// kernel's counts for draining ones; one missing from it is gone already.
pub fn drained(draining: &mut Draining, stats: &BTreeMap<(ServiceKey, DestKey), DestStats>) -> Vec<Op> {
    let mut ops = Vec::new();
    draining.retain(|k| match stats.get(k) {
        None => false,
        Some(s) if s.active_conns + s.inactive_conns == 0 => {
            ops.push(Op::DeleteDest(k.0, k.1));
            false
        }
        Some(_) => true,
    });
    ops
}

/// Applies the operations that succeeded to our view of the kernel.
pub fn record(view: &mut Servers, ops: &[Op], results: &[Result<(), i32>]) {
    for (op, r) in ops.iter().zip(results) {
        if r.is_err() {
            continue;
        }
        match op {
            Op::AddService(s) | Op::EditService(s) => {
                view.entry(s.key).or_insert_with(|| (s.clone(), BTreeMap::new())).0 = s.clone();
            }
            Op::DeleteService(k) => {
                view.remove(k);
            }
            Op::AddDest(k, d) | Op::EditDest(k, d) => {
                if let Some((_, ds)) = view.get_mut(k) {
                    ds.insert(d.key, d.clone());
                }
            }
            Op::DeleteDest(k, dk) => {
                if let Some((_, ds)) = view.get_mut(k) {
                    ds.remove(dk);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn key(ip: &str, proto: u8) -> ServiceKey {
        ServiceKey { addr: ip.parse::<IpAddr>().unwrap(), protocol: proto, port: 80 }
    }

    fn dest(ip: &str, weight: u32) -> Destination {
        Destination::masq(DestKey { addr: ip.parse().unwrap(), port: 8080 }, weight)
    }

    fn servers(list: &[(ServiceKey, &[&str])]) -> Servers {
        list.iter().map(|(k, ds)| (*k, (Service::new(*k, "rr"), ds.iter().map(|d| (dest(d, 1).key, dest(d, 1))).collect()))).collect()
    }

    fn names(ops: &[Op]) -> Vec<String> {
        ops.iter()
            .map(|o| match o {
                Op::AddService(s) => format!("add-service {}", s.key.addr),
                Op::EditService(s) => format!("edit-service {}", s.key.addr),
                Op::DeleteService(k) => format!("delete-service {}", k.addr),
                Op::AddDest(_, d) => format!("add-dest {}", d.key.addr),
                Op::EditDest(_, d) => format!("edit-dest {} weight {}", d.key.addr, d.weight),
                Op::DeleteDest(_, d) => format!("delete-dest {}", d.addr),
            })
            .collect()
    }

    #[test]
    fn new_before_old_and_tcp_drains() {
        let (t, u, g) = (key("10.96.0.1", 6), key("10.96.0.2", 17), key("10.96.0.3", 6));
        let have = servers(&[(t, &["10.244.1.2"]), (u, &["10.244.1.2"]), (g, &["10.244.1.9"])]);
        let want = servers(&[(t, &["10.244.1.3"]), (u, &["10.244.1.3"])]);
        let scope: BTreeSet<_> = [t, u, g].into();
        let mut draining = Draining::new();
        let ops = diff(&want, &have, &scope, &mut draining);
        assert_eq!(
            names(&ops),
            [
                "add-dest 10.244.1.3",
                "add-dest 10.244.1.3",
                "edit-dest 10.244.1.2 weight 0",
                "delete-dest 10.244.1.2",
                "delete-service 10.96.0.3"
            ]
        );
        assert_eq!(draining.len(), 1);
        // Applied, the draining one stays put; back in the endpoints, it gets its weight again.
        let mut view = have.clone();
        record(&mut view, &ops, &vec![Ok(()); ops.len()]);
        assert!(diff(&want, &view, &scope, &mut draining).is_empty());
        let back = servers(&[(t, &["10.244.1.2", "10.244.1.3"]), (u, &["10.244.1.3"])]);
        assert_eq!(names(&diff(&back, &view, &scope, &mut draining)), ["edit-dest 10.244.1.2 weight 1"]);
        assert!(draining.is_empty());
    }

    #[test]
    fn changed_services_are_edited_in_place() {
        let k = key("10.96.0.1", 6);
        let have = servers(&[(k, &["10.244.1.2"])]);
        let mut want = have.clone();
        want.get_mut(&k).unwrap().0.scheduler = "lc".into();
        let ops = diff(&want, &have, &[k].into(), &mut Draining::new());
        assert_eq!(names(&ops), ["edit-service 10.96.0.1"]);
        let mut listed = have.clone();
        listed.get_mut(&k).unwrap().0.flags |= FLAG_HASHED;
        assert!(diff(&have, &listed, &[k].into(), &mut Draining::new()).is_empty(), "the kernel's hashed flag is not a change");
    }

    #[test]
    fn drained_ones_go_when_idle() {
        let k = key("10.96.0.1", 6);
        let (a, b) = (dest("10.244.1.2", 0).key, dest("10.244.1.3", 0).key);
        let mut draining: Draining = [(k, a), (k, b)].into();
        let stats = [
            ((k, a), DestStats { active_conns: 0, inactive_conns: 0, persist_conns: 0 }),
            ((k, b), DestStats { active_conns: 1, ..Default::default() }),
        ];
        let ops = drained(&mut draining, &stats.into_iter().collect());
        assert_eq!(names(&ops), ["delete-dest 10.244.1.2"]);
        assert_eq!(draining.len(), 1);
    }
}
