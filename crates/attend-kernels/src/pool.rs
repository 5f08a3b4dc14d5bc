//! Max pooling over the first `length` rows of each item, forward beside
//! backward: x `[items, steps, features]` -> `[items, features]`. Used by the
//! character encoder (max over a word's characters, padding excluded).

use rayon::prelude::*;

/// Per item and feature: the max over steps `0..lengths[item]` and the step
/// it came from (ties: the first). An item of length 0 gives 0.
pub fn masked_max_forward(x: &[f32], lengths: &[usize], steps: usize, features: usize) -> (Vec<f32>, Vec<u32>) {
    let items = lengths.len();
    assert_eq!(x.len(), items * steps * features);
    let mut out = vec![0f32; items * features];
    let mut arg = vec![0u32; items * features];
    out.par_chunks_mut(features).zip(arg.par_chunks_mut(features)).enumerate().for_each(|(w, (o, a))| {
        let len = lengths[w].min(steps);
        if len == 0 {
            return;
        }
        let base = w * steps * features;
        o.copy_from_slice(&x[base..base + features]);
        for s in 1..len {
            let row = &x[base + s * features..base + (s + 1) * features];
            for f in 0..features {
                if row[f] > o[f] {
                    o[f] = row[f];
                    a[f] = s as u32;
                }
            }
        }
    });
    (out, arg)
}

/// Routes each output gradient to the step that won the max.
pub fn masked_max_backward(dy: &[f32], arg: &[u32], lengths: &[usize], steps: usize, features: usize) -> Vec<f32> {
    let mut dx = vec![0f32; lengths.len() * steps * features];
    dx.par_chunks_mut(steps * features).enumerate().for_each(|(w, d)| {
        if lengths[w] == 0 {
            return;
        }
        for f in 0..features {
            let s = arg[w * features + f] as usize;
            d[s * features + f] = dy[w * features + f];
        }
    });
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_ignores_padding_and_routes_gradient() {
        // 2 items, 3 steps, 2 features; item 0 has 2 steps, item 1 none
        let x = [1.0, -5.0, 3.0, -4.0, 99.0, 99.0, 7.0, 7.0, 7.0, 7.0, 7.0, 7.0f32];
        let (y, arg) = masked_max_forward(&x, &[2, 0], 3, 2);
        assert_eq!(y, [3.0, -4.0, 0.0, 0.0]);
        let dx = masked_max_backward(&[1.0, 2.0, 5.0, 5.0], &arg, &[2, 0], 3, 2);
        assert_eq!(dx, [0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    }
}
