//! The tagger's architecture, saved as the `model` of its `config.json`.

use crate::config::{Settings, TrainConfig, MAX_PARAMETERS};
use crate::data::vocab::TaggerVocab;
use crate::nn::sequence::EncoderConfig;
use serde::{Deserialize, Serialize};

/// Architecture of a tagger: the shared encoder's settings, then the word
/// front end's and the table sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaggerConfig {
    /// What relates the words (keys flat beside the others: `d_model`, ...).
    #[serde(flatten)]
    pub encoder: EncoderConfig,
    pub word_dim: usize,
    pub char_dim: usize,
    pub char_filters: usize,
    pub char_kernel: usize,
    /// Longer words keep their first and last `max_word_chars / 2` characters.
    pub max_word_chars: usize,
    /// Vocabulary sizes (set from the data when training starts).
    pub words: usize,
    pub chars: usize,
    pub tags: usize,
    /// XPOS labels; 0: no XPOS head.
    pub xpos_tags: usize,
    /// Distinct FEATS strings; 0: no FEATS head.
    pub feats_tags: usize,
}

impl Default for TaggerConfig {
    fn default() -> Self {
        TaggerConfig {
            encoder: EncoderConfig::default(),
            word_dim: 128,
            char_dim: 48,
            char_filters: 192,
            char_kernel: 3,
            max_word_chars: 20,
            words: 0,
            chars: 0,
            tags: 0,
            xpos_tags: 0,
            feats_tags: 0,
        }
    }
}

impl TaggerConfig {
    /// This architecture with the table sizes of `vocab` (words, chars and
    /// the labels of each predicted column).
    pub fn sized_for(self, vocab: &TaggerVocab) -> Self {
        let [words, chars, tags, xpos_tags, feats_tags] = vocab.sizes().map(|(_, n)| n);
        TaggerConfig { words, chars, tags, xpos_tags, feats_tags, ..self }
    }

    /// The table sizes, in the order of [`TaggerVocab::sizes`].
    pub fn sizes(&self) -> [usize; 5] {
        [self.words, self.chars, self.tags, self.xpos_tags, self.feats_tags]
    }

    /// Checks the numbers fit together; the message names the setting.
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.encoder.validate()?;
        if self.char_kernel.is_multiple_of(2) {
            return Err(format!("char_kernel must be odd, got {}", self.char_kernel));
        }
        if self.max_word_chars < 2 {
            return Err("max_word_chars must be >= 2".into());
        }
        let n = self.parameter_count();
        if n > MAX_PARAMETERS {
            return Err(format!(
                "this model would have {n} parameters ({:.1} GiB as f32); attend refuses more than {MAX_PARAMETERS} (4 GiB) up front",
                n as f64 * 4.0 / (1u64 << 30) as f64
            ));
        }
        Ok(())
    }

    /// Number of trainable scalars (computed in u128: fits any config).
    pub fn parameter_count(&self) -> u128 {
        let tags = (self.tags + self.xpos_tags + self.feats_tags) as u128;
        let [words, chars, d] = [self.words, self.chars, self.encoder.d_model].map(|x| x as u128);
        let [wd, cd, filters, kernel] = [self.word_dim, self.char_dim, self.char_filters, self.char_kernel].map(|x| x as u128);
        let front = words * wd + chars * cd + kernel * cd * filters + filters;
        front + self.encoder.parameter_count(self.word_dim + self.char_filters) + d * tags + tags
    }
}

/// Both tables of a tagger config.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TaggerSettings {
    pub model: TaggerConfig,
    pub train: TrainConfig,
}

impl Settings for TaggerSettings {
    fn validate(&self) -> Result<(), String> {
        self.model.validate()?;
        self.train.validate()
    }
}
