//! Checkpoints, one format for every kind of model: a directory holding
//! - `config.json`: `kind` (the model's [`Saveable::KIND`], `"tagger"`,
//!   `"graph"`, ...), `version`, the architecture (`model`) and the training
//!   settings (`train`);
//! - `model.safetensors`: the parameters, by name;
//! - the extra files a kind declares ([`Saveable::EXTRA_FILES`]: the
//!   tagger's `vocab.json`, a sequence model's `data.json`);
//! - `resume/` (written by training): the latest weights
//!   (`model.safetensors`), the AdamW state (`optimizer.safetensors`:
//!   `m.NAME`, `v.NAME`, `step`) and `state.json` (epoch, batch, random
//!   generator states, best so far), so a run continues exactly where it
//!   stopped;
//! - models kept with this one, each in a subdirectory of its own (a
//!   tagger's `segmenter/`): a save copies them over.
//!
//! The format is generic over the model: a kind takes part by implementing
//! [`Saveable`], and this module names no model.
//!
//! Writes are atomic: everything goes to a sibling temporary directory that
//! then replaces the old checkpoint, so a crash leaves the old or the new
//! checkpoint, never a mix.

use crate::config::unknown_keys;
use crate::error::{Error, Result};
use crate::nn::ParamStore;
use crate::optim::AdamW;
use candle_core::{Device, Tensor};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// A kind of model a checkpoint can hold: its name, its files, its settings
/// and how it is rebuilt from them. Adding a kind edits nothing here.
pub trait Saveable: Sized {
    /// The `kind` in `config.json`.
    const KIND: &'static str;
    /// Files besides `config.json` and `model.safetensors` that
    /// [`Saveable::write_data`] writes and [`Saveable::read_data`] reads.
    const EXTRA_FILES: &'static [&'static str];
    /// The architecture (`model` in `config.json`).
    type Config: Serialize + DeserializeOwned + Clone + std::fmt::Debug + PartialEq;
    /// The training settings (`train` in `config.json`).
    type Train: Serialize + DeserializeOwned + Clone + std::fmt::Debug + PartialEq;
    /// What the model needs beside its weights (a vocabulary, the data's
    /// statistics), kept in the extra files; `()` for nothing.
    type Data;

    /// The model's architecture.
    fn config(&self) -> &Self::Config;
    /// Its parameters.
    fn params(&self) -> &ParamStore;
    /// A model of this architecture (weights to be loaded); an error names
    /// the setting that does not fit.
    fn build(config: &Self::Config) -> Result<Self>;
    /// The extra files' contents, one per [`Saveable::EXTRA_FILES`] entry.
    fn write_data(data: &Self::Data) -> Result<Vec<(&'static str, Vec<u8>)>>;
    /// Reads the extra files of `ck` and checks them against its config.
    fn read_data(ck: &Checkpoint<Self>) -> Result<Self::Data>;
}

/// An extra file holding `value` as JSON (the counterpart of
/// [`Checkpoint::read_json`]), for [`Saveable::write_data`].
pub fn json_file<T: Serialize + ?Sized>(name: &'static str, value: &T) -> Result<(&'static str, Vec<u8>)> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Input(format!("{name}: {e}")))?;
    Ok((name, bytes))
}

/// `()` for kinds with no extra files.
pub fn no_data() -> Result<Vec<(&'static str, Vec<u8>)>> {
    Ok(Vec::new())
}

/// What `config.json` holds for one kind of model.
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

/// `config.json` on disk: the kind, then that kind's [`Saved`] settings.
#[derive(Serialize)]
struct Tagged<'a, M, T> {
    kind: &'a str,
    #[serde(flatten)]
    saved: &'a Saved<M, T>,
}

/// What a model puts in its checkpoint besides the weights: `config.json`
/// (already serialised) and the extra files.
pub struct Contents {
    kind: &'static str,
    declared: &'static [&'static str],
    config: serde_json::Value,
    extras: Vec<(&'static str, Vec<u8>)>,
}

