//! Vector sequences: signals, frames, sensor rows. Three formats read into
//! one [`SeriesSet`]:
//!
//! - **`.ts`** (UEA/UCR time-series archive, as sktime and aeon read it):
//!   `#` comments, `@problemName`, `@timeStamps false`, `@missing`,
//!   `@univariate` / `@dimensions N`, `@equalLength`, `@seriesLength N`,
//!   `@classLabel true A B ...` (one class per sequence), `@targetLabel
//!   true` (one number per sequence) or `@classLabel false` (no labels),
//!   then `@data`: one series per line, its dimensions separated by `:`,
//!   values by `,`, `?` for a missing value, the label last.
//! - **vector text** (any other extension; one label per vector, in the
//!   spirit of CoNLL): one vector per line, its values separated by spaces
//!   or tabs, then its label (`_` for none); a blank line ends a sequence;
//!   lines starting with `#` are comments; `?` or `nan` is a missing value.
//! - **`.npz`** (NumPy): `x` float32/float64 `[sequences, time, dims]` (or
//!   `[time, dims]`: one sequence); optional `lengths` integer
//!   `[sequences]` (real vectors of each; the rest is padding); optional
//!   `y`: integer `[sequences]` (a class per sequence), integer
//!   `[sequences, time]` (a class per vector; negative = no label) or float
//!   `[sequences]` (a number per sequence). NaN is a missing value.
//!
//! Class labels are kept as names (a `.ts` file's declared order, else the
//! order of first appearance); numbers in `.npz` become names `"0"`, `"1"`...
//! Every error names the file and line (for `.npz`, the array).

use crate::data::conllu::{parse_err, utf8_lines};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What a file's labels are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// One class per sequence.
    SequenceClass,
    /// One number per sequence (regression).
    SequenceValue,
    /// One class per vector.
    VectorClass,
    /// No labels.
    Unlabelled,
}

impl Target {
    /// Whether the model predicts one label per sequence (a pooled head).
    pub fn per_sequence(self) -> bool {
        matches!(self, Target::SequenceClass | Target::SequenceValue)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Target::SequenceClass => "one class per sequence",
            Target::SequenceValue => "one number per sequence",
            Target::VectorClass => "one class per vector",
            Target::Unlabelled => "no labels",
        })
    }
}

/// The label of one sequence. Class ids index [`SeriesSet::classes`].
#[derive(Debug, Clone, PartialEq)]
pub enum Label {
    None,
    Class(u32),
    Value(f32),
    /// One class id per vector ([`NO_LABEL`] where a vector has none).
    PerVector(Vec<u32>),
}

/// A vector without a label (text `_`, `.npz` negative).
pub const NO_LABEL: u32 = u32::MAX;

/// One sequence of vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// `len * dims` values, time-major (vector `t` is `values[t*dims..(t+1)*dims]`); NaN where missing.
    pub values: Vec<f32>,
    pub len: usize,
    pub label: Label,
    /// Line where the sequence starts (0 for `.npz`), for messages.
    pub line: usize,
}

/// The sequences of one file.
#[derive(Debug, Clone)]
pub struct SeriesSet {
    pub path: PathBuf,
    /// `@problemName` of a `.ts` file.
    pub name: Option<String>,
    pub dims: usize,
    pub target: Target,
    /// Class names, indexed by the ids in the labels.
    pub classes: Vec<String>,
    pub series: Vec<Series>,
}

impl SeriesSet {
    /// Sequences in memory, one class name per sequence: each of `values`
    /// holds `len * dims` numbers, time-major (vector `t` is
    /// `values[t*dims..(t+1)*dims]`), NaN where missing; lengths may differ.
    /// Classes are numbered in sorted order of their names.
    pub fn from_classified<S: AsRef<str>>(values: Vec<Vec<f32>>, dims: usize, labels: &[S]) -> Result<SeriesSet> {
        if labels.len() != values.len() {
            return Err(Error::Input(format!("{} sequences but {} labels", values.len(), labels.len())));
        }
        let mut classes: Vec<String> = labels.iter().map(|l| l.as_ref().to_string()).collect();
        classes.sort();
        classes.dedup();
        let ids: Vec<Label> =
            labels.iter().map(|l| Label::Class(classes.binary_search_by(|c| c.as_str().cmp(l.as_ref())).expect("listed") as u32)).collect();
        Self::from_class_ids(values, dims, ids, classes)
    }

    /// Sequences in memory labelled by class ids into `classes` (the
    /// names, in the order the ids count): one [`Label::Class`] per
    /// sequence, or one [`Label::PerVector`] per sequence with an id per
    /// vector ([`NO_LABEL`] where a vector has none). Laid out as for
    /// [`SeriesSet::from_classified`].
    pub fn from_class_ids(values: Vec<Vec<f32>>, dims: usize, labels: Vec<Label>, classes: Vec<String>) -> Result<SeriesSet> {
        if labels.len() != values.len() {
            return Err(Error::Input(format!("{} sequences but {} labels", values.len(), labels.len())));
        }
        let per_vector = matches!(labels.first(), Some(Label::PerVector(_)));
        for (i, label) in labels.iter().enumerate() {
            let ids: &[u32] = match (label, per_vector) {
                (Label::Class(c), false) => std::slice::from_ref(c),
                (Label::PerVector(ids), true) => {
                    if dims > 0 && ids.len() * dims != values[i].len() {
                        return Err(Error::Input(format!("sequence {i} has {} vectors but {} labels", values[i].len() / dims, ids.len())));
                    }
                    ids
                }
                _ => return Err(Error::Input(format!("sequence {i}: labels must be all one class per sequence or all one per vector"))),
            };
            if let Some(&bad) = ids.iter().find(|&&c| c != NO_LABEL && c as usize >= classes.len()) {
                return Err(Error::Input(format!("sequence {i}: class id {bad}, but there are {} classes", classes.len())));
            }
        }
        let target = if per_vector { Target::VectorClass } else { Target::SequenceClass };
        Self::in_memory(values, dims, labels, target, classes)
    }

    /// Sequences in memory without labels (to predict), laid out as for
    /// [`SeriesSet::from_classified`].
    pub fn unlabelled(values: Vec<Vec<f32>>, dims: usize) -> Result<SeriesSet> {
        let labels = vec![Label::None; values.len()];
        Self::in_memory(values, dims, labels, Target::Unlabelled, Vec::new())
    }

