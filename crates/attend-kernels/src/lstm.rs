//! A fused LSTM recurrence with its backward pass (through time).
//!
//! The input projection of every step is one big matrix product done
//! outside (`gx = x W_ih + b`, `[batch, steps, 4 * hidden]`, gate order
//! input, forget, cell, output as in PyTorch); this kernel runs the part
//! that cannot be batched over time:
//!
//! ```text
//! z_t = gx_t + h_{t-1} W_hh        i, f, o = sigmoid(z_i, z_f, z_o)   g = tanh(z_g)
//! c_t = f * c_{t-1} + i * g        h_t = o * tanh(c_t)                h_0 = c_0 = 0
//! ```
//!
//! Sequences are independent: they are cut into fixed chunks of
//! [`CHUNK`] that run in parallel, each stepping through time with small
//! matrix products, so results do not depend on the thread count. Padding
//! must sit at the end of each sequence (it then never influences a real
//! step); a backward-direction LSTM reverses each sequence within its
//! length first.

use crate::matmul::gemm_acc;
use rayon::prelude::*;

/// Sequences per parallel chunk (fixed, for determinism).
pub const CHUNK: usize = 8;

/// Sizes of one LSTM problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LstmShape {
    pub batch: usize,
    pub steps: usize,
    pub hidden: usize,
}

/// What the forward keeps for the backward: outputs `h` and cell states
/// `c` `[batch, steps, hidden]`, activated gates `[batch, steps, 4 * hidden]`.
#[derive(Debug, Clone)]
pub struct LstmForward {
    pub h: Vec<f32>,
    pub c: Vec<f32>,
    pub gates: Vec<f32>,
}

