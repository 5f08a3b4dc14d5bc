//! `attend bench tagger`: the default tagger end to end, as a user runs it.
//!
//! Trains the default tagger (all three heads) on the first batches of a
//! seeded epoch, exactly the loop's step (forward, loss, backward, clipped
//! AdamW update), then tags the test set in the batches `attend tag` uses.
//! Reports words per second for both and the process's peak RSS.
//!
//! With an export directory it also writes those batches (after word
//! dropout), the model's sizes and the learning rate of every step to
//! `batches.json`, so a twin in another framework (`scripts/torch_twin.py`)
//! trains and tags exactly the same inputs; `scripts/bench-torch.sh` runs
//! both and prints the ratios.

use attend::attend_kernels::matmul::Precision as Products;
use attend::config::TrainConfig;
use attend::data::batch::{bucket, encode, Batch};
use attend::data::conllu::Sentence;
use attend::data::vocab::{Column, TaggerVocab};
use attend::models::tagger::config::TaggerConfig;
use attend::models::tagger::task::TaggerTask;
use attend::models::tagger::{Tagger, TAG_BATCH_TOKENS};
use attend::nn::Ctx;
use attend::precision::Precision;
use attend::train::{Evaluation, LoopConfig, Split, StepTiming, Stepper, Task};
use candle_core::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// What to run.
#[derive(Debug, Clone)]
pub struct TaggerBenchConfig {
    /// Timed training steps.
    pub steps: usize,
    /// Untimed steps before them (first-touch allocations, thread start).
    pub warmup_steps: usize,
    /// Times the test set is tagged (the median is reported).
    pub tag_runs: usize,
    pub seed: u64,
}

impl Default for TaggerBenchConfig {
    fn default() -> Self {
        TaggerBenchConfig { steps: 100, warmup_steps: 5, tag_runs: 3, seed: 42 }
    }
}

/// What it measured.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct TaggerBenchResult {
    pub parameters: usize,
    pub train_steps: usize,
    /// Real (unpadded) words in the timed steps.
    pub train_words: usize,
    pub train_seconds: f64,
    pub train_words_per_second: f64,
    /// Loss of the first and the last timed step (a sanity check: it falls).
    pub first_loss: f32,
    pub last_loss: f32,
    pub tag_words: usize,
    /// Median over the tagging runs.
    pub tag_seconds: f64,
    pub tag_words_per_second: f64,
    /// What the tagging runs' matrix products ran in (`--precision`):
    /// `f32` or `bf16`.
    #[serde(default)]
    pub tag_precision: String,
    /// With bf16 products: the same tagging runs with f32 products, in the
    /// same process (the baseline of the bf16 speed-up).
    #[serde(default)]
    pub tag_f32_words_per_second: Option<f64>,
    /// The process's peak resident set (Linux `VmHWM`), MiB.
    pub peak_rss_mib: Option<f64>,
    /// Where the timed training steps' time went.
    #[serde(default)]
    pub train_phases: StepTiming,
}

/// The training steps as a [`Task`] over batches made in advance, so the
/// timed loop is the training loop's own step and nothing else.
struct Prepared<'a> {
    model: &'a Tagger,
    batches: &'a [Batch],
    label_smoothing: f32,
}

impl Task for Prepared<'_> {
    type Report = ();

    fn params(&self) -> &attend::nn::ParamStore {
        &self.model.params
    }

    fn batches(&self, _: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
        (0..self.batches.len()).map(|i| vec![i]).collect()
    }

    fn loss(&self, batch: &[usize], _: &mut ChaCha8Rng, ctx: &mut Ctx) -> attend::Result<(Tensor, usize)> {
        let b = &self.batches[batch[0]];
        Ok((self.model.loss(b, ctx, self.label_smoothing)?, b.tokens()))
    }

    fn split(&self, batch: &[usize], _: &mut ChaCha8Rng, parts: usize) -> attend::Result<Option<Split<'_>>> {
        Ok(Some(self.model.split(&self.batches[batch[0]], parts, self.label_smoothing)))
    }

    fn evaluate(&self) -> attend::Result<Evaluation<()>> {
        Err(attend::Error::Input("the benchmark does not evaluate".into()))
    }

    fn contents(&self) -> attend::Result<attend::checkpoint::Contents> {
        Err(attend::Error::Input("the benchmark saves no model".into()))
    }
}

