//! The raw-text segmenter's flags and its training run, shared by `attend
//! train segmenter` and `attend train tagger` (which trains one into its
//! directory).

use crate::common;
use crate::progress::Progress;
use crate::treebank_args::Treebank;
use anyhow::Result;
use attend::config::TrainConfig;
use attend::models::segmenter::task::{self, train_defaults, SegmenterRun};
use attend::models::segmenter::SegmenterConfig;
use attend::train::RunOptions;
use clap::Args;
use std::path::Path;
use std::time::Instant;

/// The segmenter's settings as flags (also on `attend train tagger`, prefixed there).
#[derive(Args, Clone)]
pub struct SegmenterFlags {
    /// Epochs over the training text.
    #[arg(long = "segmenter-epochs", default_value_t = train_defaults().epochs)]
    segmenter_epochs: usize,
    /// Each character sees this many characters on each side, per layer.
    #[arg(long = "segmenter-window", default_value_t = SegmenterConfig::default().window)]
    segmenter_window: usize,
    /// Self-attention layers over the characters.
    #[arg(long = "segmenter-layers", default_value_t = SegmenterConfig::default().layers)]
    segmenter_layers: usize,
    /// Width of the segmenter's vectors.
    #[arg(long = "segmenter-d-model", default_value_t = SegmenterConfig::default().d_model)]
    segmenter_d_model: usize,
    /// Characters per training batch (padding included).
    #[arg(long = "segmenter-batch-chars", default_value_t = train_defaults().batch_tokens)]
    segmenter_batch_chars: usize,
    /// The segmenter's peak learning rate.
    #[arg(long = "segmenter-lr", default_value_t = train_defaults().lr)]
    segmenter_lr: f32,
    /// Stop the segmenter's training after this many minutes (the best
    /// epoch so far is kept; --resume continues).
    #[arg(long = "segmenter-max-minutes")]
    segmenter_max_minutes: Option<f64>,
}

impl SegmenterFlags {
    fn resolve(&self, seed: u64) -> (SegmenterConfig, TrainConfig) {
        let model = SegmenterConfig {
            window: self.segmenter_window,
            layers: self.segmenter_layers,
            d_model: self.segmenter_d_model,
            ..SegmenterConfig::default()
        };
        let train = TrainConfig {
            epochs: self.segmenter_epochs,
            max_minutes: self.segmenter_max_minutes,
            batch_tokens: self.segmenter_batch_chars,
            lr: self.segmenter_lr,
            seed,
            ..train_defaults()
        };
        (model, train)
    }
}

/// Trains (or with `resume`, continues) a segmenter in `out` on the
/// treebank (needed when resuming too: the text is not saved with the model).
pub fn run(data: &Treebank, out: &Path, flags: &SegmenterFlags, resume: bool, seed: u64) -> Result<()> {
    let prepared = task::prepare(&data.train, &data.train_path, &data.dev, &data.dev_path)?;
    let (model, data, tcfg, resume) = if resume {
        let SegmenterRun { model, data, mut train, resume } = attend::train::load_run(out)?;
        if let Some(m) = flags.segmenter_max_minutes {
            train.max_minutes = Some(m);
        }
        eprintln!("resuming {} at epoch {}", out.display(), resume.state.epoch);
        (model, data, train, Some(resume))
    } else {
        let (settings, tcfg) = flags.resolve(seed);
        let model = task::new_model(&settings, &prepared.data, seed)?;
        (model, prepared.data, tcfg, None)
    };
    let chars: usize = prepared.train.iter().map(|p| p.chars.len()).sum();
    eprintln!(
        "segmenter: train {} paragraphs / {chars} characters, dev {} paragraphs; {} characters known, {} multiword forms; {} parameters; window {} x {} layers",
        prepared.train.len(),
        prepared.dev.len(),
        data.vocab_size() - 1,
        data.lexicon.forms.len(),
        model.params.num_scalars(),
        model.config.window,
        model.config.layers
    );
    let started = Instant::now();
    let summary = common::with_progress(
        Progress::new("chars", "dev tokens+sentences F1", 1),
        |why| why,
        |interrupt, progress| {
            let options = RunOptions { checkpoint_dir: Some(out), resume, interrupt: Some(interrupt) };
            task::train_segmenter(&model, &data, &prepared.train, &prepared.dev, &tcfg, options, progress)
        },
    )?;
    let r = &summary.best_dev;
    eprintln!(
        "segmenter: best dev at epoch {}: tokens F1 {:.2}%, sentences F1 {:.2}%, multiword tokens F1 {:.2}%; {:.1} min; in {}",
        summary.best_epoch,
        100.0 * r.tokens.f1(),
        100.0 * r.sentences.f1(),
        100.0 * r.multiword_tokens.f1(),
        started.elapsed().as_secs_f64() / 60.0,
        out.display()
    );
    attend::api::seeds::write_json(&out.join("train_report.json"), &serde_json::json!({ "train": summary }))?;
    Ok(())
}
