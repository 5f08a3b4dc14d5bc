//! Moving between the projection layout and the attention kernel layout.
//!
//! One matmul projects every position to q, k and v of all heads at once:
//! `[batch, seq, 3, heads, head_dim]`. The kernels want each head contiguous:
//! `[batch, heads, seq, head_dim]`. [`split_qkv`] makes that move in one pass
//! and applies rotary position embedding (RoPE) to q and k on the way;
//! [`merge_heads`] puts the heads back side by side. Each has its backward
//! (RoPE is a rotation, so its backward is the inverse rotation).
//!
//! RoPE here is the rotate-half form: with `x = [x1, x2]` split at
//! `head_dim / 2`, position p gives `[x1 cos - x2 sin, x1 sin + x2 cos]` with
//! `cos`, `sin` tables of `[seq, head_dim / 2]`.

use rayon::prelude::*;

/// Sizes of a multi-head activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadsShape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
}

impl HeadsShape {
    /// Elements of one of q, k, v (or of the output).
    pub fn len(&self) -> usize {
        self.batch * self.seq * self.heads * self.head_dim
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn per_batch(&self) -> usize {
        self.seq * self.heads * self.head_dim
    }
}

/// Rotary tables `[seq, head_dim / 2]`.
#[derive(Debug, Clone, Copy)]
pub struct Rope<'a> {
    pub cos: &'a [f32],
    pub sin: &'a [f32],
}

impl Rope<'_> {
    fn check(&self, shape: HeadsShape) {
        assert!(shape.head_dim.is_multiple_of(2), "RoPE needs an even head dimension, got {}", shape.head_dim);
        let want = shape.seq * shape.head_dim / 2;
        assert!(self.cos.len() == want && self.sin.len() == want, "RoPE tables must be [seq, head_dim / 2] = {want} values");
    }

    /// `dst = R(pos) src`, or `R(pos)^T src` when `inverse`.
    #[inline]
    fn rotate(&self, pos: usize, src: &[f32], dst: &mut [f32], inverse: bool) {
        let half = src.len() / 2;
        let (cos, sin) = (&self.cos[pos * half..(pos + 1) * half], &self.sin[pos * half..(pos + 1) * half]);
        let (x1, x2) = src.split_at(half);
        let (y1, y2) = dst.split_at_mut(half);
        let sign = if inverse { -1.0 } else { 1.0 };
        for i in 0..half {
            let s = sin[i] * sign;
            y1[i] = x1[i] * cos[i] - x2[i] * s;
            y2[i] = x1[i] * s + x2[i] * cos[i];
        }
    }
}

/// `qkv` `[batch, seq, 3, heads, head_dim]` to `[q, k, v]`, each
/// `[batch, heads, seq, head_dim]`, with q and k rotated by `rope`.
pub fn split_qkv(qkv: &[f32], shape: HeadsShape, rope: Option<Rope>) -> [Vec<f32>; 3] {
    assert_eq!(qkv.len(), 3 * shape.len(), "qkv has {} values, {shape:?} needs {}", qkv.len(), 3 * shape.len());
    if let Some(r) = &rope {
        r.check(shape);
    }
    let HeadsShape { seq, heads, head_dim: d, .. } = shape;
    let mut out = [vec![0f32; shape.len()], vec![0f32; shape.len()], vec![0f32; shape.len()]];
    if shape.is_empty() {
        return out;
    }
    for (which, dst) in out.iter_mut().enumerate() {
        let rope = if which < 2 { rope } else { None };
        dst.par_chunks_mut(shape.per_batch()).enumerate().for_each(|(b, dst)| {
            let src = &qkv[b * 3 * shape.per_batch()..(b + 1) * 3 * shape.per_batch()];
            for h in 0..heads {
                for t in 0..seq {
                    let from = &src[((t * 3 + which) * heads + h) * d..][..d];
                    let to = &mut dst[(h * seq + t) * d..][..d];
                    match &rope {
                        Some(r) => r.rotate(t, from, to, false),
                        None => to.copy_from_slice(from),
                    }
                }
            }
        });
    }
    out
}

/// Gradient of [`split_qkv`]: `dq`, `dk`, `dv` `[batch, heads, seq, head_dim]`
/// to `dqkv` `[batch, seq, 3, heads, head_dim]`.
pub fn split_qkv_backward(dq: &[f32], dk: &[f32], dv: &[f32], shape: HeadsShape, rope: Option<Rope>) -> Vec<f32> {
    for g in [dq, dk, dv] {
        assert_eq!(g.len(), shape.len(), "gradient has {} values, {shape:?} needs {}", g.len(), shape.len());
    }
    if let Some(r) = &rope {
        r.check(shape);
    }
    let HeadsShape { seq, heads, head_dim: d, .. } = shape;
    let mut dqkv = vec![0f32; 3 * shape.len()];
    if shape.is_empty() {
        return dqkv;
    }
    dqkv.par_chunks_mut(3 * shape.per_batch()).enumerate().for_each(|(b, dst)| {
        for (which, src) in [dq, dk, dv].into_iter().enumerate() {
            let src = &src[b * shape.per_batch()..(b + 1) * shape.per_batch()];
            let rope = if which < 2 { rope } else { None };
            for t in 0..seq {
                for h in 0..heads {
                    let from = &src[(h * seq + t) * d..][..d];
                    let to = &mut dst[((t * 3 + which) * heads + h) * d..][..d];
                    match &rope {
                        Some(r) => r.rotate(t, from, to, true),
                        None => to.copy_from_slice(from),
                    }
                }
            }
        }
    });
    dqkv
}

