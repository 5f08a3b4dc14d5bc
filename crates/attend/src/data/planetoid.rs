//! Node-classification graphs in a plain text format (Cora and the other
//! Planetoid sets, or your own).
//!
//! A graph directory holds:
//! - `nodes.tsv`: line i describes node i (ids are line order, from 0):
//!   `label<TAB>feature:value feature:value ...`. The label is a class
//!   number (0, 1, ...) or `?` for an unlabelled node; features are sparse,
//!   0-based indices with finite values, any order, each index at most once.
//!   The feature dimension is the largest index + 1 (a model trained on one
//!   graph needs the same dimension on the next).
//! - `edges.tsv`: `source<TAB>target` per line, node ids from 0. The edge
//!   list is read as undirected (each edge is used both ways); repeated
//!   edges are merged and self edges dropped (the model adds one self loop
//!   per node itself). A node id out of range is an error.
//! - `train.txt`, `val.txt`, `test.txt`: one node id per line; each node
//!   named must be labelled, and the three sets must not overlap.
//!
//! Blank lines and lines starting with `#` are skipped in every file.
//! Errors name the file and line.

use crate::data::conllu::{parse_err, utf8_lines};
use crate::error::{Error, Result};
use attend_kernels::graph::{EdgeOptions, EdgeStats, Graph};
use std::path::{Path, PathBuf};

/// A labelled graph with its split.
#[derive(Debug, Clone)]
pub struct GraphData {
    pub dir: PathBuf,
    /// Dense features `[nodes, feature_dim]`.
    pub features: Vec<f32>,
    pub feature_dim: usize,
    /// Class of each node, `None` if unlabelled.
    pub labels: Vec<Option<u32>>,
    /// Number of classes (largest label + 1).
    pub classes: usize,
    /// `(source, target)` as given (before merging and reversing).
    pub edges: Vec<(u64, u64)>,
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}

impl GraphData {
    /// A graph in memory: dense `features` (`[nodes, feature_dim]`, row
    /// major), `edges` as (source, target) node ids (each direction is
    /// added, repeats merged), a class or `None` per node, and the split.
    /// Ids are checked: every edge end and split node is a node, split
    /// nodes are labelled and in one split only.
    pub fn from_arrays(
        features: Vec<f32>,
        feature_dim: usize,
        edges: Vec<(u64, u64)>,
        labels: Vec<Option<u32>>,
        splits: [Vec<usize>; 3],
    ) -> Result<GraphData> {
        let nodes = labels.len();
        if feature_dim == 0 || features.len() != nodes * feature_dim {
            return Err(Error::Input(format!("{} feature values for {nodes} nodes of {feature_dim} features", features.len())));
        }
        if let Some(&(a, b)) = edges.iter().find(|&&(a, b)| a >= nodes as u64 || b >= nodes as u64) {
            return Err(Error::Input(format!("edge ({a}, {b}) names a node beyond the {nodes} given")));
        }
        let mut seen = vec![None; nodes];
        for (split, name) in splits.iter().zip(["train", "val", "test"]) {
            for &n in split {
                match (labels.get(n), seen.get(n)) {
                    (None, _) => return Err(Error::Input(format!("{name} node {n} is beyond the {nodes} given"))),
                    (Some(None), _) => return Err(Error::Input(format!("{name} node {n} has no label"))),
                    (_, Some(Some(other))) => return Err(Error::Input(format!("node {n} is in both {other} and {name}"))),
                    _ => seen[n] = Some(name),
                }
            }
        }
        let classes = labels.iter().flatten().max().map_or(0, |&m| m as usize + 1);
        let [train, val, test] = splits;
        Ok(GraphData { dir: PathBuf::from("<memory>"), features, feature_dim, labels, classes, edges, train, val, test })
    }

    pub fn nodes(&self) -> usize {
        self.labels.len()
    }

