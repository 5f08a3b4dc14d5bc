//! A model over vector sequences (signals, frames, sensor rows): the
//! inputs ([`input`]: normalised, missing values flagged, optionally
//! joined into patches) go through the shared [`SequenceEncoder`] and a
//! head: [`PerVectorHead`] for a label per vector, [`PooledHead`] (mean or
//! a learned summary vector) for one class or number per sequence.

pub mod auto;
pub mod config;
pub mod eval;
pub mod input;
pub mod task;

use crate::data::batch::bucket;
use crate::data::series::Target;
use crate::nn::head::{mean_squared_error, PerVectorHead, PooledHead};
use crate::nn::sequence::{slices, SequenceEncoder};
use crate::nn::{Ctx, LayerNorm, Linear, ParamStore};
use crate::ops;
use candle_core::{Result, Tensor, D};
use config::SequenceConfig;
pub use eval::Output;
use input::{DataSpec, Encoded, SeriesBatch};

pub use crate::nn::sequence::{EVAL_BATCH_TOKENS, LONG_SLICE, MAX_DENSE};

enum Head {
    PerVector(PerVectorHead),
    Pooled(PooledHead),
}

/// One copy of the network: stem, encoder, head.
struct Member {
    /// The convolutional stem (`stem.*`), if any.
    stem: Option<Linear>,
    /// Its further layers (`stem{k}.conv.*`, `stem{k}.norm.*`, k >= 1).
    stem_deep: Vec<(Linear, LayerNorm)>,
    /// Vectors the stem max-pools over after its first layer (1: none).
    pool: usize,
    encoder: SequenceEncoder,
    head: Head,
}

impl Member {
    fn new(p: &mut ParamStore, config: &SequenceConfig) -> Result<Self> {
        let stem = if config.stem > 0 { Some(Linear::new(p, "stem", config.slot_width(), config.stem, true)?) } else { None };
        let deep = if config.stem > 0 { config.stem_layers - 1 } else { 0 };
        let stem_deep = (1..=deep)
            .map(|k| {
                let conv = Linear::new(p, &format!("stem{k}.conv"), config.stem_deep_kernel * config.stem, config.stem, true)?;
                Ok((conv, LayerNorm::new(p, &format!("stem{k}.norm"), config.stem)?))
            })
            .collect::<Result<Vec<_>>>()?;
        let encoder = SequenceEncoder::new(p, config.encoder_input_width(), &config.encoder)?;
        let head = match config.target {
            Target::VectorClass => Head::PerVector(PerVectorHead::new(p, "head", config.encoder.d_model, config.outputs)?),
            _ => Head::Pooled(PooledHead::new(p, "head", config.encoder.d_model, config.outputs, config.pooling)?),
        };
        Ok(Member { stem, stem_deep, pool: config.stem_pool(), encoder, head })
    }

    /// Scores: `[batch, seq, outputs]` per vector, `[batch, outputs]` per
    /// sequence; the batch starts at position `first` of a longer sequence.
    fn forward(&self, config: &SequenceConfig, batch: &SeriesBatch, first: usize, ctx: &mut Ctx) -> Result<Tensor> {
        let x = self.stem_forward(config, &batch.x, &batch.lengths)?;
        let h = self.encoder.forward(&x, &batch.lengths, first, ctx)?;
        match &self.head {
            Head::PerVector(head) => head.forward(&h),
            Head::Pooled(head) => head.forward(&h, &batch.lengths),
        }
    }

    /// The stem over each slot of each patch (a convolution: every slot
    /// holds the window around its vector), then GELU, then (in a network
    /// without attention) the maximum over runs of `pool` vectors, then the
    /// further layers; the statistics and the summary flag pass through. Without a
    /// stem, the inputs as they are. `lengths`: each sequence's inputs.
    fn stem_forward(&self, config: &SequenceConfig, x: &Tensor, lengths: &[usize]) -> Result<Tensor> {
        let Some(stem) = &self.stem else { return Ok(x.clone()) };
        let (b, t, w) = x.dims3()?;
        let (p, slot) = (config.patch, config.slot_width());
        let body = x.narrow(2, 0, p * slot)?.contiguous()?.reshape((b, t * p, slot))?;
        let mut h = stem.forward_gelu(&body)?;
        // Without attention layers, the maximum over runs of `pool` vectors:
        // the further layers run over `pool` times fewer steps.
        let pool = self.pool;
        if pool > 1 {
            h = h.reshape((b, t * p / pool, pool, config.stem))?.max(2)?;
        }
        if !self.stem_deep.is_empty() {
            // Steps past a sequence's last input read as zeros in every
            // layer's windows, as the raw padding does for the first: a
            // sequence's features never depend on what it was batched with.
            let valid: Vec<usize> = lengths.iter().map(|&n| n * p / pool).collect();
            for (conv, norm) in &self.stem_deep {
                let windows = ops::windows(&h, &valid, config.stem_deep_kernel)?;
                h = ops::gelu(&norm.forward(&conv.forward(&windows)?)?)?;
            }
        }
        let h = h.reshape((b, t, p / pool * config.stem))?;
        if w == p * slot {
            return Ok(h);
        }
        Tensor::cat(&[&h, &x.narrow(2, p * slot, w - p * slot)?], 2)
    }
}

