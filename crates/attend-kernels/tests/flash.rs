//! The fused attention kernels held to the reference: every pattern, odd
//! sizes, every instruction set, dropout, outputs and all three gradients;
//! finite differences; determinism across runs and thread counts.

use attend_kernels::dense::{flash_backward_on, flash_forward_on, BLOCK_K, BLOCK_Q};
use attend_kernels::reference::{attention_backward_dropout, attention_forward_dropout, AttentionShape};
use attend_kernels::{flash_backward, flash_forward, AttentionDropout, AttentionParams, AttentionPattern, Isa};

mod common;
use common::values;

fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1f32, |m, x| m.max(x.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_finite(), "{what}[{i}] = {g}");
        assert!((g - w).abs() <= tol * scale, "{what}[{i}]: fused {g} vs reference {w} (tol {})", tol * scale);
    }
}

/// Compares forward and backward with the reference for one configuration.
fn check(isa: Isa, shape: AttentionShape, pattern: &AttentionPattern, dropout: Option<AttentionDropout>) {
    let len = shape.len();
    let (q, k, v) = (values(len, 1, 2.0), values(len, 2, 2.0), values(len, 3, 1.0));
    let dout = values(len, 4, 1.0);
    let scale = 1.0 / (shape.head_dim as f32).sqrt();
    let params = AttentionParams { shape, scale, pattern, dropout };
    let what = format!("{isa:?} {shape:?} {pattern:?} {dropout:?}");
    let f = flash_forward_on(isa, &q, &k, &v, &params);
    let r = attention_forward_dropout(&q, &k, &v, shape, scale, pattern, dropout);
    assert_close(&format!("out {what}"), &f.out, &r.out, 2e-5);
    for (i, (a, b)) in f.lse.iter().zip(&r.lse).enumerate() {
        if b.is_finite() {
            assert!((a - b).abs() < 1e-4 * b.abs().max(1.0), "lse[{i}] {a} vs {b} {what}");
        } else {
            assert_eq!(a, b, "lse[{i}] {what}");
        }
    }
    let g = flash_backward_on(isa, &q, &k, &v, &f.out, &f.lse, &dout, &params);
    let rg = attention_backward_dropout(&q, &k, &v, &r.weights, &dout, shape, scale, pattern, dropout);
    assert_close(&format!("dq {what}"), &g.dq, &rg.dq, 5e-5);
    assert_close(&format!("dk {what}"), &g.dk, &rg.dk, 5e-5);
    assert_close(&format!("dv {what}"), &g.dv, &rg.dv, 5e-5);
}

fn patterns(batch: usize, n: usize) -> Vec<AttentionPattern> {
    let lengths: Vec<usize> = (0..batch).map(|b| if b % 2 == 0 { n } else { n.div_ceil(2) }).collect();
    vec![
        AttentionPattern::dense(),
        AttentionPattern::dense().with_key_lengths(lengths.clone()),
        AttentionPattern::dense().with_causal(true),
        AttentionPattern::dense().with_window(3, 2),
        AttentionPattern::dense().with_window(40, 0).with_key_lengths(lengths.clone()),
        AttentionPattern::dense().with_causal(true).with_key_lengths(lengths),
    ]
}

#[test]
fn every_pattern_and_odd_size_matches_the_reference() {
    const { assert!(BLOCK_Q < 130 && BLOCK_K < 130, "N = 130 must span several blocks") };
    for isa in Isa::available() {
        for (n, d) in [(1, 16), (7, 32), (130, 64), (130, 80), (97, 16), (200, 32)] {
            let shape = AttentionShape { batch: 2, heads: 2, seq: n, head_dim: d };
            for pattern in patterns(2, n) {
                check(isa, shape, &pattern, None);
            }
        }
    }
}

#[test]
fn head_dims_off_the_16_grid_are_padded() {
    for isa in Isa::available() {
        for d in [1, 8, 20, 33] {
            let shape = AttentionShape { batch: 1, heads: 3, seq: 70, head_dim: d };
            check(isa, shape, &AttentionPattern::dense().with_window(9, 30), None);
            check(isa, shape, &AttentionPattern::dense().with_causal(true), None);
        }
    }
}

