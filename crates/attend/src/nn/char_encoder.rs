//! Character-level word encoder: a convolution over each word's characters
//! with max pooling, so a word unseen in training still gets a vector from
//! its spelling (suffixes like -ing, -ly, capitals, digits).

use super::params::{Embedding, Linear, ParamStore};
use crate::ops;
use candle_core::{Device, Result, Tensor};

/// Char embeddings -> width-`kernel` convolution -> ReLU -> max over chars.
pub struct CharEncoder {
    pub embedding: Embedding,
    /// The convolution as one GEMM over windows of `kernel` embeddings.
    pub conv: Linear,
    pub kernel: usize,
}

impl CharEncoder {
    pub fn new(store: &mut ParamStore, name: &str, chars: usize, char_dim: usize, filters: usize, kernel: usize) -> Result<Self> {
        if kernel.is_multiple_of(2) {
            candle_core::bail!("character kernel width must be odd, got {kernel}");
        }
        Ok(CharEncoder {
            embedding: Embedding::new(store, &format!("{name}.embedding"), chars, char_dim, 0.1)?,
            conv: Linear::new(store, &format!("{name}.conv"), kernel * char_dim, filters, true)?,
            kernel,
        })
    }

    /// `ids`: `[words * max_chars]` char indices, word w's first
    /// `lengths[w]` entries real, the rest padding. Returns `[words, filters]`;
    /// a word of length 0 gets 0. One fused op (`ops::char_cnn`).
    pub fn forward(&self, ids: &[u32], lengths: &[usize], max_chars: usize) -> Result<Tensor> {
        let bias = self.conv.bias.as_ref().expect("the convolution is built with a bias");
        ops::char_cnn(&self.embedding.table, &self.conv.weight, bias, ids, lengths, max_chars, self.kernel)
    }

    /// The same function in candle ops over every padded position (the
    /// fused op's reference twin).
    pub fn forward_reference(&self, ids: &[u32], lengths: &[usize], max_chars: usize, device: &Device) -> Result<Tensor> {
        let words = lengths.len();
        let x = self.embedding.forward(&Tensor::from_slice(ids, (words, max_chars), device)?)?; // [W, L, c]
                                                                                                // Zero past each word's end, so the convolution at its last
                                                                                                // characters sees the same zeros whatever the longest word of the
                                                                                                // batch: a word's vector must not depend on its batch-mates.
        let windows = neighbour_windows(&x, lengths, self.kernel)?; //                              [W, L, k*c]
        let h = self.conv.forward(&windows)?.relu()?; //                                             [W, L, F]
        ops::masked_max(&h, lengths) //                                                              [W, F]
    }
}

/// Each position of `x` `[batch, seq, dim]` with its `kernel` (odd)
/// neighbours' vectors concatenated: `[batch, seq, kernel * dim]`, the input
/// of a convolution as one GEMM. Positions past `lengths[b]` count as zeros,
/// so a sequence's windows do not depend on its batch-mates' lengths.
pub fn neighbour_windows(x: &Tensor, lengths: &[usize], kernel: usize) -> Result<Tensor> {
    let (b, t, _) = x.dims3()?;
    let inside: Vec<f32> = lengths.iter().flat_map(|&n| (0..t).map(move |i| if i < n { 1.0 } else { 0.0 })).collect();
    let x = x.broadcast_mul(&Tensor::from_vec(inside, (b, t, 1), x.device())?)?;
    let half = kernel / 2;
    if half == 0 {
        return Ok(x);
    }
    let padded = x.pad_with_zeros(1, half, half)?;
    let windows: Vec<Tensor> = (0..kernel).map(|o| padded.narrow(1, o, t)).collect::<Result<_>>()?;
    Tensor::cat(&windows, 2)
}