    /// The graph the models use: undirected, with a self loop per node when
    /// `self_loops`.
    pub fn graph(&self, self_loops: bool) -> Result<(Graph, EdgeStats)> {
        Graph::from_edges(self.nodes(), &self.edges, EdgeOptions { symmetric: true, self_loops })
            .map_err(|e| Error::Input(format!("{}: {e}", self.dir.join("edges.tsv").display())))
    }

    /// Scales each node's features to sum to 1 (rows of zeros stay zero),
    /// as GAT does for the Planetoid sets.
    pub fn normalize_rows(&mut self) {
        let d = self.feature_dim.max(1);
        for row in self.features.chunks_exact_mut(d) {
            let sum: f32 = row.iter().sum();
            if sum != 0.0 {
                row.iter_mut().for_each(|x| *x /= sum);
            }
        }
    }

    /// Labels of `nodes` as u32 (every split node is labelled: checked on read).
    pub fn labels_of(&self, nodes: &[usize]) -> Vec<u32> {
        nodes.iter().map(|&i| self.labels[i].expect("split nodes are labelled")).collect()
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Non-empty, non-comment lines as (line number, text).
fn content_lines<'a>(bytes: &'a [u8], path: &'a Path) -> impl Iterator<Item = Result<(usize, &'a str)>> + 'a {
    utf8_lines(bytes, path).filter(|item| match item {
        Ok((_, line)) => !(line.trim().is_empty() || line.starts_with('#')),
        Err(_) => true,
    })
}

fn node_id(text: &str, path: &Path, line: usize, nodes: usize, what: &str) -> Result<usize> {
    let id: u64 =
        text.trim().parse().map_err(|_| parse_err(path, line, format!("{what} {text:?} is not a node id (a whole number from 0)")))?;
    if id >= nodes as u64 {
        return Err(parse_err(path, line, format!("{what} {id} is out of range: nodes.tsv has {nodes} nodes (ids 0..{nodes})")));
    }
    Ok(id as usize)
}

/// Parses `nodes.tsv` into (features, feature_dim, labels). Refuses up
/// front a graph whose dense features would not fit in available memory.
pub fn parse_nodes(bytes: &[u8], path: &Path, min_feature_dim: usize) -> Result<(Vec<f32>, usize, Vec<Option<u32>>)> {
    parse_nodes_within(bytes, path, min_feature_dim, crate::memory::available_bytes() / 4)
}

/// [`parse_nodes`] with the dense feature matrix limited to `max_floats`.
pub fn parse_nodes_within(
    bytes: &[u8],
    path: &Path,
    min_feature_dim: usize,
    max_floats: u64,
) -> Result<(Vec<f32>, usize, Vec<Option<u32>>)> {
    let mut rows: Vec<Vec<(usize, f32)>> = Vec::new();
    let mut labels = Vec::new();
    let mut dim = min_feature_dim;
    for item in content_lines(bytes, path) {
        let (lineno, line) = item?;
        let (label, feats) = line.split_once('\t').unwrap_or((line, ""));
        let label = label.trim();
        labels.push(match label {
            "?" => None,
            _ => Some(label.parse::<u32>().map_err(|_| {
                parse_err(path, lineno, format!("label {label:?} is not a class number (0, 1, ...) or ? (is the line tab-separated?)"))
            })?),
        });
        let mut row = Vec::new();
        for pair in feats.split_whitespace() {
            let (idx, value) =
                pair.split_once(':').ok_or_else(|| parse_err(path, lineno, format!("feature {pair:?} is not index:value")))?;
            let idx: usize =
                idx.parse().map_err(|_| parse_err(path, lineno, format!("feature index {idx:?} is not a whole number from 0")))?;
            let value: f32 =
                value.parse().map_err(|_| parse_err(path, lineno, format!("feature {idx} value {value:?} is not a number")))?;
            if !value.is_finite() {
                return Err(parse_err(path, lineno, format!("feature {idx} is {value}: features must be finite")));
            }
            if idx >= 1 << 24 {
                return Err(parse_err(path, lineno, format!("feature index {idx} is too large (limit 16,777,215)")));
            }
            dim = dim.max(idx + 1);
            row.push((idx, value));
        }
        row.sort_unstable_by_key(|&(i, _)| i);
        if let Some(w) = row.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(parse_err(path, lineno, format!("feature {} is given twice", w[0].0)));
        }
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(Error::Input(format!("{}: no nodes (the file is empty)", path.display())));
    }
    let floats = rows.len() as u64 * dim as u64;
    if floats > max_floats {
        return Err(Error::Input(format!(
            "{}: {} nodes x {dim} features take {} as dense f32, more than the {} available; \
             reduce the feature indices (the dimension is the largest index + 1)",
            path.display(),
            rows.len(),
            crate::memory::human_bytes(floats * 4),
            crate::memory::human_bytes(max_floats * 4)
        )));
    }
    let mut features = vec![0f32; rows.len() * dim];
    for (i, row) in rows.iter().enumerate() {
        for &(j, x) in row {
            features[i * dim + j] = x;
        }
    }
    Ok((features, dim, labels))
}

