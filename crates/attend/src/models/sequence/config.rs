//! The sequence model's architecture, saved as the `model` of its
//! `config.json`.

use crate::config::{Settings, TrainConfig, MAX_PARAMETERS};
use crate::data::series::Target;
use crate::nn::head::Pooling;
use crate::nn::sequence::EncoderConfig;
use serde::{Deserialize, Serialize};

/// Most copies of the network in one ensemble.
pub const MAX_MEMBERS: usize = 64;
/// Most convolutional layers in a stem.
pub const MAX_STEM_LAYERS: usize = 16;
/// Stem layers of a convolutional member of an ensemble (at least).
pub const CONV_MEMBER_STEM_LAYERS: usize = 3;

/// Architecture of a model over vector sequences: the shared encoder's
/// settings (nested, written flat: one TOML table, one set of flags), then
/// how vectors become the encoder's inputs and one label per sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SequenceConfig {
    /// What relates the vectors (keys flat beside the others: `d_model`,
    /// ...; `max_positions` counts inputs: patches, with `patch`).
    #[serde(flatten)]
    pub encoder: EncoderConfig,
    /// One label per sequence: how the outputs become one vector.
    pub pooling: Pooling,
    /// Consecutive vectors joined into one input of the encoder (1: each
    /// vector is one; more shortens long signals; per-sequence labels only).
    pub patch: usize,
    /// Scale each sequence by its own statistics: after the training-set
    /// normalisation, every channel of a sequence is centred and divided by
    /// its own standard deviation, and that mean and the log of that
    /// deviation go in as two more inputs per channel, with the log of the
    /// sequence's length (signals whose amplitudes span orders of magnitude
    /// keep both shape and level; mean pooling alone cannot see the length).
    pub sequence_norm: bool,
    /// A convolutional stem: each vector is first replaced by `stem`
    /// features of the `stem_kernel` vectors around it (a learned
    /// convolution, then GELU), before patches are joined (0: off).
    pub stem: usize,
    /// Width of the stem's window, odd.
    pub stem_kernel: usize,
    /// Convolutional layers in the stem (with `stem` > 0): the first over
    /// the windows of raw vectors, each further one over the
    /// `stem_deep_kernel` feature vectors around each step (`stem` to
    /// `stem` features), then a layer norm and GELU. Padding beyond a
    /// sequence's end is zero for every layer, as for the first.
    pub stem_layers: usize,
    /// Width of the further stem layers' windows, odd.
    pub stem_deep_kernel: usize,
    /// In a network without attention layers (a convolutional member of
    /// an ensemble, or `layers` 0), the stem's first-layer features are
    /// max-pooled over runs of this many vectors (1: none; a divisor of
    /// `patch`) before the further layers, which then run over that many
    /// times fewer steps (each window as many times wider in vectors); the
    /// encoder gets `patch / conv_pool x stem` features per input.
    pub conv_pool: usize,
    /// An ensemble: this many copies of the network (stem, encoder, head),
    /// each from its own initial weights and dropout, trained side by side
    /// on the same batches, each on its own loss; predictions average the
    /// copies' class probabilities (regression: their numbers). With more
    /// than one thread the copies train in parallel.
    pub members: usize,
    /// Of the `members`, how many (the last ones) are convolutional: the
    /// stem with at least [`CONV_MEMBER_STEM_LAYERS`] layers and no
    /// attention (its features projected to `d_model`, then the head).
    /// With both kinds in an ensemble, predictions average each kind's
    /// mean class probabilities, so the two kinds have an equal say
    /// whatever their counts. Needs a stem.
    pub conv_members: usize,
    /// Set from the training data: the file's vector width, whether it has
    /// missing values (then each value gets an indicator input), what the
    /// labels are, and how many outputs the head has (classes, or 1).
    pub dims: usize,
    pub missing_indicators: bool,
    pub target: Target,
    pub outputs: usize,
}

impl Default for SequenceConfig {
    fn default() -> Self {
        SequenceConfig {
            encoder: EncoderConfig {
                d_model: 64,
                heads: 4,
                ff_dim: 128,
                dropout: 0.1,
                input_dropout: Some(0.0),
                attention_dropout: 0.0,
                max_positions: 4096,
                ..EncoderConfig::default()
            },
            pooling: Pooling::Mean,
            patch: 1,
            sequence_norm: false,
            stem: 0,
            stem_kernel: 9,
            stem_layers: 1,
            stem_deep_kernel: 5,
            conv_pool: 1,
            members: 1,
            conv_members: 0,
            dims: 0,
            missing_indicators: false,
            target: Target::SequenceClass,
            outputs: 0,
        }
    }
}

