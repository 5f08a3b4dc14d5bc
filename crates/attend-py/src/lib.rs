//! `attend._attend`: the native half of the Python package, a thin binding
//! over [`attend::api`]. Arrays come in as contiguous numpy buffers (the
//! Python layer converts once), computing runs with the GIL released on a
//! thread pool of the estimator's own size, Ctrl-C stops it, and every
//! error of the library becomes a Python exception. No modelling here: the
//! conventions (scikit-learn, aeon, PyG) live in the pure-Python layer.

mod run;

use attend::api::{attention, graph as graph_api, sequence::RunSpec, sequence::SequenceJob, tagger as tagger_api, text::TextTagger};
use attend::checkpoint::{self, Loaded};
use attend::data::conllu;
use attend::data::planetoid::{self, GraphData};
use attend::data::series::{Label, SeriesSet, NO_LABEL};
use attend::data::treebank::TreebankFiles;
use attend::data::ud_eval;
use attend::data::vocab::Column;
use attend::models::graph::config::GraphSettings;
use attend::models::graph::{GraphClassifier, GraphInput};
use attend::models::segmenter::task::{self as segmenter_task, SegmenterSettings};
use attend::models::sequence::config::SequenceSettings;
use attend::models::sequence::{Output, SequenceModel};
use attend::models::tagger::config::TaggerSettings;
use numpy::{PyArray1, PyArray2, PyArray3, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use run::{compute, Threads};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

// The module's own allocations (candle allocates a fresh buffer per op) go
// to mimalloc, as in the CLI: the same speed from Python as from `attend`.
// It serves this library only; Python's allocator is untouched.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pyo3::create_exception!(_attend, AttendError, PyValueError, "An error attend reports: bad input, settings or model files.");

/// An attend error as a Python exception: a missing file is
/// `FileNotFoundError`, other I/O `OSError`, the rest `AttendError` (a
/// `ValueError`); the message is the library's.
pub(crate) fn py_err(e: attend::Error) -> PyErr {
    match &e {
        attend::Error::Io { err, .. } if err.kind() == std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(e.to_string()),
        attend::Error::Io { .. } => PyOSError::new_err(e.to_string()),
        _ => AttendError::new_err(e.to_string()),
    }
}

fn input_err(message: impl Into<String>) -> PyErr {
    AttendError::new_err(message.into())
}

/// Settings from the JSON the Python layer writes (`{"model": .., "train": ..}`),
/// unknown keys refused by name.
fn settings<S: serde::Serialize + serde::de::DeserializeOwned + attend::config::Settings>(json: &str) -> PyResult<S> {
    let given: serde_json::Value = serde_json::from_str(json).map_err(|e| input_err(format!("settings: {e}")))?;
    let s: S = serde_json::from_value(given.clone()).map_err(|e| input_err(format!("settings: {e}")))?;
    let read = serde_json::to_value(&s).map_err(|e| input_err(format!("settings: {e}")))?;
    if let Some(key) = attend::config::unknown_keys(&given, &read).first() {
        return Err(input_err(format!("settings: unknown setting `{key}`")));
    }
    s.validate().map_err(|e| input_err(format!("invalid settings: {e}")))?;
    Ok(s)
}

/// Sets the precision of inference's matrix products for the whole
/// process: `auto` (bf16 where the CPU has AVX-512 BF16), `f32` or `bf16`.
#[pyfunction]
fn set_precision(name: &str) -> PyResult<()> {
    attend::precision::set(attend::precision::Precision::parse(name).map_err(py_err)?).map_err(py_err)
}

/// The precision setting (`auto`, `f32` or `bf16`) and what it runs on this
/// CPU (`f32` or `bf16`).
#[pyfunction]
fn get_precision() -> (&'static str, &'static str) {
    let p = attend::precision::get();
    (p.as_str(), p.name())
}

/// The sequence settings chosen from the data when not given
/// (`models::sequence::auto::KEYS`, config-file names).
#[pyfunction]
fn adaptive_keys() -> Vec<&'static str> {
    attend::models::sequence::auto::KEYS.to_vec()
}

