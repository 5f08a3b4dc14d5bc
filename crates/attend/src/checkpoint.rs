//! Checkpoints, one format for every kind of model: a directory holding
//! - `config.json`: a [`CheckpointConfig`], tagged by `kind` (`"tagger"`,
//!   `"graph"`, `"sequence"`), with the architecture and the training settings;
//! - `model.safetensors`: the parameters, by name;
//! - the extra files a kind declares ([`ModelKind::extra_files`]: the
//!   tagger's `vocab.json`, a sequence model's `data.json`);
//! - `resume/` (written by training): the latest weights
//!   (`model.safetensors`), the AdamW state (`optimizer.safetensors`:
//!   `m.NAME`, `v.NAME`, `step`) and `state.json` (epoch, batch, random
//!   generator states, best so far), so `attend train ... --resume DIR`
//!   continues exactly where the run stopped.
//!
//! Writes are atomic: everything goes to a sibling temporary directory that
//! then replaces the old checkpoint, so a crash leaves the old or the new
//! checkpoint, never a mix.

use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::models::graph::config::{GraphModelConfig, GraphTrainConfig};
use crate::models::segmenter::SegmenterConfig;
use crate::models::sequence::config::SequenceConfig;
use crate::models::tagger::config::TaggerConfig;
use crate::nn::ParamStore;
use crate::optim::AdamW;
use candle_core::{Device, Tensor};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// What a checkpoint holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// A part-of-speech tagger (`attend train tagger`).
    Tagger,
    /// A graph attention node classifier (`attend train graph`).
    Graph,
    /// A model over vector sequences (`attend train sequence`).
    Sequence,
    /// A raw-text segmenter (`attend train segmenter`; kept in a tagger's
    /// directory as `segmenter/`).
    Segmenter,
}

impl ModelKind {
    /// Files besides `config.json` and `model.safetensors` a checkpoint of this kind holds.
    pub fn extra_files(self) -> &'static [&'static str] {
        match self {
            ModelKind::Tagger => &["vocab.json"],
            ModelKind::Graph => &[],
            ModelKind::Sequence => &["data.json"],
            ModelKind::Segmenter => &["segmenter.json"],
        }
    }

    /// The commands that use such a model (for error messages).
    pub fn commands(self) -> &'static str {
        match self {
            ModelKind::Tagger => "attend eval tagger, attend tag",
            ModelKind::Graph => "attend eval graph",
            ModelKind::Sequence => "attend eval, attend predict",
            ModelKind::Segmenter => "attend tag (from the tagger's directory)",
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModelKind::Tagger => "tagger",
            ModelKind::Graph => "graph",
            ModelKind::Sequence => "sequence",
            ModelKind::Segmenter => "segmenter",
        })
    }
}

/// Contents of `config.json`: the kind, then that kind's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum CheckpointConfig {
    Tagger(Saved<TaggerConfig, Option<TrainConfig>>),
    Graph(Saved<GraphModelConfig, GraphTrainConfig>),
    Sequence(Saved<SequenceConfig, TrainConfig>),
    Segmenter(Saved<SegmenterConfig, TrainConfig>),
}

/// The settings of one kind of model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Saved<M, T> {
    /// attend version that wrote it.
    pub version: String,
    pub model: M,
    pub train: T,
}

impl<M, T> Saved<M, T> {
    /// Settings written by this version of attend.
    pub fn new(model: M, train: T) -> Self {
        Saved { version: env!("CARGO_PKG_VERSION").into(), model, train }
    }
}

impl CheckpointConfig {
    pub fn kind(&self) -> ModelKind {
        match self {
            CheckpointConfig::Tagger(_) => ModelKind::Tagger,
            CheckpointConfig::Graph(_) => ModelKind::Graph,
            CheckpointConfig::Sequence(_) => ModelKind::Sequence,
            CheckpointConfig::Segmenter(_) => ModelKind::Segmenter,
        }
    }
}

/// What a model puts in its checkpoint besides the weights.
pub struct Contents {
    pub config: CheckpointConfig,
    /// `(file name, bytes)`, one per [`ModelKind::extra_files`] entry.
    pub extras: Vec<(&'static str, Vec<u8>)>,
}

/// What training adds to a checkpoint under `resume/`.
pub struct ResumeFiles<'a, S> {
    /// The weights now (the top level holds the best ones).
    pub weights: &'a BTreeMap<String, Tensor>,
    pub optimizer: &'a AdamW,
    /// The loop's state (`state.json`).
    pub state: &'a S,
}

pub(crate) fn ck_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Checkpoint { path: path.to_path_buf(), message: message.into() }
}

fn json_err(path: &Path, e: serde_json::Error) -> Error {
    Error::Parse { path: path.to_path_buf(), line: e.line(), message: e.to_string() }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| ck_err(path, e.to_string()))?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

fn write_tensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    candle_core::safetensors::save(tensors, path).map_err(|e| ck_err(path, e.to_string()))
}

fn weight_map(weights: &BTreeMap<String, Tensor>) -> HashMap<String, Tensor> {
    weights.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "checkpoint".into());
    dir.with_file_name(format!(".{name}.{suffix}-{}", std::process::id()))
}