/// Gradients of the recurrence's inputs: `dgx` `[batch, steps, 4 * hidden]`
/// and `dw` `[hidden, 4 * hidden]`.
#[derive(Debug, Clone)]
pub struct LstmBackward {
    pub dgx: Vec<f32>,
    pub dw: Vec<f32>,
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn check(s: LstmShape, gx: &[f32], w: &[f32]) {
    let (b, t, h) = (s.batch, s.steps, s.hidden);
    assert_eq!(gx.len(), b * t * 4 * h, "gx must be [batch {b}, steps {t}, 4 x hidden {h}]");
    assert_eq!(w.len(), h * 4 * h, "w_hh must be [hidden {h}, 4 x hidden]");
}

/// Runs the recurrence over every sequence.
pub fn lstm_forward(s: LstmShape, gx: &[f32], w: &[f32]) -> LstmForward {
    check(s, gx, w);
    let (t, h) = (s.steps, s.hidden);
    let (seq_h, seq_g) = (t * h, t * 4 * h);
    let mut out = LstmForward { h: vec![0.0; gx.len() / 4], c: vec![0.0; gx.len() / 4], gates: gx.to_vec() };
    out.h
        .par_chunks_mut(CHUNK * seq_h.max(1))
        .zip(out.c.par_chunks_mut(CHUNK * seq_h.max(1)))
        .zip(out.gates.par_chunks_mut(CHUNK * seq_g.max(1)))
        .for_each(|((hs, cs), gates)| {
            let n = gates.len() / seq_g.max(1);
            let mut prev = vec![0f32; n * h];
            let mut z = vec![0f32; n * 4 * h];
            for step in 0..t {
                for r in 0..n {
                    z[r * 4 * h..(r + 1) * 4 * h].copy_from_slice(&gates[r * seq_g + step * 4 * h..][..4 * h]);
                }
                if step > 0 {
                    gemm_acc(&mut z, &prev, h, 1, w, 4 * h, 1, n, h, 4 * h, false);
                }
                for r in 0..n {
                    let zr = &z[r * 4 * h..(r + 1) * 4 * h];
                    let g = &mut gates[r * seq_g + step * 4 * h..][..4 * h];
                    for u in 0..h {
                        let c_prev = if step > 0 { cs[r * seq_h + (step - 1) * h + u] } else { 0.0 };
                        let (i, f, cell, o) = (sigmoid(zr[u]), sigmoid(zr[h + u]), zr[2 * h + u].tanh(), sigmoid(zr[3 * h + u]));
                        g[u] = i;
                        g[h + u] = f;
                        g[2 * h + u] = cell;
                        g[3 * h + u] = o;
                        let c = f * c_prev + i * cell;
                        cs[r * seq_h + step * h + u] = c;
                        let hv = o * c.tanh();
                        hs[r * seq_h + step * h + u] = hv;
                        prev[r * h + u] = hv;
                    }
                }
            }
        });
    out
}

/// Backward through time from the output gradient `dh` `[batch, steps, hidden]`.
pub fn lstm_backward(s: LstmShape, w: &[f32], fwd: &LstmForward, dh: &[f32]) -> LstmBackward {
    let (t, h) = (s.steps, s.hidden);
    assert_eq!(dh.len(), fwd.h.len(), "dh must be [batch, steps, hidden]");
    assert_eq!(w.len(), h * 4 * h);
    let (seq_h, seq_g) = (t * h, t * 4 * h);
    let mut dgx = vec![0f32; fwd.gates.len()];
    let partial: Vec<Vec<f32>> = dgx
        .par_chunks_mut(CHUNK * seq_g.max(1))
        .enumerate()
        .map(|(chunk, dz_all)| {
            let n = dz_all.len() / seq_g.max(1);
            let first = chunk * CHUNK;
            let (hs, cs, gates) = (&fwd.h[first * seq_h..], &fwd.c[first * seq_h..], &fwd.gates[first * seq_g..]);
            let dh = &dh[first * seq_h..];
            let mut dw = vec![0f32; h * 4 * h];
            let mut dh_next = vec![0f32; n * h];
            let mut dc_next = vec![0f32; n * h];
            let mut dz = vec![0f32; n * 4 * h];
            let mut h_prev = vec![0f32; n * h];
            for step in (0..t).rev() {
                for r in 0..n {
                    let g = &gates[r * seq_g + step * 4 * h..][..4 * h];
                    for u in 0..h {
                        let (i, f, cell, o) = (g[u], g[h + u], g[2 * h + u], g[3 * h + u]);
                        let c = cs[r * seq_h + step * h + u];
                        let c_prev = if step > 0 { cs[r * seq_h + (step - 1) * h + u] } else { 0.0 };
                        let tc = c.tanh();
                        let dhv = dh[r * seq_h + step * h + u] + dh_next[r * h + u];
                        let dc = dc_next[r * h + u] + dhv * o * (1.0 - tc * tc);
                        let z = &mut dz[r * 4 * h..(r + 1) * 4 * h];
                        z[u] = dc * cell * i * (1.0 - i);
                        z[h + u] = dc * c_prev * f * (1.0 - f);
                        z[2 * h + u] = dc * i * (1.0 - cell * cell);
                        z[3 * h + u] = dhv * tc * o * (1.0 - o);
                        dc_next[r * h + u] = dc * f;
                    }
                    dz_all[r * seq_g + step * 4 * h..][..4 * h].copy_from_slice(&dz[r * 4 * h..(r + 1) * 4 * h]);
                }
                if step > 0 {
                    // dh_{t-1} = dz W^T;  dW += h_{t-1}^T dz.
                    dh_next.fill(0.0);
                    gemm_acc(&mut dh_next, &dz, 4 * h, 1, w, 1, 4 * h, n, 4 * h, h, false);
                    for r in 0..n {
                        h_prev[r * h..(r + 1) * h].copy_from_slice(&hs[r * seq_h + (step - 1) * h..][..h]);
                    }
                    gemm_acc(&mut dw, &h_prev, 1, h, &dz, 4 * h, 1, h, n, 4 * h, false);
                }
            }
            dw
        })
        .collect();
    let mut dw = vec![0f32; h * 4 * h];
    for p in &partial {
        dw.iter_mut().zip(p).for_each(|(a, b)| *a += b);
    }
    LstmBackward { dgx, dw }
}

/// Plain scalar LSTM, one sequence and step at a time: the oracle the
/// tests hold the fused kernel to.
pub mod reference {
    use super::*;

