//! The fused graph attention held to its dense, adjacency-masked twin:
//! both scores, dropout, isolated nodes, outputs and every gradient; finite
//! differences; determinism across thread counts.

use attend_kernels::graph::{
    dense_reference, graph_backward, graph_edge_weights, graph_forward, EdgeDropout, EdgeOptions, Graph, GraphAttention, GraphScore,
};

mod common;
use common::values;

/// A random graph where the last two nodes have no edges at all.
fn random_graph(nodes: usize, edges: usize, seed: u32, options: EdgeOptions) -> Graph {
    let r = values(2 * edges, seed, 1.0);
    let live = nodes - 2;
    let list: Vec<(u64, u64)> = r
        .chunks(2)
        .map(|p| (((p[0] + 1.0) / 2.0 * live as f32) as u64 % live as u64, ((p[1] + 1.0) / 2.0 * live as f32) as u64 % live as u64))
        .collect();
    Graph::from_edges(nodes, &list, options).unwrap().0
}

fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1f32, |m, x| m.max(x.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_finite(), "{what}[{i}] = {g}");
        assert!((g - w).abs() <= tol * scale, "{what}[{i}]: fused {g} vs dense {w}");
    }
}

struct Inputs {
    a: Vec<f32>,
    b: Vec<f32>,
    v: Vec<f32>,
}

fn inputs(nodes: usize, heads: usize, channels: usize, key_dim: usize, additive: bool) -> Inputs {
    let side = if additive { heads } else { nodes * heads * key_dim };
    let side = if additive { nodes * side } else { side };
    Inputs { a: values(side, 1, 1.5), b: values(side, 2, 1.5), v: values(nodes * heads * channels, 3, 1.0) }
}

fn attention<'a>(g: &'a Graph, heads: usize, x: &'a Inputs, additive: bool, dropout: Option<EdgeDropout>) -> GraphAttention<'a> {
    let score =
        if additive { GraphScore::Additive { dst: &x.a, src: &x.b, slope: 0.2 } } else { GraphScore::Dot { q: &x.a, k: &x.b, scale: 0.5 } };
    GraphAttention { graph: g, heads, score, dropout }
}

#[test]
fn fused_matches_dense_masked_reference_with_gradients() {
    for (nodes, edges, self_loops) in [(2, 0, false), (9, 6, false), (40, 120, true), (70, 400, false)] {
        let g = random_graph(nodes, edges, nodes as u32, EdgeOptions { symmetric: true, self_loops });
        for additive in [true, false] {
            for (heads, channels, key_dim) in [(1, 1, 1), (3, 5, 4), (2, 8, 8)] {
                for dropout in [None, Some(EdgeDropout { p: 0.4, seed: 99 })] {
                    let x = inputs(nodes, heads, channels, key_dim, additive);
                    let att = attention(&g, heads, &x, additive, dropout);
                    let what = format!("n {nodes} e {edges} additive {additive} h {heads} c {channels} {dropout:?}");
                    let f = graph_forward(&att, &x.v);
                    let (r, weights) = dense_reference::forward(&att, &x.v);
                    assert_close(&format!("out {what}"), &f.out, &r.out, 1e-5);
                    for (i, (a, b)) in f.lse.iter().zip(&r.lse).enumerate() {
                        if b.is_finite() {
                            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "lse[{i}] {a} vs {b} {what}");
                        } else {
                            assert_eq!(a, b, "lse[{i}] {what}");
                        }
                    }
                    let dout = values(x.v.len(), 4, 1.0);
                    let gb = graph_backward(&att, &x.v, &f.out, &f.lse, &dout);
                    let rb = dense_reference::backward(&att, &x.v, &weights, &dout);
                    assert_close(&format!("d_target {what}"), &gb.d_target, &rb.d_target, 2e-5);
                    assert_close(&format!("d_source {what}"), &gb.d_source, &rb.d_source, 2e-5);
                    assert_close(&format!("dv {what}"), &gb.dv, &rb.dv, 2e-5);
                }
            }
        }
    }
}

