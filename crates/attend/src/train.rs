//! The one training loop every model trains with. A model takes part
//! through a [`Task`]: its batches, the loss of a batch, a dev evaluation
//! and what goes into its checkpoint. The loop gives every task the same
//! behaviour: AdamW with the [`LoopConfig`]'s schedule, model selection on
//! dev, patience, a stop naming the step when the loss is NaN or infinite,
//! Ctrl-C (an interrupt flag) that saves and stops, a time limit, a
//! checkpoint written atomically, and a resume that ends bitwise equal to an
//! uninterrupted run. Progress goes to an [`Observer`].
//!
//! Random streams: the *data* generator draws each epoch's batch order (and
//! whatever a task draws per batch, like word dropout); the *dropout*
//! generator feeds the model's dropout. Both are saved with the run.

use crate::checkpoint::{self, Contents, Loaded, ResumeFiles, Saveable};
use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::nn::{Ctx, ParamStore};
use crate::optim::{AdamW, AdamWConfig, Gradients, Schedule};
use candle_core::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A model being trained on some data, as the loop sees it.
pub trait Task {
    /// What a dev evaluation reports (kept with the best epoch, saved in the run state).
    type Report: Clone + Serialize + DeserializeOwned;

    /// The parameters the optimizer updates and the checkpoint saves.
    fn params(&self) -> &ParamStore;

    /// One epoch's batches, each a list of training example indices, in an
    /// order drawn from `rng`. The count must not depend on `rng`.
    fn batches(&self, rng: &mut ChaCha8Rng) -> Vec<Vec<usize>>;

    /// The mean loss of a batch (a scalar to differentiate) and how many
    /// units (words, nodes) it averages over. `rng` is the data generator
    /// (for input noise such as word dropout), `ctx` holds the dropout one.
    fn loss(&self, batch: &[usize], rng: &mut ChaCha8Rng, ctx: &mut Ctx) -> Result<(Tensor, usize)>;

    /// For a parallel step on `parts` threads: the batch's loss written as
    /// a sum of pieces (over disjoint examples, or, for an ensemble, over
    /// disjoint parameters too), each run (forward and backward) by one
    /// thread with its own dropout generator (idle threads help with its
    /// ops' parallel parts); the threads take the pieces in turn. The
    /// pieces' losses must add up to what [`loss`](Self::loss) would
    /// return for the batch (so each piece scales its own mean by its
    /// share of the batch), and `rng` must be drawn from exactly as `loss`
    /// draws from it.
    /// `None` (the default) when the task does not split: the step then
    /// runs `loss` with every thread on each op.
    fn split(&self, _batch: &[usize], _rng: &mut ChaCha8Rng, _parts: usize) -> Result<Option<Split<'_>>> {
        Ok(None)
    }

    /// Scores the model on the dev data.
    fn evaluate(&self) -> Result<Evaluation<Self::Report>>;

    /// The checkpoint's config and extra files.
    fn contents(&self) -> Result<Contents>;
}

/// One piece of a split batch: its share of the batch's loss, computed with
/// the given context (training mode, the piece's own dropout generator).
pub type Piece<'a> = Box<dyn FnOnce(&mut Ctx) -> Result<Tensor> + Send + 'a>;

/// A batch cut for a data-parallel step ([`Task::split`]).
pub struct Split<'a> {
    /// The units (words, vectors) the whole batch's loss averages over.
    pub units: usize,
    pub pieces: Vec<Piece<'a>>,
}

/// Cuts items of the given sizes, in order, into `parts` contiguous
/// non-empty runs (fewer only when there are fewer items) for
/// [`Task::split`], so that the costliest run costs as little as
/// possible. A run's cost is what its padded batch holds: its items times
/// its largest size. Each run goes to its own thread and the step waits
/// for the slowest, so the largest cost is what counts (runs are filled
/// from the left up to it).
pub fn even_runs(sizes: &[usize], parts: usize) -> Vec<std::ops::Range<usize>> {
    let n = sizes.len();
    if n == 0 {
        return Vec::new();
    }
    let parts = parts.clamp(1, n);
    let cost = |r: &std::ops::Range<usize>| r.len() * sizes[r.clone()].iter().copied().max().unwrap_or(0);
    // The fewest runs, filled from the left, none costing more than `limit`
    // (every single item must fit).
    let greedy = |limit: usize| {
        let mut runs = Vec::new();
        let (mut start, mut longest) = (0, 0);
        for (i, &size) in sizes.iter().enumerate() {
            longest = longest.max(size);
            if (i + 1 - start) * longest > limit {
                runs.push(start..i);
                (start, longest) = (i, size);
            }
        }
        runs.push(start..n);
        runs
    };
    // The least limit that `parts` runs can keep to (the runs' count only
    // falls as the limit grows, so a binary search finds it).
    let (mut lo, mut hi) = (sizes.iter().copied().max().unwrap_or(0), cost(&(0..n)));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if greedy(mid).len() <= parts {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let mut runs = greedy(lo);
    // Fewer runs than parts: cut the costliest run that has two items
    // where its halves' larger cost is least, until there are `parts`
    // (a cut never raises the largest cost).
    while runs.len() < parts {
        let (at, run) = runs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.len() > 1)
            .max_by_key(|(i, r)| (cost(r), std::cmp::Reverse(*i)))
            .map(|(i, r)| (i, r.clone()))
            .expect("fewer runs than items: one has two");
        let cut = (run.start + 1..run.end).min_by_key(|&c| cost(&(run.start..c)).max(cost(&(c..run.end)))).expect("a run of two or more");
        runs.splice(at..at + 1, [run.start..cut, cut..run.end]);
    }
    runs
}

