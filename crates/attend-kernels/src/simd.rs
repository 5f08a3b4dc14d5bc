//! The few vector primitives the fused attention kernels are written in, for
//! two instruction sets: AVX2 + FMA (x86_64, checked at run time) and a
//! portable 8-lane version that the compiler vectorises for whatever the
//! target has. The kernels are generic over [`Simd`] and compiled once per
//! instruction set, so both paths run the same algorithm and the tests check
//! both against the reference.
//!
//! Also here: the register-blocked matrix micro-kernel (`C += A B` on a
//! 6 x 16 tile), which is what makes the attention blocks run near the
//! machine's GEMM speed.

use std::sync::OnceLock;

/// An instruction set the fused kernels can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Plain Rust on 8-lane arrays; runs everywhere.
    Portable,
    /// 256-bit AVX2 with fused multiply-add.
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl Isa {
    /// The fastest instruction set this CPU supports (detected once).
    pub fn detect() -> Isa {
        static DETECTED: OnceLock<Isa> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    return Isa::Avx2Fma;
                }
            }
            Isa::Portable
        })
    }

    /// Every instruction set available on this CPU (for tests and benches).
    pub fn available() -> Vec<Isa> {
        let mut all = vec![Isa::Portable];
        if Isa::detect() != Isa::Portable {
            all.push(Isa::detect());
        }
        all
    }
}

/// Lanes per vector in every implementation.
pub(crate) const LANES: usize = 8;
/// Columns of the micro-kernel tile (two vectors).
pub(crate) const NR: usize = 16;
/// Rows of the micro-kernel tile.
pub(crate) const MR: usize = 6;

/// 8 lanes of f32 and the operations the kernels need.
///
/// Safety of the pointer methods: the caller guarantees `LANES` readable
/// (or writable) elements at the pointer.
pub(crate) trait Simd: Copy {
    type V: Copy;
    fn splat(x: f32) -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// All lanes set to `*p`.
    unsafe fn broadcast(p: *const f32) -> Self::V;
    fn add(a: Self::V, b: Self::V) -> Self::V;
    fn sub(a: Self::V, b: Self::V) -> Self::V;
    fn mul(a: Self::V, b: Self::V) -> Self::V;
    /// `a * b + c`
    fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// Lane-wise max; a NaN in `b` propagates.
    fn max(a: Self::V, b: Self::V) -> Self::V;
    /// 2^x for x <= 127, relative error below 3e-7; exactly 0 for
    /// x <= -127 (and -inf); NaN stays NaN.
    fn exp2(x: Self::V) -> Self::V;
    /// Keeps lanes with `start <= key < end`, sets the others to -inf.
    fn keep_range(v: Self::V, key: f32, start: Self::V, end: Self::V) -> Self::V;
    /// Attention dropout: lane i is kept (times `scale`) when
    /// `fmix32(row_key ^ lane_salt[i]) >> 8 >= threshold`, else set to 0.
    unsafe fn dropout(v: Self::V, row_key: u32, lane_salt: *const u32, threshold: u32, scale: f32) -> Self::V;
}

/// Coefficients of 2^f on f in [-0.5, 0.5]: degree 5, fitted for minimax
/// relative error with the constant term pinned to 1 so that 2^0 = 1
/// exactly (1.9e-7 in f32 arithmetic, under two ulps). The linear term is
/// a fitted value near ln 2, not ln 2 itself.
#[allow(clippy::approx_constant)]
const EXP2_C: [f32; 6] = [1.0, 0.693_147, 0.240_222_42, 0.055_507_336, 0.009_671_513, 0.001_326_472_7];

/// 1.5 * 2^23 + 127: adding it rounds x to an integer n held in the low
/// mantissa bits as n + 127, which shifted left by 23 is the f32 2^n.
const EXP2_MAGIC: f32 = 12_583_039.0;

/// The murmur3 finaliser: a bijection on u32 with good avalanche.
#[inline(always)]
pub(crate) fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// Scalar 2^x with the same algorithm as the vector versions.
#[inline(always)]
pub(crate) fn exp2_scalar(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let x = x.max(-127.0);
    let t = x + EXP2_MAGIC;
    let f = x - (t - EXP2_MAGIC);
    let mut p = EXP2_C[5];
    for c in EXP2_C[..5].iter().rev() {
        p = p * f + c;
    }
    p * f32::from_bits(t.to_bits() << 23)
}

