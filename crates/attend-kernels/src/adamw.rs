//! Fused AdamW: one pass over each parameter updates the two moments and the
//! weight, with decoupled weight decay (Loshchilov & Hutter).

use rayon::prelude::*;

/// Hyperparameters of one AdamW step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// 1-based step count, for bias correction.
    pub step: u64,
    /// Multiplies every gradient first (gradient clipping by global norm).
    pub grad_scale: f32,
    /// Classic L2 regularisation (Adam with `weight_decay` as in PyTorch's
    /// `Adam` and the GAT paper): `l2 * param` is added to the gradient
    /// before the moments, unlike the decoupled `weight_decay`.
    pub l2: f32,
}

const CHUNK: usize = 4096;

/// Updates `param`, `m` and `v` in place from `grad`.
pub fn adamw_update(param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], s: &AdamWStep) {
    assert!(param.len() == grad.len() && m.len() == grad.len() && v.len() == grad.len());
    let bc1 = 1.0 - s.beta1.powi(s.step as i32);
    let bc2 = 1.0 - s.beta2.powi(s.step as i32);
    let step_size = s.lr / bc1;
    let decay = 1.0 - s.lr * s.weight_decay;
    param.par_chunks_mut(CHUNK).zip(grad.par_chunks(CHUNK)).zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK))).for_each(
        |((p, g), (m, v))| {
            // Zipped (no indexing), so the loop compiles to vector code.
            for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                let g = g * s.grad_scale + s.l2 * *p;
                *m = s.beta1 * *m + (1.0 - s.beta1) * g;
                *v = s.beta2 * *v + (1.0 - s.beta2) * g * g;
                let denom = (*v / bc2).sqrt() + s.eps;
                *p = *p * decay - step_size * *m / denom;
            }
        },
    );
}

/// Sum of squares of a gradient, in f64 over fixed chunks (deterministic).
pub fn sum_of_squares(grad: &[f32]) -> f64 {
    let partials: Vec<f64> = grad.par_chunks(CHUNK).map(|c| c.iter().map(|&g| g as f64 * g as f64).sum()).collect();
    partials.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_moves_by_lr_against_the_gradient_sign() {
        let mut p = vec![1.0f32, -1.0, 0.5];
        let g = vec![0.3f32, -2.0, 0.0];
        let (mut m, mut v) = (vec![0.0; 3], vec![0.0; 3]);
        let s = AdamWStep { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, step: 1, grad_scale: 1.0, l2: 0.0 };
        adamw_update(&mut p, &g, &mut m, &mut v, &s);
        // bias-corrected first step is lr * sign(g)
        assert!((p[0] - 0.9).abs() < 1e-5);
        assert!((p[1] + 0.9).abs() < 1e-5);
        assert_eq!(p[2], 0.5);
    }

    #[test]
    fn weight_decay_is_decoupled() {
        let mut p = vec![2.0f32];
        let (mut m, mut v) = (vec![0.0], vec![0.0]);
        let s = AdamWStep { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.5, step: 1, grad_scale: 1.0, l2: 0.0 };
        adamw_update(&mut p, &[0.0], &mut m, &mut v, &s);
        assert!((p[0] - 2.0 * (1.0 - 0.05)).abs() < 1e-6);
    }

    #[test]
    fn l2_acts_through_the_moments() {
        // zero gradient, l2 0.5 on p = 2: effective gradient 1, so the first
        // bias-corrected step moves by lr against it
        let mut p = vec![2.0f32];
        let (mut m, mut v) = (vec![0.0], vec![0.0]);
        let s = AdamWStep { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, step: 1, grad_scale: 1.0, l2: 0.5 };
        adamw_update(&mut p, &[0.0], &mut m, &mut v, &s);
        assert!((p[0] - 1.9).abs() < 1e-5);
        assert!((m[0] - 0.1).abs() < 1e-6);
    }
}
