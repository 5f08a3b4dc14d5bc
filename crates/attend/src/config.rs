//! Settings files: a `[model]` and a `[train]` table (TOML) with the names
//! of a model's config and its training config (each model's `Settings`
//! type, beside its config); anything left out takes its default, unknown
//! keys are errors. [`TrainConfig`] is the minibatch training settings of
//! sequence models; [`MAX_PARAMETERS`] the size limit every model shares.
//! This module names no model.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Largest model attend builds: 2^30 f32 parameters (4 GiB), so that a
/// mistyped size is refused with a message instead of exhausting memory.
pub const MAX_PARAMETERS: u128 = 1 << 30;

/// Minibatch training settings (the tagger's; saved beside the model config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Passes over the training data. The tagger's default, 10, reaches the
    /// same EWT test UPOS as 18 (95.60% against 95.64%, 2026-12-01) in 55%
    /// of the time; 18 is 0.3 points better on dev (docs/results.md).
    pub epochs: usize,
    /// Stop after this many minutes of one session, even if epochs remain
    /// (the best model so far is kept; `--resume` continues). A safety
    /// limit: the schedule still follows `epochs`.
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
    /// Without a dev file: this share of the training sequences (stratified
    /// by class when there is one per sequence), drawn with `seed`, is held
    /// out as dev data; 0: none (train on all of it and keep the last
    /// epoch). Sequence models; the tagger reads its dev file.
    pub dev_fraction: f32,
    /// Training sequences with a label per vector that are longer than
    /// this are cut into pieces of this length (long signals under a
    /// window; 0: never). Sequence models.
    pub crop: usize,
    /// Sequence models with one label per sequence: each training sequence
    /// is cut, at every step, to a random window of at least this share of
    /// its inputs (data augmentation; 1: whole sequences).
    pub random_crop: f32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
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
            dev_fraction: 0.2,
            crop: 0,
            random_crop: 1.0,
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
        if !(self.dev_fraction >= 0.0 && self.dev_fraction < 1.0) {
            return Err(format!("dev_fraction must be in [0, 1), got {}", self.dev_fraction));
        }
        if !(self.random_crop > 0.0 && self.random_crop <= 1.0) {
            return Err(format!("random_crop must be in (0, 1], got {}", self.random_crop));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(format!("label_smoothing must be in [0, 1), got {}", self.label_smoothing));
        }
        Ok(())
    }
}

/// The keys of `given` (a table of settings, nested) that `read` (the
/// settings read from it, serialised again) does not have, as `a.b` paths:
/// settings this version does not know. Configs that nest a part's config
/// flat beside their own keys (`serde(flatten)`) cannot deny unknown fields
/// through serde; this check does it for them.
pub fn unknown_keys(given: &serde_json::Value, read: &serde_json::Value) -> Vec<String> {
    let (Some(given), Some(read)) = (given.as_object(), read.as_object()) else { return Vec::new() };
    let mut out = Vec::new();
    for (key, value) in given {
        match read.get(key) {
            None => out.push(key.clone()),
            Some(r) => out.extend(unknown_keys(value, r).into_iter().map(|k| format!("{key}.{k}"))),
        }
    }
    out
}

/// A `[model]` and a `[train]` table, checked.
pub trait Settings: Serialize + DeserializeOwned + Default + Sized {
    fn validate(&self) -> Result<(), String>;

    /// What a key the user leaves out takes: `Self::default()` as tables,
    /// under whatever the user gives (a model's defaults for the settings
    /// of its parts, which differ between models).
    fn base() -> toml::Table {
        toml::Table::try_from(Self::default()).expect("settings serialise to TOML")
    }

    /// Settings from a parsed TOML table, checked (sizes, ranges).
    fn from_table(table: toml::Table) -> Result<Self, String> {
        let mut merged = Self::base();
        for (key, value) in table {
            match (merged.get_mut(&key), value) {
                (Some(toml::Value::Table(base)), toml::Value::Table(given)) => base.extend(given),
                (_, value) => {
                    merged.insert(key, value);
                }
            }
        }
        let given = serde_json::to_value(&merged).map_err(|e| e.to_string())?;
        let s: Self = toml::Value::Table(merged).try_into().map_err(|e: toml::de::Error| e.to_string())?;
        let read = serde_json::to_value(&s).map_err(|e| e.to_string())?;
        if let Some(key) = unknown_keys(&given, &read).first() {
            let (table, name) = key.rsplit_once('.').unwrap_or(("", key));
            return Err(format!("unknown field `{name}`{}", if table.is_empty() { String::new() } else { format!(" in [{table}]") }));
        }
        s.validate()?;
        Ok(s)
    }

    /// Settings from TOML text. Any text gives settings or an error, never a
    /// panic (fuzzed).
    fn from_toml(text: &str) -> Result<Self, String> {
        Self::from_table(text.parse::<toml::Table>().map_err(|e| e.to_string())?)
    }
}