/// The default settings of a kind (`sequence`, `graph`, `tagger`,
/// `segmenter`) as JSON: `{"model": {..}, "train": {..}}`, the CLI's defaults.
#[pyfunction]
fn default_settings(kind: &str) -> PyResult<String> {
    let value = match kind {
        "sequence" => serde_json::to_string(&SequenceSettings::default()),
        "graph" => serde_json::to_string(&GraphSettings::default()),
        "tagger" => serde_json::to_string(&TaggerSettings::default()),
        "segmenter" => serde_json::to_string(&SegmenterSettings::default()),
        other => return Err(input_err(format!("no settings for a kind {other:?}"))),
    };
    value.map_err(|e| input_err(e.to_string()))
}

/// Sequences from one contiguous buffer: each sequence's `dims * len`
/// values channel-major (aeon's `(n_channels, n_timepoints)` rows, one
/// after another), made time-major as attend reads them. Every value must
/// be finite.
fn series_values(values: &[f32], lengths: &[i64], dims: usize) -> PyResult<Vec<Vec<f32>>> {
    if dims == 0 {
        return Err(input_err("X has no channels"));
    }
    if lengths.is_empty() {
        return Err(input_err("X holds no series (0 cases)"));
    }
    let mut out = Vec::with_capacity(lengths.len());
    let mut at = 0usize;
    for (i, &len) in lengths.iter().enumerate() {
        if len <= 0 {
            return Err(input_err(format!("series {i} has length 0: every series needs at least one time point")));
        }
        let len = len as usize;
        let block = values.get(at..at + len * dims).ok_or_else(|| input_err("the lengths add up to more values than X holds"))?;
        if let Some(k) = block.iter().position(|v| !v.is_finite()) {
            return Err(input_err(format!(
                "X contains {} at series {i}, channel {}, time point {}: attend's estimators take finite numbers only",
                block[k],
                k / len,
                k % len
            )));
        }
        let mut series = vec![0f32; len * dims];
        for (c, row) in block.chunks_exact(len).enumerate() {
            for (t, &v) in row.iter().enumerate() {
                series[t * dims + c] = v;
            }
        }
        out.push(series);
        at += len * dims;
    }
    if at != values.len() {
        return Err(input_err(format!("X holds {} values but the lengths account for {at}", values.len())));
    }
    Ok(out)
}

fn class_ids(ids: &[i64], classes: usize) -> PyResult<Vec<u32>> {
    ids.iter()
        .map(|&c| match c {
            -1 => Ok(NO_LABEL),
            c if c >= 0 && (c as usize) < classes => Ok(c as u32),
            c => Err(input_err(format!("class id {c} is out of range (0..{classes})"))),
        })
        .collect()
}

/// A trained sequence model (`attend train sequence`'s kind).
#[pyclass(module = "attend._attend", frozen)]
struct SequenceModelHandle {
    inner: Loaded<SequenceModel>,
}

/// Trains a sequence model on `lengths.len()` series of `dims` channels.
/// `labels`: one class id per series, or with `per_vector` one per time
/// point of all series in order (-1: none); `classes` names the ids.
#[pyfunction]
#[pyo3(signature = (values, lengths, dims, labels, classes, per_vector, settings_json, given, threads, progress=None))]
#[allow(clippy::too_many_arguments)]
fn fit_sequence(
    py: Python<'_>,
    values: PyReadonlyArray1<'_, f32>,
    lengths: PyReadonlyArray1<'_, i64>,
    dims: usize,
    labels: PyReadonlyArray1<'_, i64>,
    classes: Vec<String>,
    per_vector: bool,
    settings_json: &str,
    given: Vec<String>,
    threads: Threads,
    progress: Option<Py<PyAny>>,
) -> PyResult<(SequenceModelHandle, String)> {
    let s: SequenceSettings = settings(settings_json)?;
    let lengths = lengths.as_slice()?;
    let xs = series_values(values.as_slice()?, lengths, dims)?;
    let ids = class_ids(labels.as_slice()?, classes.len())?;
    let labels: Vec<Label> = if per_vector {
        if ids.len() != xs.iter().map(|x| x.len() / dims).sum::<usize>() {
            return Err(input_err(format!("{} labels for {} time points", ids.len(), lengths.iter().sum::<i64>())));
        }
        let mut at = 0;
        lengths
            .iter()
            .map(|&n| {
                at += n as usize;
                Label::PerVector(ids[at - n as usize..at].to_vec())
            })
            .collect()
    } else {
        if ids.contains(&NO_LABEL) {
            return Err(input_err("every series needs a class (a label of -1 found)"));
        }
        ids.into_iter().map(Label::Class).collect()
    };
    let set = SeriesSet::from_class_ids(xs, dims, labels, classes).map_err(py_err)?;
    let (model, report) = compute(py, threads, progress, |interrupt, observer| {
        // Settings not in `given` are chosen from the data, as the CLI chooses them.
        let given = given.iter().cloned().collect();
        SequenceJob::adaptive(&set, None, &s, &given)?.run(RunSpec { interrupt: Some(interrupt), ..RunSpec::default() }, observer)
    })?;
    Ok((SequenceModelHandle { inner: model }, serde_json::to_string(&report).unwrap_or_default()))
}

