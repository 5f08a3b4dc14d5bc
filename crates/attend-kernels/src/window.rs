//! Windows of steps for a convolution with "same" padding, forward beside
//! backward: x `[items, steps, features]` -> `[items, steps, kernel *
//! features]`, where output step `t` holds input steps `t - kernel / 2`
//! to `t + kernel / 2` side by side (zeros beyond the ends, and beyond
//! each item's own `valid` steps). A linear layer over the windows is the
//! convolution; these copies replace a pad, `kernel` strided narrows and a
//! concatenation (and their backward) with one pass each way.

use rayon::prelude::*;

/// The windows of `x`; steps at or past `valid[item]` read as zeros.
pub fn windows_forward(x: &[f32], valid: &[usize], steps: usize, features: usize, kernel: usize) -> Vec<f32> {
    let items = valid.len();
    assert_eq!(x.len(), items * steps * features);
    assert!(!kernel.is_multiple_of(2), "the kernel must be odd");
    let (half, row) = (kernel / 2, kernel * features);
    let mut out = vec![0f32; items * steps * row];
    out.par_chunks_mut(steps * row).enumerate().for_each(|(i, out)| {
        let (x, valid) = (&x[i * steps * features..][..steps * features], valid[i].min(steps));
        for (t, window) in out.chunks_exact_mut(row).enumerate() {
            for (j, slot) in window.chunks_exact_mut(features).enumerate() {
                let u = (t + j).wrapping_sub(half);
                if u < valid {
                    slot.copy_from_slice(&x[u * features..][..features]);
                }
            }
        }
    });
    out
}

/// The gradient of `x` from the windows' gradient `g`: each step gathers
/// what the windows holding it received (nothing past `valid`).
pub fn windows_backward(g: &[f32], valid: &[usize], steps: usize, features: usize, kernel: usize) -> Vec<f32> {
    let items = valid.len();
    let (half, row) = (kernel / 2, kernel * features);
    assert_eq!(g.len(), items * steps * row);
    let mut dx = vec![0f32; items * steps * features];
    dx.par_chunks_mut(steps * features).enumerate().for_each(|(i, dx)| {
        let (g, valid) = (&g[i * steps * row..][..steps * row], valid[i].min(steps));
        for (u, d) in dx.chunks_exact_mut(features).enumerate().take(valid) {
            // Input step u sits in slot j of output step t = u + half - j.
            for j in 0..kernel {
                let t = (u + half).wrapping_sub(j);
                if t < steps {
                    for (d, &v) in d.iter_mut().zip(&g[t * row + j * features..][..features]) {
                        *d += v;
                    }
                }
            }
        }
    });
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backward_is_the_transpose_of_forward() {
        // <windows(x), g> = <x, windows_backward(g)> for any x and g.
        let (steps, features, kernel) = (7, 3, 5);
        let valid = [7, 4];
        let x: Vec<f32> = (0..2 * steps * features).map(|i| ((i * 37 % 11) as f32) - 5.0).collect();
        let g: Vec<f32> = (0..2 * steps * kernel * features).map(|i| ((i * 13 % 7) as f32) - 3.0).collect();
        let y = windows_forward(&x, &valid, steps, features, kernel);
        let dx = windows_backward(&g, &valid, steps, features, kernel);
        let lhs: f32 = y.iter().zip(&g).map(|(a, b)| a * b).sum();
        let rhs: f32 = x.iter().zip(&dx).map(|(a, b)| a * b).sum();
        assert_eq!(lhs, rhs);
        // Steps past an item's valid ones are never read and get no gradient.
        assert!(dx[(steps + 4) * features..].iter().all(|&d| d == 0.0));
        let mut x2 = x.clone();
        x2[(steps + 5) * features] = 1e9;
        assert_eq!(windows_forward(&x2, &valid, steps, features, kernel), y);
    }
}
