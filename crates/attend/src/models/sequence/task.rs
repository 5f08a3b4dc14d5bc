//! The sequence model as a training [`Task`]: length-bucketed batches
//! (long sequences with a label per vector cut into crops), cross-entropy
//! or squared error, dev accuracy (or minus the RMSE) for model selection,
//! and the checkpoint (`config.json`, `model.safetensors`, `data.json`).

use super::config::SequenceConfig;
use super::eval::SeriesReport;
use super::input::{self, DataSpec, Encoded, SeriesBatch};
use super::SequenceModel;
use crate::checkpoint::{self, Checkpoint, Contents, Loaded, Saveable};
use crate::config::TrainConfig;
use crate::data::batch::bucket;
use crate::data::series::{SeriesSet, Target};
use crate::error::{Error, Result};
use crate::nn::{Ctx, ParamStore};
use crate::train::{self, Evaluation, LoopConfig, Observer, Piece, RunOptions, Selection, Split, Task, TrainSummary};
use candle_core::Tensor;
use rand_chacha::ChaCha8Rng;
use std::borrow::Cow;
use std::ops::Range;

/// A sequence model with its training and dev data.
pub struct SeriesTask<'a> {
    model: &'a SequenceModel,
    spec: &'a DataSpec,
    train: Vec<Encoded>,
    lengths: Vec<usize>,
    dev: &'a [Encoded],
    cfg: &'a TrainConfig,
}

impl<'a> SeriesTask<'a> {
    /// `train`: the encoded training sequences; with `cfg.crop`, those with
    /// a label per vector longer than it are cut into pieces.
    pub fn new(
        model: &'a SequenceModel,
        spec: &'a DataSpec,
        train: Vec<Encoded>,
        dev: &'a [Encoded],
        cfg: &'a TrainConfig,
    ) -> Result<Self> {
        cfg.validate().map_err(Error::Config)?;
        let width = model.config.input_width();
        let train: Vec<Encoded> = if cfg.crop > 0 && model.config.target == Target::VectorClass {
            train
                .iter()
                .flat_map(|e| (0..e.tokens).step_by(cfg.crop).map(move |lo| e.slice(lo, (lo + cfg.crop).min(e.tokens), width)))
                .collect()
        } else {
            train
        };
        if train.is_empty() {
            return Err(Error::Input("no training sequences".into()));
        }
        let lengths = train.iter().map(|e| e.tokens).collect();
        Ok(SeriesTask { model, spec, train, lengths, dev, cfg })
    }
}

impl SeriesTask<'_> {
    /// The sequences `batch` as model inputs; with `random_crop`, a random
    /// window of each (drawn from `rng`).
    fn batch(&self, batch: &[usize], rng: &mut ChaCha8Rng) -> Result<SeriesBatch> {
        let whole = std::iter::once(0..batch.len()).collect::<Vec<_>>();
        Ok(self.batch_parts(batch, rng, &whole)?.remove(0))
    }

    /// [`batch`](Self::batch) cut into the given runs of its sequences
    /// (drawing from `rng` exactly as `batch` does).
    fn batch_parts(&self, batch: &[usize], rng: &mut ChaCha8Rng, runs: &[Range<usize>]) -> Result<Vec<SeriesBatch>> {
        let config = &self.model.config;
        let (data, indices): (Cow<[Encoded]>, Vec<usize>) = if self.cfg.random_crop < 1.0 && config.target.per_sequence() {
            let summary = usize::from(config.summary());
            let width = config.input_width();
            let cropped = batch.iter().map(|&i| random_window(&self.train[i], summary, self.cfg.random_crop, width, rng)).collect();
            (Cow::Owned(cropped), (0..batch.len()).collect())
        } else {
            (Cow::Borrowed(&self.train[..]), batch.to_vec())
        };
        Ok(runs.iter().map(|r| self.model.batch(&data, &indices[r.clone()])).collect::<candle_core::Result<_>>()?)
    }
}

/// How many runs to cut a batch of `sequences` into so that `members`
/// times that many pieces keep `threads` busy: the fewest runs with the
/// least work on the busiest thread (rounds of pieces times a piece's share).
fn shards_for(members: usize, threads: usize, sequences: usize) -> usize {
    let busiest = |s: usize| (members * s).div_ceil(threads) as f64 / s as f64;
    (1..=threads.min(sequences).max(1)).fold(1, |best, s| if busiest(s) < busiest(best) - 1e-9 { s } else { best })
}