/// How far a [`Split`] is from the whole batch it was cut from: the
/// relative difference of the pieces' summed loss from `whole` (the
/// batch's loss, not yet differentiated), and the worst parameter's largest
/// gradient difference relative to its largest gradient, with its name.
/// Run with dropout off (`ctx` makes each piece's context): what every
/// task's `split` should be tested with.
pub fn split_discrepancy(params: &ParamStore, whole: &Tensor, split: Split<'_>, ctx: impl Fn() -> Ctx) -> Result<(f32, f32, String)> {
    let flat = |t: &Tensor| -> Result<Vec<f32>> { Ok(t.flatten_all()?.to_vec1::<f32>()?) };
    let whole_grads = whole.backward()?;
    let whole = whole.to_scalar::<f32>()?;
    let mut sum = 0f32;
    let mut grads: Vec<Vec<f32>> = params.vars().map(|(_, v)| vec![0.0; v.elem_count()]).collect();
    for piece in split.pieces {
        let loss = piece(&mut ctx())?;
        sum += loss.to_scalar::<f32>()?;
        let g = loss.backward()?;
        for (acc, (_, var)) in grads.iter_mut().zip(params.vars()) {
            if let Some(g) = g.get(var) {
                acc.iter_mut().zip(flat(g)?).for_each(|(a, x)| *a += x);
            }
        }
    }
    let mut worst = (0f32, String::new());
    for (acc, (name, var)) in grads.iter().zip(params.vars()) {
        let want = match whole_grads.get(var) {
            Some(g) => flat(g)?,
            None => vec![0.0; acc.len()],
        };
        let scale = want.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-12);
        let off = acc.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale;
        if off > worst.0 || worst.1.is_empty() {
            worst = (off, name.clone());
        }
    }
    Ok(((sum - whole).abs() / whole.abs().max(1e-12), worst.0, worst.1))
}

/// A dev evaluation.
#[derive(Debug, Clone)]
pub struct Evaluation<R> {
    /// Higher is better.
    pub accuracy: f64,
    /// Dev loss, where the task computes it (used by [`Selection::AccuracyAndLoss`]
    /// and [`Selection::AccuracyThenLoss`]).
    pub loss: Option<f64>,
    pub report: R,
}

/// Which epoch's weights are kept, and what counts as progress for patience.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Selection {
    /// The epoch with the highest dev accuracy (the first of ties);
    /// patience counts epochs since it.
    Accuracy,
    /// The epoch with the highest dev accuracy, ties going to the lower dev
    /// loss (small dev sets reach 100% early; the loss still tells the
    /// epochs apart); patience counts epochs since it.
    AccuracyThenLoss,
    /// GAT's rule: patience counts epochs in which neither dev accuracy nor
    /// dev loss reached its best so far; the weights kept are from the last
    /// epoch where both were at their best.
    AccuracyAndLoss,
    /// The last epoch, whatever its score (no held-out data to choose on:
    /// the schedule alone decides); patience never stops the run.
    Last,
}

/// How the loop runs: built by each task from its own settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LoopConfig {
    pub epochs: usize,
    /// Stop after this many minutes of one session (the best model so far
    /// is kept and the run can be resumed). The schedule still follows `epochs`.
    pub max_minutes: Option<f64>,
    /// Stop when this many epochs in a row made no progress (see [`Selection`]).
    pub patience: Option<usize>,
    pub selection: Selection,
    pub schedule: Schedule,
    pub optimizer: AdamWConfig,
    /// Seeds the data generator.
    pub seed: u64,
    /// Seeds the dropout generator.
    pub dropout_seed: u64,
    /// Write the checkpoint after an epoch only if this many seconds passed
    /// since the last write (0: after every epoch). The end of the run, an
    /// interrupt and a time limit always write it.
    pub save_interval_secs: f64,
    /// Evaluate on dev after every this many epochs (and after the last
    /// one, a time limit or an interrupt); 1: after each.
    pub eval_every: usize,
}

