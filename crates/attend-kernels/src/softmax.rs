//! Masked, scaled softmax over attention scores, forward beside backward.
//!
//! Scores are `[batch, heads, seq_q, seq_k]`. Row (b, h, i) takes the softmax
//! of `scale * s` over the keys the [`AttentionPattern`] lets it see; every
//! other entry is 0, and a row that sees no key is all 0 (never NaN).

use crate::pattern::AttentionPattern;
use crate::ROW_CHUNK;
use rayon::prelude::*;

/// Dimensions of a scores tensor `[batch, heads, seq_q, seq_k]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScoresShape {
    pub batch: usize,
    pub heads: usize,
    pub seq_q: usize,
    pub seq_k: usize,
}

impl ScoresShape {
    pub fn len(&self) -> usize {
        self.batch * self.heads * self.seq_q * self.seq_k
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// (batch, query) of a flat row index.
    #[inline]
    fn row(&self, r: usize) -> (usize, usize) {
        (r / (self.heads * self.seq_q), r % self.seq_q)
    }
}

/// P = masked softmax(scale * S) along the last dimension.
pub fn masked_softmax_forward(scores: &[f32], shape: ScoresShape, scale: f32, pattern: &AttentionPattern) -> Vec<f32> {
    assert_eq!(scores.len(), shape.len());
    let n = shape.seq_k;
    let mut p = vec![0f32; scores.len()];
    if n == 0 {
        return p;
    }
    p.par_chunks_mut(n * ROW_CHUNK).enumerate().for_each(|(chunk, pc)| {
        for (r, pr) in pc.chunks_mut(n).enumerate() {
            let row = chunk * ROW_CHUNK + r;
            let (b, i) = shape.row(row);
            let keys = pattern.key_range(b, i, n);
            if keys.is_empty() {
                continue;
            }
            let sr = &scores[row * n..(row + 1) * n];
            let max = sr[keys.clone()].iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) * scale;
            let mut sum = 0f32;
            for j in keys.clone() {
                let e = (sr[j] * scale - max).exp();
                pr[j] = e;
                sum += e;
            }
            let inv = 1.0 / sum;
            for v in &mut pr[keys] {
                *v *= inv;
            }
        }
    });
    p
}

/// dS = scale * P * (dP - rowsum(dP * P)). Masked entries get 0 because P is 0
/// there.
pub fn masked_softmax_backward(p: &[f32], dp: &[f32], seq_k: usize, scale: f32) -> Vec<f32> {
    assert_eq!(p.len(), dp.len());
    let mut ds = vec![0f32; p.len()];
    if seq_k == 0 {
        return ds;
    }
    ds.par_chunks_mut(seq_k * ROW_CHUNK).zip(p.par_chunks(seq_k * ROW_CHUNK).zip(dp.par_chunks(seq_k * ROW_CHUNK))).for_each(
        |(dsc, (pc, dpc))| {
            for ((dsr, pr), dpr) in dsc.chunks_mut(seq_k).zip(pc.chunks(seq_k)).zip(dpc.chunks(seq_k)) {
                let delta: f32 = pr.iter().zip(dpr).map(|(&p, &g)| p * g).sum();
                for j in 0..seq_k {
                    dsr[j] = scale * pr[j] * (dpr[j] - delta);
                }
            }
        },
    );
    ds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_keys_get_zero_and_empty_rows_are_zero() {
        let shape = ScoresShape { batch: 2, heads: 1, seq_q: 2, seq_k: 3 };
        let s: Vec<f32> = (0..shape.len()).map(|i| i as f32).collect();
        let pattern = AttentionPattern::dense().with_key_lengths(vec![2, 0]);
        let p = masked_softmax_forward(&s, shape, 1.0, &pattern);
        for r in 0..2 {
            let row = &p[r * 3..r * 3 + 3];
            assert!((row[0] + row[1] - 1.0).abs() < 1e-6);
            assert_eq!(row[2], 0.0);
        }
        assert!(p[6..].iter().all(|&v| v == 0.0));
        let ds = masked_softmax_backward(&p, &vec![1.0; p.len()], 3, 1.0);
        assert!(ds.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn backward_matches_finite_differences() {
        let shape = ScoresShape { batch: 1, heads: 2, seq_q: 3, seq_k: 4 };
        let s: Vec<f32> = (0..shape.len()).map(|i| ((i * 31 % 17) as f32 - 8.0) * 0.2).collect();
        let w: Vec<f32> = (0..shape.len()).map(|i| ((i * 7 % 5) as f32 - 2.0) * 0.7).collect();
        let pattern = AttentionPattern::dense().with_causal(true);
        let loss =
            |s: &[f32]| -> f64 { masked_softmax_forward(s, shape, 0.5, &pattern).iter().zip(&w).map(|(&a, &b)| (a * b) as f64).sum() };
        let p = masked_softmax_forward(&s, shape, 0.5, &pattern);
        let ds = masked_softmax_backward(&p, &w, shape.seq_k, 0.5);
        for i in 0..s.len() {
            let mut t = s.clone();
            t[i] += 1e-2;
            let up = loss(&t);
            t[i] -= 2e-2;
            let fd = (up - loss(&t)) / 2e-2;
            assert!((fd - ds[i] as f64).abs() < 1e-3, "idx {i}: fd {fd} vs {}", ds[i]);
        }
    }
}