impl Task for SeriesTask<'_> {
    type Report = SeriesReport;

    fn params(&self) -> &ParamStore {
        &self.model.params
    }

    fn batches(&self, rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
        bucket(&self.lengths, self.cfg.batch_tokens, Some(rng))
    }

    fn loss(&self, batch: &[usize], rng: &mut ChaCha8Rng, ctx: &mut Ctx) -> Result<(Tensor, usize)> {
        let batch = self.batch(batch, rng)?;
        let units = batch.units(self.model.config.target == Target::VectorClass);
        Ok((self.model.loss(&batch, ctx, self.cfg.label_smoothing)?, units))
    }

    /// The batch cut into runs of sequences (data parallel) and, for an
    /// ensemble, by member: each piece is one member's loss over one run,
    /// weighted by the run's share of the batch's labelled units. Members
    /// share no parameter, and the runs' weighted means add up to the
    /// batch's mean, so the pieces' gradients add up to the whole batch's.
    fn split(&self, batch: &[usize], rng: &mut ChaCha8Rng, parts: usize) -> Result<Option<Split<'_>>> {
        let members = self.model.members();
        let shards = shards_for(members, parts, batch.len());
        if parts < 2 || members * shards < 2 {
            return Ok(None);
        }
        let per_vector = self.model.config.target == Target::VectorClass;
        let runs = train::even_runs(&batch.iter().map(|&i| self.lengths[i]).collect::<Vec<_>>(), shards);
        let parts = self.batch_parts(batch, rng, &runs)?;
        // Units the loss averages over: labelled classes, or every sequence for regression.
        let labelled = |b: &SeriesBatch| match self.model.config.target {
            Target::SequenceValue => b.lengths.len(),
            _ => b.classes.iter().filter(|&&c| c != attend_kernels::loss::IGNORE).count(),
        };
        let total: usize = parts.iter().map(labelled).sum();
        if total == 0 {
            return Ok(None);
        }
        let units = parts.iter().map(|b| b.units(per_vector)).sum();
        let smoothing = self.cfg.label_smoothing;
        let mut pieces: Vec<Piece<'_>> = Vec::with_capacity(members * parts.len());
        for part in parts.into_iter().filter(|b| labelled(b) > 0) {
            let share = labelled(&part) as f64 / total as f64;
            let part = std::sync::Arc::new(part);
            for k in 0..members {
                let part = part.clone();
                pieces.push(Box::new(move |ctx: &mut Ctx| {
                    let loss = self.model.member_loss(k, &part, ctx, smoothing)?;
                    Ok(if shards == 1 { loss } else { loss.affine(share, 0.0)? })
                }));
            }
        }
        Ok(Some(Split { units, pieces }))
    }

    /// Scores the dev data; with none (nothing held out), the training data.
    fn evaluate(&self) -> Result<Evaluation<SeriesReport>> {
        let data = if self.dev.is_empty() { &self.train[..] } else { self.dev };
        let (report, loss) = self.model.evaluate_with_loss(data, self.spec)?;
        Ok(Evaluation { accuracy: report.selection_score(), loss, report })
    }

    fn contents(&self) -> Result<Contents> {
        Contents::new(self.model, self.spec, self.cfg)
    }
}

/// A random window of at least `share` of `e`'s inputs (the summary slot,
/// if any, stays first).
fn random_window(e: &Encoded, summary: usize, share: f32, width: usize, rng: &mut ChaCha8Rng) -> Encoded {
    use rand::Rng;
    let n = e.tokens - summary;
    let len = rng.random_range(((n as f32 * share).ceil() as usize).clamp(1, n)..=n);
    let start = summary + rng.random_range(0..=n - len);
    let mut w = e.slice(start, start + len, width);
    if summary == 1 {
        let mut rows = e.rows[..width].to_vec();
        rows.extend_from_slice(&w.rows);
        w = Encoded { rows, tokens: len + 1, ..w };
    }
    w
}

impl Saveable for SequenceModel {
    const KIND: &'static str = "sequence";
    const EXTRA_FILES: &'static [&'static str] = &["data.json"];
    type Config = SequenceConfig;
    type Train = TrainConfig;
    /// What the model learned about its data: normalisation, classes.
    type Data = DataSpec;

    fn config(&self) -> &SequenceConfig {
        &self.config
    }

    fn params(&self) -> &ParamStore {
        &self.params
    }

    fn build(config: &SequenceConfig) -> Result<Self> {
        Ok(SequenceModel::new(config.clone(), 0)?)
    }

    fn write_data(spec: &DataSpec) -> Result<Vec<(&'static str, Vec<u8>)>> {
        Ok(vec![checkpoint::json_file("data.json", spec)?])
    }

    /// `data.json`, checked against the config.
    fn read_data(ck: &Checkpoint<Self>) -> Result<DataSpec> {
        let spec: DataSpec = ck.read_json("data.json")?;
        let c = &ck.config.model;
        if spec.dims != c.dims
            || spec.mean.len() != c.dims
            || spec.std.len() != c.dims
            || spec.outputs() != c.outputs
            || spec.target != c.target
        {
            return Err(checkpoint::ck_err(&ck.dir.join("data.json"), "does not match config.json (dims, statistics, classes or target)"));
        }
        Ok(spec)
    }
}

