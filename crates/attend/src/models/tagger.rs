//! The part-of-speech tagger: each word becomes a vector (word embedding +
//! character encoder), stacked multi-head self-attention layers let every
//! word look at the whole sentence, and a linear head gives one tag per word.
//! A bidirectional LSTM can replace the attention layers (the baseline).

use crate::data::batch::{bucket, encode, Batch, EncodedSentence};
use crate::data::conllu::Sentence;
use crate::data::vocab::TaggerVocab;
use crate::nn::char_encoder::CharEncoder;
use crate::nn::position::{PositionEncoding, PositionKind};
use crate::nn::rnn::BiLstm;
use crate::nn::{AttentionKernel, Ctx, Embedding, Encoder, Linear, ParamStore};
use crate::ops;
use attend_kernels::AttentionPattern;
use candle_core::{Device, Result, Tensor, D};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Words per slice when a long input is tagged in slices under truncated
/// attention (each slice also reads its receptive field on both sides).
pub const LONG_SLICE_WORDS: usize = 4096;

/// Architecture of a tagger, saved as `config.json` in a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaggerConfig {
    /// What relates the words: stacked self-attention, or the BiLSTM baseline.
    pub encoder: EncoderKind,
    /// Width of the vectors the attention layers work on (for the BiLSTM:
    /// its output, `d_model / 2` per direction).
    pub d_model: usize,
    pub heads: usize,
    pub layers: usize,
    /// Hidden width of each feed-forward layer.
    pub ff_dim: usize,
    /// Dropout on embeddings and residual branches.
    pub dropout: f32,
    /// Dropout on attention weights.
    pub attention_dropout: f32,
    pub position: PositionKind,
    /// Longest sentence a learned position table covers.
    pub max_positions: usize,
    /// Truncated attention: each word sees this many words on each side
    /// (`None`: the whole sentence).
    pub window: Option<usize>,
    /// Attention implementation (same function; fused is faster and O(seq) memory).
    pub attention_kernel: AttentionKernel,
    pub word_dim: usize,
    pub char_dim: usize,
    pub char_filters: usize,
    pub char_kernel: usize,
    /// Longer words keep their first and last `max_word_chars / 2` characters.
    pub max_word_chars: usize,
    /// Vocabulary sizes (set from the data when training starts).
    pub words: usize,
    pub chars: usize,
    pub tags: usize,
}

impl Default for TaggerConfig {
    fn default() -> Self {
        TaggerConfig {
            encoder: EncoderKind::Attention,
            d_model: 256,
            heads: 8,
            layers: 2,
            ff_dim: 512,
            dropout: 0.2,
            attention_dropout: 0.1,
            position: PositionKind::Rope,
            max_positions: 512,
            window: None,
            attention_kernel: AttentionKernel::Fused,
            word_dim: 128,
            char_dim: 48,
            char_filters: 192,
            char_kernel: 3,
            max_word_chars: 20,
            words: 0,
            chars: 0,
            tags: 0,
        }
    }
}

