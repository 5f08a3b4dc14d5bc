//! Graph attention: each node attends only to its neighbours.
//!
//! A [`Graph`] stores, for every node, the nodes it attends to (its
//! in-neighbours, CSR by destination) and the reverse index (CSR by source)
//! that the backward pass walks, so every gradient is gathered by the node
//! that owns it: no scatter-adds, no atomics, results independent of the
//! thread count.
//!
//! The kernel runs an online softmax over each node's neighbours, per head,
//! and never materialises an `edges x heads x channels` tensor: the forward
//! keeps only the output and one log-sum-exp per (node, head); the backward
//! recomputes each edge's weight from it. Two scores:
//! - [`GraphScore::Dot`]: the scaled dot product `scale * q_i . k_j`;
//! - [`GraphScore::Additive`]: GAT's `LeakyReLU(a_dst . Wh_i + a_src . Wh_j)`,
//!   given the two per-node terms.
//!
//! A node without neighbours (and without a self loop) outputs 0 and gets
//! zero gradients. [`EdgeDropout`] drops normalised weights with a hash of
//! (seed, head, edge), recomputed in the backward.

use crate::simd::fmix32;
use crate::ROW_CHUNK;
use rayon::prelude::*;
use std::fmt;

/// Why a graph could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphError {
    /// Edge number `edge` (0-based, in the order given) names a node `>= nodes`.
    NodeOutOfRange { edge: usize, node: u64, nodes: usize },
    /// More nodes or edges than the u32 indices hold.
    TooLarge { nodes: usize, edges: usize },
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GraphError::NodeOutOfRange { edge, node, nodes } => {
                write!(f, "edge {edge} names node {node}, but the graph has {nodes} nodes (ids 0..{nodes})")
            }
            GraphError::TooLarge { nodes, edges } => {
                write!(f, "{nodes} nodes and {edges} edges exceed the 2^32 - 1 limit of the graph kernels")
            }
        }
    }
}

impl std::error::Error for GraphError {}

/// How an edge list becomes a graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeOptions {
    /// Add the reverse of every edge (treat the list as undirected).
    pub symmetric: bool,
    /// Every node also attends to itself (GAT does this).
    pub self_loops: bool,
}

impl Default for EdgeOptions {
    fn default() -> Self {
        EdgeOptions { symmetric: true, self_loops: true }
    }
}

/// What building a graph did to the edge list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EdgeStats {
    /// Edges in the input list.
    pub given: usize,
    /// Input edges from a node to itself, dropped (self loops come only
    /// from [`EdgeOptions::self_loops`]).
    pub self_edges_dropped: usize,
    /// Repeated edges merged into one (after adding reverses).
    pub duplicates_merged: usize,
    /// Edges the graph holds, self loops included.
    pub edges: usize,
}

/// A directed graph in compressed sparse rows: node `i` attends to
/// `sources(i)` (sorted ascending). Edge ids are positions in that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    nodes: usize,
    /// `offsets[i]..offsets[i + 1]` are node i's incoming edges.
    offsets: Vec<u32>,
    sources: Vec<u32>,
    /// Reverse index: `rev_offsets[j]..rev_offsets[j + 1]` index into
    /// `rev_targets` / `rev_edges`, the nodes that attend to j and the ids
    /// of those edges, by ascending target.
    rev_offsets: Vec<u32>,
    rev_targets: Vec<u32>,
    rev_edges: Vec<u32>,
}

