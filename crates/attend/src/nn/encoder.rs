//! Encoder layers: self-attention then a feed-forward layer, each inside a
//! residual branch with layer norm first (pre-LN, stable without long warmup).

use super::attention::MultiHeadSelfAttention;
use super::ctx::Ctx;
use super::params::{LayerNorm, Linear, ParamStore};
use super::position::Rotary;
use attend_kernels::AttentionPattern;
use candle_core::{Result, Tensor};

/// One layer: x + Attn(LN(x)), then h + FF(LN(h)).
pub struct EncoderLayer {
    pub norm1: LayerNorm,
    pub attention: MultiHeadSelfAttention,
    pub norm2: LayerNorm,
    pub ff1: Linear,
    pub ff2: Linear,
    pub dropout: f32,
}

impl EncoderLayer {
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        d_model: usize,
        heads: usize,
        ff_dim: usize,
        dropout: f32,
        attention_dropout: f32,
    ) -> Result<Self> {
        Ok(EncoderLayer {
            norm1: LayerNorm::new(store, &format!("{name}.norm1"), d_model)?,
            attention: MultiHeadSelfAttention::new(store, &format!("{name}.attention"), d_model, heads, attention_dropout)?,
            norm2: LayerNorm::new(store, &format!("{name}.norm2"), d_model)?,
            ff1: Linear::new(store, &format!("{name}.ff1"), d_model, ff_dim, true)?,
            ff2: Linear::new(store, &format!("{name}.ff2"), ff_dim, d_model, true)?,
            dropout,
        })
    }

    pub fn forward(&self, x: &Tensor, pattern: &AttentionPattern, rotary: Option<&Rotary>, ctx: &mut Ctx) -> Result<Tensor> {
        let a = self.attention.forward(&self.norm1.forward(x)?, pattern, rotary, ctx)?;
        let h = (x + ctx.dropout(&a, self.dropout)?)?;
        let f = self.ff1.forward_gelu(&self.norm2.forward(&h)?)?;
        let f = self.ff2.forward(&ctx.dropout(&f, self.dropout)?)?;
        h + ctx.dropout(&f, self.dropout)?
    }
}

/// N stacked layers and a final layer norm.
pub struct Encoder {
    pub layers: Vec<EncoderLayer>,
    pub norm: LayerNorm,
    /// Rotate queries and keys by position (RoPE) in every layer.
    pub rotary: bool,
}

impl Encoder {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        layers: usize,
        d_model: usize,
        heads: usize,
        ff_dim: usize,
        dropout: f32,
        attention_dropout: f32,
        rotary: bool,
    ) -> Result<Self> {
        let layers = (0..layers)
            .map(|i| EncoderLayer::new(store, &format!("{name}.layers.{i}"), d_model, heads, ff_dim, dropout, attention_dropout))
            .collect::<Result<_>>()?;
        Ok(Encoder { layers, norm: LayerNorm::new(store, &format!("{name}.norm"), d_model)?, rotary })
    }

    /// Chooses the attention implementation of every layer.
    pub fn set_attention_kernel(&mut self, kernel: super::attention::AttentionKernel) {
        for layer in &mut self.layers {
            layer.attention.kernel = kernel;
        }
    }

    fn rotary_for(&self, x: &Tensor, first: usize) -> Result<Option<Rotary>> {
        match (self.rotary, self.layers.first()) {
            (true, Some(l)) => Ok(Some(Rotary::new_from(first, x.dim(1)?, l.attention.head_dim, x.device())?)),
            _ => Ok(None),
        }
    }

    pub fn forward(&self, x: &Tensor, pattern: &AttentionPattern, ctx: &mut Ctx) -> Result<Tensor> {
        self.forward_from(x, pattern, 0, ctx)
    }

    /// As [`forward`](Self::forward) for a slice of a longer sequence whose
    /// first row sits at position `first` (rotary angles count from there).
    pub fn forward_from(&self, x: &Tensor, pattern: &AttentionPattern, first: usize, ctx: &mut Ctx) -> Result<Tensor> {
        let rotary = self.rotary_for(x, first)?;
        let mut h = x.clone();
        for layer in &self.layers {
            h = layer.forward(&h, pattern, rotary.as_ref(), ctx)?;
            if !ctx.train {
                // Nothing will call backward: let the layer's intermediates go
                // (the graph would otherwise keep all of them alive).
                h = h.detach();
            }
        }
        self.norm.forward(&h)
    }

    /// Attention weights of every layer `[batch, heads, seq, seq]`, recomputed
    /// for inspection (the normal forward does not keep them).
    pub fn attention_weights(&self, x: &Tensor, pattern: &AttentionPattern) -> Result<Vec<Tensor>> {
        let rotary = self.rotary_for(x, 0)?;
        let mut ctx = Ctx::eval();
        let mut h = x.clone();
        let mut out = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            out.push(layer.attention.attention_weights(&layer.norm1.forward(&h)?, pattern, rotary.as_ref())?);
            h = layer.forward(&h, pattern, rotary.as_ref(), &mut ctx)?;
        }
        Ok(out)
    }
}