impl SequenceConfig {
    /// Whether a summary vector is put before each sequence.
    pub fn summary(&self) -> bool {
        self.target.per_sequence() && self.pooling == Pooling::Summary
    }

    /// Width of one input of the encoder: a patch of vectors (each with its
    /// missing-value indicators), the sequence's own statistics (with
    /// `sequence_norm`), and the summary flag.
    pub fn input_width(&self) -> usize {
        self.slot_width() * self.patch + self.extra_width()
    }

    /// Inputs of one vector (values and missing-value indicators).
    pub fn vector_width(&self) -> usize {
        self.dims * if self.missing_indicators { 2 } else { 1 }
    }

    /// Inputs of one vector's slot in a patch: the vector, or with a stem
    /// the `stem_kernel` vectors around it.
    pub fn slot_width(&self) -> usize {
        self.vector_width() * if self.stem > 0 { self.stem_kernel } else { 1 }
    }

    /// Inputs after the patch: the sequence's statistics and the summary flag.
    pub fn extra_width(&self) -> usize {
        (if self.sequence_norm { 2 * self.dims + 1 } else { 0 }) + usize::from(self.summary())
    }

    /// Width of what the encoder receives (after the stem).
    pub fn encoder_input_width(&self) -> usize {
        if self.stem > 0 {
            self.stem * (self.patch / self.stem_pool()) + self.extra_width()
        } else {
            self.input_width()
        }
    }

    /// Vectors the stem max-pools over after its first layer: `conv_pool`
    /// in a network without attention layers, else 1.
    pub fn stem_pool(&self) -> usize {
        if self.encoder.layers == 0 {
            self.conv_pool
        } else {
            1
        }
    }

    /// Checks the settings a user gives (before the data sets the rest).
    pub fn validate_settings(&self) -> Result<(), String> {
        self.encoder.validate()?;
        if self.patch == 0 {
            return Err("patch must be at least 1".into());
        }
        if !(1..=MAX_MEMBERS).contains(&self.members) {
            return Err(format!("members must be 1 to {MAX_MEMBERS}, got {}", self.members));
        }
        if self.conv_members > self.members {
            return Err(format!("conv_members ({}) cannot exceed members ({})", self.conv_members, self.members));
        }
        if self.stem > 0 && self.stem_kernel.is_multiple_of(2) {
            return Err(format!("stem_kernel must be odd, got {}", self.stem_kernel));
        }
        if self.stem_layers == 0 || self.stem_layers > MAX_STEM_LAYERS {
            return Err(format!("stem_layers must be 1 to {MAX_STEM_LAYERS}, got {}", self.stem_layers));
        }
        if self.conv_pool == 0 {
            return Err("conv_pool must be at least 1".into());
        }
        if self.stem > 0 && self.stem_layers > 1 && self.stem_deep_kernel.is_multiple_of(2) {
            return Err(format!("stem_deep_kernel must be odd, got {}", self.stem_deep_kernel));
        }
        Ok(())
    }

    /// Checks everything, including what the data set.
    pub fn validate(&self) -> Result<(), String> {
        self.validate_settings()?;
        // Here, not in validate_settings: the patch may be chosen from the
        // data after the user gave the pool.
        if !self.patch.is_multiple_of(self.conv_pool) {
            return Err(format!("conv_pool must divide patch ({}), got {}", self.patch, self.conv_pool));
        }
        if self.dims == 0 {
            return Err("dims must be at least 1 (set from the data)".into());
        }
        if self.conv_members > 0 && self.stem == 0 {
            return Err(format!("conv_members ({}) needs a convolutional stem: set `stem` above 0", self.conv_members));
        }
        match self.target {
            Target::Unlabelled => return Err("a model needs labelled training data".into()),
            Target::VectorClass if self.patch > 1 => {
                return Err(format!("`patch` {} joins vectors, but this data has one label per vector: use `patch` 1", self.patch))
            }
            Target::SequenceValue if self.outputs != 1 => return Err("a regression model has one output".into()),
            _ if self.outputs == 0 => return Err("outputs must be at least 1 (set from the data)".into()),
            _ => {}
        }
        let n = self.parameter_count();
        if n > MAX_PARAMETERS {
            return Err(format!("this model would have {n} parameters; attend refuses more than {MAX_PARAMETERS} (4 GiB) up front"));
        }
        Ok(())
    }