impl Graph {
    /// Builds a graph from `(source, target)` pairs: `target` attends to
    /// `source`. Self edges in the list are dropped and duplicates merged
    /// (see [`EdgeStats`]); out-of-range ids are an error.
    pub fn from_edges(nodes: usize, edges: &[(u64, u64)], options: EdgeOptions) -> Result<(Graph, EdgeStats), GraphError> {
        let too_large = || GraphError::TooLarge { nodes, edges: edges.len() };
        if nodes >= u32::MAX as usize {
            return Err(too_large());
        }
        let mut stats = EdgeStats { given: edges.len(), ..EdgeStats::default() };
        // (target, source) pairs of the list, without self edges.
        let mut pairs: Vec<(u32, u32)> = Vec::with_capacity(edges.len() * (1 + options.symmetric as usize) + nodes);
        for (e, &(src, dst)) in edges.iter().enumerate() {
            for node in [src, dst] {
                if node >= nodes as u64 {
                    return Err(GraphError::NodeOutOfRange { edge: e, node, nodes });
                }
            }
            if src == dst {
                stats.self_edges_dropped += 1;
            } else {
                pairs.push((dst as u32, src as u32));
            }
        }
        pairs.sort_unstable();
        let before = pairs.len();
        pairs.dedup();
        stats.duplicates_merged = before - pairs.len();
        if options.symmetric {
            // An edge given in both directions is one undirected edge.
            pairs.extend((0..pairs.len()).map(|e| (pairs[e].1, pairs[e].0)).collect::<Vec<_>>());
            pairs.sort_unstable();
            pairs.dedup();
        }
        if options.self_loops {
            pairs.extend((0..nodes as u32).map(|i| (i, i)));
            pairs.sort_unstable();
        }
        if pairs.len() >= u32::MAX as usize {
            return Err(too_large());
        }
        stats.edges = pairs.len();
        let mut offsets = vec![0u32; nodes + 1];
        for &(dst, _) in &pairs {
            offsets[dst as usize + 1] += 1;
        }
        for i in 0..nodes {
            offsets[i + 1] += offsets[i];
        }
        let sources: Vec<u32> = pairs.iter().map(|&(_, src)| src).collect();
        // Counting sort of edge ids by source; within a source, targets come
        // out ascending because edge ids are ordered by target.
        let mut rev_offsets = vec![0u32; nodes + 1];
        for &src in &sources {
            rev_offsets[src as usize + 1] += 1;
        }
        for j in 0..nodes {
            rev_offsets[j + 1] += rev_offsets[j];
        }
        let mut fill = rev_offsets.clone();
        let mut rev_targets = vec![0u32; pairs.len()];
        let mut rev_edges = vec![0u32; pairs.len()];
        for (e, &(dst, src)) in pairs.iter().enumerate() {
            let slot = &mut fill[src as usize];
            rev_targets[*slot as usize] = dst;
            rev_edges[*slot as usize] = e as u32;
            *slot += 1;
        }
        Ok((Graph { nodes, offsets, sources, rev_offsets, rev_targets, rev_edges }, stats))
    }

    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// Directed edges, self loops included.
    pub fn edges(&self) -> usize {
        self.sources.len()
    }

    /// The nodes `i` attends to, ascending.
    pub fn sources(&self, i: usize) -> &[u32] {
        &self.sources[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// Id of `i`'s first incoming edge (its edges are consecutive).
    pub fn first_edge(&self, i: usize) -> usize {
        self.offsets[i] as usize
    }

    /// The nodes that attend to `j` and the ids of those edges.
    pub fn targets(&self, j: usize) -> (&[u32], &[u32]) {
        let r = self.rev_offsets[j] as usize..self.rev_offsets[j + 1] as usize;
        (&self.rev_targets[r.clone()], &self.rev_edges[r])
    }

    /// Bytes held by the index arrays.
    pub fn bytes(&self) -> usize {
        4 * (self.offsets.len() + self.sources.len() + self.rev_offsets.len() + self.rev_targets.len() + self.rev_edges.len())
    }
}

/// Dropout on normalised edge weights: weight of edge `e` in head `h` is
/// kept, times `1 / (1 - p)`, when a hash of `(seed, h, e)` clears `p`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EdgeDropout {
    pub p: f32,
    pub seed: u64,
}

impl EdgeDropout {
    /// The multiplier of edge `e`'s weight in head `h`: 0 or `1 / (1 - p)`.
    pub fn factor(&self, h: usize, e: usize) -> f32 {
        DropoutPlan::new(*self, h + 1).factor(h, e)
    }
}

/// An [`EdgeDropout`] with its per-head keys and threshold worked out once.
struct DropoutPlan {
    threshold: u32,
    scale: f32,
    head_keys: Vec<u32>,
}

impl DropoutPlan {
    fn new(d: EdgeDropout, heads: usize) -> Self {
        let head_keys =
            (0..heads).map(|h| fmix32(d.seed as u32 ^ fmix32((d.seed >> 32) as u32 ^ (h as u32).wrapping_mul(0x9e37_79b9)))).collect();
        DropoutPlan { threshold: (d.p as f64 * (1u64 << 24) as f64).round() as u32, scale: 1.0 / (1.0 - d.p), head_keys }
    }

