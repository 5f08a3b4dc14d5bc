//! The part-of-speech tagger, composed of three parts: the word front end
//! ([`WordFeatures`]: embedding + character encoder), the shared
//! [`SequenceEncoder`] (self-attention, or the BiLSTM baseline) and one
//! [`PerVectorHead`] per predicted column (UPOS, and XPOS and FEATS when
//! trained for them), each giving one label per word.

pub mod config;
pub mod eval;
pub mod load;
pub mod task;

use crate::data::batch::{bucket, encode, Batch, EncodedSentence};
use crate::data::conllu::Sentence;
use crate::data::vocab::{Column, TaggerVocab};
use crate::nn::head::PerVectorHead;
use crate::nn::sequence::{slices, EncoderKind, SequenceEncoder};
use crate::nn::word_features::WordFeatures;
use crate::nn::{Ctx, ParamStore};
use crate::train::{even_runs, Piece, Split};
use candle_core::{Result, Tensor, D};
use config::TaggerConfig;
use rayon::prelude::*;

pub use crate::nn::sequence::{EVAL_BATCH_TOKENS, LONG_SLICE as LONG_SLICE_WORDS, MAX_DENSE as MAX_DENSE_WORDS};

/// Padded words per batch in `attend tag` and in scoring (the dev set after
/// each epoch, the test set): each layer's activations then stay in cache.
/// On EWT test (2 cores, Zen 3) tagging ran 15% faster than with
/// [`EVAL_BATCH_TOKENS`] at a third of the peak memory, with the same tags
/// (a sentence's scores do not depend on its batch-mates). Scoring dev with
/// 8,192-word batches took the main job's peak RSS from 475 to 781 MiB
/// (2 threads, Zen 4): each thread's allocator keeps its own peak.
pub const TAG_BATCH_TOKENS: usize = 2048;

/// The tagger network.
pub struct Tagger {
    pub config: TaggerConfig,
    pub params: ParamStore,
    features: WordFeatures,
    encoder: SequenceEncoder,
    head: PerVectorHead,
    /// Heads of the other columns (XPOS, FEATS), in [`Column::ALL`] order.
    other_heads: Vec<(Column, PerVectorHead)>,
}

/// Predicted label indices of one sentence, per column the model has: UPOS
/// first, then as [`Tagger::columns`].
pub type SentenceLabels = Vec<Vec<u32>>;

impl Tagger {
    /// A freshly initialised tagger (initial values drawn from `seed`).
    pub fn new(config: TaggerConfig, seed: u64) -> Result<Self> {
        config.validate().map_err(candle_core::Error::msg)?;
        let c = &config;
        let mut p = ParamStore::new(seed);
        // Creation order fixes the initial values drawn from `seed`.
        let features = WordFeatures::new(&mut p, c.words, c.word_dim, c.chars, c.char_dim, c.char_filters, c.char_kernel)?;
        let encoder = SequenceEncoder::new(&mut p, features.width(), &c.encoder)?;
        let head = PerVectorHead::new(&mut p, "head", c.encoder.d_model, c.tags)?;
        // Created after the UPOS head, so a UPOS-only tagger draws the same
        // initial values as before these heads existed.
        let mut other_heads = Vec::new();
        for (column, name, labels) in [(Column::Xpos, "xpos_head", c.xpos_tags), (Column::Feats, "feats_head", c.feats_tags)] {
            if labels > 0 {
                other_heads.push((column, PerVectorHead::new(&mut p, name, c.encoder.d_model, labels)?));
            }
        }
        Ok(Tagger { config, params: p, features, encoder, head, other_heads })
    }

    /// The columns the model predicts, UPOS first.
    pub fn columns(&self) -> Vec<Column> {
        std::iter::once(Column::Upos).chain(self.other_heads.iter().map(|(c, _)| *c)).collect()
    }

    /// UPOS scores `[batch, seq, tags]`.
    pub fn forward(&self, batch: &Batch, ctx: &mut Ctx) -> Result<Tensor> {
        self.head.forward(&self.encode(batch, 0, ctx)?)
    }

