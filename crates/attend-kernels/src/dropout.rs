//! Dropout from a counter-based hash: element i of a call with seed s is
//! kept when hash(s, i) >= p. The mask is never stored: backward recomputes
//! it from the seed, and any thread count gives the same mask.

use crate::simd::Isa;
use rayon::prelude::*;

const CHUNK: usize = 16384;

/// splitmix64 finaliser of (seed, index): a well-mixed 64-bit value.
#[inline]
fn mix(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// True when element `i` survives dropout with drop probability `p`.
#[inline]
pub fn keep(seed: u64, i: usize, p: f32) -> bool {
    // top 24 bits as a uniform in [0, 1)
    ((mix(seed, i as u64) >> 40) as f32) * (1.0 / (1u64 << 24) as f32) >= p
}

/// One chunk, without branches so that the compiler vectorises the hash
/// (64-bit multiplies included) for the instruction set it is compiled for.
#[inline(always)]
fn chunk(yc: &mut [f32], xc: &[f32], first: usize, p: f32, seed: u64, scale: f32) {
    for (j, (y, &x)) in yc.iter_mut().zip(xc).enumerate() {
        *y = if keep(seed, first + j, p) { x * scale } else { 0.0 };
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn chunk_avx2(yc: &mut [f32], xc: &[f32], first: usize, p: f32, seed: u64, scale: f32) {
    chunk(yc, xc, first, p, seed, scale)
}

/// AVX-512DQ has the 64-bit lane multiply that AVX2 lacks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")]
fn chunk_avx512(yc: &mut [f32], xc: &[f32], first: usize, p: f32, seed: u64, scale: f32) {
    chunk(yc, xc, first, p, seed, scale)
}

/// y = x * keep / (1 - p) on the given instruction set. Backward is the
/// same call on dy. Every path draws the same mask.
pub fn dropout_on(isa: Isa, x: &[f32], p: f32, seed: u64) -> Vec<f32> {
    isa.check_available();
    let scale = 1.0 / (1.0 - p);
    let mut y = vec![0f32; x.len()];
    y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).enumerate().for_each(|(c, (yc, xc))| match isa {
        Isa::Portable => chunk(yc, xc, c * CHUNK, p, seed, scale),
        // SAFETY: check_available above: this CPU has AVX2 and FMA.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => unsafe { chunk_avx2(yc, xc, c * CHUNK, p, seed, scale) },
        // SAFETY: check_available above: this CPU has AVX-512.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { chunk_avx512(yc, xc, c * CHUNK, p, seed, scale) },
    });
    y
}

/// [`dropout_on`] on the fastest instruction set here.
pub fn dropout(x: &[f32], p: f32, seed: u64) -> Vec<f32> {
    dropout_on(Isa::detect(), x, p, seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_about_p_and_scales_the_rest() {
        let x = vec![1.0f32; 100_000];
        let y = dropout(&x, 0.3, 11);
        let kept = y.iter().filter(|&&v| v != 0.0).count() as f32 / x.len() as f32;
        assert!((kept - 0.7).abs() < 0.01, "kept {kept}");
        assert!(y.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-6));
        assert_eq!(y, dropout(&x, 0.3, 11));
        assert_ne!(y, dropout(&x, 0.3, 12));
    }

    #[test]
    fn every_path_draws_the_same_mask_as_keep() {
        let x: Vec<f32> = (0..40_000).map(|i| (i % 7) as f32 - 3.0).collect();
        for isa in Isa::available() {
            let y = dropout_on(isa, &x, 0.25, 99);
            for (i, (&y, &x)) in y.iter().zip(&x).enumerate() {
                let want = if keep(99, i, 0.25) { x / 0.75 } else { 0.0 };
                assert_eq!(y.to_bits(), want.to_bits(), "{isa:?} at {i}");
            }
        }
    }
}
