//! Part-of-speech taggers from CoNLL-U: a tagger for the columns a treebank
//! has (UPOS, and XPOS and FEATS where given), trained or continued with
//! model selection on dev, then scored on gold data. Raw text goes through
//! [`super::text::TextTagger`].
//!
//! ```
//! use attend::api::tagger::{evaluate, TaggerJob};
//! use attend::data::{synthetic, vocab::Column};
//! use attend::models::tagger::config::TaggerSettings;
//!
//! let (train, dev) = (synthetic::toy_treebank(300, 1), synthetic::toy_treebank(50, 2));
//! let mut settings = TaggerSettings::default();
//! (settings.model.encoder.d_model, settings.model.encoder.heads, settings.model.encoder.ff_dim) = (32, 4, 64);
//! (settings.model.word_dim, settings.model.char_dim, settings.model.char_filters) = (16, 8, 24);
//! (settings.train.epochs, settings.train.lr, settings.train.warmup_steps, settings.train.batch_tokens) = (30, 3e-3, 20, 256);
//! let job = TaggerJob::new(&train, &Column::ALL, &settings)?;
//! assert_eq!(job.selection(), "dev mean of UPOS/XPOS/UFeats");
//! let (tagger, summary) = job.run(&train, &dev, None, None, &mut attend::train::Silent)?;
//! let (report, _seconds) = evaluate(&tagger, &synthetic::toy_treebank(100, 3), std::path::Path::new("test"))?;
//! assert!(report.accuracy() > 0.9, "{}", report.accuracy());
//! assert_eq!(summary.best_dev.selection_score(), summary.epochs[summary.best_epoch - 1].dev_accuracy);
//! # Ok::<(), attend::Error>(())
//! ```

use crate::checkpoint::Loaded;
use crate::config::TrainConfig;
use crate::data::conllu::Sentence;
use crate::data::vocab::{Column, TaggerVocab};
use crate::error::{Error, Result};
use crate::models::tagger::config::TaggerSettings;
use crate::models::tagger::eval::{check_gold_tags, EvalReport};
use crate::models::tagger::task::{train_tagger_with, TaggerRun};
use crate::models::tagger::{Tagger, TAG_BATCH_TOKENS};
use crate::train::{self, Observer, Resume, RunOptions, TrainSummary};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// A tagger with its vocabulary and settings, ready to train.
pub struct TaggerJob {
    pub model: Tagger,
    pub vocab: TaggerVocab,
    pub train: TrainConfig,
    /// A saved run to continue.
    pub resume: Option<Resume<EvalReport>>,
    /// Columns asked for that the training data leaves empty (only `_`):
    /// not predicted.
    pub skipped: Vec<Column>,
}

impl TaggerJob {
    /// A new tagger for `train` predicting `columns` (which must include
    /// UPOS), sized for its vocabulary, with `settings`.
    pub fn new(train: &[Sentence], columns: &[Column], settings: &TaggerSettings) -> Result<Self> {
        if !columns.contains(&Column::Upos) {
            return Err(Error::Config("the columns to predict must include upos (the tagger always predicts UPOS)".into()));
        }
        settings.train.validate().map_err(Error::Config)?;
        let vocab = TaggerVocab::build_for(train, columns);
        let skipped = columns.iter().copied().filter(|&c| vocab.column(c).is_none()).collect();
        let model = Tagger::new(settings.model.clone().sized_for(&vocab), settings.train.seed)?;
        Ok(TaggerJob { model, vocab, train: settings.train.clone(), resume: None, skipped })
    }

    /// The run saved in `dir`, to continue with its saved settings;
    /// `max_minutes` bounds this session.
    pub fn resume(dir: &Path, max_minutes: Option<f64>) -> Result<Self> {
        let TaggerRun { model, data: vocab, mut train, resume } = train::load_run(dir)?;
        if max_minutes.is_some() {
            train.max_minutes = max_minutes;
        }
        Ok(TaggerJob { model, vocab, train, resume: Some(resume), skipped: Vec::new() })
    }

    /// What selects the kept epoch: dev UPOS accuracy, or with XPOS or
    /// FEATS the mean of the columns' dev accuracies.
    pub fn selection(&self) -> &'static str {
        match (self.vocab.xpos.is_some(), self.vocab.feats.is_some()) {
            (false, false) => "dev UPOS",
            (true, false) => "dev mean of UPOS/XPOS",
            (false, true) => "dev mean of UPOS/UFeats",
            (true, true) => "dev mean of UPOS/XPOS/UFeats",
        }
    }

    /// Trains (or continues) on `train`, keeping the epoch that scores best
    /// on `dev`; with `dir`, saves the kept model and the state to resume
    /// from there after every epoch.
    pub fn run(
        self,
        train: &[Sentence],
        dev: &[Sentence],
        dir: Option<&Path>,
        interrupt: Option<&AtomicBool>,
        observer: &mut dyn Observer,
    ) -> Result<(Loaded<Tagger>, TrainSummary<EvalReport>)> {
        let TaggerJob { mut model, vocab, train: cfg, resume, .. } = self;
        let options = RunOptions { checkpoint_dir: dir, resume, interrupt };
        let summary = train_tagger_with(&mut model, &vocab, train, dev, &cfg, options, observer)?;
        Ok((Loaded { model, data: vocab, train: cfg }, summary))
    }
}

/// Scores `tagger` on gold sentences (read from `path`, which names them in
/// errors): UPOS, XPOS, UFeats and AllTags as the CoNLL 2018 shared task
/// defines them with gold tokens, unknown words, per tag; and the seconds
/// tagging took.
pub fn evaluate(tagger: &Loaded<Tagger>, gold: &[Sentence], path: &Path) -> Result<(EvalReport, f64)> {
    check_gold_tags(gold, &tagger.data, path)?;
    let t = Instant::now();
    let report = tagger.model.evaluate(gold, &tagger.data, TAG_BATCH_TOKENS)?;
    Ok((report, t.elapsed().as_secs_f64()))
}