impl TaggerConfig {
    /// Checks the numbers fit together; the message names the setting.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.encoder == EncoderKind::Rnn && (self.d_model < 2 || self.d_model % 2 != 0) {
            return Err(format!("the rnn encoder needs an even d_model (d_model / 2 units per direction), got {}", self.d_model));
        }
        let attention = self.encoder == EncoderKind::Attention;
        if attention && (self.heads == 0 || self.d_model % self.heads != 0) {
            return Err(format!("d_model ({}) must be a multiple of heads ({})", self.d_model, self.heads));
        }
        if attention && self.position == PositionKind::Rope && (self.d_model / self.heads) % 2 != 0 {
            return Err(format!("rope needs an even head dimension; d_model / heads = {}", self.d_model / self.heads));
        }
        if self.char_kernel % 2 == 0 {
            return Err(format!("char_kernel must be odd, got {}", self.char_kernel));
        }
        for (name, p) in [("dropout", self.dropout), ("attention_dropout", self.attention_dropout)] {
            if !(0.0..1.0).contains(&p) {
                return Err(format!("{name} must be in [0, 1), got {p}"));
            }
        }
        if self.max_word_chars < 2 || self.max_positions == 0 {
            return Err("max_word_chars must be >= 2 and max_positions >= 1".into());
        }
        let n = self.parameter_count();
        if n > MAX_PARAMETERS {
            return Err(format!(
                "this model would have {n} parameters ({:.1} GiB as f32); attend refuses more than {MAX_PARAMETERS} (4 GiB) up front",
                n as f64 * 4.0 / (1u64 << 30) as f64
            ));
        }
        Ok(())
    }

    /// Number of trainable scalars (computed in u128: fits any config).
    pub fn parameter_count(&self) -> u128 {
        let [d, ff, layers] = [self.d_model, self.ff_dim, self.layers].map(|x| x as u128);
        let [words, chars, tags] = [self.words, self.chars, self.tags].map(|x| x as u128);
        let [wd, cd, filters, kernel] = [self.word_dim, self.char_dim, self.char_filters, self.char_kernel].map(|x| x as u128);
        let positions = if self.position == PositionKind::Learned { self.max_positions as u128 * d } else { 0 };
        let layer = match self.encoder {
            EncoderKind::Attention => d * 3 * d + 3 * d + d * d + d + d * ff + ff + ff * d + d + 4 * d,
            // Two directions of d/2 units, input d wide: (d x 2d + 2d + d/2 x 2d) each.
            EncoderKind::Rnn => 2 * (d * 2 * d + 2 * d + d / 2 * 2 * d),
        };
        let final_norm = if self.encoder == EncoderKind::Attention { 2 * d } else { 0 };
        let positions = if self.encoder == EncoderKind::Rnn { 0 } else { positions };
        words * wd + chars * cd + kernel * cd * filters + filters + (wd + filters) * d + d + positions + layers * layer + final_norm + d * tags + tags
    }
}

/// The layers between the word vectors and the tag scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncoderKind {
    /// Stacked multi-head self-attention (every word sees the sentence in one step).
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

/// The encoder a tagger runs.
enum Body {
    Attention(Encoder),
    Rnn(BiLstm),
}

/// Longest sequence tagged with dense (untruncated) attention unless the
/// caller raises the limit: above it the quadratic cost takes minutes, and
/// `--window` gives linear cost instead.
pub const MAX_DENSE_WORDS: usize = 16384;

/// Largest model attend builds: 2^30 f32 parameters (4 GiB), so that a
/// mistyped size is refused with a message instead of exhausting memory.
pub const MAX_PARAMETERS: u128 = 1 << 30;

/// The tagger network.
pub struct Tagger {
    pub config: TaggerConfig,
    pub params: ParamStore,
    words: Embedding,
    chars: CharEncoder,
    input: Linear,
    position: PositionEncoding,
    encoder: Body,
    head: Linear,
    device: Device,
}

impl Tagger {
    /// A freshly initialised tagger (initial values drawn from `seed`).
    pub fn new(config: TaggerConfig, seed: u64) -> Result<Self> {
        config.validate().map_err(candle_core::Error::msg)?;
        let c = &config;
        let mut p = ParamStore::new(seed);
        let words = Embedding::new(&mut p, "words", c.words, c.word_dim, 0.1)?;
        let chars = CharEncoder::new(&mut p, "chars", c.chars, c.char_dim, c.char_filters, c.char_kernel)?;
        let input = Linear::new(&mut p, "input", c.word_dim + c.char_filters, c.d_model, true)?;
        let (kind, encoder) = match c.encoder {
            EncoderKind::Attention => {
                let rotary = c.position == PositionKind::Rope;
                let mut encoder = Encoder::new(&mut p, "encoder", c.layers, c.d_model, c.heads, c.ff_dim, c.dropout, c.attention_dropout, rotary)?;
                encoder.set_attention_kernel(c.attention_kernel);
                (c.position, Body::Attention(encoder))
            }
            // A recurrence knows the order already: no position encoding.
            EncoderKind::Rnn => (PositionKind::None, Body::Rnn(BiLstm::new(&mut p, "rnn", c.layers, c.d_model, c.d_model / 2, c.dropout)?)),
        };
        let position = PositionEncoding::new(&mut p, "position", kind, c.d_model, c.max_positions)?;
        let head = Linear::new(&mut p, "head", c.d_model, c.tags, true)?;
        Ok(Tagger { config, params: p, words, chars, input, position, encoder, head, device: Device::Cpu })
    }

    fn pattern(&self, batch: &Batch) -> AttentionPattern {
        let p = AttentionPattern::dense().with_key_lengths(batch.lengths.clone());
        match self.config.window {
            Some(w) => p.with_window(w, w),
            None => p,
        }
    }

