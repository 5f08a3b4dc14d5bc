//! GELU, exact form `z Φ(z)` (Φ the standard normal CDF), fast.
//!
//! libm's `erff` is scalar and branchy: it was 3-15% of a tagger training
//! profile, and candle's GELU backward adds ten tensor passes around it.
//! Here Φ comes from the complementary error function in the form of
//! Numerical Recipes' `erfcc` (Chebyshev fit, `t exp(-x^2 + P(t))`,
//! fractional error below 1.2e-7 over the whole line, so the negative tail
//! is accurate relative to its size too: in f32 within 2e-6 of the value
//! plus 3e-9, where `1 + erff(z / sqrt 2)` keeps no digit in the tail),
//! with the exponential on the
//! kernels' vector `2^x`. The loops are plain arithmetic without branches,
//! compiled for AVX-512, for AVX2 + FMA and portable, and vectorised by the
//! compiler; [`Isa`] picks at run time. Tested against an f64 reference.

use crate::simd::{exp2_scalar, Isa};
use rayon::prelude::*;

const LOG2_E: f32 = std::f32::consts::LOG2_E;
const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// 1 / sqrt(2 pi)
const INV_SQRT_2PI: f32 = 0.398_942_3;
/// Elements per rayon task (fixed, so results do not depend on threads).
const CHUNK: usize = 16 * 1024;

/// erfc(x) for x >= 0 (Numerical Recipes `erfcc`, its coefficients as
/// published).
#[inline(always)]
#[allow(clippy::excessive_precision)]
fn erfc_pos(x: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * x);
    let p = -1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07 + t * (-1.135_203_9 + t * (1.488_515_9 + t * (-0.822_152_2 + t * 0.170_872_77))))))));
    t * exp2_scalar((p - x * x) * LOG2_E)
}

/// Φ(z), the standard normal CDF.
#[inline(always)]
fn phi_cdf(z: f32) -> f32 {
    let half_tail = 0.5 * erfc_pos(z.abs() * FRAC_1_SQRT_2); // Φ(-|z|)
    if z < 0.0 {
        half_tail
    } else {
        1.0 - half_tail
    }
}

#[inline(always)]
fn gelu_one(z: f32) -> f32 {
    z * phi_cdf(z)
}

/// d GELU / dz = Φ(z) + z φ(z).
#[inline(always)]
fn gelu_grad_one(z: f32) -> f32 {
    phi_cdf(z) + z * INV_SQRT_2PI * exp2_scalar(-0.5 * z * z * LOG2_E)
}

#[inline(always)]
fn forward_loop(z: &[f32], y: &mut [f32]) {
    for (y, &z) in y.iter_mut().zip(z) {
        *y = gelu_one(z);
    }
}

