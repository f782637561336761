//! The two fuzz targets' checks on stable Rust, as part of `cargo test`: every seed of their
//! corpus, every input a fuzzer ever crashed on (`fuzz/regressions/<target>/`, kept forever),
//! and a fixed number of seeded random mutations of the seeds. Deterministic: the same inputs
//! every run, so a failure reproduces; the failing input is written out to rerun with
//! `cargo fuzz run <target> <file>`.
//!
//! Long runs use cargo-fuzz (nightly): see fuzz/Cargo.toml. `.ci/run` runs each target for a
//! short fixed time when cargo-fuzz is installed.

use std::path::{Path, PathBuf};

mod reader {
    include!("../fuzz/fuzz_targets/checks/reader.rs");
}
mod packets {
    include!("../fuzz/fuzz_targets/checks/packets.rs");
}

/// Random inputs per target: about a second of work in a release build.
const MUTATIONS: usize = 20_000;

/// xorshift64*: small, seeded, the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.file_name().is_none_or(|n| n != ".gitkeep"))
            .map(|p| {
                let bytes = std::fs::read(&p).unwrap();
                (p, bytes)
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// One mutation of `seed`: byte flips, interesting integers written over it, cuts, splices
/// with another seed, duplicated ranges (what libFuzzer's default mutators do, roughly).
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if v.len() >= 4 => {
                let i = rng.below(v.len() - 3);
                let vals = [
                    0u32,
                    1,
                    0xffff_ffff,
                    0x7fff_ffff,
                    12,
                    0x8000_0000,
                    0x0a0d_0d0a,
                    0xbad,
                ];
                let x = vals[rng.below(vals.len())];
                let bytes = if rng.below(2) == 0 {
                    x.to_le_bytes()
                } else {
                    x.to_be_bytes()
                };
                v[i..i + 4].copy_from_slice(&bytes);
            }
            2 => v.truncate(rng.below(v.len() + 1)),
            3 if !other.is_empty() => {
                let at = rng.below(v.len() + 1);
                let from = rng.below(other.len());
                let n = rng.below(other.len() - from + 1).min(4096);
                v.splice(at..at, other[from..from + n].iter().copied());
            }
            4 if !v.is_empty() => {
                let from = rng.below(v.len());
                let n = rng.below(v.len() - from + 1).min(1024);
                let chunk = v[from..from + n].to_vec();
                let at = rng.below(v.len() + 1);
                v.splice(at..at, chunk);
            }
            _ => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
        }
    }
    v
}

/// Runs `check` on one input; on a panic, saves the input and fails naming the file.
fn run_one(target: &str, check: fn(&[u8]), input: &[u8], what: &str) {
    if std::panic::catch_unwind(|| check(input)).is_err() {
        let out =
            std::env::temp_dir().join(format!("plg-fuzz-{target}-{}.bin", std::process::id()));
        std::fs::write(&out, input).unwrap();
        panic!(
            "fuzz target {target} failed on {what}; input saved as {} (copy it into \
             fuzz/regressions/{target}/ with the fix)",
            out.display()
        );
    }
}

fn smoke(target: &str, check: fn(&[u8]), seed: u64) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let corpus = files(&root.join("corpus").join(target));
    assert!(!corpus.is_empty(), "no corpus for {target}");
    for (path, bytes) in corpus
        .iter()
        .chain(&files(&root.join("regressions").join(target)))
    {
        run_one(target, check, bytes, &path.display().to_string());
    }
    let mut rng = Rng(seed);
    for n in 0..MUTATIONS {
        let a = &corpus[rng.below(corpus.len())].1;
        let b = &corpus[rng.below(corpus.len())].1;
        let input = mutate(&mut rng, a, b);
        run_one(
            target,
            check,
            &input,
            &format!("random input {n} (seed {seed:#x})"),
        );
    }
}

#[test]
fn reader_target_on_corpus_regressions_and_random_inputs() {
    smoke("reader", reader::check, 0x5eed_0001);
}

#[test]
fn packets_target_on_corpus_regressions_and_random_inputs() {
    smoke("packets", packets::check, 0x5eed_0002);
}
