//! Multi-head self-attention: Q = W^q I, K = W^k I, V = W^v I, A = K^T Q,
//! A' = softmax, O = V A', heads joined by W^o.
//!
//! Two kernels compute the same thing. The default, [`AttentionKernel::Fused`],
//! is the flash-style kernel of `attend-kernels` (the seq x seq weights are
//! never stored, windowed patterns skip the keys they cannot see). The
//! [`AttentionKernel::Reference`] path is written like the seed's matrix
//! form with candle matmuls and stores the weights; it is the oracle the
//! fused path is tested against.

use super::ctx::Ctx;
use super::params::{Linear, ParamStore};
use super::position::Rotary;
use crate::ops;
use attend_kernels::AttentionDropout;
use attend_kernels::AttentionPattern;
use candle_core::{Result, Tensor};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Which implementation computes the attention.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttentionKernel {
    /// Flash-style fused kernel: O(seq) memory, the fast path.
    #[default]
    Fused,
    /// Score matrix, masked softmax and two matmuls in candle.
    Reference,
}

impl std::str::FromStr for AttentionKernel {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "fused" => Ok(AttentionKernel::Fused),
            "reference" => Ok(AttentionKernel::Reference),
            _ => Err(format!("unknown attention kernel '{s}': use fused or reference")),
        }
    }
}

/// Multi-head self-attention over `[batch, seq, d_model]`.
///
/// ```
/// use attend::nn::{Ctx, MultiHeadSelfAttention, ParamStore};
/// use attend::attend_kernels::AttentionPattern;
/// use attend::candle_core::{Device, Tensor};
/// let mut store = ParamStore::new(0);
/// let attn = MultiHeadSelfAttention::new(&mut store, "attn", 16, 4, 0.0).unwrap();
/// let x = Tensor::zeros((2, 5, 16), attend::candle_core::DType::F32, &Device::Cpu).unwrap();
/// let pattern = AttentionPattern::dense().with_key_lengths(vec![5, 3]);
/// let y = attn.forward(&x, &pattern, None, &mut Ctx::eval()).unwrap();
/// assert_eq!(y.dims(), &[2, 5, 16]);
/// ```
pub struct MultiHeadSelfAttention {
    /// W^q, W^k, W^v of all heads side by side: `[d_model, 3 * d_model]`.
    pub qkv: Linear,
    /// W^o: joins the heads `[d_model, d_model]`.
    pub out: Linear,
    pub heads: usize,
    pub head_dim: usize,
    /// Dropout on the attention weights A' in training.
    pub dropout: f32,
    pub kernel: AttentionKernel,
}

impl MultiHeadSelfAttention {
    pub fn new(store: &mut ParamStore, name: &str, d_model: usize, heads: usize, dropout: f32) -> Result<Self> {
        if heads == 0 || !d_model.is_multiple_of(heads) {
            candle_core::bail!("d_model {d_model} is not divisible by {heads} heads");
        }
        Ok(MultiHeadSelfAttention {
            qkv: Linear::new(store, &format!("{name}.qkv"), d_model, 3 * d_model, true)?,
            out: Linear::new(store, &format!("{name}.out"), d_model, d_model, true)?,
            heads,
            head_dim: d_model / heads,
            dropout,
            kernel: AttentionKernel::default(),
        })
    }

    /// Q, K, V as `[batch, heads, seq, head_dim]`, contiguous, rotated if `rotary`.
    fn project(&self, x: &Tensor, rotary: Option<&Rotary>) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, t, _) = x.dims3()?;
        let qkv = self.qkv.forward(x)?; //                                  [B, T, 3*D]
        let qkv = qkv.reshape((b, t, 3, self.heads, self.head_dim))?; //     [B, T, 3, H, dh]
        let qkv = qkv.permute((2, 0, 3, 1, 4))?; //                          [3, B, H, T, dh]
        let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
        let (q, k) = match rotary {
            Some(r) => (r.apply(&q)?, r.apply(&k)?),
            None => (q, k),
        };
        Ok((q.contiguous()?, k.contiguous()?, v.contiguous()?))
    }

    /// Attention weights A' `[batch, heads, seq, seq]` (rows are queries and
    /// sum to 1 over visible keys).
    fn weights(&self, q: &Tensor, k: &Tensor, pattern: &AttentionPattern) -> Result<Tensor> {
        let (b, h, t, _) = q.dims4()?;
        // The score matrix and its softmax are stored (a few copies in
        // training): refuse up front what memory cannot hold.
        let bytes = 3 * 4 * (b * h) as u64 * (t as u64) * (t as u64);
        if bytes > crate::memory::available_bytes() {
            candle_core::bail!(
                "the reference attention would store {} of scores for {b} x {t} positions and {h} heads, more than the {} available; use the fused kernel (`attention_kernel` fused, O(positions) memory) or `window`",
                crate::memory::human_bytes(bytes),
                crate::memory::human_bytes(crate::memory::available_bytes())
            );
        }
        let scores = q.matmul(&k.t()?)?; //                                  [B, H, T, T]: q^i . k^j
        ops::masked_softmax(&scores, self.scale(), pattern)
    }

    fn scale(&self) -> f32 {
        1.0 / (self.head_dim as f32).sqrt()
    }

    /// b^i for every position at once.
    pub fn forward(&self, x: &Tensor, pattern: &AttentionPattern, rotary: Option<&Rotary>, ctx: &mut Ctx) -> Result<Tensor> {
        let o = match self.kernel {
            AttentionKernel::Fused => {
                let dropout = (ctx.train && self.dropout > 0.0).then(|| AttentionDropout { p: self.dropout, seed: ctx.rng.random() });
                let qkv = self.qkv.forward(x)?; //                           [B, T, 3*D]
                ops::self_attention(&qkv, self.heads, rotary.map(Rotary::tables), self.scale(), pattern, dropout)?
                // [B, T, D]
            }
            AttentionKernel::Reference => {
                let (b, t, d) = x.dims3()?;
                let (q, k, v) = self.project(x, rotary)?;
                let a = self.weights(&q, &k, pattern)?; //                   [B, H, T, T]
                let a = ctx.dropout(&a, self.dropout)?;
                let o = a.matmul(&v)?; //                                    [B, H, T, dh]: sum_j a'(i,j) v^j
                o.transpose(1, 2)?.reshape((b, t, d))? //                    [B, T, D]: heads side by side
            }
        };
        self.out.forward(&o) //                                              W^o [b^{i,1}; b^{i,2}; ...]
    }

    /// The attention weights this layer would use for `x` (inference, no dropout).
    pub fn attention_weights(&self, x: &Tensor, pattern: &AttentionPattern, rotary: Option<&Rotary>) -> Result<Tensor> {
        let (q, k, _) = self.project(x, rotary)?;
        self.weights(&q, &k, pattern)
    }
}
