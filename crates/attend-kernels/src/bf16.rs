//! Matrix products with bf16 inputs and f32 sums, for inference on CPUs
//! with AVX-512 BF16 (Zen 4 and later, Intel Cooper Lake and later).
//!
//! `dst += bf16(a) bf16(b)`: each input rounded to bfloat16 (8 bits of
//! mantissa, round to nearest even), each pair of products added into f32
//! accumulators by `VDPBF16PS`, which does 32 multiply-adds per 512-bit
//! instruction where an f32 FMA does 16. On a Zen 4 that instruction runs
//! at the FMA's rate, so a product bound by arithmetic can run up to twice
//! as fast. Rounding the inputs costs accuracy (a relative error of about
//! 2^-9 per input, averaged down over a dot product), so this path is for
//! inference only and only where the caller asks for it
//! ([`crate::matmul::Precision`]); training never uses it.
//!
//! The layout: `b` is packed once per call into panels of up to 64 columns,
//! each row pair `(2p, 2p + 1)` stored as one 32-bit word per column (the
//! two bf16 values the instruction multiplies by one pair of `a`); `a` is
//! packed per block of rows into bf16 rows (a pair of neighbours is again
//! one 32-bit word, broadcast to every lane). The micro-kernel keeps
//! 6 rows x 4 vectors (6 x 64 outputs) in 24 registers. Every output is
//! summed in the same order whatever the thread count.

#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_imports, unused_variables))]

use rayon::prelude::*;

/// Rows per parallel task and per packed block of `a`. Fixed, so the work
/// each output gets does not depend on the thread count.
const ROW_BLOCK: usize = 96;
/// Rows of one micro-kernel tile.
const MR: usize = 6;
/// Vectors (16 columns each) of one micro-kernel tile, and of a panel of `b`.
const NV: usize = 4;
/// Row pairs of `b` (bf16 pairs) a block multiplies at a time: 16 KiB of a
/// 64-column panel.
const KC: usize = 64;

/// Whether this CPU has the instructions (AVX-512 F and BW for the loads
/// and masks, AVX-512 BF16 for the products). Detected once.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            use std::is_x86_feature_detected as has;
            has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512bf16")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The reference: `dst[i, j] += sum_p bf16(a[i, p]) bf16(b[p, j])`, the
/// products exact and summed in f64. `a` `[m, k]` with row stride `a_rs`,
/// `b` `[k, n]` with row stride `b_rs`, `dst` `[m, n]` row-major.
#[allow(clippy::too_many_arguments)]
pub fn gemm_acc_reference(dst: &mut [f32], a: &[f32], a_rs: usize, b: &[f32], b_rs: usize, m: usize, k: usize, n: usize) {
    let r = |x: f32| half::bf16::from_f32(x).to_f64();
    for i in 0..m {
        for j in 0..n {
            let s: f64 = (0..k).map(|p| r(a[i * a_rs + p]) * r(b[p * b_rs + j])).sum();
            dst[i * n + j] = (dst[i * n + j] as f64 + s) as f32;
        }
    }
}