/// The model: one network, or an ensemble of
/// [`members`](SequenceConfig::members) copies whose predictions are averaged.
pub struct SequenceModel {
    pub config: SequenceConfig,
    pub params: ParamStore,
    /// The copies: the first's parameters have the plain names (`stem.*`,
    /// `encoder.*`, `head.*`), copy `k` > 0 has them under `member{k}.`.
    members: Vec<Member>,
}

impl SequenceModel {
    pub fn new(config: SequenceConfig, seed: u64) -> Result<Self> {
        config.validate().map_err(candle_core::Error::msg)?;
        let mut p = ParamStore::new(seed);
        let mut members = Vec::with_capacity(config.members);
        for k in 0..config.members {
            p.set_prefix(&if k == 0 { String::new() } else { format!("member{k}.") });
            members.push(Member::new(&mut p, &config.member(k))?);
        }
        p.set_prefix("");
        Ok(SequenceModel { config, params: p, members })
    }

    fn per_vector(&self) -> bool {
        self.config.target == Target::VectorClass
    }

    /// Scores: `[batch, seq, outputs]` per vector, `[batch, outputs]` per
    /// sequence; the batch starts at position `first` of a longer sequence.
    /// An ensemble's are the log of its members' mean class probabilities
    /// (regression: the mean of their numbers).
    fn forward_from(&self, batch: &SeriesBatch, first: usize, ctx: &mut Ctx) -> Result<Tensor> {
        if let [one] = &self.members[..] {
            return one.forward(&self.config, batch, first, ctx);
        }
        let scores = self.members.iter().map(|m| m.forward(&self.config, batch, first, ctx)).collect::<Result<Vec<_>>>()?;
        let all = Tensor::stack(&scores, 0)?;
        let weights = self.member_weights();
        let shape: Vec<usize> = std::iter::once(weights.len()).chain(std::iter::repeat_n(1, all.rank() - 1)).collect();
        if self.config.target == Target::SequenceValue {
            return all.broadcast_mul(&Tensor::from_slice(&weights, shape, all.device())?)?.sum(0);
        }
        let log_weights: Vec<f32> = weights.iter().map(|w| w.ln()).collect();
        let log_probs = all.broadcast_sub(&all.log_sum_exp(D::Minus1)?.unsqueeze(D::Minus1)?)?;
        log_probs.broadcast_add(&Tensor::from_slice(&log_weights, shape, all.device())?)?.log_sum_exp(0)
    }

    /// Each member's weight in a prediction: equal, or with both kinds in
    /// the ensemble, half the weight shared among the attention members and
    /// half among the convolutional ones.
    fn member_weights(&self) -> Vec<f32> {
        let (attention, conv) = (self.config.attention_members(), self.config.conv_members);
        if attention == 0 || conv == 0 {
            return vec![1.0 / self.members.len() as f32; self.members.len()];
        }
        let share = |n: usize| std::iter::repeat_n(0.5 / n as f32, n);
        share(attention).chain(share(conv)).collect()
    }

    /// The batch's mean loss: cross-entropy, or the squared error of the
    /// standardised target. An ensemble's is the mean of its members' own
    /// losses (each member learns alone, as if trained by itself).
    pub fn loss(&self, batch: &SeriesBatch, ctx: &mut Ctx, label_smoothing: f32) -> Result<Tensor> {
        let mut total: Option<Tensor> = None;
        for k in 0..self.members.len() {
            let l = self.member_loss(k, batch, ctx, label_smoothing)?;
            total = Some(match total {
                None => l,
                Some(t) => (t + l)?,
            });
        }
        Ok(total.expect("at least one member"))
    }

    /// Member `k`'s share of [`loss`](Self::loss): its own loss over the
    /// batch divided by the number of members.
    pub fn member_loss(&self, k: usize, batch: &SeriesBatch, ctx: &mut Ctx, label_smoothing: f32) -> Result<Tensor> {
        let scores = self.members[k].forward(&self.config, batch, 0, ctx)?;
        let loss = self.loss_of(&scores, batch, label_smoothing)?;
        if self.members.len() == 1 {
            return Ok(loss);
        }
        loss.affine(1.0 / self.members.len() as f64, 0.0)
    }