impl SequenceModelHandle {
    fn set(&self, values: &PyReadonlyArray1<'_, f32>, lengths: &PyReadonlyArray1<'_, i64>, dims: usize) -> PyResult<SeriesSet> {
        let want = self.inner.model.config.dims;
        if dims != want {
            return Err(input_err(format!("X has {dims} channels, but the model was trained on {want}")));
        }
        SeriesSet::unlabelled(series_values(values.as_slice()?, lengths.as_slice()?, dims)?, dims).map_err(py_err)
    }
}

#[pymethods]
impl SequenceModelHandle {
    /// Class ids: one per series, or with a label per vector one per time
    /// point of all series in order.
    fn predict<'py>(
        &self,
        py: Python<'py>,
        values: PyReadonlyArray1<'_, f32>,
        lengths: PyReadonlyArray1<'_, i64>,
        dims: usize,
        threads: Threads,
    ) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let set = self.set(&values, &lengths, dims)?;
        let out = compute(py, threads, None, |_, _| self.inner.predict(&set))?;
        let mut ids = Vec::with_capacity(out.len());
        for o in out {
            match o {
                Output::Classes(c) => ids.extend(c.into_iter().map(i64::from)),
                Output::Value(_) => return Err(input_err("a regression model has no classes")),
            }
        }
        Ok(PyArray1::from_vec(py, ids))
    }

    /// Class probabilities, one row per series (or per time point).
    fn predict_proba<'py>(
        &self,
        py: Python<'py>,
        values: PyReadonlyArray1<'_, f32>,
        lengths: PyReadonlyArray1<'_, i64>,
        dims: usize,
        threads: Threads,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let set = self.set(&values, &lengths, dims)?;
        let rows = compute(py, threads, None, |_, _| self.inner.predict_proba(&set))?;
        let classes = self.inner.model.config.outputs;
        let flat: Vec<f32> = rows.into_iter().flatten().collect();
        let n = flat.len() / classes.max(1);
        PyArray1::from_vec(py, flat).reshape([n, classes])
    }

    /// Attention weights of one series: one `(heads, inputs, inputs)` array
    /// per layer, and the names of the inputs (time points, patches).
    fn attention<'py>(
        &self,
        py: Python<'py>,
        values: PyReadonlyArray1<'_, f32>,
        lengths: PyReadonlyArray1<'_, i64>,
        dims: usize,
        threads: Threads,
    ) -> PyResult<Maps<'py>> {
        let set = self.set(&values, &lengths, dims)?;
        let (maps, _) = compute(py, threads, None, |_, _| attention::sequence_maps(&self.inner, &set, 0))?;
        Ok((layers_to_numpy(py, &maps.layers)?, maps.words))
    }

    /// The class names, in the order of the ids.
    #[getter]
    fn classes(&self) -> Vec<String> {
        self.inner.data.classes.clone()
    }

    /// Whether the model labels every time point (else one label per series).
    #[getter]
    fn per_vector(&self) -> bool {
        !self.inner.model.config.target.per_sequence()
    }

    /// Channels of each time point.
    #[getter]
    fn dims(&self) -> usize {
        self.inner.model.config.dims
    }

    /// The saved `config.json`'s settings (model and train) as JSON.
    #[getter]
    fn settings_json(&self) -> String {
        serde_json::json!({ "model": self.inner.model.config, "train": self.inner.train }).to_string()
    }

    fn save(&self, dir: PathBuf) -> PyResult<()> {
        checkpoint::save_model(&dir, &self.inner.model, &self.inner.data, &self.inner.train).map_err(py_err)
    }

    fn __reduce__(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, (Py<PyDict>,))> {
        reduce(py, |dir| self.save(dir.to_path_buf()))
    }
}

/// Attention maps: one `(heads, n, n)` array per layer, and names (inputs, tags).
type Maps<'py> = (Vec<Bound<'py, PyArray3<f32>>>, Vec<String>);