    fn in_memory(values: Vec<Vec<f32>>, dims: usize, labels: Vec<Label>, target: Target, classes: Vec<String>) -> Result<SeriesSet> {
        if dims == 0 {
            return Err(Error::Input("vectors need at least one number (dims >= 1)".into()));
        }
        let mut series = Vec::with_capacity(values.len());
        for (i, (v, label)) in values.into_iter().zip(labels).enumerate() {
            if v.is_empty() || v.len() % dims != 0 {
                return Err(Error::Input(format!(
                    "sequence {i} has {} numbers: not a whole number of {dims}-number vectors (and at least one)",
                    v.len()
                )));
            }
            series.push(Series { len: v.len() / dims, values: v, label, line: 0 });
        }
        Ok(SeriesSet { path: PathBuf::from("<memory>"), name: None, dims, target, classes, series })
    }

    pub fn vectors(&self) -> usize {
        self.series.iter().map(|s| s.len).sum()
    }

    /// Shortest and longest sequence.
    pub fn length_range(&self) -> (usize, usize) {
        let lens = self.series.iter().map(|s| s.len);
        (lens.clone().min().unwrap_or(0), lens.max().unwrap_or(0))
    }

    /// Missing values (NaN) in all sequences.
    pub fn missing(&self) -> usize {
        self.series.iter().map(|s| s.values.iter().filter(|v| v.is_nan()).count()).sum()
    }

    /// Holds out `fraction` of the sequences as dev data, drawn with `seed`:
    /// per class when there is one class per sequence (so every class
    /// keeps its share; a class with one sequence stays in train), else
    /// over all sequences. Returns `(train, dev)` indices, each sorted.
    pub fn split(&self, fraction: f32, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut groups: Vec<Vec<usize>> = match self.target {
            Target::SequenceClass => {
                let mut g = vec![Vec::new(); self.classes.len()];
                for (i, s) in self.series.iter().enumerate() {
                    if let Label::Class(c) = s.label {
                        g[c as usize].push(i);
                    }
                }
                g
            }
            _ => vec![(0..self.series.len()).collect()],
        };
        let mut dev = Vec::new();
        for g in groups.iter_mut().filter(|g| g.len() >= 2) {
            g.shuffle(&mut rng);
            let take = ((g.len() as f32 * fraction).round() as usize).clamp(1, g.len() - 1);
            dev.extend_from_slice(&g[..take]);
        }
        if dev.is_empty() {
            return Err(Error::Input(format!(
                "{}: {} sequence(s) cannot be split into train and dev: give a dev file",
                self.path.display(),
                self.series.len()
            )));
        }
        dev.sort_unstable();
        let train = (0..self.series.len()).filter(|i| dev.binary_search(i).is_err()).collect();
        Ok((train, dev))
    }

    /// The class name of id `c`.
    pub fn class_name(&self, c: u32) -> &str {
        self.classes.get(c as usize).map_or("_", String::as_str)
    }
}

/// Which reader a path goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ts,
    Npz,
    Text,
}

impl Format {
    /// By extension: `.ts`, `.npz`, anything else is vector text.
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("ts") => Format::Ts,
            Some("npz") => Format::Npz,
            _ => Format::Text,
        }
    }
}

/// Reads a sequence file, choosing the reader by extension ([`Format::of`]).
pub fn read_file(path: &Path) -> Result<SeriesSet> {
    crate::data::conllu::check_fits_in_memory(path)?;
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    match Format::of(path) {
        Format::Ts => parse_ts(&bytes, path),
        Format::Text => parse_text(&bytes, path),
        Format::Npz => parse_npz(&bytes, path),
    }
}

/// Values per chunk of [`read_chunks`] by default (4 MiB of f32; the
/// model batches within a chunk, so larger chunks gain no speed).
pub const CHUNK_VALUES: usize = 1 << 20;

/// A sequence file read a chunk of series at a time, each chunk a
/// [`SeriesSet`] with the file's header: `.ts` and vector text in memory
/// bounded by the chunk (and the longest series); `.npz`, an archive, is
/// read whole as one chunk. Class ids are the file's throughout.
pub struct SeriesChunks {
    reader: Box<dyn std::io::BufRead>,
    path: PathBuf,
    parser: ChunkParser,
    max_values: usize,
    line: usize,
    buf: Vec<u8>,
    yielded: bool,
    done: bool,
}

enum ChunkParser {
    Ts(TsParser),
    Text(TextParser),
    Whole(Option<SeriesSet>),
}

/// Opens `path` to read in chunks of about `max_values` values ([`Format::of`] chooses the reader).
pub fn read_chunks(path: &Path, max_values: usize) -> Result<SeriesChunks> {
    let parser = match Format::of(path) {
        Format::Ts => ChunkParser::Ts(TsParser::new(path)),
        Format::Text => ChunkParser::Text(TextParser::new(path)),
        Format::Npz => ChunkParser::Whole(Some(read_file(path)?)),
    };
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(SeriesChunks {
        reader: Box::new(std::io::BufReader::with_capacity(1 << 16, file)),
        path: path.to_path_buf(),
        parser,
        max_values: max_values.max(1),
        line: 0,
        buf: Vec::new(),
        yielded: false,
        done: false,
    })
}

impl SeriesChunks {
    fn head(&self) -> Result<SeriesSet> {
        match &self.parser {
            ChunkParser::Ts(p) => p.head(self.line),
            ChunkParser::Text(p) => Ok(p.head()),
            ChunkParser::Whole(_) => unreachable!("read whole"),
        }
    }

    fn next_chunk(&mut self) -> Result<Option<SeriesSet>> {
        if let ChunkParser::Whole(set) = &mut self.parser {
            self.done = true;
            return Ok(set.take());
        }
        let (mut series, mut values) = (Vec::new(), 0);
        while values < self.max_values {
            self.buf.clear();
            let n = self.reader.read_until(b'\n', &mut self.buf).map_err(|e| Error::io(&self.path, e))?;
            if n == 0 {
                self.done = true;
                if let ChunkParser::Text(p) = &mut self.parser {
                    series.extend(p.end());
                }
                let head = self.head()?;
                if series.is_empty() && self.yielded {
                    return Ok(None);
                }
                return Ok(Some(SeriesSet { series, ..head }));
            }
            self.line += 1;
            let mut raw = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
            while let Some(r) = raw.strip_suffix(b"\r") {
                raw = r;
            }
            if self.line == 1 {
                raw = raw.strip_prefix(b"\xef\xbb\xbf").unwrap_or(raw);
            }
            let text = std::str::from_utf8(raw)
                .map_err(|e| parse_err(&self.path, self.line, format!("not valid UTF-8 (byte {} of the line)", e.valid_up_to() + 1)))?;
            let found = match &mut self.parser {
                ChunkParser::Ts(p) => p.line(self.line, text)?,
                ChunkParser::Text(p) => p.line(self.line, text)?,
                ChunkParser::Whole(_) => unreachable!("read whole"),
            };
            if let Some(s) = found {
                values += s.values.len().max(1);
                series.push(s);
            }
        }
        self.yielded = true;
        Ok(Some(SeriesSet { series, ..self.head()? }))
    }
}

