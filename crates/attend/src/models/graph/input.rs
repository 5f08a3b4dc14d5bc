//! A graph read from disk made ready for a model: features (sparse when
//! mostly zeros), the CSR graph with the model's self loops, labels.

use super::config::GraphModelConfig;
use crate::data::planetoid::GraphData;
use crate::error::{Error, Result};
use attend_kernels::graph::Graph;
use attend_kernels::sparse::SparseRows;
use candle_core::{Device, Tensor};
use std::sync::Arc;

/// Node features: dense, or sparse rows (used when at most a quarter of
/// the entries are non-zero; the first layer then costs nnz x width).
#[derive(Clone)]
pub enum Features {
    Dense(Tensor),
    Sparse(Arc<SparseRows>),
}

/// A graph ready for a model: features, the CSR graph, labels
/// (`u32::MAX` for unlabelled nodes). Cloning shares the features and the
/// graph.
#[derive(Clone)]
pub struct GraphInput {
    pub features: Features,
    pub graph: Arc<Graph>,
    pub labels: Vec<u32>,
}

impl GraphInput {
    /// Builds the model input from data read from disk, checking it fits the
    /// model's feature dimension and classes.
    pub fn new(data: &GraphData, config: &GraphModelConfig) -> Result<Self> {
        if data.feature_dim > config.feature_dim {
            return Err(Error::Input(format!(
                "{}: nodes.tsv has features up to index {} but the model takes {} features",
                data.dir.display(),
                data.feature_dim - 1,
                config.feature_dim
            )));
        }
        if data.classes > config.classes {
            return Err(Error::Input(format!(
                "{}: nodes.tsv has class {} but the model knows {} classes (0..{})",
                data.dir.display(),
                data.classes - 1,
                config.classes,
                config.classes
            )));
        }
        let mut data = data.clone();
        if data.feature_dim < config.feature_dim {
            // Pad rows: the file's largest index is below the model's.
            let (old, new) = (data.feature_dim, config.feature_dim);
            data.features =
                data.features.chunks_exact(old.max(1)).flat_map(|r| r.iter().copied().chain(std::iter::repeat_n(0.0, new - old))).collect();
            data.feature_dim = new;
        }
        if config.normalize_features {
            data.normalize_rows();
        }
        let (graph, _) = data.graph(config.self_loops)?;
        let nodes = data.labels.len();
        let nnz = data.features.iter().filter(|x| **x != 0.0).count();
        let features = if nnz * 4 <= data.features.len() {
            Features::Sparse(Arc::new(SparseRows::from_dense(&data.features, nodes, config.feature_dim)))
        } else {
            Features::Dense(Tensor::from_vec(data.features, (nodes, config.feature_dim), &Device::Cpu)?)
        };
        Ok(GraphInput { features, graph: Arc::new(graph), labels: data.labels.iter().map(|l| l.unwrap_or(u32::MAX)).collect() })
    }
}