/// Parses `edges.tsv` for a graph of `nodes` nodes.
pub fn parse_edges(bytes: &[u8], path: &Path, nodes: usize) -> Result<Vec<(u64, u64)>> {
    let mut edges = Vec::new();
    for item in content_lines(bytes, path) {
        let (lineno, line) = item?;
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != 2 {
            return Err(parse_err(path, lineno, format!("expected source<TAB>target, found {} tab-separated fields", fields.len())));
        }
        let src = node_id(fields[0], path, lineno, nodes, "source")?;
        let dst = node_id(fields[1], path, lineno, nodes, "target")?;
        edges.push((src as u64, dst as u64));
    }
    Ok(edges)
}

/// Parses a split file (one node id per line); every node must be labelled.
pub fn parse_split(bytes: &[u8], path: &Path, labels: &[Option<u32>]) -> Result<Vec<usize>> {
    let mut ids = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for item in content_lines(bytes, path) {
        let (lineno, line) = item?;
        let id = node_id(line, path, lineno, labels.len(), "node")?;
        if labels[id].is_none() {
            return Err(parse_err(path, lineno, format!("node {id} has no label (? in nodes.tsv) but is in this split")));
        }
        if !seen.insert(id) {
            return Err(parse_err(path, lineno, format!("node {id} is listed twice")));
        }
        ids.push(id);
    }
    Ok(ids)
}

/// Reads a graph directory (see the module docs). `min_feature_dim` is the
/// feature dimension a trained model expects (0 when training).
pub fn read_dir(dir: impl AsRef<Path>, min_feature_dim: usize) -> Result<GraphData> {
    let dir = dir.as_ref();
    let mut data = read_graph(dir, min_feature_dim)?;
    let mut splits = Vec::new();
    for name in ["train.txt", "val.txt", "test.txt"] {
        let path = dir.join(name);
        splits.push(parse_split(&read(&path)?, &path, &data.labels)?);
    }
    let [train, val, test]: [Vec<usize>; 3] = splits.try_into().expect("three splits");
    for (a, an, b, bn) in [(&train, "train", &val, "val"), (&train, "train", &test, "test"), (&val, "val", &test, "test")] {
        let set: std::collections::HashSet<_> = a.iter().collect();
        if let Some(id) = b.iter().find(|id| set.contains(id)) {
            return Err(Error::Input(format!("{}: node {id} is in both {an}.txt and {bn}.txt", dir.display())));
        }
    }
    if train.is_empty() {
        return Err(Error::Input(format!("{}: train.txt lists no nodes", dir.display())));
    }
    (data.train, data.val, data.test) = (train, val, test);
    Ok(data)
}