impl Iterator for SeriesChunks {
    type Item = Result<SeriesSet>;

    fn next(&mut self) -> Option<Result<SeriesSet>> {
        if self.done {
            return None;
        }
        let chunk = self.next_chunk();
        if chunk.is_err() {
            self.done = true;
        }
        chunk.transpose()
    }
}

fn number(v: f32) -> String {
    if v.is_nan() {
        "?".into()
    } else {
        format!("{v}")
    }
}

/// `set` in the `.ts` format (labels per sequence or none; reads back equal).
pub fn to_ts_string(set: &SeriesSet) -> Result<String> {
    use std::fmt::Write;
    let mut out = String::new();
    let missing = set.missing() > 0;
    let lengths = set.length_range();
    let _ = writeln!(out, "@problemName {}", set.name.as_deref().unwrap_or("attend"));
    let _ = writeln!(out, "@timeStamps false\n@missing {missing}\n@univariate {}\n@dimensions {}", set.dims == 1, set.dims);
    let _ = writeln!(out, "@equalLength {}", lengths.0 == lengths.1);
    match set.target {
        Target::SequenceClass => {
            let _ = writeln!(out, "@classLabel true {}", set.classes.join(" "));
        }
        Target::SequenceValue => out.push_str("@targetLabel true\n"),
        Target::Unlabelled => out.push_str("@classLabel false\n"),
        Target::VectorClass => return Err(Error::Input("the .ts format has no labels per vector: write vector text".into())),
    }
    out.push_str("@data\n");
    for s in &set.series {
        let dims: Vec<String> =
            (0..set.dims).map(|k| s.values.iter().skip(k).step_by(set.dims).map(|&v| number(v)).collect::<Vec<_>>().join(",")).collect();
        out.push_str(&dims.join(":"));
        match &s.label {
            Label::Class(c) => {
                let _ = write!(out, ":{}", set.class_name(*c));
            }
            Label::Value(v) => {
                let _ = write!(out, ":{v}");
            }
            _ => {}
        }
        out.push('\n');
    }
    Ok(out)
}

/// `set` in the vector text format (a label per vector, or `_`).
pub fn to_text_string(set: &SeriesSet) -> String {
    let mut out = String::new();
    for (i, s) in set.series.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        for (t, v) in s.values.chunks(set.dims.max(1)).enumerate() {
            for x in v {
                out.push_str(&number(*x));
                out.push(' ');
            }
            let label = match &s.label {
                Label::PerVector(ls) if ls[t] != NO_LABEL => set.class_name(ls[t]),
                _ => "_",
            };
            out.push_str(label);
            out.push('\n');
        }
    }
    out
}

/// Class names to ids, in order of first appearance (or declared).
#[derive(Default)]
struct Classes {
    names: Vec<String>,
    ids: HashMap<String, u32>,
    /// Declared up front (`.ts`): a name outside the list is an error.
    closed: bool,
}

impl Classes {
    fn declared(names: &[&str]) -> std::result::Result<Self, String> {
        let mut c = Classes::default();
        for n in names {
            if c.ids.contains_key(*n) {
                return Err(format!("class {n:?} is declared twice"));
            }
            c.id(n).expect("open while declaring");
        }
        c.closed = true;
        Ok(c)
    }

    fn id(&mut self, name: &str) -> std::result::Result<u32, String> {
        if let Some(&id) = self.ids.get(name) {
            return Ok(id);
        }
        if self.closed {
            return Err(format!("class {name:?} is not among those declared by @classLabel ({})", self.names.join(" ")));
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        Ok(id)
    }
}

/// A value: a finite number, or `?`/`nan` (missing, NaN).
fn value(text: &str) -> std::result::Result<f32, String> {
    let t = text.trim();
    if t == "?" || t.eq_ignore_ascii_case("nan") {
        return Ok(f32::NAN);
    }
    match t.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!("value {t:?} is not finite (use ? for a missing value)")),
        Err(_) => Err(format!("{t:?} is not a number")),
    }
}

fn flag(path: &Path, line: usize, key: &str, rest: &str) -> Result<bool> {
    match rest.split_whitespace().next().map(str::to_ascii_lowercase).as_deref() {
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        _ => Err(parse_err(path, line, format!("{key} takes true or false, got {rest:?}"))),
    }
}

fn count(path: &Path, line: usize, key: &str, rest: &str) -> Result<usize> {
    match rest.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(parse_err(path, line, format!("{key} takes a whole number from 1, got {rest:?}"))),
    }
}

/// The header of a `.ts` file, as declared.
#[derive(Default)]
struct TsHeader {
    name: Option<String>,
    dims: Option<usize>,
    univariate: Option<bool>,
    equal_length: Option<bool>,
    series_length: Option<usize>,
    missing: Option<bool>,
    target: Option<Target>,
    classes: Classes,
}

/// A `.ts` file read a line at a time: the header, then one series per data line.
struct TsParser {
    path: PathBuf,
    h: TsHeader,
    in_data: bool,
    dims_seen: Option<usize>,
}

impl TsParser {
    fn new(path: &Path) -> Self {
        TsParser { path: path.to_path_buf(), h: TsHeader::default(), in_data: false, dims_seen: None }
    }

