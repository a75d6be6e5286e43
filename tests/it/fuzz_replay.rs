//! The fuzzers' properties (`decoder_properties.rs`) on stable Rust: the
//! corpus cargo-fuzz keeps in `fuzz/corpus/` (seeds plus every input that
//! reached new code), past failures in `fuzz/regressions/`, and a
//! fixed-seed stream of mutated flow-log text, as a property test would
//! generate.

use std::path::PathBuf;

use crate::decoder_properties::{check_decoder, check_header};

/// The kept inputs of one fuzz target: `fuzz/corpus/TARGET` (managed by
/// cargo-fuzz, which may merge or drop files) and `fuzz/regressions/TARGET`
/// (inputs that once broke a property, kept by hand).
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut inputs = Vec::new();
    for dir in [
        fuzz.join("corpus").join(target),
        fuzz.join("regressions").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            inputs.push((path, bytes));
        }
    }
    inputs.sort();
    inputs
}

#[test]
fn the_fuzz_corpus_replays_clean() {
    let decoder = corpus("decoder");
    let header = corpus("header");
    assert!(
        decoder.len() >= 20 && header.len() >= 10,
        "the corpus is missing"
    );
    for (path, bytes) in &decoder {
        let run = std::panic::catch_unwind(|| check_decoder(bytes));
        assert!(run.is_ok(), "decoder property failed on {}", path.display());
    }
    for (path, bytes) in &header {
        let run = std::panic::catch_unwind(|| check_header(bytes));
        assert!(run.is_ok(), "header property failed on {}", path.display());
    }
}

/// xorshift64*: a small deterministic generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One random edit of the kinds real buckets and the bad-input rules have.
fn mutate(text: &mut Vec<u8>, rng: &mut Rng) {
    const PIECES: &[&[u8]] = &[
        b" ",
        b"  ",
        b"\r",
        b"\n",
        b"\r\n",
        b"-",
        b"0",
        b"9",
        b"+",
        b"\xff",
        b"\xc3\xa9",
        b"99999999999999999999",
        b"2147483648",
        b"NODATA",
        b"\t",
        b"\0",
    ];
    let at = rng.below(text.len() + 1);
    match rng.below(6) {
        0 => text.insert(at, rng.next() as u8),
        1 => {
            let piece = PIECES[rng.below(PIECES.len())];
            text.splice(at..at, piece.iter().copied());
        }
        2 if !text.is_empty() => {
            let end = (at + 1 + rng.below(16)).min(text.len());
            text.drain(at.min(end)..end);
        }
        3 if !text.is_empty() => {
            let i = rng.below(text.len());
            text[i] ^= 1 << rng.below(8);
        }
        4 => {
            // A line, or part of one, repeated: long lines and extra rows.
            let start = rng.below(text.len() + 1);
            let end = (start + rng.below(200)).min(text.len());
            let copy = text[start..end].repeat(1 + rng.below(4));
            text.splice(at..at, copy);
        }
        _ => {
            // Rarely, a line past the length bound.
            if rng.below(20) == 0 {
                let long = vec![b'7'; flowsql::internals::MAX_LINE_BYTES + rng.below(3)];
                text.splice(at..at, long);
            }
        }
    }
}

#[test]
fn mutated_flow_log_text_keeps_every_property() {
    let seeds: Vec<Vec<u8>> = corpus("decoder").into_iter().map(|(_, b)| b).collect();
    let mut rng = Rng(0x5eed_f10e_5a1e_0001);
    let cases = 100_000;
    for case in 0..cases {
        let mut text = seeds[case % seeds.len()].clone();
        for _ in 0..1 + rng.below(8) {
            mutate(&mut text, &mut rng);
        }
        let run = std::panic::catch_unwind(|| {
            check_decoder(&text);
            check_header(text.split(|b| *b == b'\n').next().unwrap_or_default());
        });
        if run.is_err() {
            let path = std::env::temp_dir().join(format!("flowsql-mutated-{case}"));
            std::fs::write(&path, &text).unwrap();
            panic!(
                "case {case} broke a property; its input is in {} (add it to fuzz/regressions/decoder)",
                path.display()
            );
        }
    }
}
