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
    fn a_bad_spec_turns_injection_off() {
        assert!(parse("1.5:3").is_none());
        assert!(parse("x").is_none());
        assert_eq!(parse("0.25:9").map(|i| i.probability), Some(0.25));
    }
}