/// A graph directory's nodes and edges only (`nodes.tsv`, `edges.tsv`),
/// with empty splits: what labelling a graph needs.
pub fn read_graph(dir: impl AsRef<Path>, min_feature_dim: usize) -> Result<GraphData> {
    let dir = dir.as_ref();
    let nodes_path = dir.join("nodes.tsv");
    let (features, feature_dim, labels) = parse_nodes(&read(&nodes_path)?, &nodes_path, min_feature_dim)?;
    let edges_path = dir.join("edges.tsv");
    let edges = parse_edges(&read(&edges_path)?, &edges_path, labels.len())?;
    let classes = labels.iter().flatten().max().map_or(0, |&m| m as usize + 1);
    Ok(GraphData { dir: dir.to_path_buf(), features, feature_dim, labels, classes, edges, train: vec![], val: vec![], test: vec![] })
}

/// Writes `data` as a graph directory that [`read_dir`] reads back.
pub fn write_dir(data: &GraphData, dir: impl AsRef<Path>) -> Result<()> {
    use std::fmt::Write as _;
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
    };
    let mut nodes = String::new();
    for (i, label) in data.labels.iter().enumerate() {
        match label {
            Some(l) => write!(nodes, "{l}\t").expect("string write"),
            None => nodes.push_str("?\t"),
        }
        let row = &data.features[i * data.feature_dim..(i + 1) * data.feature_dim];
        let feats: Vec<String> = row.iter().enumerate().filter(|(_, v)| **v != 0.0).map(|(j, v)| format!("{j}:{v}")).collect();
        nodes.push_str(&feats.join(" "));
        nodes.push('\n');
    }
    write("nodes.tsv", nodes)?;
    write("edges.tsv", data.edges.iter().map(|(s, t)| format!("{s}\t{t}\n")).collect())?;
    for (name, ids) in [("train.txt", &data.train), ("val.txt", &data.val), ("test.txt", &data.test)] {
        write(name, ids.iter().map(|i| format!("{i}\n")).collect())?;
    }
    Ok(())
}