#[test]
fn dropout_uses_the_reference_mask() {
    for isa in Isa::available() {
        let shape = AttentionShape { batch: 2, heads: 2, seq: 150, head_dim: 32 };
        for pattern in [AttentionPattern::dense().with_key_lengths(vec![150, 60]), AttentionPattern::dense().with_window(20, 5)] {
            check(isa, shape, &pattern, Some(AttentionDropout { p: 0.3, seed: 0xdead_beef_1234 }));
        }
    }
    // about p of the weights are dropped
    let dr = AttentionDropout { p: 0.3, seed: 7 };
    let dropped = (0..200).flat_map(|i| (0..200).map(move |j| (i, j))).filter(|&(i, j)| !dr.keep(1, i, j)).count();
    let frac = dropped as f64 / 40_000.0;
    assert!((frac - 0.3).abs() < 0.01, "dropped {frac}");
}

#[test]
fn a_query_that_sees_nothing_gives_zeros_not_nan() {
    for isa in Isa::available() {
        let shape = AttentionShape { batch: 3, heads: 2, seq: 70, head_dim: 16 };
        // sequence 1 is empty; in sequence 2 queries past 5 see nothing (window ends at the padding)
        let pattern = AttentionPattern::dense().with_key_lengths(vec![70, 0, 5]).with_window(0, 0);
        check(isa, shape, &pattern, None);
        let len = shape.len();
        let (q, k, v) = (values(len, 5, 3.0), values(len, 6, 3.0), values(len, 7, 3.0));
        let params = AttentionParams { shape, scale: 0.25, pattern: &pattern, dropout: None };
        let f = flash_forward_on(isa, &q, &k, &v, &params);
        let head = 70 * 16;
        assert!(f.out[2 * head..4 * head].iter().all(|&x| x == 0.0));
        assert!(f.lse[140..280].iter().all(|&x| x == f32::NEG_INFINITY));
        // window (0, 0): each visible query copies its own value
        assert_close("self only", &f.out[..head], &v[..head], 1e-6);
        let g = flash_backward_on(isa, &q, &k, &v, &f.out, &f.lse, &values(len, 8, 1.0), &params);
        for grad in [&g.dq, &g.dk, &g.dv] {
            assert!(grad.iter().all(|x| x.is_finite()));
            assert!(grad[2 * head..4 * head].iter().all(|&x| x == 0.0));
            // sequence 2, queries 5.. see nothing and keys 5.. are padding
            assert!(grad[4 * head + 5 * 16..5 * head].iter().all(|&x| x == 0.0));
        }
    }
}

#[test]
fn backward_matches_finite_differences_of_the_fused_forward() {
    let shape = AttentionShape { batch: 1, heads: 2, seq: 9, head_dim: 16 };
    let len = shape.len();
    let (q, k, v) = (values(len, 11, 1.0), values(len, 12, 1.0), values(len, 13, 1.0));
    let w = values(len, 14, 1.0);
    let pattern = AttentionPattern::dense().with_window(3, 1).with_key_lengths(vec![8]);
    for isa in Isa::available() {
        let params = AttentionParams { shape, scale: 0.6, pattern: &pattern, dropout: None };
        let loss = |q: &[f32], k: &[f32], v: &[f32]| -> f64 {
            let f = flash_forward_on(isa, q, k, v, &params);
            f.out.iter().zip(&w).map(|(&o, &w)| o as f64 * w as f64).sum()
        };
        let f = flash_forward_on(isa, &q, &k, &v, &params);
        let g = flash_backward_on(isa, &q, &k, &v, &f.out, &f.lse, &w, &params);
        let eps = 1e-2f32;
        for (which, grad) in [(0, &g.dq), (1, &g.dk), (2, &g.dv)] {
            for idx in (0..len).step_by(5) {
                let mut t = [q.clone(), k.clone(), v.clone()];
                t[which][idx] += eps;
                let up = loss(&t[0], &t[1], &t[2]);
                t[which][idx] -= 2.0 * eps;
                let down = loss(&t[0], &t[1], &t[2]);
                let fd = (up - down) / (2.0 * eps as f64);
                assert!((fd - grad[idx] as f64).abs() < 2e-3, "{isa:?} tensor {which} idx {idx}: fd {fd} vs {}", grad[idx]);
            }
        }
    }
}

