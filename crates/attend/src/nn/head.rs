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
