//! The crate's own random numbers.
//!
//! Every random choice (initial weights, shuffling, crops, flips, dropout masks) is drawn here on
//! the host, never from burn's generator. burn seeds per backend and possibly process-wide, so two
//! trainings running side by side in one process would interleave its draws; ours are a pure
//! function of `(seed, purpose, index)`. The generators are spelled out (SplitMix64 to derive
//! stream seeds, xoshiro256++ to draw) so that the bytes of trained weights do not change when a
//! dependency updates its algorithm.

/// What a stream of random numbers is for. Distinct purposes never share draws.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Purpose {
    /// Initial weights of one layer; the index is the layer number (1..=8).
    Init = 1,
    /// Order of the training images; the index is the 0-based epoch.
    Shuffle = 2,
    /// Random crops and flips; the index is the global 0-based step.
    Augment = 3,
    /// Dropout masks; the index is the global 0-based step.
    Dropout = 4,
}

/// xoshiro256++ seeded through SplitMix64.
pub(crate) struct Rng {
    state: [u64; 4],
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// The stream for `purpose` number `index` under the user's `seed`.
    pub(crate) fn stream(seed: u64, purpose: Purpose, index: u64) -> Self {
        // Mix the three inputs one after another so that nearby seeds and indices give
        // unrelated streams.
        let mut mixer = seed;
        let a = splitmix64(&mut mixer);
        let mut mixer = a ^ (purpose as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
        let b = splitmix64(&mut mixer);
        let mut mixer = b ^ index.wrapping_mul(0x8CB9_2BA7_2F3D_8DD7);
        let mut state = [0; 4];
        for word in &mut state {
            *word = splitmix64(&mut mixer);
        }
        Rng { state }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let [s0, s1, s2, s3] = &mut self.state;
        let result = s0.wrapping_add(*s3).rotate_left(23).wrapping_add(*s0);
        let t = *s1 << 17;
        *s2 ^= *s0;
        *s3 ^= *s1;
        *s1 ^= *s2;
        *s0 ^= *s3;
        *s2 ^= t;
        *s3 = s3.rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `0..bound` (bound > 0), without modulo bias.
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        debug_assert!(bound > 0);
        let zone = u64::MAX - (u64::MAX % bound);
        loop {
            let value = self.next_u64();
            if value < zone {
                return value % bound;
            }
        }
    }

    /// Fills `out` with independent draws from N(0, std²), by Box–Muller.
    pub(crate) fn fill_normal(&mut self, out: &mut [f32], std: f64) {
        let mut chunks = out.chunks_exact_mut(2);
        for pair in &mut chunks {
            let (a, b) = self.normal_pair();
            pair[0] = (a * std) as f32;
            pair[1] = (b * std) as f32;
        }
        if let [last] = chunks.into_remainder() {
            *last = (self.normal_pair().0 * std) as f32;
        }
    }

    fn normal_pair(&mut self) -> (f64, f64) {
        // 1 - u lies in (0, 1], so the logarithm is finite.
        let radius = (-2.0 * (1.0 - self.next_f64()).ln()).sqrt();
        let angle = std::f64::consts::TAU * self.next_f64();
        (radius * angle.cos(), radius * angle.sin())
    }

    /// Fisher–Yates shuffle.
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}