    /// Word vectors entering the first attention layer `[batch, seq, d_model]`.
    fn embed(&self, batch: &Batch, ctx: &mut Ctx) -> Result<Tensor> {
        self.embed_from(batch, 0, ctx)
    }

    /// As [`embed`](Self::embed) for a batch whose first position is `first`
    /// of a longer sequence.
    fn embed_from(&self, batch: &Batch, first: usize, ctx: &mut Ctx) -> Result<Tensor> {
        let (b, t) = (batch.batch, batch.seq);
        let w = self.words.forward(&Tensor::from_slice(&batch.word_ids, (b, t), &self.device)?)?; // [B, T, word_dim]
        let c = self.chars.forward(&batch.spellings, &batch.spelling_lengths, batch.max_chars, &self.device)?; // [S, filters]
        let of = Tensor::from_slice(&batch.spelling_of, b * t, &self.device)?;
        let c = c.index_select(&of, 0)?.reshape((b, t, self.config.char_filters))?; //             [B, T, filters]
        let x = Tensor::cat(&[w, c], D::Minus1)?; //                                                 [B, T, word_dim + filters]
        let x = ctx.dropout(&x, self.config.dropout)?;
        let x = self.position.forward_from(&self.input.forward(&x)?, first)?; //                     [B, T, d_model]
        ctx.dropout(&x, self.config.dropout)
    }

    /// Tag scores `[batch, seq, tags]`.
    pub fn forward(&self, batch: &Batch, ctx: &mut Ctx) -> Result<Tensor> {
        self.forward_from(batch, 0, ctx)
    }

    /// Tag scores of a batch that is the slice of a longer sequence starting
    /// at position `first` (positions and rotary angles count from there).
    fn forward_from(&self, batch: &Batch, first: usize, ctx: &mut Ctx) -> Result<Tensor> {
        let mut x = self.embed_from(batch, first, ctx)?;
        if !ctx.train {
            x = x.detach(); // inference: the embedding's intermediates can go
        }
        let h = match &self.encoder {
            Body::Attention(encoder) => encoder.forward_from(&x, &self.pattern(batch), first, ctx)?,
            Body::Rnn(rnn) => {
                debug_assert_eq!(first, 0, "a BiLSTM reads whole sequences");
                rnn.forward(&x, &batch.lengths, ctx)?
            }
        };
        self.head.forward(&h)
    }

    /// Words each output of the encoder can see on either side: the window
    /// times the layers for truncated attention, unbounded otherwise.
    pub fn receptive_field(&self) -> Option<usize> {
        match (&self.encoder, self.config.window) {
            (Body::Attention(_), Some(w)) => Some(w * self.config.layers),
            _ => None,
        }
    }

    /// Tags one long sequence under truncated attention in slices of `core`
    /// words, each run with the [`receptive_field`](Self::receptive_field)
    /// of context on both sides, so memory stays bounded by the slice
    /// whatever the length, and every word gets the tag the whole-sequence
    /// pass would give it (same inputs, same positions, up to float rounding).
    pub fn predict_long(&self, sentence: &EncodedSentence, core: usize) -> Result<Vec<u32>> {
        self.long_logits(sentence, core)?.argmax(D::Minus1)?.to_vec1::<u32>()
    }

    /// The tag scores `[words, tags]` behind [`predict_long`](Self::predict_long).
    pub fn long_logits(&self, sentence: &EncodedSentence, core: usize) -> Result<Tensor> {
        let Some(halo) = self.receptive_field() else {
            candle_core::bail!("slicing a long input needs truncated attention (a window)");
        };
        let n = sentence.len();
        let core = core.max(1);
        let mut parts = Vec::with_capacity(n.div_ceil(core));
        let mut start = 0;
        while start < n {
            let end = (start + core).min(n);
            let (lo, hi) = (start.saturating_sub(halo), (end + halo).min(n));
            let slice = EncodedSentence {
                words: sentence.words[lo..hi].to_vec(),
                chars: sentence.chars[lo..hi].to_vec(),
                tags: sentence.tags[lo..hi].to_vec(),
            };
            let logits = self.forward_from(&Batch::new(std::slice::from_ref(&slice), &[0]), lo, &mut Ctx::eval())?;
            parts.push(logits.squeeze(0)?.narrow(0, start - lo, end - start)?.detach());
            start = end;
        }
        Tensor::cat(&parts, 0)
    }

