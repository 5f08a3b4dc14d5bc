//! The original Planetoid release (Yang et al. 2016,
//! <https://github.com/kimiyoung/planetoid>, MIT licence) turned into a
//! graph directory ([`super::planetoid`]).
//!
//! The release keeps each data set `NAME` (cora, citeseer, pubmed) in eight
//! files: `ind.NAME.x`, `.y` (the labelled training nodes), `.allx`, `.ally`
//! (every node that is not a test node), `.tx`, `.ty` (the test nodes),
//! `.graph` (a dict from node to its neighbours) and `.test.index` (the
//! test nodes' ids, one per line). All but the last are Python 2 pickles,
//! read here by [`super::pickle`].
//!
//! The conversion follows the GCN and PyTorch Geometric loaders, so the
//! result is the "Planetoid split" everyone reports on:
//! - nodes are `allx` then `tx`, and the test rows are moved to the ids
//!   `test.index` gives them; where the test ids have gaps (CiteSeer's
//!   isolated nodes), the missing rows get no features and no label;
//! - a node's label is the class its one-hot row marks (`?` if none);
//! - train is the first `len(y)` nodes, val the next 500, test the test ids;
//! - edges are every (node, neighbour) of the graph dict, without self
//!   edges and duplicates, sorted.

use super::pickle::{self, Array};
use super::planetoid::GraphData;
use crate::error::{Error, Result};
use std::path::Path;

/// Validation nodes of the Planetoid split.
pub const VAL_NODES: usize = 500;

fn load(dir: &Path, name: &str, part: &str) -> Result<pickle::Value> {
    let path = dir.join(format!("ind.{name}.{part}"));
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    pickle::load(&bytes, &path.display().to_string()).map_err(Error::Input)
}

fn matrix(dir: &Path, name: &str, part: &str, sparse: bool) -> Result<Array> {
    let v = load(dir, name, part)?;
    let path = dir.join(format!("ind.{name}.{part}"));
    let a = if sparse { pickle::csr_matrix(&v) } else { pickle::ndarray(&v) };
    let a = a.map_err(|m| Error::Input(format!("{}: {m}", path.display())))?;
    if a.shape.len() != 2 {
        return Err(Error::Input(format!("{}: expected a matrix, found shape {:?}", path.display(), a.shape)));
    }
    Ok(a)
}

/// Reads the release files of data set `name` from `dir`.
pub fn convert(dir: impl AsRef<Path>, name: &str) -> Result<GraphData> {
    let dir = dir.as_ref();
    let x = matrix(dir, name, "x", true)?;
    let allx = matrix(dir, name, "allx", true)?;
    let tx = matrix(dir, name, "tx", true)?;
    let ally = matrix(dir, name, "ally", false)?;
    let ty = matrix(dir, name, "ty", false)?;
    let features = allx.shape[1];
    let classes = ally.shape[1];
    let index_path = dir.join(format!("ind.{name}.test.index"));
    let text = std::fs::read(&index_path).map_err(|e| Error::io(&index_path, e))?;
    let mut test_index = Vec::new();
    for line in super::conllu::utf8_lines(&text, &index_path) {
        let (number, line) = line?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let id: usize = line.parse().map_err(|_| Error::Parse {
            path: index_path.clone(),
            line: number,
            message: format!("not a node id: {line:?}"),
        })?;
        test_index.push(id);
    }
    let fail = |m: String| Error::Input(format!("{}: {m}", dir.display()));
    if tx.shape[1] != features || x.shape[1] != features || ty.shape[1] != classes {
        return Err(fail("the feature or class widths of x, allx, tx, y, ally, ty differ".into()));
    }
    if tx.shape[0] != test_index.len() || ty.shape[0] != test_index.len() || allx.shape[0] != ally.shape[0] {
        return Err(fail(format!(
            "row counts do not match: allx {}, ally {}, tx {}, ty {}, test.index {}",
            allx.shape[0],
            ally.shape[0],
            tx.shape[0],
            ty.shape[0],
            test_index.len()
        )));
    }
    let mut sorted = test_index.clone();
    sorted.sort_unstable();
    let (Some(&lo), Some(&hi)) = (sorted.first(), sorted.last()) else { return Err(fail("test.index lists no nodes".into())) };
    if lo != allx.shape[0] {
        return Err(fail(format!("test ids start at {lo}, but allx has {} rows (the test nodes follow them)", allx.shape[0])));
    }
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(fail("test.index lists a node twice".into()));
    }
    // Test rows in the order of the sorted ids, with empty rows in the gaps.
    let span = hi - lo + 1;
    let mut test_x = vec![0.0; span * features];
    let mut test_y = vec![0.0; span * classes];
    for (row, &id) in sorted.iter().enumerate() {
        let k = id - lo;
        test_x[k * features..(k + 1) * features].copy_from_slice(&tx.data[row * features..(row + 1) * features]);
        test_y[k * classes..(k + 1) * classes].copy_from_slice(&ty.data[row * classes..(row + 1) * classes]);
    }
    let nodes = allx.shape[0] + span;
    let mut all_x: Vec<f64> = allx.data.iter().chain(&test_x).copied().collect();
    let mut all_y: Vec<f64> = ally.data.iter().chain(&test_y).copied().collect();
    // x[test_index] = x[sorted test_index], as the reference loaders do.
    let (old_x, old_y) = (all_x.clone(), all_y.clone());
    for (&to, &from) in test_index.iter().zip(&sorted) {
        all_x[to * features..(to + 1) * features].copy_from_slice(&old_x[from * features..(from + 1) * features]);
        all_y[to * classes..(to + 1) * classes].copy_from_slice(&old_y[from * classes..(from + 1) * classes]);
    }
    let labels: Vec<Option<u32>> = all_y
        .chunks_exact(classes)
        .map(|row| {
            let best = row.iter().enumerate().fold((0, 0.0), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
            (best.1 > 0.0).then_some(best.0 as u32)
        })
        .collect();
    let graph = load(dir, name, "graph")?;
    let graph_path = dir.join(format!("ind.{name}.graph"));
    let entries = graph.entries().ok_or_else(|| Error::Input(format!("{}: expected a dict of neighbour lists", graph_path.display())))?;
    let mut edges = Vec::new();
    for (k, v) in entries {
        let node = |v: &pickle::Value| v.as_int().and_then(|i| u64::try_from(i).ok()).filter(|&i| (i as usize) < nodes);
        let bad = || Error::Input(format!("{}: a node id that is not in 0..{nodes}", graph_path.display()));
        let source = node(&k).ok_or_else(bad)?;
        for t in v.elements().ok_or_else(|| Error::Input(format!("{}: node {source} has no neighbour list", graph_path.display())))? {
            let target = node(&t).ok_or_else(bad)?;
            if target != source {
                edges.push((source, target));
            }
        }
    }
    edges.sort_unstable();
    edges.dedup();
    let train: Vec<usize> = (0..x.shape[0]).collect();
    let val: Vec<usize> = (x.shape[0]..(x.shape[0] + VAL_NODES).min(allx.shape[0])).collect();
    for &i in train.iter().chain(&val).chain(&sorted) {
        if labels[i].is_none() {
            return Err(fail(format!("split node {i} has no label")));
        }
    }
    Ok(GraphData {
        dir: dir.to_path_buf(),
        features: all_x.iter().map(|&v| v as f32).collect(),
        feature_dim: features,
        labels,
        classes,
        edges,
        train,
        val,
        test: sorted,
    })
}
