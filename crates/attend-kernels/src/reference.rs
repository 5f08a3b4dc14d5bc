//! The plain O(N^2) attention, written like the seed's matrix form.
//!
//! For one head: A = K^T Q (every key scored against every query),
//! A' = softmax of each query's scores over its visible keys, O = V A'.
//! Here rows are queries, so the same thing reads `S = Q K^T * scale`,
//! `P = softmax_rows(S)`, `O = P V`. It stores the whole N x N matrix: it is
//! the oracle for every fast kernel, not a path for long inputs.

pub use crate::pattern::AttentionShape;
use crate::pattern::{AttentionDropout, AttentionPattern};

/// Forward output of the reference attention.
pub struct ReferenceForward {
    /// `[batch, heads, seq, head_dim]`
    pub out: Vec<f32>,
    /// Attention weights `[batch, heads, seq, seq]`; masked keys hold 0.
    pub weights: Vec<f32>,
    /// Per-row log-sum-exp of the scaled scores `[batch, heads, seq]`;
    /// `-inf` for a query that sees no key.
    pub lse: Vec<f32>,
}

/// Gradients of the reference attention.
pub struct ReferenceBackward {
    pub dq: Vec<f32>,
    pub dk: Vec<f32>,
    pub dv: Vec<f32>,
}

/// O = softmax(Q K^T * scale) V, restricted to the pattern, in f64 inside for
/// an accurate oracle.
pub fn attention_forward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    shape: AttentionShape,
    scale: f32,
    pattern: &AttentionPattern,
) -> ReferenceForward {
    attention_forward_dropout(q, k, v, shape, scale, pattern, None)
}

