//! The few vector primitives the fused attention kernels are written in, for
//! three instruction sets: AVX-512 (x86_64, F + DQ + BW + VL, checked at run
//! time), AVX2 + FMA (x86_64, checked at run time) and a portable version
//! that the compiler vectorises for whatever the target has. A vector is 16
//! f32 lanes in every implementation: one 512-bit register, two 256-bit
//! registers (whose independent halves keep the pipelines full), or an
//! array. The kernels are generic over [`Simd`] and compiled once per
//! instruction set, so every path runs the same algorithm, lane for lane
//! the same operations; the tests check each against the reference, and
//! AVX-512 against AVX2 bit for bit.
//!
//! Also here: the register-blocked matrix micro-kernel (`C += A B` on a
//! tile of rows x vectors: 6 x 4 vectors on AVX-512, 6 x 1 on AVX2, 4 x 1
//! portable), which is what makes the attention blocks run near the
//! machine's GEMM speed.

use std::sync::OnceLock;

/// An instruction set the fused kernels can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Plain Rust on 16-lane arrays; runs everywhere.
    Portable,
    /// 256-bit AVX2 with fused multiply-add.
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    /// 512-bit AVX-512 (F, DQ, BW and VL: the x86-64-v4 set).
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    /// The fastest instruction set this CPU supports (detected once).
    pub fn detect() -> Isa {
        static DETECTED: OnceLock<Isa> = OnceLock::new();
        *DETECTED.get_or_init(|| *Isa::available_list().last().expect("portable is always available"))
    }

    /// Every instruction set available on this CPU, slowest first (for
    /// tests and benches).
    pub fn available() -> Vec<Isa> {
        Isa::available_list().to_vec()
    }

    /// Whether this CPU runs `self`.
    pub fn is_available(self) -> bool {
        Isa::available_list().contains(&self)
    }

    /// Panics unless this CPU runs `self`: the `_on` entry points take an
    /// instruction set from the caller, and running code compiled for
    /// instructions the CPU lacks would be undefined behaviour.
    pub fn check_available(self) {
        assert!(self.is_available(), "this CPU cannot run the {self:?} kernels; it has {:?}", Isa::available_list());
    }

    fn available_list() -> &'static [Isa] {
        static AVAILABLE: OnceLock<Vec<Isa>> = OnceLock::new();
        AVAILABLE
            .get_or_init(|| {
                #[allow(unused_mut)]
                let mut all = vec![Isa::Portable];
                #[cfg(target_arch = "x86_64")]
                {
                    use std::is_x86_feature_detected as has;
                    if has!("avx2") && has!("fma") {
                        all.push(Isa::Avx2Fma);
                        if has!("avx512f") && has!("avx512dq") && has!("avx512bw") && has!("avx512vl") {
                            all.push(Isa::Avx512);
                        }
                    }
                }
                all
            })
            .as_slice()
    }

    /// The paths compiled for this target that this CPU cannot run, by
    /// name (tests print them as skipped).
    pub fn missing() -> Vec<&'static str> {
        let mut missing = Vec::new();
        #[cfg(target_arch = "x86_64")]
        for (isa, name) in [(Isa::Avx2Fma, "AVX2 + FMA"), (Isa::Avx512, "AVX-512 (F, DQ, BW, VL)")] {
            if !isa.is_available() {
                missing.push(name);
            }
        }
        missing
    }
}

/// Lanes per vector in every implementation.
pub(crate) const LANES: usize = 16;
/// Columns of the micro-kernel tile (one vector).
pub(crate) const NR: usize = LANES;

