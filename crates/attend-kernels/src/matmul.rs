//! Plain f32 matrix products through the `gemm` crate (the GEMM candle
//! uses), with explicit strides so transposes cost nothing.

/// `dst[m, n] += a[m, k] b[k, n]` with explicit strides (row stride, column
/// stride) for `a` and `b`; `dst` is row-major. `parallel` splits the
/// product over rayon's current pool (the split is over output tiles, so
/// the result does not depend on the thread count).
#[allow(clippy::too_many_arguments)]
pub fn gemm_acc(dst: &mut [f32], a: &[f32], a_rs: usize, a_cs: usize, b: &[f32], b_rs: usize, b_cs: usize, m: usize, k: usize, n: usize, parallel: bool) {
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
