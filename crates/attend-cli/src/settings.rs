//! Hyperparameters from flags and a TOML file.
//!
//! A config file has a `[model]` and a `[train]` table with the same names
//! as the flags (underscores instead of dashes). Flags given on the command
//! line win over the file; anything given in neither takes the default.

use anyhow::{Context, Result};
use attend::config::Settings;
use attend::models::EncoderKind;
use attend::nn::position::PositionKind;
use attend::nn::AttentionKernel;
use clap::Args;
use serde::Serialize;
use std::path::Path;

/// The encoder's flags, shared by every model that has one (`#[command(flatten)]`).
/// Unset ones come from the config file or the model's defaults, which
/// `attend --help` shows in brackets ([`show_defaults`]).
#[derive(Args, Serialize, Debug, Default)]
pub struct EncoderArgs {
    /// Encoder: attention (stacked self-attention) or rnn (the BiLSTM
    /// baseline; d_model / 2 units per direction, --layers deep; attention
    /// and position flags do not apply)
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    encoder: Option<EncoderKind>,
    /// Width of the attention layers
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    d_model: Option<usize>,
    /// Attention heads per layer
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    heads: Option<usize>,
    /// Stacked encoder layers
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    layers: Option<usize>,
    /// Hidden width of the feed-forward layers
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    ff_dim: Option<usize>,
    /// Dropout on inputs and residual branches
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    dropout: Option<f32>,
    /// Dropout on the input features before their projection (tagger: as
    /// --dropout; sequence models: 0, raw signal values keep their scale)
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    input_dropout: Option<f32>,
    /// Dropout on attention weights
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    attention_dropout: Option<f32>,
    /// Positional encoding: none, sinusoidal, learned or rope
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<PositionKind>,
    /// Longest input (in vectors, or patches) a learned position table covers
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_positions: Option<usize>,
    /// Truncated attention: each item sees N on each side [whole sequence]
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    window: Option<usize>,
    /// Attention implementation: fused (flash-style, O(N) memory, fast) or
    /// reference (candle matmuls, stores the N x N weights)
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    attention_kernel: Option<AttentionKernel>,
}

/// The tagger's architecture flags: the encoder's, then the word front end's.
#[derive(Args, Serialize, Debug, Default)]
pub struct ModelArgs {
    #[command(flatten)]
    #[serde(flatten)]
    encoder: EncoderArgs,
    /// Word embedding width
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    word_dim: Option<usize>,
    /// Character embedding width
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    char_dim: Option<usize>,
    /// Character convolution filters
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    char_filters: Option<usize>,
    /// Character convolution width, odd
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    char_kernel: Option<usize>,
    /// Longer words keep their first and last N/2 characters
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_word_chars: Option<usize>,
}

/// Minibatch training flags, shared by every model trained with
/// [`attend::config::TrainConfig`] (`#[command(flatten)]`).
#[derive(Args, Serialize, Debug, Default)]
pub struct TrainArgs {
    /// Passes over the training data
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    epochs: Option<usize>,
    /// Stop after the epoch that passes this many minutes of this session,
    /// keeping the best model so far; continue with --resume (which takes
    /// this flag again) [no limit]
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_minutes: Option<f64>,
    /// Peak learning rate
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    lr: Option<f32>,
    /// Linear warmup steps
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    warmup_steps: Option<usize>,
    /// Cosine decay ends at lr * this
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    min_lr_ratio: Option<f32>,
    /// AdamW decoupled weight decay on matrices
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    weight_decay: Option<f32>,
    /// AdamW beta1
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    beta1: Option<f32>,
    /// AdamW beta2
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    beta2: Option<f32>,
    /// Clip gradients to this global norm, 0 = off
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    clip: Option<f32>,
    /// Label smoothing
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    label_smoothing: Option<f32>,
    /// Random seed for initialisation, batching, dropout (and a held-out dev split)
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    /// Stop after N epochs without dev improvement [off]
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    patience: Option<usize>,
}

