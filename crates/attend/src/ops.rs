//! candle custom ops wrapping `attend-kernels`, each with its backward.
//!
//! This is the only bridge between candle and the kernels. candle-nn's fast
//! `layer_norm`, `softmax_last_dim` and `rms_norm` have no backward (gradients
//! silently stop there), so training code uses these instead.

use attend_kernels::adamw::{self, AdamWStep};
use attend_kernels::graph::{self, EdgeDropout, Graph, GraphAttention, GraphBackward, GraphScore};
use attend_kernels::heads::{merge_heads, split_heads, split_qkv, split_qkv_backward, HeadsShape, Rope};
use attend_kernels::lstm::{self, LstmForward, LstmShape};
use attend_kernels::reference::AttentionShape;
use attend_kernels::softmax::ScoresShape;
use attend_kernels::sparse::{SparseDropout, SparseRows};
use attend_kernels::{flash_backward, flash_forward, loss, norm, softmax, AttentionDropout, AttentionParams, AttentionPattern};
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, InplaceOp1, Layout, Result, Shape, Storage, Tensor};
use std::sync::Mutex;

/// The contiguous f32 data of a CPU storage under `layout`.
fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("{op}: input must be contiguous"),
    }
}

/// Runs `f` on a tensor's f32 data without copying it (unless it is strided).
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    with_f32s(&[t], |data| f(data[0]))
}

fn tensor_like(data: Vec<f32>, like: &Tensor) -> Result<Tensor> {
    Tensor::from_vec(data, like.shape(), like.device())
}

// ---------------------------------------------------------------- layer norm

struct LayerNormOp {
    eps: f32,
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "attend-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, g, b) = (f32_slice(s1, l1, self.name())?, f32_slice(s2, l2, self.name())?, f32_slice(s3, l3, self.name())?);
        if l1.dims().last() != Some(&g.len()) || g.len() != b.len() {
            bail!("layer norm: last dim {:?} does not match gamma {} / beta {}", l1.dims(), g.len(), b.len());
        }
        let y = norm::layer_norm_forward(x, g, b, self.eps);
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dg, db) = with_f32(x, |x| with_f32(gamma, |g| with_f32(grad, |dy| norm::layer_norm_backward(x, g, dy, self.eps))))???;
        Ok((Some(tensor_like(dx, x)?), Some(tensor_like(dg, gamma)?), Some(tensor_like(db, beta)?)))
    }
}

/// Layer norm over the last dimension, with backward.
pub fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f32) -> Result<Tensor> {
    x.contiguous()?.apply_op3(gamma, beta, LayerNormOp { eps })
}

// ------------------------------------------------------ masked scaled softmax

struct MaskedSoftmaxOp {
    scale: f32,
    pattern: AttentionPattern,
}

impl CustomOp1 for MaskedSoftmaxOp {
    fn name(&self) -> &'static str {
        "attend-masked-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let scores = f32_slice(s, l, self.name())?;
        let (batch, heads, seq_q, seq_k) = l.shape().dims4()?;
        if let Err(e) = self.pattern.check(batch) {
            bail!("masked softmax: {e}");
        }
        let shape = ScoresShape { batch, heads, seq_q, seq_k };
        let p = softmax::masked_softmax_forward(scores, shape, self.scale, &self.pattern);
        Ok((CpuStorage::F32(p), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let seq_k = arg.dim(3)?;
        let ds = with_f32(res, |p| with_f32(grad, |dp| softmax::masked_softmax_backward(p, dp, seq_k, self.scale)))??;
        Ok(Some(tensor_like(ds, arg)?))
    }
}

/// Softmax of `scale * scores` (`[batch, heads, seq_q, seq_k]`) over the keys
/// each query may see under `pattern`; 0 elsewhere, 0 for a row that sees none.
pub fn masked_softmax(scores: &Tensor, scale: f32, pattern: &AttentionPattern) -> Result<Tensor> {
    scores.contiguous()?.apply_op1(MaskedSoftmaxOp { scale, pattern: pattern.clone() })
}

// --------------------------------------------------------- fused attention

struct FlashAttentionOp {
    scale: f32,
    pattern: AttentionPattern,
    dropout: Option<AttentionDropout>,
    /// Each query's log-sum-exp from the forward, kept for the backward
    /// (O(seq) per head; the weights themselves are never stored).
    lse: Mutex<Vec<f32>>,
}

impl FlashAttentionOp {
    fn params(&self, dims: &[usize]) -> Result<AttentionParams<'_>> {
        let &[batch, heads, seq, head_dim] = dims else {
            bail!("fused attention: q, k, v must be [batch, heads, seq, head_dim], got {dims:?}");
        };
        if let Err(e) = self.pattern.check(batch) {
            bail!("fused attention: {e}");
        }
        let shape = AttentionShape { batch, heads, seq, head_dim };
        Ok(AttentionParams { shape, scale: self.scale, pattern: &self.pattern, dropout: self.dropout })
    }
}

impl CustomOp3 for FlashAttentionOp {
    fn name(&self) -> &'static str {
        "attend-flash-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if l1.dims() != l2.dims() || l1.dims() != l3.dims() {
            bail!("fused attention: q {:?}, k {:?} and v {:?} differ in shape", l1.dims(), l2.dims(), l3.dims());
        }
        let params = self.params(l1.dims())?;
        let (q, k, v) = (f32_slice(s1, l1, self.name())?, f32_slice(s2, l2, self.name())?, f32_slice(s3, l3, self.name())?);
        let f = flash_forward(q, k, v, &params);
        *self.lse.lock().expect("lse lock") = f.lse;
        Ok((CpuStorage::F32(f.out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let params = self.params(q.dims())?;
        let lse = self.lse.lock().expect("lse lock");
        let g = with_f32(q, |q| {
            with_f32(k, |k| with_f32(v, |v| with_f32(out, |o| with_f32(grad, |dout| flash_backward(q, k, v, o, &lse, dout, &params)))))
        })?????;
        Ok((Some(tensor_like(g.dq, q)?), Some(tensor_like(g.dk, k)?), Some(tensor_like(g.dv, v)?)))
    }
}

/// Fused attention `softmax(q k^T * scale) v` over `[batch, heads, seq,
/// head_dim]` inputs, restricted to `pattern`, with optional dropout on the
/// weights. Never stores the `seq x seq` weights; backward recomputes them
/// block by block from the saved log-sum-exp.
pub fn flash_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f32,
    pattern: &AttentionPattern,
    dropout: Option<AttentionDropout>,
) -> Result<Tensor> {
    let op = FlashAttentionOp { scale, pattern: pattern.clone(), dropout, lse: Mutex::new(Vec::new()) };
    q.contiguous()?.apply_op3(&k.contiguous()?, &v.contiguous()?, op)
}