    #[inline(always)]
    fn factor(&self, h: usize, e: usize) -> f32 {
        let hash = fmix32(self.head_keys[h] ^ (e as u32).wrapping_mul(0x85eb_ca77));
        if (hash >> 8) >= self.threshold {
            self.scale
        } else {
            0.0
        }
    }
}

/// How edge (target i, source j) is scored in head h.
#[derive(Debug, Clone, Copy)]
pub enum GraphScore<'a> {
    /// `scale * q_i . k_j`, with q and k `[nodes, heads, key_dim]`.
    Dot { q: &'a [f32], k: &'a [f32], scale: f32 },
    /// `LeakyReLU(dst_i + src_j)` with negative slope `slope`, where
    /// `dst = a_dst . Wh` and `src = a_src . Wh` are `[nodes, heads]`.
    Additive { dst: &'a [f32], src: &'a [f32], slope: f32 },
}

/// One graph attention problem: values `v` are `[nodes, heads, channels]`.
#[derive(Debug, Clone, Copy)]
pub struct GraphAttention<'a> {
    pub graph: &'a Graph,
    pub heads: usize,
    pub score: GraphScore<'a>,
    /// `None` (or p = 0) in inference.
    pub dropout: Option<EdgeDropout>,
}

/// Forward result: output `[nodes, heads, channels]` and the log-sum-exp of
/// each (node, head)'s scores `[nodes, heads]` (-inf without neighbours).
pub struct GraphForward {
    pub out: Vec<f32>,
    pub lse: Vec<f32>,
}

/// Backward result. For [`GraphScore::Dot`], `d_target` is dq and
/// `d_source` is dk (`[nodes, heads, key_dim]`); for
/// [`GraphScore::Additive`] they are the gradients of `dst` and `src`
/// (`[nodes, heads]`). `dv` is `[nodes, heads, channels]`.
pub struct GraphBackward {
    pub d_target: Vec<f32>,
    pub d_source: Vec<f32>,
    pub dv: Vec<f32>,
}

impl GraphAttention<'_> {
    fn check(&self, v: &[f32]) -> usize {
        let (n, h) = (self.graph.nodes, self.heads);
        assert!(h > 0, "graph attention needs at least one head");
        assert_eq!(v.len() % (n * h).max(1), 0, "v has {} elements, not a multiple of nodes {n} x heads {h}", v.len());
        match self.score {
            GraphScore::Dot { q, k, .. } => {
                assert_eq!(q.len(), k.len(), "q and k differ in size");
                assert_eq!(q.len() % (n * h).max(1), 0, "q has {} elements for {n} nodes x {h} heads", q.len());
            }
            GraphScore::Additive { dst, src, .. } => {
                assert_eq!(dst.len(), n * h, "dst score has {} elements, expected nodes x heads = {}", dst.len(), n * h);
                assert_eq!(src.len(), n * h, "src score has {} elements, expected nodes x heads = {}", src.len(), n * h);
            }
        }
        if let Some(d) = self.dropout {
            assert!((0.0..1.0).contains(&d.p), "edge dropout {} is outside [0, 1)", d.p);
        }
        if n == 0 {
            0
        } else {
            v.len() / (n * h)
        }
    }

    /// Width of q and k per head for the dot score; 1 for the additive
    /// score, whose per-node terms are one number per head (so it is also
    /// the width of `d_target` and `d_source` per head).
    fn key_dim(&self) -> usize {
        match self.score {
            GraphScore::Dot { q, .. } if self.graph.nodes > 0 => q.len() / (self.graph.nodes * self.heads),
            _ => 1,
        }
    }

    /// Score of edge (i <- j) in head h, and the derivative of the score
    /// with respect to its pre-activation (1 for the dot product).
    #[inline(always)]
    fn score(&self, h: usize, i: usize, j: usize, kd: usize) -> (f32, f32) {
        match self.score {
            GraphScore::Dot { q, k, scale } => {
                let (qi, kj) = (&q[(i * self.heads + h) * kd..][..kd], &k[(j * self.heads + h) * kd..][..kd]);
                (scale * dot(qi, kj), 1.0)
            }
            GraphScore::Additive { dst, src, slope } => {
                let z = dst[i * self.heads + h] + src[j * self.heads + h];
                if z > 0.0 {
                    (z, 1.0)
                } else {
                    (z * slope, slope)
                }
            }
        }
    }

    fn plan(&self) -> Option<DropoutPlan> {
        self.dropout.filter(|d| d.p > 0.0).map(|d| DropoutPlan::new(d, self.heads))
    }
}