    /// Reads line `lineno`: a header line, or a data line's series.
    fn line(&mut self, lineno: usize, raw: &str) -> Result<Option<Series>> {
        let (path, h) = (self.path.as_path(), &mut self.h);
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(None);
        }
        if !self.in_data {
            let Some(header) = line.strip_prefix('@') else {
                return Err(parse_err(path, lineno, "a data line before @data (the header ends with a line @data)"));
            };
            let (key, rest) = header.split_once(char::is_whitespace).unwrap_or((header, ""));
            let key_lower = key.to_ascii_lowercase();
            match key_lower.as_str() {
                "problemname" => h.name = Some(rest.trim().to_string()),
                "timestamps" => {
                    if flag(path, lineno, "@timeStamps", rest)? {
                        return Err(parse_err(path, lineno, "@timeStamps true is not supported: give the values without time stamps"));
                    }
                }
                "missing" => h.missing = Some(flag(path, lineno, "@missing", rest)?),
                "univariate" => h.univariate = Some(flag(path, lineno, "@univariate", rest)?),
                "dimensions" | "dimension" => h.dims = Some(count(path, lineno, "@dimensions", rest)?),
                "equallength" => h.equal_length = Some(flag(path, lineno, "@equalLength", rest)?),
                "serieslength" => h.series_length = Some(count(path, lineno, "@seriesLength", rest)?),
                "classlabel" | "targetlabel" => {
                    if h.target.is_some() {
                        return Err(parse_err(path, lineno, "a second @classLabel/@targetLabel line"));
                    }
                    let mut words = rest.split_whitespace();
                    let on = flag(path, lineno, key, words.next().unwrap_or(""))?;
                    let names: Vec<&str> = words.collect();
                    h.target = Some(match (key_lower.as_str(), on) {
                        (_, false) => Target::Unlabelled,
                        ("classlabel", true) => {
                            if names.is_empty() {
                                return Err(parse_err(path, lineno, "@classLabel true must list the class labels"));
                            }
                            h.classes = Classes::declared(&names).map_err(|m| parse_err(path, lineno, m))?;
                            Target::SequenceClass
                        }
                        _ => Target::SequenceValue,
                    });
                }
                "data" => {
                    let Some(_) = h.target else {
                        return Err(parse_err(path, lineno, "@data before @classLabel or @targetLabel (say whether the series are labelled)"));
                    };
                    if let (Some(true), Some(d)) = (h.univariate, h.dims) {
                        if d != 1 {
                            return Err(parse_err(path, lineno, format!("@univariate true but @dimensions {d}")));
                        }
                    }
                    if h.univariate == Some(true) {
                        h.dims = Some(1);
                    }
                    self.in_data = true;
                }
                _ => return Err(parse_err(path, lineno, format!("unknown header @{key} (the .ts format has @problemName, @timeStamps, @missing, @univariate, @dimensions, @equalLength, @seriesLength, @classLabel, @targetLabel, @data)"))),
            }
            return Ok(None);
        }
        let target = h.target.expect("checked at @data");
        let mut parts: Vec<&str> = line.split(':').collect();
        let label = match target {
            Target::Unlabelled => Label::None,
            _ => {
                if parts.len() < 2 {
                    return Err(parse_err(path, lineno, "expected the values, then ':' and the label"));
                }
                let text = parts.pop().expect("two parts").trim();
                match target {
                    Target::SequenceClass => Label::Class(h.classes.id(text).map_err(|m| parse_err(path, lineno, m))?),
                    _ => Label::Value(
                        value(text)
                            .ok()
                            .filter(|v| !v.is_nan())
                            .ok_or_else(|| parse_err(path, lineno, format!("target {text:?} is not a number")))?,
                    ),
                }
            }
        };
        let dims = parts.len();
        let expected = h.dims.or(self.dims_seen).unwrap_or(dims);
        if dims != expected {
            return Err(parse_err(path, lineno, format!("{dims} dimension(s) (separated by ':'), expected {expected}")));
        }
        self.dims_seen = Some(dims);
        let mut columns: Vec<Vec<f32>> = Vec::with_capacity(dims);
        for (d, part) in parts.iter().enumerate() {
            let col: Vec<f32> = part
                .split(',')
                .map(|v| value(v).map_err(|m| parse_err(path, lineno, format!("dimension {}: {m}", d + 1))))
                .collect::<Result<_>>()?;
            if let Some(first) = columns.first() {
                if col.len() != first.len() {
                    return Err(parse_err(
                        path,
                        lineno,
                        format!(
                            "dimension {} has {} values, dimension 1 has {} (each dimension of a series needs the same length)",
                            d + 1,
                            col.len(),
                            first.len()
                        ),
                    ));
                }
            }
            columns.push(col);
        }
        let len = columns[0].len();
        if let (Some(true), Some(n)) = (h.equal_length, h.series_length) {
            if len != n {
                return Err(parse_err(path, lineno, format!("{len} values per dimension, but @seriesLength is {n}")));
            }
        }
        let mut values = Vec::with_capacity(len * dims);
        for t in 0..len {
            values.extend(columns.iter().map(|c| c[t]));
        }
        if h.missing == Some(false) && values.iter().any(|v| v.is_nan()) {
            return Err(parse_err(path, lineno, "a missing value '?' but the header says @missing false"));
        }
        Ok(Some(Series { values, len, label, line: lineno }))
    }

    /// The set the lines describe, without its series; `last_line` is
    /// the file's last line (named when @data never came).
    fn head(&self, last_line: usize) -> Result<SeriesSet> {
        if !self.in_data {
            return Err(parse_err(&self.path, last_line.max(1), "no @data line: not a .ts file?"));
        }
        let h = &self.h;
        Ok(SeriesSet {
            path: self.path.clone(),
            name: h.name.clone(),
            dims: h.dims.or(self.dims_seen).unwrap_or(1),
            target: h.target.expect("checked"),
            classes: h.classes.names.clone(),
            series: Vec::new(),
        })
    }
}

/// Parses a `.ts` file (UEA/UCR format; see the module docs).
pub fn parse_ts(bytes: &[u8], path: &Path) -> Result<SeriesSet> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut parser = TsParser::new(path);
    let mut series = Vec::new();
    for item in utf8_lines(bytes, path) {
        let (lineno, raw) = item?;
        series.extend(parser.line(lineno, raw)?);
    }
    let last = bytes.split(|&b| b == b'\n').count() - usize::from(bytes.ends_with(b"\n"));
    Ok(SeriesSet { series, ..parser.head(last)? })
}

/// The vector text format read a line at a time: a series ends at a blank line.
struct TextParser {
    path: PathBuf,
    classes: Classes,
    dims: Option<usize>,
    current: Option<(Series, Vec<u32>)>,
    /// Whether the first vector had a label, and its line.
    labelled: Option<(bool, usize)>,
}

impl TextParser {
    fn new(path: &Path) -> Self {
        TextParser { path: path.to_path_buf(), classes: Classes::default(), dims: None, current: None, labelled: None }
    }

    /// The series read so far, if one is open.
    fn end(&mut self) -> Option<Series> {
        let (mut s, labels) = self.current.take()?;
        s.label = if labels.iter().all(|&l| l == NO_LABEL) { Label::None } else { Label::PerVector(labels) };
        Some(s)
    }

