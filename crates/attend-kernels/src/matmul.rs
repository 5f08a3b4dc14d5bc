//! Plain f32 matrix products through the `gemm` crate (the GEMM candle
//! uses), with explicit strides so transposes cost nothing; and, where a
//! caller asks for it and the CPU has it, the same product from bf16 inputs
//! ([`Precision`], [`crate::bf16`]).

use std::cell::Cell;

/// The precision of [`gemm_acc`]'s products on the current thread, the
/// way `torch.set_float32_matmul_precision` sets PyTorch's: [`F32`](Self::F32)
/// unless a caller runs code inside [`with_precision`]. Inference may ask
/// for [`Bf16`](Self::Bf16); training never does (its backward must see the
/// products its forward used).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    F32,
    /// Inputs rounded to bfloat16, sums in f32 ([`crate::bf16`]), on CPUs
    /// with AVX-512 BF16; elsewhere the f32 product runs instead.
    Bf16,
}

thread_local! {
    static PRECISION: Cell<Precision> = const { Cell::new(Precision::F32) };
}

/// Runs `f` with the products of [`gemm_acc`] on this thread at `precision`
/// (restored afterwards, also on a panic). Only this thread's own calls are
/// affected, and a row-major product with contiguous columns is the only one
/// that changes: transposed operands stay f32.
pub fn with_precision<R>(precision: Precision, f: impl FnOnce() -> R) -> R {
    struct Restore(Precision);
    impl Drop for Restore {
        fn drop(&mut self) {
            PRECISION.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(PRECISION.with(|p| p.replace(precision)));
    f()
}

/// The precision [`gemm_acc`] uses on this thread now.
pub fn precision() -> Precision {
    PRECISION.with(|p| p.get())
}

/// `dst[m, n] += a[m, k] b[k, n]`: [`gemm_acc_f32`], or the bf16 product
/// where this thread runs at [`Precision::Bf16`], the CPU has it and both
/// operands have contiguous columns.
#[allow(clippy::too_many_arguments)]
pub fn gemm_acc(
    dst: &mut [f32],
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    b_rs: usize,
    b_cs: usize,
    m: usize,
    k: usize,
    n: usize,
    parallel: bool,
) {
    if precision() == Precision::Bf16 && a_cs == 1 && b_cs == 1 && crate::bf16::available() {
        crate::bf16::gemm_acc_bf16(dst, a, a_rs, b, b_rs, m, k, n, parallel);
    } else {
        gemm_acc_f32(dst, a, a_rs, a_cs, b, b_rs, b_cs, m, k, n, parallel);
    }
}

/// `dst[m, n] += a[m, k] b[k, n]` with explicit strides (row stride, column
/// stride) for `a` and `b`; `dst` is row-major. `parallel` splits the
/// product over rayon's current pool (the split is over output tiles, so
/// the result does not depend on the thread count).
#[allow(clippy::too_many_arguments)]
pub fn gemm_acc_f32(
    dst: &mut [f32],
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    b_rs: usize,
    b_cs: usize,
    m: usize,
    k: usize,
    n: usize,
    parallel: bool,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    assert!(dst.len() >= m * n);
    assert!(a.len() > (m - 1) * a_rs + (k - 1) * a_cs && b.len() > (k - 1) * b_rs + (n - 1) * b_cs);
    let threads = rayon::current_num_threads();
    let parallelism = if parallel && threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: the asserts above keep every index the strides reach in bounds.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            true,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shapes the tagger runs (rows x inputs x outputs, and the
    /// transposed products of backward), through whatever kernel the `gemm`
    /// crate picks on this CPU (AVX-512 where the CPU has it, AVX2 + FMA,
    /// or scalar), against a plain f64 product.
    #[test]
    fn model_shapes_match_a_plain_product() {
        #[cfg(target_arch = "x86_64")]
        let avx512 = std::is_x86_feature_detected!("avx512f");
        #[cfg(not(target_arch = "x86_64"))]
        let avx512 = false;
        if !avx512 {
            eprintln!("note: this CPU has no AVX-512F; the gemm crate's AVX-512 kernels are not exercised here");
        }
        let shapes = [(97, 256, 768), (97, 320, 256), (61, 512, 256), (33, 144, 192), (256, 97, 512), (5, 3, 7)];
        for (m, k, n) in shapes {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 31 % 17) as f32 - 8.0) * 0.05).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 13 % 11) as f32 - 5.0) * 0.07).collect();
            for (parallel, transposed) in [(false, false), (true, false), (true, true)] {
                let mut c: Vec<f32> = (0..m * n).map(|i| (i % 3) as f32).collect();
                let c0 = c.clone();
                // transposed: read a as a^T stored [k, m]
                let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
                if transposed {
                    gemm_acc(&mut c, &at, 1, m, &b, n, 1, m, k, n, parallel);
                } else {
                    gemm_acc(&mut c, &a, k, 1, &b, n, 1, m, k, n, parallel);
                }
                for r in 0..m {
                    for j in 0..n {
                        let want = c0[r * n + j] as f64 + (0..k).map(|p| a[r * k + p] as f64 * b[p * n + j] as f64).sum::<f64>();
                        let got = c[r * n + j] as f64;
                        assert!((got - want).abs() <= 1e-4 * want.abs().max(1.0), "{m}x{k}x{n} at ({r},{j}): {got} vs {want}");
                    }
                }
            }
        }
    }
}