/// Dropout multiplier of edge `e` in head `h` (1 without dropout).
#[inline(always)]
fn keep(plan: &Option<DropoutPlan>, h: usize, e: usize) -> f32 {
    plan.as_ref().map_or(1.0, |p| p.factor(h, e))
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[inline(always)]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// Fused graph attention forward: `out_i = sum_j softmax_j(s_ij) v_j` over
/// i's neighbours, per head.
pub fn graph_forward(att: &GraphAttention, v: &[f32]) -> GraphForward {
    let c = att.check(v);
    let (n, heads, kd) = (att.graph.nodes, att.heads, att.key_dim());
    let plan = att.plan();
    let mut out = vec![0f32; n * heads * c];
    let mut lse = vec![f32::NEG_INFINITY; n * heads];
    if c == 0 {
        return GraphForward { out, lse };
    }
    // Edges outer, heads inner: each neighbour's value row is read once for
    // all heads. `lse` holds the running max until the end.
    out.par_chunks_mut(ROW_CHUNK * heads * c).zip(lse.par_chunks_mut(ROW_CHUNK * heads)).enumerate().for_each(|(chunk, (out, lse))| {
        let mut sums = vec![0f32; heads];
        for (r, (out, max)) in out.chunks_exact_mut(heads * c).zip(lse.chunks_exact_mut(heads)).enumerate() {
            let i = chunk * ROW_CHUNK + r;
            let first = att.graph.first_edge(i);
            sums.fill(0.0);
            for (t, &j) in att.graph.sources(i).iter().enumerate() {
                let j = j as usize;
                let vj = &v[j * heads * c..(j + 1) * heads * c];
                for h in 0..heads {
                    let acc = &mut out[h * c..(h + 1) * c];
                    let (s, _) = att.score(h, i, j, kd);
                    if s > max[h] {
                        let rescale = (max[h] - s).exp();
                        sums[h] *= rescale;
                        acc.iter_mut().for_each(|a| *a *= rescale);
                        max[h] = s;
                    }
                    let p = (s - max[h]).exp();
                    sums[h] += p;
                    let w = p * keep(&plan, h, first + t);
                    if w != 0.0 {
                        axpy(acc, w, &vj[h * c..(h + 1) * c]);
                    }
                }
            }
            for h in 0..heads {
                if sums[h] > 0.0 {
                    let inv = 1.0 / sums[h];
                    out[h * c..(h + 1) * c].iter_mut().for_each(|a| *a *= inv);
                    max[h] += sums[h].ln();
                } else {
                    max[h] = f32::NEG_INFINITY;
                }
            }
        }
    });
    GraphForward { out, lse }
}

/// The normalised weight of every edge in every head, `[edges, heads]`
/// (edge ids in [`Graph::sources`] order), before dropout: what
/// [`graph_forward`] averages the values with. For looking at a model, not
/// for training: it stores `edges x heads` floats.
pub fn graph_edge_weights(att: &GraphAttention) -> Vec<f32> {
    let (n, heads) = (att.graph.nodes, att.heads);
    let kd = att.key_dim();
    let mut w = vec![0f32; att.graph.edges() * heads];
    for i in 0..n {
        let (first, sources) = (att.graph.first_edge(i), att.graph.sources(i));
        let rows = &mut w[first * heads..(first + sources.len()) * heads];
        for h in 0..heads {
            let mut max = f32::NEG_INFINITY;
            for (t, &j) in sources.iter().enumerate() {
                rows[t * heads + h] = att.score(h, i, j as usize, kd).0;
                max = max.max(rows[t * heads + h]);
            }
            let mut sum = 0.0;
            for t in 0..sources.len() {
                rows[t * heads + h] = (rows[t * heads + h] - max).exp();
                sum += rows[t * heads + h];
            }
            for t in 0..sources.len() {
                rows[t * heads + h] /= sum;
            }
        }
    }
    w
}

/// Fused graph attention backward, from the forward's `out` and `lse` and
/// the output gradient `dout`. Pass 1 walks each node's incoming edges
/// (gradients of the target side) and keeps two numbers per (edge, head);
/// pass 2 walks each node's outgoing edges through the reverse index
/// (source side and values). Extra memory: `2 x edges x heads` floats.
pub fn graph_backward(att: &GraphAttention, v: &[f32], out: &[f32], lse: &[f32], dout: &[f32]) -> GraphBackward {
    let c = att.check(v);
    let (n, heads, kd) = (att.graph.nodes, att.heads, att.key_dim());
    let plan = att.plan();
    assert_eq!(out.len(), v.len(), "out and v differ in size");
    assert_eq!(dout.len(), v.len(), "dout and v differ in size");
    assert_eq!(lse.len(), n * heads, "lse has {} elements, expected {}", lse.len(), n * heads);
    let mut d_target = vec![0f32; n * heads * kd];
    let mut d_source = vec![0f32; n * heads * kd];
    let mut dv = vec![0f32; v.len()];
    if c == 0 {
        return GraphBackward { d_target, d_source, dv };
    }
    // delta_i = sum_j P~_ij (dout_i . v_j) = dout_i . out_i
    let delta: Vec<f32> = dout.chunks_exact(c).zip(out.chunks_exact(c)).map(|(g, o)| dot(g, o)).collect();
    // Pass 1, by target: for each edge (i <- j) and head, the kept weight
    // P~_ij and dS_ij = P_ij (keep_ij * dout_i . v_j - delta_i) times the
    // score's derivative, stored per (edge, head) for pass 2; dq or d_dst
    // are gathered here.
    let edges = att.graph.edges();
    let mut kept = vec![0f32; edges * heads];
    let mut d_score = vec![0f32; edges * heads];
    let offsets = &att.graph.offsets;
    // Chunks of ROW_CHUNK target nodes own a contiguous range of edges.
    // (first node, its d_target rows, its kept weights, its score gradients)
    type Chunk<'a> = (usize, &'a mut [f32], &'a mut [f32], &'a mut [f32]);
    let mut work: Vec<Chunk> = Vec::new();
    {
        let (mut dt_rest, mut kept_rest, mut ds_rest) = (&mut d_target[..], &mut kept[..], &mut d_score[..]);
        for start in (0..n).step_by(ROW_CHUNK) {
            let end = (start + ROW_CHUNK).min(n);
            let span = (offsets[end] - offsets[start]) as usize * heads;
            let (dt, r) = std::mem::take(&mut dt_rest).split_at_mut((end - start) * heads * kd);
            dt_rest = r;
            let (kp, r) = std::mem::take(&mut kept_rest).split_at_mut(span);
            kept_rest = r;
            let (ds, r) = std::mem::take(&mut ds_rest).split_at_mut(span);
            ds_rest = r;
            work.push((start, dt, kp, ds));
        }
    }
    work.into_par_iter().for_each(|(start, dt, kept, d_score)| {
        let base = offsets[start] as usize;
        for (r, dt) in dt.chunks_exact_mut(heads * kd).enumerate() {
            let i = start + r;
            let first = att.graph.first_edge(i);
            for (t, &j) in att.graph.sources(i).iter().enumerate() {
                let (j, e) = (j as usize, first + t);
                for h in 0..heads {
                    let (s, slope) = att.score(h, i, j, kd);
                    let p = (s - lse[i * heads + h]).exp();
                    let keep = keep(&plan, h, e);
                    let dp = keep * dot(&dout[(i * heads + h) * c..][..c], &v[(j * heads + h) * c..][..c]);
                    let ds = p * (dp - delta[i * heads + h]) * slope;
                    kept[(e - base) * heads + h] = p * keep;
                    d_score[(e - base) * heads + h] = ds;
                    match att.score {
                        GraphScore::Dot { k, scale, .. } => {
                            axpy(&mut dt[h * kd..(h + 1) * kd], ds * scale, &k[(j * heads + h) * kd..][..kd])
                        }
                        GraphScore::Additive { .. } => dt[h] += ds,
                    }
                }
            }
        }
    });
    // Pass 2, by source through the reverse index: dv, and dk or d_src.
    d_source.par_chunks_mut(ROW_CHUNK * heads * kd).zip(dv.par_chunks_mut(ROW_CHUNK * heads * c)).enumerate().for_each(
        |(chunk, (ds_out, dv))| {
            for (r, (dsrc, dv)) in ds_out.chunks_exact_mut(heads * kd).zip(dv.chunks_exact_mut(heads * c)).enumerate() {
                let j = chunk * ROW_CHUNK + r;
                let (targets, edge_ids) = att.graph.targets(j);
                for (&i, &e) in targets.iter().zip(edge_ids) {
                    let (i, e) = (i as usize, e as usize);
                    for h in 0..heads {
                        let (w, ds) = (kept[e * heads + h], d_score[e * heads + h]);
                        axpy(&mut dv[h * c..(h + 1) * c], w, &dout[(i * heads + h) * c..][..c]);
                        match att.score {
                            GraphScore::Dot { q, scale, .. } => {
                                axpy(&mut dsrc[h * kd..(h + 1) * kd], ds * scale, &q[(i * heads + h) * kd..][..kd])
                            }
                            GraphScore::Additive { .. } => dsrc[h] += ds,
                        }
                    }
                }
            }
        },
    );
    GraphBackward { d_target, d_source, dv }
}