    /// Reads line `lineno`: the series a blank line ends, if any.
    fn line(&mut self, lineno: usize, raw: &str) -> Result<Option<Series>> {
        let path = self.path.as_path();
        let line = raw.trim();
        if line.starts_with('#') {
            return Ok(None);
        }
        if line.is_empty() {
            return Ok(self.end());
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 2 {
            return Err(parse_err(path, lineno, "expected the vector's values, then its label (`_` for none)"));
        }
        let (label, vals) = fields.split_last().expect("two fields");
        let d = *self.dims.get_or_insert(vals.len());
        if vals.len() != d {
            return Err(parse_err(path, lineno, format!("{} values, but the first vector of the file has {d}", vals.len())));
        }
        let id = if *label == "_" { NO_LABEL } else { self.classes.id(label).expect("open classes") };
        // Every vector labelled, or none: a file is either training data or input to predict.
        match self.labelled {
            None => self.labelled = Some((id != NO_LABEL, lineno)),
            Some((was, first)) if was != (id != NO_LABEL) => {
                let what = |l: bool| if l { "a label" } else { "no label (_)" };
                return Err(parse_err(
                    path,
                    lineno,
                    format!(
                        "this vector has {} but the one on line {first} has {}: label every vector, or none",
                        what(id != NO_LABEL),
                        what(was)
                    ),
                ));
            }
            _ => {}
        }
        let (s, labels) =
            self.current.get_or_insert_with(|| (Series { values: Vec::new(), len: 0, label: Label::None, line: lineno }, Vec::new()));
        for v in vals {
            s.values.push(value(v).map_err(|m| parse_err(path, lineno, m))?);
        }
        s.len += 1;
        labels.push(id);
        Ok(None)
    }

    /// The set the lines describe, without its series.
    fn head(&self) -> SeriesSet {
        let target = if self.labelled.is_some_and(|(l, _)| l) { Target::VectorClass } else { Target::Unlabelled };
        SeriesSet {
            path: self.path.clone(),
            name: None,
            dims: self.dims.unwrap_or(0),
            target,
            classes: self.classes.names.clone(),
            series: Vec::new(),
        }
    }
}

/// Parses the vector text format (see the module docs).
pub fn parse_text(bytes: &[u8], path: &Path) -> Result<SeriesSet> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut parser = TextParser::new(path);
    let mut series = Vec::new();
    for item in utf8_lines(bytes, path) {
        let (lineno, raw) = item?;
        series.extend(parser.line(lineno, raw)?);
    }
    series.extend(parser.end());
    Ok(SeriesSet { series, ..parser.head() })
}

fn npz_err(path: &Path, array: &str, message: impl std::fmt::Display) -> Error {
    Error::Input(format!("{}: array {array:?}: {message}", path.display()))
}

/// An array of a `.npz` archive: its shape, its values widened to f64, and
/// whether it is stored as floats (labels stored as floats are numbers to
/// regress on, even when whole).
struct NpzArray {
    shape: Vec<u64>,
    values: Vec<f64>,
    float: bool,
}

fn npz_array(archive: &mut npyz::npz::NpzArchive<std::io::Cursor<&[u8]>>, path: &Path, name: &str, limit: u64) -> Result<Option<NpzArray>> {
    use npyz::{DType, TypeChar};
    let Some(file) = archive.by_name(name).map_err(|e| npz_err(path, name, e))? else {
        return Ok(None);
    };
    let shape = file.shape().to_vec();
    let total = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).filter(|&n| n <= limit);
    if total.is_none() {
        return Err(npz_err(path, name, format!("shape {shape:?} is larger than this machine can hold")));
    }
    let DType::Plain(ty) = file.dtype() else {
        return Err(npz_err(path, name, "is not a plain numeric array"));
    };
    let values: Vec<f64> = match (ty.type_char(), ty.size_field()) {
        (TypeChar::Float, 4) => file.into_vec::<f32>().map_err(|e| npz_err(path, name, e))?.into_iter().map(f64::from).collect(),
        (TypeChar::Float, 8) => file.into_vec::<f64>().map_err(|e| npz_err(path, name, e))?,
        (TypeChar::Int, 1) => file.into_vec::<i8>().map_err(|e| npz_err(path, name, e))?.into_iter().map(f64::from).collect(),
        (TypeChar::Int, 2) => file.into_vec::<i16>().map_err(|e| npz_err(path, name, e))?.into_iter().map(f64::from).collect(),
        (TypeChar::Int, 4) => file.into_vec::<i32>().map_err(|e| npz_err(path, name, e))?.into_iter().map(f64::from).collect(),
        (TypeChar::Int, 8) => file.into_vec::<i64>().map_err(|e| npz_err(path, name, e))?.into_iter().map(|v| v as f64).collect(),
        (TypeChar::Uint, 1) => file.into_vec::<u8>().map_err(|e| npz_err(path, name, e))?.into_iter().map(f64::from).collect(),
        (TypeChar::Uint, 2) => file.into_vec::<u16>().map_err(|e| npz_err(path, name, e))?.into_iter().map(f64::from).collect(),
        (TypeChar::Uint, 4) => file.into_vec::<u32>().map_err(|e| npz_err(path, name, e))?.into_iter().map(f64::from).collect(),
        (TypeChar::Uint, 8) => file.into_vec::<u64>().map_err(|e| npz_err(path, name, e))?.into_iter().map(|v| v as f64).collect(),
        _ => return Err(npz_err(path, name, format!("dtype {} is not a float or integer type", ty))),
    };
    Ok(Some(NpzArray { shape, values, float: ty.type_char() == TypeChar::Float }))
}

/// Parses a NumPy `.npz` archive (see the module docs).
pub fn parse_npz(bytes: &[u8], path: &Path) -> Result<SeriesSet> {
    parse_npz_within(bytes, path, crate::memory::available_bytes() / 16)
}

