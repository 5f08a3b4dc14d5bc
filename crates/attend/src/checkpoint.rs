//! Checkpoints: a directory holding
//! - `model.safetensors`: the parameters, by name;
//! - `config.json`: the architecture and training settings;
//! - `vocab.json`: words, characters and tags;
//! - `resume/` (written by training): the latest weights
//!   (`model.safetensors`), AdamW moments (`optimizer.safetensors`:
//!   `m.NAME`, `v.NAME`, `step`) and `state.json` (epoch, batch, random
//!   generator states, best-so-far), so `attend train tagger --resume DIR`
//!   continues exactly where the run stopped.
//!
//! Writes are atomic: everything goes to a sibling temporary directory that
//! then replaces the old checkpoint, so a crash leaves the old or the new
//! checkpoint, never a mix.

use crate::data::vocab::TaggerVocab;
use crate::error::{Error, Result};
use crate::models::tagger::{Tagger, TaggerConfig};
use crate::nn::ParamStore;
use crate::train::{AdamW, RunState, TrainConfig};
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
    save_weight_map(dir, &params.snapshot()?)
}

/// Writes `model.safetensors` from named tensors.
fn save_weight_map(dir: &Path, weights: &BTreeMap<String, Tensor>) -> Result<()> {
    let weights: HashMap<String, Tensor> = weights.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let path = dir.join("model.safetensors");
    candle_core::safetensors::save(&weights, &path).map_err(|e| ck_err(&path, e.to_string()))
}

/// Writes `optimizer.safetensors`: the AdamW moments `m.NAME`, `v.NAME` and `step`.
fn save_optimizer(dir: &Path, opt: &AdamW) -> Result<()> {
    let mut state: HashMap<String, Tensor> = HashMap::new();
    let dev = Device::Cpu;
    for (name, m) in &opt.m {
        state.insert(format!("m.{name}"), Tensor::from_slice(m, m.len(), &dev)?);
    }
    for (name, v) in &opt.v {
        state.insert(format!("v.{name}"), Tensor::from_slice(v, v.len(), &dev)?);
    }
    // the step as two u32 halves (safetensors has no u64 in candle)
    state.insert("step".into(), Tensor::new(&[opt.step as u32, (opt.step >> 32) as u32], &dev)?);
    let path = dir.join("optimizer.safetensors");
    candle_core::safetensors::save(&state, &path).map_err(|e| ck_err(&path, e.to_string()))
}

/// Reads what [`save_optimizer`] wrote.
fn load_optimizer(dir: &Path) -> Result<AdamW> {
    let path = dir.join("optimizer.safetensors");
    let tensors = candle_core::safetensors::load(&path, &Device::Cpu).map_err(|e| ck_err(&path, e.to_string()))?;
    let mut opt = AdamW::default();
    for (key, t) in tensors {
        let bad = |e: candle_core::Error| ck_err(&path, format!("{key}: {e}"));
        if key == "step" {
            let halves = t.to_vec1::<u32>().map_err(bad)?;
            opt.step = halves.first().copied().unwrap_or(0) as u64 | (halves.get(1).copied().unwrap_or(0) as u64) << 32;
        } else if let Some(name) = key.strip_prefix("m.") {
            opt.m.insert(name.to_string(), t.to_vec1::<f32>().map_err(bad)?);
        } else if let Some(name) = key.strip_prefix("v.") {
            opt.v.insert(name.to_string(), t.to_vec1::<f32>().map_err(bad)?);
        } else {
            return Err(ck_err(&path, format!("unexpected tensor {key}")));
        }
    }
    Ok(opt)
}

/// Saves a training run: the best weights so far at the top level (what
/// `load_tagger` reads) and, in `resume/`, the current weights, optimizer
/// state and [`RunState`], all in one atomic swap of `dir`.
#[allow(clippy::too_many_arguments)]
pub fn save_training(
    dir: &Path,
    model: &Tagger,
    best: &BTreeMap<String, Tensor>,
    vocab: &TaggerVocab,
    train: &TrainConfig,
    opt: &AdamW,
    state: &RunState,
) -> Result<()> {
    write_atomically(dir, |tmp| {
        save_weight_map(tmp, best)?;
        write_json(&tmp.join("config.json"), &tagger_config(model, train))?;
        write_json(&tmp.join("vocab.json"), vocab)?;
        let resume = tmp.join("resume");
        std::fs::create_dir_all(&resume).map_err(|e| Error::io(&resume, e))?;
        save_weights(&resume, &model.params)?;
        save_optimizer(&resume, opt)?;
        write_json(&resume.join("state.json"), state)
    })
}

/// A run to continue: the model at its last weights, the best weights so
/// far, and everything else [`save_training`] wrote.
pub struct Resume {
    pub model: Tagger,
    pub best: BTreeMap<String, Tensor>,
    pub vocab: TaggerVocab,
    pub train: TrainConfig,
    pub opt: AdamW,
    pub state: RunState,
}

