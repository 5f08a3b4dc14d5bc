//! Node classification with graph attention: each node attends only to its
//! neighbours (and itself), through stacked multi-head graph attention
//! layers (GAT, Velickovic et al. 2018). This file is the model;
//! [`config`] its settings, [`input`] the graph prepared for it, [`task`]
//! its training (full batch, GAT's early stopping) and checkpoints.

pub mod config;
pub mod input;
pub mod task;

use crate::error::{Error, Result};
use crate::nn::{AttentionKernel, Ctx, Init, Linear, ParamStore};
use crate::ops::{self, GraphScoreKind};
use attend_kernels::graph::{EdgeDropout, Graph};
use attend_kernels::sparse::SparseDropout;
use candle_core::{Device, Tensor, D};
use config::{GraphModelConfig, GraphScoreType};
pub use input::{Features, GraphInput};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One multi-head graph attention layer.
struct GraphLayer {
    heads: usize,
    channels: usize,
    /// Concatenate heads (hidden layers) or average them (output layer).
    concat: bool,
    /// `W`: values (and, for the additive score, the scored features).
    value: Linear,
    /// Additive score vectors `[heads, channels]`.
    att_src: Option<Tensor>,
    att_dst: Option<Tensor>,
    /// Dot score projections.
    query: Option<Linear>,
    key: Option<Linear>,
    bias: Tensor,
    /// `None`: no residual; `Some(None)`: identity; `Some(Some(l))`: projected.
    residual: Option<Option<Linear>>,
}

impl GraphLayer {
    #[allow(clippy::too_many_arguments)]
    fn new(
        store: &mut ParamStore,
        name: &str,
        cfg: &GraphModelConfig,
        input: usize,
        heads: usize,
        channels: usize,
        concat: bool,
    ) -> candle_core::Result<Self> {
        let width = heads * channels;
        let value = Linear::new(store, &format!("{name}.value"), input, width, false)?;
        let (mut att_src, mut att_dst, mut query, mut key) = (None, None, None, None);
        match cfg.score {
            GraphScoreType::Additive => {
                att_src = Some(store.add(&format!("{name}.att_src"), &[heads, channels], Init::XavierUniform)?);
                att_dst = Some(store.add(&format!("{name}.att_dst"), &[heads, channels], Init::XavierUniform)?);
            }
            GraphScoreType::Dot => {
                query = Some(Linear::new(store, &format!("{name}.query"), input, width, false)?);
                key = Some(Linear::new(store, &format!("{name}.key"), input, width, false)?);
            }
        }
        let out = if concat { width } else { channels };
        let bias = store.add(&format!("{name}.bias"), &[out], Init::Zeros)?;
        let residual = match (cfg.residual, input == out) {
            (false, _) => None,
            (true, true) => Some(None),
            (true, false) => Some(Some(Linear::new(store, &format!("{name}.residual"), input, out, false)?)),
        };
        Ok(GraphLayer { heads, channels, concat, value, att_src, att_dst, query, key, bias, residual })
    }