    /// Scores `[batch, seq, labels]` of every column, as [`columns`](Self::columns).
    pub fn forward_columns(&self, batch: &Batch, ctx: &mut Ctx) -> Result<Vec<Tensor>> {
        self.forward_from(batch, 0, ctx)
    }

    /// Every column's scores for a batch that is the slice of a longer
    /// sequence starting at position `first` (positions and rotary angles
    /// count from there).
    fn forward_from(&self, batch: &Batch, first: usize, ctx: &mut Ctx) -> Result<Vec<Tensor>> {
        let h = self.encode(batch, first, ctx)?;
        self.heads().map(|head| head.forward(&h)).collect()
    }

    fn heads(&self) -> impl Iterator<Item = &PerVectorHead> {
        std::iter::once(&self.head).chain(self.other_heads.iter().map(|(_, h)| h))
    }

    /// The encoder's output `[batch, seq, d_model]`.
    fn encode(&self, batch: &Batch, first: usize, ctx: &mut Ctx) -> Result<Tensor> {
        let mut x = self.features.forward(batch, ctx)?;
        if !ctx.train {
            x = x.detach(); // inference: the character encoder's intermediates can go now
        }
        self.encoder.forward(&x, &batch.lengths, first, ctx)
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
    pub fn predict_long(&self, sentence: &EncodedSentence, core: usize, vocab: &TaggerVocab) -> Result<SentenceLabels> {
        let logits = self.long_logits(sentence, core)?;
        let rows: Vec<usize> = (0..logits.first().map_or(Ok(0), |l| l.dim(0))?).collect();
        decode(&logits, self.combinations(vocab), &rows)
    }

    /// The label combinations decoding may choose from: those seen in
    /// training, when the model predicts more than UPOS and the vocabulary
    /// lists them (see [`TaggerVocab::combinations`]).
    fn combinations<'v>(&self, vocab: &'v TaggerVocab) -> Option<&'v [Vec<u32>]> {
        let c = vocab.combinations.as_deref()?;
        (!self.other_heads.is_empty() && vocab.columns() == self.columns()).then_some(c)
    }

    /// The scores `[words, labels]` of each column behind
    /// [`predict_long`](Self::predict_long).
    pub fn long_logits(&self, sentence: &EncodedSentence, core: usize) -> Result<Vec<Tensor>> {
        let Some(halo) = self.receptive_field() else {
            candle_core::bail!("slicing a long input needs truncated attention (a window)");
        };
        let mut parts: Vec<Vec<Tensor>> = vec![Vec::new(); self.other_heads.len() + 1];
        for s in slices(sentence.len(), core, halo) {
            let slice = sentence.slice(s.lo..s.hi);
            let batch = Batch::new(std::slice::from_ref(&slice), &[0]);
            let logits = crate::precision::inference(|| self.forward_from(&batch, s.lo, &mut Ctx::eval()))?;
            for (part, l) in parts.iter_mut().zip(logits) {
                part.push(l.squeeze(0)?.narrow(0, s.start - s.lo, s.end - s.start)?.detach());
            }
        }
        parts.iter().map(|p| Tensor::cat(p, 0)).collect()
    }

    /// The sum over columns of each column's mean cross-entropy against the
    /// batch's gold labels.
    pub fn loss(&self, batch: &Batch, ctx: &mut Ctx, label_smoothing: f32) -> Result<Tensor> {
        let h = self.encode(batch, 0, ctx)?;
        let mut loss = self.head.loss(&self.head.forward(&h)?, &batch.tags, label_smoothing)?;
        for ((_, head), gold) in self.other_heads.iter().zip(&batch.other_tags) {
            loss = (loss + head.loss(&head.forward(&h)?, gold, label_smoothing)?)?;
        }
        Ok(loss)
    }

    /// `batch`'s [`loss`](Self::loss) for a data-parallel step
    /// ([`crate::train::Task::split`]): its sentences cut into at most
    /// `parts` contiguous runs of about equal padded size ([`even_runs`]), each a
    /// [`piece_loss`](Self::piece_loss).
    pub fn split(&self, batch: &Batch, parts: usize, label_smoothing: f32) -> Split<'_> {
        let pieces: Vec<Batch> = even_runs(&batch.lengths, parts).into_iter().map(|r| batch.rows(r)).collect();
        let labelled = batch.labelled();
        let pieces = pieces
            .into_iter()
            .map(|piece| {
                let labelled = labelled.clone();
                Box::new(move |ctx: &mut Ctx| Ok(self.piece_loss(&piece, ctx, label_smoothing, &labelled)?)) as Piece<'_>
            })
            .collect();
        Split { units: batch.tokens(), pieces }
    }

    /// The share of one piece of a larger batch in that batch's [`loss`](Self::loss):
    /// each column's mean over the piece's labelled words, weighted by the
    /// piece's part of the batch's labelled words in that column
    /// (`batch_labelled`: [`Batch::labelled`] of the whole batch).
    /// The pieces' shares add up to the loss of the whole batch.
    pub fn piece_loss(&self, piece: &Batch, ctx: &mut Ctx, label_smoothing: f32, batch_labelled: &[usize]) -> Result<Tensor> {
        let h = self.encode(piece, 0, ctx)?;
        let heads = std::iter::once(&self.head).chain(self.other_heads.iter().map(|(_, head)| head));
        let golds = std::iter::once(&piece.tags).chain(&piece.other_tags);
        let mut loss: Option<Tensor> = None;
        for ((head, gold), (mine, all)) in heads.zip(golds).zip(piece.labelled().into_iter().zip(batch_labelled)) {
            if mine == 0 {
                continue; // nothing to learn here for this column (and its mean would be 0/0)
            }
            let share = (head.loss(&head.forward(&h)?, gold, label_smoothing)? * (mine as f64 / *all as f64))?;
            loss = Some(match loss {
                Some(l) => (l + share)?,
                None => share,
            });
        }
        match loss {
            Some(l) => Ok(l),
            None => h.sum_all()?.affine(0.0, 0.0),
        }
    }

    /// Runs attention truncated to `window` words on each side from now on
    /// (`None`: the whole sequence). Applies at inference to a model trained
    /// either way; a BiLSTM tagger refuses.
    pub fn set_window(&mut self, window: Option<usize>) -> crate::Result<()> {
        self.encoder.set_window(window).map_err(crate::Error::Input)?;
        self.config.encoder.window = window;
        Ok(())
    }

    /// Refuses sequences longer than `limit` words under dense attention,
    /// with the remedy; truncated attention and the BiLSTM take any length.
    pub fn check_dense_length(&self, longest: usize, limit: usize) -> crate::Result<()> {
        self.encoder.check_dense_length(longest, limit)
    }

    /// Best UPOS index per word, one vector per sequence.
    pub fn predict_batch(&self, batch: &Batch) -> Result<Vec<Vec<u32>>> {
        let logits = crate::precision::inference(|| self.forward(batch, &mut Ctx::eval()))?;
        best_per_word(&logits, &batch.lengths)
    }

    /// Best label index per word for every column, per sequence.
    fn predict_batch_columns(&self, batch: &Batch, vocab: &TaggerVocab) -> Result<Vec<SentenceLabels>> {
        let rows = batch.batch * batch.seq;
        let logits: Vec<Tensor> = crate::precision::inference(|| self.forward_columns(batch, &mut Ctx::eval()))?
            .iter()
            .map(|l| l.reshape((rows, ())))
            .collect::<Result<_>>()?;
        // the real words only, not the padding
        let words: Vec<usize> = (0..batch.batch).flat_map(|b| (b * batch.seq..).take(batch.lengths[b])).collect();
        let flat = decode(&logits, self.combinations(vocab), &words)?;
        let mut start = 0;
        Ok(batch
            .lengths
            .iter()
            .map(|&n| {
                start += n;
                flat.iter().map(|column| column[start - n..start].to_vec()).collect()
            })
            .collect())
    }

    /// Attention weights per layer `[batch, heads, seq, seq]` for a batch.
    pub fn attention_weights(&self, batch: &Batch) -> Result<Vec<Tensor>> {
        self.encoder.attention_weights(&self.features.forward(batch, &Ctx::eval())?, &batch.lengths)
    }

    /// Whether the encoder is self-attention or the BiLSTM.
    pub fn encoder_kind(&self) -> EncoderKind {
        self.config.encoder.kind
    }

    /// Predicted UPOS index for every word of every sentence, in input order.
    pub fn predict(&self, sentences: &[Sentence], vocab: &TaggerVocab, batch_tokens: usize) -> Result<Vec<Vec<u32>>> {
        Ok(self.predict_columns(sentences, vocab, batch_tokens)?.into_iter().map(|mut labels| labels.swap_remove(0)).collect())
    }

    /// Predicted label indices for every word of every sentence, in input
    /// order, per column (as [`columns`](Self::columns)). Under truncated
    /// attention a sequence longer than [`LONG_SLICE_WORDS`] (plus context)
    /// is tagged in slices by [`predict_long`](Self::predict_long).
    pub fn predict_columns(&self, sentences: &[Sentence], vocab: &TaggerVocab, batch_tokens: usize) -> Result<Vec<SentenceLabels>> {
        let data = encode(sentences, vocab, self.config.max_word_chars);
        let mut out = vec![Vec::new(); sentences.len()];
        let sliced = |len: usize| self.receptive_field().is_some_and(|halo| len > LONG_SLICE_WORDS + 2 * halo);
        for (i, s) in data.iter().enumerate().filter(|(_, s)| sliced(s.len())) {
            out[i] = self.predict_long(s, LONG_SLICE_WORDS, vocab)?;
        }
        let rest: Vec<usize> = (0..data.len()).filter(|&i| !sliced(data[i].len())).collect();
        let lengths: Vec<usize> = rest.iter().map(|&i| data[i].len()).collect();
        let batches: Vec<Vec<usize>> = bucket::<rand_chacha::ChaCha8Rng>(&lengths, batch_tokens, None)
            .into_iter()
            .map(|idx| idx.into_iter().map(|k| rest[k]).collect())
            .collect();
        // Whole batches per thread (crate::shard): the labels equal one thread's.
        let labelled = crate::shard::map(&batches, |idx| self.predict_batch_columns(&Batch::new(&data, idx), vocab))?;
        for (idx, labels) in batches.iter().zip(labelled) {
            for (i, tags) in idx.iter().zip(labels) {
                out[*i] = tags;
            }
        }
        Ok(out)
    }

    /// Writes the predicted labels into the sentences: UPOS, and XPOS and
    /// FEATS when the model predicts them (other columns are left as they are).
    pub fn tag(&self, sentences: &mut [Sentence], vocab: &TaggerVocab, batch_tokens: usize) -> Result<()> {
        let predicted = self.predict_columns(sentences, vocab, batch_tokens)?;
        let columns = self.columns();
        for (s, labels) in sentences.iter_mut().zip(predicted) {
            for (&column, indices) in columns.iter().zip(labels) {
                let names = vocab
                    .column(column)
                    .ok_or_else(|| candle_core::Error::msg(format!("the vocabulary has no {} labels", column.name())))?;
                for (t, i) in s.words_mut().zip(indices) {
                    column.set(t, names.name(i));
                }
            }
        }
        Ok(())
    }

    /// Tags `sentences` and scores against their gold labels.
    pub fn evaluate(&self, sentences: &[Sentence], vocab: &TaggerVocab, batch_tokens: usize) -> Result<eval::EvalReport> {
        let mut tagged = sentences.to_vec();
        self.tag(&mut tagged, vocab, batch_tokens)?;
        Ok(eval::score(sentences, &tagged, vocab, &self.columns()))
    }
}

