//! Helpers shared by the kernel integration tests.

/// Deterministic values in [-amp, amp).
pub fn values(len: usize, seed: u32, amp: f32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let h = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed.wrapping_mul(40_503)) ^ (seed << 7);
            let h = h ^ (h >> 15);
            ((h.wrapping_mul(2_246_822_519) >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0) * amp
        })
        .collect()
}