/// `[batch, heads, seq, head_dim]` to `[batch, seq, heads * head_dim]`.
pub fn merge_heads(x: &[f32], shape: HeadsShape) -> Vec<f32> {
    transpose_heads(x, shape, true)
}

/// `[batch, seq, heads * head_dim]` to `[batch, heads, seq, head_dim]`: the
/// inverse of [`merge_heads`], and so also its backward.
pub fn split_heads(x: &[f32], shape: HeadsShape) -> Vec<f32> {
    transpose_heads(x, shape, false)
}

fn transpose_heads(x: &[f32], shape: HeadsShape, merge: bool) -> Vec<f32> {
    assert_eq!(x.len(), shape.len(), "tensor has {} values, {shape:?} needs {}", x.len(), shape.len());
    let HeadsShape { seq, heads, head_dim: d, .. } = shape;
    let mut y = vec![0f32; shape.len()];
    if shape.is_empty() {
        return y;
    }
    y.par_chunks_mut(shape.per_batch()).zip(x.par_chunks(shape.per_batch())).for_each(|(dst, src)| {
        for h in 0..heads {
            for t in 0..seq {
                let (split_at, merged_at) = ((h * seq + t) * d, (t * heads + h) * d);
                if merge {
                    dst[merged_at..merged_at + d].copy_from_slice(&src[split_at..split_at + d]);
                } else {
                    dst[split_at..split_at + d].copy_from_slice(&src[merged_at..merged_at + d]);
                }
            }
        }
    });
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|i| (((i * 7919 + seed * 104_729) % 1000) as f32 - 500.0) / 250.0).collect()
    }

    #[test]
    fn split_then_merge_moves_every_value_to_its_place() {
        let shape = HeadsShape { batch: 2, seq: 3, heads: 4, head_dim: 5 };
        let qkv: Vec<f32> = (0..3 * shape.len()).map(|i| i as f32).collect();
        let [q, k, v] = split_qkv(&qkv, shape, None);
        // element (b, t, which, h, c) of qkv lands at (b, h, t, c) of q/k/v
        let (b, t, h, c) = (1, 2, 3, 4);
        let at_qkv = |which: usize| ((((b * 3 + t) * 3 + which) * 4 + h) * 5 + c) as f32;
        let at = ((b * 4 + h) * 3 + t) * 5 + c;
        assert_eq!((q[at], k[at], v[at]), (at_qkv(0), at_qkv(1), at_qkv(2)));
        assert_eq!(split_heads(&merge_heads(&q, shape), shape), q);
        let merged = merge_heads(&v, shape);
        assert_eq!(merged[((b * 3 + t) * 4 + h) * 5 + c], at_qkv(2));
    }

    #[test]
    fn backward_is_the_transpose() {
        // <split(x), g> = <x, split_backward(g)> for random x and g, with RoPE
        let shape = HeadsShape { batch: 2, seq: 5, heads: 3, head_dim: 8 };
        let half = shape.head_dim / 2;
        let angles: Vec<f32> = (0..shape.seq * half).map(|i| i as f32 * 0.37).collect();
        let (cos, sin): (Vec<f32>, Vec<f32>) = angles.iter().map(|a| (a.cos(), a.sin())).unzip();
        let rope = Some(Rope { cos: &cos, sin: &sin });
        let x = values(3 * shape.len(), 1);
        let g = [values(shape.len(), 2), values(shape.len(), 3), values(shape.len(), 4)];
        let y = split_qkv(&x, shape, rope);
        let lhs: f64 = y.iter().zip(&g).flat_map(|(y, g)| y.iter().zip(g)).map(|(a, b)| (a * b) as f64).sum();
        let dx = split_qkv_backward(&g[0], &g[1], &g[2], shape, rope);
        let rhs: f64 = x.iter().zip(&dx).map(|(a, b)| (a * b) as f64).sum();
        assert!((lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0), "{lhs} vs {rhs}");
        // and rotation keeps the norm of q
        let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>();
        let [q0, _, _] = split_qkv(&x, shape, None);
        assert!((n(&y[0]) - n(&q0)).abs() < 1e-3 * n(&q0));
        assert_ne!(y[0], q0);
        assert_eq!(y[2], split_qkv(&x, shape, None)[2], "v is not rotated");
    }
}