    /// Members with attention layers (the first ones of the ensemble).
    pub fn attention_members(&self) -> usize {
        self.members.saturating_sub(self.conv_members)
    }

    /// Why this model has no attention weights to show (no attention
    /// layers, or no member with them), or `None` when it has some.
    pub fn no_attention(&self) -> Option<&'static str> {
        if self.encoder.layers == 0 {
            Some("this model has no attention layers (`layers` 0: its stem's features are averaged), so no attention weights to show")
        } else if self.attention_members() == 0 {
            Some("every member of this ensemble is convolutional (`conv_members` = `members`): no attention weights to show")
        } else {
            None
        }
    }

    /// The architecture of member `k`: this one, or for a convolutional
    /// member the stem with at least [`CONV_MEMBER_STEM_LAYERS`] layers and
    /// no attention layers (as a network alone: one member).
    pub fn member(&self, k: usize) -> SequenceConfig {
        let one = SequenceConfig { members: 1, conv_members: 0, ..self.clone() };
        if k < self.attention_members() {
            return one;
        }
        SequenceConfig {
            stem_layers: self.stem_layers.max(CONV_MEMBER_STEM_LAYERS),
            encoder: EncoderConfig { layers: 0, ..self.encoder.clone() },
            ..one
        }
    }

    /// Trainable scalars (in u128: fits any config).
    pub fn parameter_count(&self) -> u128 {
        // The members are the attention ones, then the convolutional ones.
        (0..self.members).map(|k| self.member(k).network_parameter_count()).sum()
    }

    /// Trainable scalars of one copy of this network (stem, encoder, head).
    fn network_parameter_count(&self) -> u128 {
        let head = (self.encoder.d_model as u128 + 1) * self.outputs as u128;
        let stem = if self.stem > 0 {
            let first = (self.slot_width() as u128 + 1) * self.stem as u128;
            // Each further layer: its convolution and its norm's gain and shift.
            let deep = (self.stem_deep_kernel as u128 * self.stem as u128 + 3) * self.stem as u128;
            first + deep * (self.stem_layers as u128 - 1)
        } else {
            0
        };
        self.encoder.parameter_count(self.encoder_input_width()) + head + stem
    }
}

/// Both tables of a sequence model config. `[train]` uses [`TrainConfig`]
/// with the defaults of [`SequenceSettings::train_defaults`] (small data
/// sets: more epochs, smaller batches, no word dropout).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SequenceSettings {
    pub model: SequenceConfig,
    pub train: TrainConfig,
}

impl Default for SequenceSettings {
    fn default() -> Self {
        SequenceSettings { model: SequenceConfig::default(), train: Self::train_defaults() }
    }
}

impl SequenceSettings {
    /// Training defaults for vector sequences.
    pub fn train_defaults() -> TrainConfig {
        TrainConfig { epochs: 100, batch_tokens: 2048, warmup_steps: 100, word_dropout: 0.0, weight_decay: 0.05, ..TrainConfig::default() }
    }
}

impl Settings for SequenceSettings {
    fn validate(&self) -> Result<(), String> {
        self.model.validate_settings()?;
        self.train.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_models_do_not_drop_their_inputs_unless_told() {
        let c = SequenceConfig::default();
        assert_eq!((c.encoder.input_dropout(), c.encoder.dropout), (0.0, 0.1));
        // A user's value wins; a config written before the key existed
        // (none in the file) drops inputs as before, at `dropout`.
        let given: SequenceConfig = serde_json::from_str(r#"{"input_dropout": 0.3}"#).unwrap();
        assert_eq!(given.encoder.input_dropout(), 0.3);
        let old: SequenceConfig = serde_json::from_str(r#"{"dropout": 0.2}"#).unwrap();
        assert_eq!((old.encoder.input_dropout, old.encoder.input_dropout()), (None, 0.2));
        let tagger = EncoderConfig::default();
        assert_eq!(tagger.input_dropout(), tagger.dropout);
        let bad = SequenceConfig { encoder: EncoderConfig { input_dropout: Some(1.0), ..c.encoder.clone() }, ..c };
        assert!(bad.validate_settings().unwrap_err().contains("input_dropout"));
    }
}