impl LoopConfig {
    /// How the loop runs for minibatch [`TrainConfig`] settings (sequence
    /// models): AdamW with warmup and cosine decay, the epoch with the best
    /// dev score kept, the checkpoint written after every epoch.
    pub fn minibatch(cfg: &TrainConfig) -> LoopConfig {
        LoopConfig {
            epochs: cfg.epochs,
            max_minutes: cfg.max_minutes,
            patience: cfg.patience,
            selection: Selection::Accuracy,
            schedule: Schedule { lr: cfg.lr, warmup_steps: cfg.warmup_steps, min_lr_ratio: cfg.min_lr_ratio },
            optimizer: AdamWConfig { beta1: cfg.beta1, beta2: cfg.beta2, clip: cfg.clip, weight_decay: cfg.weight_decay, l2: 0.0 },
            seed: cfg.seed,
            dropout_seed: cfg.seed ^ 0x5eed_d20f,
            save_interval_secs: 0.0,
            eval_every: 1,
        }
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.epochs == 0 {
            return Err("epochs must be at least 1".into());
        }
        if !(self.schedule.lr > 0.0 && self.schedule.lr.is_finite()) {
            return Err(format!("lr must be positive, got {}", self.schedule.lr));
        }
        if self.patience == Some(0) {
            return Err("patience must be at least 1".into());
        }
        if self.max_minutes.is_some_and(|m| m.is_nan() || m <= 0.0) {
            return Err("max_minutes must be positive".into());
        }
        Ok(())
    }
}

/// What the loop reports to whoever shows progress.
pub trait Observer {
    /// Once, before training: epochs planned and batches per epoch.
    fn run_start(&mut self, _epochs: usize, _batches: usize) {}
    /// An epoch begins with `batches` batches left in it.
    fn epoch_start(&mut self, _epoch: usize, _batches: usize) {}
    fn step(&mut self, _info: &StepInfo) {}
    fn epoch_end(&mut self, _summary: &EpochSummary) {}
}

/// An observer that shows nothing.
pub struct Silent;
impl Observer for Silent {}

/// An observer that hands each finished epoch to a closure (a callback
/// from another language, a log line).
///
/// ```
/// # use attend::train::{OnEpoch, Observer};
/// let mut lines = Vec::new();
/// let mut observer = OnEpoch(|s: &attend::train::EpochSummary| lines.push(format!("epoch {} loss {:.3}", s.epoch, s.train_loss)));
/// # let _ = &mut observer as &mut dyn Observer;
/// ```
pub struct OnEpoch<F: FnMut(&EpochSummary)>(pub F);

impl<F: FnMut(&EpochSummary)> Observer for OnEpoch<F> {
    fn epoch_end(&mut self, summary: &EpochSummary) {
        (self.0)(summary)
    }
}

#[derive(Debug, Clone)]
pub struct StepInfo {
    pub epoch: usize,
    pub step: usize,
    pub loss: f32,
    pub lr: f32,
    pub grad_norm: f32,
    /// Units (words, nodes) in the batch.
    pub tokens: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochSummary {
    pub epoch: usize,
    pub train_loss: f32,
    pub dev_accuracy: f64,
    pub dev_loss: Option<f64>,
    pub best_dev_accuracy: f64,
    /// These weights are now the kept ones.
    pub improved: bool,
    /// Units (words, nodes) per second in this epoch's training steps.
    pub train_tokens_per_sec: f64,
    /// Seconds in this epoch's training steps (forward, backward, update).
    pub train_sec: f64,
    pub elapsed_sec: f64,
}

/// How training went.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound = "R: Serialize + DeserializeOwned")]
pub struct TrainSummary<R> {
    pub epochs: Vec<EpochSummary>,
    pub best_epoch: usize,
    pub best_dev: R,
    pub steps: usize,
    pub train_tokens: usize,
    pub train_seconds: f64,
    /// Why the run ended before its last epoch (patience, time limit).
    pub stopped_early: Option<String>,
}

impl<R> TrainSummary<R> {
    /// Mean seconds of one training step (forward, backward, update).
    pub fn mean_step_seconds(&self) -> f64 {
        self.epochs.iter().map(|e| e.train_sec).sum::<f64>() / self.steps.max(1) as f64
    }
}

/// The state of a ChaCha8 generator, to restore it exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    pub seed: [u8; 32],
    pub stream: u64,
    /// Word position (u128, as a decimal string for JSON).
    pub word_pos: String,
}

impl RngState {
    pub fn of(rng: &ChaCha8Rng) -> Self {
        RngState { seed: rng.get_seed(), stream: rng.get_stream(), word_pos: rng.get_word_pos().to_string() }
    }

