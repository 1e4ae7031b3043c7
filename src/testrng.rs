//! Seeded randomness for the unit tests' property checks (random change sequences, random
//! networks files, garbage bodies): deterministic, so a failure reproduces from its seed, and
//! no extra crate. Each test keeps the variant and seed its inputs were drawn with.

/// xorshift64* ([`Rng::star`], shifts 12/25/27, output multiplied) or plain xorshift64
/// ([`Rng::plain`], shifts 13/7/17).
pub(crate) struct Rng {
    state: u64,
    star: bool,
}

impl Rng {
    pub(crate) fn star(seed: u64) -> Rng {
        Rng {
            state: seed,
            star: true,
        }
    }

    pub(crate) fn plain(seed: u64) -> Rng {
        Rng {
            state: seed,
            star: false,
        }
    }

    pub(crate) fn next(&mut self) -> u64 {
        if self.star {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        } else {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            self.state
        }
    }

    /// A number below `n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// True `percent` times in a hundred.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}