#[derive(Clone, Copy)]
pub(crate) struct Portable;

impl Simd for Portable {
    type V = [f32; LANES];
    #[inline(always)]
    fn splat(x: f32) -> Self::V {
        [x; LANES]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        unsafe { std::ptr::read_unaligned(p as *const [f32; LANES]) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        unsafe { std::ptr::write_unaligned(p as *mut [f32; LANES], v) }
    }
    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> Self::V {
        [unsafe { *p }; LANES]
    }
    #[inline(always)]
    fn add(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] + b[i])
    }
    #[inline(always)]
    fn sub(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] - b[i])
    }
    #[inline(always)]
    fn mul(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] * b[i])
    }
    #[inline(always)]
    fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] * b[i] + c[i])
    }
    #[inline(always)]
    fn max(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| if a[i] > b[i] { a[i] } else { b[i] })
    }
    #[inline(always)]
    fn exp2(x: Self::V) -> Self::V {
        std::array::from_fn(|i| exp2_scalar(x[i]))
    }
    #[inline(always)]
    fn keep_range(v: Self::V, key: f32, start: Self::V, end: Self::V) -> Self::V {
        std::array::from_fn(|i| if start[i] <= key && key < end[i] { v[i] } else { f32::NEG_INFINITY })
    }
    #[inline(always)]
    unsafe fn dropout(v: Self::V, row_key: u32, lane_salt: *const u32, threshold: u32, scale: f32) -> Self::V {
        let salt = unsafe { std::ptr::read_unaligned(lane_salt as *const [u32; LANES]) };
        std::array::from_fn(|i| if fmix32(row_key ^ salt[i]) >> 8 >= threshold { v[i] * scale } else { 0.0 })
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::Avx2;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Simd, EXP2_C, EXP2_MAGIC};
    use std::arch::x86_64::*;

    /// AVX2 + FMA. Only instantiated inside `#[target_feature(enable =
    /// "avx2,fma")]` functions reached after [`super::Isa::detect`].
    #[derive(Clone, Copy)]
    pub(crate) struct Avx2;

    impl Simd for Avx2 {
        type V = __m256;
        #[inline(always)]
        fn splat(x: f32) -> __m256 {
            unsafe { _mm256_set1_ps(x) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m256) {
            unsafe { _mm256_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn broadcast(p: *const f32) -> __m256 {
            unsafe { _mm256_broadcast_ss(&*p) }
        }
        #[inline(always)]
        fn add(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_add_ps(a, b) }
        }
        #[inline(always)]
        fn sub(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_sub_ps(a, b) }
        }
        #[inline(always)]
        fn mul(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_mul_ps(a, b) }
        }
        #[inline(always)]
        fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        fn max(a: __m256, b: __m256) -> __m256 {
            // maxps returns its second operand when either is NaN
            unsafe { _mm256_max_ps(a, b) }
        }
        #[inline(always)]
        fn exp2(x: __m256) -> __m256 {
            unsafe {
                // maxps returns its second operand on NaN, so NaN stays NaN
                let x = _mm256_max_ps(_mm256_set1_ps(-127.0), x);
                let magic = _mm256_set1_ps(EXP2_MAGIC);
                let t = _mm256_add_ps(x, magic);
                let f = _mm256_sub_ps(x, _mm256_sub_ps(t, magic));
                let mut p = _mm256_set1_ps(EXP2_C[5]);
                for &c in EXP2_C[..5].iter().rev() {
                    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(c));
                }
                _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_castps_si256(t))))
            }
        }
        #[inline(always)]
        fn keep_range(v: __m256, key: f32, start: __m256, end: __m256) -> __m256 {
            unsafe {
                let key = _mm256_set1_ps(key);
                let inside = _mm256_and_ps(_mm256_cmp_ps::<_CMP_LE_OQ>(start, key), _mm256_cmp_ps::<_CMP_LT_OQ>(key, end));
                _mm256_blendv_ps(_mm256_set1_ps(f32::NEG_INFINITY), v, inside)
            }
        }
        #[inline(always)]
        unsafe fn dropout(v: __m256, row_key: u32, lane_salt: *const u32, threshold: u32, scale: f32) -> __m256 {
            unsafe {
                let mut h = _mm256_xor_si256(_mm256_set1_epi32(row_key as i32), _mm256_loadu_si256(lane_salt as *const __m256i));
                h = _mm256_xor_si256(h, _mm256_srli_epi32::<16>(h));
                h = _mm256_mullo_epi32(h, _mm256_set1_epi32(0x85eb_ca6bu32 as i32));
                h = _mm256_xor_si256(h, _mm256_srli_epi32::<13>(h));
                h = _mm256_mullo_epi32(h, _mm256_set1_epi32(0xc2b2_ae35u32 as i32));
                h = _mm256_xor_si256(h, _mm256_srli_epi32::<16>(h));
                // (h >> 8) fits in 24 bits, so a signed compare is exact
                let top = _mm256_srli_epi32::<8>(h);
                let drop = _mm256_cmpgt_epi32(_mm256_set1_epi32(threshold as i32), top);
                let kept = _mm256_mul_ps(v, _mm256_set1_ps(scale));
                _mm256_andnot_ps(_mm256_castsi256_ps(drop), kept)
            }
        }
    }
}

