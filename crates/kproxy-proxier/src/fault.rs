//! Fault injection for tests: `KPROXY_FAULT_REJECT=<probability>:<seed>` in the environment
//! (read once) makes that share of kernel batches carry, at a random position, a message the
//! kernel refuses (a rule in a chain that does not exist). Tests use it to prove that a refused
//! batch leaves the kernel exactly as it was and that the next sync repairs everything. Unset,
//! as in production, nothing here runs.

use std::borrow::Cow;
use std::sync::{Mutex, OnceLock};

use kproxy_nftables::{Op, Rule, Stmt, Transaction, Verdict};

/// The chain the poisoned message names; nothing ever creates it.
pub const POISON_CHAIN: &str = "kproxy-fault-injected";

struct Injector {
    probability: f64,
    state: Mutex<u64>,
}

fn injector() -> Option<&'static Injector> {
    static I: OnceLock<Option<Injector>> = OnceLock::new();
    I.get_or_init(|| parse(&std::env::var("KPROXY_FAULT_REJECT").ok()?)).as_ref()
}

fn parse(spec: &str) -> Option<Injector> {
    let (p, seed) = spec.split_once(':').unwrap_or((spec, "1"));
    let probability: f64 = p.parse().ok().filter(|p| (0.0..=1.0).contains(p))?;
    Some(Injector { probability, state: Mutex::new(seed.parse().unwrap_or(1)) })
}

/// splitmix64: small, seedable, and good enough to pick batches and positions.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `tx`, or (when injection is on and this batch is picked) a copy with the poison inside.
pub fn maybe_poison(tx: &Transaction) -> Cow<'_, Transaction> {
    let Some(inj) = injector() else { return Cow::Borrowed(tx) };
    poison_with(tx, inj.probability, &mut inj.state.lock().unwrap_or_else(|p| p.into_inner()))
}

fn poison_with<'a>(tx: &'a Transaction, probability: f64, state: &mut u64) -> Cow<'a, Transaction> {
    if (next(state) >> 11) as f64 / (1u64 << 53) as f64 >= probability {
        return Cow::Borrowed(tx);
    }
    let at = (next(state) % (tx.ops.len() as u64 + 1)) as usize;
    let mut poisoned = tx.clone();
    poisoned.ops.insert(at, Op::AddRule(Rule { chain: POISON_CHAIN.into(), stmts: vec![Stmt::Verdict(Verdict::Accept)] }));
    Cow::Owned(poisoned)
}

/// The line the poisoned iptables-restore input carries: a rule in a chain nothing creates.
pub const POISON_RULE: &str = "-A KPROXY-FAULT-INJECTED -j ACCEPT";

/// iptables mode's form: the same share of syncs gets, in one of its restores, inside one of
/// its table blocks (after `*table`, at the latest just before `COMMIT`), the poison line.
pub fn maybe_poison_restores(restores: Vec<String>) -> Vec<String> {
    let Some(inj) = injector() else { return restores };
    poison_restores_with(restores, inj.probability, &mut inj.state.lock().unwrap_or_else(|p| p.into_inner()))
}

fn poison_restores_with(mut restores: Vec<String>, probability: f64, state: &mut u64) -> Vec<String> {
    if restores.is_empty() || (next(state) >> 11) as f64 / (1u64 << 53) as f64 >= probability {
        return restores;
    }
    let piece = (next(state) % restores.len() as u64) as usize;
    let mut lines: Vec<&str> = restores[piece].lines().collect();
    // The places a line can go inside a table: after its header, up to its COMMIT.
    let mut places = Vec::new();
    let mut inside = false;
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with('*') {
            inside = true;
        } else if inside {
            places.push(i);
            inside = *l != "COMMIT";
        }
    }
    if places.is_empty() {
        return restores;
    }
    let at = places[(next(state) % places.len() as u64) as usize];
    lines.insert(at, POISON_RULE);
    let mut text = lines.join("\n");
    text.push('\n');
    restores[piece] = text;
    restores
}

/// `KPROXY_FAULT_SET_SIZE=<n>` (tests): sets are sized from n elements up and the planner stops
/// guarding their caps, as one that miscounted would; the kernel then refuses an element past a
/// cap (ENFILE), and the full sync that follows sizes the sets from the true counts again.
pub fn unguarded_set_size() -> Option<usize> {
    static N: OnceLock<Option<usize>> = OnceLock::new();
    *N.get_or_init(|| std::env::var("KPROXY_FAULT_SET_SIZE").ok()?.parse().ok().filter(|n| *n > 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kproxy_nftables::Family;

    fn tx(n: usize) -> Transaction {
        Transaction { family: Family::Ip, table: "t".into(), ops: (0..n).map(|i| Op::FlushChain(format!("c{i}"))).collect() }
    }

    #[test]
    fn the_poison_lands_anywhere_in_the_batch_and_only_as_often_as_asked() {
        let mut state = 7;
        let (mut poisoned, mut positions) = (0, std::collections::BTreeSet::new());
        for _ in 0..2000 {
            if let Cow::Owned(p) = poison_with(&tx(4), 0.5, &mut state) {
                poisoned += 1;
                assert_eq!(p.ops.len(), 5);
                positions.insert(p.ops.iter().position(|o| matches!(o, Op::AddRule(r) if r.chain == POISON_CHAIN)).unwrap());
            }
        }
        assert!((800..1200).contains(&poisoned), "{poisoned} of 2000 at p=0.5");
        assert_eq!(positions.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4], "first, middle and last positions");
        assert!(matches!(poison_with(&tx(4), 0.0, &mut state), Cow::Borrowed(_)));
    }

    #[test]
    fn the_restore_poison_lands_inside_a_table_block_of_any_piece() {
        let pieces = || vec!["*filter\n:A - [0:0]\nCOMMIT\n".to_owned(), "*nat\n-A B -j RETURN\nCOMMIT\n*filter\nCOMMIT\n".to_owned()];
        let mut state = 3;
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..400 {
            let out = poison_restores_with(pieces(), 1.0, &mut state);
            let (k, text) = out.iter().enumerate().find(|(_, t)| t.contains(POISON_RULE)).expect("poisoned at p=1");
            let lines: Vec<&str> = text.lines().collect();
            let at = lines.iter().position(|l| *l == POISON_RULE).unwrap();
            // Inside a block: some header above it, and its block's COMMIT below it.
            assert!(lines[..at].iter().any(|l| l.starts_with('*')), "{text}");
            assert!(lines[at + 1..].contains(&"COMMIT"), "{text}");
            assert_eq!(out.iter().filter(|t| t.contains(POISON_RULE)).count(), 1);
            seen.insert((k, at));
        }
        // Piece 0: after *filter, before COMMIT; piece 1: both blocks, every place.
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![(0, 1), (0, 2), (1, 1), (1, 2), (1, 4)]);
        assert_eq!(poison_restores_with(pieces(), 0.0, &mut state), pieces());
    }

    #[test]
    fn a_bad_spec_turns_injection_off() {
        assert!(parse("1.5:3").is_none());
        assert!(parse("x").is_none());
        assert_eq!(parse("0.25:9").map(|i| i.probability), Some(0.25));
    }
}