/// The labels of `rows` from each column's scores `[all rows, labels]`, one
/// vector per column, in the order of `rows`. Without `combinations`, each
/// column's best label; with them, the combination (one label per column)
/// whose summed log-probabilities are highest, so the labels agree with
/// each other as in training (no `VBD` on a `NOUN`). Rows are decoded in
/// parallel (each on its own, so any thread count gives the same labels).
fn decode(logits: &[Tensor], combinations: Option<&[Vec<u32>]>, rows: &[usize]) -> Result<Vec<Vec<u32>>> {
    let scores: Vec<(Vec<f32>, usize)> =
        logits.iter().map(|l| Ok((l.flatten_all()?.to_vec1::<f32>()?, l.dim(1)?))).collect::<Result<_>>()?;
    let combinations = combinations.filter(|c| !c.is_empty());
    fn row(column: &(Vec<f32>, usize), r: usize) -> &[f32] {
        &column.0[r * column.1..(r + 1) * column.1]
    }
    let best_row = |r: usize| -> Vec<u32> {
        let Some(combinations) = combinations else {
            // the first of equal maxima, as argmax
            return scores
                .iter()
                .map(|c| row(c, r).iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0 as u32)
                .collect();
        };
        let log_probs: Vec<Vec<f32>> = scores
            .iter()
            .map(|c| {
                let row = row(c, r);
                let top = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let log_sum = row.iter().map(|&v| (v - top).exp()).sum::<f32>().ln() + top;
                row.iter().map(|&v| v - log_sum).collect()
            })
            .collect();
        let mut best = (f32::NEG_INFINITY, 0);
        for (k, combo) in combinations.iter().enumerate() {
            let score: f32 = combo.iter().zip(&log_probs).map(|(&label, lp)| lp[label as usize]).sum();
            if score > best.0 {
                best = (score, k);
            }
        }
        combinations[best.1].clone()
    };
    let per_row: Vec<Vec<u32>> = rows.par_iter().map(|&r| best_row(r)).collect();
    Ok((0..logits.len()).map(|c| per_row.iter().map(|labels| labels[c]).collect()).collect())
}