/// Trains and tags as described in the module docs; `export` writes the
/// batches for a twin first.
pub fn bench_tagger(
    train: &[Sentence],
    test: &[Sentence],
    cfg: &TaggerBenchConfig,
    export: Option<&Path>,
) -> anyhow::Result<TaggerBenchResult> {
    let vocab = TaggerVocab::build_for(train, &Column::ALL);
    let config = TaggerConfig::default().sized_for(&vocab);
    let model = Tagger::new(config.clone(), cfg.seed)?;
    let train_cfg = TrainConfig { seed: cfg.seed, ..TrainConfig::default() };
    let looped = LoopConfig::minibatch(&train_cfg);
    // The first batches of the first epoch, drawn as the training loop
    // draws them (the tagger's own training task, one random stream).
    let training = TaggerTask::new(&model, &vocab, train, &[], &train_cfg)?;
    let mut rng = ChaCha8Rng::seed_from_u64(looped.seed);
    let order = training.batches(&mut rng);
    let steps_per_epoch = order.len();
    let total = cfg.warmup_steps + cfg.steps;
    if total > steps_per_epoch {
        anyhow::bail!("{total} steps asked, but an epoch of this training file has only {steps_per_epoch} batches");
    }
    let batches: Vec<Batch> = order[..total].iter().map(|idx| training.batch(idx, &mut rng)).collect();
    // The learning rate each step gets in a real run of the default length.
    let run_steps = steps_per_epoch * train_cfg.epochs;
    let lrs: Vec<f32> = (0..total).map(|s| looped.schedule.lr_at(s, run_steps)).collect();
    let test_data = encode(test, &vocab, config.max_word_chars);
    let test_lengths: Vec<usize> = test_data.iter().map(|s| s.len()).collect();
    if let Some(dir) = export {
        let tag_batches: Vec<Batch> =
            bucket::<ChaCha8Rng>(&test_lengths, TAG_BATCH_TOKENS, None).iter().map(|idx| Batch::new(&test_data, idx)).collect();
        write_export(dir, &config, &train_cfg, cfg, &batches, &lrs, &tag_batches)?;
    }

    let task = Prepared { model: &model, batches: &batches, label_smoothing: train_cfg.label_smoothing };
    let mut stepper =
        Stepper::new(Default::default(), Ctx { train: true, rng: ChaCha8Rng::seed_from_u64(looped.dropout_seed), rows: None });
    for (i, &lr) in lrs.iter().enumerate().take(cfg.warmup_steps) {
        stepper.step(&task, &[i], &mut rng, lr, &looped.optimizer)?;
    }
    stepper.timing = StepTiming::default();
    let (mut first_loss, mut last_loss, mut train_words) = (f32::NAN, f32::NAN, 0);
    let start = Instant::now();
    for (i, &lr) in lrs.iter().enumerate().skip(cfg.warmup_steps) {
        let out = stepper.step(&task, &[i], &mut rng, lr, &looped.optimizer)?;
        if i == cfg.warmup_steps {
            first_loss = out.loss;
        }
        last_loss = out.loss;
        train_words += out.tokens;
    }
    let train_seconds = start.elapsed().as_secs_f64();

    let tag_words: usize = test_lengths.iter().sum();
    // Median seconds of tagging the test set, as the process is set.
    let tag = || -> attend::Result<f64> {
        let mut times = Vec::new();
        for _ in 0..cfg.tag_runs.max(1) {
            let start = Instant::now();
            std::hint::black_box(model.predict_columns(test, &vocab, TAG_BATCH_TOKENS)?);
            times.push(start.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    };
    let setting = attend::precision::get();
    let tag_seconds = tag()?;
    let f32_seconds = if setting.products() == Products::F32 {
        None
    } else {
        attend::precision::set(Precision::F32)?;
        let seconds = tag();
        attend::precision::set(setting)?;
        Some(seconds?)
    };
    Ok(TaggerBenchResult {
        parameters: model.params.num_scalars(),
        train_steps: cfg.steps,
        train_words,
        train_seconds,
        train_words_per_second: train_words as f64 / train_seconds,
        first_loss,
        last_loss,
        tag_words,
        tag_seconds,
        tag_words_per_second: tag_words as f64 / tag_seconds,
        tag_precision: setting.name().to_string(),
        tag_f32_words_per_second: f32_seconds.map(|s| tag_words as f64 / s),
        peak_rss_mib: attend::memory::peak_rss_bytes().map(|b| b as f64 / (1 << 20) as f64),
        train_phases: stepper.timing,
    })
}

/// One batch as the twin reads it; labels past a sequence's end (and
/// unknown ones) are -1.
fn batch_json(b: &Batch) -> serde_json::Value {
    let labels = |v: &[u32]| v.iter().map(|&t| if t == attend::attend_kernels::loss::IGNORE { -1 } else { t as i64 }).collect::<Vec<i64>>();
    let columns: Vec<Vec<i64>> = std::iter::once(&b.tags).chain(&b.other_tags).map(|c| labels(c)).collect();
    serde_json::json!({
        "batch": b.batch,
        "seq": b.seq,
        "word_ids": b.word_ids,
        "lengths": b.lengths,
        "max_chars": b.max_chars,
        "spellings": b.spellings,
        "spelling_lengths": b.spelling_lengths,
        "spelling_of": b.spelling_of,
        "labels": columns,
    })
}

fn write_export(
    dir: &Path,
    model: &TaggerConfig,
    train: &TrainConfig,
    cfg: &TaggerBenchConfig,
    batches: &[Batch],
    lrs: &[f32],
    tag_batches: &[Batch],
) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let doc = serde_json::json!({
        "model": model,
        "train": {
            "warmup_steps": cfg.warmup_steps,
            "lr": lrs,
            "beta1": train.beta1,
            "beta2": train.beta2,
            "weight_decay": train.weight_decay,
            "clip": train.clip,
            "label_smoothing": train.label_smoothing,
        },
        "train_batches": batches.iter().map(batch_json).collect::<Vec<_>>(),
        "tag_batches": tag_batches.iter().map(batch_json).collect::<Vec<_>>(),
        "tag_runs": cfg.tag_runs,
    });
    let path = dir.join("batches.json");
    std::fs::write(&path, serde_json::to_vec(&doc)?).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Speed-ups over thread counts and Amdahl's law fitted to them.
///
/// Amdahl: with a serial fraction `s` of the one-thread time, `n` threads
/// take `s + (1 - s) / n` of it. From the speed-up `r` between the first
/// two counts `b` and `n` (`r` = words/s at `n` over words/s at `b`),
/// `s = (1/b - r/n) / (r - r/n - 1 + 1/b)`; for 1 and 2 threads that is
/// `s = 2/r - 1`. The law with that `s` then predicts every other count.
#[derive(Debug, Clone, Serialize)]
pub struct Scaling {
    pub threads: Vec<usize>,
    /// Words/s at each count over words/s at the first.
    pub speedups: Vec<f64>,
    /// From the first two counts (`None` with one count, or when they
    /// are equal). Below 0 when they scale better than linearly.
    pub serial_fraction: Option<f64>,
}

impl Scaling {
    /// Thread counts with their words/s, in the order run.
    pub fn fit(points: &[(usize, f64)]) -> Scaling {
        let threads: Vec<usize> = points.iter().map(|p| p.0).collect();
        let speedups: Vec<f64> = points.iter().map(|p| p.1 / points[0].1).collect();
        let serial_fraction = match points {
            [(b, _), (n, _), ..] if b != n => {
                let (b, n, r) = (*b as f64, *n as f64, speedups[1]);
                Some((1.0 / b - r / n) / (r - r / n - 1.0 + 1.0 / b))
            }
            _ => None,
        };
        Scaling { threads, speedups, serial_fraction }
    }

    /// Amdahl's speed-up of `n` threads over the first count (NaN without a
    /// serial fraction); a negative fraction counts as 0.
    pub fn predicted(&self, n: usize) -> f64 {
        let Some(s) = self.serial_fraction else { return f64::NAN };
        let s = s.clamp(0.0, 1.0);
        let time = |n: usize| s + (1.0 - s) / n as f64;
        time(self.threads[0]) / time(n)
    }

    /// One line: the serial fraction, how it was found, and what it
    /// predicts from 2 to 16 threads.
    pub fn describe(&self) -> String {
        let Some(s) = self.serial_fraction else { return "one thread count: no serial fraction".into() };
        let s_used = s.clamp(0.0, 1.0);
        let time = |n: f64| s_used + (1.0 - s_used) / n;
        format!(
            "serial fraction {:.1}% (Amdahl from {} and {} threads: {:.2}x); predicts {:.2}x from 2 to 16 threads, {:.2}x from 1 to 16",
            100.0 * s,
            self.threads[0],
            self.threads[1],
            self.speedups[1],
            time(2.0) / time(16.0),
            time(1.0) / time(16.0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Scaling;

    #[test]
    fn amdahl_fits_and_predicts() {
        // s = 0.28 (the 16-core Xeon): 1 -> 2 threads gives 1/(0.28 + 0.36) = 1.5625x.
        let s = 0.28;
        let speed = |n: f64| 1000.0 / (s + (1.0 - s) / n);
        let fit = Scaling::fit(&[(1, speed(1.0)), (2, speed(2.0)), (16, speed(16.0))]);
        assert!((fit.serial_fraction.unwrap() - s).abs() < 1e-9);
        assert!((fit.predicted(16) - fit.speedups[2]).abs() < 1e-9);
        // From a base of 2 threads: the same fraction.
        let fit = Scaling::fit(&[(2, speed(2.0)), (8, speed(8.0))]);
        assert!((fit.serial_fraction.unwrap() - s).abs() < 1e-9, "{fit:?}");
        assert!((fit.predicted(8) - speed(8.0) / speed(2.0)).abs() < 1e-9);
        // 5% serial predicts at least 4.5x from 2 to 16 threads (the figure).
        let five = Scaling { threads: vec![1, 2], speedups: vec![1.0, 2.0 / 1.05], serial_fraction: Some(0.05) };
        assert!(five.predicted(16) / five.predicted(2) >= 4.5);
        assert!(five.describe().contains("5.0%"), "{}", five.describe());
        // Perfect scaling is 0% serial; one count has no fraction.
        assert!(Scaling::fit(&[(1, 10.0), (2, 20.0)]).serial_fraction.unwrap().abs() < 1e-12);
        assert!(Scaling::fit(&[(4, 10.0)]).serial_fraction.is_none());
    }
}