// ------------------------------------- fused self-attention from projections

/// Tensors the self-attention forward keeps for its backward.
struct SavedAttention {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    out: Vec<f32>,
    lse: Vec<f32>,
}

struct SelfAttentionOp {
    heads: usize,
    scale: f32,
    pattern: AttentionPattern,
    dropout: Option<AttentionDropout>,
    /// RoPE cos and sin tables `[seq, head_dim / 2]`.
    rope: Option<(Vec<f32>, Vec<f32>)>,
    saved: Mutex<Option<SavedAttention>>,
}

impl SelfAttentionOp {
    fn shapes(&self, dims: &[usize]) -> Result<(HeadsShape, AttentionShape)> {
        let &[batch, seq, width] = dims else {
            bail!("self-attention: qkv must be [batch, seq, 3 * d_model], got {dims:?}");
        };
        if self.heads == 0 || width % (3 * self.heads) != 0 {
            bail!("self-attention: qkv width {width} is not 3 x {} heads x head_dim", self.heads);
        }
        if let Err(e) = self.pattern.check(batch) {
            bail!("self-attention: {e}");
        }
        let head_dim = width / (3 * self.heads);
        if let Some((cos, _)) = &self.rope {
            if !head_dim.is_multiple_of(2) || cos.len() != seq * head_dim / 2 {
                bail!("self-attention: RoPE tables of {} values do not fit seq {seq} x head_dim {head_dim} / 2", cos.len());
            }
        }
        Ok((HeadsShape { batch, seq, heads: self.heads, head_dim }, AttentionShape { batch, heads: self.heads, seq, head_dim }))
    }

    fn rope(&self) -> Option<Rope<'_>> {
        self.rope.as_ref().map(|(cos, sin)| Rope { cos, sin })
    }
}

impl CustomOp1 for SelfAttentionOp {
    fn name(&self) -> &'static str {
        "attend-self-attention"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (heads_shape, shape) = self.shapes(layout.dims())?;
        let qkv = f32_slice(storage, layout, self.name())?;
        let [q, k, v] = split_qkv(qkv, heads_shape, self.rope());
        let params = AttentionParams { shape, scale: self.scale, pattern: &self.pattern, dropout: self.dropout };
        let f = flash_forward(&q, &k, &v, &params);
        let merged = merge_heads(&f.out, heads_shape);
        *self.saved.lock().expect("saved lock") = Some(SavedAttention { q, k, v, out: f.out, lse: f.lse });
        let (batch, seq) = (heads_shape.batch, heads_shape.seq);
        Ok((CpuStorage::F32(merged), Shape::from((batch, seq, heads_shape.heads * heads_shape.head_dim))))
    }

    fn bwd(&self, qkv: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (heads_shape, shape) = self.shapes(qkv.dims())?;
        let saved = self.saved.lock().expect("saved lock");
        let Some(s) = saved.as_ref() else {
            bail!("self-attention: backward before forward");
        };
        let params = AttentionParams { shape, scale: self.scale, pattern: &self.pattern, dropout: self.dropout };
        let dout = with_f32(grad, |g| split_heads(g, heads_shape))?;
        let g = flash_backward(&s.q, &s.k, &s.v, &s.out, &s.lse, &dout, &params);
        let dqkv = split_qkv_backward(&g.dq, &g.dk, &g.dv, heads_shape, self.rope());
        Ok(Some(tensor_like(dqkv, qkv)?))
    }
}

/// Multi-head self-attention straight from the joint projection `qkv`
/// `[batch, seq, 3 * d_model]` (q, k, v of all heads side by side) to the
/// heads' outputs side by side `[batch, seq, d_model]`, in one op: split into
/// heads, optional RoPE on q and k (`rope` = cos and sin tables `[seq,
/// head_dim / 2]`), the fused kernel, merge. Its backward does the same in
/// reverse, so no per-head copies or rotations go through candle's graph.
pub fn self_attention(
    qkv: &Tensor,
    heads: usize,
    rope: Option<(&[f32], &[f32])>,
    scale: f32,
    pattern: &AttentionPattern,
    dropout: Option<AttentionDropout>,
) -> Result<Tensor> {
    let op = SelfAttentionOp {
        heads,
        scale,
        pattern: pattern.clone(),
        dropout,
        rope: rope.map(|(c, s)| (c.to_vec(), s.to_vec())),
        saved: Mutex::new(None),
    };
    qkv.contiguous()?.apply_op1(op)
}

// ---------------------------------------------------------- graph attention

/// Which score a graph attention op uses (see [`attend_kernels::graph::GraphScore`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GraphScoreKind {
    /// `scale * q_i . k_j`; the op's first two inputs are q and k `[nodes, heads, key_dim]`.
    Dot { scale: f32 },
    /// `LeakyReLU(dst_i + src_j)`; the first two inputs are dst and src `[nodes, heads]`.
    Additive { slope: f32 },
}

struct GraphAttentionOp {
    graph: std::sync::Arc<Graph>,
    score: GraphScoreKind,
    dropout: Option<EdgeDropout>,
    /// Run the dense adjacency-masked twin instead of the fused kernel.
    dense: bool,
    /// The forward's log-sum-exp (fused) or weights (dense), for backward.
    saved: Mutex<Vec<f32>>,
}

impl GraphAttentionOp {
    fn attention<'a>(&'a self, a: &'a [f32], b: &'a [f32], v_dims: &[usize]) -> Result<GraphAttention<'a>> {
        let &[nodes, heads, _] = v_dims else {
            bail!("graph attention: v must be [nodes, heads, channels], got {v_dims:?}");
        };
        if nodes != self.graph.nodes() {
            bail!("graph attention: v has {nodes} nodes but the graph has {}", self.graph.nodes());
        }
        let score = match self.score {
            GraphScoreKind::Dot { scale } => GraphScore::Dot { q: a, k: b, scale },
            GraphScoreKind::Additive { slope } => GraphScore::Additive { dst: a, src: b, slope },
        };
        let fits = match self.score {
            GraphScoreKind::Dot { .. } => a.len() == b.len() && a.len().is_multiple_of((nodes * heads).max(1)),
            GraphScoreKind::Additive { .. } => a.len() == nodes * heads && b.len() == nodes * heads,
        };
        if !fits {
            bail!("graph attention: score inputs of {} and {} elements do not fit {nodes} nodes x {heads} heads", a.len(), b.len());
        }
        Ok(GraphAttention { graph: &self.graph, heads, score, dropout: self.dropout })
    }
}