    /// Copies of the network in the model (1: no ensemble).
    pub fn members(&self) -> usize {
        self.members.len()
    }

    fn loss_of(&self, scores: &Tensor, batch: &SeriesBatch, label_smoothing: f32) -> Result<Tensor> {
        match self.config.target {
            Target::SequenceValue => mean_squared_error(scores, &batch.values),
            // Per vector, the scores `[batch, seq, outputs]` against one class per row.
            _ => {
                let rows = batch.classes.len();
                let targets = Tensor::from_slice(&batch.classes, rows, scores.device())?;
                ops::cross_entropy(&scores.reshape((rows, self.config.outputs))?, &targets, label_smoothing)
            }
        }
    }

    pub fn batch(&self, data: &[Encoded], indices: &[usize]) -> Result<SeriesBatch> {
        SeriesBatch::new(data, indices, self.config.input_width(), self.per_vector())
    }

    /// Positions each output can see on either side (truncated attention).
    pub fn receptive_field(&self) -> Option<usize> {
        self.members[0].encoder.receptive_field()
    }

    /// Truncated attention from now on (`None`: whole sequences); a BiLSTM refuses.
    pub fn set_window(&mut self, window: Option<usize>) -> crate::Result<()> {
        for m in &mut self.members {
            m.encoder.set_window(window).map_err(crate::Error::Input)?;
        }
        self.config.encoder.window = window;
        Ok(())
    }

    /// Refuses sequences longer than `limit` under dense attention, with the remedy.
    pub fn check_dense_length(&self, longest: usize, limit: usize) -> crate::Result<()> {
        self.members[0].encoder.check_dense_length(longest, limit)
    }

    fn outputs(&self, scores: &Tensor, lengths: &[usize], spec: &DataSpec) -> Result<Vec<Output>> {
        Ok(match self.config.target {
            Target::SequenceValue => {
                scores.flatten_all()?.to_vec1::<f32>()?.into_iter().map(|v| Output::Value(v * spec.target_std + spec.target_mean)).collect()
            }
            Target::VectorClass => scores
                .argmax(D::Minus1)?
                .to_vec2::<u32>()?
                .into_iter()
                .zip(lengths)
                .map(|(row, &n)| Output::Classes(row[..n].to_vec()))
                .collect(),
            _ => scores.argmax(D::Minus1)?.to_vec1::<u32>()?.into_iter().map(|c| Output::Classes(vec![c])).collect(),
        })
    }

    /// One sequence with a label per vector, in slices of `core` vectors
    /// under truncated attention, each with the receptive field of context
    /// on both sides: the labels of the whole-sequence pass (up to float
    /// rounding), in memory bounded by the slice.
    pub fn predict_in_slices(&self, e: &Encoded, spec: &DataSpec, core: usize) -> crate::Result<Output> {
        let Some(halo) = self.receptive_field().filter(|_| self.per_vector()) else {
            return Err(crate::Error::Input("slicing a sequence needs a label per vector and truncated attention (a window)".into()));
        };
        let width = self.config.input_width();
        let mut classes = Vec::with_capacity(e.tokens);
        for s in slices(e.tokens, core, halo) {
            let part = [e.slice(s.lo, s.hi, width)];
            let scores = self.forward_from(&self.batch(&part, &[0])?, s.lo, &mut Ctx::eval())?;
            let Output::Classes(c) = self.outputs(&scores, &[s.hi - s.lo], spec)?.remove(0) else { unreachable!("per-vector classes") };
            classes.extend_from_slice(&c[s.start - s.lo..s.end - s.lo]);
        }
        Ok(Output::Classes(classes))
    }

    /// Whether a sequence of `n` inputs goes in slices: labels per vector
    /// under truncated attention, longer than [`LONG_SLICE`] plus context.
    fn sliced(&self, n: usize) -> bool {
        self.per_vector() && self.receptive_field().is_some_and(|halo| n > LONG_SLICE + 2 * halo)
    }

    /// Predictions for every sequence, in input order. Sequences with a
    /// label per vector longer than [`LONG_SLICE`] (plus context) go in
    /// slices under truncated attention, in bounded memory.
    pub fn predict(&self, data: &[Encoded], spec: &DataSpec) -> crate::Result<Vec<Output>> {
        Ok(self.run(data, spec, false)?.0)
    }

