//! A dense layer `y = act(x W + b)` with its epilogue fused: the bias is the
//! GEMM's starting value (no separate broadcast pass and no zeroed output),
//! the activation runs once over the result, and backward gives `dx`, `dW`
//! and `db` from two GEMMs and one column sum. `x` `[rows, in]`, `W` `[in,
//! out]`, `b` `[out]`, all row-major.

use crate::activation::{gelu_backward, gelu_forward};
use crate::matmul::gemm_acc;

/// What follows the affine map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Identity,
    /// Exact GELU, `z Φ(z)` ([`crate::activation`]).
    Gelu,
}

/// Sizes of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearShape {
    pub rows: usize,
    pub inputs: usize,
    pub outputs: usize,
}

/// The output, and the pre-activation `x W + b` where backward needs it.
#[derive(Debug, Clone)]
pub struct LinearForward {
    pub y: Vec<f32>,
    pub pre: Option<Vec<f32>>,
}

#[derive(Debug, Clone)]
pub struct LinearBackward {
    pub dx: Vec<f32>,
    pub dw: Vec<f32>,
    pub db: Vec<f32>,
}

fn check(s: LinearShape, x: &[f32], w: &[f32]) {
    assert_eq!(x.len(), s.rows * s.inputs, "x must be [rows, inputs]");
    assert_eq!(w.len(), s.inputs * s.outputs, "w must be [inputs, outputs]");
}

/// Forward. The pre-activation is kept only for GELU.
pub fn linear_forward(s: LinearShape, x: &[f32], w: &[f32], b: &[f32], act: Activation) -> LinearForward {
    check(s, x, w);
    assert_eq!(b.len(), s.outputs, "b must be [outputs]");
    let mut z = Vec::with_capacity(s.rows * s.outputs);
    for _ in 0..s.rows {
        z.extend_from_slice(b);
    }
    gemm_acc(&mut z, x, s.inputs, 1, w, s.outputs, 1, s.rows, s.inputs, s.outputs, true);
    match act {
        Activation::Identity => LinearForward { y: z, pre: None },
        Activation::Gelu => {
            let mut y = vec![0f32; z.len()];
            gelu_forward(&z, &mut y);
            LinearForward { y, pre: Some(z) }
        }
    }
}

/// Backward from `dy` `[rows, outputs]`; `pre` is the forward's.
pub fn linear_backward(s: LinearShape, x: &[f32], w: &[f32], pre: Option<&[f32]>, dy: &[f32], act: Activation) -> LinearBackward {
    check(s, x, w);
    let (rows, inputs, outputs) = (s.rows, s.inputs, s.outputs);
    assert_eq!(dy.len(), rows * outputs, "dy must be [rows, outputs]");
    let dz_owned;
    let dz: &[f32] = match act {
        Activation::Identity => dy,
        Activation::Gelu => {
            let pre = pre.expect("GELU backward needs the pre-activation");
            let mut d = vec![0f32; dy.len()];
            gelu_backward(pre, dy, &mut d);
            dz_owned = d;
            &dz_owned
        }
    };
    // dx = dz W^T: W^T(o, i) = w[i * outputs + o].
    let mut dx = vec![0f32; rows * inputs];
    gemm_acc(&mut dx, dz, outputs, 1, w, 1, outputs, rows, outputs, inputs, true);
    // dW = x^T dz: x^T(i, r) = x[r * inputs + i].
    let mut dw = vec![0f32; inputs * outputs];
    gemm_acc(&mut dw, x, 1, inputs, dz, outputs, 1, inputs, rows, outputs, true);
    // db: column sums, rows in order.
    let mut db = vec![0f32; outputs];
    for row in dz.chunks_exact(outputs) {
        for (d, g) in db.iter_mut().zip(row) {
            *d += g;
        }
    }
    LinearBackward { dx, dw, db }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_central_differences;

    fn value(i: usize, salt: usize) -> f32 {
        (((i * 2654435761 + salt * 7919) % 2001) as f32 / 1000.0 - 1.0) * 0.8
    }

    fn naive(s: LinearShape, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f64> {
        let mut z = vec![0f64; s.rows * s.outputs];
        for r in 0..s.rows {
            for o in 0..s.outputs {
                z[r * s.outputs + o] =
                    b[o] as f64 + (0..s.inputs).map(|i| x[r * s.inputs + i] as f64 * w[i * s.outputs + o] as f64).sum::<f64>();
            }
        }
        z
    }

    #[test]
    fn forward_and_gradients_match_the_definition() {
        let s = LinearShape { rows: 13, inputs: 9, outputs: 7 };
        let x: Vec<f32> = (0..s.rows * s.inputs).map(|i| value(i, 1)).collect();
        let w: Vec<f32> = (0..s.inputs * s.outputs).map(|i| value(i, 2)).collect();
        let b: Vec<f32> = (0..s.outputs).map(|i| value(i, 3)).collect();
        let dy: Vec<f32> = (0..s.rows * s.outputs).map(|i| value(i, 4)).collect();
        for act in [Activation::Identity, Activation::Gelu] {
            let f = |z: f64| match act {
                Activation::Identity => z,
                Activation::Gelu => {
                    let mut y = [0f32];
                    gelu_forward(&[z as f32], &mut y);
                    y[0] as f64
                }
            };
            let fwd = linear_forward(s, &x, &w, &b, act);
            let z = naive(s, &x, &w, &b);
            for (y, z) in fwd.y.iter().zip(&z) {
                assert!((*y as f64 - f(*z)).abs() < 1e-5, "{act:?}: {y} vs {}", f(*z));
            }
            // Finite differences of sum(dy * y) for every input and parameter.
            let loss = |x: &[f32], w: &[f32], b: &[f32]| -> f64 { naive(s, x, w, b).iter().zip(&dy).map(|(z, g)| f(*z) * *g as f64).sum() };
            let g = linear_backward(s, &x, &w, fwd.pre.as_deref(), &dy, act);
            let check = |name: &str, v: &[f32], grad: &[f32], l: &dyn Fn(&[f32]) -> f64| {
                assert_central_differences(&format!("{act:?} {name}"), v, grad, 1e-2, 2e-3, l)
            };
            check("x", &x, &g.dx, &|v| loss(v, &w, &b));
            check("w", &w, &g.dw, &|v| loss(&x, v, &b));
            check("b", &b, &g.db, &|v| loss(&x, &w, v));
        }
    }
}
