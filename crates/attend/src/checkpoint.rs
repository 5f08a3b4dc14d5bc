//! Checkpoints: a directory holding
//! - `model.safetensors`: the parameters, by name;
//! - `config.json`: the architecture and training settings;
//! - `vocab.json`: words, characters and tags;
//! - `optimizer.safetensors`: AdamW moments (`m.NAME`, `v.NAME`) and `step`,
//!   when saved from training.
//!
//! Writes are atomic: everything goes to a sibling temporary directory that
//! then replaces the old checkpoint, so a crash leaves the old or the new
//! checkpoint, never a mix.

use crate::data::vocab::TaggerVocab;
use crate::error::{Error, Result};
use crate::models::tagger::{Tagger, TaggerConfig};
use crate::nn::ParamStore;
use crate::train::{AdamW, TrainConfig};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Contents of `config.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// What kind of model this is ("tagger").
    pub kind: String,
    /// attend version that wrote it.
    pub version: String,
    pub model: TaggerConfig,
    pub train: Option<TrainConfig>,
}

pub(crate) fn ck_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Checkpoint { path: path.to_path_buf(), message: message.into() }
}

pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| ck_err(path, e.to_string()))?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "checkpoint".into());
    dir.with_file_name(format!(".{name}.{suffix}-{}", std::process::id()))
}

/// Writes a checkpoint directory atomically: `fill` writes the files into a
/// sibling temporary directory, which then replaces `dir`.
pub(crate) fn write_atomically(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let tmp = sibling(dir, "tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    fill(&tmp)?;
    // Swap: old -> backup, tmp -> dir, drop backup.
    let backup = sibling(dir, "old");
    if dir.exists() {
        std::fs::rename(dir, &backup).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e))?;
    if backup.exists() {
        std::fs::remove_dir_all(&backup).map_err(|e| Error::io(&backup, e))?;
    }
    Ok(())
}

/// Writes `model.safetensors` from a parameter store.
pub(crate) fn save_weights(dir: &Path, params: &ParamStore) -> Result<()> {
    let weights: HashMap<String, Tensor> = params.snapshot()?.into_iter().collect();
    let path = dir.join("model.safetensors");
    candle_core::safetensors::save(&weights, &path).map_err(|e| ck_err(&path, e.to_string()))
}

/// Loads `model.safetensors` into a parameter store built from the config.
pub(crate) fn load_weights(dir: &Path, params: &ParamStore) -> Result<()> {
    let path = dir.join("model.safetensors");
    if !path.exists() {
        return Err(ck_err(&path, "missing"));
    }
    let weights: BTreeMap<String, Tensor> = candle_core::safetensors::load(&path, &Device::Cpu)
        .map_err(|e| ck_err(&path, e.to_string()))?
        .into_iter()
        .collect();
    params.load(&weights).map_err(|e| ck_err(&path, format!("does not match config.json: {e}")))
}

/// Saves a tagger (and optionally its optimizer state) to `dir`, atomically.
pub fn save_tagger(dir: &Path, model: &Tagger, vocab: &TaggerVocab, train: &TrainConfig, opt: Option<&AdamW>) -> Result<()> {
    write_atomically(dir, |tmp| {
        save_weights(tmp, &model.params)?;
        let config = CheckpointConfig {
            kind: "tagger".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            model: model.config.clone(),
            train: Some(train.clone()),
        };
        write_json(&tmp.join("config.json"), &config)?;
        write_json(&tmp.join("vocab.json"), vocab)?;
        if let Some(opt) = opt {
            let mut state: HashMap<String, Tensor> = HashMap::new();
            let dev = Device::Cpu;
            for (name, m) in &opt.m {
                state.insert(format!("m.{name}"), Tensor::from_slice(m, m.len(), &dev)?);
            }
            for (name, v) in &opt.v {
                state.insert(format!("v.{name}"), Tensor::from_slice(v, v.len(), &dev)?);
            }
            state.insert("step".into(), Tensor::new(&[opt.step as u32], &dev)?);
            let path = tmp.join("optimizer.safetensors");
            candle_core::safetensors::save(&state, &path).map_err(|e| ck_err(&path, e.to_string()))?;
        }
        Ok(())
    })
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Parse { path: path.to_path_buf(), line: e.line(), message: e.to_string() })
}

/// A loaded tagger with its vocabularies.
pub struct LoadedTagger {
    pub model: Tagger,
    pub vocab: TaggerVocab,
    pub config: CheckpointConfig,
}

/// Loads a tagger from `dir`, checking that config, vocabulary and weights agree.
pub fn load_tagger(dir: &Path) -> Result<LoadedTagger> {
    if !dir.is_dir() {
        return Err(ck_err(dir, "not a directory (expected model.safetensors, config.json and vocab.json inside)"));
    }
    let config_path = dir.join("config.json");
    let config: CheckpointConfig = read_json(&config_path)?;
    if config.kind != "tagger" {
        return Err(ck_err(&config_path, format!("holds a {:?} model, not a tagger", config.kind)));
    }
    let vocab_path = dir.join("vocab.json");
    let vocab: TaggerVocab = read_json(&vocab_path)?;
    let m = &config.model;
    for (what, in_config, in_vocab) in [("words", m.words, vocab.words.len()), ("chars", m.chars, vocab.chars.len()), ("tags", m.tags, vocab.tags.len())] {
        if in_config != in_vocab {
            return Err(ck_err(dir, format!("config.json says {in_config} {what} but vocab.json has {in_vocab}")));
        }
    }
    if vocab.word_counts.len() != vocab.words.len() {
        return Err(ck_err(&vocab_path, "word_counts and words differ in length"));
    }
    let model = Tagger::new(config.model.clone(), 0).map_err(|e| ck_err(&config_path, e.to_string()))?;
    load_weights(dir, &model.params)?;
    Ok(LoadedTagger { model, vocab, config })
}