/// The per-edge weights a user inspects are the dense reference's softmax,
/// edge by edge; each (node, head) sums to 1 over its neighbours.
#[test]
fn edge_weights_equal_the_dense_reference_softmax() {
    for (nodes, edges) in [(9, 6), (40, 120)] {
        let g = random_graph(nodes, edges, nodes as u32 + 7, EdgeOptions::default());
        for additive in [true, false] {
            let heads = 3;
            let x = inputs(nodes, heads, 4, 5, additive);
            let att = attention(&g, heads, &x, additive, Some(EdgeDropout { p: 0.5, seed: 1 }));
            let weights = graph_edge_weights(&att);
            let (_, dense) = dense_reference::forward(&GraphAttention { dropout: None, ..att }, &x.v);
            assert_eq!(weights.len(), g.edges() * heads);
            for i in 0..nodes {
                for h in 0..heads {
                    let mut sum = 0.0;
                    for (t, &j) in g.sources(i).iter().enumerate() {
                        let w = weights[(g.first_edge(i) + t) * heads + h];
                        let want = dense[(h * nodes + i) * nodes + j as usize];
                        assert!((w - want).abs() < 1e-6, "node {i} head {h} edge from {j}: {w} vs {want}");
                        sum += w;
                    }
                    if !g.sources(i).is_empty() {
                        assert!((sum - 1.0).abs() < 1e-5, "node {i} head {h}: weights sum to {sum}");
                    }
                }
            }
        }
    }
}

#[test]
fn isolated_nodes_give_zero_output_and_zero_gradients() {
    let g = random_graph(12, 10, 5, EdgeOptions { symmetric: true, self_loops: false });
    for isolated in [10, 11] {
        assert!(g.sources(isolated).is_empty() && g.targets(isolated).0.is_empty());
    }
    for additive in [true, false] {
        let x = inputs(12, 2, 3, 3, additive);
        let att = attention(&g, 2, &x, additive, None);
        let f = graph_forward(&att, &x.v);
        let dout = values(x.v.len(), 8, 1.0);
        let b = graph_backward(&att, &x.v, &f.out, &f.lse, &dout);
        for node in [10, 11] {
            assert!(f.out[node * 6..(node + 1) * 6].iter().all(|&o| o == 0.0));
            assert!(f.lse[node * 2..(node + 1) * 2].iter().all(|&l| l == f32::NEG_INFINITY));
            assert!(b.dv[node * 6..(node + 1) * 6].iter().all(|&d| d == 0.0));
            let side = b.d_target.len() / 12;
            assert!(b.d_target[node * side..(node + 1) * side].iter().all(|&d| d == 0.0));
            assert!(b.d_source[node * side..(node + 1) * side].iter().all(|&d| d == 0.0));
        }
        assert!(f.out.iter().chain(&b.dv).chain(&b.d_target).chain(&b.d_source).all(|x| x.is_finite()));
    }
}

#[test]
fn backward_matches_finite_differences() {
    let g = random_graph(15, 30, 3, EdgeOptions::default());
    for additive in [true, false] {
        let x = inputs(15, 2, 3, 4, additive);
        let w = values(x.v.len(), 5, 1.0);
        // loss = sum(out * w), in f64 from the fused forward
        let loss = |x: &Inputs| -> f64 {
            let f = graph_forward(&attention(&g, 2, x, additive, None), &x.v);
            f.out.iter().zip(&w).map(|(o, w)| *o as f64 * *w as f64).sum()
        };
        let att = attention(&g, 2, &x, additive, None);
        let f = graph_forward(&att, &x.v);
        let grads = graph_backward(&att, &x.v, &f.out, &f.lse, &w);
        let eps = 1e-2f32;
        for (which, analytic) in [(0, &grads.d_target), (1, &grads.d_source), (2, &grads.dv)] {
            for idx in (0..analytic.len()).step_by(7) {
                let bump = |delta: f32| {
                    let mut y = Inputs { a: x.a.clone(), b: x.b.clone(), v: x.v.clone() };
                    [&mut y.a, &mut y.b, &mut y.v][which][idx] += delta;
                    loss(&y)
                };
                let numeric = (bump(eps) - bump(-eps)) / (2.0 * eps as f64);
                let a = analytic[idx] as f64;
                // LeakyReLU has a kink at 0: tolerate a point that straddles it
                assert!(
                    (numeric - a).abs() < 2e-3 + 2e-2 * a.abs(),
                    "input {which}[{idx}] additive {additive}: numeric {numeric} vs analytic {a}"
                );
            }
        }
    }
}

#[test]
fn bitwise_identical_across_thread_counts() {
    let g = random_graph(300, 2000, 7, EdgeOptions::default());
    let x = inputs(300, 4, 8, 8, true);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let att = attention(&g, 4, &x, true, Some(EdgeDropout { p: 0.3, seed: 1 }));
            let f = graph_forward(&att, &x.v);
            let b = graph_backward(&att, &x.v, &f.out, &f.lse, &x.v);
            (f.out, b.d_target, b.d_source, b.dv)
        })
    };
    let one = run(1);
    for threads in [2, 3] {
        assert!(one == run(threads), "{threads} threads differ from 1");
    }
}
