//! The word front end: each word becomes its embedding beside a vector read
//! from its spelling by the character encoder, so a word unseen in training
//! still gets a useful vector.

use super::char_encoder::CharEncoder;
use super::params::{Embedding, ParamStore};
use crate::data::batch::Batch;
use crate::nn::ctx::Ctx;
use candle_core::{Device, Result, Tensor, D};

/// Word embedding + character CNN, concatenated.
pub struct WordFeatures {
    words: Embedding,
    chars: CharEncoder,
    word_dim: usize,
    filters: usize,
}

impl WordFeatures {
    /// Parameters `words.*` and `chars.*`.
    pub fn new(
        p: &mut ParamStore,
        words: usize,
        word_dim: usize,
        chars: usize,
        char_dim: usize,
        filters: usize,
        kernel: usize,
    ) -> Result<Self> {
        Ok(WordFeatures {
            words: Embedding::new(p, "words", words, word_dim, 0.1)?,
            chars: CharEncoder::new(p, "chars", chars, char_dim, filters, kernel)?,
            word_dim,
            filters,
        })
    }

    /// Width of each word's vector.
    pub fn width(&self) -> usize {
        self.word_dim + self.filters
    }

    /// Word vectors `[batch, seq, width]`.
    pub fn forward(&self, batch: &Batch, ctx: &Ctx) -> Result<Tensor> {
        let (b, t, device) = (batch.batch, batch.seq, &Device::Cpu);
        let w = self.words.forward_in(&batch.word_ids, &[b, t], ctx)?; //                           [B, T, word_dim]
        let c = self.chars.forward(&batch.spellings, &batch.spelling_lengths, batch.max_chars)?; // [S, filters]
        let of = Tensor::from_slice(&batch.spelling_of, b * t, device)?;
        let c = c.index_select(&of, 0)?.reshape((b, t, self.filters))?; //                            [B, T, filters]
        Tensor::cat(&[w, c], D::Minus1) //                                                            [B, T, word_dim + filters]
    }
}
