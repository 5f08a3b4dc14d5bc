//! The shared sequence encoder: vectors `[batch, seq, in]` from any front
//! end are projected to `d_model`, given positions, and related to each
//! other by stacked self-attention (dense or windowed) or by the BiLSTM
//! baseline. Every sequence model (the tagger today) runs this part.

use super::attention::AttentionKernel;
use super::ctx::Ctx;
use super::encoder::Encoder;
use super::params::{Linear, ParamStore};
use super::position::{PositionEncoding, PositionKind};
use super::rnn::BiLstm;
use attend_kernels::AttentionPattern;
use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

/// Items per slice when a long input is run in slices under truncated
/// attention (each slice also reads its receptive field on both sides).
pub const LONG_SLICE: usize = 4096;

/// Longest sequence run with dense (untruncated) attention unless the
/// caller raises the limit: above it the quadratic cost takes minutes, and a
/// window gives linear cost instead.
pub const MAX_DENSE: usize = 16384;

/// Padded items per batch when predicting or evaluating (no gradients are
/// kept, so batches can be larger than in training).
pub const EVAL_BATCH_TOKENS: usize = 8192;

/// The layers between the input vectors and the outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncoderKind {
    /// Stacked multi-head self-attention (every vector sees the sequence in one step).
    #[default]
    Attention,
    /// Stacked bidirectional LSTM (the recurrent baseline; no attention, no positions).
    Rnn,
}

impl std::str::FromStr for EncoderKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "attention" => Ok(EncoderKind::Attention),
            "rnn" | "lstm" | "bilstm" => Ok(EncoderKind::Rnn),
            _ => Err(format!("unknown encoder '{s}': use attention or rnn")),
        }
    }
}

/// Settings of a [`SequenceEncoder`], nested once in every model config
/// that has one. Its keys are written flat beside the model's own
/// (`serde(flatten)`), as the command line's flags are: `[model]` in a
/// settings file and `model` in a checkpoint's `config.json` keep the shape
/// they always had. Defaults here are the tagger's; a model states its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EncoderConfig {
    /// What relates the items: stacked self-attention, or the BiLSTM baseline.
    #[serde(rename = "encoder")]
    pub kind: EncoderKind,
    /// Width of the vectors the attention layers work on (for the BiLSTM:
    /// its output, `d_model / 2` per direction).
    pub d_model: usize,
    pub heads: usize,
    pub layers: usize,
    /// Hidden width of each feed-forward layer.
    pub ff_dim: usize,
    /// Dropout after the positions and on residual branches, and on the
    /// input features unless `input_dropout` says otherwise.
    pub dropout: f32,
    /// Dropout on the input features before their projection, if not
    /// `dropout` (`None`). Sequence models set 0: dropping raw signal
    /// values (and a sequence's own statistics) scales them by 1/(1-p) in
    /// training and not at prediction, and on PLAID the training set's own
    /// accuracy at prediction fell to 86% while its training loss said 95%.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_dropout: Option<f32>,
    /// Dropout on attention weights.
    pub attention_dropout: f32,
    pub position: PositionKind,
    /// Longest sequence a learned position table covers.
    pub max_positions: usize,
    /// Truncated attention: each item sees this many on each side (`None`:
    /// the whole sequence).
    pub window: Option<usize>,
    /// Attention implementation (same function; fused is faster and O(seq) memory).
    pub attention_kernel: AttentionKernel,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            kind: EncoderKind::Attention,
            d_model: 256,
            heads: 8,
            layers: 2,
            ff_dim: 512,
            dropout: 0.2,
            input_dropout: None,
            attention_dropout: 0.1,
            position: PositionKind::Rope,
            max_positions: 512,
            window: None,
            attention_kernel: AttentionKernel::Fused,
        }
    }
}

