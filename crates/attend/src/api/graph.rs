//! Graph node classification, from a graph directory or arrays in memory:
//! train a graph attention model on the labelled split, then a class and
//! its probability for the nodes asked about.
//!
//! ```
//! use attend::api::graph::{predict_nodes, GraphJob, NodeSelection};
//! use attend::data::planetoid::GraphData;
//! use attend::models::graph::config::GraphSettings;
//!
//! // Two communities of 20 nodes (a ring each, joined by one edge); a
//! // node's two features say weakly which it is in, its neighbours say more.
//! let n = 40;
//! let community = |i: usize| (i >= 20) as u32;
//! let features: Vec<f32> = (0..n).flat_map(|i| if (community(i) == 1) ^ (i % 5 == 0) { [0.3, 0.7] } else { [0.7, 0.3] }).collect();
//! let mut edges: Vec<(u64, u64)> = (0..n as u64).map(|i| (i, if i % 20 == 19 { i - 19 } else { i + 1 })).collect();
//! edges.push((0, 20));
//! let labels: Vec<Option<u32>> = (0..n).map(|i| (i % 4 != 3).then(|| community(i))).collect(); // every 4th unlabelled
//! let train: Vec<usize> = (0..n).filter(|i| i % 4 == 0 || i % 4 == 1).collect();
//! let val: Vec<usize> = (0..n).filter(|i| i % 4 == 2).collect();
//! let data = GraphData::from_arrays(features, 2, edges, labels, [train, val, vec![]])?;
//!
//! let mut settings = GraphSettings::default();
//! settings.train.max_epochs = 200;
//! let (model, run) = GraphJob::new(&data, &settings)?.run(None, None, &mut attend::train::Silent)?;
//! assert!(run.val.accuracy >= 0.8, "{run:?}");
//! let predicted = predict_nodes(&model, &data, NodeSelection::Unlabelled)?;
//! assert_eq!(predicted.len(), 10);
//! let right = predicted.iter().filter(|p| p.prediction == community(p.node)).count();
//! assert!(right >= 8, "{right} of 10 unlabelled nodes right");
//! # Ok::<(), attend::Error>(())
//! ```

use crate::data::planetoid::GraphData;
use crate::error::Result;
use crate::models::graph::config::{GraphModelConfig, GraphSettings, GraphTrainConfig};
use crate::models::graph::task::{train_graph, GraphRun};
use crate::models::graph::{GraphClassifier, GraphInput, Scores};
use crate::train::{self, Observer, Resume, RunOptions};
use serde::Serialize;
use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// A graph model with its input and settings, ready to train.
pub struct GraphJob<'a> {
    pub model: GraphClassifier,
    /// Built for the model's config; borrowed when several runs share it.
    pub input: Cow<'a, GraphInput>,
    pub data: &'a GraphData,
    pub train: GraphTrainConfig,
    pub resume: Option<Resume<Scores>>,
}

impl<'a> GraphJob<'a> {
    /// A new model for `data` (its feature width and classes) with `settings`.
    pub fn new(data: &'a GraphData, settings: &GraphSettings) -> Result<Self> {
        let config = GraphModelConfig { feature_dim: data.feature_dim, classes: data.classes, ..settings.model.clone() };
        let input = GraphInput::new(data, &config)?;
        let model = GraphClassifier::new(config, settings.train.seed)?;
        Ok(GraphJob { model, input: Cow::Owned(input), data, train: settings.train.clone(), resume: None })
    }

    /// A new model of architecture `config` (sized already) on `input`,
    /// which [`GraphInput::new`] built from `data` for that config: the
    /// seeds of a multi-seed run share one.
    pub fn with_input(input: &'a GraphInput, data: &'a GraphData, config: GraphModelConfig, train: GraphTrainConfig) -> Result<Self> {
        let model = GraphClassifier::new(config, train.seed)?;
        Ok(GraphJob { model, input: Cow::Borrowed(input), data, train, resume: None })
    }

    /// The run saved in `dir`, to continue on `data`; `max_minutes`
    /// bounds this session.
    pub fn resume(dir: &Path, data: &'a GraphData, max_minutes: Option<f64>) -> Result<Self> {
        let run = train::load_run::<GraphClassifier, Scores>(dir)?;
        let input = GraphInput::new(data, &run.model.config)?;
        let mut job = GraphJob { model: run.model, input: Cow::Owned(input), data, train: run.train, resume: Some(run.resume) };
        if max_minutes.is_some() {
            job.train.max_minutes = max_minutes;
        }
        Ok(job)
    }

    /// [`GraphJob::resume`] on an input already built for the saved config
    /// (one seed of a multi-seed run).
    pub fn resume_with_input(dir: &Path, input: &'a GraphInput, data: &'a GraphData) -> Result<Self> {
        let run = train::load_run::<GraphClassifier, Scores>(dir)?;
        Ok(GraphJob { model: run.model, input: Cow::Borrowed(input), data, train: run.train, resume: Some(run.resume) })
    }

    /// Trains on the training nodes with model selection on the validation
    /// nodes, then scores the test nodes; with `dir`, saves there.
    pub fn run(
        self,
        dir: Option<&Path>,
        interrupt: Option<&AtomicBool>,
        observer: &mut dyn Observer,
    ) -> Result<(GraphClassifier, GraphRun)> {
        let options = RunOptions { checkpoint_dir: dir, resume: self.resume, interrupt };
        let d = self.data;
        let run = train_graph(&self.model, &self.input, [&d.train, &d.val, &d.test], &self.train, options, observer)?;
        Ok((self.model, run))
    }
}

/// Which nodes to label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeSelection {
    /// Every node.
    All,
    /// Only nodes without a label.
    Unlabelled,
}

/// A node's predicted class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodePrediction {
    pub node: usize,
    pub prediction: u32,
    /// The model's probability of that class.
    pub probability: f32,
    /// The node's own label in the data, if it has one.
    pub label: Option<u32>,
}

/// The class of each selected node of `data`, in node order.
pub fn predict_nodes(model: &GraphClassifier, data: &GraphData, nodes: NodeSelection) -> Result<Vec<NodePrediction>> {
    let input = GraphInput::new(data, &model.config)?;
    let predicted = model.predict_with_probability(&input)?;
    Ok((0..data.nodes())
        .filter(|&i| nodes == NodeSelection::All || data.labels[i].is_none())
        .map(|i| NodePrediction { node: i, prediction: predicted[i].0, probability: predicted[i].1, label: data.labels[i] })
        .collect())
}