/// One `C[MR x 16] (+)= A B` tile: `A(r, p) = a[r * a_rs + p * a_ks]`,
/// `B(p, 0..16) = b[p * ldb ..]`, `C(r, 0..16) = c[r * ldc ..]`.
///
/// Safety: every addressed element exists.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<S: Simd, const M: usize>(
    k: usize,
    a: *const f32,
    a_rs: usize,
    a_ks: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    unsafe {
        let mut acc = [[S::splat(0.0); 2]; M];
        if accumulate {
            for (r, row) in acc.iter_mut().enumerate() {
                row[0] = S::load(c.add(r * ldc));
                row[1] = S::load(c.add(r * ldc + 8));
            }
        }
        let mut a = a;
        let mut b = b;
        for _ in 0..k {
            let b0 = S::load(b);
            let b1 = S::load(b.add(8));
            for (r, row) in acc.iter_mut().enumerate() {
                let ar = S::broadcast(a.add(r * a_rs));
                row[0] = S::fma(ar, b0, row[0]);
                row[1] = S::fma(ar, b1, row[1]);
            }
            a = a.add(a_ks);
            b = b.add(ldb);
        }
        for (r, row) in acc.iter().enumerate() {
            S::store(c.add(r * ldc), row[0]);
            S::store(c.add(r * ldc + 8), row[1]);
        }
    }
}