/// The dense twin: the same attention with the adjacency as a mask over a
/// full `[heads, nodes, nodes]` score matrix. The oracle of the tests and
/// the baseline of `attend bench graph`; memory O(nodes^2 x heads).
pub mod dense_reference {
    use super::*;

    /// Edge id + 1 of (target i, source j) at `i * n + j`, 0 for no edge.
    fn adjacency(g: &Graph) -> Vec<u32> {
        let n = g.nodes;
        let mut adj = vec![0u32; n * n];
        for i in 0..n {
            for (t, &j) in g.sources(i).iter().enumerate() {
                adj[i * n + j as usize] = (g.first_edge(i) + t + 1) as u32;
            }
        }
        adj
    }

    /// Forward, also returning the normalised weights `[heads, n, n]`
    /// (before dropout).
    pub fn forward(att: &GraphAttention, v: &[f32]) -> (GraphForward, Vec<f32>) {
        let c = att.check(v);
        let (n, heads, kd) = (att.graph.nodes, att.heads, att.key_dim());
        let plan = att.plan();
        let adj = adjacency(att.graph);
        let mut p = vec![0f32; heads * n * n];
        let mut out = vec![0f32; n * heads * c];
        let mut lse = vec![f32::NEG_INFINITY; n * heads];
        for h in 0..heads {
            for i in 0..n {
                let row = &mut p[(h * n + i) * n..][..n];
                let mut m = f32::NEG_INFINITY;
                for j in 0..n {
                    row[j] = if adj[i * n + j] > 0 { att.score(h, i, j, kd).0 } else { f32::NEG_INFINITY };
                    m = m.max(row[j]);
                }
                if m == f32::NEG_INFINITY {
                    row.fill(0.0);
                    continue;
                }
                let sum: f32 = row
                    .iter_mut()
                    .map(|s| {
                        *s = (*s - m).exp();
                        *s
                    })
                    .sum();
                row.iter_mut().for_each(|s| *s /= sum);
                lse[i * heads + h] = m + sum.ln();
                for j in 0..n {
                    if adj[i * n + j] > 0 {
                        let w = row[j] * keep(&plan, h, adj[i * n + j] as usize - 1);
                        axpy(&mut out[(i * heads + h) * c..][..c], w, &v[(j * heads + h) * c..][..c]);
                    }
                }
            }
        }
        (GraphForward { out, lse }, p)
    }