fn layers_to_numpy<'py>(py: Python<'py>, layers: &[Vec<Vec<Vec<f32>>>]) -> PyResult<Vec<Bound<'py, PyArray3<f32>>>> {
    layers.iter().map(|heads| PyArray3::from_vec3(py, heads).map_err(|e| input_err(e.to_string()))).collect()
}

/// Pickling: a model is the files of its directory (as `save` writes it),
/// rebuilt by [`from_files`].
fn reduce(py: Python<'_>, save: impl FnOnce(&Path) -> PyResult<()>) -> PyResult<(Py<PyAny>, (Py<PyDict>,))> {
    let tmp = tempfile::tempdir().map_err(|e| PyOSError::new_err(format!("a temporary directory: {e}")))?;
    let dir = tmp.path().join("model");
    save(&dir)?;
    let files = PyDict::new(py);
    for (name, bytes) in read_tree(&dir)? {
        files.set_item(name, PyBytes::new(py, &bytes))?;
    }
    let module = py.import("attend._attend")?;
    Ok((module.getattr("from_files")?.unbind(), (files.unbind(),)))
}

fn read_tree(dir: &Path) -> PyResult<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| py_err(attend::Error::io(&d, e)))? {
            let path = entry.map_err(|e| py_err(attend::Error::io(&d, e)))?.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let name = path.strip_prefix(dir).expect("under dir").to_string_lossy().replace('\\', "/");
                out.insert(name, std::fs::read(&path).map_err(|e| py_err(attend::Error::io(&path, e)))?);
            }
        }
    }
    Ok(out)
}

/// A model from the files `__reduce__` gave (unpickling).
#[pyfunction]
fn from_files(py: Python<'_>, files: BTreeMap<String, Vec<u8>>) -> PyResult<Py<PyAny>> {
    let tmp = tempfile::tempdir().map_err(|e| PyOSError::new_err(format!("a temporary directory: {e}")))?;
    for (name, bytes) in &files {
        if name.split('/').any(|part| part == ".." || part.is_empty()) {
            return Err(input_err(format!("a pickled model names a file {name:?} outside its directory")));
        }
        let path = tmp.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| py_err(attend::Error::io(parent, e)))?;
        }
        std::fs::write(&path, bytes).map_err(|e| py_err(attend::Error::io(&path, e)))?;
    }
    load(py, tmp.path().to_path_buf())
}

/// The model saved in `dir` (by the CLI or by Python), of whatever kind it is.
#[pyfunction]
fn load(py: Python<'_>, dir: PathBuf) -> PyResult<Py<PyAny>> {
    if !dir.is_dir() {
        return Err(PyFileNotFoundError::new_err(format!("{}: no such model directory", dir.display())));
    }
    let kind = checkpoint::kind(&dir).map_err(|e| match e {
        attend::Error::Io { .. } => {
            PyFileNotFoundError::new_err(format!("{}: not an attend model directory (no config.json inside)", dir.display()))
        }
        e => py_err(e),
    })?;
    Ok(match kind.as_str() {
        "sequence" => Py::new(py, SequenceModelHandle { inner: checkpoint::load(&dir).map_err(py_err)? })?.into_any(),
        "graph" => Py::new(py, GraphModelHandle::new(checkpoint::load(&dir).map_err(py_err)?))?.into_any(),
        "tagger" => Py::new(py, TaggerHandle { inner: TextTagger::load(&dir).map_err(py_err)? })?.into_any(),
        other => {
            return Err(input_err(format!(
                "{}: holds a {other:?} model, which the Python package does not open (it opens tagger, sequence and graph models)",
                dir.display()
            )))
        }
    })
}

/// The kind of model saved in `dir` (`tagger`, `sequence`, `graph`, ...).
#[pyfunction]
fn model_kind(dir: PathBuf) -> PyResult<String> {
    checkpoint::kind(&dir).map_err(py_err)
}