    /// Mean cross-entropy of the batch's gold tags.
    pub fn loss(&self, batch: &Batch, ctx: &mut Ctx, label_smoothing: f32) -> Result<Tensor> {
        let logits = self.forward(batch, ctx)?;
        let rows = batch.batch * batch.seq;
        let targets = Tensor::from_slice(&batch.tags, rows, &self.device)?;
        ops::cross_entropy(&logits.reshape((rows, self.config.tags))?, &targets, label_smoothing)
    }

    /// Runs attention truncated to `window` words on each side from now on
    /// (`None`: the whole sequence). Applies at inference to a model trained
    /// either way; a BiLSTM tagger refuses.
    pub fn set_window(&mut self, window: Option<usize>) -> crate::Result<()> {
        if self.config.encoder == EncoderKind::Rnn && window.is_some() {
            return Err(crate::Error::Input("--window applies to attention taggers; this one is a BiLSTM (its cost is already linear in the length)".into()));
        }
        self.config.window = window;
        Ok(())
    }

    /// Refuses sequences longer than `limit` words under dense attention,
    /// with the remedy; truncated attention and the BiLSTM take any length.
    pub fn check_dense_length(&self, longest: usize, limit: usize) -> crate::Result<()> {
        if self.config.encoder == EncoderKind::Attention && self.config.window.is_none() && longest > limit {
            return Err(crate::Error::Input(format!(
                "a sequence of {longest} words under dense attention costs {longest}^2 scores per head and layer (minutes on a CPU; \
                 memory stays linear with the fused kernel); pass --window 64 for truncated attention with linear cost, \
                 or --max-dense-words {longest} to run it anyway"
            )));
        }
        Ok(())
    }

    /// Best tag index per word, one vector per sequence.
    pub fn predict_batch(&self, batch: &Batch) -> Result<Vec<Vec<u32>>> {
        let logits = self.forward(batch, &mut Ctx::eval())?;
        let best = logits.argmax(D::Minus1)?.to_vec2::<u32>()?;
        Ok(best.into_iter().zip(&batch.lengths).map(|(row, &n)| row[..n].to_vec()).collect())
    }

    /// Attention weights per layer `[batch, heads, seq, seq]` for a batch.
    pub fn attention_weights(&self, batch: &Batch) -> Result<Vec<Tensor>> {
        let Body::Attention(encoder) = &self.encoder else {
            return Err(candle_core::Error::msg("this tagger's encoder is a BiLSTM: it has no attention weights to show"));
        };
        let x = self.embed(batch, &mut Ctx::eval())?;
        encoder.attention_weights(&x, &self.pattern(batch))
    }

    /// Predicted tag index for every word of every sentence, in input order.
    /// Under truncated attention a sequence longer than [`LONG_SLICE_WORDS`]
    /// (plus context) is tagged in slices by [`predict_long`](Self::predict_long).
    pub fn predict(&self, sentences: &[Sentence], vocab: &TaggerVocab, batch_tokens: usize) -> Result<Vec<Vec<u32>>> {
        let data = encode(sentences, vocab, self.config.max_word_chars);
        let mut out = vec![Vec::new(); sentences.len()];
        let sliced = |len: usize| self.receptive_field().is_some_and(|halo| len > LONG_SLICE_WORDS + 2 * halo);
        for (i, s) in data.iter().enumerate().filter(|(_, s)| sliced(s.len())) {
            out[i] = self.predict_long(s, LONG_SLICE_WORDS)?;
        }
        let rest: Vec<usize> = (0..data.len()).filter(|&i| !sliced(data[i].len())).collect();
        let lengths: Vec<usize> = rest.iter().map(|&i| data[i].len()).collect();
        for idx in bucket::<rand_chacha::ChaCha8Rng>(&lengths, batch_tokens, None) {
            let idx: Vec<usize> = idx.into_iter().map(|k| rest[k]).collect();
            let batch = Batch::new(&data, &idx);
            for (i, tags) in idx.iter().zip(self.predict_batch(&batch)?) {
                out[*i] = tags;
            }
        }
        Ok(out)
    }