impl CustomOp3 for GraphAttentionOp {
    fn name(&self) -> &'static str {
        "attend-graph-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (a, b, v) = (f32_slice(s1, l1, self.name())?, f32_slice(s2, l2, self.name())?, f32_slice(s3, l3, self.name())?);
        let att = self.attention(a, b, l3.dims())?;
        let (f, saved) = if self.dense {
            let (f, weights) = graph::dense_reference::forward(&att, v);
            (f, weights)
        } else {
            let f = graph::graph_forward(&att, v);
            let lse = f.lse.clone();
            (f, lse)
        };
        *self.saved.lock().expect("graph attention lock") = saved;
        Ok((CpuStorage::F32(f.out), l3.shape().clone()))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        v: &Tensor,
        out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let saved = self.saved.lock().expect("graph attention lock");
        let g = with_f32(a, |a| {
            with_f32(b, |b| {
                with_f32(v, |vs| {
                    with_f32(grad, |dout| -> Result<GraphBackward> {
                        let att = self.attention(a, b, v.dims())?;
                        if self.dense {
                            Ok(graph::dense_reference::backward(&att, vs, &saved, dout))
                        } else {
                            with_f32(out, |o| graph::graph_backward(&att, vs, o, &saved, dout))
                        }
                    })
                })
            })
        })?????;
        Ok((Some(tensor_like(g.d_target, a)?), Some(tensor_like(g.d_source, b)?), Some(tensor_like(g.dv, v)?)))
    }
}

/// Graph attention: node i's output in head h is the softmax over its
/// neighbours j of score(i, j) times `v_j`. `a` and `b` are q and k for the
/// dot score or the per-node dst and src terms for the additive score; `v`
/// is `[nodes, heads, channels]`. `dense` runs the adjacency-masked dense
/// twin (O(nodes^2) memory; for tests and benchmarks).
pub fn graph_attention(
    a: &Tensor,
    b: &Tensor,
    v: &Tensor,
    graph: &std::sync::Arc<Graph>,
    score: GraphScoreKind,
    dropout: Option<EdgeDropout>,
    dense: bool,
) -> Result<Tensor> {
    let op = GraphAttentionOp { graph: graph.clone(), score, dropout, dense, saved: Mutex::new(Vec::new()) };
    a.contiguous()?.apply_op3(&b.contiguous()?, &v.contiguous()?, op)
}

/// The weights [`graph_attention`] uses, `[edges, heads]` in the graph's
/// edge order (no dropout, no gradient): for looking at a model.
pub fn graph_attention_weights(
    a: &Tensor,
    b: &Tensor,
    heads: usize,
    graph: &std::sync::Arc<Graph>,
    score: GraphScoreKind,
) -> Result<Vec<f32>> {
    let op = GraphAttentionOp { graph: graph.clone(), score, dropout: None, dense: false, saved: Mutex::new(Vec::new()) };
    let (a, b) = (a.flatten_all()?.to_vec1::<f32>()?, b.flatten_all()?.to_vec1::<f32>()?);
    let att = op.attention(&a, &b, &[graph.nodes(), heads, 1])?;
    Ok(graph::graph_edge_weights(&att))
}

// ------------------------------------------------------------------- LSTM

struct LstmOp {
    /// The forward's states, for backward.
    saved: Mutex<Option<(LstmShape, LstmForward)>>,
}

impl CustomOp2 for LstmOp {
    fn name(&self) -> &'static str {
        "attend-lstm"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (gx, w) = (f32_slice(s1, l1, self.name())?, f32_slice(s2, l2, self.name())?);
        let (batch, steps, four) = l1.shape().dims3()?;
        let (hidden, four_w) = l2.shape().dims2()?;
        if four != 4 * hidden || four_w != 4 * hidden {
            bail!("lstm: gx {:?} and w_hh {:?} must be [batch, steps, 4 x hidden] and [hidden, 4 x hidden]", l1.dims(), l2.dims());
        }
        let shape = LstmShape { batch, steps, hidden };
        let f = lstm::lstm_forward(shape, gx, w);
        let h = f.h.clone();
        *self.saved.lock().expect("lstm lock") = Some((shape, f));
        Ok((CpuStorage::F32(h), Shape::from((batch, steps, hidden))))
    }

    fn bwd(&self, _gx: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let saved = self.saved.lock().expect("lstm lock");
        let Some((shape, f)) = saved.as_ref() else { bail!("lstm: backward before forward") };
        let g = with_f32(w, |ws| with_f32(grad, |dh| lstm::lstm_backward(*shape, ws, f, dh)))??;
        let dgx = Tensor::from_vec(g.dgx, (shape.batch, shape.steps, 4 * shape.hidden), w.device())?;
        Ok((Some(dgx), Some(tensor_like(g.dw, w)?)))
    }
}

/// The LSTM recurrence over precomputed input gates `gx` `[batch, steps, 4
/// x hidden]` (`x W_ih + b`, gates i, f, g, o) with recurrent weights `w_hh`
/// `[hidden, 4 x hidden]`, from zero state: outputs `h` `[batch, steps,
/// hidden]`. Fused kernel with a hand-written backward through time.
pub fn lstm(gx: &Tensor, w_hh: &Tensor) -> Result<Tensor> {
    gx.contiguous()?.apply_op2(&w_hh.contiguous()?, LstmOp { saved: Mutex::new(None) })
}

// ------------------------------------------------------ sparse input matmul

struct SparseMatmulOp {
    x: std::sync::Arc<SparseRows>,
    dropout: Option<SparseDropout>,
}

impl CustomOp1 for SparseMatmulOp {
    fn name(&self) -> &'static str {
        "attend-sparse-matmul"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let w = f32_slice(s, l, self.name())?;
        let (cols, n) = l.shape().dims2()?;
        if cols != self.x.cols() {
            bail!("sparse matmul: input has {} columns but the weight has {cols} rows", self.x.cols());
        }
        Ok((CpuStorage::F32(self.x.matmul(w, n, self.dropout.as_ref())), Shape::from((self.x.rows(), n))))
    }

    fn bwd(&self, w: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let n = w.dim(1)?;
        let dw = with_f32(grad, |g| self.x.matmul_weight_grad(g, n, self.dropout.as_ref()))?;
        Ok(Some(tensor_like(dw, w)?))
    }
}

/// `dropout(x) w` for a sparse `x` `[rows, cols]` and a weight `w` `[cols,
/// n]`; dropout acts on the stored entries, with one mask per equal group
/// of output columns. Cost `nnz x n`; only `w` gets a gradient.
pub fn sparse_matmul(x: &std::sync::Arc<SparseRows>, w: &Tensor, dropout: Option<SparseDropout>) -> Result<Tensor> {
    w.contiguous()?.apply_op1(SparseMatmulOp { x: x.clone(), dropout })
}