impl Contents {
    /// The checkpoint contents of `model` with its `data` and training settings.
    pub fn new<M: Saveable>(model: &M, data: &M::Data, train: &M::Train) -> Result<Contents> {
        let saved = Saved::new(model.config().clone(), train.clone());
        let config =
            serde_json::to_value(Tagged { kind: M::KIND, saved: &saved }).map_err(|e| Error::Input(format!("{} config: {e}", M::KIND)))?;
        Ok(Contents { kind: M::KIND, declared: M::EXTRA_FILES, config, extras: M::write_data(data)? })
    }

    /// The kind of model.
    pub fn kind(&self) -> &'static str {
        self.kind
    }
}

/// What training adds to a checkpoint under `resume/`.
pub struct ResumeFiles<'a, S> {
    /// The weights now (the top level holds the best ones).
    pub weights: &'a BTreeMap<String, Tensor>,
    pub optimizer: &'a AdamW,
    /// The loop's state (`state.json`).
    pub state: &'a S,
}

/// An error about the checkpoint file or directory at `path`.
pub fn ck_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Checkpoint { path: path.to_path_buf(), message: message.into() }
}

fn json_err(path: &Path, e: serde_json::Error) -> Error {
    Error::Parse { path: path.to_path_buf(), line: e.line(), message: e.to_string() }
}

fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
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

