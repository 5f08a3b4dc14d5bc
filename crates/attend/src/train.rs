//! Training: fused AdamW with warmup + cosine decay, gradient clipping by
//! global norm, length-bucketed batches with word dropout, model selection on
//! dev, and a checkpoint written each time dev accuracy improves.

use crate::checkpoint;
use crate::data::batch::{bucket, encode, Batch};
use crate::data::conllu::Sentence;
use crate::data::vocab::TaggerVocab;
use crate::error::{Error, Result};
use crate::models::tagger::{EvalReport, Tagger};
use crate::nn::{Ctx, ParamStore};
use crate::ops;
use attend_kernels::adamw::AdamWStep;
use candle_core::backprop::GradStore;
use candle_core::Tensor;
use rand::SeedableRng;
use std::sync::atomic::{AtomicBool, Ordering};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// Optimisation settings, saved beside the model config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub epochs: usize,
    /// Stop after this many minutes even if epochs remain (the best model so
    /// far is kept). A safety limit: the schedule still follows `epochs`.
    pub max_minutes: Option<f64>,
    /// Peak learning rate.
    pub lr: f32,
    pub warmup_steps: usize,
    /// The learning rate decays (cosine) to `lr * min_lr_ratio`.
    pub min_lr_ratio: f32,
    pub weight_decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    /// Clip gradients to this global L2 norm (0 = off).
    pub clip: f32,
    /// Padded positions per training batch.
    pub batch_tokens: usize,
    pub label_smoothing: f32,
    /// Word dropout strength alpha: word w becomes `<unk>` with probability
    /// alpha / (alpha + count(w)).
    pub word_dropout: f32,
    pub seed: u64,
    /// Stop when dev accuracy has not improved for this many epochs.
    pub patience: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 18,
            max_minutes: None,
            lr: 1e-3,
            warmup_steps: 300,
            min_lr_ratio: 0.02,
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.98,
            clip: 1.0,
            batch_tokens: 1024,
            label_smoothing: 0.0,
            word_dropout: 0.25,
            seed: 42,
            patience: None,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.epochs == 0 {
            return Err("epochs must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(format!("lr must be positive, got {}", self.lr));
        }
        if self.batch_tokens == 0 {
            return Err("batch_tokens must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(format!("label_smoothing must be in [0, 1), got {}", self.label_smoothing));
        }
        Ok(())
    }

    /// Learning rate at 1-based `step` of `total` steps.
    pub fn lr_at(&self, step: usize, total: usize) -> f32 {
        if step <= self.warmup_steps {
            return self.lr * step as f32 / self.warmup_steps.max(1) as f32;
        }
        let span = total.saturating_sub(self.warmup_steps).max(1);
        let progress = ((step - self.warmup_steps) as f32 / span as f32).min(1.0);
        let cosine = 0.5 * (1.0 + (std::f32::consts::PI * progress).cos());
        self.lr * (self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cosine)
    }
}

/// AdamW with its moments kept by parameter name, so they can be saved with
/// a checkpoint and training resumed exactly.
#[derive(Debug, Clone, Default)]
pub struct AdamW {
    pub m: BTreeMap<String, Vec<f32>>,
    pub v: BTreeMap<String, Vec<f32>>,
    pub step: u64,
}

impl AdamW {
    /// Applies one update from `grads`; returns the gradient norm before clipping.
    /// Weight decay applies to matrices only (not biases or norm gains).
    pub fn update(&mut self, params: &ParamStore, grads: &GradStore, lr: f32, cfg: &TrainConfig) -> Result<f32> {
        let h = Hyper { beta1: cfg.beta1, beta2: cfg.beta2, clip: cfg.clip, weight_decay: cfg.weight_decay, l2: 0.0 };
        self.update_with(params, grads, lr, &h)
    }

    /// [`AdamW::update`] with explicit settings. Decoupled weight decay and
    /// L2 apply to matrices only (rank >= 2), not to biases or gains.
    pub fn update_with(&mut self, params: &ParamStore, grads: &GradStore, lr: f32, h: &Hyper) -> Result<f32> {
        self.step += 1;
        let mut sq = 0f64;
        for (_, var) in params.vars() {
            if let Some(g) = grads.get(var) {
                sq += ops::with_f32(g, attend_kernels::adamw::sum_of_squares)?;
            }
        }
        let norm = sq.sqrt() as f32;
        let grad_scale = if h.clip > 0.0 && norm > h.clip { h.clip / norm } else { 1.0 };
        for (name, var) in params.vars() {
            let Some(g) = grads.get(var) else { continue };
            let n = var.elem_count();
            let m = self.m.entry(name.clone()).or_insert_with(|| vec![0.0; n]);
            let v = self.v.entry(name.clone()).or_insert_with(|| vec![0.0; n]);
            let matrix = var.rank() >= 2;
            let step = AdamWStep {
                lr,
                beta1: h.beta1,
                beta2: h.beta2,
                eps: 1e-8,
                weight_decay: if matrix { h.weight_decay } else { 0.0 },
                step: self.step,
                grad_scale,
                l2: if matrix { h.l2 } else { 0.0 },
            };
            ops::adamw_step(var.as_tensor(), g, m, v, step)?;
        }
        Ok(norm)
    }
}