// ------------------------------------------------------ softmax cross-entropy

struct CrossEntropyOp {
    smoothing: f32,
}

impl CustomOp2 for CrossEntropyOp {
    fn name(&self) -> &'static str {
        "attend-cross-entropy"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let logits = f32_slice(s1, l1, self.name())?;
        let (rows, classes) = l1.shape().dims2()?;
        let targets = match (s2, l2.contiguous_offsets()) {
            (CpuStorage::U32(t), Some((a, b))) => &t[a..b],
            _ => bail!("cross-entropy: targets must be a contiguous u32 tensor"),
        };
        if targets.len() != rows {
            bail!("cross-entropy: {rows} rows of logits but {} targets", targets.len());
        }
        if let Some(&t) = targets.iter().find(|&&t| t != loss::IGNORE && t as usize >= classes) {
            bail!("cross-entropy: target {t} out of range for {classes} classes");
        }
        let l = loss::cross_entropy_forward(logits, targets, classes, self.smoothing);
        Ok((CpuStorage::F32(vec![l]), Shape::from(())))
    }

    fn bwd(&self, logits: &Tensor, targets: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let classes = logits.dim(1)?;
        let g = grad.to_scalar::<f32>()?;
        let t = targets.to_vec1::<u32>()?;
        let dz = with_f32(logits, |z| loss::cross_entropy_backward(z, &t, classes, self.smoothing, g))?;
        Ok((Some(tensor_like(dz, logits)?), None))
    }
}

/// Mean softmax cross-entropy of `logits` `[rows, classes]` against `targets`
/// `[rows]` (u32, [`loss::IGNORE`] rows skipped), with label smoothing.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, smoothing: f32) -> Result<Tensor> {
    logits.contiguous()?.apply_op2(&targets.contiguous()?, CrossEntropyOp { smoothing })
}

// ------------------------------------------------------------------ dropout

struct DropoutOp {
    p: f32,
    seed: u64,
}

impl CustomOp1 for DropoutOp {
    fn name(&self) -> &'static str {
        "attend-dropout"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, self.name())?;
        Ok((CpuStorage::F32(attend_kernels::dropout::dropout(x, self.p, self.seed)), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        // Same mask, recomputed from the seed.
        let dx = with_f32(grad, |g| attend_kernels::dropout::dropout(g, self.p, self.seed))?;
        Ok(Some(tensor_like(dx, arg)?))
    }
}

/// Inverted dropout with a mask drawn from `seed` (never stored: backward
/// recomputes it).
pub fn dropout(x: &Tensor, p: f32, seed: u64) -> Result<Tensor> {
    x.contiguous()?.apply_op1(DropoutOp { p, seed })
}

// ---------------------------------------------------------- masked max pool

struct MaskedMaxOp {
    lengths: Vec<usize>,
    /// Winning step per output, kept from forward for backward.
    arg: Mutex<Vec<u32>>,
}

impl CustomOp1 for MaskedMaxOp {
    fn name(&self) -> &'static str {
        "attend-masked-max"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, self.name())?;
        let (items, steps, features) = l.shape().dims3()?;
        if items != self.lengths.len() {
            bail!("masked max: {items} items but {} lengths", self.lengths.len());
        }
        let (y, arg) = attend_kernels::pool::masked_max_forward(x, &self.lengths, steps, features);
        *self.arg.lock().expect("pool lock") = arg;
        Ok((CpuStorage::F32(y), Shape::from((items, features))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (_, steps, features) = arg.dims3()?;
        let winners = self.arg.lock().expect("pool lock");
        let dx = with_f32(grad, |g| attend_kernels::pool::masked_max_backward(g, &winners, &self.lengths, steps, features))?;
        Ok(Some(tensor_like(dx, arg)?))
    }
}

/// Max over the first `lengths[i]` steps of each item of `x`
/// `[items, steps, features]`; 0 for an item of length 0.
pub fn masked_max(x: &Tensor, lengths: &[usize]) -> Result<Tensor> {
    x.contiguous()?.apply_op1(MaskedMaxOp { lengths: lengths.to_vec(), arg: Mutex::new(Vec::new()) })
}

// ------------------------------------------------------ convolution windows

struct WindowsOp {
    valid: Vec<usize>,
    kernel: usize,
}

impl CustomOp1 for WindowsOp {
    fn name(&self) -> &'static str {
        "attend-windows"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, self.name())?;
        let (items, steps, features) = l.shape().dims3()?;
        if items != self.valid.len() {
            bail!("windows: {items} items but {} lengths", self.valid.len());
        }
        let y = attend_kernels::window::windows_forward(x, &self.valid, steps, features, self.kernel);
        Ok((CpuStorage::F32(y), Shape::from((items, steps, self.kernel * features))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (_, steps, features) = arg.dims3()?;
        let dx = with_f32(grad, |g| attend_kernels::window::windows_backward(g, &self.valid, steps, features, self.kernel))?;
        Ok(Some(tensor_like(dx, arg)?))
    }
}

/// The `kernel` (odd) steps around each step of `x` `[batch, steps,
/// features]`, side by side: `[batch, steps, kernel * features]`, step
/// `t - kernel / 2` first; zeros beyond both ends and at or past
/// `valid[b]` steps of item `b` (padding never leaks into a window). A
/// linear layer over these is a convolution with "same" padding.
pub fn windows(x: &Tensor, valid: &[usize], kernel: usize) -> Result<Tensor> {
    if kernel.is_multiple_of(2) {
        bail!("windows: the kernel must be odd, got {kernel}");
    }
    x.contiguous()?.apply_op1(WindowsOp { valid: valid.to_vec(), kernel })
}

/// [`windows`] in candle's own ops (pad, narrow, cat, a mask): its
/// reference twin.
pub fn windows_reference(x: &Tensor, valid: &[usize], kernel: usize) -> Result<Tensor> {
    let (b, steps, _) = x.dims3()?;
    let keep: Vec<f32> = valid.iter().flat_map(|&n| (0..steps).map(move |i| f32::from(u8::from(i < n)))).collect();
    let x = x.broadcast_mul(&Tensor::from_vec(keep, (b, steps, 1), x.device())?)?;
    let padded = x.pad_with_zeros(1, kernel / 2, kernel / 2)?;
    let taps = (0..kernel).map(|j| padded.narrow(1, j, steps)).collect::<Result<Vec<_>>>()?;
    Tensor::cat(&taps, 2)
}

// ------------------------------------------------------------------ GELU

struct GeluOp;