/// [`parse_npz`] with each array limited to `limit` elements.
pub fn parse_npz_within(bytes: &[u8], path: &Path, limit: u64) -> Result<SeriesSet> {
    let mut archive = npyz::npz::NpzArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| Error::Input(format!("{}: not a .npz archive: {e}", path.display())))?;
    let Some(NpzArray { shape, values: x, .. }) = npz_array(&mut archive, path, "x", limit)? else {
        return Err(Error::Input(format!("{}: no array named \"x\" (the vectors, [sequences, time, dims])", path.display())));
    };
    let (n, time, dims) = match shape[..] {
        [t, d] => (1, t as usize, d as usize),
        [n, t, d] => (n as usize, t as usize, d as usize),
        _ => return Err(npz_err(path, "x", format!("shape {shape:?}: expected [sequences, time, dims] or [time, dims]"))),
    };
    if dims == 0 {
        return Err(npz_err(path, "x", "has no dimensions (dims = 0)"));
    }
    let lengths: Vec<usize> = match npz_array(&mut archive, path, "lengths", limit)? {
        None => vec![time; n],
        Some(NpzArray { shape, values: v, .. }) => {
            if shape != [n as u64] {
                return Err(npz_err(path, "lengths", format!("shape {shape:?}, expected [{n}] (one per sequence of x)")));
            }
            v.iter()
                .enumerate()
                .map(|(i, &l)| {
                    if l >= 1.0 && l <= time as f64 && l.fract() == 0.0 {
                        Ok(l as usize)
                    } else {
                        Err(npz_err(path, "lengths", format!("entry {i} is {l}, expected 1..={time}")))
                    }
                })
                .collect::<Result<_>>()?
        }
    };
    let mut classes = Classes::default();
    let labels: Vec<Label> = match npz_array(&mut archive, path, "y", limit)? {
        None => vec![Label::None; n],
        Some(NpzArray { shape: yshape, values: y, float }) => {
            let ints = y.iter().all(|v| v.fract() == 0.0);
            let class =
                |classes: &mut Classes, v: f64| if v < 0.0 { NO_LABEL } else { classes.id(&format!("{}", v as i64)).expect("open") };
            // Class ids in sorted order, so that "2" comes after "1".
            let register = |classes: &mut Classes| {
                let mut distinct: Vec<i64> = y.iter().map(|&v| v as i64).filter(|&v| v >= 0).collect();
                distinct.sort_unstable();
                distinct.dedup();
                for d in distinct {
                    class(classes, d as f64);
                }
            };
            match yshape[..] {
                [m] if m as usize == n && ints && !float => {
                    register(&mut classes);
                    y.iter().map(|&v| if v < 0.0 { Label::None } else { Label::Class(class(&mut classes, v)) }).collect()
                }
                [m] if m as usize == n => y.iter().map(|&v| Label::Value(v as f32)).collect(),
                [m, t] if m as usize == n && t as usize == time && ints => {
                    register(&mut classes);
                    y.chunks(time.max(1))
                        .zip(&lengths)
                        .map(|(row, &len)| Label::PerVector(row[..len].iter().map(|&v| class(&mut classes, v)).collect()))
                        .collect()
                }
                _ => {
                    let expected =
                        format!("expected [{n}] (a class or number per sequence) or [{n}, {time}] integers (a class per vector)");
                    return Err(npz_err(path, "y", format!("shape {yshape:?}: {expected}")));
                }
            }
        }
    };
    let target = match labels.first() {
        _ if labels.iter().all(|l| *l == Label::None) => Target::Unlabelled,
        _ if labels.iter().any(|l| matches!(l, Label::PerVector(_))) => Target::VectorClass,
        _ if labels.iter().any(|l| matches!(l, Label::Value(_))) => Target::SequenceValue,
        _ => Target::SequenceClass,
    };
    let series = x
        .chunks(time * dims)
        .zip(lengths)
        .zip(labels)
        .map(|((rows, len), label)| Series { values: rows[..len * dims].iter().map(|&v| v as f32).collect(), len, label, line: 0 })
        .collect::<Vec<_>>();
    if let Some((i, _)) = series.iter().enumerate().find(|(_, s)| s.values.iter().any(|v| v.is_infinite())) {
        return Err(npz_err(path, "x", format!("sequence {i} holds an infinite value")));
    }
    Ok(SeriesSet { path: path.to_path_buf(), name: None, dims, target, classes: classes.names, series })
}

#[cfg(test)]
mod tests {

    /// Class ids in memory: per sequence or per vector, never mixed, each
    /// id a class, each sequence with one label per vector.
    #[test]
    fn from_class_ids_checks_its_labels() {
        let classes = || vec!["a".to_string(), "b".to_string()];
        let v = || vec![vec![0.0; 4], vec![1.0; 6]];
        let s = SeriesSet::from_class_ids(v(), 2, vec![Label::Class(1), Label::Class(0)], classes()).unwrap();
        assert_eq!((s.target, s.series[1].len, s.class_name(1)), (Target::SequenceClass, 3, "b"));
        let s = SeriesSet::from_class_ids(v(), 2, vec![Label::PerVector(vec![0, 1]), Label::PerVector(vec![1, NO_LABEL, 0])], classes())
            .unwrap();
        assert_eq!(s.target, Target::VectorClass);
        let err = |labels, n| SeriesSet::from_class_ids(v(), 2, labels, classes()).unwrap_err().to_string().contains(n);
        assert!(err(vec![Label::Class(0), Label::Class(2)], "class id 2, but there are 2 classes"));
        assert!(err(vec![Label::Class(0)], "2 sequences but 1 labels"));
        assert!(err(vec![Label::PerVector(vec![0, 1]), Label::PerVector(vec![0])], "sequence 1 has 3 vectors but 1 labels"));
        assert!(err(vec![Label::PerVector(vec![0, 1]), Label::Class(0)], "all one class per sequence or all one per vector"));
    }

    use super::*;

    fn ts(text: &str) -> Result<SeriesSet> {
        parse_ts(text.as_bytes(), Path::new("x.ts"))
    }

