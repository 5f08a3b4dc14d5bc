//! Hyperparameters from flags and a TOML file.
//!
//! A config file has a `[model]` and a `[train]` table with the same names
//! as the flags (underscores instead of dashes). Flags given on the command
//! line win over the file; anything given in neither takes the default.

use anyhow::{Context, Result};
use attend::config::Settings;
use attend::nn::position::PositionKind;
use attend::models::EncoderKind;
use attend::nn::AttentionKernel;
use clap::Args;
use serde::Serialize;
use std::path::Path;

/// Model architecture flags (defaults in brackets are TaggerConfig's).
#[derive(Args, Serialize, Debug, Default)]
pub struct ModelArgs {
    /// Encoder: attention (stacked self-attention) or rnn (the BiLSTM
    /// baseline; d_model / 2 units per direction, --layers deep; attention
    /// and position flags do not apply) [attention]
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    encoder: Option<EncoderKind>,
    /// Width of the attention layers [256]
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    d_model: Option<usize>,
    /// Attention heads per layer [8]
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    heads: Option<usize>,
    /// Stacked encoder layers [2]
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    layers: Option<usize>,
    /// Hidden width of the feed-forward layers [512]
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    ff_dim: Option<usize>,
    /// Dropout on embeddings and residual branches [0.2]
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    dropout: Option<f32>,
    /// Dropout on attention weights [0.1]
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    attention_dropout: Option<f32>,
    /// Positional encoding: none, sinusoidal, learned or rope [rope]
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<PositionKind>,
    /// Longest sentence a learned position table covers [512]
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_positions: Option<usize>,
    /// Truncated attention: each word sees N words on each side [whole sentence]
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    window: Option<usize>,
    /// Attention implementation: fused (flash-style, O(N) memory, fast) or
    /// reference (candle matmuls, stores the N x N weights) [fused]
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    attention_kernel: Option<AttentionKernel>,
    /// Word embedding width [128]
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    word_dim: Option<usize>,
    /// Character embedding width [48]
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    char_dim: Option<usize>,
    /// Character convolution filters [192]
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    char_filters: Option<usize>,
    /// Character convolution width, odd [3]
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    char_kernel: Option<usize>,
    /// Longer words keep their first and last N/2 characters [20]
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_word_chars: Option<usize>,
}

/// Training flags (defaults in brackets are TrainConfig's).
#[derive(Args, Serialize, Debug, Default)]
pub struct TrainArgs {
    /// Passes over the training data [10]
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    epochs: Option<usize>,
    /// Stop after the epoch that passes this many minutes of this session,
    /// keeping the best model so far; continue with --resume (which takes
    /// this flag again) [no limit]
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_minutes: Option<f64>,
    /// Peak learning rate [0.001]
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    lr: Option<f32>,
    /// Linear warmup steps [300]
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    warmup_steps: Option<usize>,
    /// Cosine decay ends at lr * this [0.02]
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    min_lr_ratio: Option<f32>,
    /// AdamW decoupled weight decay on matrices [0.01]
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    weight_decay: Option<f32>,
    /// AdamW beta1 [0.9]
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    beta1: Option<f32>,
    /// AdamW beta2 [0.98]
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    beta2: Option<f32>,
    /// Clip gradients to this global norm, 0 = off [1.0]
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    clip: Option<f32>,
    /// Padded word positions per batch [1024]
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_tokens: Option<usize>,
    /// Label smoothing [0.0]
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    label_smoothing: Option<f32>,
    /// Word dropout alpha: word w -> <unk> with p = alpha/(alpha+count) [0.25]
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    word_dropout: Option<f32>,
    /// Random seed for initialisation, batching and dropout [42]
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    /// Stop after N epochs without dev improvement [off]
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    patience: Option<usize>,
}

impl TrainArgs {
    /// `--max-minutes`, the one training flag a resumed run may change.
    pub fn max_minutes(&self) -> Option<f64> {
        self.max_minutes
    }
}