/// Loads a run saved by [`save_training`] from `dir`.
pub fn load_training(dir: &Path) -> Result<Resume> {
    let resume = dir.join("resume");
    if !resume.join("state.json").exists() {
        return Err(ck_err(dir, "has no resume/state.json: it was not written by attend train tagger (or by an older version)"));
    }
    let best = load_tagger(dir)?;
    let train = best.config.train.clone().ok_or_else(|| ck_err(&dir.join("config.json"), "has no [train] settings to resume with"))?;
    let model = Tagger::new(best.config.model.clone(), 0).map_err(|e| ck_err(&dir.join("config.json"), e.to_string()))?;
    load_weights(&resume, &model.params)?;
    let opt = load_optimizer(&resume)?;
    let state: RunState = read_json(&resume.join("state.json"))?;
    Ok(Resume { best: best.model.params.snapshot()?, model, vocab: best.vocab, train, opt, state })
}

fn tagger_config(model: &Tagger, train: &TrainConfig) -> CheckpointConfig {
    CheckpointConfig { kind: "tagger".into(), version: env!("CARGO_PKG_VERSION").into(), model: model.config.clone(), train: Some(train.clone()) }
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
        write_json(&tmp.join("config.json"), &tagger_config(model, train))?;
        write_json(&tmp.join("vocab.json"), vocab)?;
        match opt {
            Some(opt) => save_optimizer(tmp, opt),
            None => Ok(()),
        }
    })
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Parse { path: path.to_path_buf(), line: e.line(), message: e.to_string() })
}

/// What a checkpoint directory holds: `"tagger"` or `"graph"` (the `kind`
/// of its `config.json`).
pub fn kind(dir: &Path) -> Result<String> {
    #[derive(Deserialize)]
    struct Kind {
        kind: String,
    }
    let path = dir.join("config.json");
    let bytes = read_file(dir, "config.json")?;
    let k: Kind = serde_json::from_slice(&bytes).map_err(|e| Error::Parse { path, line: e.line(), message: e.to_string() })?;
    Ok(k.kind)
}

/// Parses a checkpoint's `config.json` (read from `path`) after checking
/// its `kind` alone, so that a checkpoint of another kind is named as such
/// rather than reported as unknown fields.
pub(crate) fn parse_config<T: serde::de::DeserializeOwned>(path: &Path, bytes: &[u8], want: &str) -> Result<T> {
    #[derive(Deserialize)]
    struct Kind {
        kind: String,
    }
    let json_err = |e: serde_json::Error| Error::Parse { path: path.to_path_buf(), line: e.line(), message: e.to_string() };
    let k: Kind = serde_json::from_slice(bytes).map_err(json_err)?;
    if k.kind != want {
        let use_ = match k.kind.as_str() {
            "graph" => " (use attend eval graph)",
            "tagger" => " (use attend eval tagger, attend tag)",
            _ => "",
        };
        return Err(ck_err(path, format!("holds a {:?} model, not a {want} model{use_}", k.kind)));
    }
    serde_json::from_slice(bytes).map_err(json_err)
}

/// Reads a file of a checkpoint directory.
pub(crate) fn read_file(dir: &Path, name: &str) -> Result<Vec<u8>> {
    let path = dir.join(name);
    std::fs::read(&path).map_err(|e| Error::io(path, e))
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
    let read = |name: &str| read_file(dir, name);
    tagger_from_bytes(dir, &read("config.json")?, &read("vocab.json")?, &read("model.safetensors")?)
}

/// [`load_tagger`] from the three files' contents; `dir` only names them
/// in errors. Any bytes give a tagger or an error, never a panic (fuzzed).
pub fn tagger_from_bytes(dir: &Path, config: &[u8], vocab: &[u8], weights: &[u8]) -> Result<LoadedTagger> {
    let json_err = |name: &str, e: serde_json::Error| Error::Parse { path: dir.join(name), line: e.line(), message: e.to_string() };
    let config: CheckpointConfig = parse_config(&dir.join("config.json"), config, "tagger")?;
    let vocab: TaggerVocab = serde_json::from_slice(vocab).map_err(|e| json_err("vocab.json", e))?;
    let m = &config.model;
    for (what, in_config, in_vocab) in [("words", m.words, vocab.words.len()), ("chars", m.chars, vocab.chars.len()), ("tags", m.tags, vocab.tags.len())] {
        if in_config != in_vocab {
            return Err(ck_err(dir, format!("config.json says {in_config} {what} but vocab.json has {in_vocab}")));
        }
    }
    if vocab.word_counts.len() != vocab.words.len() {
        return Err(ck_err(&dir.join("vocab.json"), "word_counts and words differ in length"));
    }
    let config_path = dir.join("config.json");
    let model = Tagger::new(config.model.clone(), 0).map_err(|e| ck_err(&config_path, e.to_string()))?;
    let path = dir.join("model.safetensors");
    let tensors: BTreeMap<String, Tensor> = candle_core::safetensors::load_buffer(weights, &Device::Cpu)
        .map_err(|e| ck_err(&path, e.to_string()))?
        .into_iter()
        .collect();
    model.params.load(&tensors).map_err(|e| ck_err(&path, format!("does not match config.json: {e}")))?;
    Ok(LoadedTagger { model, vocab, config })
}