#[inline(always)]
fn backward_loop(z: &[f32], dy: &[f32], dz: &mut [f32]) {
    for ((d, &z), &g) in dz.iter_mut().zip(z).zip(dy) {
        *d = g * gelu_grad_one(z);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn forward_avx2(z: &[f32], y: &mut [f32]) {
    forward_loop(z, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn backward_avx2(z: &[f32], dy: &[f32], dz: &mut [f32]) {
    backward_loop(z, dy, dz)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")]
fn forward_avx512(z: &[f32], y: &mut [f32]) {
    forward_loop(z, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")]
fn backward_avx512(z: &[f32], dy: &[f32], dz: &mut [f32]) {
    backward_loop(z, dy, dz)
}

/// `y = GELU(z)` on the given instruction set.
pub fn gelu_forward_on(isa: Isa, z: &[f32], y: &mut [f32]) {
    isa.check_available();
    assert_eq!(z.len(), y.len());
    y.par_chunks_mut(CHUNK).zip(z.par_chunks(CHUNK)).for_each(|(y, z)| match isa {
        Isa::Portable => forward_loop(z, y),
        // SAFETY: check_available above: this CPU has AVX2 and FMA.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => unsafe { forward_avx2(z, y) },
        // SAFETY: check_available above: this CPU has AVX-512.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { forward_avx512(z, y) },
    });
}

/// `dz = dy * GELU'(z)` on the given instruction set.
pub fn gelu_backward_on(isa: Isa, z: &[f32], dy: &[f32], dz: &mut [f32]) {
    isa.check_available();
    assert!(z.len() == dy.len() && z.len() == dz.len());
    dz.par_chunks_mut(CHUNK).zip(z.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK))).for_each(|(dz, (z, dy))| match isa {
        Isa::Portable => backward_loop(z, dy, dz),
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => unsafe { backward_avx2(z, dy, dz) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { backward_avx512(z, dy, dz) },
    });
}

/// [`gelu_forward_on`] on the fastest instruction set here.
pub fn gelu_forward(z: &[f32], y: &mut [f32]) {
    gelu_forward_on(Isa::detect(), z, y)
}

/// [`gelu_backward_on`] on the fastest instruction set here.
pub fn gelu_backward(z: &[f32], dy: &[f32], dz: &mut [f32]) {
    gelu_backward_on(Isa::detect(), z, dy, dz)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2/sqrt(pi) times the integral of exp(-t^2) from a to b, in f64 by
    /// Simpson's rule (error < 1e-12 relative for the spans used here).
    fn erf_span(a: f64, b: f64) -> f64 {
        let n = 4000;
        let h = (b - a) / n as f64;
        let f = |t: f64| (-t * t).exp();
        let mut s = f(a) + f(b);
        for i in 1..n {
            s += f(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
        }
        s * h / 3.0 * 2.0 / std::f64::consts::PI.sqrt()
    }

    /// Φ(z) in f64: the tail as erfc directly, so it keeps its digits.
    fn cdf64(z: f64) -> f64 {
        let x = z.abs() / 2f64.sqrt();
        let tail = 0.5 * erf_span(x, x + 12.0); // Φ(-|z|)
        if z < 0.0 {
            tail
        } else {
            1.0 - tail
        }
    }

    fn points() -> Vec<f32> {
        (-1200..=1200).map(|i| i as f32 * 0.01).chain([0.0, -0.0, 1e-6, -1e-6, 30.0, -30.0, 1e4, -1e4]).collect()
    }

    #[test]
    fn gelu_matches_the_exact_function_on_every_path() {
        let z = points();
        let mut worst = 0f64;
        for isa in Isa::available() {
            let mut y = vec![0f32; z.len()];
            gelu_forward_on(isa, &z, &mut y);
            let dy = vec![1f32; z.len()];
            let mut g = vec![0f32; z.len()];
            gelu_backward_on(isa, &z, &dy, &mut g);
            for ((&z, &y), &g) in z.iter().zip(&y).zip(&g) {
                let zd = z as f64;
                let cdf = cdf64(zd);
                let want = zd * cdf;
                let pdf = (-0.5 * zd * zd).exp() / (2.0 * std::f64::consts::PI).sqrt();
                let want_grad = cdf + zd * pdf;
                // Relative to the value, even in the negative tail (where
                // 1 + erff(z / sqrt 2) in f32 loses every digit); the f32
                // rounding of the exponent -z^2/2 sets the bound there.
                let (e, eg) = ((y as f64 - want).abs(), (g as f64 - want_grad).abs());
                assert!(e <= 3e-7 * want.abs().max(0.01) + 2e-6 * want.abs(), "{isa:?}: gelu({z}) = {y}, want {want}");
                // The gradient Φ + zφ cancels near z = -0.75: absolute to its terms.
                assert!(
                    eg <= 3e-7 * (cdf + zd.abs() * pdf).max(0.01) + 2e-6 * want_grad.abs(),
                    "{isa:?}: gelu'({z}) = {g}, want {want_grad}"
                );
                if want.abs() > 1e-30 {
                    worst = worst.max(e / want.abs());
                }
            }
        }
        eprintln!("largest relative error of GELU: {worst:.2e}");
    }

    #[test]
    fn paths_agree_bit_for_bit_or_nearly() {
        let z = points();
        let mut outs = Vec::new();
        for isa in Isa::available() {
            let mut y = vec![0f32; z.len()];
            gelu_forward_on(isa, &z, &mut y);
            outs.push(y);
        }
        for y in &outs[1..] {
            for (a, b) in y.iter().zip(&outs[0]) {
                assert!((a - b).abs() <= 2e-7 * b.abs().max(1e-6), "{a} vs {b}");
            }
        }
    }
}
