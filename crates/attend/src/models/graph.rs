//! Node classification with graph attention: each node attends only to its
//! neighbours (and itself), through stacked multi-head graph attention
//! layers (GAT, Velickovic et al. 2018), trained full-batch with early
//! stopping on validation.

use crate::checkpoint;
use crate::data::planetoid::GraphData;
use crate::error::{Error, Result};
use crate::nn::{AttentionKernel, Ctx, Init, Linear, ParamStore};
use crate::ops::{self, GraphScoreKind};
use crate::train::{AdamW, Hyper};
use attend_kernels::graph::{EdgeDropout, Graph};
use attend_kernels::sparse::{SparseDropout, SparseRows};
use candle_core::{Device, Tensor, D};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// How a node scores a neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GraphScoreType {
    /// GAT's `LeakyReLU(a_dst . W h_i + a_src . W h_j)`.
    #[default]
    Additive,
    /// The scaled dot product `(W_q h_i) . (W_k h_j) / sqrt(channels)`.
    Dot,
}

impl std::str::FromStr for GraphScoreType {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "additive" => Ok(GraphScoreType::Additive),
            "dot" => Ok(GraphScoreType::Dot),
            _ => Err(format!("unknown graph score '{s}': use additive or dot")),
        }
    }
}

/// Architecture of a graph model, saved as `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphModelConfig {
    pub score: GraphScoreType,
    /// Graph attention layers (the last one is the output layer).
    pub layers: usize,
    /// Heads of each hidden layer (outputs concatenated).
    pub heads: usize,
    /// Features per head in hidden layers.
    pub hidden: usize,
    /// Heads of the output layer (outputs averaged).
    pub output_heads: usize,
    /// Dropout on each layer's input.
    pub dropout: f32,
    /// One input dropout mask for all heads of a layer (PyG, DGL) instead
    /// of one per head (the GAT authors' code).
    pub shared_input_dropout: bool,
    /// Dropout on the normalised attention weights.
    pub attention_dropout: f32,
    /// Dropout on the projected features `W h` where they are aggregated
    /// (after scoring), as in the reference GAT implementation.
    pub value_dropout: f32,
    /// Negative slope of the additive score's LeakyReLU.
    pub negative_slope: f32,
    /// Add each layer's input (projected when widths differ) to its output.
    pub residual: bool,
    /// Every node also attends to itself.
    pub self_loops: bool,
    /// Scale each node's features to sum to 1 before the first layer.
    pub normalize_features: bool,
    /// Fused sparse kernel, or the dense adjacency-masked reference.
    pub kernel: AttentionKernel,
    /// Set from the data when training starts.
    pub feature_dim: usize,
    pub classes: usize,
}

impl Default for GraphModelConfig {
    fn default() -> Self {
        GraphModelConfig {
            score: GraphScoreType::Additive,
            layers: 2,
            heads: 8,
            hidden: 8,
            output_heads: 1,
            dropout: 0.6,
            shared_input_dropout: false,
            attention_dropout: 0.6,
            value_dropout: 0.6,
            negative_slope: 0.2,
            residual: false,
            self_loops: true,
            normalize_features: true,
            kernel: AttentionKernel::Fused,
            feature_dim: 0,
            classes: 0,
        }
    }
}

