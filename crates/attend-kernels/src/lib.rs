//! Pure Rust CPU kernels for `attend`, on plain `f32` slices.
//!
//! Nothing here knows about candle: the `attend` crate's `ops.rs` is the only
//! bridge. Every fused kernel sits beside its backward, and the plain
//! reference versions in [`reference`] are the oracle the tests hold them to.
//!
//! Layout conventions (all row-major, contiguous):
//! - attention q, k, v: `[batch, heads, seq, head_dim]`
//! - attention scores / weights: `[batch, heads, seq_q, seq_k]`
//! - row-wise ops (layer norm, softmax, cross-entropy): `[rows, dim]`
//!
//! Determinism: every reduction across rows is done over fixed-size chunks
//! whose partial sums are added in a fixed order, so results do not depend on
//! how rayon schedules the work or on the number of threads.

pub mod activation;
pub mod adamw;
pub mod bf16;
pub mod charcnn;
pub mod dense;
pub mod dropout;
pub mod graph;
pub mod heads;
pub mod linear;
pub mod loss;
pub mod lstm;
pub mod matmul;
pub mod norm;
pub mod pattern;
pub mod pool;
pub mod reference;
pub mod simd;
pub mod softmax;
pub mod sparse;
#[cfg(test)]
mod testing;
pub mod window;

pub use dense::{flash_backward, flash_forward, AttentionDropout, AttentionParams, FlashBackward, FlashForward};
pub use pattern::AttentionPattern;
pub use simd::Isa;

/// Number of rows handed to one rayon task. Fixed (never derived from the
/// thread count) so reductions are bitwise reproducible.
pub(crate) const ROW_CHUNK: usize = 64;

/// The sum of running sums `acc` (`N` a power of two), added pairwise in a
/// fixed order: `acc[i] += acc[i + N/2]`, then the first half likewise,
/// down to one. The same bits on every machine and thread count.
#[inline(always)]
pub(crate) fn pairwise_sum<T: Copy + std::ops::AddAssign, const N: usize>(mut acc: [T; N]) -> T {
    const { assert!(N.is_power_of_two(), "a power of two of running sums") };
    let mut width = N;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            let x = acc[i + width];
            acc[i] += x;
        }
    }
    acc[0]
}
