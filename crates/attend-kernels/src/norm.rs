//! Fused layer norm, forward beside backward.
//!
//! y = (x - mean) * rstd * gamma + beta over the last dimension, with
//! rstd = 1 / sqrt(var + eps). Backward recomputes mean and rstd (cheap)
//! rather than storing them, so the candle op needs no second output.

use crate::ROW_CHUNK;
use rayon::prelude::*;

#[inline]
fn row_stats(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / n;
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
            for c in 0..dim {
                yr[c] = (xr[c] - mean) * rstd * gamma[c] + beta[c];
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
                let mut sum_dxhat = 0f32;
                let mut sum_dxhat_xhat = 0f32;
                for c in 0..dim {
                    let xhat = (xr[c] - mean) * rstd;
                    let dxhat = dyr[c] * gamma[c];
                    sum_dxhat += dxhat;
                    sum_dxhat_xhat += dxhat * xhat;
                    dg[c] += dyr[c] * xhat;
                    db[c] += dyr[c];
                }
                let m1 = sum_dxhat / dim as f32;
                let m2 = sum_dxhat_xhat / dim as f32;
                for c in 0..dim {
                    let xhat = (xr[c] - mean) * rstd;
                    dxr[c] = rstd * (dyr[c] * gamma[c] - m1 - xhat * m2);
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
