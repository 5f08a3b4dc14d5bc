//! Fused layer norm, forward beside backward.
//!
//! y = (x - mean) * rstd * gamma + beta over the last dimension, with
//! rstd = 1 / sqrt(var + eps). Backward recomputes mean and rstd (cheap)
//! rather than storing them, so the candle op needs no second output.

use crate::ROW_CHUNK;
use rayon::prelude::*;

/// Running sums of a row reduction: one chain of adds per lane, so the
/// compiler vectorises it (a single f32 sum is one chain of dependent adds,
/// which it must keep in order: 256 adds at the add's latency each).
const LANES: usize = 16;

/// `sum_c f(a[c], b[c], c2[c])` over three rows of equal length, in
/// [`LANES`] running sums added in a fixed order at the end (the same bits
/// on every thread count and machine).
#[inline]
fn lane_sum(a: &[f32], b: &[f32], c: &[f32], f: impl Fn(f32, f32, f32) -> f32) -> f32 {
    debug_assert!(a.len() == b.len() && a.len() == c.len());
    let mut acc = [0f32; LANES];
    let (ac, bc, cc) = (a.chunks_exact(LANES), b.chunks_exact(LANES), c.chunks_exact(LANES));
    let mut tail = 0f32;
    for ((x, y), z) in ac.remainder().iter().zip(bc.remainder()).zip(cc.remainder()) {
        tail += f(*x, *y, *z);
    }
    for ((x, y), z) in ac.zip(bc).zip(cc) {
        for l in 0..LANES {
            acc[l] += f(x[l], y[l], z[l]);
        }
    }
    crate::pairwise_sum(acc) + tail
}