/// A file of sequences (`.ts`, `.npz` or vector text, as the CLI reads
/// them): the values of each series channel-major, one after another, the
/// lengths, the channels, and a label per series (its class name, or its
/// number; None when unlabelled or labelled per vector).
#[pyfunction]
#[allow(clippy::type_complexity)]
fn read_series<'py>(py: Python<'py>, path: PathBuf) -> PyResult<(Bound<'py, PyArray1<f32>>, Vec<usize>, usize, Option<Vec<String>>)> {
    let set = attend::data::series::read_file(&path).map_err(py_err)?;
    let dims = set.dims;
    let mut values = Vec::with_capacity(set.vectors() * dims);
    for s in &set.series {
        for c in 0..dims {
            values.extend((0..s.len).map(|t| s.values[t * dims + c]));
        }
    }
    let labels: Option<Vec<String>> = set
        .series
        .iter()
        .map(|s| match &s.label {
            Label::Class(c) => Some(set.class_name(*c).to_string()),
            Label::Value(v) => Some(v.to_string()),
            Label::None | Label::PerVector(_) => None,
        })
        .collect();
    Ok((PyArray1::from_vec(py, values), set.series.iter().map(|s| s.len).collect(), dims, labels))
}

// ---- graphs ----

/// A trained graph attention model (`attend train graph`'s kind).
#[pyclass(module = "attend._attend", frozen)]
struct GraphModelHandle {
    model: GraphClassifier,
    train: attend::models::graph::config::GraphTrainConfig,
}

impl GraphModelHandle {
    fn new(loaded: Loaded<GraphClassifier>) -> Self {
        GraphModelHandle { model: loaded.model, train: loaded.train }
    }
}

/// A graph from arrays: features `[nodes, dim]`, `edge_index` `[2, edges]`
/// (source row, target row), a class id or -1 per node, the split.
fn graph_data(
    features: &PyReadonlyArray2<'_, f32>,
    edge_index: &PyReadonlyArray2<'_, i64>,
    labels: Vec<Option<u32>>,
    splits: [Vec<usize>; 3],
) -> PyResult<GraphData> {
    let shape = features.shape();
    let (nodes, dim) = (shape[0], shape[1]);
    if nodes == 0 || dim == 0 {
        return Err(input_err(format!("X has shape ({nodes}, {dim}): a graph needs nodes with at least one feature")));
    }
    let x = features.as_slice()?;
    if let Some(k) = x.iter().position(|v| !v.is_finite()) {
        return Err(input_err(format!("X contains {} at node {}, feature {}: finite numbers only", x[k], k / dim, k % dim)));
    }
    let es = edge_index.shape();
    if es[0] != 2 {
        return Err(input_err(format!("edge_index must have shape (2, n_edges) as in PyG, got ({}, {})", es[0], es[1])));
    }
    let e = edge_index.as_slice()?;
    let (src, dst) = e.split_at(es[1]);
    let mut edges = Vec::with_capacity(es[1]);
    for (k, (&a, &b)) in src.iter().zip(dst).enumerate() {
        if a < 0 || b < 0 || a as usize >= nodes || b as usize >= nodes {
            return Err(input_err(format!("edge_index[:, {k}] = ({a}, {b}) names a node outside 0..{nodes}")));
        }
        edges.push((a as u64, b as u64));
    }
    let labels = if labels.is_empty() { vec![None; nodes] } else { labels };
    if labels.len() != nodes {
        return Err(input_err(format!("y has {} labels for {nodes} nodes", labels.len())));
    }
    GraphData::from_arrays(x.to_vec(), dim, edges, labels, splits).map_err(py_err)
}

/// Trains a graph attention model; `labels` a class id or -1 per node,
/// `train`/`val`/`test` node ids.
#[pyfunction]
#[pyo3(signature = (features, edge_index, labels, train, val, test, settings_json, threads, progress=None))]
#[allow(clippy::too_many_arguments)]
fn fit_graph(
    py: Python<'_>,
    features: PyReadonlyArray2<'_, f32>,
    edge_index: PyReadonlyArray2<'_, i64>,
    labels: PyReadonlyArray1<'_, i64>,
    train: Vec<usize>,
    val: Vec<usize>,
    test: Vec<usize>,
    settings_json: &str,
    threads: Threads,
    progress: Option<Py<PyAny>>,
) -> PyResult<(GraphModelHandle, String)> {
    let s: GraphSettings = settings(settings_json)?;
    let labels: Vec<Option<u32>> = labels.as_slice()?.iter().map(|&c| u32::try_from(c).ok()).collect();
    let data = graph_data(&features, &edge_index, labels, [train, val, test])?;
    let (model, run) =
        compute(py, threads, progress, |interrupt, observer| graph_api::GraphJob::new(&data, &s)?.run(None, Some(interrupt), observer))?;
    let report = serde_json::to_string(&run).unwrap_or_default();
    Ok((GraphModelHandle { model, train: s.train }, report))
}