/// [`attention_forward`] with dropout on the normalised weights, using the
/// same mask as the fused kernels. `weights` are the weights before dropout.
pub fn attention_forward_dropout(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    shape: AttentionShape,
    scale: f32,
    pattern: &AttentionPattern,
    dropout: Option<AttentionDropout>,
) -> ReferenceForward {
    let AttentionShape { batch, heads, seq: n, head_dim: d } = shape;
    assert_eq!(q.len(), shape.len());
    assert_eq!(k.len(), shape.len());
    assert_eq!(v.len(), shape.len());
    let mut out = vec![0f32; shape.len()];
    let mut weights = vec![0f32; batch * heads * n * n];
    let mut lse = vec![f32::NEG_INFINITY; batch * heads * n];
    for b in 0..batch {
        for h in 0..heads {
            let bh = b * heads + h;
            let base = bh * n * d; // start of this head's [seq, head_dim] block
            for i in 0..n {
                let keys = pattern.key_range(b, i, n);
                if keys.is_empty() {
                    continue; // no visible key: output row stays 0
                }
                // scores s_j = q_i . k_j * scale over visible keys
                let qi = &q[base + i * d..base + (i + 1) * d];
                let scores: Vec<f64> = keys
                    .clone()
                    .map(|j| {
                        let kj = &k[base + j * d..base + (j + 1) * d];
                        dot64(qi, kj) * scale as f64
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                lse[bh * n + i] = (max + sum.ln()) as f32;
                let row = &mut weights[(bh * n + i) * n..(bh * n + i + 1) * n];
                let mut acc = vec![0f64; d];
                for (j, s) in keys.zip(scores) {
                    let p = (s - max).exp() / sum;
                    row[j] = p as f32;
                    let p = p * kept(dropout, bh, i, j);
                    for (a, &vj) in acc.iter_mut().zip(&v[base + j * d..base + (j + 1) * d]) {
                        *a += p * vj as f64;
                    }
                }
                for (o, a) in out[base + i * d..base + (i + 1) * d].iter_mut().zip(acc) {
                    *o = a as f32;
                }
            }
        }
    }
    ReferenceForward { out, weights, lse }
}

/// Gradients of [`attention_forward`] given dO, using its stored weights.
///
/// dV = P^T dO, dP = dO V^T, dS = P * (dP - rowsum(dP * P)), dQ = dS K * scale,
/// dK = dS^T Q * scale.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    weights: &[f32],
    dout: &[f32],
    shape: AttentionShape,
    scale: f32,
    pattern: &AttentionPattern,
) -> ReferenceBackward {
    attention_backward_dropout(q, k, v, weights, dout, shape, scale, pattern, None)
}

/// Gradients of [`attention_forward_dropout`] (same dropout).
#[allow(clippy::too_many_arguments)]
pub fn attention_backward_dropout(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    weights: &[f32],
    dout: &[f32],
    shape: AttentionShape,
    scale: f32,
    pattern: &AttentionPattern,
    dropout: Option<AttentionDropout>,
) -> ReferenceBackward {
    let AttentionShape { batch, heads, seq: n, head_dim: d } = shape;
    let mut dq = vec![0f64; shape.len()];
    let mut dk = vec![0f64; shape.len()];
    let mut dv = vec![0f64; shape.len()];
    for b in 0..batch {
        for h in 0..heads {
            let bh = b * heads + h;
            let base = bh * n * d;
            for i in 0..n {
                let keys = pattern.key_range(b, i, n);
                let doi = &dout[base + i * d..base + (i + 1) * d];
                let p_row = &weights[(bh * n + i) * n..(bh * n + i + 1) * n];
                // dP_ij = dO_i . V_j (times the dropout mask) ; delta_i = sum_j P_ij dP_ij
                let dp: Vec<f64> =
                    keys.clone().map(|j| dot64(doi, &v[base + j * d..base + (j + 1) * d]) * kept(dropout, bh, i, j)).collect();
                let delta: f64 = keys.clone().zip(&dp).map(|(j, g)| p_row[j] as f64 * g).sum();
                for (j, g) in keys.zip(dp) {
                    let p = p_row[j] as f64;
                    let ds = p * (g - delta) * scale as f64;
                    let p_kept = p * kept(dropout, bh, i, j);
                    for c in 0..d {
                        dv[base + j * d + c] += p_kept * doi[c] as f64;
                        dq[base + i * d + c] += ds * k[base + j * d + c] as f64;
                        dk[base + j * d + c] += ds * q[base + i * d + c] as f64;
                    }
                }
            }
        }
    }
    let to32 = |x: Vec<f64>| x.into_iter().map(|v| v as f32).collect();
    ReferenceBackward { dq: to32(dq), dk: to32(dk), dv: to32(dv) }
}

/// The dropout multiplier of weight (i, j) of head `bh`: 0 or 1 / (1 - p).
fn kept(dropout: Option<AttentionDropout>, bh: usize, i: usize, j: usize) -> f64 {
    match dropout {
        Some(dr) if dr.p > 0.0 => {
            if dr.keep(bh, i, j) {
                dr.kept_scale() as f64
            } else {
                0.0
            }
        }
        _ => 1.0,
    }
}

fn dot64(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's picture: four vectors, one head, head_dim 2. Checked by hand.
    #[test]
    fn four_vectors_by_hand() {
        // q = k = v = a^i for simplicity; a^1..a^4 = (1,0), (0,1), (1,1), (0,0)
        let a = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0f32];
        let shape = AttentionShape { batch: 1, heads: 1, seq: 4, head_dim: 2 };
        let f = attention_forward(&a, &a, &a, shape, 1.0, &AttentionPattern::dense());
        // query 1 = (1,0): scores (1, 0, 1, 0) -> weights e/(2e+2), 1/(2e+2), ...
        let e = std::f32::consts::E;
        let z = 2.0 * e + 2.0;
        let w0 = [e / z, 1.0 / z, e / z, 1.0 / z];
        for (w, want) in f.weights[..4].iter().zip(w0) {
            assert!((w - want).abs() < 1e-6);
        }
        // b^1 = sum_j w_j v^j = (w0 + w2, w1 + w2)
        assert!((f.out[0] - (w0[0] + w0[2])).abs() < 1e-6);
        assert!((f.out[1] - (w0[1] + w0[2])).abs() < 1e-6);
        // query 4 = (0,0) scores all 0: uniform weights, b^4 = mean of values
        assert!((f.out[6] - 0.5).abs() < 1e-6 && (f.out[7] - 0.5).abs() < 1e-6);
        assert!((f.lse[3] - 4f32.ln()).abs() < 1e-6);
    }

    #[test]
    fn fully_masked_query_is_zero_not_nan() {
        let shape = AttentionShape { batch: 2, heads: 1, seq: 3, head_dim: 2 };
        let x: Vec<f32> = (0..shape.len()).map(|i| i as f32 * 0.1).collect();
        let pattern = AttentionPattern::dense().with_key_lengths(vec![3, 0]);
        let f = attention_forward(&x, &x, &x, shape, 1.0, &pattern);
        assert!(f.out.iter().all(|v| v.is_finite()));
        assert!(f.out[6..].iter().all(|&v| v == 0.0));
        let g = attention_backward(&x, &x, &x, &f.weights, &vec![1.0; shape.len()], shape, 1.0, &pattern);
        assert!(g.dq[6..].iter().chain(&g.dk[6..]).chain(&g.dv[6..]).all(|&v| v == 0.0));
    }

    #[test]
    fn backward_matches_finite_differences() {
        let shape = AttentionShape { batch: 1, heads: 2, seq: 5, head_dim: 3 };
        let init = |s: u32| -> Vec<f32> {
            (0..shape.len()).map(|i| (((i as u32).wrapping_mul(2654435761u32) ^ s) % 1000) as f32 / 500.0 - 1.0).collect()
        };
        let (q, k, v) = (init(1), init(2), init(3));
        let w: Vec<f32> = (0..shape.len()).map(|i| ((i * 7) % 5) as f32 - 2.0).collect();
        let pattern = AttentionPattern::dense().with_window(2, 1);
        let loss = |q: &[f32], k: &[f32], v: &[f32]| -> f64 {
            let f = attention_forward(q, k, v, shape, 0.7, &pattern);
            f.out.iter().zip(&w).map(|(&o, &w)| o as f64 * w as f64).sum()
        };
        let f = attention_forward(&q, &k, &v, shape, 0.7, &pattern);
        let g = attention_backward(&q, &k, &v, &f.weights, &w, shape, 0.7, &pattern);
        let eps = 1e-3f32;
        for (which, grad) in [(0, &g.dq), (1, &g.dk), (2, &g.dv)] {
            for idx in 0..shape.len() {
                let mut t = [q.clone(), k.clone(), v.clone()];
                t[which][idx] += eps;
                let up = loss(&t[0], &t[1], &t[2]);
                t[which][idx] -= 2.0 * eps;
                let down = loss(&t[0], &t[1], &t[2]);
                let fd = (up - down) / (2.0 * eps as f64);
                assert!((fd - grad[idx] as f64).abs() < 2e-3, "tensor {which} idx {idx}: fd {fd} vs {}", grad[idx]);
            }
        }
    }
}