/// Optimizer settings for [`AdamW::update_with`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hyper {
    pub beta1: f32,
    pub beta2: f32,
    /// Clip to this global gradient norm (0 = off).
    pub clip: f32,
    /// Decoupled weight decay (AdamW).
    pub weight_decay: f32,
    /// L2 added to the gradient (Adam with weight decay, as in GAT).
    pub l2: f32,
}

/// What the loop reports to whoever shows progress.
pub trait Observer {
    fn epoch_start(&mut self, _epoch: usize, _batches: usize) {}
    fn step(&mut self, _info: &StepInfo) {}
    fn epoch_end(&mut self, _summary: &EpochSummary) {}
}

/// An observer that shows nothing.
pub struct Silent;
impl Observer for Silent {}

#[derive(Debug, Clone)]
pub struct StepInfo {
    pub epoch: usize,
    pub step: usize,
    pub loss: f32,
    pub lr: f32,
    pub grad_norm: f32,
    pub tokens: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochSummary {
    pub epoch: usize,
    pub train_loss: f32,
    pub dev_accuracy: f64,
    pub best_dev_accuracy: f64,
    pub improved: bool,
    pub train_tokens_per_sec: f64,
    pub elapsed_sec: f64,
}

/// How training went.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainSummary {
    pub epochs: Vec<EpochSummary>,
    pub best_epoch: usize,
    pub best_dev: EvalReport,
    pub steps: usize,
    pub train_tokens: usize,
    pub train_seconds: f64,
    pub stopped_early: Option<String>,
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
        let pos: u128 = self.word_pos.parse().map_err(|_| Error::Input(format!("bad generator position {:?} in resume state", self.word_pos)))?;
        let mut rng = ChaCha8Rng::from_seed(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(pos);
        Ok(rng)
    }
}

/// Where a training run stands (`resume/state.json`): enough to continue
/// it with the same result as if it had never stopped.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    /// The epoch in progress (1-based; `epochs + 1` once finished).
    pub epoch: usize,
    /// Batches of that epoch already trained on.
    pub next_batch: usize,
    /// Data generator at the start of the epoch (it draws the batch order).
    pub epoch_rng: RngState,
    /// Data generator now (batch order, then word dropout per batch).
    pub rng: RngState,
    /// Dropout generator now.
    pub ctx_rng: RngState,
    /// Partial sums of the epoch in progress.
    pub loss_sum: f64,
    pub epoch_tokens: usize,
    pub train_tokens: usize,
    /// Training seconds before this state was saved (wall time of earlier sessions).
    pub elapsed_sec: f64,
    pub epochs: Vec<EpochSummary>,
    /// Best dev accuracy so far, its epoch and report (the weights are the
    /// checkpoint's top-level model).
    pub best: Option<(f64, usize, EvalReport)>,
    pub stopped_early: Option<String>,
}

/// How a run is driven besides its data and settings.
#[derive(Default)]
pub struct RunOptions<'a> {
    /// Save the best model and the resume state here after every epoch.
    pub checkpoint_dir: Option<&'a Path>,
    /// Continue a saved run (from [`checkpoint::load_training`]); the model
    /// passed in must already hold `resume`'s latest weights.
    pub resume: Option<(AdamW, RunState, BTreeMap<String, Tensor>)>,
    /// Checked after every step: when set, the run saves its state (with a
    /// checkpoint directory) and stops with [`Error::Interrupted`].
    pub interrupt: Option<&'a AtomicBool>,
}

/// Trains `model` on `train`, selects the epoch with the best accuracy on
/// `dev`, and leaves the model holding those weights. With `checkpoint_dir`,
/// the best model and the state to resume from are saved (atomically) after
/// every epoch.
pub fn train_tagger(
    model: &mut Tagger,
    vocab: &TaggerVocab,
    train: &[Sentence],
    dev: &[Sentence],
    cfg: &TrainConfig,
    checkpoint_dir: Option<&Path>,
    observer: &mut dyn Observer,
) -> Result<TrainSummary> {
    let options = RunOptions { checkpoint_dir, ..RunOptions::default() };
    train_tagger_with(model, vocab, train, dev, cfg, options, observer)
}