#[pymethods]
impl GraphModelHandle {
    /// Class probabilities of every node.
    fn predict_proba<'py>(
        &self,
        py: Python<'py>,
        features: PyReadonlyArray2<'_, f32>,
        edge_index: PyReadonlyArray2<'_, i64>,
        threads: Threads,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let data = graph_data(&features, &edge_index, Vec::new(), Default::default())?;
        self.check_width(&data)?;
        let rows = compute(py, threads, None, |_, _| self.model.probabilities(&GraphInput::new(&data, &self.model.config)?))?;
        let classes = self.model.config.classes;
        let n = rows.len();
        PyArray1::from_vec(py, rows.into_iter().flatten().collect()).reshape([n, classes])
    }

    /// Attention per edge: (target, source) node ids of the edges the model
    /// uses (both directions, self loops) and per layer an `(edges, heads)` array.
    #[allow(clippy::type_complexity)]
    fn attention<'py>(
        &self,
        py: Python<'py>,
        features: PyReadonlyArray2<'_, f32>,
        edge_index: PyReadonlyArray2<'_, i64>,
        threads: Threads,
    ) -> PyResult<(Bound<'py, PyArray2<i64>>, Vec<Bound<'py, PyArray2<f32>>>)> {
        let data = graph_data(&features, &edge_index, Vec::new(), Default::default())?;
        self.check_width(&data)?;
        let a = compute(py, threads, None, |_, _| attention::edge_attention(&self.model, &GraphInput::new(&data, &self.model.config)?))?;
        let n = a.target.len();
        let pairs: Vec<i64> = a.source.iter().chain(&a.target).map(|&v| v as i64).collect();
        let layers =
            a.layers.into_iter().zip(&a.heads).map(|(w, &h)| PyArray1::from_vec(py, w).reshape([n, h])).collect::<PyResult<Vec<_>>>()?;
        Ok((PyArray1::from_vec(py, pairs).reshape([2, n])?, layers))
    }

    #[getter]
    fn classes(&self) -> usize {
        self.model.config.classes
    }

    #[getter]
    fn feature_dim(&self) -> usize {
        self.model.config.feature_dim
    }

    #[getter]
    fn settings_json(&self) -> String {
        serde_json::json!({ "model": self.model.config, "train": self.train }).to_string()
    }

    fn save(&self, dir: PathBuf) -> PyResult<()> {
        checkpoint::save_model(&dir, &self.model, &(), &self.train).map_err(py_err)
    }

    fn __reduce__(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, (Py<PyDict>,))> {
        reduce(py, |dir| self.save(dir.to_path_buf()))
    }
}

impl GraphModelHandle {
    fn check_width(&self, data: &GraphData) -> PyResult<()> {
        let want = self.model.config.feature_dim;
        if data.feature_dim != want {
            return Err(input_err(format!("X has {} features per node, but the model was trained on {want}", data.feature_dim)));
        }
        Ok(())
    }
}

/// A graph directory (Planetoid text files, as `attend train graph
/// --data` reads) as arrays: features `[nodes, dim]`, edges `[2, n]`,
/// labels (-1: none), train, val and test node ids.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn read_graph<'py>(
    py: Python<'py>,
    dir: PathBuf,
) -> PyResult<(Bound<'py, PyArray2<f32>>, Bound<'py, PyArray2<i64>>, Bound<'py, PyArray1<i64>>, Vec<usize>, Vec<usize>, Vec<usize>)> {
    let d = planetoid::read_dir(&dir, 0).map_err(py_err)?;
    let n = d.nodes();
    let x = PyArray1::from_vec(py, d.features).reshape([n, d.feature_dim])?;
    let e = d.edges.len();
    let edges: Vec<i64> = d.edges.iter().map(|p| p.0 as i64).chain(d.edges.iter().map(|p| p.1 as i64)).collect();
    let y: Vec<i64> = d.labels.iter().map(|l| l.map_or(-1, i64::from)).collect();
    Ok((x, PyArray1::from_vec(py, edges).reshape([2, e])?, PyArray1::from_vec(py, y), d.train, d.val, d.test))
}

// ---- taggers ----

/// One document of `tag_documents`: `(output, sentences, paragraphs, error)`.
type DocumentOutcome = (Option<String>, usize, usize, Option<String>);

/// A part-of-speech tagger with its segmenter, if it has one.
#[pyclass(module = "attend._attend", frozen)]
struct TaggerHandle {
    inner: TextTagger,
}