impl EncoderConfig {
    /// Checks the numbers fit together; the message names the setting.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.kind == EncoderKind::Rnn && (self.d_model < 2 || !self.d_model.is_multiple_of(2)) {
            return Err(format!("the rnn encoder needs an even d_model (d_model / 2 units per direction), got {}", self.d_model));
        }
        let attention = self.kind == EncoderKind::Attention;
        if attention && (self.heads == 0 || !self.d_model.is_multiple_of(self.heads)) {
            return Err(format!("d_model ({}) must be a multiple of heads ({})", self.d_model, self.heads));
        }
        if attention && self.position == PositionKind::Rope && !(self.d_model / self.heads).is_multiple_of(2) {
            return Err(format!("rope needs an even head dimension; d_model / heads = {}", self.d_model / self.heads));
        }
        for (name, p) in [("dropout", self.dropout), ("input_dropout", self.input_dropout()), ("attention_dropout", self.attention_dropout)]
        {
            if !(0.0..1.0).contains(&p) {
                return Err(format!("{name} must be in [0, 1), got {p}"));
            }
        }
        if self.max_positions == 0 {
            return Err("max_positions must be at least 1".into());
        }
        Ok(())
    }

    /// Dropout on the input features before their projection.
    pub fn input_dropout(&self) -> f32 {
        self.input_dropout.unwrap_or(self.dropout)
    }

    /// Trainable scalars for inputs `input` wide (in u128: fits any config).
    pub fn parameter_count(&self, input: usize) -> u128 {
        let [d, ff, layers, input] = [self.d_model, self.ff_dim, self.layers, input].map(|x| x as u128);
        let layer = match self.kind {
            EncoderKind::Attention => d * 3 * d + 3 * d + d * d + d + d * ff + ff + ff * d + d + 4 * d,
            // Two directions of d/2 units, input d wide: (d x 2d + 2d + d/2 x 2d) each.
            EncoderKind::Rnn => 2 * (d * 2 * d + 2 * d + d / 2 * 2 * d),
        };
        let (positions, final_norm) = match self.kind {
            EncoderKind::Attention if self.position == PositionKind::Learned => (self.max_positions as u128 * d, 2 * d),
            EncoderKind::Attention => (0, 2 * d),
            EncoderKind::Rnn => (0, 0),
        };
        input * d + d + positions + layers * layer + final_norm
    }
}

/// The encoder a model runs.
enum Body {
    Attention(Encoder),
    Rnn(BiLstm),
}

/// Input projection, positions and the stacked layers.
///
/// ```
/// use attend::nn::sequence::{EncoderConfig, EncoderKind, SequenceEncoder};
/// use attend::nn::{position::PositionKind, AttentionKernel, Ctx, ParamStore};
/// let cfg = EncoderConfig { kind: EncoderKind::Attention, d_model: 8, heads: 2, layers: 1, ff_dim: 16, dropout: 0.0, input_dropout: None,
///     attention_dropout: 0.0, position: PositionKind::Rope, max_positions: 64, window: None, attention_kernel: AttentionKernel::Fused };
/// let mut store = ParamStore::new(1);
/// let encoder = SequenceEncoder::new(&mut store, 3, &cfg).unwrap();
/// let x = candle_core::Tensor::zeros((2, 5, 3), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
/// let h = encoder.forward(&x, &[5, 2], 0, &mut Ctx::eval()).unwrap();
/// assert_eq!(h.dims(), &[2, 5, 8]);
/// ```
pub struct SequenceEncoder {
    config: EncoderConfig,
    input: Linear,
    position: PositionEncoding,
    body: Body,
}

impl SequenceEncoder {
    /// Parameters `input.*`, `position.*` and `encoder.*` (attention) or `rnn.*` (BiLSTM).
    pub fn new(p: &mut ParamStore, input_dim: usize, c: &EncoderConfig) -> Result<Self> {
        c.validate().map_err(candle_core::Error::msg)?;
        let input = Linear::new(p, "input", input_dim, c.d_model, true)?;
        let (position, body) = match c.kind {
            EncoderKind::Attention => {
                let rotary = c.position == PositionKind::Rope;
                let mut encoder =
                    Encoder::new(p, "encoder", c.layers, c.d_model, c.heads, c.ff_dim, c.dropout, c.attention_dropout, rotary)?;
                encoder.set_attention_kernel(c.attention_kernel);
                (c.position, Body::Attention(encoder))
            }
            // A recurrence knows the order already: no position encoding.
            EncoderKind::Rnn => (PositionKind::None, Body::Rnn(BiLstm::new(p, "rnn", c.layers, c.d_model, c.d_model / 2, c.dropout)?)),
        };
        let position = PositionEncoding::new(p, "position", position, c.d_model, c.max_positions)?;
        Ok(SequenceEncoder { config: c.clone(), input, position, body })
    }

    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    fn pattern(&self, lengths: &[usize]) -> AttentionPattern {
        let p = AttentionPattern::dense().with_key_lengths(lengths.to_vec());
        match self.config.window {
            Some(w) => p.with_window(w, w),
            None => p,
        }
    }