    fn err(r: Result<SeriesSet>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn reads_multivariate_variable_length_with_missing_values() {
        let s = ts("# a comment\n@problemName Toy\n@timeStamps false\n@missing true\n@univariate false\n@dimensions 2\n@equalLength false\n@classLabel true a b\n@data\n1,2,3:4,?,6:b\n\n7,8:9,10:a\r\n").unwrap();
        assert_eq!((s.name.as_deref(), s.dims, s.target, s.series.len()), (Some("Toy"), 2, Target::SequenceClass, 2));
        assert_eq!(s.classes, ["a", "b"]);
        let first = &s.series[0];
        assert_eq!((first.len, &first.label, first.line), (3, &Label::Class(1), 10));
        assert_eq!(first.values[..2], [1.0, 4.0]);
        assert!(first.values[3].is_nan(), "? is missing");
        assert_eq!(s.series[1].values, [7.0, 9.0, 8.0, 10.0]);
        assert_eq!((s.length_range(), s.missing(), s.vectors()), ((2, 3), 1, 5));
    }

    #[test]
    fn reads_regression_targets_and_unlabelled_univariate() {
        let s = ts("@univariate true\n@targetLabel true\n@data\n1,2,3:0.5\n4,5:-2\n").unwrap();
        assert_eq!((s.target, s.dims), (Target::SequenceValue, 1));
        assert_eq!(s.series[1].label, Label::Value(-2.0));
        let s = ts("@classLabel false\n@data\n1,2:3,4\n").unwrap();
        assert_eq!((s.target, s.dims, s.series[0].len), (Target::Unlabelled, 2, 2));
    }

    #[test]
    fn every_malformed_header_or_line_names_file_and_line() {
        let cases = [
            ("@classLabel true a\n@dimensions x\n@data\n", "x.ts:2: @dimensions takes a whole number from 1"),
            ("@timeStamps true\n", "x.ts:1: @timeStamps true is not supported"),
            ("@missing maybe\n", "x.ts:1: @missing takes true or false"),
            ("@colour red\n", "x.ts:1: unknown header @colour"),
            ("1,2:a\n", "x.ts:1: a data line before @data"),
            ("@data\n1,2:a\n", "x.ts:1: @data before @classLabel"),
            ("@classLabel true\n", "x.ts:1: @classLabel true must list the class labels"),
            ("@classLabel true a a\n", "x.ts:1: class \"a\" is declared twice"),
            ("@classLabel true a\n@classLabel true b\n", "x.ts:2: a second @classLabel"),
            ("@univariate true\n@dimensions 3\n@classLabel true a\n@data\n", "x.ts:4: @univariate true but @dimensions 3"),
            ("@classLabel true a\n@data\n1,2:c\n", "x.ts:3: class \"c\" is not among those declared"),
            ("@classLabel true a\n@data\n1,2\n", "x.ts:3: expected the values, then ':' and the label"),
            ("@dimensions 2\n@classLabel true a\n@data\n1,2:a\n", "x.ts:4: 1 dimension(s) (separated by ':'), expected 2"),
            ("@classLabel true a\n@data\n1,2:3,4:a\n5:a\n", "x.ts:4: 1 dimension(s) (separated by ':'), expected 2"),
            ("@classLabel true a\n@data\n1,x:a\n", "x.ts:3: dimension 1: \"x\" is not a number"),
            ("@classLabel true a\n@data\n1,inf:a\n", "x.ts:3: dimension 1: value \"inf\" is not finite"),
            ("@classLabel true a\n@data\n1,2:3:a\n", "x.ts:3: dimension 2 has 1 values, dimension 1 has 2"),
            (
                "@equalLength true\n@seriesLength 3\n@classLabel true a\n@data\n1,2:a\n",
                "x.ts:5: 2 values per dimension, but @seriesLength is 3",
            ),
            ("@missing false\n@classLabel true a\n@data\n1,?:a\n", "x.ts:4: a missing value '?' but the header says @missing false"),
            ("@targetLabel true\n@data\n1,2:high\n", "x.ts:3: target \"high\" is not a number"),
            ("@classLabel true a\n", "x.ts:1: no @data line"),
        ];
        for (text, want) in cases {
            let got = err(ts(text));
            assert!(got.contains(want), "{text:?}: got {got:?}, want {want:?}");
        }
        let bad = parse_ts(b"@classLabel true a\n@data\n1,2:a\n\xff\n", Path::new("x.ts")).unwrap_err().to_string();
        assert!(bad.starts_with("x.ts:4: not valid UTF-8"), "{bad}");
    }

    /// A file read in chunks of `max_values`: the chunks' series, in order, and their sets.
    fn chunked(dir: &Path, name: &str, bytes: &[u8], max_values: usize) -> Result<(Vec<Series>, Vec<SeriesSet>)> {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let chunks = read_chunks(&path, max_values)?.collect::<Result<Vec<_>>>()?;
        Ok((chunks.iter().flat_map(|c| c.series.clone()).collect(), chunks))
    }

    /// Read in chunks, a file gives the series and header it gives read
    /// whole, and the same error at the same line.
    #[test]
    fn chunks_equal_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let ts_text = "\u{feff}@problemName Toy\n@dimensions 2\n@classLabel true a b\n@data\n1,2,3:4,?,6:b\n\n7,8:9,10:a\r\n5,5:1,1:b\n";
        let text = "1 2 a\n3 4 b\n\n# c\n5 6 b\n\n\n7 8 a\n9 9 a\n1 1 b";
        for (name, bytes) in [("x.ts", ts_text), ("x.txt", text)] {
            let whole = read_file(&{
                let p = dir.path().join(format!("whole-{name}"));
                std::fs::write(&p, bytes).unwrap();
                p
            })
            .unwrap();
            for max in [1, 4, 5, 1000] {
                let (series, chunks) = chunked(dir.path(), name, bytes.as_bytes(), max).unwrap();
                // (Debug strings: NaN, a missing value, equals itself there.)
                assert_eq!(format!("{series:?}"), format!("{:?}", whole.series), "{name} in chunks of {max}");
                let last = chunks.last().unwrap();
                assert_eq!((last.dims, last.target, &last.classes, &last.name), (whole.dims, whole.target, &whole.classes, &whole.name));
                assert!(chunks.iter().all(|c| !c.series.is_empty()), "no empty chunk after the first");
                assert!(chunks.iter().all(|c| c.series.iter().map(|s| s.values.len()).sum::<usize>() < max + 6), "{max}");
            }
        }
        // A file without series is one empty chunk; a broken line fails at its line.
        let (series, chunks) = chunked(dir.path(), "e.ts", b"@classLabel true a\n@data\n", 4).unwrap();
        assert!(series.is_empty() && chunks.len() == 1 && chunks[0].target == Target::SequenceClass);
        for (text, want) in [
            ("@classLabel true a\n@data\n1,2:a\n1,x:a\n", "x.ts:4: dimension 1: \"x\" is not a number"),
            ("@classLabel true a\n", "x.ts:1: no @data line"),
            ("@classLabel true a\n@data\n1,2:a\n\u{0}\n", "x.ts:4: expected the values, then ':' and the label"),
        ] {
            let got = chunked(dir.path(), "x.ts", text.as_bytes(), 1).unwrap_err().to_string();
            assert!(got.ends_with(want) || got.contains(want), "{text:?}: {got}");
        }
        let got = chunked(dir.path(), "x.ts", b"@classLabel true a\n@data\n1,2:a\n\xff\n", 1).unwrap_err().to_string();
        assert!(got.contains("x.ts:4: not valid UTF-8 (byte 1 of the line)"), "{got}");
    }