    pub fn restore(&self) -> Result<ChaCha8Rng> {
        let pos: u128 =
            self.word_pos.parse().map_err(|_| Error::Input(format!("bad generator position {:?} in resume state", self.word_pos)))?;
        let mut rng = ChaCha8Rng::from_seed(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(pos);
        Ok(rng)
    }
}

/// The kept epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound = "R: Serialize + DeserializeOwned")]
pub struct Best<R> {
    pub epoch: usize,
    pub accuracy: f64,
    pub loss: Option<f64>,
    pub report: R,
}

/// Where a training run stands (`resume/state.json`): enough to continue
/// it with the same result as if it had never stopped.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound = "R: Serialize + DeserializeOwned")]
pub struct RunState<R> {
    /// The epoch in progress (1-based; `epochs + 1` once finished).
    pub epoch: usize,
    /// Batches of that epoch already trained on.
    pub next_batch: usize,
    /// Data generator at the start of the epoch (it draws the batch order).
    pub epoch_rng: RngState,
    /// Data generator now.
    pub rng: RngState,
    /// Dropout generator now.
    pub ctx_rng: RngState,
    /// Partial sums of the epoch in progress.
    pub loss_sum: f64,
    pub epoch_tokens: usize,
    pub epoch_train_sec: f64,
    pub train_tokens: usize,
    /// Seconds of earlier sessions.
    pub elapsed_sec: f64,
    pub epochs: Vec<EpochSummary>,
    /// The kept epoch (its weights are the checkpoint's top-level model).
    pub best: Option<Best<R>>,
    /// Best dev accuracy and loss of any epoch so far, and epochs since
    /// either improved (for [`Selection::AccuracyAndLoss`] and patience).
    pub best_accuracy_seen: Option<f64>,
    pub best_loss_seen: Option<f64>,
    pub epochs_without_progress: usize,
    /// Set when patience ended the run (a resume then has nothing to do).
    pub finished_early: Option<String>,
}

impl<R> RunState<R> {
    /// A run about to start.
    pub fn new(cfg: &LoopConfig) -> Self {
        let rng = RngState::of(&ChaCha8Rng::seed_from_u64(cfg.seed));
        RunState {
            epoch: 1,
            next_batch: 0,
            epoch_rng: rng.clone(),
            rng,
            ctx_rng: RngState::of(&ChaCha8Rng::seed_from_u64(cfg.dropout_seed)),
            loss_sum: 0.0,
            epoch_tokens: 0,
            epoch_train_sec: 0.0,
            train_tokens: 0,
            elapsed_sec: 0.0,
            epochs: Vec::new(),
            best: None,
            best_accuracy_seen: None,
            best_loss_seen: None,
            epochs_without_progress: 0,
            finished_early: None,
        }
    }
}

/// A run to continue: its optimizer, its state, and the kept weights (the
/// task's model must already hold the latest ones).
pub struct Resume<R> {
    pub optimizer: AdamW,
    pub state: RunState<R>,
    pub best: BTreeMap<String, Tensor>,
}

/// A saved run to continue: the model at its latest weights, its data
/// and settings, and what the loop needs.
pub struct Run<M: Saveable, R> {
    pub model: M,
    pub data: M::Data,
    pub train: M::Train,
    pub resume: Resume<R>,
}

/// Loads the run saved in `dir` by a training with a checkpoint directory.
pub fn load_run<M: Saveable, R: Serialize + DeserializeOwned>(dir: &Path) -> Result<Run<M, R>> {
    let ck = checkpoint::open::<M>(dir)?;
    let Loaded { model, data, train } = ck.load()?;
    let best = model.params().snapshot()?;
    let r = ck.resume::<RunState<R>>(model.params())?;
    Ok(Run { model, data, train, resume: Resume { optimizer: r.optimizer, state: r.state, best } })
}

/// How a run is driven besides its task and settings.
pub struct RunOptions<'a, R> {
    /// Save the kept model and the resume state here.
    pub checkpoint_dir: Option<&'a Path>,
    /// Continue a saved run.
    pub resume: Option<Resume<R>>,
    /// Checked after every step: when set, the run saves its state (with a
    /// checkpoint directory) and stops with [`Error::Interrupted`].
    pub interrupt: Option<&'a AtomicBool>,
}

impl<R> Default for RunOptions<'_, R> {
    fn default() -> Self {
        RunOptions { checkpoint_dir: None, resume: None, interrupt: None }
    }
}

/// One optimizer step on one batch: what the loop does per batch, and what
/// a benchmark times.
pub struct Stepper {
    pub optimizer: AdamW,
    pub ctx: Ctx,
    /// Where the steps' time went, summed over steps.
    pub timing: StepTiming,
    /// Embedding tables' gradients as rows (the default): the same update,
    /// bit for bit, as the dense tables (`false`, the reference), without
    /// building a table of zeros per pass or reading it in the update.
    pub row_gradients: bool,
}

impl Stepper {
    pub fn new(optimizer: AdamW, ctx: Ctx) -> Self {
        Stepper { optimizer, ctx, timing: StepTiming::default(), row_gradients: true }
    }
}

/// A sink for the row gradients of embedding lookups
/// ([`crate::ops::embedding_rows`]) in one training pass, if they are `on`.
fn row_sink(on: bool) -> Option<std::sync::Arc<crate::ops::RowGrads>> {
    on.then(Default::default)
}

