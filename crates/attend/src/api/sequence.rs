//! Models over vector sequences, from files or from vectors in memory:
//! train one (held-out dev data, model selection, a test score, a
//! checkpoint to resume), then label or score sequences.
//!
//! ```
//! use attend::api::sequence::{SequenceJob, RunSpec};
//! use attend::data::series::SeriesSet;
//! use attend::models::sequence::config::SequenceSettings;
//! use attend::models::sequence::Output;
//!
//! // Twenty sequences of 2-number vectors, of unequal lengths: class "up"
//! // when the first number rises, "down" when it falls.
//! let make = |n: usize, offset: usize| {
//!     let (mut xs, mut ys) = (Vec::new(), Vec::new());
//!     for i in 0..n {
//!         let (len, up) = (8 + (i + offset) % 5, (i + offset) % 2 == 0);
//!         let v: Vec<f32> = (0..len).flat_map(|t| [if up { t as f32 } else { -(t as f32) }, 0.5]).collect();
//!         xs.push(v);
//!         ys.push(if up { "up" } else { "down" });
//!     }
//!     SeriesSet::from_classified(xs, 2, &ys).unwrap()
//! };
//! let (train, test) = (make(40, 0), make(10, 1));
//! let mut settings = SequenceSettings::default();
//! (settings.model.encoder.d_model, settings.model.encoder.heads, settings.model.encoder.ff_dim) = (16, 2, 32);
//! (settings.train.epochs, settings.train.lr, settings.train.warmup_steps) = (30, 3e-3, 10);
//! let job = SequenceJob::new(&train, None, &settings)?;
//! let (model, report) = job.run(RunSpec { test: Some(&test), ..RunSpec::default() }, &mut attend::train::Silent)?;
//! assert!(report.test_score.unwrap() >= 0.9, "{report:?}");
//! let predicted = model.predict(&test)?;
//! let Output::Classes(c) = &predicted[0] else { unreachable!() };
//! assert_eq!(model.data.classes[c[0] as usize], "down");
//! // Class probabilities: a row per sequence that sums to 1, its largest
//! // the predicted class.
//! let proba = model.predict_proba(&test)?;
//! assert!((proba[0].iter().sum::<f32>() - 1.0).abs() < 1e-5);
//! assert!(proba[0][c[0] as usize] > 0.5);
//! # Ok::<(), attend::Error>(())
//! ```

use crate::checkpoint::Loaded;
use crate::config::TrainConfig;
use crate::data::series::{SeriesSet, Target};
use crate::error::{Error, Result};
use crate::models::sequence::auto::{self, Choice};
use crate::models::sequence::config::SequenceSettings;
use crate::models::sequence::eval::SeriesReport;
use crate::models::sequence::input::{encode, Encoded};
use crate::models::sequence::task::{self, prepare, Prepared};
use crate::models::sequence::{Output, SequenceModel, MAX_DENSE};
use crate::train::{self, Observer, Resume, RunOptions};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// A model with its prepared data and settings, ready to train.
pub struct SequenceJob {
    pub model: SequenceModel,
    pub prepared: Prepared,
    pub train: TrainConfig,
    /// A saved run to continue.
    pub resume: Option<Resume<SeriesReport>>,
    /// The settings chosen from the data ([`SequenceJob::adaptive`]).
    pub choices: Vec<Choice>,
}

/// How a run is driven: where it saves, whether it can be interrupted, and
/// the test data scored at the end.
#[derive(Default)]
pub struct RunSpec<'a> {
    /// Save the kept model, its `train_report.json` and the state to
    /// resume from here.
    pub dir: Option<&'a Path>,
    pub interrupt: Option<&'a AtomicBool>,
    pub test: Option<&'a SeriesSet>,
}

/// What one run reports (also written as `train_report.json`).
#[derive(Debug, Clone, Serialize)]
pub struct SequenceRunReport {
    pub seed: u64,
    pub epochs: usize,
    pub best_epoch: usize,
    pub dev: serde_json::Value,
    pub test: Option<serde_json::Value>,
    /// The test accuracy, or RMSE for numbers.
    pub test_score: Option<f64>,
    pub train_seconds: f64,
    /// Seconds to label and score the test data (with `test`).
    pub test_seconds: Option<f64>,
    pub stopped_early: Option<String>,
    /// The settings chosen from the data, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub adaptive: Vec<Choice>,
    /// The test report in one line, and how long scoring took.
    #[serde(skip)]
    pub test_summary: Option<(String, f64)>,
}

impl SequenceJob {
    /// A new model for `train` (dev: `dev`, or a held-out share of
    /// `train`) with `settings`; the data fits its input and output sizes.
    pub fn new(train: &SeriesSet, dev: Option<&SeriesSet>, settings: &SequenceSettings) -> Result<Self> {
        settings.train.validate().map_err(Error::Config)?;
        let prepared = prepare(train, dev, &settings.train, &settings.model, None)?;
        let model = task::new_model(&settings.model, &prepared.spec, prepared.missing, settings.train.seed)?;
        Ok(SequenceJob { model, prepared, train: settings.train.clone(), resume: None, choices: Vec::new() })
    }

