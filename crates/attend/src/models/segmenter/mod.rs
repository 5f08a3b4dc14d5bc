//! The segmenter: characters are vectors too. Every character of a
//! paragraph is embedded (its lowercased self plus its kind: letter case,
//! digit, punctuation, space), the shared [`SequenceEncoder`] relates it to
//! its neighbours under truncated (windowed) attention, and a
//! [`PerVectorHead`] labels it ([`crate::data::raw_text::LABELS`]: inside a
//! token, token end, multiword token end, sentence end, space). Long
//! paragraphs run in slices with the receptive field as context, so the
//! cost is linear and memory bounded.

pub mod task;

use crate::data::batch::bucket;
use crate::data::raw_text::{self, MultiwordLexicon, Paragraph, SPACE};
use crate::nn::char_encoder::neighbour_windows;
use crate::nn::head::PerVectorHead;
use crate::nn::position::PositionKind;
use crate::nn::sequence::LONG_SLICE;
use crate::nn::sequence::{slices, EncoderConfig, EncoderKind, SequenceEncoder};
use crate::nn::{AttentionKernel, Ctx, Embedding, ParamStore};
use crate::train::{even_runs, Piece, Split};
use attend_kernels::loss::IGNORE;
use candle_core::{Device, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Architecture of the segmenter, saved as the `model` of its `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SegmenterConfig {
    /// Width of the character and character-kind embeddings.
    pub char_dim: usize,
    /// Each character goes in with its neighbours: the embeddings of this
    /// many characters around it (odd), concatenated. Attention is weak at
    /// exact offsets ("is the next character a period?"); this window
    /// gives them directly, attention the wider context.
    pub kernel: usize,
    pub d_model: usize,
    pub heads: usize,
    pub layers: usize,
    pub ff_dim: usize,
    pub dropout: f32,
    /// Each character sees this many on each side, per layer.
    pub window: usize,
    /// Set from the training text: the character vocabulary's size.
    pub chars: usize,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        SegmenterConfig { char_dim: 32, kernel: 5, d_model: 64, heads: 4, layers: 3, ff_dim: 128, dropout: 0.1, window: 32, chars: 0 }
    }
}

impl SegmenterConfig {
    fn encoder_config(&self) -> EncoderConfig {
        EncoderConfig {
            kind: EncoderKind::Attention,
            d_model: self.d_model,
            heads: self.heads,
            layers: self.layers,
            ff_dim: self.ff_dim,
            dropout: self.dropout,
            input_dropout: None,
            attention_dropout: 0.0,
            position: PositionKind::Rope,
            max_positions: 1,
            window: Some(self.window),
            attention_kernel: AttentionKernel::Fused,
        }
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.window == 0 {
            return Err("the segmenter's window must be at least 1".into());
        }
        if self.kernel.is_multiple_of(2) {
            return Err(format!("the segmenter's kernel must be odd, got {}", self.kernel));
        }
        if self.char_dim == 0 || self.layers == 0 {
            return Err("the segmenter needs char_dim and layers of at least 1".into());
        }
        self.encoder_config().validate()
    }
}

/// Character kinds: space, lower, upper, digit, punctuation, other.
const KINDS: usize = 6;

fn kind(c: char) -> u32 {
    if c.is_whitespace() {
        0
    } else if c.is_lowercase() {
        1
    } else if c.is_uppercase() {
        2
    } else if c.is_numeric() {
        3
    } else if c.is_ascii_punctuation() || (!c.is_alphanumeric() && (c as u32) < 0x3000) {
        4
    } else {
        5
    }
}

/// The characters the segmenter knows (lowercased; id 0 is unknown, all
/// white space is one character) and how multiword tokens split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmenterData {
    /// Known characters in id order from 1.
    pub chars: String,
    pub lexicon: MultiwordLexicon,
    #[serde(skip)]
    index: HashMap<char, u32>,
}

impl SegmenterData {
    /// Characters seen at least twice in the training paragraphs.
    pub fn build(paragraphs: &[Paragraph], lexicon: MultiwordLexicon) -> Self {
        let mut counts: HashMap<char, usize> = HashMap::new();
        for p in paragraphs {
            for &c in &p.chars {
                *counts.entry(fold(c)).or_default() += 1;
            }
        }
        let mut chars: Vec<char> = counts.into_iter().filter(|&(_, n)| n >= 2).map(|(c, _)| c).collect();
        chars.sort_unstable();
        Self::new(chars.into_iter().collect(), lexicon)
    }

    pub fn new(chars: String, lexicon: MultiwordLexicon) -> Self {
        let index = chars.chars().enumerate().map(|(i, c)| (c, i as u32 + 1)).collect();
        SegmenterData { chars, lexicon, index }
    }

    /// Rebuilds the lookup after deserialising.
    pub fn reindex(self) -> Self {
        Self::new(self.chars, self.lexicon)
    }

    pub fn vocab_size(&self) -> usize {
        self.index.len() + 1
    }

    /// (character id, kind id) of each character.
    pub fn encode(&self, chars: &[char]) -> (Vec<u32>, Vec<u32>) {
        chars.iter().map(|&c| (self.index.get(&fold(c)).copied().unwrap_or(0), kind(c))).unzip()
    }
}

fn fold(c: char) -> char {
    if c.is_whitespace() {
        ' '
    } else {
        c.to_lowercase().next().unwrap_or(c)
    }
}

/// A padded batch of character sequences.
pub struct CharBatch {
    pub ids: Tensor,
    pub kinds: Tensor,
    pub lengths: Vec<usize>,
    /// Gold labels, `IGNORE` on padding (empty at inference).
    pub labels: Vec<u32>,
}

impl CharBatch {
    /// `items`: (character ids, kinds, labels or empty) per sequence.
    pub fn new(items: &[(&[u32], &[u32], &[u32])]) -> Result<Self> {
        let t = items.iter().map(|x| x.0.len()).max().unwrap_or(0).max(1);
        let n = items.len();
        let (mut ids, mut kinds, mut labels) = (vec![0u32; n * t], vec![0u32; n * t], vec![IGNORE; n * t]);
        for (b, (i, k, l)) in items.iter().enumerate() {
            ids[b * t..b * t + i.len()].copy_from_slice(i);
            kinds[b * t..b * t + k.len()].copy_from_slice(k);
            labels[b * t..b * t + l.len()].copy_from_slice(l);
        }
        let dev = Device::Cpu;
        Ok(CharBatch {
            ids: Tensor::from_vec(ids, (n, t), &dev)?,
            kinds: Tensor::from_vec(kinds, (n, t), &dev)?,
            lengths: items.iter().map(|x| x.0.len()).collect(),
            labels,
        })
    }
}

/// Characters per batch at inference. Small batches keep each layer's
/// activations in cache: on EWT test, 4,096 labels 2x faster than 32,768.
const LABEL_BATCH_CHARS: usize = 4096;

/// The model.
pub struct Segmenter {
    pub config: SegmenterConfig,
    pub params: ParamStore,
    chars: Embedding,
    kinds: Embedding,
    encoder: SequenceEncoder,
    head: PerVectorHead,
}

impl Segmenter {
    pub fn new(config: SegmenterConfig, seed: u64) -> Result<Self> {
        config.validate().map_err(candle_core::Error::msg)?;
        let mut p = ParamStore::new(seed);
        let chars = Embedding::new(&mut p, "chars", config.chars.max(1), config.char_dim, 0.1)?;
        let kinds = Embedding::new(&mut p, "kinds", KINDS, config.char_dim, 0.1)?;
        let encoder = SequenceEncoder::new(&mut p, config.kernel * config.char_dim, &config.encoder_config())?;
        let head = PerVectorHead::new(&mut p, "head", config.d_model, raw_text::LABELS.len())?;
        Ok(Segmenter { config, params: p, chars, kinds, encoder, head })
    }

    /// Scores `[batch, seq, labels]`; the batch starts at position `first` of a longer text.
    fn forward(&self, batch: &CharBatch, first: usize, ctx: &mut Ctx) -> Result<Tensor> {
        let x = (self.chars.forward(&batch.ids)? + self.kinds.forward(&batch.kinds)?)?;
        // Each character with its neighbours (zeros past a text's end).
        let x = neighbour_windows(&x, &batch.lengths, self.config.kernel)?;
        let h = self.encoder.forward(&x, &batch.lengths, first, ctx)?;
        self.head.forward(&h)
    }

    /// Mean cross-entropy over the batch's characters.
    pub fn loss(&self, batch: &CharBatch, ctx: &mut Ctx) -> Result<Tensor> {
        self.head.loss(&self.forward(batch, 0, ctx)?, &batch.labels, 0.0)
    }

    /// The loss of a batch of `items` (as [`CharBatch::new`] takes them)
    /// for a data-parallel step ([`crate::train::Task::split`]): contiguous
    /// runs of about equal padded size ([`even_runs`]), each piece's mean weighted by its
    /// share of the labelled characters, so the pieces add up to
    /// [`loss`](Self::loss) of the whole batch.
    pub fn split<'a>(&'a self, items: &[(&[u32], &[u32], &[u32])], parts: usize) -> Result<Split<'a>> {
        let sizes: Vec<usize> = items.iter().map(|x| x.0.len()).collect();
        let pieces = even_runs(&sizes, parts).into_iter().map(|r| CharBatch::new(&items[r])).collect::<Result<Vec<_>>>()?;
        let labelled = |b: &CharBatch| b.labels.iter().filter(|&&l| l != IGNORE).count();
        let all: usize = pieces.iter().map(labelled).sum();
        let units = pieces.iter().map(|b| b.lengths.iter().sum::<usize>()).sum();
        let pieces = pieces
            .into_iter()
            .map(|piece| {
                let share = labelled(&piece) as f64 / all.max(1) as f64;
                Box::new(move |ctx: &mut Ctx| -> crate::Result<Tensor> {
                    let logits = self.forward(&piece, 0, ctx)?;
                    // A piece with nothing labelled adds nothing (its mean would be 0/0).
                    Ok(if share > 0.0 {
                        (self.head.loss(&logits, &piece.labels, 0.0)? * share)?
                    } else {
                        logits.sum_all()?.affine(0.0, 0.0)?
                    })
                }) as Piece<'a>
            })
            .collect();
        Ok(Split { units, pieces })
    }

    /// Positions each output sees on either side.
    pub fn receptive_field(&self) -> usize {
        self.config.window * self.config.layers + self.config.kernel / 2
    }

    /// Labels for each text: white space is always [`SPACE`], any other
    /// character gets its best label but space. Texts are batched by
    /// length; long ones go in slices with the receptive field as context.
    pub fn label(&self, data: &SegmenterData, texts: &[&[char]]) -> Result<Vec<Vec<u32>>> {
        let mut out = vec![Vec::new(); texts.len()];
        let encoded: Vec<(Vec<u32>, Vec<u32>)> = texts.iter().map(|t| data.encode(t)).collect();
        let halo = self.receptive_field();
        let long = |n: usize| n > LONG_SLICE + 2 * halo;
        for (i, (ids, kinds)) in encoded.iter().enumerate().filter(|(_, e)| long(e.0.len())) {
            let mut labels = Vec::with_capacity(ids.len());
            for s in slices(ids.len(), LONG_SLICE, halo) {
                let batch = CharBatch::new(&[(&ids[s.lo..s.hi], &kinds[s.lo..s.hi], &[])])?;
                let scores = self.forward(&batch, s.lo, &mut Ctx::eval())?;
                let l = best_labels(&scores, &batch.lengths)?.remove(0);
                labels.extend_from_slice(&constrain(&texts[i][s.lo..s.hi], l)[s.start - s.lo..s.end - s.lo]);
            }
            out[i] = labels;
        }
        let rest: Vec<usize> = (0..texts.len()).filter(|&i| !long(texts[i].len())).collect();
        let lengths: Vec<usize> = rest.iter().map(|&i| texts[i].len()).collect();
        let batches: Vec<Vec<usize>> = bucket::<rand_chacha::ChaCha8Rng>(&lengths, LABEL_BATCH_CHARS, None)
            .into_iter()
            .map(|idx| idx.into_iter().map(|k| rest[k]).collect())
            .collect();
        // Whole batches per thread (crate::shard): the labels equal one thread's.
        let labelled = crate::shard::map(&batches, |idx| {
            let items: Vec<(&[u32], &[u32], &[u32])> = idx.iter().map(|&i| (&encoded[i].0[..], &encoded[i].1[..], &[][..])).collect();
            let batch = CharBatch::new(&items)?;
            best_labels(&self.forward(&batch, 0, &mut Ctx::eval())?, &batch.lengths)
        })?;
        for (idx, labels) in batches.iter().zip(labelled) {
            for (&i, l) in idx.iter().zip(labels) {
                out[i] = constrain(texts[i], l);
            }
        }
        Ok(out)
    }

    /// Labels of one text in a single pass, never in slices (the reference
    /// [`label`](Self::label) must match).
    pub fn label_whole(&self, data: &SegmenterData, text: &[char]) -> Result<Vec<u32>> {
        let (ids, kinds) = data.encode(text);
        let batch = CharBatch::new(&[(&ids[..], &kinds[..], &[])])?;
        let scores = self.forward(&batch, 0, &mut Ctx::eval())?;
        Ok(constrain(text, best_labels(&scores, &batch.lengths)?.remove(0)))
    }
}

/// Per sequence, the best label of each character other than space
/// (white space is labelled by [`constrain`]).
fn best_labels(scores: &Tensor, lengths: &[usize]) -> Result<Vec<Vec<u32>>> {
    let s = scores.to_vec3::<f32>()?;
    let best = |r: &[f32]| (0..r.len()).filter(|&k| k != SPACE as usize).fold(0, |b, k| if r[k] > r[b] { k } else { b }) as u32;
    Ok(s.into_iter().zip(lengths).map(|(rows, &n)| rows[..n].iter().map(|r| best(r)).collect()).collect())
}

fn constrain(text: &[char], labels: Vec<u32>) -> Vec<u32> {
    text.iter().zip(labels).map(|(c, l)| if c.is_whitespace() { SPACE } else { l }).collect()
}