/// `dst[m, n] += bf16(a) bf16(b)` with f32 sums: `a` `[m, k]` (row stride
/// `a_rs`, columns contiguous), `b` `[k, n]` (row stride `b_rs`, columns
/// contiguous), `dst` row-major. `parallel` splits the rows over rayon's
/// current pool in fixed blocks (the result does not depend on it).
///
/// # Panics
/// If this CPU lacks the instructions ([`available`]) or a slice is too
/// short for its shape.
#[allow(clippy::too_many_arguments)]
pub fn gemm_acc_bf16(dst: &mut [f32], a: &[f32], a_rs: usize, b: &[f32], b_rs: usize, m: usize, k: usize, n: usize, parallel: bool) {
    assert!(available(), "this CPU has no AVX-512 BF16; use the f32 product");
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    assert!(dst.len() >= m * n, "dst must be [m, n]");
    assert!(a.len() >= (m - 1) * a_rs + k && a_rs >= k, "a must be [m, k] with row stride >= k");
    assert!(b.len() >= (k - 1) * b_rs + n && b_rs >= n, "b must be [k, n] with row stride >= n");
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `available` checked the instructions; the asserts above
        // keep every index the packing and the tiles reach in bounds.
        let packed = unsafe { x86::pack_b(b, b_rs, k, n) };
        let k2 = k.div_ceil(2);
        let block = |(blk, rows): (usize, &mut [f32])| {
            let r0 = blk * ROW_BLOCK;
            let mr = rows.len() / n;
            // SAFETY: as above; `rows` is `dst`'s rows r0..r0 + mr.
            unsafe {
                let ap = x86::pack_a(&a[r0 * a_rs..], a_rs, mr, k);
                x86::block(rows, &ap, k2, &packed, n, mr);
            }
        };
        if parallel && rayon::current_num_threads() > 1 && m > ROW_BLOCK {
            dst[..m * n].par_chunks_mut(ROW_BLOCK * n).enumerate().for_each(block);
        } else {
            dst[..m * n].chunks_mut(ROW_BLOCK * n).enumerate().for_each(block);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{KC, MR, NV};
    use std::arch::x86_64::*;

    const W: usize = NV * 16;

    /// A mask of the first `n` of 16 lanes.
    #[inline(always)]
    fn lanes(n: usize) -> __mmask16 {
        if n >= 16 {
            0xffff
        } else {
            ((1u32 << n) - 1) as __mmask16
        }
    }

    /// `b` `[k, n]` as panels of `W` columns (the last one narrower, its
    /// width rounded up to whole vectors and zero-filled); in a panel, row
    /// pair `p` is one u32 per column: `bf16(b[2p, j]) | bf16(b[2p + 1, j]) << 16`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    pub(super) unsafe fn pack_b(b: &[f32], b_rs: usize, k: usize, n: usize) -> Vec<u32> {
        let k2 = k.div_ceil(2);
        let mut out = vec![0u32; k2 * n.div_ceil(16) * 16];
        let mut at = 0;
        for c0 in (0..n).step_by(W) {
            let vectors = (n - c0).min(W).div_ceil(16);
            for p in 0..k2 {
                for v in 0..vectors {
                    let c = c0 + v * 16;
                    let mask = lanes(n - c);
                    let lo = _mm512_maskz_loadu_ps(mask, b.as_ptr().add(2 * p * b_rs + c));
                    let hi = if 2 * p + 1 < k {
                        _mm512_maskz_loadu_ps(mask, b.as_ptr().add((2 * p + 1) * b_rs + c))
                    } else {
                        _mm512_setzero_ps()
                    };
                    let lo = _mm512_cvtepu16_epi32(std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(lo)));
                    let hi = _mm512_cvtepu16_epi32(std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(hi)));
                    let pair = _mm512_or_si512(lo, _mm512_slli_epi32::<16>(hi));
                    _mm512_storeu_si512(out.as_mut_ptr().add(at + (p * vectors + v) * 16).cast(), pair);
                }
            }
            at += k2 * vectors * 16;
        }
        out
    }

    /// `rows` rows of `a` (row stride `a_rs`) as bf16, each padded to an
    /// even length with a zero, as u32 pairs `[rows, k2]`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    pub(super) unsafe fn pack_a(a: &[f32], a_rs: usize, rows: usize, k: usize) -> Vec<u32> {
        let k2 = k.div_ceil(2);
        let mut out = vec![0u32; rows * k2];
        for r in 0..rows {
            let dst = out.as_mut_ptr().add(r * k2).cast::<u16>();
            for c in (0..k).step_by(16) {
                let mask = lanes(k - c);
                let x = _mm512_maskz_loadu_ps(mask, a.as_ptr().add(r * a_rs + c));
                let h = std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(x));
                _mm256_mask_storeu_epi16(dst.add(c).cast(), mask, h);
            }
        }
        out
    }

    /// `dst` (`mr` rows of `n`) += the packed `a` rows times every panel,
    /// `KC` row pairs of `b` at a time (a panel's share then stays in the
    /// L1 cache while every tile of the block reads it).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    pub(super) unsafe fn block(dst: &mut [f32], ap: &[u32], k2: usize, bp: &[u32], n: usize, mr: usize) {
        for p0 in (0..k2).step_by(KC) {
            let pairs = (k2 - p0).min(KC);
            let mut at = 0;
            for c0 in (0..n).step_by(W) {
                let width = (n - c0).min(W);
                let vectors = width.div_ceil(16);
                let panel = &bp[at + p0 * vectors * 16..at + (p0 + pairs) * vectors * 16];
                for r0 in (0..mr).step_by(MR) {
                    let rows = (mr - r0).min(MR);
                    let a = &ap[r0 * k2 + p0..];
                    let d = dst.as_mut_ptr().add(r0 * n + c0);
                    macro_rules! tile {
                        ($($r:literal),*) => {
                            match (rows, vectors) {
                                $(
                                    ($r, 1) => tile::<$r, 1>(a, k2, pairs, panel, d, n, width),
                                    ($r, 2) => tile::<$r, 2>(a, k2, pairs, panel, d, n, width),
                                    ($r, 3) => tile::<$r, 3>(a, k2, pairs, panel, d, n, width),
                                    ($r, _) => tile::<$r, 4>(a, k2, pairs, panel, d, n, width),
                                )*
                                _ => unreachable!("a tile has 1 to {MR} rows"),
                            }
                        };
                    }
                    tile!(1, 2, 3, 4, 5, 6);
                }
                at += k2 * vectors * 16;
            }
        }
    }

    /// One tile: `R` rows x `V` vectors of `dst` (row stride `n`, the first
    /// `width` columns real) += `a`'s rows (stride `k2`, `pairs` of them
    /// read) times the panel's `pairs` row pairs.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const R: usize, const V: usize>(a: &[u32], k2: usize, pairs: usize, panel: &[u32], d: *mut f32, n: usize, width: usize) {
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        let (ap, bp) = (a.as_ptr(), panel.as_ptr());
        for p in 0..pairs {
            let mut bv = [_mm512_setzero_si512(); V];
            for (v, b) in bv.iter_mut().enumerate() {
                *b = _mm512_loadu_si512(bp.add((p * V + v) * 16).cast());
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(*ap.add(r * k2 + p) as i32));
                for (acc, b) in row.iter_mut().zip(&bv) {
                    *acc = _mm512_dpbf16_ps(*acc, x, std::mem::transmute::<__m512i, __m512bh>(*b));
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, acc) in row.iter().enumerate() {
                let mask = lanes(width - v * 16);
                let out = d.add(r * n + v * 16);
                let sum = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, out), *acc);
                _mm512_mask_storeu_ps(out, mask, sum);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed.wrapping_mul(40_503)) >> 8) as f32 / (1 << 24) as f32 - 0.5)
            .collect()
    }

    /// The reference rounds as `half` does: to nearest, ties to even; and
    /// the kernel's packing (the CPU's `VCVTNEPS2BF16`) rounds every input
    /// as the reference does.
    #[test]
    fn rounding_is_to_nearest_even_as_the_reference() {
        let bits = |x: f32| half::bf16::from_f32(x).to_bits();
        assert_eq!(bits(1.0), 0x3f80);
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even 1.
        assert_eq!(bits(1.0 + 1.0 / 256.0), 0x3f80);
        // 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 and 1 + 2^-6: to the even 1 + 2^-6.
        assert_eq!(bits(1.0 + 3.0 / 256.0), 0x3f82);
        // just above halfway rounds up
        assert_eq!(bits(f32::from_bits(0x3f80_8001)), 0x3f81);
        if !available() {
            eprintln!("skipped the kernel's half: this CPU has no AVX-512 BF16");
            return;
        }
        let mut xs: Vec<f32> = values(1000, 7).iter().map(|x| x * 100.0).collect();
        xs.extend([
            1.0 + 1.0 / 256.0,
            1.0 + 3.0 / 256.0,
            f32::from_bits(0x3f80_8001),
            -2.5,
            0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ]);
        // SAFETY: available() checked the instructions.
        let packed = unsafe { x86::pack_a(&xs, xs.len(), 1, xs.len()) };
        let kernel = packed.iter().flat_map(|p| [*p as u16, (*p >> 16) as u16]);
        for (x, k) in xs.iter().zip(kernel) {
            if x.is_nan() {
                assert!(half::bf16::from_bits(k).is_nan(), "NaN packed as {k:#06x}");
            } else {
                assert_eq!(k, bits(*x), "{x}: the kernel rounds to {k:#06x}, the reference to {:#06x}", bits(*x));
            }
        }
    }

    /// Every tile shape (row tails 1-5, column tails within a vector and
    /// within a panel, odd `k`), strided rows, serial and parallel, against
    /// the exact product of the rounded inputs; and the whole against the
    /// f32 product within what rounding the inputs allows.
    #[test]
    fn products_match_the_reference() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512 BF16");
            return;
        }
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let shapes = [(1, 1, 1), (5, 3, 7), (6, 16, 16), (7, 17, 65), (97, 320, 256), (200, 144, 192), (13, 256, 17), (101, 33, 50)];
        for (m, k, n) in shapes {
            let (a_rs, b_rs) = (k + 3, n + 5);
            let a = values(m * a_rs, 1);
            let b = values(k * b_rs, 2);
            let c0 = values(m * n, 3);
            let mut want = c0.clone();
            gemm_acc_reference(&mut want, &a, a_rs, &b, b_rs, m, k, n);
            let mut f32_product = c0.clone();
            crate::matmul::gemm_acc_f32(&mut f32_product, &a, a_rs, 1, &b, b_rs, 1, m, k, n, false);
            for parallel in [false, true] {
                let mut got = c0.clone();
                pool.install(|| gemm_acc_bf16(&mut got, &a, a_rs, &b, b_rs, m, k, n, parallel));
                for i in 0..m {
                    for j in 0..n {
                        let scale: f32 = (0..k).map(|p| (a[i * a_rs + p] * b[p * b_rs + j]).abs()).sum::<f32>() + c0[i * n + j].abs();
                        let (g, w, f) = (got[i * n + j], want[i * n + j], f32_product[i * n + j]);
                        assert!((g - w).abs() <= 1e-6 * scale + 1e-7, "{m}x{k}x{n} ({i}, {j}): {g} vs exact {w}");
                        assert!((g - f).abs() <= 2.0 / 256.0 * scale, "{m}x{k}x{n} ({i}, {j}): {g} vs f32 {f}");
                    }
                }
                if parallel {
                    let mut serial = c0.clone();
                    gemm_acc_bf16(&mut serial, &a, a_rs, &b, b_rs, m, k, n, false);
                    assert_eq!(got, serial, "{m}x{k}x{n}: the thread count changed the result");
                }
            }
        }
    }
}
