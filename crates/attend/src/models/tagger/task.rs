//! The tagger as a training [`Task`]: length-bucketed batches of sentences
//! with word dropout, UPOS cross-entropy, dev accuracy, and a checkpoint
//! with `vocab.json`.

use super::eval::EvalReport;
use super::{Tagger, TAG_BATCH_TOKENS};
use crate::checkpoint::Contents;
use crate::config::TrainConfig;
use crate::data::batch::{bucket, encode, Batch, EncodedSentence};
use crate::data::conllu::Sentence;
use crate::data::vocab::TaggerVocab;
use crate::error::{Error, Result};
use crate::nn::Ctx;
use crate::train::{self, Evaluation, LoopConfig, Observer, RunOptions, Split, Task, TrainSummary};
use candle_core::Tensor;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// A tagger with its training and dev data.
pub struct TaggerTask<'a> {
    model: &'a Tagger,
    vocab: &'a TaggerVocab,
    data: Vec<EncodedSentence>,
    lengths: Vec<usize>,
    dev: &'a [Sentence],
    cfg: &'a TrainConfig,
}

impl<'a> TaggerTask<'a> {
    pub fn new(model: &'a Tagger, vocab: &'a TaggerVocab, train: &[Sentence], dev: &'a [Sentence], cfg: &'a TrainConfig) -> Result<Self> {
        cfg.validate().map_err(Error::Config)?;
        let data = encode(train, vocab, model.config.max_word_chars);
        let lengths = data.iter().map(|s| s.len()).collect();
        Ok(TaggerTask { model, vocab, data, lengths, dev, cfg })
    }

    /// The training batch of these sentences (indices into the training
    /// data, as [`Task::batches`] draws them), with word dropout drawn
    /// from `rng`: what one step trains on.
    pub fn batch(&self, sentences: &[usize], rng: &mut ChaCha8Rng) -> Batch {
        let mut batch = Batch::new(&self.data, sentences);
        batch.drop_words(self.vocab, self.cfg.word_dropout, rng);
        batch
    }
}

impl Task for TaggerTask<'_> {
    type Report = EvalReport;

    fn params(&self) -> &crate::nn::ParamStore {
        &self.model.params
    }

    fn batches(&self, rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
        bucket(&self.lengths, self.cfg.batch_tokens, Some(rng))
    }

    fn loss(&self, batch: &[usize], rng: &mut ChaCha8Rng, ctx: &mut Ctx) -> Result<(Tensor, usize)> {
        let batch = self.batch(batch, rng);
        Ok((self.model.loss(&batch, ctx, self.cfg.label_smoothing)?, batch.tokens()))
    }

    fn split(&self, batch: &[usize], rng: &mut ChaCha8Rng, parts: usize) -> Result<Option<Split<'_>>> {
        Ok(Some(self.model.split(&self.batch(batch, rng), parts, self.cfg.label_smoothing)))
    }

    fn evaluate(&self) -> Result<Evaluation<EvalReport>> {
        let report = self.model.evaluate(self.dev, self.vocab, TAG_BATCH_TOKENS)?;
        Ok(Evaluation { accuracy: report.selection_score(), loss: None, report })
    }

    fn contents(&self) -> Result<Contents> {
        Contents::new(self.model, self.vocab, self.cfg)
    }
}

/// Trains `model` on `train`, keeps the epoch with the best accuracy on
/// `dev`, and leaves the model holding those weights. With
/// `checkpoint_dir`, the best model and the state to resume from are saved
/// (atomically) after every epoch.
pub fn train_tagger(
    model: &mut Tagger,
    vocab: &TaggerVocab,
    train: &[Sentence],
    dev: &[Sentence],
    cfg: &TrainConfig,
    checkpoint_dir: Option<&Path>,
    observer: &mut dyn Observer,
) -> Result<TrainSummary<EvalReport>> {
    train_tagger_with(model, vocab, train, dev, cfg, RunOptions { checkpoint_dir, ..RunOptions::default() }, observer)
}

/// [`train_tagger`] with resume and interruption.
pub fn train_tagger_with(
    model: &mut Tagger,
    vocab: &TaggerVocab,
    train: &[Sentence],
    dev: &[Sentence],
    cfg: &TrainConfig,
    options: RunOptions<EvalReport>,
    observer: &mut dyn Observer,
) -> Result<TrainSummary<EvalReport>> {
    let task = TaggerTask::new(model, vocab, train, dev, cfg)?;
    train::fit(&task, &LoopConfig::minibatch(cfg), options, observer)
}

/// A tagger run to continue ([`train::load_run`] loads one).
pub type TaggerRun = train::Run<Tagger, EvalReport>;