/// Trains a tagger on CoNLL-U files (as `attend train tagger`), saving it
/// in `out`, then with `segmenter_json` its raw-text segmenter in
/// `out/segmenter`. Returns the training report as JSON.
#[pyfunction]
#[pyo3(signature = (train, dev, dev_fraction, out, settings_json, segmenter_json, threads, progress=None))]
#[allow(clippy::too_many_arguments)]
fn fit_tagger(
    py: Python<'_>,
    train: PathBuf,
    dev: Option<PathBuf>,
    dev_fraction: Option<f64>,
    out: PathBuf,
    settings_json: &str,
    segmenter_json: Option<&str>,
    threads: Threads,
    progress: Option<Py<PyAny>>,
) -> PyResult<(TaggerHandle, String)> {
    let s: TaggerSettings = settings(settings_json)?;
    let seg: Option<SegmenterSettings> = segmenter_json.map(settings).transpose()?;
    let files = TreebankFiles { train: Some(train), dev, dev_fraction, ..TreebankFiles::default() };
    let report = compute(py, threads, progress, |interrupt, observer| {
        let data = files.read()?;
        let job = tagger_api::TaggerJob::new(&data.train, &Column::ALL, &s)?;
        let (_, summary) = job.run(&data.train, &data.dev, Some(&out), Some(interrupt), observer)?;
        let mut report = serde_json::json!({ "tagger": summary });
        if let Some(seg) = &seg {
            let run = segmenter_task::train_in(&data, &attend::api::text::segmenter_dir(&out), seg, Some(interrupt), observer)?;
            report["segmenter"] = serde_json::to_value(run).unwrap_or_default();
        }
        Ok(report)
    })?;
    let inner = TextTagger::load(&out).map_err(py_err)?;
    Ok((TaggerHandle { inner }, report.to_string()))
}

#[pymethods]
impl TaggerHandle {
    /// Raw text in (paragraphs end at blank lines), sentence records out as
    /// JSON (`id`, `text`, `tokens` with their words and tags).
    fn tag_text(&self, py: Python<'_>, text: &str, threads: Threads) -> PyResult<String> {
        let sentences = compute(py, threads, None, |_, _| self.inner.tag_text(text))?;
        let records: Vec<serde_json::Value> =
            sentences.iter().enumerate().map(|(i, s)| attend::api::text::sentence_record(s, i + 1)).collect();
        Ok(serde_json::Value::Array(records).to_string())
    }

    /// Raw text in, CoNLL-U out (as `attend tag`).
    fn tag_text_conllu(&self, py: Python<'_>, text: &str, threads: Threads) -> PyResult<String> {
        let sentences = compute(py, threads, None, |_, _| self.inner.tag_text(text))?;
        Ok(conllu::to_string(&sentences))
    }

