//! Heads: what turns the encoder's vectors into label scores.

use super::params::{Linear, ParamStore};
use crate::ops;
use candle_core::{Result, Tensor};

/// One label per vector: a linear layer over each output of the encoder.
///
/// ```
/// use attend::nn::{head::PerVectorHead, ParamStore};
/// let mut store = ParamStore::new(1);
/// let head = PerVectorHead::new(&mut store, "head", 8, 5).unwrap();
/// let h = candle_core::Tensor::zeros((2, 3, 8), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
/// assert_eq!(head.forward(&h).unwrap().dims(), &[2, 3, 5]);
/// ```
pub struct PerVectorHead {
    linear: Linear,
    labels: usize,
}

impl PerVectorHead {
    /// Parameters `NAME.weight` `[d_model, labels]` and `NAME.bias`.
    pub fn new(store: &mut ParamStore, name: &str, d_model: usize, labels: usize) -> Result<Self> {
        Ok(PerVectorHead { linear: Linear::new(store, name, d_model, labels, true)?, labels })
    }

    /// Scores `[.., labels]` for vectors `[.., d_model]`.
    pub fn forward(&self, h: &Tensor) -> Result<Tensor> {
        self.linear.forward(h)
    }

    /// Mean cross-entropy of the scores `[.., labels]` against one target
    /// per vector (`attend_kernels::loss::IGNORE` for padding or unknown labels).
    pub fn loss(&self, scores: &Tensor, targets: &[u32], label_smoothing: f32) -> Result<Tensor> {
        let rows = targets.len();
        let targets = Tensor::from_slice(targets, rows, scores.device())?;
        ops::cross_entropy(&scores.reshape((rows, self.labels))?, &targets, label_smoothing)
    }
}

/// How a [`PooledHead`] turns a sequence of vectors into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The mean of the encoder's outputs over the real vectors.
    #[default]
    Mean,
    /// A learned summary vector placed before the sequence, which attends
    /// like the others; its output is the sequence's vector. The model
    /// puts it at position 0 (see [`PooledHead::pool`]).
    Summary,
}

impl std::str::FromStr for Pooling {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "mean" => Ok(Pooling::Mean),
            "summary" | "cls" => Ok(Pooling::Summary),
            _ => Err(format!("unknown pooling '{s}': use mean or summary")),
        }
    }
}

/// One label (or number) per sequence: the encoder's outputs pooled into
/// one vector, then a linear layer.
///
/// ```
/// use attend::nn::{head::{PooledHead, Pooling}, ParamStore};
/// let mut store = ParamStore::new(1);
/// let head = PooledHead::new(&mut store, "head", 8, 3, Pooling::Mean).unwrap();
/// let h = candle_core::Tensor::ones((2, 4, 8), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
/// assert_eq!(head.forward(&h, &[4, 1]).unwrap().dims(), &[2, 3]);
/// ```
pub struct PooledHead {
    linear: Linear,
    pooling: Pooling,
}

impl PooledHead {
    /// Parameters `NAME.weight` `[d_model, outputs]` and `NAME.bias`.
    pub fn new(store: &mut ParamStore, name: &str, d_model: usize, outputs: usize, pooling: Pooling) -> Result<Self> {
        Ok(PooledHead { linear: Linear::new(store, name, d_model, outputs, true)?, pooling })
    }

    /// One vector per sequence `[batch, d_model]` from the encoder's outputs
    /// `[batch, seq, d_model]`, sequence `b` holding `lengths[b]` real vectors
    /// (for [`Pooling::Summary`], the summary vector is row 0).
    pub fn pool(&self, h: &Tensor, lengths: &[usize]) -> Result<Tensor> {
        match self.pooling {
            Pooling::Summary => h.narrow(1, 0, 1)?.squeeze(1),
            Pooling::Mean => {
                let (b, t, _) = h.dims3()?;
                let mut w = vec![0f32; b * t];
                for (row, &n) in w.chunks_mut(t).zip(lengths) {
                    row[..n].fill(1.0 / n.max(1) as f32);
                }
                h.broadcast_mul(&Tensor::from_vec(w, (b, t, 1), h.device())?)?.sum(1)
            }
        }
    }

    /// Scores `[batch, outputs]`.
    pub fn forward(&self, h: &Tensor, lengths: &[usize]) -> Result<Tensor> {
        self.linear.forward(&self.pool(h, lengths)?)
    }
}

/// Mean squared error of predictions `[rows, 1]` against `targets`.
pub fn mean_squared_error(predictions: &Tensor, targets: &[f32]) -> Result<Tensor> {
    let t = Tensor::from_slice(targets, (targets.len(), 1), predictions.device())?;
    predictions.sub(&t)?.sqr()?.mean_all()
}

/// The softmax of one row of a head's scores: class probabilities.
pub fn softmax(row: &[f32]) -> Vec<f32> {
    let top = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = row.iter().map(|&v| (v - top).exp()).collect();
    let total: f32 = e.iter().sum();
    e.into_iter().map(|v| v / total).collect()
}