/// Seconds spent in each phase of [`Stepper::step`], summed over steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StepTiming {
    pub steps: usize,
    /// Building the batch (data-parallel steps: and cutting it into pieces).
    pub prepare: f64,
    /// Forward and backward: of the whole batch, or (data-parallel) the
    /// wall time from the first piece's start to the last one's end.
    pub forward_backward: f64,
    /// Data-parallel steps: the pieces' own forward and backward time,
    /// summed over pieces (`forward_backward` times the threads, less
    /// this, is time threads spent outside a piece of their own: idle, or
    /// helping with a piece still running).
    pub pieces_busy: f64,
    /// Data-parallel steps: from handing the pieces out to each piece's
    /// start, summed over pieces (threads waking up; part of the waiting).
    #[serde(default)]
    pub pieces_starting: f64,
    /// The optimizer update (gradient norm, clipping, AdamW; data-parallel
    /// steps: adding the pieces' gradients too, inside the same pass).
    pub update: f64,
}

impl StepTiming {
    pub fn total(&self) -> f64 {
        self.prepare + self.forward_backward + self.update
    }
}

impl Stepper {
    /// Loss, backward and update at learning rate `lr`. A NaN or infinite
    /// loss is returned as is, with the weights untouched.
    ///
    /// With more than one thread in the current pool and a task that
    /// splits ([`Task::split`]), the step is data-parallel: the pieces of
    /// the batch are tasks of the current pool, each thread running a
    /// piece's forward and backward (its ops' parallel parts stay on that
    /// thread unless another thread is idle and takes them: a thread done
    /// with its piece helps with one still running), with a dropout
    /// generator seeded from the step's own in piece order, and the
    /// pieces' gradients are added in piece order (inside the update's
    /// pass: [`AdamW::update_sum`]). The result depends on the seed and
    /// the thread count, never on timing or on which thread ran what; one
    /// thread runs the unsplit batch as before.
    pub fn step<T: Task>(&mut self, task: &T, batch: &[usize], rng: &mut ChaCha8Rng, lr: f32, cfg: &AdamWConfig) -> Result<StepOutcome> {
        self.timing.steps += 1;
        let threads = rayon::current_num_threads();
        let t = Instant::now();
        if threads > 1 {
            if let Some(split) = task.split(batch, rng, threads)? {
                self.timing.prepare += t.elapsed().as_secs_f64();
                return self.step_split(task, split, lr, cfg);
            }
        }
        let sink = row_sink(self.row_gradients);
        self.ctx.rows = sink.clone();
        let loss = task.loss(batch, rng, &mut self.ctx);
        self.ctx.rows = None;
        let (loss, tokens) = loss?;
        let value = loss.to_scalar::<f32>()?;
        if !value.is_finite() {
            return Ok(StepOutcome { loss: value, grad_norm: f32::NAN, tokens });
        }
        let grads = gradients(&loss, sink.as_deref())?;
        self.timing.forward_backward += t.elapsed().as_secs_f64();
        self.update(task, std::slice::from_ref(&grads), lr, cfg, tokens, value)
    }

    fn update<T: Task>(
        &mut self,
        task: &T,
        grads: &[Gradients],
        lr: f32,
        cfg: &AdamWConfig,
        tokens: usize,
        loss: f32,
    ) -> Result<StepOutcome> {
        let t = Instant::now();
        let grad_norm = self.optimizer.update_sum(task.params(), grads, lr, cfg)?;
        self.timing.update += t.elapsed().as_secs_f64();
        Ok(StepOutcome { loss, grad_norm, tokens })
    }

    fn step_split<T: Task>(&mut self, task: &T, split: Split<'_>, lr: f32, cfg: &AdamWConfig) -> Result<StepOutcome> {
        use rand::Rng;
        let tokens = split.units;
        let t = Instant::now();
        let rows = self.row_gradients;
        let pieces: Vec<_> = split.pieces.into_iter().map(|p| (self.ctx.rng.random::<u64>(), std::sync::Mutex::new(Some(p)))).collect();
        let run = |(seed, piece): &(u64, std::sync::Mutex<Option<Piece<'_>>>)| -> Result<(f32, Gradients, f64, f64)> {
            let start = Instant::now();
            let starting = start.duration_since(t).as_secs_f64();
            let piece = piece.lock().expect("no piece panicked").take().expect("each piece runs once");
            let sink = row_sink(rows);
            let loss = piece(&mut Ctx { train: true, rng: ChaCha8Rng::seed_from_u64(*seed), rows: sink.clone() })?;
            let value = loss.to_scalar::<f32>()?;
            // A piece whose loss is not finite makes the step's loss not
            // finite: its gradients are never used.
            let grads = if value.is_finite() { gradients(&loss, sink.as_deref())? } else { Gradients::default() };
            Ok((value, grads, start.elapsed().as_secs_f64(), starting))
        };
        // The pieces as tasks of the current pool: each thread takes a
        // piece and runs its ops' parallel parts itself while the other
        // threads are busy with theirs, and a thread that finishes early
        // steals parts of a piece still running instead of waiting for it.
        // (Every op gives the same bits however its parts are shared out.)
        let done: Vec<Result<_>> = {
            use rayon::prelude::*;
            pieces.par_iter().with_max_len(1).map(run).collect()
        };
        // The first failure by piece, as a one-thread run would meet it.
        let done = done.into_iter().collect::<Result<Vec<_>>>()?;
        self.timing.forward_backward += t.elapsed().as_secs_f64();
        self.timing.pieces_busy += done.iter().map(|d| d.2).sum::<f64>();
        self.timing.pieces_starting += done.iter().map(|d| d.3).sum::<f64>();
        let value: f32 = done.iter().map(|d| d.0).sum();
        if !value.is_finite() {
            return Ok(StepOutcome { loss: value, grad_norm: f32::NAN, tokens });
        }
        let parts: Vec<Gradients> = done.into_iter().map(|d| d.1).collect();
        self.update(task, &parts, lr, cfg, tokens, value)
    }
}

