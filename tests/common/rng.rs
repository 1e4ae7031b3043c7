//! The seeded generator of the bounded random-input tests (the `cargo test` side of the fuzz
//! targets): deterministic, so a failure reproduces from its seed, and dependency-free.
//!
//! Declared from a test file with `#[path = "common/rng.rs"] mod rng;` (it needs nothing of
//! `common`, so the responder suites need not build the end-to-end harness).

#![allow(dead_code)]

/// Marsaglia's xorshift64, or xorshift64* ([`XorShift::star`]). Each suite keeps the variant
/// and the seed its inputs were drawn with: another sequence would be other inputs.
pub struct XorShift {
    state: u64,
    star: bool,
}

impl XorShift {
    /// xorshift64 (shifts 13, 7, 17): the responder and oslo-capture suites' sequence.
    pub fn new(seed: u64) -> XorShift {
        XorShift {
            state: seed,
            star: false,
        }
    }

    /// xorshift64* (shifts 12, 25, 27, output multiplied): the control-plane parsers' sequence,
    /// as in `src/standalone/netfile/tests.rs`.
    pub fn star(seed: u64) -> XorShift {
        XorShift {
            state: seed,
            star: true,
        }
    }

    pub fn next(&mut self) -> u64 {
        let x = &mut self.state;
        if self.star {
            *x ^= *x >> 12;
            *x ^= *x << 25;
            *x ^= *x >> 27;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        } else {
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            *x
        }
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    pub fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
        &from[self.below(from.len())]
    }
}