/// The best label per real word of each sequence, from scores `[batch, seq, labels]`.
fn best_per_word(logits: &Tensor, lengths: &[usize]) -> Result<Vec<Vec<u32>>> {
    let best = logits.argmax(D::Minus1)?.to_vec2::<u32>()?;
    Ok(best.into_iter().zip(lengths).map(|(row, &n)| row[..n].to_vec()).collect())
}

#[cfg(test)]
mod tests {
    use super::decode;
    use candle_core::{Device, Tensor};

    #[test]
    fn decoding_picks_the_best_combination_seen_in_training() {
        // Two rows, two columns. Row 0: independently 1 and 1, but (1, 1)
        // was never seen; of the seen pairs (0, 1) scores best. Row 1: the
        // independent choice (0, 0) is a seen pair and is kept.
        let a = Tensor::new(&[[1.0f32, 1.2], [3.0, 0.0]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[[0.0f32, 2.0], [2.0, 0.0]], &Device::Cpu).unwrap();
        let logits = [a, b];
        assert_eq!(decode(&logits, None, &[0, 1]).unwrap(), [vec![1, 0], vec![1, 0]]);
        assert_eq!(decode(&logits, None, &[1]).unwrap(), [vec![0], vec![0]], "only the rows asked for");
        let seen = [vec![0, 0], vec![0, 1], vec![1, 0]];
        assert_eq!(decode(&logits, Some(&seen), &[0, 1]).unwrap(), [vec![0, 0], vec![1, 0]]);
        assert_eq!(decode(&logits, Some(&seen), &[1, 0]).unwrap(), [vec![0, 0], vec![0, 1]], "in the order asked for");
        // log-probabilities, not raw scores: a column with a flat
        // distribution gives way to a confident one
        let flat = Tensor::new(&[[5.0f32, 5.1]], &Device::Cpu).unwrap();
        let sure = Tensor::new(&[[9.0f32, 0.0]], &Device::Cpu).unwrap();
        assert_eq!(decode(&[flat, sure], Some(&[vec![1, 1], vec![0, 0]]), &[0]).unwrap(), [vec![0], vec![0]]);
    }
}