/// The gradients of `loss`: candle's backward, and the row gradients its
/// lookups left in `sink`.
fn gradients(loss: &Tensor, sink: Option<&crate::ops::RowGrads>) -> Result<Gradients> {
    let dense = loss.backward()?;
    Ok(Gradients::new(dense, sink.map(|s| s.take()).unwrap_or_default()))
}

pub struct StepOutcome {
    pub loss: f32,
    pub grad_norm: f32,
    pub tokens: usize,
}

/// Trains `task` for `cfg.epochs` epochs (or until patience or the time
/// limit), keeps the weights of the epoch [`Selection`] picks, and leaves
/// the task's model holding them. With a checkpoint directory, the kept
/// model and the state to resume from are saved atomically.
pub fn fit<T: Task>(
    task: &T,
    cfg: &LoopConfig,
    options: RunOptions<T::Report>,
    observer: &mut dyn Observer,
) -> Result<TrainSummary<T::Report>> {
    cfg.validate().map_err(Error::Config)?;
    let steps_per_epoch = task.batches(&mut ChaCha8Rng::seed_from_u64(cfg.seed)).len();
    if steps_per_epoch == 0 {
        return Err(Error::Input("no training data: an epoch has no batches".into()));
    }
    let total_steps = steps_per_epoch * cfg.epochs;
    let start = Instant::now();
    let resumed = options.resume.is_some();
    let Resume { optimizer, mut state, best: mut best_weights } =
        options.resume.unwrap_or_else(|| Resume { optimizer: AdamW::default(), state: RunState::new(cfg), best: BTreeMap::new() });
    // What the checkpoint directory holds from this run, for messages.
    let mut last_saved = resumed.then(|| format!("epoch {}, after batch {}", state.epoch, state.next_batch));
    let earlier_sec = state.elapsed_sec;
    let elapsed = |start: &Instant| earlier_sec + start.elapsed().as_secs_f64();
    let mut stepper = Stepper::new(optimizer, Ctx { train: true, rng: state.ctx_rng.restore()?, rows: None });
    let contents = match options.checkpoint_dir {
        Some(_) => Some(task.contents()?),
        None => None,
    };
    let save = |best: &BTreeMap<String, Tensor>, opt: &AdamW, state: &RunState<T::Report>| -> Result<()> {
        let (Some(dir), Some(contents)) = (options.checkpoint_dir, &contents) else { return Ok(()) };
        let now = task.params().snapshot()?;
        // Before the first dev evaluation there is no kept model yet: the
        // current weights stand in for it.
        let top = if state.best.is_none() { &now } else { best };
        checkpoint::save(dir, contents, top, Some(ResumeFiles { weights: &now, optimizer: opt, state }))
    };
    let interrupted = || options.interrupt.is_some_and(|f| f.load(Ordering::SeqCst));
    let resume_hint = |what: &str| match options.checkpoint_dir {
        Some(dir) => format!("{what} saved in {}; continue with `resume` {}", dir.display(), dir.display()),
        None => "nothing saved (no checkpoint directory)".to_string(),
    };
    let mut last_save_at = Instant::now();
    let mut stopped_early = state.finished_early.clone();
    observer.run_start(cfg.epochs, steps_per_epoch);
    while state.epoch <= cfg.epochs && stopped_early.is_none() {
        let epoch = state.epoch;
        // The batch order comes from the generator as it was when the epoch
        // began; mid-epoch, the generator then jumps to where it was.
        let mut rng = state.epoch_rng.restore()?;
        let batches = task.batches(&mut rng);
        if state.next_batch > 0 {
            rng = state.rng.restore()?;
        }
        observer.epoch_start(epoch, batches.len() - state.next_batch.min(batches.len()));
        let (mut loss_sum, mut epoch_tokens, mut train_sec) = (state.loss_sum, state.epoch_tokens, state.epoch_train_sec);
        let session_tokens_before = epoch_tokens;
        let session_sec_before = train_sec;
        for (b, batch) in batches.iter().enumerate().skip(state.next_batch) {
            let t = Instant::now();
            let step = stepper.optimizer.step as usize + 1;
            let lr = cfg.schedule.lr_at(step, total_steps);
            let out = stepper.step(task, batch, &mut rng, lr, &cfg.optimizer)?;
            if !out.loss.is_finite() {
                let kept = match (options.checkpoint_dir, &last_saved) {
                    (Some(dir), Some(when)) => format!("the last good state ({when}) is kept in {}", dir.display()),
                    (Some(_), None) => "no checkpoint was written (it diverged in the first epoch)".to_string(),
                    (None, _) => "nothing was saved (no checkpoint directory)".to_string(),
                };
                return Err(Error::Diverged(format!(
                    "loss became {} at step {step} (epoch {epoch}); {kept}; try a lower `lr` (now {})",
                    out.loss, cfg.schedule.lr
                )));
            }
            train_sec += t.elapsed().as_secs_f64();
            loss_sum += out.loss as f64 * out.tokens as f64;
            epoch_tokens += out.tokens;
            observer.step(&StepInfo { epoch, step, loss: out.loss, lr, grad_norm: out.grad_norm, tokens: out.tokens });
            if interrupted() && b + 1 < batches.len() {
                state.next_batch = b + 1;
                state.rng = RngState::of(&rng);
                state.ctx_rng = RngState::of(&stepper.ctx.rng);
                state.loss_sum = loss_sum;
                state.epoch_tokens = epoch_tokens;
                state.epoch_train_sec = train_sec;
                state.elapsed_sec = elapsed(&start);
                save(&best_weights, &stepper.optimizer, &state)?;
                return Err(Error::Interrupted(format!(
                    "stopped at step {step} (epoch {epoch}, batch {} of {}); {}",
                    b + 1,
                    batches.len(),
                    resume_hint("state")
                )));
            }
        }
        state.train_tokens += epoch_tokens;
        let out_of_time = cfg.max_minutes.is_some_and(|m| start.elapsed().as_secs_f64() >= m * 60.0);
        // Between evaluations (`eval_every`), an epoch ends without a dev
        // score, a summary or a change of the kept weights; the last epoch,
        // a time limit and an interrupt always evaluate.
        let evaluate = epoch.is_multiple_of(cfg.eval_every.max(1)) || epoch == cfg.epochs || out_of_time || interrupted();
        if evaluate {
            let dev = task.evaluate()?;
            let improved = select(cfg.selection, &mut state, &dev, epoch);
            if improved {
                best_weights = task.params().snapshot()?;
            }
            let best_acc = state.best.as_ref().map_or(dev.accuracy, |b| b.accuracy);
            let summary = EpochSummary {
                epoch,
                train_loss: (loss_sum / epoch_tokens.max(1) as f64) as f32,
                dev_accuracy: dev.accuracy,
                dev_loss: dev.loss,
                best_dev_accuracy: best_acc,
                improved,
                train_tokens_per_sec: (epoch_tokens - session_tokens_before) as f64 / (train_sec - session_sec_before).max(1e-9),
                train_sec,
                elapsed_sec: elapsed(&start),
            };
            observer.epoch_end(&summary);
            state.epochs.push(summary);
        }
        if cfg.patience.is_some_and(|p| state.epochs_without_progress >= p) {
            let why = format!("no dev progress for {} epochs", state.epochs_without_progress);
            state.finished_early = Some(why.clone());
            stopped_early = Some(why);
        }
        if out_of_time && epoch < cfg.epochs && stopped_early.is_none() {
            stopped_early = Some(format!(
                "time limit of {} minutes reached after epoch {epoch} (continue with `resume`)",
                cfg.max_minutes.unwrap_or(0.0)
            ));
        }
        state.epoch += 1;
        state.next_batch = 0;
        state.epoch_rng = RngState::of(&rng);
        state.rng = state.epoch_rng.clone();
        state.ctx_rng = RngState::of(&stepper.ctx.rng);
        state.loss_sum = 0.0;
        state.epoch_tokens = 0;
        state.epoch_train_sec = 0.0;
        state.elapsed_sec = elapsed(&start);
        let stop_now = interrupted() && state.epoch <= cfg.epochs && stopped_early.is_none();
        let last = state.epoch > cfg.epochs || stopped_early.is_some();
        if last || stop_now || last_save_at.elapsed().as_secs_f64() >= cfg.save_interval_secs {
            save(&best_weights, &stepper.optimizer, &state)?;
            last_save_at = Instant::now();
            let best = state.best.as_ref().map_or(String::new(), |b| format!(", best dev {:.2}%", 100.0 * b.accuracy));
            last_saved = Some(format!("end of epoch {epoch}{best}"));
        }
        if stop_now {
            return Err(Error::Interrupted(format!("stopped after epoch {epoch}; {}", resume_hint("state"))));
        }
    }
    let best = state.best.clone().ok_or_else(|| Error::Input("the run finished without an epoch".into()))?;
    task.params().load(&best_weights).map_err(Error::Input)?;
    Ok(TrainSummary {
        epochs: state.epochs,
        best_epoch: best.epoch,
        best_dev: best.report,
        steps: stepper.optimizer.step as usize,
        train_tokens: state.train_tokens,
        train_seconds: elapsed(&start),
        stopped_early,
    })
}