    /// Backward from the weights [`forward`] returned.
    pub fn backward(att: &GraphAttention, v: &[f32], weights: &[f32], dout: &[f32]) -> GraphBackward {
        let c = att.check(v);
        let (n, heads, kd) = (att.graph.nodes, att.heads, att.key_dim());
        let plan = att.plan();
        let adj = adjacency(att.graph);
        let mut d_target = vec![0f32; n * heads * kd];
        let mut d_source = vec![0f32; n * heads * kd];
        let mut dv = vec![0f32; v.len()];
        let mut dp = vec![0f32; n];
        for h in 0..heads {
            for i in 0..n {
                let p = &weights[(h * n + i) * n..][..n];
                let g = &dout[(i * heads + h) * c..][..c];
                let mut rowsum = 0f32;
                for j in 0..n {
                    dp[j] = 0.0;
                    if adj[i * n + j] > 0 {
                        let keep = keep(&plan, h, adj[i * n + j] as usize - 1);
                        axpy(&mut dv[(j * heads + h) * c..][..c], p[j] * keep, g);
                        dp[j] = keep * dot(g, &v[(j * heads + h) * c..][..c]);
                        rowsum += p[j] * dp[j];
                    }
                }
                for j in 0..n {
                    if adj[i * n + j] == 0 {
                        continue;
                    }
                    let ds = p[j] * (dp[j] - rowsum) * att.score(h, i, j, kd).1;
                    match att.score {
                        GraphScore::Dot { q, k, scale } => {
                            axpy(&mut d_target[(i * heads + h) * kd..][..kd], ds * scale, &k[(j * heads + h) * kd..][..kd]);
                            axpy(&mut d_source[(j * heads + h) * kd..][..kd], ds * scale, &q[(i * heads + h) * kd..][..kd]);
                        }
                        GraphScore::Additive { .. } => {
                            d_target[i * heads + h] += ds;
                            d_source[j * heads + h] += ds;
                        }
                    }
                }
            }
        }
        GraphBackward { d_target, d_source, dv }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csr_and_reverse_index_agree_and_edge_cases_are_counted() {
        let edges = [(0u64, 1u64), (1, 0), (1, 2), (1, 2), (3, 3)];
        let (g, stats) = Graph::from_edges(5, &edges, EdgeOptions { symmetric: true, self_loops: false }).unwrap();
        assert_eq!(stats, EdgeStats { given: 5, self_edges_dropped: 1, duplicates_merged: 1, edges: 4 });
        assert_eq!(g.sources(0), &[1]);
        assert_eq!(g.sources(1), &[0, 2]);
        assert_eq!(g.sources(2), &[1]);
        assert!(g.sources(3).is_empty() && g.sources(4).is_empty());
        for j in 0..5 {
            let (targets, edges) = g.targets(j);
            for (&i, &e) in targets.iter().zip(edges) {
                let t = e as usize - g.first_edge(i as usize);
                assert_eq!(g.sources(i as usize)[t] as usize, j);
            }
        }
        let (g, stats) = Graph::from_edges(5, &edges, EdgeOptions { symmetric: false, self_loops: true }).unwrap();
        assert_eq!(stats.edges, 3 + 5);
        assert_eq!(g.sources(2), &[1, 2]);
        assert_eq!(g.sources(3), &[3]);
        assert_eq!(
            Graph::from_edges(3, &[(0, 1), (2, 7)], EdgeOptions::default()).unwrap_err(),
            GraphError::NodeOutOfRange { edge: 1, node: 7, nodes: 3 }
        );
    }
}