/// Subdirectories holding models that belong with this one: a save keeps them.
const COMPANIONS: &[&str] = &["segmenter"];

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| Error::io(from, e))? {
        let entry = entry.map_err(|e| Error::io(from, e))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| Error::io(&src, e))?;
        }
    }
    Ok(())
}

/// Writes a checkpoint directory atomically: `fill` writes the files into a
/// sibling temporary directory, which then replaces `dir`.
fn write_atomically(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    // The swap below moves what is at `dir` aside: never a file or a device.
    if dir.exists() && !dir.is_dir() {
        return Err(ck_err(dir, "exists and is not a directory; a model is saved as a directory"));
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let tmp = sibling(dir, "tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    fill(&tmp)?;
    // Models kept inside this one (a tagger's segmenter) are copied over.
    for name in COMPANIONS {
        let (from, to) = (dir.join(name), tmp.join(name));
        if from.join("config.json").is_file() && !to.exists() {
            copy_dir(&from, &to)?;
        }
    }
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

/// Saves a model to `dir` in one atomic swap: `weights` at the top level
/// (what loading reads), the model's config and extra files, and with
/// `resume`, what training needs to continue.
pub fn save<S: Serialize>(dir: &Path, contents: &Contents, weights: &BTreeMap<String, Tensor>, resume: Option<ResumeFiles<S>>) -> Result<()> {
    let kind = contents.config.kind();
    let declared: Vec<&str> = contents.extras.iter().map(|(name, _)| *name).collect();
    if declared != kind.extra_files() {
        return Err(ck_err(dir, format!("a {kind} checkpoint holds {:?}, got {declared:?} (a bug)", kind.extra_files())));
    }
    write_atomically(dir, |tmp| {
        write_tensors(&tmp.join("model.safetensors"), &weight_map(weights))?;
        write_json(&tmp.join("config.json"), &contents.config)?;
        for (name, bytes) in &contents.extras {
            let path = tmp.join(name);
            std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))?;
        }
        if let Some(r) = resume {
            let dir = tmp.join("resume");
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            write_tensors(&dir.join("model.safetensors"), &weight_map(r.weights))?;
            write_tensors(&dir.join("optimizer.safetensors"), &r.optimizer.to_tensors()?)?;
            write_json(&dir.join("state.json"), r.state)?;
        }
        Ok(())
    })
}

/// Saves a trained model (its current weights, no training state) to `dir`, atomically.
pub fn save_model(dir: &Path, contents: &Contents, params: &ParamStore) -> Result<()> {
    save::<()>(dir, contents, &params.snapshot()?, None)
}

/// The `kind` of a `config.json` (its bytes, read from `path`), read alone,
/// so that a checkpoint of another or an unknown kind is named as such
/// rather than reported as unknown fields.
fn kind_of(path: &Path, bytes: &[u8]) -> Result<ModelKind> {
    #[derive(Deserialize)]
    struct Kind {
        kind: String,
    }
    let k: Kind = serde_json::from_slice(bytes).map_err(|e| json_err(path, e))?;
    serde_json::from_value(serde_json::Value::String(k.kind.clone()))
        .map_err(|_| ck_err(path, format!("holds an unknown kind of model {:?} (this attend reads \"tagger\", \"graph\", \"sequence\" and \"segmenter\")", k.kind)))
}

/// Parses `config.json` (its bytes, read from `path`), checking first that
/// it holds a `want` model. Any bytes give a config or an error, never a
/// panic (fuzzed).
pub fn parse_config(path: &Path, bytes: &[u8], want: ModelKind) -> Result<CheckpointConfig> {
    match kind_of(path, bytes)? {
        kind if kind == want => serde_json::from_slice(bytes).map_err(|e| json_err(path, e)),
        kind => Err(ck_err(path, format!("holds a {:?} model, not a {want} model (use {})", kind.to_string(), kind.commands()))),
    }
}

/// Sets `params` from safetensors `bytes` (the contents of `path`), which
/// must hold exactly the parameters the config builds.
pub fn load_weights_from(path: &Path, bytes: &[u8], params: &ParamStore) -> Result<()> {
    let tensors: BTreeMap<String, Tensor> =
        candle_core::safetensors::load_buffer(bytes, &Device::Cpu).map_err(|e| ck_err(path, e.to_string()))?.into_iter().collect();
    params.load(&tensors).map_err(|e| ck_err(path, format!("does not match config.json: {e}")))
}

/// A checkpoint directory whose `config.json` has been read.
#[derive(Debug)]
pub struct Checkpoint {
    pub dir: PathBuf,
    pub config: CheckpointConfig,
}

/// What a checkpoint directory holds (the `kind` of its `config.json`).
pub fn kind(dir: &Path) -> Result<ModelKind> {
    kind_of(&dir.join("config.json"), &read_file(dir, "config.json")?)
}

fn read_file(dir: &Path, name: &str) -> Result<Vec<u8>> {
    let path = dir.join(name);
    std::fs::read(&path).map_err(|e| Error::io(path, e))
}

/// Opens the checkpoint in `dir`, which must hold a `want` model.
pub fn open(dir: &Path, want: ModelKind) -> Result<Checkpoint> {
    if !dir.is_dir() {
        let files: Vec<&str> = ["model.safetensors", "config.json"].into_iter().chain(want.extra_files().iter().copied()).collect();
        return Err(ck_err(dir, format!("not a directory (expected {} inside)", files.join(", "))));
    }
    let config = parse_config(&dir.join("config.json"), &read_file(dir, "config.json")?, want)?;
    Ok(Checkpoint { dir: dir.to_path_buf(), config })
}

/// What `resume/` holds besides the weights.
pub struct Resumed<S> {
    pub optimizer: AdamW,
    pub state: S,
}

impl Checkpoint {
    /// The bytes of a file of the checkpoint.
    pub fn read(&self, name: &str) -> Result<Vec<u8>> {
        read_file(&self.dir, name)
    }

    /// Loads the top-level weights (the best model) into `params`.
    pub fn load_weights(&self, params: &ParamStore) -> Result<()> {
        load_weights_from(&self.dir.join("model.safetensors"), &self.read("model.safetensors")?, params)
    }

    /// Reads `resume/`: its weights go into `params` (built from the
    /// config), the optimizer and loop state are returned.
    pub fn resume<S: DeserializeOwned>(&self, params: &ParamStore) -> Result<Resumed<S>> {
        let dir = self.dir.join("resume");
        if !dir.join("state.json").exists() {
            return Err(ck_err(&self.dir, format!("has no resume/state.json: it was not written by attend train {} (or by an older version)", self.config.kind())));
        }
        load_weights_from(&dir.join("model.safetensors"), &read_file(&dir, "model.safetensors")?, params)?;
        let opt_path = dir.join("optimizer.safetensors");
        let tensors = candle_core::safetensors::load(&opt_path, &Device::Cpu).map_err(|e| ck_err(&opt_path, e.to_string()))?;
        let optimizer = AdamW::from_tensors(tensors).map_err(|e| ck_err(&opt_path, e))?;
        let state_path = dir.join("state.json");
        let state = serde_json::from_slice(&read_file(&dir, "state.json")?).map_err(|e| json_err(&state_path, e))?;
        Ok(Resumed { optimizer, state })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph_config() -> CheckpointConfig {
        let model = GraphModelConfig { feature_dim: 5, classes: 3, ..GraphModelConfig::default() };
        CheckpointConfig::Graph(Saved::new(model, GraphTrainConfig::default()))
    }

    /// `config.json` keeps the shape earlier versions wrote (`kind`,
    /// `version`, `model`, `train` at the top), and what is not a known
    /// kind or field is refused with a message that says so.
    #[test]
    fn config_json_is_tagged_by_kind_and_strict() {
        let text = serde_json::to_string(&graph_config()).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["kind", "model", "train", "version"], "sorted by serde_json");
        assert_eq!(value["kind"], "graph");
        let path = Path::new("m/config.json");
        assert_eq!(parse_config(path, text.as_bytes(), ModelKind::Graph).unwrap(), graph_config());
        let err = parse_config(path, text.as_bytes(), ModelKind::Tagger).unwrap_err().to_string();
        assert_eq!(err, "checkpoint m/config.json: holds a \"graph\" model, not a tagger model (use attend eval graph)");
        let err = parse_config(path, text.replace("\"graph\"", "\"parser\"").as_bytes(), ModelKind::Graph).unwrap_err().to_string();
        assert!(err.contains("unknown kind of model \"parser\""), "{err}");
        let extra = text.replacen("\"version\"", "\"colour\":1,\"version\"", 1);
        let err = parse_config(path, extra.as_bytes(), ModelKind::Graph).unwrap_err().to_string();
        assert!(err.contains("unknown field `colour`"), "{err}");
    }

    #[test]
    fn save_refuses_undeclared_extra_files_and_writes_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let ck = dir.path().join("m");
        let mut store = ParamStore::new(1);
        store.add("w", &[2, 2], crate::nn::Init::Ones).unwrap();
        let bad = Contents { config: graph_config(), extras: vec![("vocab.json", b"{}".to_vec())] };
        assert!(save_model(&ck, &bad, &store).unwrap_err().to_string().contains("a graph checkpoint holds [], got [\"vocab.json\"]"));
        assert!(!ck.exists(), "nothing written");
        save_model(&ck, &Contents { config: graph_config(), extras: vec![] }, &store).unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["m"], "no temporary directory left behind");
        let opened = open(&ck, ModelKind::Graph).unwrap();
        let other = ParamStore::new(2);
        assert!(opened.load_weights(&other).unwrap_err().to_string().contains("unexpected parameter w"));
        assert!(open(&ck, ModelKind::Tagger).unwrap_err().to_string().contains("not a tagger model"));
        // A file (or a device such as /dev/null) at the target is refused,
        // not moved aside.
        let file = dir.path().join("notes.txt");
        std::fs::write(&file, "keep me").unwrap();
        let err = save_model(&file, &Contents { config: graph_config(), extras: vec![] }, &store).unwrap_err().to_string();
        assert!(err.contains("exists and is not a directory"), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    }
}
