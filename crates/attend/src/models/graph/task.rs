//! Training a graph model through the one loop: full batch (an epoch is one
//! step over all training nodes), GAT's Adam (constant rate, L2 on
//! matrices), GAT's early stopping on validation accuracy and loss, and the
//! checkpoint (`config.json`, `model.safetensors`, `resume/`).

use super::config::{GraphModelConfig, GraphTrainConfig};
use super::{GraphClassifier, GraphInput, Scores};
use crate::checkpoint::{self, Checkpoint, Contents, Saveable};
use crate::error::{Error, Result};
use crate::nn::{Ctx, ParamStore};
use crate::ops;
use crate::optim::{AdamWConfig, Schedule};
use crate::train::{self, Evaluation, LoopConfig, Observer, RunOptions, Selection, Task, TrainSummary};
use candle_core::{Device, Tensor};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// A graph model with its input and the training and validation nodes.
pub struct GraphTask<'a> {
    model: &'a GraphClassifier,
    input: &'a GraphInput,
    train: &'a [usize],
    val: &'a [usize],
    cfg: &'a GraphTrainConfig,
}

impl<'a> GraphTask<'a> {
    /// Training nodes must be labelled.
    pub fn new(
        model: &'a GraphClassifier,
        input: &'a GraphInput,
        train: &'a [usize],
        val: &'a [usize],
        cfg: &'a GraphTrainConfig,
    ) -> Result<Self> {
        cfg.validate().map_err(Error::Config)?;
        if let Some(&i) = train.iter().find(|&&i| input.labels.get(i).is_none_or(|&l| l == u32::MAX)) {
            return Err(Error::Input(format!("training node {i} has no label")));
        }
        Ok(GraphTask { model, input, train, val, cfg })
    }
}

impl Task for GraphTask<'_> {
    type Report = Scores;

    fn params(&self) -> &ParamStore {
        &self.model.params
    }

    fn batches(&self, _rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
        vec![self.train.to_vec()]
    }

    fn loss(&self, batch: &[usize], _rng: &mut ChaCha8Rng, ctx: &mut Ctx) -> Result<(Tensor, usize)> {
        let logits = self.model.forward(&self.input.features, &self.input.graph, ctx)?;
        let idx = Tensor::from_vec(batch.iter().map(|&i| i as u32).collect::<Vec<_>>(), batch.len(), &Device::Cpu)?;
        let targets = Tensor::from_vec(batch.iter().map(|&i| self.input.labels[i]).collect::<Vec<_>>(), batch.len(), &Device::Cpu)?;
        Ok((ops::cross_entropy(&logits.index_select(&idx, 0)?, &targets, 0.0)?, batch.len()))
    }

    fn evaluate(&self) -> Result<Evaluation<Scores>> {
        let s = self.model.evaluate(self.input, self.val)?;
        Ok(Evaluation { accuracy: s.accuracy as f64, loss: Some(s.loss as f64), report: s })
    }

    fn contents(&self) -> Result<Contents> {
        Contents::new(self.model, &(), self.cfg)
    }
}

impl Saveable for GraphClassifier {
    const KIND: &'static str = "graph";
    const EXTRA_FILES: &'static [&'static str] = &[];
    type Config = GraphModelConfig;
    type Train = GraphTrainConfig;
    type Data = ();

    fn config(&self) -> &GraphModelConfig {
        &self.config
    }

    fn params(&self) -> &ParamStore {
        &self.params
    }

    fn build(config: &GraphModelConfig) -> Result<Self> {
        GraphClassifier::new(config.clone(), 0)
    }

    fn write_data(_: &()) -> Result<Vec<(&'static str, Vec<u8>)>> {
        checkpoint::no_data()
    }

    fn read_data(_: &Checkpoint<Self>) -> Result<()> {
        Ok(())
    }
}

/// How the loop runs for graph settings: GAT's Adam and early stopping.
pub fn loop_config(cfg: &GraphTrainConfig) -> LoopConfig {
    LoopConfig {
        epochs: cfg.max_epochs,
        max_minutes: cfg.max_minutes,
        patience: Some(cfg.patience),
        selection: Selection::AccuracyAndLoss,
        schedule: Schedule { lr: cfg.lr, warmup_steps: 0, min_lr_ratio: 1.0 },
        optimizer: AdamWConfig { beta1: 0.9, beta2: 0.999, clip: 0.0, weight_decay: 0.0, l2: cfg.l2 },
        seed: cfg.seed,
        // The seed of the dropout stream since graph models were first trained (keeps results reproducible).
        dropout_seed: cfg.seed ^ 0x6a09_e667_f3bc_c908,
        // Epochs take milliseconds: write the checkpoint every half minute (and at the end).
        save_interval_secs: 30.0,
        eval_every: 1,
    }
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
    /// Why the run ended before `max_epochs`.
    pub stopped_early: Option<String>,
}

/// Trains `model` on `train` nodes with model selection on `val`, then
/// scores `test` with the kept weights.
pub fn train_graph(
    model: &GraphClassifier,
    input: &GraphInput,
    nodes: [&[usize]; 3],
    cfg: &GraphTrainConfig,
    options: RunOptions<Scores>,
    observer: &mut dyn Observer,
) -> Result<GraphRun> {
    let [train, val, test] = nodes;
    let task = GraphTask::new(model, input, train, val, cfg)?;
    let summary: TrainSummary<Scores> = train::fit(&task, &loop_config(cfg), options, observer)?;
    Ok(GraphRun {
        seed: cfg.seed,
        epochs: summary.epochs.len(),
        best_epoch: summary.best_epoch,
        val: summary.best_dev,
        test: model.evaluate(input, test)?,
        seconds: summary.train_seconds,
        train_step_ms: summary.mean_step_seconds() * 1e3,
        stopped_early: summary.stopped_early.clone(),
    })
}

/// A graph run to continue ([`train::load_run`] loads one).
pub type GraphRunToResume = train::Run<GraphClassifier, Scores>;
