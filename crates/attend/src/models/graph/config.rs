//! A graph model's settings: architecture (`model` of its `config.json`)
//! and training (GAT's by default).

use crate::config::Settings;
use crate::nn::AttentionKernel;
use serde::{Deserialize, Serialize};

/// How a node scores a neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GraphScoreType {
    /// GAT's `LeakyReLU(a_dst . W h_i + a_src . W h_j)`.
    #[default]
    Additive,
    /// The scaled dot product `(W_q h_i) . (W_k h_j) / sqrt(channels)`.
    Dot,
}

impl std::str::FromStr for GraphScoreType {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "additive" => Ok(GraphScoreType::Additive),
            "dot" => Ok(GraphScoreType::Dot),
            _ => Err(format!("unknown graph score '{s}': use additive or dot")),
        }
    }
}

/// Architecture of a graph model, saved as `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphModelConfig {
    pub score: GraphScoreType,
    /// Graph attention layers (the last one is the output layer).
    pub layers: usize,
    /// Heads of each hidden layer (outputs concatenated).
    pub heads: usize,
    /// Features per head in hidden layers.
    pub hidden: usize,
    /// Heads of the output layer (outputs averaged).
    pub output_heads: usize,
    /// Dropout on each layer's input.
    pub dropout: f32,
    /// One input dropout mask for all heads of a layer (PyG, DGL) instead
    /// of one per head (the GAT authors' code).
    pub shared_input_dropout: bool,
    /// Dropout on the normalised attention weights.
    pub attention_dropout: f32,
    /// Dropout on the projected features `W h` where they are aggregated
    /// (after scoring), as in the reference GAT implementation.
    pub value_dropout: f32,
    /// Negative slope of the additive score's LeakyReLU.
    pub negative_slope: f32,
    /// Add each layer's input (projected when widths differ) to its output.
    pub residual: bool,
    /// Every node also attends to itself.
    pub self_loops: bool,
    /// Scale each node's features to sum to 1 before the first layer.
    pub normalize_features: bool,
    /// Fused sparse kernel, or the dense adjacency-masked reference.
    pub kernel: AttentionKernel,
    /// Set from the data when training starts.
    pub feature_dim: usize,
    pub classes: usize,
}

impl Default for GraphModelConfig {
    fn default() -> Self {
        GraphModelConfig {
            score: GraphScoreType::Additive,
            layers: 2,
            heads: 8,
            hidden: 8,
            output_heads: 1,
            dropout: 0.6,
            shared_input_dropout: false,
            attention_dropout: 0.6,
            value_dropout: 0.6,
            negative_slope: 0.2,
            residual: false,
            self_loops: true,
            normalize_features: true,
            kernel: AttentionKernel::Fused,
            feature_dim: 0,
            classes: 0,
        }
    }
}

impl GraphModelConfig {
    /// Checks the settings a user gives (everything but the data's sizes).
    pub fn validate_settings(&self) -> std::result::Result<(), String> {
        if self.layers == 0 || self.heads == 0 || self.hidden == 0 || self.output_heads == 0 {
            return Err("layers, heads, hidden and output_heads must be at least 1".into());
        }
        for (name, p) in [("dropout", self.dropout), ("attention_dropout", self.attention_dropout), ("value_dropout", self.value_dropout)] {
            if !(0.0..1.0).contains(&p) {
                return Err(format!("{name} must be in [0, 1), got {p}"));
            }
        }
        Ok(())
    }

    /// Checks the whole config, the data's sizes included.
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.validate_settings()?;
        if self.feature_dim == 0 || self.classes == 0 {
            return Err(format!("feature_dim ({}) and classes ({}) must be set from the data", self.feature_dim, self.classes));
        }
        Ok(())
    }
}

/// Optimisation settings for graph models (GAT's by default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphTrainConfig {
    /// Upper limit on epochs (full passes); early stopping usually ends sooner.
    pub max_epochs: usize,
    pub lr: f32,
    /// L2 regularisation on weight matrices (Adam's classic weight decay).
    pub l2: f32,
    /// Stop when neither validation loss nor accuracy improved for this many epochs.
    pub patience: usize,
    pub seed: u64,
    /// Stop after this many minutes of one session (the best model so far
    /// is kept; `--resume` continues).
    pub max_minutes: Option<f64>,
}

impl Default for GraphTrainConfig {
    fn default() -> Self {
        GraphTrainConfig { max_epochs: 5000, lr: 0.005, l2: 5e-4, patience: 100, seed: 42, max_minutes: None }
    }
}

impl GraphTrainConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.max_epochs == 0 || self.patience == 0 {
            return Err("max_epochs and patience must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(format!("lr must be positive, got {}", self.lr));
        }
        if !(self.l2 >= 0.0 && self.l2.is_finite()) {
            return Err(format!("l2 must be zero or positive, got {}", self.l2));
        }
        Ok(())
    }
}

/// Both tables of a graph model config (`feature_dim` and `classes` come
/// from the data).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct GraphSettings {
    pub model: GraphModelConfig,
    pub train: GraphTrainConfig,
}

impl Settings for GraphSettings {
    fn validate(&self) -> Result<(), String> {
        self.model.validate_settings()?;
        self.train.validate()
    }
}