/// 16 lanes of f32 and the operations the kernels need.
///
/// Safety of the pointer methods: the caller guarantees `LANES` readable
/// (or writable) elements at the pointer.
pub(crate) trait Simd: Copy {
    type V: Copy;
    /// Vector accumulators of the micro-kernel tile: as many as the
    /// registers hold beside the B row and a broadcast.
    const ACC: usize;
    /// Width of the micro-kernel tile in vectors (its height is `ACC / NV`).
    const NV: usize;
    /// Running maxima (1 to 4) a max over rows keeps, to cover the max
    /// latency where registers allow.
    const MAX_CHAINS: usize;
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

/// `[f(0), ..., f(15)]`, always inlined (`std::array::from_fn` is left as a
/// call once the kernel around it grows, and the portable path slows by 10%).
#[inline(always)]
fn lanes(f: impl Fn(usize) -> f32) -> [f32; LANES] {
    let mut out = [0f32; LANES];
    for (i, o) in out.iter_mut().enumerate() {
        *o = f(i);
    }
    out
}

impl Simd for Portable {
    type V = [f32; LANES];
    /// 4 x 16 accumulators fill the 16 registers of baseline x86_64 SSE
    /// (and half of NEON's 32).
    const ACC: usize = 4;
    const NV: usize = 1;
    /// More arrays would spill on baseline x86_64's 16 registers.
    const MAX_CHAINS: usize = 1;
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
        lanes(|i| a[i] + b[i])
    }
    #[inline(always)]
    fn sub(a: Self::V, b: Self::V) -> Self::V {
        lanes(|i| a[i] - b[i])
    }
    #[inline(always)]
    fn mul(a: Self::V, b: Self::V) -> Self::V {
        lanes(|i| a[i] * b[i])
    }
    #[inline(always)]
    fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        lanes(|i| a[i] * b[i] + c[i])
    }
    #[inline(always)]
    fn max(a: Self::V, b: Self::V) -> Self::V {
        lanes(|i| if a[i] > b[i] { a[i] } else { b[i] })
    }
    #[inline(always)]
    fn exp2(x: Self::V) -> Self::V {
        lanes(|i| exp2_scalar(x[i]))
    }
    #[inline(always)]
    fn keep_range(v: Self::V, key: f32, start: Self::V, end: Self::V) -> Self::V {
        lanes(|i| if start[i] <= key && key < end[i] { v[i] } else { f32::NEG_INFINITY })
    }
    #[inline(always)]
    unsafe fn dropout(v: Self::V, row_key: u32, lane_salt: *const u32, threshold: u32, scale: f32) -> Self::V {
        let salt = unsafe { std::ptr::read_unaligned(lane_salt as *const [u32; LANES]) };
        lanes(|i| if fmix32(row_key ^ salt[i]) >> 8 >= threshold { v[i] * scale } else { 0.0 })
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::Avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) use avx512::Avx512;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Simd, EXP2_C, EXP2_MAGIC};
    use std::arch::x86_64::*;

    /// AVX2 + FMA, a vector as two 256-bit registers. Only instantiated
    /// inside `#[target_feature(enable = "avx2,fma")]` functions reached
    /// after [`super::Isa::detect`].
    #[derive(Clone, Copy)]
    pub(crate) struct Avx2;

    /// Lanes 0..8 and 8..16.
    #[derive(Clone, Copy)]
    pub(crate) struct Pair(__m256, __m256);

    #[inline(always)]
    fn map2(a: Pair, b: Pair, f: impl Fn(__m256, __m256) -> __m256) -> Pair {
        Pair(f(a.0, b.0), f(a.1, b.1))
    }

    #[inline(always)]
    fn exp2_half(x: __m256) -> __m256 {
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
    fn keep_range_half(v: __m256, key: __m256, start: __m256, end: __m256) -> __m256 {
        unsafe {
            let inside = _mm256_and_ps(_mm256_cmp_ps::<_CMP_LE_OQ>(start, key), _mm256_cmp_ps::<_CMP_LT_OQ>(key, end));
            _mm256_blendv_ps(_mm256_set1_ps(f32::NEG_INFINITY), v, inside)
        }
    }

    #[inline(always)]
    unsafe fn dropout_half(v: __m256, row_key: u32, lane_salt: *const u32, threshold: u32, scale: f32) -> __m256 {
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

    impl Simd for Avx2 {
        type V = Pair;
        /// 6 x 2 accumulators of the 16 ymm registers.
        const ACC: usize = 6;
        const NV: usize = 1;
        const MAX_CHAINS: usize = 4;
        #[inline(always)]
        fn splat(x: f32) -> Pair {
            unsafe { Pair(_mm256_set1_ps(x), _mm256_set1_ps(x)) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Pair {
            unsafe { Pair(_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: Pair) {
            unsafe {
                _mm256_storeu_ps(p, v.0);
                _mm256_storeu_ps(p.add(8), v.1);
            }
        }
        #[inline(always)]
        unsafe fn broadcast(p: *const f32) -> Pair {
            let x = unsafe { _mm256_broadcast_ss(&*p) };
            Pair(x, x)
        }
        #[inline(always)]
        fn add(a: Pair, b: Pair) -> Pair {
            map2(a, b, |a, b| unsafe { _mm256_add_ps(a, b) })
        }
        #[inline(always)]
        fn sub(a: Pair, b: Pair) -> Pair {
            map2(a, b, |a, b| unsafe { _mm256_sub_ps(a, b) })
        }
        #[inline(always)]
        fn mul(a: Pair, b: Pair) -> Pair {
            map2(a, b, |a, b| unsafe { _mm256_mul_ps(a, b) })
        }
        #[inline(always)]
        fn fma(a: Pair, b: Pair, c: Pair) -> Pair {
            unsafe { Pair(_mm256_fmadd_ps(a.0, b.0, c.0), _mm256_fmadd_ps(a.1, b.1, c.1)) }
        }
        #[inline(always)]
        fn max(a: Pair, b: Pair) -> Pair {
            // maxps returns its second operand when either is NaN
            map2(a, b, |a, b| unsafe { _mm256_max_ps(a, b) })
        }
        #[inline(always)]
        fn exp2(x: Pair) -> Pair {
            Pair(exp2_half(x.0), exp2_half(x.1))
        }
        #[inline(always)]
        fn keep_range(v: Pair, key: f32, start: Pair, end: Pair) -> Pair {
            let key = unsafe { _mm256_set1_ps(key) };
            Pair(keep_range_half(v.0, key, start.0, end.0), keep_range_half(v.1, key, start.1, end.1))
        }
        #[inline(always)]
        unsafe fn dropout(v: Pair, row_key: u32, lane_salt: *const u32, threshold: u32, scale: f32) -> Pair {
            unsafe {
                Pair(
                    dropout_half(v.0, row_key, lane_salt, threshold, scale),
                    dropout_half(v.1, row_key, lane_salt.add(8), threshold, scale),
                )
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Simd, EXP2_C, EXP2_MAGIC};
    use std::arch::x86_64::*;

    /// AVX-512, a vector as one 512-bit register. Only instantiated inside
    /// `#[target_feature(enable = "avx512f,...")]` functions reached after
    /// [`super::Isa::detect`].
    #[derive(Clone, Copy)]
    pub(crate) struct Avx512;

    impl Simd for Avx512 {
        type V = __m512;
        /// 24 accumulators of the 32 zmm registers, as 6 rows x 4 vectors:
        /// each step of k loads 4 vectors of B and broadcasts 6 values of
        /// A for 24 FMAs, so the two FMA pipes, not the two load ports,
        /// set the pace (a 12 x 1 tile needs 13 loads per 12 FMAs).
        const ACC: usize = 24;
        const NV: usize = 4;
        const MAX_CHAINS: usize = 4;
        #[inline(always)]
        fn splat(x: f32) -> __m512 {
            unsafe { _mm512_set1_ps(x) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m512) {
            unsafe { _mm512_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn broadcast(p: *const f32) -> __m512 {
            unsafe { _mm512_set1_ps(*p) }
        }
        #[inline(always)]
        fn add(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_add_ps(a, b) }
        }
        #[inline(always)]
        fn sub(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_sub_ps(a, b) }
        }
        #[inline(always)]
        fn mul(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_mul_ps(a, b) }
        }
        #[inline(always)]
        fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
            unsafe { _mm512_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        fn max(a: __m512, b: __m512) -> __m512 {
            // vmaxps returns its second operand when either is NaN
            unsafe { _mm512_max_ps(a, b) }
        }
        #[inline(always)]
        fn exp2(x: __m512) -> __m512 {
            unsafe {
                let x = _mm512_max_ps(_mm512_set1_ps(-127.0), x);
                let magic = _mm512_set1_ps(EXP2_MAGIC);
                let t = _mm512_add_ps(x, magic);
                let f = _mm512_sub_ps(x, _mm512_sub_ps(t, magic));
                let mut p = _mm512_set1_ps(EXP2_C[5]);
                for &c in EXP2_C[..5].iter().rev() {
                    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c));
                }
                _mm512_mul_ps(p, _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_castps_si512(t))))
            }
        }
        #[inline(always)]
        fn keep_range(v: __m512, key: f32, start: __m512, end: __m512) -> __m512 {
            unsafe {
                let key = _mm512_set1_ps(key);
                let inside = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(start, key) & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(key, end);
                _mm512_mask_blend_ps(inside, _mm512_set1_ps(f32::NEG_INFINITY), v)
            }
        }
        #[inline(always)]
        unsafe fn dropout(v: __m512, row_key: u32, lane_salt: *const u32, threshold: u32, scale: f32) -> __m512 {
            unsafe {
                let mut h = _mm512_xor_si512(_mm512_set1_epi32(row_key as i32), _mm512_loadu_si512(lane_salt as *const __m512i));
                h = _mm512_xor_si512(h, _mm512_srli_epi32::<16>(h));
                h = _mm512_mullo_epi32(h, _mm512_set1_epi32(0x85eb_ca6bu32 as i32));
                h = _mm512_xor_si512(h, _mm512_srli_epi32::<13>(h));
                h = _mm512_mullo_epi32(h, _mm512_set1_epi32(0xc2b2_ae35u32 as i32));
                h = _mm512_xor_si512(h, _mm512_srli_epi32::<16>(h));
                let keep = _mm512_cmpge_epu32_mask(_mm512_srli_epi32::<8>(h), _mm512_set1_epi32(threshold as i32));
                _mm512_maskz_mul_ps(keep, v, _mm512_set1_ps(scale))
            }
        }
    }
}

/// The operands of one `C (+)= A B` as the micro-kernel addresses them:
/// `A(r, p) = a[r * a_rs + p * a_ks]`, `B(p, ..) = b[p * ldb ..]`,
/// `C(r, ..) = c[r * ldc ..]`; with `accumulate`, C is added to.
#[derive(Clone, Copy)]
struct Operands {
    a: *const f32,
    a_rs: usize,
    a_ks: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
}

impl Operands {
    /// The same product from row `i` and vector column `j` of C on.
    ///
    /// Safety: those rows and columns exist.
    #[inline(always)]
    unsafe fn at(self, i: usize, j: usize) -> Operands {
        unsafe { Operands { a: self.a.add(i * self.a_rs), b: self.b.add(j * LANES), c: self.c.add(i * self.ldc + j * LANES), ..self } }
    }
}

/// One `C[M x 16 NV] (+)= A B` tile at the start of `o`, summing over `k`.
/// Each step of `k` loads NV vectors of B and broadcasts M values of A for
/// M x NV multiply-adds.
///
/// Safety: every addressed element exists.
#[inline(always)]
unsafe fn tile<S: Simd, const M: usize, const NV: usize>(k: usize, o: Operands) {
    unsafe {
        let mut acc = [[S::splat(0.0); NV]; M];
        if o.accumulate {
            for (r, row) in acc.iter_mut().enumerate() {
                for (v, x) in row.iter_mut().enumerate() {
                    *x = S::load(o.c.add(r * o.ldc + v * LANES));
                }
            }
        }
        let (mut a, mut b) = (o.a, o.b);
        for _ in 0..k {
            let mut bv = [S::splat(0.0); NV];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = S::load(b.add(v * LANES));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let ar = S::broadcast(a.add(r * o.a_rs));
                for (x, &bv) in row.iter_mut().zip(&bv) {
                    *x = S::fma(ar, bv, *x);
                }
            }
            a = a.add(o.a_ks);
            b = b.add(o.ldb);
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, x) in row.iter().enumerate() {
                S::store(o.c.add(r * o.ldc + v * LANES), *x);
            }
        }
    }
}

/// Rows `0..m` of one column panel of `NV` vectors: tiles as tall as the
/// accumulators allow (`S::ACC / NV` rows, rounded down to 12, 8, 6 or 4),
/// then the rest.
///
/// Safety: as in [`gemm`].
#[inline(always)]
unsafe fn panel<S: Simd, const NV: usize>(m: usize, k: usize, o: Operands) {
    let mr = match S::ACC / NV {
        12.. => 12,
        8..=11 => 8,
        6 | 7 => 6,
        _ => 4,
    };
    unsafe {
        let mut i = 0;
        // mr is a constant of each instruction set and width: one branch stays
        while i + mr <= m {
            match mr {
                12 => tile::<S, 12, NV>(k, o.at(i, 0)),
                8 => tile::<S, 8, NV>(k, o.at(i, 0)),
                6 => tile::<S, 6, NV>(k, o.at(i, 0)),
                _ => tile::<S, 4, NV>(k, o.at(i, 0)),
            }
            i += mr;
        }
        if m - i >= 6 {
            tile::<S, 6, NV>(k, o.at(i, 0));
            i += 6;
        }
        let o = o.at(i, 0);
        match m - i {
            0 => {}
            1 => tile::<S, 1, NV>(k, o),
            2 => tile::<S, 2, NV>(k, o),
            3 => tile::<S, 3, NV>(k, o),
            4 => tile::<S, 4, NV>(k, o),
            _ => tile::<S, 5, NV>(k, o),
        }
    }
}

/// `C[m x n] (+)= A[m x k] B[k x n]` for a block, `n` a multiple of 16, with
/// A strided as in [`Operands`]. Column panels of `S::NV` vectors outside
/// (then one narrower panel for the vectors left), row tiles inside, so a
/// panel of B stays in L1 while the rows of A stream past it. Each element
/// of C sums its k products in order, so every tile shape gives the same
/// result, and every instruction set the same bits.
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
    debug_assert!((1..=4).contains(&S::NV), "panels of 1 to 4 vectors");
    let vecs = n / NR;
    let o = Operands { a, a_rs, a_ks, b, ldb, c, ldc, accumulate };
    unsafe {
        let mut j = 0;
        // S::NV is a constant of each instruction set: one branch stays
        while j + S::NV <= vecs {
            match S::NV {
                4 => panel::<S, 4>(m, k, o.at(0, j)),
                3 => panel::<S, 3>(m, k, o.at(0, j)),
                2 => panel::<S, 2>(m, k, o.at(0, j)),
                _ => panel::<S, 1>(m, k, o.at(0, j)),
            }
            j += S::NV;
        }
        let o = o.at(0, j);
        match vecs - j {
            0 => {}
            1 => panel::<S, 1>(m, k, o),
            2 => panel::<S, 2>(m, k, o),
            _ => panel::<S, 3>(m, k, o),
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

    /// Skips (with a note naming them) the paths this CPU lacks.
    fn note_missing() {
        for name in Isa::missing() {
            eprintln!("note: this CPU lacks {name}: its kernels are not tested here");
        }
    }

    #[test]
    fn only_available_instruction_sets_pass_the_check() {
        Isa::Portable.check_available();
        Isa::detect().check_available();
        #[cfg(target_arch = "x86_64")]
        for isa in [Isa::Avx2Fma, Isa::Avx512] {
            let runs = isa.is_available();
            assert_eq!(std::panic::catch_unwind(|| isa.check_available()).is_ok(), runs, "{isa:?}");
        }
    }

    /// exp2, keep_range and dropout of 16 lanes on one instruction set.
    type Primitives = ([f32; 16], [f32; 16], [f32; 16]);

    #[inline(always)]
    fn primitives<S: Simd>(x: &[f32; 16], salt: &[u32; 16]) -> Primitives {
        let starts: [f32; 16] = std::array::from_fn(|i| i as f32);
        let mut out = ([0f32; 16], [0f32; 16], [0f32; 16]);
        unsafe {
            let v = S::load(x.as_ptr());
            S::store(out.0.as_mut_ptr(), S::exp2(v));
            S::store(out.1.as_mut_ptr(), S::keep_range(v, 3.0, S::load(starts.as_ptr()), S::splat(5.0)));
            S::store(out.2.as_mut_ptr(), S::dropout(v, 12345, salt.as_ptr(), 1 << 23, 2.0));
        }
        out
    }

    fn primitives_on(isa: Isa, x: &[f32; 16], salt: &[u32; 16]) -> Primitives {
        match isa {
            Isa::Portable => primitives::<Portable>(x, salt),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => {
                #[target_feature(enable = "avx2,fma")]
                fn run(x: &[f32; 16], salt: &[u32; 16]) -> Primitives {
                    primitives::<Avx2>(x, salt)
                }
                unsafe { run(x, salt) }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                #[target_feature(enable = "avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")]
                fn run(x: &[f32; 16], salt: &[u32; 16]) -> Primitives {
                    primitives::<Avx512>(x, salt)
                }
                unsafe { run(x, salt) }
            }
        }
    }

    #[test]
    fn vector_primitives_match_portable() {
        note_missing();
        let x = [-300.0, -126.5, -3.3, -0.5, 0.0, 0.49, 127.0, f32::NEG_INFINITY, 1.5, -7.25, 3.0, 2.0, -0.0, 0.125, 99.5, -60.0];
        let salt: [u32; 16] = std::array::from_fn(|i| fmix32(i as u32 * 7 + 1));
        let (pe, pk, pd) = primitives_on(Isa::Portable, &x, &salt);
        assert!(pd.contains(&0.0) && pd.iter().any(|&v| v != 0.0), "the dropout case drops some lanes, not all");
        for isa in Isa::available() {
            let (e, k, d) = primitives_on(isa, &x, &salt);
            for i in 0..16 {
                assert!((e[i] - pe[i]).abs() <= 1e-7 * pe[i].abs(), "{isa:?} exp2 lane {i}: {} vs {}", e[i], pe[i]);
                assert_eq!(k[i].to_bits(), pk[i].to_bits(), "{isa:?} keep_range lane {i}");
                assert_eq!(d[i].to_bits(), pd[i].to_bits(), "{isa:?} dropout lane {i}");
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn run_gemm(isa: Isa, m: usize, n: usize, k: usize, a: &[f32], a_rs: usize, a_ks: usize, b: &[f32], c: &mut [f32], acc: bool) {
        match isa {
            Isa::Portable => unsafe { gemm::<Portable>(m, n, k, a.as_ptr(), a_rs, a_ks, b.as_ptr(), n, c.as_mut_ptr(), n, acc) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn go(m: usize, n: usize, k: usize, a: &[f32], a_rs: usize, a_ks: usize, b: &[f32], c: &mut [f32], acc: bool) {
                    unsafe { gemm::<Avx2>(m, n, k, a.as_ptr(), a_rs, a_ks, b.as_ptr(), n, c.as_mut_ptr(), n, acc) }
                }
                unsafe { go(m, n, k, a, a_rs, a_ks, b, c, acc) }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                #[target_feature(enable = "avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn go(m: usize, n: usize, k: usize, a: &[f32], a_rs: usize, a_ks: usize, b: &[f32], c: &mut [f32], acc: bool) {
                    unsafe { gemm::<Avx512>(m, n, k, a.as_ptr(), a_rs, a_ks, b.as_ptr(), n, c.as_mut_ptr(), n, acc) }
                }
                unsafe { go(m, n, k, a, a_rs, a_ks, b, c, acc) }
            }
        }
    }

    #[test]
    fn gemm_matches_naive_for_every_tail() {
        note_missing();
        for isa in Isa::available() {
            for m in [1, 3, 4, 5, 6, 7, 11, 12, 13, 17, 18, 25] {
                // 1 to 7 vectors: AVX-512's 4-vector panels and each narrower rest
                for (n, k) in [(16, 1), (32, 9), (48, 64), (64, 5), (80, 3), (96, 2), (112, 7)] {
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
                    for r in 0..m {
                        let want: f32 = (0..k).map(|p| a[p * m + r] * b[p * n]).sum();
                        assert_eq!(c[r * n], want, "{isa:?} m {m} n {n} k {k} row {r} without accumulate");
                    }
                }
            }
        }
    }
}