    /// Projected vectors with positions `[batch, seq, d_model]`, for a batch
    /// whose first position is `first` of a longer sequence.
    fn embed(&self, features: &Tensor, first: usize, ctx: &mut Ctx) -> Result<Tensor> {
        let x = ctx.dropout(features, self.config.input_dropout())?;
        let x = self.position.forward_from(&self.input.forward(&x)?, first)?;
        ctx.dropout(&x, self.config.dropout)
    }

    /// `features` `[batch, seq, in]` with sequence `b` holding `lengths[b]`
    /// real vectors -> `[batch, seq, d_model]`. `first`: the position of the
    /// first row in a longer sequence (positions and rotary angles count
    /// from there; 0 for whole sequences).
    pub fn forward(&self, features: &Tensor, lengths: &[usize], first: usize, ctx: &mut Ctx) -> Result<Tensor> {
        let mut x = self.embed(features, first, ctx)?;
        if !ctx.train {
            x = x.detach(); // inference: the front end's intermediates can go
        }
        match &self.body {
            Body::Attention(encoder) => encoder.forward_from(&x, &self.pattern(lengths), first, ctx),
            Body::Rnn(rnn) => {
                debug_assert_eq!(first, 0, "a BiLSTM reads whole sequences");
                rnn.forward(&x, lengths, ctx)
            }
        }
    }

    /// Positions each output can see on either side: the window times the
    /// layers for truncated attention, unbounded otherwise.
    pub fn receptive_field(&self) -> Option<usize> {
        match (&self.body, self.config.window) {
            (Body::Attention(_), Some(w)) => Some(w * self.config.layers),
            _ => None,
        }
    }

    /// Attention weights per layer `[batch, heads, seq, seq]`, recomputed
    /// for inspection.
    pub fn attention_weights(&self, features: &Tensor, lengths: &[usize]) -> Result<Vec<Tensor>> {
        let Body::Attention(encoder) = &self.body else {
            return Err(candle_core::Error::msg("this model's encoder is a BiLSTM: it has no attention weights to show"));
        };
        let x = self.embed(features, 0, &mut Ctx::eval())?;
        encoder.attention_weights(&x, &self.pattern(lengths))
    }

    /// Truncates attention to `window` on each side from now on (`None`:
    /// the whole sequence). A BiLSTM refuses.
    pub fn set_window(&mut self, window: Option<usize>) -> std::result::Result<(), String> {
        if self.config.kind == EncoderKind::Rnn && window.is_some() {
            return Err("truncated attention (`window`) applies to attention models; this one is a BiLSTM (its cost is already linear in the length)".into());
        }
        self.config.window = window;
        Ok(())
    }

    /// Refuses sequences longer than `limit` under dense attention
    /// ([`crate::Error::DenseTooLong`], which names the remedies); truncated
    /// attention and the BiLSTM take any length.
    pub fn check_dense_length(&self, longest: usize, limit: usize) -> crate::Result<()> {
        if self.config.kind == EncoderKind::Attention && self.config.window.is_none() && longest > limit {
            return Err(crate::Error::DenseTooLong { longest, limit });
        }
        Ok(())
    }
}

/// One slice of a long sequence run on its own: rows `lo..hi` go in (the
/// kept rows plus context), outputs `start..end` are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    pub lo: usize,
    pub start: usize,
    pub end: usize,
    pub hi: usize,
}

/// Cuts `n` positions into slices of `core` kept positions, each with up to
/// `halo` positions of context on both sides: under truncated attention
/// whose receptive field is `halo`, every kept output equals the
/// whole-sequence one (up to float rounding) while memory stays bounded by
/// the slice.
pub fn slices(n: usize, core: usize, halo: usize) -> Vec<Slice> {
    let core = core.max(1);
    (0..n.div_ceil(core))
        .map(|k| {
            let (start, end) = (k * core, ((k + 1) * core).min(n));
            Slice { lo: start.saturating_sub(halo), start, end, hi: (end + halo).min(n) }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn slices_cover_every_position_once_with_context() {
        let s = super::slices(10, 4, 3);
        let kept: Vec<(usize, usize)> = s.iter().map(|s| (s.start, s.end)).collect();
        assert_eq!(kept, [(0, 4), (4, 8), (8, 10)]);
        let context: Vec<(usize, usize)> = s.iter().map(|s| (s.lo, s.hi)).collect();
        assert_eq!(context, [(0, 7), (1, 10), (5, 10)]);
        assert!(super::slices(0, 4, 3).is_empty());
    }
}