    /// Writes predicted UPOS tags into the sentences.
    pub fn tag(&self, sentences: &mut [Sentence], vocab: &TaggerVocab, batch_tokens: usize) -> Result<()> {
        let predicted = self.predict(sentences, vocab, batch_tokens)?;
        for (s, tags) in sentences.iter_mut().zip(predicted) {
            for (t, tag) in s.words_mut().zip(tags) {
                t.upos = vocab.tags.name(tag).to_string();
            }
        }
        Ok(())
    }
}

/// Counts for one tag.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TagStats {
    pub gold: usize,
    pub predicted: usize,
    pub correct: usize,
}

/// UPOS accuracy, overall, on words unseen in training, and per tag.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub tokens: usize,
    pub correct: usize,
    pub unknown_tokens: usize,
    pub unknown_correct: usize,
    pub per_tag: BTreeMap<String, TagStats>,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

impl EvalReport {
    pub fn accuracy(&self) -> f64 {
        ratio(self.correct, self.tokens)
    }
    pub fn unknown_accuracy(&self) -> f64 {
        ratio(self.unknown_correct, self.unknown_tokens)
    }
    /// A JSON object with the counts and the derived accuracies.
    pub fn to_json(&self) -> serde_json::Value {
        let per_tag: serde_json::Map<String, serde_json::Value> = self
            .per_tag
            .iter()
            .map(|(tag, s)| {
                let (p, r) = (ratio(s.correct, s.predicted), ratio(s.correct, s.gold));
                let f1 = if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 };
                (tag.clone(), serde_json::json!({"gold": s.gold, "predicted": s.predicted, "correct": s.correct, "precision": p, "recall": r, "f1": f1}))
            })
            .collect();
        serde_json::json!({
            "tokens": self.tokens, "correct": self.correct, "accuracy": self.accuracy(),
            "unknown_tokens": self.unknown_tokens, "unknown_correct": self.unknown_correct,
            "unknown_accuracy": self.unknown_accuracy(), "per_tag": per_tag,
        })
    }
}

/// Compares predicted tags with the gold UPOS of `gold`. Gold tags the model
/// has never seen count as errors (it cannot predict them).
/// Checks that every gold UPOS in `gold` (read from `path`) is a tag the
/// model knows: an unseen tag can never be predicted, and usually means the
/// wrong column or an untagged file.
pub fn check_gold_tags(gold: &[Sentence], vocab: &TaggerVocab, path: &std::path::Path) -> crate::Result<()> {
    for s in gold {
        for (i, t) in s.tokens.iter().enumerate() {
            if !matches!(t.id, crate::data::conllu::TokenId::Word(_)) || vocab.tags.get(&t.upos).is_some() {
                continue;
            }
            let line = s.line + s.comments.len() + i;
            let message = if t.upos == "_" {
                "no gold UPOS (\"_\") for this word: eval needs a tagged file (attend tag tags untagged text)".to_string()
            } else {
                let known: Vec<&str> = (0..vocab.tags.len() as u32).map(|i| vocab.tags.name(i)).filter(|n| !n.starts_with('<')).collect();
                format!("gold UPOS {:?} never occurred in the model's training data (it knows {})", t.upos, known.join(" "))
            };
            return Err(crate::Error::Parse { path: path.to_path_buf(), line, message });
        }
    }
    Ok(())
}

pub fn score(gold: &[Sentence], predicted: &[Vec<u32>], vocab: &TaggerVocab) -> EvalReport {
    let mut r = EvalReport::default();
    for (s, tags) in gold.iter().zip(predicted) {
        for (t, &p) in s.words().zip(tags) {
            let p = vocab.tags.name(p);
            let ok = t.upos == p;
            r.tokens += 1;
            r.correct += ok as usize;
            if vocab.is_unknown(&t.form) {
                r.unknown_tokens += 1;
                r.unknown_correct += ok as usize;
            }
            r.per_tag.entry(t.upos.clone()).or_default().gold += 1;
            r.per_tag.entry(p.to_string()).or_default().predicted += 1;
            if ok {
                r.per_tag.get_mut(p).expect("inserted above").correct += 1;
            }
        }
    }
    r
}

impl Tagger {
    /// Tags `sentences` and scores against their gold UPOS.
    pub fn evaluate(&self, sentences: &[Sentence], vocab: &TaggerVocab, batch_tokens: usize) -> Result<EvalReport> {
        Ok(score(sentences, &self.predict(sentences, vocab, batch_tokens)?, vocab))
    }
}