#[inline]
fn row_stats(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = lane_sum(x, x, x, |v, _, _| v) / n;
    let var = lane_sum(x, x, x, |v, _, _| (v - mean) * (v - mean)) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// Layer norm over rows of length `gamma.len()`.
pub fn layer_norm_forward(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32) -> Vec<f32> {
    let dim = gamma.len();
    assert_eq!(beta.len(), dim);
    assert_eq!(x.len() % dim, 0);
    let mut y = vec![0f32; x.len()];
    y.par_chunks_mut(dim * ROW_CHUNK).zip(x.par_chunks(dim * ROW_CHUNK)).for_each(|(yc, xc)| {
        for (yr, xr) in yc.chunks_mut(dim).zip(xc.chunks(dim)) {
            let (mean, rstd) = row_stats(xr, eps);
            for (((y, &x), &g), &b) in yr.iter_mut().zip(xr).zip(gamma).zip(beta) {
                *y = (x - mean) * rstd * g + b;
            }
        }
    });
    y
}

/// Gradients of layer norm: (dx, dgamma, dbeta).
pub fn layer_norm_backward(x: &[f32], gamma: &[f32], dy: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let dim = gamma.len();
    assert_eq!(x.len(), dy.len());
    let mut dx = vec![0f32; x.len()];
    // Per-chunk partial sums for dgamma/dbeta, added in chunk order below.
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(dim * ROW_CHUNK)
        .zip(x.par_chunks(dim * ROW_CHUNK).zip(dy.par_chunks(dim * ROW_CHUNK)))
        .map(|(dxc, (xc, dyc))| {
            let mut dg = vec![0f32; dim];
            let mut db = vec![0f32; dim];
            for ((dxr, xr), dyr) in dxc.chunks_mut(dim).zip(xc.chunks(dim)).zip(dyc.chunks(dim)) {
                let (mean, rstd) = row_stats(xr, eps);
                // dxhat = dy * gamma; dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
                let sum_dxhat = lane_sum(dyr, gamma, xr, |d, g, _| d * g);
                let sum_dxhat_xhat = lane_sum(dyr, gamma, xr, |d, g, x| d * g * ((x - mean) * rstd));
                for (((g, b), &x), &d) in dg.iter_mut().zip(db.iter_mut()).zip(xr).zip(dyr) {
                    *g += d * ((x - mean) * rstd);
                    *b += d;
                }
                let m1 = sum_dxhat / dim as f32;
                let m2 = sum_dxhat_xhat / dim as f32;
                for (((dx, &x), &d), &g) in dxr.iter_mut().zip(xr).zip(dyr).zip(gamma) {
                    *dx = rstd * (d * g - m1 - ((x - mean) * rstd) * m2);
                }
            }
            (dg, db)
        })
        .collect();
    let mut dgamma = vec![0f32; dim];
    let mut dbeta = vec![0f32; dim];
    for (dg, db) in partials {
        for c in 0..dim {
            dgamma[c] += dg[c];
            dbeta[c] += db[c];
        }
    }
    (dx, dgamma, dbeta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_sums_match_a_plain_sum() {
        for n in 0..70 {
            let x: Vec<f32> = (0..n).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.3).collect();
            let y: Vec<f32> = (0..n).map(|i| ((i * 13 % 7) as f32 - 3.0) * 0.5).collect();
            let want: f64 = x.iter().zip(&y).map(|(&a, &b)| a as f64 * b as f64 + 1.0).sum();
            let got = lane_sum(&x, &y, &x, |a, b, _| a * b + 1.0) as f64;
            assert!((got - want).abs() <= 1e-5 * want.abs().max(1.0), "{n}: {got} vs {want}");
        }
    }

    #[test]
    fn normalizes_rows() {
        let x = [1.0, 2.0, 3.0, 4.0, -1.0, -1.0, -1.0, -1.0f32];
        let y = layer_norm_forward(&x, &[1.0; 4], &[0.5; 4], 1e-5);
        let m: f32 = y[..4].iter().sum::<f32>() / 4.0;
        assert!((m - 0.5).abs() < 1e-6);
        assert!(y[4..].iter().all(|&v| (v - 0.5).abs() < 1e-6)); // constant row -> beta
    }

    #[test]
    fn backward_matches_finite_differences() {
        let dim = 5;
        let rows = 3;
        let x: Vec<f32> = (0..rows * dim).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.3).collect();
        let gamma: Vec<f32> = (0..dim).map(|i| 0.5 + i as f32 * 0.2).collect();
        let beta: Vec<f32> = (0..dim).map(|i| i as f32 * 0.1).collect();
        let w: Vec<f32> = (0..rows * dim).map(|i| ((i * 13 % 7) as f32 - 3.0) * 0.5).collect();
        let loss = |x: &[f32], g: &[f32], b: &[f32]| -> f64 {
            layer_norm_forward(x, g, b, 1e-5).iter().zip(&w).map(|(&y, &w)| (y * w) as f64).sum()
        };
        let (dx, dg, db) = layer_norm_backward(&x, &gamma, &w, 1e-5);
        let eps = 1e-2f32;
        let fd = |f: &dyn Fn(f32) -> f64| (f(eps) - f(-eps)) / (2.0 * eps as f64);
        for i in 0..x.len() {
            let g = fd(&|e| {
                let mut t = x.clone();
                t[i] += e;
                loss(&t, &gamma, &beta)
            });
            assert!((g - dx[i] as f64).abs() < 2e-3, "dx[{i}] fd {g} vs {}", dx[i]);
        }
        for i in 0..dim {
            let g = fd(&|e| {
                let mut t = gamma.clone();
                t[i] += e;
                loss(&x, &t, &beta)
            });
            assert!((g - dg[i] as f64).abs() < 2e-3);
            let g = fd(&|e| {
                let mut t = beta.clone();
                t[i] += e;
                loss(&x, &gamma, &t)
            });
            assert!((g - db[i] as f64).abs() < 2e-3);
        }
    }

    #[test]
    fn reductions_are_deterministic_across_thread_counts() {
        let dim = 32;
        let rows = 1000;
        let x: Vec<f32> = (0..rows * dim).map(|i| ((i * 7919) % 1013) as f32 / 97.0).collect();
        let dy: Vec<f32> = (0..rows * dim).map(|i| ((i * 104729) % 211) as f32 / 50.0 - 2.0).collect();
        let g = vec![1.1f32; dim];
        let run = |threads| {
            rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| layer_norm_backward(&x, &g, &dy, 1e-5))
        };
        let (a, b) = (run(1), run(3));
        assert_eq!(a.0, b.0);
        assert_eq!(a.1, b.1);
        assert_eq!(a.2, b.2);
    }
}