    /// Predictions, and with `loss` the mean loss over the labelled units
    /// of the sequences that fit one batch (long sliced ones are left out;
    /// `None` if nothing was left).
    fn run(&self, data: &[Encoded], spec: &DataSpec, loss: bool) -> crate::Result<(Vec<Output>, Option<f64>)> {
        let (mut loss_sum, mut units) = (0f64, 0usize);
        let mut out = vec![Output::Classes(vec![]); data.len()];
        for (i, e) in data.iter().enumerate().filter(|(_, e)| self.sliced(e.tokens)) {
            out[i] = self.predict_in_slices(e, spec, LONG_SLICE)?;
        }
        let rest: Vec<usize> = (0..data.len()).filter(|&i| !self.sliced(data[i].tokens)).collect();
        let lengths: Vec<usize> = rest.iter().map(|&i| data[i].tokens).collect();
        for idx in bucket::<rand_chacha::ChaCha8Rng>(&lengths, EVAL_BATCH_TOKENS, None) {
            let idx: Vec<usize> = idx.into_iter().map(|k| rest[k]).collect();
            let batch = self.batch(data, &idx)?;
            let scores = self.forward_from(&batch, 0, &mut Ctx::eval())?;
            let n = match self.config.target {
                Target::SequenceValue => batch.lengths.len(),
                _ => batch.classes.iter().filter(|&&c| c != attend_kernels::loss::IGNORE).count(),
            };
            if loss && n > 0 {
                loss_sum += self.loss_of(&scores, &batch, 0.0)?.to_scalar::<f32>()? as f64 * n as f64;
                units += n;
            }
            for (i, o) in idx.iter().zip(self.outputs(&scores, &batch.lengths, spec)?) {
                out[*i] = o;
            }
        }
        Ok((out, (loss && units > 0).then(|| loss_sum / units as f64)))
    }

    /// Class probabilities (the softmax of the scores), in input order: one
    /// row of [`SequenceConfig::outputs`](config::SequenceConfig) numbers
    /// per sequence, or with a label per vector, one per vector of each
    /// sequence, concatenated. Not for regression, nor for sequences long
    /// enough to go in slices (their labels come from [`predict`](Self::predict)).
    pub fn probabilities(&self, data: &[Encoded]) -> crate::Result<Vec<Vec<f32>>> {
        if self.config.target == Target::SequenceValue {
            return Err(crate::Error::Input("a regression model predicts numbers, not class probabilities".into()));
        }
        if let Some(i) = data.iter().position(|e| self.sliced(e.tokens)) {
            return Err(crate::Error::Input(format!(
                "sequence {i} has {} vectors: longer than {LONG_SLICE} (plus context), it is labelled in slices, without probabilities",
                data[i].tokens
            )));
        }
        let classes = self.config.outputs;
        let mut out = vec![Vec::new(); data.len()];
        let lengths: Vec<usize> = data.iter().map(|e| e.tokens).collect();
        for idx in bucket::<rand_chacha::ChaCha8Rng>(&lengths, EVAL_BATCH_TOKENS, None) {
            let batch = self.batch(data, &idx)?;
            let scores = self.forward_from(&batch, 0, &mut Ctx::eval())?.flatten_all()?.to_vec1::<f32>()?;
            // Rows of `classes` scores: one per sequence, or `longest` per
            // sequence (padded) with a label per vector.
            let rows_per = if self.per_vector() { scores.len() / (classes * idx.len()) } else { 1 };
            for (k, &i) in idx.iter().enumerate() {
                let used = if self.per_vector() { batch.lengths[k] } else { 1 };
                let start = k * rows_per * classes;
                out[i] = scores[start..start + used * classes].chunks(classes).flat_map(crate::nn::head::softmax).collect();
            }
        }
        Ok(out)
    }

    /// Scores predictions against the gold labels of `data`.
    pub fn evaluate(&self, data: &[Encoded], spec: &DataSpec) -> crate::Result<eval::SeriesReport> {
        Ok(self.evaluate_with_loss(data, spec)?.0)
    }

    /// [`evaluate`](Self::evaluate) and the mean loss (for model selection;
    /// `None` when every sequence was too long for one batch and went in slices).
    pub fn evaluate_with_loss(&self, data: &[Encoded], spec: &DataSpec) -> crate::Result<(eval::SeriesReport, Option<f64>)> {
        let (predicted, loss) = self.run(data, spec, true)?;
        Ok((eval::score(data, &predicted, spec), loss))
    }

    /// Attention weights per layer `[1, heads, seq, seq]` for one sequence
    /// (an ensemble's first member's).
    pub fn attention_weights(&self, e: &Encoded) -> Result<Vec<Tensor>> {
        if let Some(why) = self.config.no_attention() {
            candle_core::bail!("{why}");
        }
        let batch = self.batch(std::slice::from_ref(e), &[0])?;
        let first = &self.members[0];
        first.encoder.attention_weights(&first.stem_forward(&self.config, &batch.x, &batch.lengths)?, &batch.lengths)
    }
}
