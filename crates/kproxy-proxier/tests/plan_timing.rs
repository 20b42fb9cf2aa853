//! Not a test: the CPU cost of a full sync's userspace half (decode, plan, netlink encode)
//! on a wire file, the minimum of several runs, for comparing changes on a noisy machine.
//! `KPROXY_WIRE_FILE=/tmp/mix.wire cargo test --release -p kproxy-proxier --test plan_timing -- --ignored --nocapture`
use std::time::{Duration, Instant};

use kproxy_nftables::{encode::encode_batch, Family};
use kproxy_proxier::wire;

mod common;

#[test]
#[ignore]
fn full_sync_userspace_time() {
    let Ok(path) = std::env::var("KPROXY_WIRE_FILE") else { return };
    let text = std::fs::read_to_string(path).unwrap();
    let mut best = [Duration::MAX; 3];
    for _ in 0..7 {
        let t0 = Instant::now();
        let (records, _) = wire::decode(&text).unwrap();
        let mut m = common::Model::new(common::cfg(Family::Ip));
        m.desired.replace_all(&records);
        let t1 = Instant::now();
        let (tx, _) = m.plan(true);
        let t2 = Instant::now();
        let batch = encode_batch(&tx, 1, None);
        let t3 = Instant::now();
        std::hint::black_box(batch);
        for (b, d) in best.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2]) {
            *b = (*b).min(d);
        }
    }
    println!("decode+desired {:?}  plan {:?}  encode {:?}", best[0], best[1], best[2]);
}