/// Models kept inside the checkpoint in `dir` (a tagger's `segmenter/`):
/// its subdirectories, other than `resume/`, that hold a `config.json`.
fn companions(dir: &Path) -> Vec<std::ffi::OsString> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() != "resume" && e.path().join("config.json").is_file())
        .map(|e| e.file_name())
        .collect()
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
    for name in companions(dir) {
        let (from, to) = (dir.join(&name), tmp.join(&name));
        if !to.exists() {
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
pub fn save<S: Serialize>(
    dir: &Path,
    contents: &Contents,
    weights: &BTreeMap<String, Tensor>,
    resume: Option<ResumeFiles<S>>,
) -> Result<()> {
    let declared: Vec<&str> = contents.extras.iter().map(|(name, _)| *name).collect();
    if declared != contents.declared {
        return Err(ck_err(dir, format!("a {} checkpoint holds {:?}, got {declared:?} (a bug)", contents.kind, contents.declared)));
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

/// Saves a trained model with its data and training settings (its current
/// weights, no training state) to `dir`, atomically.
pub fn save_model<M: Saveable>(dir: &Path, model: &M, data: &M::Data, train: &M::Train) -> Result<()> {
    save::<()>(dir, &Contents::new(model, data, train)?, &model.params().snapshot()?, None)
}

/// The `kind` of a `config.json` (its bytes, read from `path`), read alone,
/// so that a checkpoint of another kind is named as such rather than
/// reported as unknown fields.
fn kind_of(path: &Path, bytes: &[u8]) -> Result<String> {
    #[derive(Deserialize)]
    struct Kind {
        kind: String,
    }
    let k: Kind = serde_json::from_slice(bytes).map_err(|e| json_err(path, e))?;
    Ok(k.kind)
}

/// Parses `config.json` (its bytes, read from `path`), checking first that
/// it holds an `M` model. Any bytes give a config or an error, never a
/// panic (fuzzed).
pub fn parse_config<M: Saveable>(path: &Path, bytes: &[u8]) -> Result<Saved<M::Config, M::Train>> {
    let found = kind_of(path, bytes)?;
    if found != M::KIND {
        return Err(Error::WrongKind { path: path.to_path_buf(), found, wanted: M::KIND });
    }
    let mut value: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(bytes).map_err(|e| json_err(path, e))?;
    value.remove("kind");
    let given = serde_json::Value::Object(value);
    let saved: Saved<M::Config, M::Train> = serde_json::from_value(given.clone()).map_err(|e| ck_err(path, e.to_string()))?;
    let read = serde_json::to_value(&saved).map_err(|e| ck_err(path, e.to_string()))?;
    match unknown_keys(&given, &read).first() {
        Some(key) => Err(ck_err(path, format!("unknown field `{key}`"))),
        None => Ok(saved),
    }
}

/// Sets `params` from safetensors `bytes` (the contents of `path`), which
/// must hold exactly the parameters the config builds.
pub fn load_weights_from(path: &Path, bytes: &[u8], params: &ParamStore) -> Result<()> {
    let tensors: BTreeMap<String, Tensor> =
        candle_core::safetensors::load_buffer(bytes, &Device::Cpu).map_err(|e| ck_err(path, e.to_string()))?.into_iter().collect();
    params.load(&tensors).map_err(|e| ck_err(path, format!("does not match config.json: {e}")))
}

/// What a checkpoint directory holds: the `kind` of its `config.json`.
pub fn kind(dir: &Path) -> Result<String> {
    let path = dir.join("config.json");
    kind_of(&path, &std::fs::read(&path).map_err(|e| Error::io(&path, e))?)
}

/// Where a checkpoint's files come from.
#[derive(Debug)]
enum Files {
    Dir,
    /// File contents by name (a fuzzed checkpoint); the directory only names them.
    Memory(BTreeMap<String, Vec<u8>>),
}

/// A checkpoint of an `M` model whose `config.json` has been read.
#[derive(Debug)]
pub struct Checkpoint<M: Saveable> {
    pub dir: PathBuf,
    pub config: Saved<M::Config, M::Train>,
    files: Files,
}

/// Opens the checkpoint in `dir`, which must hold an `M` model.
pub fn open<M: Saveable>(dir: &Path) -> Result<Checkpoint<M>> {
    if !dir.is_dir() {
        let files: Vec<&str> = ["model.safetensors", "config.json"].into_iter().chain(M::EXTRA_FILES.iter().copied()).collect();
        return Err(ck_err(dir, format!("not a directory (expected {} inside)", files.join(", "))));
    }
    let path = dir.join("config.json");
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    Ok(Checkpoint { dir: dir.to_path_buf(), config: parse_config::<M>(&path, &bytes)?, files: Files::Dir })
}

/// A model with what it needs besides its weights and the settings it was trained with.
pub struct Loaded<M: Saveable> {
    pub model: M,
    pub data: M::Data,
    pub train: M::Train,
}

/// Loads the `M` model saved in `dir`, checking that its files agree.
pub fn load<M: Saveable>(dir: &Path) -> Result<Loaded<M>> {
    open::<M>(dir)?.load()
}

/// [`load`] from file contents by name (`config.json`, `model.safetensors`
/// and the extra files); `dir` only names them in errors. Any bytes give a
/// model or an error, never a panic (fuzzed).
pub fn load_from_bytes<M: Saveable>(dir: &Path, files: BTreeMap<String, Vec<u8>>) -> Result<Loaded<M>> {
    let path = dir.join("config.json");
    let config = files.get("config.json").ok_or_else(|| ck_err(&path, "missing"))?;
    let config = parse_config::<M>(&path, config)?;
    Checkpoint { dir: dir.to_path_buf(), config, files: Files::Memory(files) }.load()
}

/// What `resume/` holds besides the weights.
pub struct Resumed<S> {
    pub optimizer: AdamW,
    pub state: S,
}

impl<M: Saveable> Checkpoint<M> {
    /// The bytes of a file of the checkpoint.
    pub fn read(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.dir.join(name);
        match &self.files {
            Files::Dir => std::fs::read(&path).map_err(|e| Error::io(path, e)),
            Files::Memory(files) => files.get(name).cloned().ok_or_else(|| ck_err(&path, "missing")),
        }
    }

    /// A JSON extra file of the checkpoint, parsed (errors name its line).
    pub fn read_json<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        serde_json::from_slice(&self.read(name)?).map_err(|e| json_err(&self.dir.join(name), e))
    }

    /// Builds the model, reads its data and loads its top-level weights (the best model).
    pub fn load(&self) -> Result<Loaded<M>> {
        let data = M::read_data(self)?;
        let model = M::build(&self.config.model).map_err(|e| ck_err(&self.dir.join("config.json"), e.to_string()))?;
        load_weights_from(&self.dir.join("model.safetensors"), &self.read("model.safetensors")?, model.params())?;
        Ok(Loaded { model, data, train: self.config.train.clone() })
    }

    /// Reads `resume/`: its weights go into `params` (built from the
    /// config), the optimizer and loop state are returned.
    pub fn resume<S: DeserializeOwned>(&self, params: &ParamStore) -> Result<Resumed<S>> {
        let dir = self.dir.join("resume");
        if !dir.join("state.json").exists() {
            return Err(ck_err(
                &self.dir,
                format!("has no resume/state.json: it was not written by training a {} (or by an older version)", M::KIND),
            ));
        }
        let weights = dir.join("model.safetensors");
        load_weights_from(&weights, &std::fs::read(&weights).map_err(|e| Error::io(&weights, e))?, params)?;
        let opt_path = dir.join("optimizer.safetensors");
        let tensors = candle_core::safetensors::load(&opt_path, &Device::Cpu).map_err(|e| ck_err(&opt_path, e.to_string()))?;
        let optimizer = AdamW::from_tensors(tensors).map_err(|e| ck_err(&opt_path, e))?;
        let state_path = dir.join("state.json");
        let state = serde_json::from_slice(&std::fs::read(&state_path).map_err(|e| Error::io(&state_path, e))?)
            .map_err(|e| json_err(&state_path, e))?;
        Ok(Resumed { optimizer, state })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Init;

    /// A kind for these tests: one weight matrix, a note in an extra file.
    struct Plain {
        width: usize,
        params: ParamStore,
    }

    impl Saveable for Plain {
        const KIND: &'static str = "plain";
        const EXTRA_FILES: &'static [&'static str] = &["note.json"];
        type Config = usize;
        type Train = u64;
        type Data = String;
        fn config(&self) -> &usize {
            &self.width
        }
        fn params(&self) -> &ParamStore {
            &self.params
        }
        fn build(width: &usize) -> Result<Self> {
            let mut params = ParamStore::new(1);
            params.add("w", &[*width, 2], Init::Ones)?;
            Ok(Plain { width: *width, params })
        }
        fn write_data(note: &String) -> Result<Vec<(&'static str, Vec<u8>)>> {
            Ok(vec![json_file("note.json", note)?])
        }
        fn read_data(ck: &Checkpoint<Self>) -> Result<String> {
            ck.read_json("note.json")
        }
    }

    /// A kind whose config nests a part flat beside its own keys.
    #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
    struct Part {
        width: usize,
    }
    #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
    struct FlatConfig {
        #[serde(flatten)]
        part: Part,
    }
    struct Flat(FlatConfig);
    impl Saveable for Flat {
        const KIND: &'static str = "flat";
        const EXTRA_FILES: &'static [&'static str] = &[];
        type Config = FlatConfig;
        type Train = u64;
        type Data = ();
        fn config(&self) -> &FlatConfig {
            &self.0
        }
        fn params(&self) -> &ParamStore {
            unreachable!()
        }
        fn build(c: &FlatConfig) -> Result<Self> {
            Ok(Flat(c.clone()))
        }
        fn write_data(_: &()) -> Result<Vec<(&'static str, Vec<u8>)>> {
            no_data()
        }
        fn read_data(_: &Checkpoint<Self>) -> Result<()> {
            Ok(())
        }
    }

    /// Another kind, for the wrong-kind message.
    struct Other;
    impl Saveable for Other {
        const KIND: &'static str = "other";
        const EXTRA_FILES: &'static [&'static str] = &[];
        type Config = ();
        type Train = ();
        type Data = ();
        fn config(&self) -> &() {
            &()
        }
        fn params(&self) -> &ParamStore {
            unreachable!()
        }
        fn build(_: &()) -> Result<Self> {
            Ok(Other)
        }
        fn write_data(_: &()) -> Result<Vec<(&'static str, Vec<u8>)>> {
            no_data()
        }
        fn read_data(_: &Checkpoint<Self>) -> Result<()> {
            Ok(())
        }
    }

    /// `config.json` keeps the shape earlier versions wrote (`kind`,
    /// `version`, `model`, `train` at the top), and what is not the kind
    /// asked for or a known field is refused with a message that says so.
    #[test]
    fn config_json_is_tagged_by_kind_and_strict() {
        let model = Plain::build(&3).unwrap();
        let contents = Contents::new(&model, &"hi".to_string(), &7).unwrap();
        let text = serde_json::to_string(&contents.config).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["kind", "model", "train", "version"], "sorted by serde_json");
        assert_eq!(value["kind"], "plain");
        let path = Path::new("m/config.json");
        assert_eq!(parse_config::<Plain>(path, text.as_bytes()).unwrap(), Saved::new(3, 7));
        let err = parse_config::<Other>(path, text.as_bytes()).unwrap_err();
        assert!(matches!(&err, Error::WrongKind { found, wanted: "other", .. } if found == "plain"));
        assert_eq!(err.to_string(), "checkpoint m/config.json: holds a \"plain\" model, not a other model");
        let extra = text.replacen("\"version\"", "\"colour\":1,\"version\"", 1);
        let err = parse_config::<Plain>(path, extra.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("unknown field `colour`"), "{err}");
        // Inside the model's settings too (configs that flatten a part cannot deny them through serde).
        let nested = r#"{"kind":"flat","version":"0","model":{"width":2,"colour":1},"train":0}"#;
        let err = parse_config::<Flat>(path, nested.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("unknown field `model.colour`"), "{err}");
        assert!(parse_config::<Flat>(path, nested.replace(",\"colour\":1", "").as_bytes()).is_ok());
    }

    #[test]
    fn save_refuses_undeclared_extra_files_and_writes_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let ck = dir.path().join("m");
        let model = Plain::build(&2).unwrap();
        let mut bad = Contents::new(&model, &"x".to_string(), &1).unwrap();
        bad.extras.push(("vocab.json", b"{}".to_vec()));
        let err = save::<()>(&ck, &bad, &model.params.snapshot().unwrap(), None).unwrap_err().to_string();
        assert!(err.contains("a plain checkpoint holds [\"note.json\"], got [\"note.json\", \"vocab.json\"]"), "{err}");
        assert!(!ck.exists(), "nothing written");
        save_model(&ck, &model, &"kept".to_string(), &5).unwrap();
        let names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["m"], "no temporary directory left behind");
        let loaded = load::<Plain>(&ck).unwrap();
        assert_eq!((loaded.data.as_str(), loaded.train, loaded.model.width), ("kept", 5, 2));
        assert_eq!(kind(&ck).unwrap(), "plain");
        // Weights that do not fit the config are refused.
        std::fs::write(
            ck.join("config.json"),
            std::fs::read_to_string(ck.join("config.json")).unwrap().replace("\"model\": 2", "\"model\": 3"),
        )
        .unwrap();
        assert!(load::<Plain>(&ck).err().unwrap().to_string().contains("does not match config.json"));
        assert!(open::<Other>(&ck).err().unwrap().to_string().contains("not a other model"));
        // A model kept inside (a companion) survives a save.
        std::fs::create_dir_all(ck.join("inner")).unwrap();
        std::fs::write(ck.join("inner/config.json"), "{}").unwrap();
        save_model(&ck, &Plain::build(&3).unwrap(), &"again".to_string(), &6).unwrap();
        assert!(ck.join("inner/config.json").is_file());
        assert_eq!(load::<Plain>(&ck).unwrap().data, "again");
        // A file (or a device such as /dev/null) at the target is refused,
        // not moved aside.
        let file = dir.path().join("notes.txt");
        std::fs::write(&file, "keep me").unwrap();
        let err = save_model(&file, &model, &"x".to_string(), &1).unwrap_err().to_string();
        assert!(err.contains("exists and is not a directory"), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    }
}