/// A random graph for tests and benchmarks: `edges` random (source,
/// target) pairs, sparse binary features (about `active` of `features` per
/// node) and labels that depend on both a node's own features and its
/// neighbours', so that attending to neighbours helps. Split: 20 labelled
/// nodes per class for training, then 500 validation and 1,000 test nodes
/// (fewer on small graphs).
pub fn random_graph(nodes: usize, edges: usize, features: usize, active: usize, classes: usize, seed: u64) -> GraphData {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut x = vec![0f32; nodes * features];
    for row in x.chunks_exact_mut(features) {
        for _ in 0..active {
            row[rng.random_range(0..features)] = 1.0;
        }
    }
    let edge_list: Vec<(u64, u64)> = (0..edges).map(|_| (rng.random_range(0..nodes as u64), rng.random_range(0..nodes as u64))).collect();
    // Class scores: a fixed random projection of the node's features plus
    // the mean of its neighbours'.
    let proj: Vec<f32> = (0..features * classes).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let own: Vec<Vec<f32>> = x
        .chunks_exact(features)
        .map(|row| (0..classes).map(|c| row.iter().enumerate().map(|(f, v)| v * proj[f * classes + c]).sum()).collect())
        .collect();
    let mut neigh = vec![vec![0f32; classes]; nodes];
    let mut degree = vec![0usize; nodes];
    for &(s, t) in &edge_list {
        for (a, b) in [(s as usize, t as usize), (t as usize, s as usize)] {
            degree[b] += 1;
            for c in 0..classes {
                neigh[b][c] += own[a][c];
            }
        }
    }
    let labels: Vec<Option<u32>> = (0..nodes)
        .map(|i| {
            let score = |c: usize| own[i][c] + 2.0 * neigh[i][c] / degree[i].max(1) as f32;
            Some((0..classes).max_by(|&a, &b| score(a).total_cmp(&score(b))).unwrap_or(0) as u32)
        })
        .collect();
    let mut order: Vec<usize> = (0..nodes).collect();
    for i in (1..nodes).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let mut per_class = vec![0usize; classes];
    let (mut train, mut rest) = (Vec::new(), Vec::new());
    for &i in &order {
        let c = labels[i].unwrap_or(0) as usize;
        if per_class[c] < 20 {
            per_class[c] += 1;
            train.push(i);
        } else {
            rest.push(i);
        }
    }
    let val_len = 500.min(rest.len() / 3);
    let test_len = 1000.min(rest.len() - val_len);
    let val = rest[..val_len].to_vec();
    let test = rest[val_len..val_len + test_len].to_vec();
    GraphData {
        dir: PathBuf::from(format!("random-{nodes}-{edges}")),
        features: x,
        feature_dim: features,
        labels,
        classes,
        edges: edge_list,
        train,
        val,
        test,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err<T: std::fmt::Debug>(r: Result<T>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn nodes_parse_and_bad_lines_name_file_and_line() {
        let p = Path::new("g/nodes.tsv");
        let (f, dim, labels) = parse_nodes(b"1\t2:0.5 0:1\n# comment\n?\t\n0\t1:2\n", p, 0).unwrap();
        assert_eq!(dim, 3);
        assert_eq!(labels, vec![Some(1), None, Some(0)]);
        assert_eq!(f, vec![1.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0]);
        assert_eq!(parse_nodes(b"0\t1:1\n", p, 5).unwrap().1, 5);
        assert_eq!(
            err(parse_nodes(b"0\t1:1\ncat\t1:1\n", p, 0)),
            "g/nodes.tsv:2: label \"cat\" is not a class number (0, 1, ...) or ? (is the line tab-separated?)"
        );
        assert_eq!(err(parse_nodes(b"0\t1:NaN\n", p, 0)), "g/nodes.tsv:1: feature 1 is NaN: features must be finite");
        assert_eq!(err(parse_nodes(b"0\t1:inf\n", p, 0)), "g/nodes.tsv:1: feature 1 is inf: features must be finite");
        assert_eq!(err(parse_nodes(b"0\t1=2\n", p, 0)), "g/nodes.tsv:1: feature \"1=2\" is not index:value");
        assert_eq!(err(parse_nodes(b"0\t1:1 1:2\n", p, 0)), "g/nodes.tsv:1: feature 1 is given twice");
        assert_eq!(err(parse_nodes(b"\n\n", p, 0)), "g/nodes.tsv: no nodes (the file is empty)");
        assert_eq!(err(parse_nodes(b"0\t1:1\n\xff\n", p, 0)), "g/nodes.tsv:2: not valid UTF-8 (byte 1 of the line)");
        assert_eq!(
            err(parse_nodes_within(b"0\t1:1\n1\t1048575:1\n", p, 0, 1 << 20)),
            "g/nodes.tsv: 2 nodes x 1048576 features take 8.0 MiB as dense f32, more than the 4.0 MiB available; reduce the feature indices (the dimension is the largest index + 1)"
        );
    }

    #[test]
    fn edges_and_splits_check_ids() {
        let p = Path::new("g/edges.tsv");
        assert_eq!(parse_edges(b"0\t1\n1\t2\n", p, 3).unwrap(), vec![(0, 1), (1, 2)]);
        assert_eq!(err(parse_edges(b"0\t1\n1\t3\n", p, 3)), "g/edges.tsv:2: target 3 is out of range: nodes.tsv has 3 nodes (ids 0..3)");
        assert_eq!(err(parse_edges(b"0 1\n", p, 3)), "g/edges.tsv:1: expected source<TAB>target, found 1 tab-separated fields");
        assert_eq!(err(parse_edges(b"-1\t1\n", p, 3)), "g/edges.tsv:1: source \"-1\" is not a node id (a whole number from 0)");
        let s = Path::new("g/train.txt");
        let labels = [Some(0), None, Some(1)];
        assert_eq!(parse_split(b"2\n0\n", s, &labels).unwrap(), vec![2, 0]);
        assert_eq!(err(parse_split(b"1\n", s, &labels)), "g/train.txt:1: node 1 has no label (? in nodes.tsv) but is in this split");
        assert_eq!(err(parse_split(b"0\n0\n", s, &labels)), "g/train.txt:2: node 0 is listed twice");
    }
}