impl CustomOp1 for GeluOp {
    fn name(&self) -> &'static str {
        "attend-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let z = f32_slice(s, l, self.name())?;
        let mut y = vec![0f32; z.len()];
        attend_kernels::activation::gelu_forward(z, &mut y);
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let dz = with_f32s(&[arg, grad], |d| {
            let mut dz = vec![0f32; d[0].len()];
            attend_kernels::activation::gelu_backward(d[0], d[1], &mut dz);
            dz
        })?;
        Ok(Some(tensor_like(dz, arg)?))
    }
}

/// Exact (erf) GELU, vectorised, with its backward (candle's `gelu_erf`
/// is its reference twin).
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(GeluOp)
}

// ------------------------------------------------------------ dense layer

pub use attend_kernels::linear::Activation;

struct LinearOp {
    act: Activation,
    /// The pre-activation, for GELU's backward.
    saved: Mutex<Option<Vec<f32>>>,
}

fn linear_shape(x: &Layout, w: &Layout, b: &Layout) -> Result<attend_kernels::linear::LinearShape> {
    let (rows, inputs) = x.shape().dims2()?;
    let (w_in, outputs) = w.shape().dims2()?;
    if w_in != inputs || b.shape().dims1()? != outputs {
        bail!("linear: x [{rows}, {inputs}], weight [{w_in}, {outputs}] and bias {:?} do not fit", b.dims());
    }
    Ok(attend_kernels::linear::LinearShape { rows, inputs, outputs })
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "attend-linear"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        w: &CpuStorage,
        wl: &Layout,
        b: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let shape = linear_shape(xl, wl, bl)?;
        let (x, w, b) = (f32_slice(x, xl, self.name())?, f32_slice(w, wl, self.name())?, f32_slice(b, bl, self.name())?);
        let f = attend_kernels::linear::linear_forward(shape, x, w, b, self.act);
        *self.saved.lock().expect("linear lock") = f.pre;
        Ok((CpuStorage::F32(f.y), Shape::from((shape.rows, shape.outputs))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let shape = linear_shape(x.layout(), w.layout(), b.layout())?;
        let pre = self.saved.lock().expect("linear lock");
        let g = with_f32(x, |x| {
            with_f32(w, |w| with_f32(grad, |d| attend_kernels::linear::linear_backward(shape, x, w, pre.as_deref(), d, self.act)))
        })???;
        Ok((Some(tensor_like(g.dx, x)?), Some(tensor_like(g.dw, w)?), Some(tensor_like(g.db, b)?)))
    }
}

/// `act(x W + b)` for `x` of any rank with the last dimension `W`'s first,
/// in one op (bias in the GEMM, activation in its output pass).
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor, act: Activation) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let inputs = *dims.last().ok_or_else(|| candle_core::Error::msg("linear: x has no dimensions"))?;
    let rows = x.elem_count() / inputs.max(1);
    let op = LinearOp { act, saved: Mutex::new(None) };
    let y = x.contiguous()?.reshape((rows, inputs))?.apply_op3(&w.contiguous()?, &b.contiguous()?, op)?;
    let mut out = dims;
    *out.last_mut().expect("x has a last dimension") = w.dim(1)?;
    y.reshape(out)
}

// -------------------------------------------------------- character CNN

struct CharCnnOp {
    ids: Vec<u32>,
    lengths: Vec<usize>,
    max_chars: usize,
    kernel: usize,
    saved: Mutex<Option<attend_kernels::charcnn::CharCnnForward>>,
}

impl CharCnnOp {
    fn shape(&self, table: &Layout, w: &Layout, b: &Layout) -> Result<attend_kernels::charcnn::CharCnnShape> {
        let (chars, char_dim) = table.shape().dims2()?;
        let (window, filters) = w.shape().dims2()?;
        if self.kernel.is_multiple_of(2) || window != self.kernel * char_dim || b.shape().dims1()? != filters {
            bail!(
                "char cnn: table [{chars}, {char_dim}], weight [{window}, {filters}], bias {:?} do not fit kernel {}",
                b.dims(),
                self.kernel
            );
        }
        if self.ids.len() != self.lengths.len() * self.max_chars || self.ids.iter().any(|&i| i as usize >= chars) {
            bail!("char cnn: ids must be [spellings, max_chars] indices into the {chars}-row table");
        }
        if self.lengths.iter().any(|&l| l > self.max_chars) {
            bail!("char cnn: a length exceeds max_chars {}", self.max_chars);
        }
        Ok(attend_kernels::charcnn::CharCnnShape { chars, char_dim, filters, kernel: self.kernel, max_chars: self.max_chars })
    }
}

impl CustomOp3 for CharCnnOp {
    fn name(&self) -> &'static str {
        "attend-char-cnn"
    }

    fn cpu_fwd(
        &self,
        t: &CpuStorage,
        tl: &Layout,
        w: &CpuStorage,
        wl: &Layout,
        b: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let shape = self.shape(tl, wl, bl)?;
        let (t, w, b) = (f32_slice(t, tl, self.name())?, f32_slice(w, wl, self.name())?, f32_slice(b, bl, self.name())?);
        let mut fwd = attend_kernels::charcnn::char_cnn_forward(shape, t, w, b, &self.ids, &self.lengths);
        let out = std::mem::take(&mut fwd.out);
        *self.saved.lock().expect("char cnn lock") = Some(fwd);
        Ok((CpuStorage::F32(out), Shape::from((self.lengths.len(), shape.filters))))
    }

    fn bwd(
        &self,
        table: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let shape = self.shape(table.layout(), w.layout(), b.layout())?;
        let saved = self.saved.lock().expect("char cnn lock");
        let Some(fwd) = saved.as_ref() else {
            bail!("char cnn: backward before forward");
        };
        let g =
            with_f32(w, |w| with_f32(grad, |d| attend_kernels::charcnn::char_cnn_backward(shape, w, &self.ids, &self.lengths, fwd, d)))??;
        Ok((Some(tensor_like(g.dtable, table)?), Some(tensor_like(g.dw, w)?), Some(tensor_like(g.db, b)?)))
    }
}

/// The character CNN in one op: `ids` `[spellings, max_chars]` (the first
/// `lengths[s]` of each row real) through `table` `[chars, dim]`, a
/// width-`kernel` convolution with `w` `[kernel * dim, filters]` and `b`,
/// ReLU, and the max over each spelling's characters: `[spellings, filters]`.
/// Characters outside a spelling read as zeros; an empty spelling gives 0.
pub fn char_cnn(table: &Tensor, w: &Tensor, b: &Tensor, ids: &[u32], lengths: &[usize], max_chars: usize, kernel: usize) -> Result<Tensor> {
    let op = CharCnnOp { ids: ids.to_vec(), lengths: lengths.to_vec(), max_chars, kernel, saved: Mutex::new(None) };
    table.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, op)
}