    #[test]
    fn written_files_read_back_equal() {
        let set = crate::data::synthetic::series_majority(5, 9, true, 3);
        let back = parse_ts(to_ts_string(&set).unwrap().as_bytes(), Path::new("m.ts")).unwrap();
        assert_eq!((back.dims, back.target, &back.classes), (set.dims, set.target, &set.classes));
        for (a, b) in back.series.iter().zip(&set.series) {
            assert_eq!((a.len, &a.label), (b.len, &b.label));
            assert!(a.values.iter().zip(&b.values).all(|(x, y)| x == y || (x.is_nan() && y.is_nan())));
        }
        let set = crate::data::synthetic::series_far_context(3, 6, 4);
        assert!(to_ts_string(&set).is_err(), "per-vector labels do not fit .ts");
        let back = parse_text(to_text_string(&set).as_bytes(), Path::new("f.txt")).unwrap();
        assert_eq!(
            back.series.iter().map(|s| (&s.values, &s.label)).collect::<Vec<_>>(),
            set.series.iter().map(|s| (&s.values, &s.label)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn dev_split_is_stratified_and_seeded() {
        let mut text = String::from("@classLabel true a b c\n@data\n");
        for i in 0..31 {
            text.push_str(&format!("1,2:{}\n", ["a", "a", "b"][i % 3]));
        }
        text.push_str("1,2:c\n");
        let s = ts(&text).unwrap();
        let (train, dev) = s.split(0.25, 7).unwrap();
        assert_eq!(train.len() + dev.len(), 32);
        let count = |idx: &[usize], c: u32| idx.iter().filter(|&&i| s.series[i].label == Label::Class(c)).count();
        assert_eq!(
            (count(&dev, 0), count(&dev, 1), count(&dev, 2)),
            (5, 3, 0),
            "a quarter of each class (21 a, 10 b), rounded; the single c stays in train"
        );
        assert_eq!(s.split(0.25, 7).unwrap(), (train.clone(), dev.clone()));
        assert_ne!(s.split(0.25, 8).unwrap().1, dev, "another seed, another draw");
        let one = ts("@classLabel true a\n@data\n1:a\n").unwrap();
        assert!(one.split(0.2, 1).unwrap_err().to_string().contains("give a dev file"));
    }

    #[test]
    fn text_format_reads_sequences_with_a_label_per_vector() {
        let text = "# two sequences\n0.5 1 A\n? 2 B\n\n\n3\t4 A\n";
        let s = parse_text(text.as_bytes(), Path::new("v.txt")).unwrap();
        assert_eq!((s.dims, s.target, s.series.len()), (2, Target::VectorClass, 2));
        assert_eq!(s.classes, ["A", "B"]);
        assert_eq!(s.series[0].label, Label::PerVector(vec![0, 1]));
        assert!(s.series[0].values[2].is_nan());
        assert_eq!((s.series[1].len, s.series[1].line), (1, 6));
        let s = parse_text(b"1 2 _\n3 4 _\n", Path::new("v.txt")).unwrap();
        assert_eq!((s.target, &s.series[0].label), (Target::Unlabelled, &Label::None));
        for (text, want) in [
            ("1 2 A\n3 B\n", "v.txt:2: 1 values, but the first vector of the file has 2"),
            ("1\n", "v.txt:1: expected the vector's values, then its label"),
            ("1 x A\n", "v.txt:1: \"x\" is not a number"),
            ("1 A\n2 _\n", "v.txt:2: this vector has no label (_) but the one on line 1 has a label"),
        ] {
            let got = err(parse_text(text.as_bytes(), Path::new("v.txt")));
            assert!(got.contains(want), "{text:?}: got {got:?}");
        }
    }

    fn npz(arrays: &[(&str, Vec<u64>, NpzData)]) -> Vec<u8> {
        use npyz::WriterBuilder;
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut w = npyz::npz::NpzWriter::new(&mut buf);
            for (name, shape, data) in arrays {
                match data {
                    NpzData::F32(v) => {
                        let mut a = w.array(name, Default::default()).unwrap().default_dtype().shape(shape).begin_nd().unwrap();
                        a.extend(v.iter().copied()).unwrap();
                        a.finish().unwrap();
                    }
                    NpzData::I64(v) => {
                        let mut a = w.array(name, Default::default()).unwrap().default_dtype().shape(shape).begin_nd().unwrap();
                        a.extend(v.iter().copied()).unwrap();
                        a.finish().unwrap();
                    }
                }
            }
        }
        buf.into_inner()
    }

    enum NpzData {
        F32(Vec<f32>),
        I64(Vec<i64>),
    }

    #[test]
    fn npz_reads_padded_sequences_lengths_and_labels() {
        let x: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let bytes = npz(&[
            ("x", vec![2, 3, 2], NpzData::F32(x.clone())),
            ("lengths", vec![2], NpzData::I64(vec![3, 1])),
            ("y", vec![2, 3], NpzData::I64(vec![1, 0, 1, 2, -1, -1])),
        ]);
        let s = parse_npz(&bytes, Path::new("a.npz")).unwrap();
        assert_eq!((s.dims, s.target, s.series.len()), (2, Target::VectorClass, 2));
        assert_eq!(s.classes, ["0", "1", "2"]);
        assert_eq!(s.series[0].label, Label::PerVector(vec![1, 0, 1]));
        assert_eq!((s.series[1].len, &s.series[1].values), (1, &vec![6.0, 7.0]));
        assert_eq!(s.series[1].label, Label::PerVector(vec![2]));
        let bytes = npz(&[("x", vec![2, 3, 2], NpzData::F32(x.clone())), ("y", vec![2], NpzData::I64(vec![10, 2]))]);
        let s = parse_npz(&bytes, Path::new("a.npz")).unwrap();
        assert_eq!((s.target, &s.classes), (Target::SequenceClass, &vec!["2".to_string(), "10".to_string()]));
        assert_eq!(s.series[0].label, Label::Class(1));
        let bytes = npz(&[("x", vec![2, 3, 2], NpzData::F32(x.clone())), ("y", vec![2], NpzData::F32(vec![0.5, 2.0]))]);
        assert_eq!(parse_npz(&bytes, Path::new("a.npz")).unwrap().target, Target::SequenceValue);
        for (arrays, want) in [
            (npz(&[("z", vec![1], NpzData::F32(vec![1.0]))]), "a.npz: no array named \"x\""),
            (npz(&[("x", vec![4], NpzData::F32(vec![1.0; 4]))]), "array \"x\": shape [4]: expected"),
            (
                npz(&[("x", vec![2, 3, 2], NpzData::F32(x.clone())), ("lengths", vec![2], NpzData::I64(vec![4, 1]))]),
                "array \"lengths\": entry 0 is 4, expected 1..=3",
            ),
            (npz(&[("x", vec![2, 3, 2], NpzData::F32(x.clone())), ("y", vec![3], NpzData::I64(vec![0, 1, 2]))]), "array \"y\": shape [3]"),
        ] {
            let got = err(parse_npz(&arrays, Path::new("a.npz")));
            assert!(got.contains(want), "got {got:?}, want {want:?}");
        }
        assert!(err(parse_npz(b"not a zip", Path::new("a.npz"))).contains("a.npz: not a .npz archive"));
    }
}