impl GraphModelConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.layers == 0 || self.heads == 0 || self.hidden == 0 || self.output_heads == 0 {
            return Err("layers, heads, hidden and output_heads must be at least 1".into());
        }
        for (name, p) in [("dropout", self.dropout), ("attention_dropout", self.attention_dropout), ("value_dropout", self.value_dropout)] {
            if !(0.0..1.0).contains(&p) {
                return Err(format!("{name} must be in [0, 1), got {p}"));
            }
        }
        if self.feature_dim == 0 || self.classes == 0 {
            return Err(format!("feature_dim ({}) and classes ({}) must be set from the data", self.feature_dim, self.classes));
        }
        Ok(())
    }
}

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
    fn new(store: &mut ParamStore, name: &str, cfg: &GraphModelConfig, input: usize, heads: usize, channels: usize, concat: bool) -> candle_core::Result<Self> {
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
    fn project(&self, x: &Features, graph: &Arc<Graph>, cfg: &GraphModelConfig, ctx: &mut Ctx) -> candle_core::Result<(Tensor, Tensor, Tensor, GraphScoreKind)> {
        let n = graph.nodes();
        let (h, c) = (self.heads, self.channels);
        // Input dropout, then every projection of the dropped input. With
        // per-head masks (the GAT authors' code), head k's columns of each
        // projection see their own mask.
        let masks = if cfg.shared_input_dropout { 1 } else { h };
        let train = ctx.train && cfg.dropout > 0.0;
        let project: Box<dyn Fn(&Linear) -> candle_core::Result<Tensor>> = match x {
            Features::Dense(x) if masks == 1 || !train => {
                let input = ctx.dropout(x, cfg.dropout)?;
                Box::new(move |l: &Linear| l.forward(&input))
            }
            Features::Dense(x) => {
                let inputs = (0..masks).map(|_| ctx.dropout(x, cfg.dropout)).collect::<candle_core::Result<Vec<_>>>()?;
                Box::new(move |l: &Linear| {
                    let parts = inputs.iter().enumerate().map(|(k, x)| x.matmul(&l.weight.narrow(1, k * c, c)?)).collect::<candle_core::Result<Vec<_>>>()?;
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
            (_, _, Some(q), Some(k)) => (
                project(q)?.reshape((n, h, c))?,
                project(k)?.reshape((n, h, c))?,
                GraphScoreKind::Dot { scale: 1.0 / (c as f32).sqrt() },
            ),
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
}

/// Loss and accuracy of some nodes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
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

/// Node features: dense, or sparse rows (used when at most a quarter of
/// the entries are non-zero; the first layer then costs nnz x width).
#[derive(Clone)]
pub enum Features {
    Dense(Tensor),
    Sparse(Arc<SparseRows>),
}

/// A graph ready for a model: features, the CSR graph, labels
/// (`u32::MAX` for unlabelled nodes).
pub struct GraphInput {
    pub features: Features,
    pub graph: Arc<Graph>,
    pub labels: Vec<u32>,
}

impl GraphInput {
    /// Builds the model input from data read from disk, checking it fits the
    /// model's feature dimension and classes.
    pub fn new(data: &GraphData, config: &GraphModelConfig) -> Result<Self> {
        if data.feature_dim > config.feature_dim {
            return Err(Error::Input(format!(
                "{}: nodes.tsv has features up to index {} but the model takes {} features",
                data.dir.display(),
                data.feature_dim - 1,
                config.feature_dim
            )));
        }
        if data.classes > config.classes {
            return Err(Error::Input(format!(
                "{}: nodes.tsv has class {} but the model knows {} classes (0..{})",
                data.dir.display(),
                data.classes - 1,
                config.classes,
                config.classes
            )));
        }
        let mut data = data.clone();
        if data.feature_dim < config.feature_dim {
            // Pad rows: the file's largest index is below the model's.
            let (old, new) = (data.feature_dim, config.feature_dim);
            data.features = data.features.chunks_exact(old.max(1)).flat_map(|r| r.iter().copied().chain(std::iter::repeat_n(0.0, new - old))).collect();
            data.feature_dim = new;
        }
        if config.normalize_features {
            data.normalize_rows();
        }
        let (graph, _) = data.graph(config.self_loops)?;
        let nodes = data.labels.len();
        let nnz = data.features.iter().filter(|x| **x != 0.0).count();
        let features = if nnz * 4 <= data.features.len() {
            Features::Sparse(Arc::new(SparseRows::from_dense(&data.features, nodes, config.feature_dim)))
        } else {
            Features::Dense(Tensor::from_vec(data.features, (nodes, config.feature_dim), &Device::Cpu)?)
        };
        Ok(GraphInput { features, graph: Arc::new(graph), labels: data.labels.iter().map(|l| l.unwrap_or(u32::MAX)).collect() })
    }
}

/// Optimisation settings for graph models (GAT's by default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphTrainConfig {
    /// Upper limit on epochs (full passes); early stopping usually ends sooner.
    pub max_epochs: usize,
    pub lr: f32,
    /// L2 regularisation on weight matrices (Adam's classic weight decay).
    pub l2: f32,
    /// Stop when neither validation loss nor accuracy improved for this many epochs.
    pub patience: usize,
    pub seed: u64,
}

impl Default for GraphTrainConfig {
    fn default() -> Self {
        GraphTrainConfig { max_epochs: 5000, lr: 0.005, l2: 5e-4, patience: 100, seed: 42 }
    }
}

/// One epoch as the training loop reports it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct GraphEpoch {
    pub epoch: usize,
    pub train_loss: f32,
    pub val: Scores,
}

/// What one training run did.
#[derive(Debug, Clone, Serialize)]
pub struct GraphRun {
    pub seed: u64,
    pub epochs: usize,
    /// Epoch whose weights were kept (both validation loss and accuracy at
    /// their best so far, as in GAT).
    pub best_epoch: usize,
    pub val: Scores,
    pub test: Scores,
    pub seconds: f64,
    /// Mean wall time of one training step (forward, backward, update).
    pub train_step_ms: f64,
}

/// Full-batch training steps: the optimizer, the dropout generator and the
/// training nodes as tensors.
pub struct GraphTrainer {
    opt: AdamW,
    hyper: Hyper,
    lr: f32,
    ctx: Ctx,
    train_idx: Tensor,
    train_targets: Tensor,
}

impl GraphTrainer {
    pub fn new(data: &GraphData, cfg: &GraphTrainConfig) -> Result<Self> {
        Ok(GraphTrainer {
            opt: AdamW::default(),
            hyper: Hyper { beta1: 0.9, beta2: 0.999, clip: 0.0, weight_decay: 0.0, l2: cfg.l2 },
            lr: cfg.lr,
            ctx: Ctx { train: true, rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x6a09_e667_f3bc_c908) },
            train_idx: Tensor::from_vec(data.train.iter().map(|&i| i as u32).collect::<Vec<_>>(), data.train.len(), &Device::Cpu)?,
            train_targets: Tensor::from_vec(data.labels_of(&data.train), data.train.len(), &Device::Cpu)?,
        })
    }

    /// One epoch: forward with dropout, loss on the training nodes,
    /// backward, update. Returns the loss; a NaN or infinite loss is
    /// [`Error::Diverged`] and leaves the weights untouched.
    pub fn step(&mut self, model: &GraphClassifier, input: &GraphInput) -> Result<f32> {
        let logits = model.forward(&input.features, &input.graph, &mut self.ctx)?;
        let loss = ops::cross_entropy(&logits.index_select(&self.train_idx, 0)?, &self.train_targets, 0.0)?;
        let value = loss.to_scalar::<f32>()?;
        if !value.is_finite() {
            return Err(Error::Diverged(format!("training loss is {value}")));
        }
        let grads = loss.backward()?;
        self.opt.update_with(&model.params, &grads, self.lr, &self.hyper)?;
        Ok(value)
    }
}

/// Trains a classifier full-batch with GAT's early stopping: patience counts
/// epochs in which neither validation loss nor accuracy improved; the kept
/// weights are from the last epoch where both were at their best.
pub fn train_graph(
    model: &GraphClassifier,
    input: &GraphInput,
    data: &GraphData,
    cfg: &GraphTrainConfig,
    mut on_epoch: impl FnMut(&GraphEpoch),
) -> Result<GraphRun> {
    let start = Instant::now();
    let mut trainer = GraphTrainer::new(data, cfg)?;
    let (mut best_acc, mut best_loss) = (f32::NEG_INFINITY, f32::INFINITY);
    let mut best = (model.params.snapshot()?, 0usize, Scores { loss: f32::NAN, accuracy: f32::NAN });
    let mut waited = 0;
    let mut step_seconds = 0.0;
    let mut epochs = 0;
    for epoch in 1..=cfg.max_epochs {
        epochs = epoch;
        let t = Instant::now();
        let train_loss = trainer.step(model, input).map_err(|e| match e {
            Error::Diverged(what) => Error::Diverged(format!("{what} at epoch {epoch}; try a lower --lr")),
            e => e,
        })?;
        step_seconds += t.elapsed().as_secs_f64();
        let val = model.evaluate(input, &data.val)?;
        on_epoch(&GraphEpoch { epoch, train_loss, val });
        if val.accuracy >= best_acc || val.loss <= best_loss {
            if val.accuracy >= best_acc && val.loss <= best_loss {
                best = (model.params.snapshot()?, epoch, val);
            }
            best_acc = best_acc.max(val.accuracy);
            best_loss = best_loss.min(val.loss);
            waited = 0;
        } else {
            waited += 1;
            if waited >= cfg.patience {
                break;
            }
        }
    }
    model.params.load(&best.0).map_err(Error::Config)?;
    let test = model.evaluate(input, &data.test)?;
    Ok(GraphRun {
        seed: cfg.seed,
        epochs,
        best_epoch: best.1,
        val: best.2,
        test,
        seconds: start.elapsed().as_secs_f64(),
        train_step_ms: step_seconds * 1000.0 / epochs.max(1) as f64,
    })
}

/// Contents of a graph model's `config.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphCheckpointConfig {
    /// "graph".
    pub kind: String,
    pub version: String,
    pub model: GraphModelConfig,
    pub train: GraphTrainConfig,
}

/// Saves a graph model (`model.safetensors`, `config.json`) atomically.
pub fn save(dir: &Path, model: &GraphClassifier, train: &GraphTrainConfig) -> Result<()> {
    checkpoint::write_atomically(dir, |tmp| {
        checkpoint::save_weights(tmp, &model.params)?;
        let config = GraphCheckpointConfig {
            kind: "graph".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            model: model.config.clone(),
            train: train.clone(),
        };
        checkpoint::write_json(&tmp.join("config.json"), &config)
    })
}

/// Loads a graph model saved by [`save`].
pub fn load(dir: &Path) -> Result<(GraphClassifier, GraphCheckpointConfig)> {
    if !dir.is_dir() {
        return Err(checkpoint::ck_err(dir, "not a directory (expected model.safetensors and config.json inside)"));
    }
    let config_path = dir.join("config.json");
    let config: GraphCheckpointConfig = checkpoint::parse_config(&config_path, &checkpoint::read_file(dir, "config.json")?, "graph")?;
    let model = GraphClassifier::new(config.model.clone(), 0).map_err(|e| checkpoint::ck_err(&config_path, e.to_string()))?;
    checkpoint::load_weights(dir, &model.params)?;
    Ok((model, config))
}
