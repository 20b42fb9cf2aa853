//! A small stable-Rust fuzz driver shared (by `#[path]`) by the crates' fuzz tests:
//! a seeded splitmix64 PRNG, structure-aware mutations of a corpus of valid inputs,
//! and pure random bytes. KPROXY_FUZZ_ITERS sets the iterations per target (default:
//! each target's CI budget); KPROXY_FUZZ_SEED replays one seed. A panicking input
//! is printed with its seed and hex, then the panic is re-raised.
#![allow(dead_code)]

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Lengths that break parsers: zero, under a header, just past the end, huge.
const NASTY_U16: [u16; 8] = [0, 1, 3, 4, 5, 0x7fff, 0xfffc, 0xffff];
const NASTY_U32: [u32; 8] = [0, 1, 15, 16, 17, 0x7fff_ffff, 0xffff_fff0, 0xffff_ffff];

/// One structure-aware mutation of `d`, applied in place.
pub fn mutate(r: &mut Rng, d: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    match r.below(10) {
        0 if !d.is_empty() => {
            let i = r.below(d.len());
            d[i] ^= 1 << r.below(8);
        }
        1 => {
            let i = r.below(d.len() + 1);
            d.insert(i, r.next() as u8);
        }
        2 if !d.is_empty() => {
            let i = r.below(d.len());
            let n = 1 + r.below((d.len() - i).min(8));
            d.drain(i..i + n);
        }
        3 => {
            let n = r.below(d.len() + 1);
            d.truncate(n);
        }
        // A 16-bit length field (netlink attributes) at a 4-aligned offset.
        4 if d.len() >= 2 => {
            let i = r.below(d.len() / 4 + 1) * 4;
            let i = i.min(d.len() - 2);
            d[i..i + 2].copy_from_slice(&NASTY_U16[r.below(8)].to_ne_bytes());
        }
        // A 32-bit length field (netlink message headers).
        5 if d.len() >= 4 => {
            let i = (r.below(d.len() / 4 + 1) * 4).min(d.len() - 4);
            d[i..i + 4].copy_from_slice(&NASTY_U32[r.below(8)].to_ne_bytes());
        }
        // Attribute nesting: wrap a slice in a nested attribute header pointing at itself.
        6 => {
            let i = (r.below(d.len() / 4 + 1) * 4).min(d.len());
            let len = (d.len() - i + 4).min(0xffff) as u16;
            let ty = (r.below(16) as u16) | 0x8000;
            let mut h = len.to_ne_bytes().to_vec();
            h.extend_from_slice(&ty.to_ne_bytes());
            d.splice(i..i, h);
        }
        // Splice in a piece of another corpus entry.
        7 if !corpus.is_empty() => {
            let o = &corpus[r.below(corpus.len())];
            let a = r.below(o.len() + 1);
            let b = a + r.below(o.len() - a + 1);
            let i = r.below(d.len() + 1);
            d.splice(i..i, o[a..b].iter().copied());
        }
        // Duplicate a chunk (repeated attributes / messages).
        8 if !d.is_empty() => {
            let a = r.below(d.len());
            let b = a + r.below(d.len() - a) + 1;
            let chunk = d[a..b].to_vec();
            d.splice(b..b, chunk);
        }
        _ => {
            let i = r.below(d.len() + 1);
            let v = r.next() as u8;
            if i < d.len() {
                d[i] = v;
            } else {
                d.push(v);
            }
        }
    }
}

pub fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    v.strip_prefix("0x").map_or_else(|| v.parse().ok(), |h| u64::from_str_radix(h, 16).ok())
}

/// Runs `target` on `iters` inputs (KPROXY_FUZZ_ITERS overrides): the corpus itself, then
/// 1-4 stacked mutations of corpus entries (3 in 4), or random bytes (1 in 4). Every input
/// has its own seed, printed with the input if the target panics; KPROXY_FUZZ_SEED=<seed>
/// runs just that input.
pub fn run(name: &str, default_iters: u64, corpus: &[Vec<u8>], target: impl Fn(&[u8])) {
    // cargo fuzz's seed corpus: the same valid inputs, one file each (scripts/cargo-fuzz.sh).
    if let Ok(dir) = std::env::var("KPROXY_FUZZ_CORPUS_DIR") {
        let dir = std::path::Path::new(&dir).join(name.replace(' ', "_"));
        std::fs::create_dir_all(&dir).expect("corpus dir");
        for (i, c) in corpus.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:04}")), c).expect("corpus file");
        }
    }
    let iters = env_u64("KPROXY_FUZZ_ITERS").unwrap_or(default_iters);
    let base = env_u64("KPROXY_FUZZ_BASE").unwrap_or(0x6b70_726f_7879);
    let replay = env_u64("KPROXY_FUZZ_SEED");
    let start = std::time::Instant::now();
    let input = |seed: u64, i: u64| -> Vec<u8> {
        if replay.is_none() && (i as usize) < corpus.len() {
            return corpus[i as usize].clone();
        }
        let mut r = Rng(seed);
        if corpus.is_empty() || r.below(4) == 0 {
            let n = r.below(512);
            return (0..n).map(|_| r.next() as u8).collect();
        }
        let mut d = corpus[r.below(corpus.len())].clone();
        for _ in 0..1 + r.below(4) {
            mutate(&mut r, &mut d, corpus);
        }
        d
    };
    let seeds: Box<dyn Iterator<Item = (u64, u64)>> = match replay {
        Some(s) => Box::new(std::iter::once((s, u64::MAX))),
        None => Box::new((0..iters).map(|i| (base.wrapping_add(i.wrapping_mul(0x1000_0001)), i))),
    };
    let mut n = 0u64;
    for (seed, i) in seeds {
        let d = input(seed, i);
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(&d)));
        if let Err(e) = res {
            let at = if i == u64::MAX { "the replayed input".to_string() } else { format!("iteration {i}") };
            println!("fuzz {name}: PANIC at {at}, replay with KPROXY_FUZZ_SEED={seed:#x} (KPROXY_FUZZ_BASE={base:#x})");
            println!("fuzz {name}: input ({} bytes) {}", d.len(), hex(&d));
            std::panic::resume_unwind(e);
        }
        n += 1;
    }
    println!("fuzz {name}: {n} iterations ({} corpus inputs) in {:.2?}", corpus.len(), start.elapsed());
}
