//! Fused softmax cross-entropy over `[rows, classes]` logits.
//!
//! Rows whose target is [`IGNORE`] (padding) add nothing to the loss or the
//! gradient. With label smoothing `ls`, the target distribution is
//! `(1 - ls) * onehot + ls / classes`. The loss is the mean over counted rows.

use crate::ROW_CHUNK;
use rayon::prelude::*;

/// Target value for rows that do not count (padding).
pub const IGNORE: u32 = u32::MAX;

#[inline]
fn log_sum_exp(row: &[f32]) -> f32 {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    max + row.iter().map(|&v| (v - max).exp()).sum::<f32>().ln()
}

fn counted(targets: &[u32]) -> usize {
    targets.iter().filter(|&&t| t != IGNORE).count()
}

/// Mean cross-entropy over the rows whose target is not [`IGNORE`];
/// 0 when no row counts.
pub fn cross_entropy_forward(logits: &[f32], targets: &[u32], classes: usize, smoothing: f32) -> f32 {
    assert_eq!(logits.len(), targets.len() * classes);
    let count = counted(targets);
    if count == 0 {
        return 0.0;
    }
    // Sum in f64 over fixed chunks, in order: deterministic for any thread count.
    let partials: Vec<f64> = logits
        .par_chunks(classes * ROW_CHUNK)
        .zip(targets.par_chunks(ROW_CHUNK))
        .map(|(lc, tc)| {
            let mut total = 0f64;
            for (row, &t) in lc.chunks(classes).zip(tc) {
                if t == IGNORE {
                    continue;
                }
                let lse = log_sum_exp(row);
                let nll = lse - row[t as usize];
                let smooth = if smoothing > 0.0 { lse - row.iter().sum::<f32>() / classes as f32 } else { 0.0 };
                total += ((1.0 - smoothing) * nll + smoothing * smooth) as f64;
            }
            total
        })
        .collect();
    (partials.iter().sum::<f64>() / count as f64) as f32
}

/// Gradient of [`cross_entropy_forward`] times `grad_loss`:
/// `(softmax(z) - target_dist) * grad_loss / count`, 0 on ignored rows.
pub fn cross_entropy_backward(logits: &[f32], targets: &[u32], classes: usize, smoothing: f32, grad_loss: f32) -> Vec<f32> {
    let count = counted(targets);
    let mut dz = vec![0f32; logits.len()];
    if count == 0 {
        return dz;
    }
    let g = grad_loss / count as f32;
    let off = smoothing / classes as f32;
    dz.par_chunks_mut(classes * ROW_CHUNK).zip(logits.par_chunks(classes * ROW_CHUNK).zip(targets.par_chunks(ROW_CHUNK))).for_each(
        |(dc, (lc, tc))| {
            for ((dr, row), &t) in dc.chunks_mut(classes).zip(lc.chunks(classes)).zip(tc) {
                if t == IGNORE {
                    continue;
                }
                let lse = log_sum_exp(row);
                for c in 0..classes {
                    dr[c] = ((row[c] - lse).exp() - off) * g;
                }
                dr[t as usize] -= (1.0 - smoothing) * g;
            }
        },
    );
    dz
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_hand_computed_value() {
        // one row, logits (0, ln 3): p = (1/4, 3/4); target 1 -> -ln(3/4)
        let l = cross_entropy_forward(&[0.0, 3f32.ln(), 5.0, 5.0], &[1, IGNORE], 2, 0.0);
        assert!((l - (4.0f32 / 3.0).ln()).abs() < 1e-6);
        assert_eq!(cross_entropy_forward(&[1.0, 2.0], &[IGNORE], 2, 0.0), 0.0);
    }

    #[test]
    fn backward_matches_finite_differences() {
        let classes = 4;
        let targets = [2u32, IGNORE, 0, 3];
        let z: Vec<f32> = (0..16).map(|i| ((i * 29 % 13) as f32 - 6.0) * 0.3).collect();
        for smoothing in [0.0, 0.1] {
            let dz = cross_entropy_backward(&z, &targets, classes, smoothing, 2.0);
            for i in 0..z.len() {
                let mut t = z.clone();
                t[i] += 1e-2;
                let up = cross_entropy_forward(&t, &targets, classes, smoothing) as f64;
                t[i] -= 2e-2;
                let down = cross_entropy_forward(&t, &targets, classes, smoothing) as f64;
                let fd = 2.0 * (up - down) / 2e-2;
                assert!((fd - dz[i] as f64).abs() < 1e-3, "idx {i}: fd {fd} vs {}", dz[i]);
            }
            assert!(dz[4..8].iter().all(|&v| v == 0.0));
        }
    }
}