#[test]
fn bitwise_identical_across_runs_and_thread_counts() {
    let shape = AttentionShape { batch: 2, heads: 3, seq: 333, head_dim: 32 };
    let len = shape.len();
    let (q, k, v, dout) = (values(len, 21, 2.0), values(len, 22, 2.0), values(len, 23, 1.0), values(len, 24, 1.0));
    let pattern = AttentionPattern::dense().with_key_lengths(vec![333, 200]).with_window(100, 50);
    let params = AttentionParams { shape, scale: 0.2, pattern: &pattern, dropout: Some(AttentionDropout { p: 0.1, seed: 3 }) };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let f = flash_forward(&q, &k, &v, &params);
            let g = flash_backward(&q, &k, &v, &f.out, &f.lse, &dout, &params);
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            [bits(&f.out), bits(&f.lse), bits(&g.dq), bits(&g.dk), bits(&g.dv)]
        })
    };
    let first = run(2);
    assert_eq!(first, run(2));
    assert_eq!(first, run(1));
    assert_eq!(first, run(3));
}

/// Heads whose K and V outgrow the cache run one at a time (all threads on
/// one head's query blocks). Checked row by row against a direct f64
/// softmax, since a full reference at this length would be slow.
#[test]
fn long_heads_run_one_at_a_time_and_stay_exact() {
    let shape = AttentionShape { batch: 2, heads: 1, seq: 4133, head_dim: 64 };
    let (n, d) = (shape.seq, shape.head_dim);
    let (q, k, v) = (values(shape.len(), 11, 2.0), values(shape.len(), 12, 2.0), values(shape.len(), 13, 1.0));
    let scale = 1.0 / (d as f32).sqrt();
    let pattern = AttentionPattern::dense().with_key_lengths(vec![n, 3001]);
    let params = AttentionParams { shape, scale, pattern: &pattern, dropout: None };
    let f = flash_forward(&q, &k, &v, &params);
    for bh in 0..2 {
        for i in [0, 1, 63, 64, 1000, 2999, 3000, 3001, 4095, 4096, n - 1] {
            let row = |j: usize| (bh * n + j) * d;
            let keys = pattern.key_range(bh, i, n);
            let scores: Vec<f64> =
                keys.clone().map(|j| (0..d).map(|c| q[row(i) + c] as f64 * k[row(j) + c] as f64).sum::<f64>() * scale as f64).collect();
            let max = scores.iter().cloned().fold(f64::MIN, f64::max);
            let sum: f64 = scores.iter().map(|s| (s - max).exp()).sum();
            let lse = max + sum.ln();
            assert!((f.lse[bh * n + i] as f64 - lse).abs() < 1e-4 * lse.abs().max(1.0), "lse head {bh} query {i}");
            for c in 0..d {
                let want: f64 = keys.clone().zip(&scores).map(|(j, s)| (s - lse).exp() * v[row(j) + c] as f64).sum();
                let got = f.out[row(i) + c] as f64;
                assert!((got - want).abs() < 2e-5, "out head {bh} query {i} channel {c}: {got} vs {want}");
            }
        }
    }
}

/// The vector paths run lane for lane the same operations (fused
/// multiply-adds included), so AVX-512 gives AVX2's results bit for bit:
/// masks, dropout, padding lanes and tails of every micro-kernel height.
#[test]
fn avx512_matches_avx2_bit_for_bit() {
    for name in Isa::missing() {
        eprintln!("note: this CPU lacks {name}: skipped where it is needed");
    }
    let wide: Vec<Isa> = Isa::available().into_iter().filter(|&isa| isa != Isa::Portable).collect();
    if wide.len() < 2 {
        return;
    }
    let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    for (n, d) in [(333, 32), (77, 64), (13, 16), (200, 80)] {
        let shape = AttentionShape { batch: 2, heads: 3, seq: n, head_dim: d };
        let len = shape.len();
        let (q, k, v, dout) = (values(len, 31, 2.0), values(len, 32, 2.0), values(len, 33, 1.0), values(len, 34, 1.0));
        for pattern in patterns(2, n) {
            for dropout in [None, Some(AttentionDropout { p: 0.2, seed: 9 })] {
                let params = AttentionParams { shape, scale: 0.3, pattern: &pattern, dropout };
                let run = |isa: Isa| {
                    let f = flash_forward_on(isa, &q, &k, &v, &params);
                    let g = flash_backward_on(isa, &q, &k, &v, &f.out, &f.lse, &dout, &params);
                    [bits(&f.out), bits(&f.lse), bits(&g.dq), bits(&g.dk), bits(&g.dv)]
                };
                let first = run(wide[0]);
                for &isa in &wide[1..] {
                    assert!(first == run(isa), "{isa:?} differs from {:?}: n {n} d {d} {pattern:?} {dropout:?}", wide[0]);
                }
            }
        }
    }
}