    /// Values `[n, heads, channels]` and the two score inputs of
    /// [`ops::graph_attention`] for input `x`.
    fn project(
        &self,
        x: &Features,
        graph: &Arc<Graph>,
        cfg: &GraphModelConfig,
        ctx: &mut Ctx,
    ) -> candle_core::Result<(Tensor, Tensor, Tensor, GraphScoreKind)> {
        let n = graph.nodes();
        let (h, c) = (self.heads, self.channels);
        // Input dropout, then every projection of the dropped input. With
        // per-head masks (the GAT authors' code), head k's columns of each
        // projection see their own mask.
        let masks = if cfg.shared_input_dropout { 1 } else { h };
        let train = ctx.train && cfg.dropout > 0.0;
        type Projection<'a> = Box<dyn Fn(&Linear) -> candle_core::Result<Tensor> + 'a>;
        let project: Projection = match x {
            Features::Dense(x) if masks == 1 || !train => {
                let input = ctx.dropout(x, cfg.dropout)?;
                Box::new(move |l: &Linear| l.forward(&input))
            }
            Features::Dense(x) => {
                let inputs = (0..masks).map(|_| ctx.dropout(x, cfg.dropout)).collect::<candle_core::Result<Vec<_>>>()?;
                Box::new(move |l: &Linear| {
                    let parts = inputs
                        .iter()
                        .enumerate()
                        .map(|(k, x)| x.matmul(&l.weight.narrow(1, k * c, c)?))
                        .collect::<candle_core::Result<Vec<_>>>()?;
                    Tensor::cat(&parts, 1)
                })
            }
            Features::Sparse(x) => {
                let dropout = train.then(|| SparseDropout { p: cfg.dropout, seeds: (0..masks).map(|_| ctx.rng.random::<u64>()).collect() });
                let x = x.clone();
                Box::new(move |l: &Linear| ops::sparse_matmul(&x, &l.weight, dropout.clone()))
            }
        };
        let v = project(&self.value)?.reshape((n, h, c))?;
        let (a, b, kind) = match (&self.att_src, &self.att_dst, &self.query, &self.key) {
            (Some(src), Some(dst), _, _) => {
                let dst_term = v.broadcast_mul(&dst.unsqueeze(0)?)?.sum(D::Minus1)?; // [n, h]
                let src_term = v.broadcast_mul(&src.unsqueeze(0)?)?.sum(D::Minus1)?;
                (dst_term, src_term, GraphScoreKind::Additive { slope: cfg.negative_slope })
            }
            (_, _, Some(q), Some(k)) => {
                (project(q)?.reshape((n, h, c))?, project(k)?.reshape((n, h, c))?, GraphScoreKind::Dot { scale: 1.0 / (c as f32).sqrt() })
            }
            _ => unreachable!("a layer has either score vectors or projections"),
        };
        Ok((v, a, b, kind))
    }

    fn forward(&self, x: &Features, graph: &Arc<Graph>, cfg: &GraphModelConfig, ctx: &mut Ctx) -> candle_core::Result<Tensor> {
        let (n, h, c) = (graph.nodes(), self.heads, self.channels);
        let (v, a, b, kind) = self.project(x, graph, cfg, ctx)?;
        let dropout = (ctx.train && cfg.attention_dropout > 0.0).then(|| EdgeDropout { p: cfg.attention_dropout, seed: ctx.rng.random() });
        let dense = cfg.kernel == AttentionKernel::Reference;
        let values = ctx.dropout(&v, cfg.value_dropout)?;
        let out = ops::graph_attention(&a, &b, &values, graph, kind, dropout, dense)?; // [n, h, c]
        let out = if self.concat { out.reshape((n, h * c))? } else { out.mean(1)? };
        let out = out.broadcast_add(&self.bias)?;
        match (&self.residual, x) {
            (None, _) => Ok(out),
            (Some(None), Features::Dense(x)) => out + x,
            (Some(None), Features::Sparse(x)) => out + Tensor::from_vec(x.to_dense(None, 0), (x.rows(), x.cols()), &Device::Cpu)?,
            (Some(Some(proj)), Features::Dense(x)) => out + proj.forward(x)?,
            (Some(Some(proj)), Features::Sparse(x)) => out + ops::sparse_matmul(x, &proj.weight, None)?,
        }
    }
}

/// A graph attention node classifier.
pub struct GraphClassifier {
    pub config: GraphModelConfig,
    pub params: ParamStore,
    layers: Vec<GraphLayer>,
}

impl GraphClassifier {
    pub fn new(config: GraphModelConfig, seed: u64) -> Result<Self> {
        config.validate().map_err(Error::Config)?;
        let mut params = ParamStore::new(seed);
        let mut layers = Vec::new();
        let mut input = config.feature_dim;
        for l in 0..config.layers {
            let last = l + 1 == config.layers;
            let layer = if last {
                GraphLayer::new(&mut params, &format!("layer{l}"), &config, input, config.output_heads, config.classes, false)?
            } else {
                GraphLayer::new(&mut params, &format!("layer{l}"), &config, input, config.heads, config.hidden, true)?
            };
            input = config.heads * config.hidden;
            layers.push(layer);
        }
        Ok(GraphClassifier { config, params, layers })
    }