// ------------------------------------------------------------------- AdamW

/// A gradient as [`AdamWOp`] takes it: dense parts, or rows of a table.
enum AdamWGrad<'a> {
    Dense(&'a [&'a [f32]]),
    Rows(&'a [adamw::Rows<'a>]),
}

struct AdamWOp<'a> {
    grad: AdamWGrad<'a>,
    m: Mutex<&'a mut [f32]>,
    v: Mutex<&'a mut [f32]>,
    step: AdamWStep,
}

impl InplaceOp1 for AdamWOp<'_> {
    fn name(&self) -> &'static str {
        "attend-adamw"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout) -> Result<()> {
        let Some((a, b)) = l1.contiguous_offsets() else { bail!("adamw: parameter must be contiguous") };
        let CpuStorage::F32(p) = s1 else { bail!("adamw: parameter must be f32") };
        let param = &mut p[a..b];
        let mut m = self.m.lock().expect("adamw state lock");
        let mut v = self.v.lock().expect("adamw state lock");
        let n = param.len();
        let fits = match &self.grad {
            AdamWGrad::Dense(g) => !g.is_empty() && g.iter().all(|g| g.len() == n),
            AdamWGrad::Rows(g) => g.iter().all(|g| g.width > 0 && n.is_multiple_of(g.width)),
        };
        if !fits || m.len() != n || v.len() != n {
            bail!("adamw: parameter, gradient and state sizes differ");
        }
        match &self.grad {
            AdamWGrad::Dense(g) => adamw::adamw_update(param, g, &mut m, &mut v, &self.step),
            AdamWGrad::Rows(g) => adamw::adamw_update_rows(param, g, &mut m, &mut v, &self.step),
        }
        Ok(())
    }
}