/// The tagger's training flags: the shared ones, then its batches and word dropout.
#[derive(Args, Serialize, Debug, Default)]
pub struct TaggerTrainArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub common: TrainArgs,
    /// Padded word positions per batch
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_tokens: Option<usize>,
    /// Word dropout alpha: word w -> <unk> with p = alpha/(alpha+count)
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    word_dropout: Option<f32>,
}

impl TrainArgs {
    /// `--max-minutes`, the one training flag a resumed run may change.
    pub fn max_minutes(&self) -> Option<f64> {
        self.max_minutes
    }
}

/// Appends each flag's default to its help (`[256]`), read from `defaults`
/// (a settings type's `Default`: its `[model]` and `[train]` tables), so
/// that the help shows what the config types hold and never a copy of it.
/// `renamed`: flags whose setting has another name (`batch_vectors` sets
/// `batch_tokens`). Flags without a default (an unset option) or that are
/// switches keep their own text.
pub fn show_defaults(cmd: clap::Command, defaults: &impl Serialize, renamed: &[(&str, &str)]) -> clap::Command {
    show_defaults_with(cmd, defaults, |id| Some(renamed.iter().find(|(flag, _)| *flag == id).map_or(id, |(_, key)| key).to_string()))
}

/// [`show_defaults`] for the flags `key_of` maps to a setting (by their id).
pub fn show_defaults_with(mut cmd: clap::Command, defaults: &impl Serialize, key_of: impl Fn(&str) -> Option<String>) -> clap::Command {
    let Ok(tables) = toml::Table::try_from(defaults) else { return cmd };
    let value_of = |key: &str| tables.values().filter_map(toml::Value::as_table).find_map(|t| t.get(key)).cloned();
    let shown: Vec<(String, String)> = cmd
        .get_arguments()
        .filter_map(|arg| {
            let id = arg.get_id().as_str();
            let text = match value_of(&key_of(id)?)? {
                toml::Value::String(v) => v,
                toml::Value::Integer(i) => i.to_string(),
                // the settings are f32: their shortest form (0.2, not 0.20000000298)
                toml::Value::Float(f) => (f as f32).to_string(),
                _ => return None,
            };
            Some((id.to_string(), text))
        })
        .collect();
    for (id, value) in shown {
        cmd = cmd.mut_arg(id, |arg| {
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            arg.help(format!("{help} [{value}]"))
        });
    }
    cmd
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

/// The settings a user gave, in the config file or as flags, by their
/// config-file names (`patch`, `batch_tokens`): what adaptive defaults leave alone.
pub fn given_keys(file: Option<&Path>, model: &impl Serialize, train: &impl Serialize) -> Result<std::collections::BTreeSet<String>> {
    let mut keys = std::collections::BTreeSet::new();
    if let Some(tables) = file.map(read_file).transpose()? {
        keys.extend(tables.values().filter_map(toml::Value::as_table).flat_map(|t| t.keys().cloned()));
    }
    keys.extend(toml::Table::try_from(model)?.keys().cloned());
    keys.extend(toml::Table::try_from(train)?.keys().cloned());
    Ok(keys)
}

/// A settings file's tables.
pub fn read_file(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
    text.parse::<toml::Table>().with_context(|| format!("config {}", path.display()))
}

/// Resolves settings: defaults, then the TOML file, then flags.
pub fn resolve<S: Settings>(file: Option<&Path>, model: &impl Serialize, train: &impl Serialize) -> Result<S> {
    let table = file.map(read_file).transpose()?.unwrap_or_default();
    resolve_table(table, file, model, train)
}

/// [`resolve`] from a settings file's tables, read from `file`.
pub fn resolve_table<S: Settings>(
    mut table: toml::Table,
    file: Option<&Path>,
    model: &impl Serialize,
    train: &impl Serialize,
) -> Result<S> {
    merge_table(&mut table, "model", toml::Table::try_from(model)?);
    merge_table(&mut table, "train", toml::Table::try_from(train)?);
    let where_ = file.map(|p| p.display().to_string()).unwrap_or_else(|| "command line".into());
    let settings = S::from_table(table).map_err(|e| anyhow::anyhow!("settings from {where_}: {e}"))?;
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The help of `attend train KIND` shows each flag's default as that
    /// kind's settings hold it: the shared encoder flags show the tagger's
    /// defaults on `train tagger` and the sequence model's on `train sequence`.
    #[test]
    fn help_shows_each_kinds_own_defaults() {
        let cmd = crate::cli_command();
        let train = cmd.find_subcommand("train").unwrap();
        let help_of = |kind: &str, flag: &str| {
            let sub = train.find_subcommand(kind).unwrap();
            sub.get_arguments()
                .find(|a| a.get_long() == Some(flag))
                .unwrap_or_else(|| panic!("{kind} --{flag}"))
                .get_help()
                .unwrap()
                .to_string()
        };
        assert!(help_of("tagger", "d-model").ends_with("[256]"), "{}", help_of("tagger", "d-model"));
        assert!(help_of("sequence", "d-model").ends_with("[64]"), "{}", help_of("sequence", "d-model"));
        assert!(help_of("tagger", "epochs").ends_with("[10]"));
        // Settings the sequence model chooses from the data show the fixed default beside.
        assert!(help_of("sequence", "epochs").ends_with("[from the data; fixed: 100]"), "{}", help_of("sequence", "epochs"));
        assert!(help_of("sequence", "batch-vectors").ends_with("[from the data; fixed: 2048]"));
        assert!(help_of("sequence", "lr").ends_with("[from the data; fixed: 0.001]"), "{}", help_of("sequence", "lr"));
        assert!(help_of("sequence", "weight-decay").ends_with("[0.05]"), "not chosen from the data");
        assert!(help_of("tagger", "dropout").ends_with("[0.2]"));
        assert!(help_of("tagger", "position").ends_with("[rope]"));
        assert!(help_of("graph", "attention-kernel").ends_with("[fused]"));
        assert!(help_of("graph", "lr").ends_with("[0.005]"));
        assert!(help_of("tagger", "window").ends_with("[whole sequence]"), "an unset option keeps its own text");
        // The segmenter's flags show the segmenter's defaults, on both commands.
        for kind in ["tagger", "segmenter"] {
            assert!(help_of(kind, "segmenter-epochs").ends_with(" [4]"), "{}", help_of(kind, "segmenter-epochs"));
            assert!(help_of(kind, "segmenter-batch-chars").ends_with(" [2048]"));
            assert!(help_of(kind, "segmenter-window").ends_with(" [32]"));
        }
        // Every flag that sets a setting with a default shows it.
        for kind in ["tagger", "sequence", "graph"] {
            let shown = train
                .find_subcommand(kind)
                .unwrap()
                .get_arguments()
                .filter(|a| a.get_help().is_some_and(|h| h.to_string().ends_with(']')))
                .count();
            assert!(shown >= 14, "{kind}: {shown} flags show a default");
        }
    }

    #[test]
    fn flags_override_file_and_unknown_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[model]\nheads = 4\nlayers = 2\n[train]\nlr = 0.003\n").unwrap();
        let model = ModelArgs { encoder: EncoderArgs { layers: Some(3), ..Default::default() }, ..Default::default() };
        let s: attend::models::tagger::config::TaggerSettings = resolve(Some(&path), &model, &TaggerTrainArgs::default()).unwrap();
        assert_eq!((s.model.encoder.heads, s.model.encoder.layers, s.train.lr), (4, 3, 0.003));
        assert_eq!(s.model.encoder.d_model, attend::models::TaggerConfig::default().encoder.d_model);
        std::fs::write(&path, "[model]\nhead = 4\n").unwrap();
        let err = format!(
            "{:#}",
            resolve::<attend::models::tagger::config::TaggerSettings>(Some(&path), &ModelArgs::default(), &TaggerTrainArgs::default())
                .err()
                .unwrap()
        );
        assert!(err.contains("unknown field `head`"), "{err}");
        let bad = ModelArgs { encoder: EncoderArgs { heads: Some(3), ..Default::default() }, ..Default::default() };
        let err = format!(
            "{:#}",
            resolve::<attend::models::tagger::config::TaggerSettings>(None, &bad, &TaggerTrainArgs::default()).err().unwrap()
        );
        assert!(err.contains("d_model (256) must be a multiple of heads (3)"), "{err}");
    }
}
