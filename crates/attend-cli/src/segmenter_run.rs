//! The raw-text segmenter's flags and its training run, shared by `attend
//! train segmenter` and `attend train tagger` (which trains one into its
//! directory).

use crate::common;
use crate::progress::Progress;
use anyhow::Result;
use attend::data::treebank::Treebank;
use attend::models::segmenter::task::{self, SegmenterRun, SegmenterSettings};
use attend::train::RunOptions;
use clap::Args;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// The segmenter's settings as flags (the same on `attend train tagger`).
/// Unset ones come from the settings file (`[model]` and `[train]` of
/// `attend train segmenter --config`, `[segmenter.model]` and
/// `[segmenter.train]` of `attend train tagger --config`) or the defaults
/// in brackets.
#[derive(Args, Clone, Default)]
pub struct SegmenterFlags {
    #[command(flatten)]
    model: SegmenterModelFlags,
    #[command(flatten)]
    train: SegmenterTrainFlags,
}

/// The segmenter's `[model]` flags.
#[derive(Args, Serialize, Clone, Default)]
struct SegmenterModelFlags {
    /// Each character sees this many characters on each side, per layer
    #[arg(long = "segmenter-window", help_heading = "Segmenter")]
    #[serde(rename = "window", skip_serializing_if = "Option::is_none")]
    segmenter_window: Option<usize>,
    /// Self-attention layers over the characters
    #[arg(long = "segmenter-layers", help_heading = "Segmenter")]
    #[serde(rename = "layers", skip_serializing_if = "Option::is_none")]
    segmenter_layers: Option<usize>,
    /// Width of the segmenter's vectors
    #[arg(long = "segmenter-d-model", help_heading = "Segmenter")]
    #[serde(rename = "d_model", skip_serializing_if = "Option::is_none")]
    segmenter_d_model: Option<usize>,
}

/// The segmenter's `[train]` flags.
#[derive(Args, Serialize, Clone, Default)]
struct SegmenterTrainFlags {
    /// Epochs over the training text
    #[arg(long = "segmenter-epochs", help_heading = "Segmenter")]
    #[serde(rename = "epochs", skip_serializing_if = "Option::is_none")]
    segmenter_epochs: Option<usize>,
    /// Characters per training batch (padding included)
    #[arg(long = "segmenter-batch-chars", help_heading = "Segmenter")]
    #[serde(rename = "batch_tokens", skip_serializing_if = "Option::is_none")]
    segmenter_batch_chars: Option<usize>,
    /// The segmenter's peak learning rate
    #[arg(long = "segmenter-lr", help_heading = "Segmenter")]
    #[serde(rename = "lr", skip_serializing_if = "Option::is_none")]
    segmenter_lr: Option<f32>,
    /// Stop the segmenter's training after this many minutes (the best
    /// epoch so far is kept; --resume continues) [no limit]
    #[arg(long = "segmenter-max-minutes", help_heading = "Segmenter")]
    #[serde(rename = "max_minutes", skip_serializing_if = "Option::is_none")]
    segmenter_max_minutes: Option<f64>,
}

impl SegmenterFlags {
    /// The settings: defaults, then `table` (a `[model]` and a `[train]`
    /// table, read from `file`), then these flags. The seed is `seed` unless
    /// the file sets one.
    pub fn resolve(&self, mut table: toml::Table, file: Option<&Path>, seed: u64) -> Result<SegmenterSettings> {
        let train = table.entry("train").or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(train) = train {
            train.entry("seed").or_insert(toml::Value::Integer(seed as i64));
        }
        crate::settings::resolve_table(table, file, &self.model, &self.train).map_err(|e| anyhow::anyhow!("segmenter {e:#}"))
    }
}

/// Shows the segmenter's defaults in the help of its flags (`[4]`), read
/// from [`SegmenterSettings::default`].
pub fn show_defaults(cmd: clap::Command) -> clap::Command {
    crate::settings::show_defaults_with(cmd, &SegmenterSettings::default(), |id| match id.strip_prefix("segmenter_")? {
        "batch_chars" => Some("batch_tokens".to_string()),
        key => Some(key.to_string()),
    })
}

/// Trains a segmenter with `settings` in `out` on the treebank, or without
/// settings continues the run saved there (the treebank is needed then too:
/// the text is not saved with the model).
pub fn run(data: &Treebank, out: &Path, flags: &SegmenterFlags, settings: Option<SegmenterSettings>) -> Result<()> {
    let prepared = task::prepare(&data.train, &data.train_path, &data.dev, &data.dev_path)?;
    let (model, data, tcfg, resume) = match settings {
        None => {
            let SegmenterRun { model, data, mut train, resume } = attend::train::load_run(out)?;
            if let Some(m) = flags.train.segmenter_max_minutes {
                train.max_minutes = Some(m);
            }
            eprintln!("resuming {} at epoch {}", out.display(), resume.state.epoch);
            (model, data, train, Some(resume))
        }
        Some(SegmenterSettings { model, train }) => {
            let model = task::new_model(&model, &prepared.data, train.seed)?;
            (model, prepared.data, train, None)
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Defaults, then the file's tables, then flags; the seed is the one
    /// given unless the file sets one; unknown keys are refused by name.
    #[test]
    fn settings_come_from_defaults_then_file_then_flags() {
        let none = SegmenterFlags::default();
        let s = none.resolve(toml::Table::new(), None, 7).unwrap();
        assert_eq!((s.model, s.train.epochs, s.train.seed), (SegmenterSettings::default().model, 4, 7));
        let file: toml::Table = "[model]\nwindow = 16\nlayers = 2\n[train]\nepochs = 9\nlr = 0.004\n".parse().unwrap();
        let f = Some(Path::new("f.toml"));
        let s = none.resolve(file.clone(), f, 7).unwrap();
        assert_eq!((s.model.window, s.model.layers, s.train.epochs, s.train.lr), (16, 2, 9, 0.004));
        assert_eq!(s.train.batch_tokens, 2048, "the segmenter's own default, not the tagger's");
        let flags = SegmenterFlags {
            model: SegmenterModelFlags { segmenter_window: Some(8), ..Default::default() },
            train: SegmenterTrainFlags { segmenter_epochs: Some(3), segmenter_batch_chars: Some(512), ..Default::default() },
        };
        let s = flags.resolve(file, f, 7).unwrap();
        assert_eq!((s.model.window, s.model.layers, s.train.epochs, s.train.batch_tokens), (8, 2, 3, 512));
        let seeded: toml::Table = "[train]\nseed = 3\n".parse().unwrap();
        assert_eq!(none.resolve(seeded, f, 7).unwrap().train.seed, 3);
        let bad: toml::Table = "[model]\nwidow = 3\n".parse().unwrap();
        let err = format!("{:#}", none.resolve(bad, f, 7).unwrap_err());
        assert!(err.contains("segmenter settings from f.toml") && err.contains("unknown field `widow`"), "{err}");
    }
}