/// Updates the kept epoch and the patience count after a dev evaluation;
/// true when this epoch's weights become the kept ones.
fn select<R: Clone>(selection: Selection, state: &mut RunState<R>, dev: &Evaluation<R>, epoch: usize) -> bool {
    let keep = |state: &mut RunState<R>| {
        state.best = Some(Best { epoch, accuracy: dev.accuracy, loss: dev.loss, report: dev.report.clone() });
        true
    };
    let better = |b: &Best<R>| match selection {
        Selection::AccuracyThenLoss => {
            dev.accuracy > b.accuracy || (dev.accuracy == b.accuracy && dev.loss.unwrap_or(f64::INFINITY) < b.loss.unwrap_or(f64::INFINITY))
        }
        _ => dev.accuracy > b.accuracy,
    };
    match selection {
        Selection::Accuracy | Selection::AccuracyThenLoss => {
            if state.best.as_ref().is_none_or(better) {
                state.epochs_without_progress = 0;
                keep(state)
            } else {
                state.epochs_without_progress += 1;
                false
            }
        }
        Selection::Last => {
            state.epochs_without_progress = 0;
            keep(state)
        }
        Selection::AccuracyAndLoss => {
            let loss = dev.loss.unwrap_or(f64::NAN);
            let acc_ok = state.best_accuracy_seen.is_none_or(|a| dev.accuracy >= a);
            let loss_ok = state.best_loss_seen.is_none_or(|l| loss <= l);
            if !(acc_ok || loss_ok) {
                state.epochs_without_progress += 1;
                return false;
            }
            state.epochs_without_progress = 0;
            state.best_accuracy_seen = Some(state.best_accuracy_seen.map_or(dev.accuracy, |a| a.max(dev.accuracy)));
            state.best_loss_seen = Some(state.best_loss_seen.map_or(loss, |l| l.min(loss)));
            acc_ok && loss_ok && keep(state)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::even_runs;

    #[test]
    fn even_runs_cover_the_items_in_order_in_balanced_nonempty_runs() {
        let cases: [(Vec<usize>, usize); 6] =
            [(vec![5; 10], 2), (vec![1, 1, 10], 2), (vec![3], 4), (vec![], 3), ((1..40).collect(), 3), (vec![9, 1, 1, 1], 4)];
        for (sizes, parts) in cases {
            let runs = even_runs(&sizes, parts);
            assert_eq!(runs.len(), parts.min(sizes.len()), "{sizes:?} in {parts}");
            let flat: Vec<usize> = runs.iter().flat_map(|r| r.clone()).collect();
            assert_eq!(flat, (0..sizes.len()).collect::<Vec<_>>(), "{sizes:?} in {parts}");
            assert!(runs.iter().all(|r| !r.is_empty()));
        }
        // A run's cost: its items times its largest (its padded batch).
        let costs = |sizes: &[usize], parts| {
            even_runs(sizes, parts).iter().map(|r| r.len() * sizes[r.clone()].iter().max().unwrap()).collect::<Vec<usize>>()
        };
        assert_eq!(costs(&[5; 10], 2), [25, 25]);
        // Filled from the left: the largest cost is what counts.
        assert_eq!(costs(&[5; 10], 3), [20, 20, 10]);
        // Sorted lengths, as a bucket holds them: twelve sentences of 75 to
        // 86 words cut after the sixth (6 x 80 = 480, 6 x 86 = 516), not after
        // the first run to pass half the words (7 x 81 = 567, 5 x 86 = 430).
        let bucket: Vec<usize> = (75..87).collect();
        assert_eq!(even_runs(&bucket, 2), [0..6, 6..12]);
        assert_eq!(costs(&[1, 1, 10], 2), [2, 10]);
        // Against every cut into three: none has a smaller largest cost.
        let sizes: Vec<usize> = (0..23).map(|i| 1 + (i * 7919) % 31).collect();
        let cost = |r: std::ops::Range<usize>| r.len() * sizes[r].iter().max().unwrap();
        let best = (1..23).flat_map(|a| (a + 1..23).map(move |b| (a, b))).map(|(a, b)| cost(0..a).max(cost(a..b)).max(cost(b..23))).min();
        assert_eq!(costs(&sizes, 3).into_iter().max(), best);
    }
}