fn merge_table(base: &mut toml::Table, key: &str, overrides: toml::Table) {
    let entry = base.entry(key.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(t) = entry {
        t.extend(overrides);
    }
}

/// The model and training flags given on the command line, as `--name`.
fn given_flags(model: &impl Serialize, train: &impl Serialize) -> Result<Vec<String>> {
    let mut names: Vec<String> = toml::Table::try_from(model)?.keys().cloned().collect();
    names.extend(toml::Table::try_from(train)?.keys().cloned());
    Ok(names.into_iter().map(|n| format!("--{}", n.replace('_', "-"))).collect())
}

/// With `--resume DIR` the saved settings hold: refuses any model or
/// training flag given but `--max-minutes` (which only bounds the session).
pub fn refuse_on_resume(dir: &Path, model: &impl Serialize, train: &impl Serialize) -> Result<()> {
    let mut given = given_flags(model, train)?;
    given.retain(|f| f != "--max-minutes");
    if !given.is_empty() {
        anyhow::bail!("--resume continues with the settings saved in {}; drop {}", dir.display(), given.join(", "));
    }
    Ok(())
}

/// Resolves settings: defaults, then the TOML file, then flags.
pub fn resolve<S: Settings>(file: Option<&Path>, model: &impl Serialize, train: &impl Serialize) -> Result<S> {
    let mut table = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
            text.parse::<toml::Table>().with_context(|| format!("config {}", path.display()))?
        }
        None => toml::Table::new(),
    };
    merge_table(&mut table, "model", toml::Table::try_from(model)?);
    merge_table(&mut table, "train", toml::Table::try_from(train)?);
    let where_ = file.map(|p| p.display().to_string()).unwrap_or_else(|| "command line".into());
    let settings = S::from_table(table).map_err(|e| anyhow::anyhow!("settings from {where_}: {e}"))?;
    Ok(settings)
}

#[cfg(test)]
/// Checks that every flag of `A` whose help ends in `[value]` shows the
/// default of the config key it sets (`defaults`, a serialised config);
/// returns how many were checked. Defaults live in the config types
/// only: this keeps the help text true to them.
pub(crate) fn help_defaults_match<A: clap::Args>(defaults: &impl Serialize, renamed: &[(&str, &str)]) -> usize {
    let defaults = toml::Table::try_from(defaults).unwrap();
    let cmd = A::augment_args(clap::Command::new("t"));
    let mut checked = 0;
    for arg in cmd.get_arguments() {
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        let Some(shown) = help.trim_end().strip_suffix(']').and_then(|h| h.rsplit_once('[')).map(|(_, v)| v) else { continue };
        let id = arg.get_id().as_str();
        let key = renamed.iter().find(|(flag, _)| *flag == id).map_or(id, |(_, key)| key);
        let ok = match defaults.get(key) {
            Some(toml::Value::Integer(i)) => shown.parse::<i64>().ok() == Some(*i),
            Some(toml::Value::Float(f)) => shown.parse::<f64>().is_ok_and(|x| (x - f).abs() <= 1e-6 * f.abs().max(1.0)),
            Some(toml::Value::String(v)) => shown == v,
            // booleans are switches ([off], [self loops on]); absent keys are unset options ([no limit])
            _ => continue,
        };
        assert!(ok, "--{id}: help shows [{shown}], the default is {:?}", defaults.get(key));
        checked += 1;
    }
    checked
}

#[cfg(test)]
mod tests {
    use super::help_defaults_match;
    use super::*;

    #[test]
    fn help_shows_the_true_defaults() {
        use attend::models::{GraphModelConfig, GraphTrainConfig, TaggerConfig};
        assert!(help_defaults_match::<ModelArgs>(&TaggerConfig::default(), &[]) >= 14);
        assert!(help_defaults_match::<TrainArgs>(&attend::config::TrainConfig::default(), &[]) >= 12);
        let graph = &[("attention_kernel", "kernel")];
        assert!(help_defaults_match::<crate::graph_cmd::GraphModelArgs>(&GraphModelConfig::default(), graph) >= 9);
        assert!(help_defaults_match::<crate::graph_cmd::GraphTrainArgs>(&GraphTrainConfig::default(), &[]) >= 5);
    }

    #[test]
    fn flags_override_file_and_unknown_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[model]\nheads = 4\nlayers = 2\n[train]\nlr = 0.003\n").unwrap();
        let model = ModelArgs { layers: Some(3), ..Default::default() };
        let s: attend::models::tagger::config::TaggerSettings = resolve(Some(&path), &model, &TrainArgs::default()).unwrap();
        assert_eq!((s.model.heads, s.model.layers, s.train.lr), (4, 3, 0.003));
        assert_eq!(s.model.d_model, attend::models::TaggerConfig::default().d_model);
        std::fs::write(&path, "[model]\nhead = 4\n").unwrap();
        let err = format!("{:#}", resolve::<attend::models::tagger::config::TaggerSettings>(Some(&path), &ModelArgs::default(), &TrainArgs::default()).err().unwrap());
        assert!(err.contains("unknown field `head`"), "{err}");
        let bad = ModelArgs { heads: Some(3), ..Default::default() };
        let err = format!("{:#}", resolve::<attend::models::tagger::config::TaggerSettings>(None, &bad, &TrainArgs::default()).err().unwrap());
        assert!(err.contains("d_model (256) must be a multiple of heads (3)"), "{err}");
    }
}