/// `C[m x n] (+)= A[m x k] B[k x n]` for a block, `n` a multiple of 16, with
/// A strided as in [`tile`]. Column panels outside, row tiles inside, so a
/// 16-wide panel of B stays in L1 while the rows of A stream past it.
///
/// Safety: every addressed element exists.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm<S: Simd>(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    a_rs: usize,
    a_ks: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    debug_assert_eq!(n % NR, 0);
    unsafe {
        for j in (0..n).step_by(NR) {
            let (b, c) = (b.add(j), c.add(j));
            let mut i = 0;
            while i + MR <= m {
                tile::<S, MR>(k, a.add(i * a_rs), a_rs, a_ks, b, ldb, c.add(i * ldc), ldc, accumulate);
                i += MR;
            }
            let (a, c) = (a.add(i * a_rs), c.add(i * ldc));
            match m - i {
                0 => {}
                1 => tile::<S, 1>(k, a, a_rs, a_ks, b, ldb, c, ldc, accumulate),
                2 => tile::<S, 2>(k, a, a_rs, a_ks, b, ldb, c, ldc, accumulate),
                3 => tile::<S, 3>(k, a, a_rs, a_ks, b, ldb, c, ldc, accumulate),
                4 => tile::<S, 4>(k, a, a_rs, a_ks, b, ldb, c, ldc, accumulate),
                _ => tile::<S, 5>(k, a, a_rs, a_ks, b, ldb, c, ldc, accumulate),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp2_is_accurate_and_exact_at_the_ends() {
        for i in -2000..2000 {
            let x = i as f32 * 0.0637;
            let want = (x as f64).exp2();
            let got = exp2_scalar(x) as f64;
            if x > -126.0 {
                assert!(((got - want) / want).abs() < 3e-7, "2^{x}: {got} vs {want}");
            }
        }
        assert_eq!(exp2_scalar(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp2_scalar(-200.0), 0.0);
        assert!(exp2_scalar(f32::NAN).is_nan());
        assert_eq!(exp2_scalar(0.0), 1.0);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_primitives_match_portable() {
        if Isa::detect() != Isa::Avx2Fma {
            return;
        }
        #[target_feature(enable = "avx2,fma")]
        fn run(x: &[f32; 8], salt: &[u32; 8]) -> ([f32; 8], [f32; 8], [f32; 8]) {
            unsafe {
                let v = Avx2::load(x.as_ptr());
                let mut e = [0f32; 8];
                Avx2::store(e.as_mut_ptr(), Avx2::exp2(v));
                let mut k = [0f32; 8];
                let start = Avx2::load([0., 1., 2., 3., 4., 5., 6., 7.].as_ptr());
                let end = Avx2::splat(5.0);
                Avx2::store(k.as_mut_ptr(), Avx2::keep_range(v, 3.0, start, end));
                let mut d = [0f32; 8];
                Avx2::store(d.as_mut_ptr(), Avx2::dropout(v, 12345, salt.as_ptr(), 1 << 23, 2.0));
                (e, k, d)
            }
        }
        let x = [-300.0, -126.5, -3.3, -0.5, 0.0, 0.49, 127.0, f32::NEG_INFINITY];
        let salt: [u32; 8] = std::array::from_fn(|i| fmix32(i as u32 * 7 + 1));
        let (e, k, d) = unsafe { run(&x, &salt) };
        let p = Portable::exp2(x);
        let pk = Portable::keep_range(x, 3.0, [0., 1., 2., 3., 4., 5., 6., 7.], [5.0; 8]);
        let pd = unsafe { Portable::dropout(x, 12345, salt.as_ptr(), 1 << 23, 2.0) };
        for i in 0..8 {
            assert!((e[i] - p[i]).abs() <= 1e-7 * p[i].abs(), "{i}: {} vs {}", e[i], p[i]);
            assert_eq!(k[i].to_bits(), pk[i].to_bits());
            assert_eq!(d[i].to_bits(), pd[i].to_bits());
        }
    }

    fn run_gemm(isa: Isa, m: usize, n: usize, k: usize, a: &[f32], a_rs: usize, a_ks: usize, b: &[f32], c: &mut [f32], acc: bool) {
        match isa {
            Isa::Portable => unsafe { gemm::<Portable>(m, n, k, a.as_ptr(), a_rs, a_ks, b.as_ptr(), n, c.as_mut_ptr(), n, acc) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn go(m: usize, n: usize, k: usize, a: &[f32], a_rs: usize, a_ks: usize, b: &[f32], c: &mut [f32], acc: bool) {
                    unsafe { gemm::<Avx2>(m, n, k, a.as_ptr(), a_rs, a_ks, b.as_ptr(), n, c.as_mut_ptr(), n, acc) }
                }
                unsafe { go(m, n, k, a, a_rs, a_ks, b, c, acc) }
            }
        }
    }

    #[test]
    fn gemm_matches_naive_for_every_tail() {
        for isa in Isa::available() {
            for m in [1, 5, 6, 7, 13] {
                for (n, k) in [(16, 1), (32, 9), (48, 64)] {
                    // A stored transposed (a_rs = 1, a_ks = m) to test strides
                    let a: Vec<f32> = (0..m * k).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
                    let b: Vec<f32> = (0..k * n).map(|i| ((i * 13) % 7) as f32 - 3.0).collect();
                    let mut c: Vec<f32> = (0..m * n).map(|i| i as f32).collect();
                    let c0 = c.clone();
                    run_gemm(isa, m, n, k, &a, 1, m, &b, &mut c, true);
                    for r in 0..m {
                        for j in 0..n {
                            let want: f32 = c0[r * n + j] + (0..k).map(|p| a[p * m + r] * b[p * n + j]).sum::<f32>();
                            assert_eq!(c[r * n + j], want, "{isa:?} m {m} n {n} k {k} at ({r},{j})");
                        }
                    }
                    run_gemm(isa, m, n, k, &a, 1, m, &b, &mut c, false);
                    let want: f32 = (0..k).map(|p| a[p * m] * b[p * n]).sum();
                    assert_eq!(c[0], want);
                }
            }
        }
    }
}