    /// [`new`](Self::new) with the defaults that adapt to the data: every
    /// setting of [`auto::KEYS`] not in `given` (config-file names: what the
    /// user set) is chosen from the training set's shape ([`auto::adapt`]).
    pub fn adaptive(train: &SeriesSet, dev: Option<&SeriesSet>, settings: &SequenceSettings, given: &BTreeSet<String>) -> Result<Self> {
        let mut settings = settings.clone();
        let choices = auto::adapt(&mut settings, given, &auto::Profile::of(train), dev.is_some());
        Ok(SequenceJob { choices, ..Self::new(train, dev, &settings)? })
    }

    /// The run saved in `dir`, to continue on the same data (its saved
    /// settings and statistics); `max_minutes` bounds this session.
    pub fn resume(dir: &Path, train: &SeriesSet, dev: Option<&SeriesSet>, max_minutes: Option<f64>) -> Result<Self> {
        let run = train::load_run::<SequenceModel, SeriesReport>(dir)?;
        let mut cfg = run.train;
        if max_minutes.is_some() {
            cfg.max_minutes = max_minutes;
        }
        let prepared = prepare(train, dev, &cfg, &run.model.config, Some(run.data))?;
        if prepared.missing != run.model.config.missing_indicators {
            return Err(Error::Input(format!(
                "{}: not the training file this run started with (its missing values differ)",
                train.path.display()
            )));
        }
        Ok(SequenceJob { model: run.model, prepared, train: cfg, resume: Some(run.resume), choices: Vec::new() })
    }

    /// Trains (or continues), keeps the best epoch on dev, scores the test
    /// data; with a directory, saves the model and `train_report.json` there.
    pub fn run(self, spec: RunSpec, observer: &mut dyn Observer) -> Result<(Loaded<SequenceModel>, SequenceRunReport)> {
        let SequenceJob { model, prepared, train: cfg, resume, choices } = self;
        let options = RunOptions { checkpoint_dir: spec.dir, resume, interrupt: spec.interrupt };
        let summary = task::train_sequence(&model, &prepared.spec, prepared.train, &prepared.dev, &cfg, options, observer)?;
        let loaded = Loaded { model, data: prepared.spec, train: cfg };
        let (mut test, mut test_score, mut test_summary) = (None, None, None);
        if let Some(set) = spec.test {
            let t = Instant::now();
            let r = loaded.evaluate(set)?;
            test_summary = Some((r.summary(), t.elapsed().as_secs_f64()));
            test_score = Some(if r.target == Target::SequenceValue { r.rmse } else { r.accuracy() });
            test = Some(r.to_json());
        }
        let report = SequenceRunReport {
            seed: loaded.train.seed,
            // Epochs run (without dev data, not every one is in `summary.epochs`).
            epochs: summary.epochs.last().map_or(0, |e| e.epoch),
            best_epoch: summary.best_epoch,
            dev: summary.best_dev.to_json(),
            test,
            test_score,
            train_seconds: summary.train_seconds,
            test_seconds: test_summary.as_ref().map(|(_, s): &(String, f64)| *s),
            stopped_early: summary.stopped_early.clone(),
            adaptive: choices,
            test_summary,
        };
        if let Some(dir) = spec.dir {
            super::seeds::write_json(&dir.join("train_report.json"), &serde_json::json!({ "run": report, "epochs": summary.epochs }))?;
        }
        Ok((loaded, report))
    }
}

impl Loaded<SequenceModel> {
    /// `set` as the model's inputs (normalised with the training
    /// statistics), refusing sequences longer than `max_dense` inputs under
    /// dense attention ([`Error::DenseTooLong`]).
    pub fn encode(&self, set: &SeriesSet, max_dense: usize) -> Result<Vec<Encoded>> {
        let data = encode(set, &self.data, &self.model.config)?;
        let longest = data.iter().map(|e| e.tokens).max().unwrap_or(0);
        self.model.check_dense_length(longest, max_dense)?;
        Ok(data)
    }

    /// A label (or number, or a label per vector) for each sequence of `set`.
    pub fn predict(&self, set: &SeriesSet) -> Result<Vec<Output>> {
        self.model.predict(&self.encode(set, MAX_DENSE)?, &self.data)
    }

    /// Class probabilities for each sequence of `set` (one row per
    /// sequence, or per vector with a label per vector; see
    /// [`SequenceModel::probabilities`]).
    pub fn predict_proba(&self, set: &SeriesSet) -> Result<Vec<Vec<f32>>> {
        self.model.probabilities(&self.encode(set, MAX_DENSE)?)
    }

    /// Scores the model on labelled sequences.
    pub fn evaluate(&self, set: &SeriesSet) -> Result<SeriesReport> {
        if set.target == Target::Unlabelled {
            return Err(Error::Input(format!("{}: has no labels to score against", set.path.display())));
        }
        self.model.evaluate(&self.encode(set, MAX_DENSE)?, &self.data)
    }

    /// The name of class id `c` (`?` for none).
    pub fn class_name(&self, c: u32) -> &str {
        self.data.classes.get(c as usize).map_or("?", String::as_str)
    }
}