/// [`train_tagger`] with resume and interruption.
pub fn train_tagger_with(
    model: &mut Tagger,
    vocab: &TaggerVocab,
    train: &[Sentence],
    dev: &[Sentence],
    cfg: &TrainConfig,
    options: RunOptions,
    observer: &mut dyn Observer,
) -> Result<TrainSummary> {
    cfg.validate().map_err(Error::Config)?;
    let data = encode(train, vocab, model.config.max_word_chars);
    let lengths: Vec<usize> = data.iter().map(|s| s.len()).collect();
    let steps_per_epoch = bucket::<ChaCha8Rng>(&lengths, cfg.batch_tokens, None).len();
    let total_steps = steps_per_epoch * cfg.epochs;
    let start = Instant::now();
    let resumed = options.resume.is_some();
    let (mut opt, mut state, mut best_weights) = match options.resume {
        Some(r) => r,
        None => {
            let rng = RngState::of(&ChaCha8Rng::seed_from_u64(cfg.seed));
            let state = RunState {
                epoch: 1,
                next_batch: 0,
                epoch_rng: rng.clone(),
                rng,
                ctx_rng: RngState::of(&ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5eed_d20f)),
                loss_sum: 0.0,
                epoch_tokens: 0,
                train_tokens: 0,
                elapsed_sec: 0.0,
                epochs: Vec::new(),
                best: None,
                stopped_early: None,
            };
            (AdamW::default(), state, BTreeMap::new())
        }
    };
    // What the checkpoint directory holds from this run, for messages.
    let mut last_saved = resumed.then(|| format!("epoch {}, after batch {}", state.epoch, state.next_batch));
    let earlier_sec = state.elapsed_sec;
    let elapsed = |start: &Instant| earlier_sec + start.elapsed().as_secs_f64();
    let mut ctx = Ctx { train: true, rng: state.ctx_rng.restore()? };
    let save = |model: &Tagger, best: &BTreeMap<String, Tensor>, opt: &AdamW, state: &RunState| -> Result<()> {
        match options.checkpoint_dir {
            // Before the first dev evaluation there is no best model yet:
            // the current weights stand in for it (and are replaced at the
            // end of the first epoch).
            Some(dir) if state.best.is_none() => checkpoint::save_training(dir, model, &model.params.snapshot()?, vocab, cfg, opt, state),
            Some(dir) => checkpoint::save_training(dir, model, best, vocab, cfg, opt, state),
            None => Ok(()),
        }
    };
    while state.epoch <= cfg.epochs && state.stopped_early.is_none() {
        let epoch = state.epoch;
        // The batch order comes from the generator as it was when the epoch
        // began; mid-epoch, the generator then jumps to where it was.
        let mut rng = state.epoch_rng.restore()?;
        let batches = bucket(&lengths, cfg.batch_tokens, Some(&mut rng));
        if state.next_batch > 0 {
            rng = state.rng.restore()?;
        }
        observer.epoch_start(epoch, batches.len() - state.next_batch.min(batches.len()));
        let epoch_start = Instant::now();
        let (mut loss_sum, mut epoch_tokens) = (state.loss_sum, state.epoch_tokens);
        for (b, idx) in batches.iter().enumerate().skip(state.next_batch) {
            let mut batch = Batch::new(&data, idx);
            batch.drop_words(vocab, cfg.word_dropout, &mut rng);
            let loss = model.loss(&batch, &mut ctx, cfg.label_smoothing)?;
            let loss_value = loss.to_scalar::<f32>()?;
            let step = opt.step as usize + 1;
            if !loss_value.is_finite() {
                let kept = match (options.checkpoint_dir, &last_saved) {
                    (Some(dir), Some(when)) => format!("the last good state ({when}) is kept in {}", dir.display()),
                    (Some(_), None) => "no checkpoint was written (it diverged in the first epoch)".to_string(),
                    (None, _) => "nothing was saved (no checkpoint directory)".to_string(),
                };
                return Err(Error::Diverged(format!(
                    "loss became {loss_value} at step {step} (epoch {epoch}); {kept}; try a lower --lr (now {})",
                    cfg.lr
                )));
            }
            let grads = loss.backward()?;
            let lr = cfg.lr_at(step, total_steps);
            let grad_norm = opt.update(&model.params, &grads, lr, cfg)?;
            loss_sum += loss_value as f64 * batch.tokens() as f64;
            epoch_tokens += batch.tokens();
            observer.step(&StepInfo { epoch, step, loss: loss_value, lr, grad_norm, tokens: batch.tokens() });
            if options.interrupt.is_some_and(|f| f.load(Ordering::SeqCst)) && b + 1 < batches.len() {
                state.next_batch = b + 1;
                state.rng = RngState::of(&rng);
                state.ctx_rng = RngState::of(&ctx.rng);
                state.loss_sum = loss_sum;
                state.epoch_tokens = epoch_tokens;
                state.elapsed_sec = elapsed(&start);
                let where_ = match options.checkpoint_dir {
                    Some(dir) => {
                        save(model, &best_weights, &opt, &state)?;
                        format!("state saved in {}; continue with --resume {}", dir.display(), dir.display())
                    }
                    None => "nothing saved (no checkpoint directory)".to_string(),
                };
                return Err(Error::Interrupted(format!("stopped at step {step} (epoch {epoch}, batch {} of {}); {where_}", b + 1, batches.len())));
            }
        }
        let train_secs = epoch_start.elapsed().as_secs_f64();
        let session_tokens = epoch_tokens - state.epoch_tokens;
        state.train_tokens += epoch_tokens;
        let report = model.evaluate(dev, vocab, 8192)?;
        let acc = report.accuracy();
        let improved = state.best.as_ref().is_none_or(|b| acc > b.0);
        if improved {
            state.best = Some((acc, epoch, report));
            best_weights = model.params.snapshot()?;
        }
        let (best_acc, best_epoch) = state.best.as_ref().map(|b| (b.0, b.1)).expect("set above");
        let summary = EpochSummary {
            epoch,
            train_loss: (loss_sum / epoch_tokens.max(1) as f64) as f32,
            dev_accuracy: acc,
            best_dev_accuracy: best_acc,
            improved,
            train_tokens_per_sec: session_tokens as f64 / train_secs.max(1e-9),
            elapsed_sec: elapsed(&start),
        };
        observer.epoch_end(&summary);
        state.epochs.push(summary);
        if let Some(p) = cfg.patience {
            if epoch - best_epoch >= p {
                state.stopped_early = Some(format!("no dev improvement for {p} epochs"));
            }
        }
        if let Some(limit) = cfg.max_minutes {
            if elapsed(&start) >= limit * 60.0 && epoch < cfg.epochs && state.stopped_early.is_none() {
                state.stopped_early = Some(format!("time limit of {limit} minutes reached after epoch {epoch}"));
            }
        }
        state.epoch += 1;
        state.next_batch = 0;
        state.epoch_rng = RngState::of(&rng);
        state.rng = state.epoch_rng.clone();
        state.ctx_rng = RngState::of(&ctx.rng);
        state.loss_sum = 0.0;
        state.epoch_tokens = 0;
        state.elapsed_sec = elapsed(&start);
        save(model, &best_weights, &opt, &state)?;
        last_saved = Some(format!("end of epoch {epoch}, best dev {:.2}%", 100.0 * best_acc));
        if options.interrupt.is_some_and(|f| f.load(Ordering::SeqCst)) && state.epoch <= cfg.epochs && state.stopped_early.is_none() {
            let where_ = match options.checkpoint_dir {
                Some(dir) => format!("state saved in {}; continue with --resume {}", dir.display(), dir.display()),
                None => "nothing saved (no checkpoint directory)".to_string(),
            };
            return Err(Error::Interrupted(format!("stopped after epoch {epoch}; {where_}")));
        }
    }
    let (_, best_epoch, best_dev) = state.best.clone().ok_or_else(|| Error::Input("the run finished without an epoch".into()))?;
    model.params.load(&best_weights).map_err(Error::Input)?;
    Ok(TrainSummary {
        epochs: state.epochs,
        best_epoch,
        best_dev,
        steps: opt.step as usize,
        train_tokens: state.train_tokens,
        train_seconds: elapsed(&start),
        stopped_early: state.stopped_early,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays() {
        let cfg = TrainConfig { lr: 1.0, warmup_steps: 10, min_lr_ratio: 0.1, ..Default::default() };
        assert!((cfg.lr_at(5, 110) - 0.5).abs() < 1e-6);
        assert!((cfg.lr_at(10, 110) - 1.0).abs() < 1e-6);
        assert!((cfg.lr_at(60, 110) - 0.55).abs() < 1e-5);
        assert!((cfg.lr_at(110, 110) - 0.1).abs() < 1e-6);
        assert!(cfg.lr_at(40, 110) > cfg.lr_at(80, 110));
    }
}