    /// Logits `[nodes, classes]` for features `[nodes, feature_dim]`.
    pub fn forward(&self, x: &Features, graph: &Arc<Graph>, ctx: &mut Ctx) -> Result<Tensor> {
        let mut h = x.clone();
        for (l, layer) in self.layers.iter().enumerate() {
            let mut y = layer.forward(&h, graph, &self.config, ctx)?;
            if l + 1 < self.layers.len() {
                y = y.elu(1.0)?;
            }
            h = Features::Dense(y);
        }
        match h {
            Features::Dense(logits) => Ok(logits),
            Features::Sparse(_) => unreachable!("a model has at least one layer"),
        }
    }

    /// Attention weights of every layer, as in inference: `[layer][edge *
    /// heads + head]`, edges in `input.graph`'s order (each node's weights
    /// over its neighbours sum to 1 per head). Recomputed here; the fused
    /// forward never stores them.
    pub fn attention_weights(&self, input: &GraphInput) -> Result<Vec<Vec<f32>>> {
        let mut ctx = Ctx::eval();
        let mut h = input.features.clone();
        let mut weights = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            let (_, a, b, kind) = layer.project(&h, &input.graph, &self.config, &mut ctx)?;
            weights.push(ops::graph_attention_weights(&a, &b, layer.heads, &input.graph, kind)?);
            let mut y = layer.forward(&h, &input.graph, &self.config, &mut ctx)?;
            if l + 1 < self.layers.len() {
                y = y.elu(1.0)?;
            }
            h = Features::Dense(y);
        }
        Ok(weights)
    }

    /// Heads of layer `l`.
    pub fn layer_heads(&self, l: usize) -> usize {
        self.layers[l].heads
    }

    /// Loss and accuracy on `nodes` without dropout.
    pub fn evaluate(&self, input: &GraphInput, nodes: &[usize]) -> Result<Scores> {
        let logits = self.forward(&input.features, &input.graph, &mut Ctx::eval())?;
        scores(&logits, input, nodes)
    }

    /// Predicted class of every node.
    pub fn predict(&self, input: &GraphInput) -> Result<Vec<u32>> {
        let logits = self.forward(&input.features, &input.graph, &mut Ctx::eval())?;
        Ok(logits.argmax(D::Minus1)?.to_vec1::<u32>()?)
    }

    /// Predicted class of every node with its probability (the softmax of
    /// the scores); ties go to the lower class, as in [`predict`](Self::predict).
    pub fn predict_with_probability(&self, input: &GraphInput) -> Result<Vec<(u32, f32)>> {
        let logits = self.forward(&input.features, &input.graph, &mut Ctx::eval())?.to_vec2::<f32>()?;
        Ok(logits
            .iter()
            .map(|row| {
                let (best, top) = row.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
                let total: f32 = row.iter().map(|&v| (v - top).exp()).sum();
                (best as u32, 1.0 / total)
            })
            .collect())
    }

    /// Class probabilities of every node (the softmax of its scores), one
    /// row of `classes` numbers per node.
    pub fn probabilities(&self, input: &GraphInput) -> Result<Vec<Vec<f32>>> {
        let logits = self.forward(&input.features, &input.graph, &mut Ctx::eval())?.to_vec2::<f32>()?;
        Ok(logits.iter().map(|row| crate::nn::head::softmax(row)).collect())
    }
}

/// Loss and accuracy of some nodes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub loss: f32,
    pub accuracy: f32,
}

fn scores(logits: &Tensor, input: &GraphInput, nodes: &[usize]) -> Result<Scores> {
    if nodes.is_empty() {
        return Ok(Scores { loss: f32::NAN, accuracy: f32::NAN });
    }
    let idx = Tensor::from_vec(nodes.iter().map(|&i| i as u32).collect::<Vec<_>>(), nodes.len(), &Device::Cpu)?;
    let picked = logits.index_select(&idx, 0)?;
    let targets: Vec<u32> = nodes.iter().map(|&i| input.labels[i]).collect();
    let loss = ops::cross_entropy(&picked, &Tensor::from_slice(&targets, targets.len(), &Device::Cpu)?, 0.0)?.to_scalar::<f32>()?;
    let predicted = picked.argmax(D::Minus1)?.to_vec1::<u32>()?;
    let correct = predicted.iter().zip(&targets).filter(|(p, t)| p == t).count();
    Ok(Scores { loss, accuracy: correct as f32 / nodes.len() as f32 })
}
