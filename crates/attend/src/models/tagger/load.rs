//! A tagger in a checkpoint: its config, `vocab.json` and weights.

use super::config::TaggerConfig;
use super::Tagger;
use crate::checkpoint::{self, Checkpoint, CheckpointConfig, Contents, ModelKind, Saved};
use crate::config::TrainConfig;
use crate::data::vocab::TaggerVocab;
use crate::error::{Error, Result};
use std::path::Path;

/// A loaded tagger with its vocabularies and the settings it was trained with.
pub struct LoadedTagger {
    pub model: Tagger,
    pub vocab: TaggerVocab,
    pub train: Option<TrainConfig>,
}

impl Tagger {
    /// What a checkpoint of this tagger holds besides its weights.
    pub fn contents(&self, vocab: &TaggerVocab, train: Option<&TrainConfig>) -> Result<Contents> {
        let vocab = serde_json::to_vec_pretty(vocab).map_err(|e| Error::Input(format!("vocabulary: {e}")))?;
        Ok(Contents { config: CheckpointConfig::Tagger(Saved::new(self.config.clone(), train.cloned())), extras: vec![("vocab.json", vocab)] })
    }
}

/// The tagger settings of a checkpoint config (`path` names it in errors).
fn tagger_settings(path: &Path, config: CheckpointConfig) -> Result<(TaggerConfig, Option<TrainConfig>)> {
    match config {
        CheckpointConfig::Tagger(s) => Ok((s.model, s.train)),
        other => Err(checkpoint::ck_err(path, format!("holds a {} model, not a tagger", other.kind()))),
    }
}

/// Loads a tagger from `dir`, checking that config, vocabulary and weights agree.
pub fn load_tagger(dir: &Path) -> Result<LoadedTagger> {
    load_from(&checkpoint::open(dir, ModelKind::Tagger)?)
}

/// [`load_tagger`] from an opened checkpoint.
pub fn load_from(ck: &Checkpoint) -> Result<LoadedTagger> {
    let (model, train) = tagger_settings(&ck.dir, ck.config.clone())?;
    let (model, vocab) = build(&ck.dir, model, &ck.read("vocab.json")?)?;
    ck.load_weights(&model.params)?;
    Ok(LoadedTagger { model, vocab, train })
}

/// The tagger a config describes, checked against its vocabulary (`vocab.json`'s bytes).
fn build(dir: &Path, config: TaggerConfig, vocab: &[u8]) -> Result<(Tagger, TaggerVocab)> {
    let vocab_path = dir.join("vocab.json");
    let vocab: TaggerVocab = serde_json::from_slice(vocab).map_err(|e| Error::Parse { path: vocab_path.clone(), line: e.line(), message: e.to_string() })?;
    for (in_config, (what, in_vocab)) in config.sizes().into_iter().zip(vocab.sizes()) {
        if in_config != in_vocab {
            return Err(checkpoint::ck_err(dir, format!("config.json says {in_config} {what} but vocab.json has {in_vocab}")));
        }
    }
    if vocab.word_counts.len() != vocab.words.len() {
        return Err(checkpoint::ck_err(&vocab_path, "word_counts and words differ in length"));
    }
    let sizes: Vec<usize> = vocab.columns().iter().map(|&c| vocab.column(c).map_or(0, |v| v.len())).collect();
    for combo in vocab.combinations.iter().flatten() {
        if combo.len() != sizes.len() || combo.iter().zip(&sizes).any(|(&i, &n)| i as usize >= n) {
            return Err(checkpoint::ck_err(&vocab_path, format!("label combination {combo:?} does not fit the label tables")));
        }
    }
    let model = Tagger::new(config, 0).map_err(|e| checkpoint::ck_err(&dir.join("config.json"), e.to_string()))?;
    Ok((model, vocab))
}

/// [`load_tagger`] from the three files' contents; `dir` only names them
/// in errors. Any bytes give a tagger or an error, never a panic (fuzzed).
pub fn tagger_from_bytes(dir: &Path, config: &[u8], vocab: &[u8], weights: &[u8]) -> Result<LoadedTagger> {
    let parsed = checkpoint::parse_config(&dir.join("config.json"), config, ModelKind::Tagger)?;
    let (model, train) = tagger_settings(dir, parsed)?;
    let (model, vocab) = build(dir, model, vocab)?;
    checkpoint::load_weights_from(&dir.join("model.safetensors"), weights, &model.params)?;
    Ok(LoadedTagger { model, vocab, train })
}