    /// Raw-text documents `(label, UTF-8 bytes)` segmented and tagged
    /// together, each numbered as if tagged alone: per document
    /// `(output, sentences, paragraphs, error)`, the output CoNLL-U (or
    /// with `records` sentence records as JSON) and `error` the message
    /// when that document could not be read (then the output is None).
    #[pyo3(signature = (docs, threads, max_token_chars=None, records=false))]
    fn tag_documents(
        &self,
        py: Python<'_>,
        docs: Vec<(PathBuf, Bound<'_, PyBytes>)>,
        threads: Threads,
        max_token_chars: Option<usize>,
        records: bool,
    ) -> PyResult<Vec<DocumentOutcome>> {
        // Borrowed, not copied: the bytes objects stay alive (and immutable) through the call.
        let refs: Vec<(&Path, &[u8])> = docs.iter().map(|(l, b)| (l.as_path(), b.as_bytes())).collect();
        let tagged = compute(py, threads, None, |_, _| self.inner.tag_documents(&refs, max_token_chars))?;
        Ok(tagged
            .into_iter()
            .map(|doc| match doc {
                Ok(d) => {
                    let output = if records {
                        let r: Vec<serde_json::Value> =
                            d.sentences.iter().enumerate().map(|(i, s)| attend::api::text::sentence_record(s, i + 1)).collect();
                        serde_json::Value::Array(r).to_string()
                    } else {
                        conllu::to_string(&d.sentences)
                    };
                    (Some(output), d.sentences.len(), d.paragraphs, None)
                }
                Err(e) => (None, 0, 0, Some(e.to_string())),
            })
            .collect())
    }

    /// CoNLL-U in (its tokens as given), tagged CoNLL-U out.
    fn tag_conllu(&self, py: Python<'_>, conllu_text: &str, threads: Threads) -> PyResult<String> {
        let mut sentences = conllu::parse_bytes(conllu_text.as_bytes(), Path::new("<conllu>")).map_err(py_err)?;
        compute(py, threads, None, |_, _| self.inner.tag(&mut sentences))?;
        Ok(conllu::to_string(&sentences))
    }

    /// The CoNLL 2018 metrics against the gold file at `path`: with gold
    /// tokens, or from its raw text (segmenter included).
    fn evaluate(&self, py: Python<'_>, path: PathBuf, raw_text: bool, threads: Threads) -> PyResult<String> {
        let eval = compute(py, threads, None, |_, _| {
            if raw_text {
                return self.inner.score_raw_text(&path);
            }
            let gold = conllu::read_file(&path)?;
            let mut system = gold.clone();
            self.inner.tag(&mut system)?;
            let label = Path::new("<tagged>");
            ud_eval::evaluate(&ud_eval::UdDocument::new(&gold, &path)?, &ud_eval::UdDocument::new(&system, label)?, &path, label)
        })?;
        Ok(eval.to_json().to_string())
    }

    /// Attention of one sentence (its words given): per layer `(heads,
    /// words, words)`, the words and their predicted UPOS.
    #[allow(clippy::type_complexity)]
    fn attention<'py>(&self, py: Python<'py>, words: Vec<String>, threads: Threads) -> PyResult<Maps<'py>> {
        let sentence = conllu::Sentence::from_words(&words);
        let t = &self.inner.tagger;
        let maps = compute(py, threads, None, |_, _| attention::attention_maps(&t.model, &t.data, &sentence))?;
        Ok((layers_to_numpy(py, &maps.layers)?, maps.tags))
    }

    #[getter]
    fn has_segmenter(&self) -> bool {
        self.inner.segmenter.is_some()
    }

    #[getter]
    fn settings_json(&self) -> String {
        serde_json::json!({ "model": self.inner.tagger.model.config, "train": self.inner.tagger.train }).to_string()
    }

    fn save(&self, dir: PathBuf) -> PyResult<()> {
        let t = &self.inner.tagger;
        checkpoint::save_model(&dir, &t.model, &t.data, &t.train).map_err(py_err)?;
        if let Some(s) = &self.inner.segmenter {
            checkpoint::save_model(&attend::api::text::segmenter_dir(&dir), &s.model, &s.data, &s.train).map_err(py_err)?;
        }
        Ok(())
    }

    fn __reduce__(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, (Py<PyDict>,))> {
        reduce(py, |dir| self.save(dir.to_path_buf()))
    }
}

/// mimalloc keeps the pages it frees, as the CLI's does (`attend_cli::alloc`
/// says why: candle's per-op buffers would be faulted in and zeroed again
/// every step); `MIMALLOC_PURGE_DELAY` in the environment still wins. 15 is
/// `mi_option_purge_delay` in the mimalloc v3 that libmimalloc-sys builds
/// (its Rust constants follow v2's numbering).
fn keep_freed_pages() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mimalloc's option setter, safe to call at any time.
        unsafe { libmimalloc_sys::mi_option_set(15, -1) }
    }
}

#[pymodule]
fn _attend(m: &Bound<'_, PyModule>) -> PyResult<()> {
    keep_freed_pages();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("AttendError", m.py().get_type::<AttendError>())?;
    m.add_class::<SequenceModelHandle>()?;
    m.add_class::<GraphModelHandle>()?;
    m.add_class::<TaggerHandle>()?;
    for f in [
        wrap_pyfunction!(default_settings, m)?,
        wrap_pyfunction!(adaptive_keys, m)?,
        wrap_pyfunction!(set_precision, m)?,
        wrap_pyfunction!(get_precision, m)?,
        wrap_pyfunction!(fit_sequence, m)?,
        wrap_pyfunction!(fit_graph, m)?,
        wrap_pyfunction!(fit_tagger, m)?,
        wrap_pyfunction!(read_graph, m)?,
        wrap_pyfunction!(read_series, m)?,
        wrap_pyfunction!(load, m)?,
        wrap_pyfunction!(from_files, m)?,
        wrap_pyfunction!(model_kind, m)?,
        wrap_pyfunction!(run::default_threads, m)?,
    ] {
        m.add_function(f)?;
    }
    Ok(())
}