/// The model for `spec`'s data with the user's architecture `settings`.
pub fn new_model(settings: &SequenceConfig, spec: &DataSpec, missing: bool, seed: u64) -> Result<SequenceModel> {
    let config =
        SequenceConfig { dims: spec.dims, missing_indicators: missing, target: spec.target, outputs: spec.outputs(), ..settings.clone() };
    config.validate().map_err(Error::Config)?;
    Ok(SequenceModel::new(config, seed)?)
}

/// Without dev data, the training data is scored after every this many epochs.
pub const DEVLESS_EVAL_EVERY: usize = 10;

/// Trains `model`, keeping the epoch with the best dev score (without dev
/// data, the last epoch); with a checkpoint directory, saves after every epoch (atomically) and can resume.
pub fn train_sequence(
    model: &SequenceModel,
    spec: &DataSpec,
    train: Vec<Encoded>,
    dev: &[Encoded],
    cfg: &TrainConfig,
    options: RunOptions<SeriesReport>,
    observer: &mut dyn Observer,
) -> Result<TrainSummary<SeriesReport>> {
    let task = SeriesTask::new(model, spec, train, dev, cfg)?;
    // Small dev sets reach 100% early: ties go to the lower dev loss. With
    // no dev data the last epoch is kept, and the training data is scored
    // every 10 epochs only (for the progress line), not after each.
    let (selection, eval_every) = if dev.is_empty() { (Selection::Last, DEVLESS_EVAL_EVERY) } else { (Selection::AccuracyThenLoss, 1) };
    let looped = LoopConfig { save_interval_secs: 10.0, selection, eval_every, ..LoopConfig::minibatch(cfg) };
    train::fit(&task, &looped, options, observer)
}

/// The training and dev sequences of a run: the dev file, or a held-out
/// share of `train` (see [`SeriesSet::split`]; none with `dev_fraction` 0), then the spec fitted on
/// the training part, both encoded for `config`.
pub struct Prepared {
    pub spec: DataSpec,
    pub train: Vec<Encoded>,
    pub dev: Vec<Encoded>,
    /// Sequences held out of `train` as dev data (`None`: a dev file).
    pub held_out: Option<usize>,
    /// Whether the training sequences have missing values.
    pub missing: bool,
}

/// Splits and encodes the data of a run. `spec`: the saved one when resuming.
pub fn prepare(
    train: &SeriesSet,
    dev: Option<&SeriesSet>,
    cfg: &TrainConfig,
    settings: &SequenceConfig,
    spec: Option<DataSpec>,
) -> Result<Prepared> {
    let (train_idx, dev_idx) = match dev {
        Some(_) => ((0..train.series.len()).collect(), vec![]),
        None if cfg.dev_fraction == 0.0 => ((0..train.series.len()).collect(), vec![]),
        None => train.split(cfg.dev_fraction, cfg.seed)?,
    };
    let spec = match spec {
        Some(s) => s,
        None => DataSpec::fit(train, &train_idx)?,
    };
    let missing = train_idx.iter().any(|&i| train.series[i].values.iter().any(|v| v.is_nan()));
    let config =
        SequenceConfig { dims: spec.dims, missing_indicators: missing, target: spec.target, outputs: spec.outputs(), ..settings.clone() };
    // Each training sequence goes to train or to the held-out dev part, moved, not copied.
    let mut held = vec![false; train.series.len()];
    for &i in &dev_idx {
        held[i] = true;
    }
    let (held_encoded, train_encoded): (Vec<_>, Vec<_>) =
        input::encode(train, &spec, &config)?.into_iter().zip(held).partition(|(_, h)| *h);
    let dev_encoded = match dev {
        Some(d) => {
            if d.target == Target::Unlabelled {
                return Err(Error::Input(format!("{}: the dev file has no labels", d.path.display())));
            }
            input::encode(d, &spec, &config)?
        }
        None => held_encoded.into_iter().map(|(e, _)| e).collect(),
    };
    let held_out = dev.is_none().then_some(dev_idx.len());
    Ok(Prepared { spec, train: train_encoded.into_iter().map(|(e, _)| e).collect(), dev: dev_encoded, held_out, missing })
}

/// A loaded model (`data`: what it learned about its data) with its training settings.
pub type LoadedSequence = Loaded<SequenceModel>;

/// A sequence run to continue ([`crate::train::load_run`] loads one).
pub type SequenceRun = train::Run<SequenceModel, SeriesReport>;