    /// Outputs `h` `[batch, steps, hidden]`.
    pub fn forward(s: LstmShape, gx: &[f32], w: &[f32]) -> Vec<f32> {
        check(s, gx, w);
        let (t, h) = (s.steps, s.hidden);
        let mut out = vec![0f32; s.batch * t * h];
        for b in 0..s.batch {
            let (mut hp, mut cp) = (vec![0f32; h], vec![0f32; h]);
            for step in 0..t {
                let mut z: Vec<f32> = gx[(b * t + step) * 4 * h..][..4 * h].to_vec();
                for (j, zj) in z.iter_mut().enumerate() {
                    *zj += (0..h).map(|k| hp[k] * w[k * 4 * h + j]).sum::<f32>();
                }
                for u in 0..h {
                    let (i, f, g, o) = (sigmoid(z[u]), sigmoid(z[h + u]), z[2 * h + u].tanh(), sigmoid(z[3 * h + u]));
                    cp[u] = f * cp[u] + i * g;
                    hp[u] = o * cp[u].tanh();
                    out[(b * t + step) * h + u] = hp[u];
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed * 97) % 2000) as f32 / 1000.0 - 1.0)
            .map(|x| x * scale)
            .collect()
    }

    #[test]
    fn fused_forward_matches_scalar_reference() {
        for (batch, steps, hidden) in [(1, 1, 1), (3, 5, 4), (11, 7, 6), (17, 3, 9)] {
            let s = LstmShape { batch, steps, hidden };
            let gx = values(batch * steps * 4 * hidden, 1, 1.5);
            let w = values(hidden * 4 * hidden, 2, 0.5);
            let got = lstm_forward(s, &gx, &w).h;
            let want = reference::forward(s, &gx, &w);
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "{s:?}: {a} vs {b}");
            }
        }
    }

    /// Every input gradient against central differences of `sum(h * r)`.
    #[test]
    fn backward_matches_finite_differences() {
        let s = LstmShape { batch: 10, steps: 4, hidden: 3 };
        let gx = values(s.batch * s.steps * 4 * s.hidden, 3, 1.0);
        let w = values(s.hidden * 4 * s.hidden, 4, 0.6);
        let r = values(s.batch * s.steps * s.hidden, 5, 1.0);
        let loss =
            |gx: &[f32], w: &[f32]| -> f64 { reference::forward(s, gx, w).iter().zip(&r).map(|(a, b)| (*a as f64) * (*b as f64)).sum() };
        let g = lstm_backward(s, &w, &lstm_forward(s, &gx, &w), &r);
        let eps = 1e-2f32;
        for k in (0..gx.len()).step_by(7) {
            let (mut p, mut m) = (gx.clone(), gx.clone());
            p[k] += eps;
            m[k] -= eps;
            let fd = (loss(&p, &w) - loss(&m, &w)) / (2.0 * eps as f64);
            assert!((fd - g.dgx[k] as f64).abs() < 2e-3 * (1.0 + fd.abs()), "dgx[{k}]: {} vs {fd}", g.dgx[k]);
        }
        for k in 0..w.len() {
            let (mut p, mut m) = (w.clone(), w.clone());
            p[k] += eps;
            m[k] -= eps;
            let fd = (loss(&gx, &p) - loss(&gx, &m)) / (2.0 * eps as f64);
            assert!((fd - g.dw[k] as f64).abs() < 2e-3 * (1.0 + fd.abs()), "dw[{k}]: {} vs {fd}", g.dw[k]);
        }
    }

    #[test]
    fn identical_across_thread_counts() {
        let s = LstmShape { batch: 37, steps: 9, hidden: 16 };
        let gx = values(s.batch * s.steps * 64, 6, 1.0);
        let w = values(16 * 64, 7, 0.3);
        let dh = values(s.batch * s.steps * 16, 8, 1.0);
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| {
                let f = lstm_forward(s, &gx, &w);
                let b = lstm_backward(s, &w, &f, &dh);
                (f.h, b.dgx, b.dw)
            })
        };
        let one = run(1);
        for threads in [2, 3] {
            assert!(run(threads) == one, "{threads} threads differ from 1");
        }
    }
}