/// Runs `f` on the f32 data of several CPU tensors at once, without
/// copying them (unless strided).
fn with_f32s<R>(ts: &[&Tensor], f: impl FnOnce(&[&[f32]]) -> R) -> Result<R> {
    let ts = ts.iter().map(|t| t.contiguous()).collect::<Result<Vec<_>>>()?;
    let held: Vec<_> = ts.iter().map(|t| t.storage_and_layout()).collect();
    let slices = held
        .iter()
        .map(|(storage, layout)| match &**storage {
            Storage::Cpu(cpu) => f32_slice(cpu, layout, "attend op"),
            _ => bail!("attend's fused ops run on the CPU"),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(f(&slices))
}

// ------------------------------------------------------- embedding by rows

/// The gradient of a table that is zero but in the rows a batch looked up
/// ([`adamw::Rows`], owned): increasing row ids, each once, and their
/// values, `width` each.
#[derive(Debug, Clone, PartialEq)]
pub struct RowGrad {
    pub ids: Vec<u32>,
    pub values: Vec<f32>,
    pub width: usize,
}

impl RowGrad {
    pub fn as_rows(&self) -> adamw::Rows<'_> {
        adamw::Rows { ids: &self.ids, values: &self.values, width: self.width }
    }

    /// The sum of two gradients of one table: `other`'s rows added after
    /// `self`'s, as [`adamw::rows_of`] adds the lookups of one row.
    pub fn add(&self, other: &RowGrad) -> RowGrad {
        assert_eq!(self.width, other.width, "row gradients of different tables");
        let ids: Vec<u32> = self.ids.iter().chain(&other.ids).copied().collect();
        let values: Vec<f32> = self.values.iter().chain(&other.values).copied().collect();
        let (ids, values) = adamw::rows_of(&ids, &values, self.width);
        RowGrad { ids, values, width: self.width }
    }

    /// The whole table (`rows` rows), zeros where no row was looked up.
    pub fn to_dense(&self, rows: usize) -> Result<Tensor> {
        let mut table = vec![0f32; rows * self.width];
        for (&r, row) in self.ids.iter().zip(self.values.chunks_exact(self.width.max(1))) {
            table[r as usize * self.width..][..self.width].copy_from_slice(row);
        }
        Tensor::from_vec(table, (rows, self.width), &candle_core::Device::Cpu)
    }
}

/// Where [`embedding_rows`] lookups leave their tables' gradients during a
/// backward pass, by the table's tensor id, in the order the lookups'
/// backward ran.
#[derive(Debug, Default)]
pub struct RowGrads(Mutex<Vec<(candle_core::TensorId, RowGrad)>>);

impl RowGrads {
    /// What was collected, emptying the collection.
    pub fn take(&self) -> Vec<(candle_core::TensorId, RowGrad)> {
        std::mem::take(&mut *self.0.lock().expect("row gradients lock"))
    }
}

struct EmbeddingRowsOp {
    ids: Vec<u32>,
    sink: std::sync::Arc<RowGrads>,
}

impl CustomOp1 for EmbeddingRowsOp {
    fn name(&self) -> &'static str {
        "attend-embedding-rows"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let table = f32_slice(s, l, self.name())?;
        let (rows, width) = l.shape().dims2()?;
        let mut out = Vec::with_capacity(self.ids.len() * width);
        for &id in &self.ids {
            if id as usize >= rows {
                bail!("embedding: id {id} past a table of {rows} rows");
            }
            out.extend_from_slice(&table[id as usize * width..][..width]);
        }
        Ok((CpuStorage::F32(out), Shape::from((self.ids.len(), width))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let width = arg.dim(1)?;
        let (ids, values) = with_f32(grad, |g| adamw::rows_of(&self.ids, g, width))?;
        self.sink.0.lock().expect("row gradients lock").push((arg.id(), RowGrad { ids, values, width }));
        // The table gets no dense gradient: its rows are in the sink.
        Ok(None)
    }
}

/// Rows `ids` of `table` (`[rows, width]`): `[ids.len(), width]`, as
/// `table.index_select(ids, 0)`, except that backward leaves the table's
/// gradient in `sink` as rows ([`RowGrad`]) instead of building the whole
/// table of zeros with the rows added (9 MiB for the tagger's words, per
/// data-parallel piece of every step, and read again by the update).
pub fn embedding_rows(table: &Tensor, ids: &[u32], sink: &std::sync::Arc<RowGrads>) -> Result<Tensor> {
    table.contiguous()?.apply_op1(EmbeddingRowsOp { ids: ids.to_vec(), sink: sink.clone() })
}

/// AdamW on `param` (a table) from a gradient given as rows (parts to add
/// in order), as [`adamw_step`] with the dense table would, bit for bit.
pub fn adamw_step_rows(param: &Tensor, grad: &[&RowGrad], m: &mut [f32], v: &mut [f32], step: AdamWStep) -> Result<()> {
    let rows: Vec<adamw::Rows> = grad.iter().map(|g| g.as_rows()).collect();
    param.inplace_op1(&AdamWOp { grad: AdamWGrad::Rows(&rows), m: Mutex::new(m), v: Mutex::new(v), step })
}

/// Sum of squares (f64) of a table's gradient given as rows, as
/// [`sum_of_squares`] of the dense table would give, bit for bit.
pub fn sum_of_squares_rows(elements: usize, grad: &[&RowGrad]) -> f64 {
    let rows: Vec<adamw::Rows> = grad.iter().map(|g| g.as_rows()).collect();
    adamw::sum_of_squares_rows(elements, &rows)
}

/// One fused AdamW update of `param` in place, with moments `m` and `v`,
/// from a gradient given as parts to add in order (the pieces of a
/// data-parallel step; usually one).
pub fn adamw_step(param: &Tensor, grad: &[&Tensor], m: &mut [f32], v: &mut [f32], step: AdamWStep) -> Result<()> {
    with_f32s(grad, |grad| param.inplace_op1(&AdamWOp { grad: AdamWGrad::Dense(grad), m: Mutex::new(m), v: Mutex::new(v), step }))?
}

/// Sum of squares (f64) of a gradient given as parts to add in order, as
/// in [`adamw_step`].
pub fn sum_of_squares(grad: &[&Tensor]) -> Result<f64> {
    with_f32s(grad, adamw::sum_of_squares)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    fn t(data: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_slice(data, shape, &Device::Cpu).unwrap()
    }

    /// Each fused op against the same computation written with candle's
    /// differentiable primitives: outputs and gradients.
    #[test]
    fn layer_norm_matches_candle_primitives() {
        let x = Var::from_tensor(&t(&(0..24).map(|i| ((i * 7 % 11) as f32) * 0.3).collect::<Vec<_>>(), &[2, 3, 4])).unwrap();
        let g = Var::from_tensor(&t(&[1.0, 0.5, 2.0, -1.0], &[4])).unwrap();
        let b = Var::from_tensor(&t(&[0.1, 0.2, 0.3, 0.4], &[4])).unwrap();
        let w = t(&(0..24).map(|i| (i % 5) as f32 - 2.0).collect::<Vec<_>>(), &[2, 3, 4]);
        let fused = layer_norm(&x, &g, &b, 1e-5).unwrap();
        let mean = x.mean_keepdim(2).unwrap();
        let xc = x.broadcast_sub(&mean).unwrap();
        let var = xc.sqr().unwrap().mean_keepdim(2).unwrap();
        let plain = xc.broadcast_div(&(var + 1e-5).unwrap().sqrt().unwrap()).unwrap().broadcast_mul(&g).unwrap().broadcast_add(&b).unwrap();
        let diff = (&fused - &plain).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5);
        let gf = (&fused * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let gp = (&plain * &w).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&x, &g, &b] {
            let a = gf.get(v).unwrap();
            let c = gp.get(v).unwrap();
            let d = (a - c).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(d < 1e-4, "gradient differs by {d}");
        }
    }

    #[test]
    fn windows_match_their_candle_twin_and_hold_the_steps_around_each_step() {
        // One sequence of 3 steps with 2 features: step t is [t, 10 t].
        let x = Var::from_tensor(&t(&[1.0, 10.0, 2.0, 20.0, 3.0, 30.0], &[1, 3, 2])).unwrap();
        let rows = windows(&x, &[3], 3).unwrap().squeeze(0).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(rows, [[0.0, 0.0, 1.0, 10.0, 2.0, 20.0], [1.0, 10.0, 2.0, 20.0, 3.0, 30.0], [2.0, 20.0, 3.0, 30.0, 0.0, 0.0]]);
        assert!(windows(&x, &[3], 2).is_err());
        // Against the twin, outputs and gradients, with items shorter than the batch.
        let x = Var::from_tensor(&t(&(0..3 * 9 * 4).map(|i| ((i * 7 % 13) as f32) * 0.3 - 1.0).collect::<Vec<_>>(), &[3, 9, 4])).unwrap();
        let valid = [9, 5, 1];
        let w = t(&(0..3 * 9 * 20).map(|i| ((i * 5 % 11) as f32) - 5.0).collect::<Vec<_>>(), &[3, 9, 20]);
        let fast = windows(&x, &valid, 5).unwrap();
        let twin = windows_reference(&x, &valid, 5).unwrap();
        assert_eq!(fast.to_vec3::<f32>().unwrap(), twin.to_vec3::<f32>().unwrap());
        let gf = (&fast * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let gt = (&twin * &w).unwrap().sum_all().unwrap().backward().unwrap();
        assert_eq!(gf.get(&x).unwrap().to_vec3::<f32>().unwrap(), gt.get(&x).unwrap().to_vec3::<f32>().unwrap());
    }

    #[test]
    fn gelu_matches_candle_gelu_erf_and_its_gradient() {
        let x = Var::from_tensor(&t(&(0..64).map(|i| (i as f32 - 32.0) * 0.17).collect::<Vec<_>>(), &[4, 16])).unwrap();
        let w = t(&(0..64).map(|i| ((i * 3 % 7) as f32) - 3.0).collect::<Vec<_>>(), &[4, 16]);
        let (fast, twin) = (gelu(&x).unwrap(), x.gelu_erf().unwrap());
        let d = (&fast - &twin).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1e-5, "output off by {d}");
        let gf = (&fast * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let gt = (&twin * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let d = (gf.get(&x).unwrap() - gt.get(&x).unwrap()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1e-4, "gradient off by {d}");
    }

    #[test]
    fn masked_softmax_matches_candle_softmax_on_visible_keys() {
        let s = Var::from_tensor(&t(&(0..2 * 3 * 3).map(|i| (i as f32 * 0.37).sin()).collect::<Vec<_>>(), &[2, 1, 3, 3])).unwrap();
        let pattern = AttentionPattern::dense().with_key_lengths(vec![3, 2]);
        let p = masked_softmax(&s, 0.5, &pattern).unwrap();
        // sequence 0: plain softmax; sequence 1: softmax over the first 2 keys, 0 for the third
        let full = candle_nn::ops::softmax(&(s.narrow(0, 0, 1).unwrap() * 0.5).unwrap(), 3).unwrap();
        let part = candle_nn::ops::softmax(&(s.narrow(0, 1, 1).unwrap().narrow(3, 0, 2).unwrap() * 0.5).unwrap(), 3).unwrap();
        let d0 = (p.narrow(0, 0, 1).unwrap() - &full).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        let d1 = (p.narrow(0, 1, 1).unwrap().narrow(3, 0, 2).unwrap() - &part)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d0 < 1e-6 && d1 < 1e-6);
        assert_eq!(p.narrow(0, 1, 1).unwrap().narrow(3, 2, 1).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
        let w = t(&(0..18).map(|i| (i % 4) as f32).collect::<Vec<_>>(), &[2, 1, 3, 3]);
        let gf = (&p * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let fw = |x: &Tensor| (x * &w.narrow(0, 0, 1).unwrap()).unwrap().sum_all().unwrap();
        let gp = fw(&full).backward().unwrap();
        let a = gf.get(&s).unwrap().narrow(0, 0, 1).unwrap();
        let c = gp.get(&s).unwrap().narrow(0, 0, 1).unwrap();
        assert!((a - c).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() < 1e-6);
    }

    #[test]
    fn cross_entropy_matches_log_softmax_and_skips_ignored_rows() {
        let z = Var::from_tensor(&t(&[1.0, 2.0, 0.5, -1.0, 0.0, 3.0, 9.0, 9.0, 9.0], &[3, 3])).unwrap();
        let targets = Tensor::new(&[1u32, 2, loss::IGNORE], &Device::Cpu).unwrap();
        let l = cross_entropy(&z, &targets, 0.0).unwrap();
        let logp = candle_nn::ops::log_softmax(&z.narrow(0, 0, 2).unwrap(), 1).unwrap().to_vec2::<f32>().unwrap();
        let expect = -(logp[0][1] + logp[1][2]) / 2.0;
        assert!((l.to_scalar::<f32>().unwrap() - expect).abs() < 1e-6);
        let g = l.backward().unwrap();
        let dz = g.get(&z).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(dz[2], vec![0.0; 3]);
        assert!(dz[0].iter().sum::<f32>().abs() < 1e-6);
        let bad = Tensor::new(&[5u32, 0, 0], &Device::Cpu).unwrap();
        assert!(cross_entropy(&z, &bad, 0.0).unwrap_err().to_string().contains("target 5 out of range"));
    }

    /// The fused LSTM against the same recurrence in candle primitives
    /// (sigmoid as tanh): outputs and both gradients.
    #[test]
    fn lstm_matches_candle_primitives() {
        let (b, steps, h) = (5, 6, 4);
        let gx = Var::from_tensor(&t(
            &(0..b * steps * 4 * h).map(|i| ((i * 37 % 101) as f32 / 50.0 - 1.0) * 1.5).collect::<Vec<_>>(),
            &[b, steps, 4 * h],
        ))
        .unwrap();
        let w = Var::from_tensor(&t(&(0..h * 4 * h).map(|i| ((i * 13 % 29) as f32 / 14.0 - 1.0) * 0.5).collect::<Vec<_>>(), &[h, 4 * h]))
            .unwrap();
        let r = t(&(0..b * steps * h).map(|i| ((i * 7 % 11) as f32) - 5.0).collect::<Vec<_>>(), &[b, steps, h]);
        let fused = lstm(&gx, &w).unwrap();
        let sig = |x: &Tensor| ((x * 0.5).unwrap().tanh().unwrap() + 1.0).unwrap() * 0.5;
        let (mut hp, mut cp) =
            (Tensor::zeros((b, h), DType::F32, &Device::Cpu).unwrap(), Tensor::zeros((b, h), DType::F32, &Device::Cpu).unwrap());
        let mut outs = Vec::new();
        for s in 0..steps {
            let z = (gx.narrow(1, s, 1).unwrap().squeeze(1).unwrap() + hp.matmul(&w).unwrap()).unwrap();
            let (i, f) = (sig(&z.narrow(1, 0, h).unwrap()).unwrap(), sig(&z.narrow(1, h, h).unwrap()).unwrap());
            let (g, o) = (z.narrow(1, 2 * h, h).unwrap().tanh().unwrap(), sig(&z.narrow(1, 3 * h, h).unwrap()).unwrap());
            cp = ((&f * &cp).unwrap() + (&i * &g).unwrap()).unwrap();
            hp = (&o * cp.tanh().unwrap()).unwrap();
            outs.push(hp.unsqueeze(1).unwrap());
        }
        let plain = Tensor::cat(&outs, 1).unwrap();
        let diff = (&fused - &plain).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5, "outputs differ by {diff}");
        let gf = (&fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gp = (&plain * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&gx, &w] {
            let d = (gf.get(v).unwrap() - gp.get(v).unwrap()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(d < 1e-4, "gradient differs by {d}");
        }
    }

    #[test]
    fn dropout_gradient_uses_the_forward_mask() {
        let x = Var::from_tensor(&t(&[1.0; 64], &[8, 8])).unwrap();
        let y = dropout(&x, 0.5, 3).unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(&x).unwrap().to_vec2::<f32>().unwrap(), y.to_vec2::<f32>().unwrap());
    }

    #[test]
    fn masked_max_matches_candle_max_on_valid_steps() {
        let data: Vec<f32> = (0..2 * 4 * 3).map(|i| ((i * 17 % 23) as f32) - 11.0).collect();
        let x = Var::from_tensor(&t(&data, &[2, 4, 3])).unwrap();
        let y = masked_max(&x, &[4, 2]).unwrap();
        let a = x.narrow(0, 0, 1).unwrap().max(1).unwrap();
        let b = x.narrow(0, 1, 1).unwrap().narrow(1, 0, 2).unwrap().max(1).unwrap();
        let expect = Tensor::cat(&[a, b], 0).unwrap();
        assert_eq!(y.to_vec2::<f32>().unwrap(), expect.to_vec2::<f32>().unwrap());
        let gf = y.sum_all().unwrap().backward().unwrap();
        let gp = expect.sum_all().unwrap().backward().unwrap();
        assert_eq!(gf.get(&x).unwrap().to_vec3::<f32>().unwrap(), gp.get(&x).unwrap().to_vec3::<f32>().unwrap());
    }

    #[test]
    fn adamw_updates_in_place() {
        let p = Var::from_tensor(&t(&[1.0, -1.0], &[2])).unwrap();
        let g = t(&[0.5, -0.5], &[2]);
        let (mut m, mut v) = (vec![0.0; 2], vec![0.0; 2]);
        let step = AdamWStep { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, step: 1, grad_scale: 1.0, l2: 0.0 };
        adamw_step(&p, &[&g], &mut m, &mut v, step).unwrap();
        let after = p.as_tensor().to_vec1::<f32>().unwrap();
        assert!((after[0] - 0.9).abs() < 1e-5 && (after[1] + 0.9).abs() < 1e-5);
        assert!(m[0] > 0.0 && v[0] > 0.0);
    }
}
