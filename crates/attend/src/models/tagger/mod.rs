//! The part-of-speech tagger, composed of three parts: the word front end
//! ([`WordFeatures`]: embedding + character encoder), the shared
//! [`SequenceEncoder`] (self-attention, or the BiLSTM baseline) and a
//! [`PerVectorHead`] (one tag per word).

pub mod config;
pub mod eval;
pub mod load;
pub mod task;

use crate::data::batch::{bucket, encode, Batch, EncodedSentence};
use crate::data::conllu::Sentence;
use crate::data::vocab::TaggerVocab;
use crate::nn::head::PerVectorHead;
use crate::nn::sequence::{slices, EncoderKind, SequenceEncoder};
use crate::nn::word_features::WordFeatures;
use crate::nn::{Ctx, ParamStore};
use candle_core::{Result, Tensor, D};
use config::TaggerConfig;

/// Words per slice when a long input is tagged in slices under truncated
/// attention (each slice also reads its receptive field on both sides).
pub const LONG_SLICE_WORDS: usize = 4096;

/// Longest sequence tagged with dense (untruncated) attention unless the
/// caller raises the limit: above it the quadratic cost takes minutes, and
/// `--window` gives linear cost instead.
pub const MAX_DENSE_WORDS: usize = 16384;

/// Padded words per batch when tagging or evaluating (no gradients are
/// kept, so batches can be larger than in training).
pub const EVAL_BATCH_TOKENS: usize = 8192;

/// Padded words per batch in `attend tag`: each layer's activations then
/// stay in cache. On EWT test (2 cores, Zen 3) tagging ran 15% faster than
/// with [`EVAL_BATCH_TOKENS`] at a third of the peak memory, with the same
/// tags (a sentence's scores do not depend on its batch-mates).
pub const TAG_BATCH_TOKENS: usize = 2048;

/// The tagger network.
pub struct Tagger {
    pub config: TaggerConfig,
    pub params: ParamStore,
    features: WordFeatures,
    encoder: SequenceEncoder,
    head: PerVectorHead,
}

impl Tagger {
    /// A freshly initialised tagger (initial values drawn from `seed`).
    pub fn new(config: TaggerConfig, seed: u64) -> Result<Self> {
        config.validate().map_err(candle_core::Error::msg)?;
        let c = &config;
        let mut p = ParamStore::new(seed);
        // Creation order fixes the initial values drawn from `seed`.
        let features = WordFeatures::new(&mut p, c.words, c.word_dim, c.chars, c.char_dim, c.char_filters, c.char_kernel)?;
        let encoder = SequenceEncoder::new(&mut p, features.width(), &c.encoder_config())?;
        let head = PerVectorHead::new(&mut p, "head", c.d_model, c.tags)?;
        Ok(Tagger { config, params: p, features, encoder, head })
    }

    /// Tag scores `[batch, seq, tags]`.
    pub fn forward(&self, batch: &Batch, ctx: &mut Ctx) -> Result<Tensor> {
        self.forward_from(batch, 0, ctx)
    }

    /// Tag scores of a batch that is the slice of a longer sequence starting
    /// at position `first` (positions and rotary angles count from there).
    fn forward_from(&self, batch: &Batch, first: usize, ctx: &mut Ctx) -> Result<Tensor> {
        let mut x = self.features.forward(batch)?;
        if !ctx.train {
            x = x.detach(); // inference: the character encoder's intermediates can go now
        }
        let h = self.encoder.forward(&x, &batch.lengths, first, ctx)?;
        self.head.forward(&h)
    }

    /// Words each output of the encoder can see on either side: the window
    /// times the layers for truncated attention, unbounded otherwise.
    pub fn receptive_field(&self) -> Option<usize> {
        self.encoder.receptive_field()
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
        let mut parts = Vec::new();
        for s in slices(sentence.len(), core, halo) {
            let slice = EncodedSentence {
                words: sentence.words[s.lo..s.hi].to_vec(),
                chars: sentence.chars[s.lo..s.hi].to_vec(),
                tags: sentence.tags[s.lo..s.hi].to_vec(),
            };
            let logits = self.forward_from(&Batch::new(std::slice::from_ref(&slice), &[0]), s.lo, &mut Ctx::eval())?;
            parts.push(logits.squeeze(0)?.narrow(0, s.start - s.lo, s.end - s.start)?.detach());
        }
        Tensor::cat(&parts, 0)
    }

    /// Mean cross-entropy of the batch's gold tags.
    pub fn loss(&self, batch: &Batch, ctx: &mut Ctx, label_smoothing: f32) -> Result<Tensor> {
        self.head.loss(&self.forward(batch, ctx)?, &batch.tags, label_smoothing)
    }

    /// Runs attention truncated to `window` words on each side from now on
    /// (`None`: the whole sequence). Applies at inference to a model trained
    /// either way; a BiLSTM tagger refuses.
    pub fn set_window(&mut self, window: Option<usize>) -> crate::Result<()> {
        self.encoder.set_window(window).map_err(crate::Error::Input)?;
        self.config.window = window;
        Ok(())
    }

    /// Refuses sequences longer than `limit` words under dense attention,
    /// with the remedy; truncated attention and the BiLSTM take any length.
    pub fn check_dense_length(&self, longest: usize, limit: usize) -> crate::Result<()> {
        self.encoder.check_dense_length(longest, limit).map_err(crate::Error::Input)
    }

    /// Best tag index per word, one vector per sequence.
    pub fn predict_batch(&self, batch: &Batch) -> Result<Vec<Vec<u32>>> {
        let logits = self.forward(batch, &mut Ctx::eval())?;
        let best = logits.argmax(D::Minus1)?.to_vec2::<u32>()?;
        Ok(best.into_iter().zip(&batch.lengths).map(|(row, &n)| row[..n].to_vec()).collect())
    }

    /// Attention weights per layer `[batch, heads, seq, seq]` for a batch.
    pub fn attention_weights(&self, batch: &Batch) -> Result<Vec<Tensor>> {
        self.encoder.attention_weights(&self.features.forward(batch)?, &batch.lengths)
    }

    /// Whether the encoder is self-attention or the BiLSTM.
    pub fn encoder_kind(&self) -> EncoderKind {
        self.config.encoder
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

    /// Tags `sentences` and scores against their gold UPOS.
    pub fn evaluate(&self, sentences: &[Sentence], vocab: &TaggerVocab, batch_tokens: usize) -> Result<eval::EvalReport> {
        Ok(eval::score(sentences, &self.predict(sentences, vocab, batch_tokens)?, vocab))
    }
}
