//! The segmenter as a training [`Task`]: paragraphs of a treebank's raw
//! text, cut into crops, batched by length; dev scored by token and
//! sentence F1 (the mean of the two selects the epoch); the checkpoint
//! (`config.json`, `model.safetensors`, `segmenter.json`).

use super::{CharBatch, Segmenter, SegmenterConfig, SegmenterData};
use crate::checkpoint::{self, Checkpoint, Contents, Loaded, Saveable};
use crate::config::{Settings, TrainConfig};
use crate::data::batch::bucket;
use crate::data::conllu::Sentence;
use crate::data::raw_text::{self, decode, MultiwordLexicon, Paragraph};
use crate::error::{Error, Result};
use crate::nn::{Ctx, ParamStore};
use crate::train::{self, Evaluation, LoopConfig, Observer, RunOptions, Split, Task, TrainSummary};
use candle_core::Tensor;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;

/// Counts behind one span F1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanCounts {
    pub gold: usize,
    pub system: usize,
    pub correct: usize,
}

impl SpanCounts {
    pub fn f1(&self) -> f64 {
        if self.gold + self.system == 0 {
            return 0.0;
        }
        2.0 * self.correct as f64 / (self.gold + self.system) as f64
    }

    fn add(&mut self, gold: &HashSet<(usize, usize)>, system: &HashSet<(usize, usize)>) {
        self.gold += gold.len();
        self.system += system.len();
        self.correct += gold.intersection(system).count();
    }
}

/// How the segmenter did on paragraphs with gold labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SegmentReport {
    pub chars: usize,
    pub correct_chars: usize,
    pub tokens: SpanCounts,
    pub multiword_tokens: SpanCounts,
    pub sentences: SpanCounts,
}

impl SegmentReport {
    /// What model selection maximises: the mean of token and sentence F1.
    pub fn selection_score(&self) -> f64 {
        (self.tokens.f1() + self.sentences.f1()) / 2.0
    }

    /// Adds one paragraph's counts.
    pub fn add(&mut self, chars: &[char], gold: &[u32], predicted: &[u32]) {
        self.chars += gold.len();
        self.correct_chars += gold.iter().zip(predicted).filter(|(a, b)| a == b).count();
        let spans = |labels: &[u32]| {
            let found = decode(chars, labels);
            let tokens: HashSet<(usize, usize)> = found.iter().flatten().map(|t| (t.start, t.end)).collect();
            let mwt: HashSet<(usize, usize)> = found.iter().flatten().filter(|t| t.multiword).map(|t| (t.start, t.end)).collect();
            let sentences: HashSet<(usize, usize)> = found.iter().map(|s| (s[0].start, s[s.len() - 1].end)).collect();
            (tokens, mwt, sentences)
        };
        let (gt, gm, gs) = spans(gold);
        let (st, sm, ss) = spans(predicted);
        self.tokens.add(&gt, &st);
        self.multiword_tokens.add(&gm, &sm);
        self.sentences.add(&gs, &ss);
    }
}

impl Segmenter {
    /// Labels `paragraphs` and scores the labels against theirs.
    pub fn evaluate(&self, data: &SegmenterData, paragraphs: &[Paragraph]) -> Result<SegmentReport> {
        let texts: Vec<&[char]> = paragraphs.iter().map(|p| &p.chars[..]).collect();
        let predicted = self.label(data, &texts)?;
        let mut report = SegmentReport::default();
        for (p, l) in paragraphs.iter().zip(&predicted) {
            report.add(&p.chars, &p.labels, l);
        }
        Ok(report)
    }
}

impl Saveable for Segmenter {
    const KIND: &'static str = "segmenter";
    const EXTRA_FILES: &'static [&'static str] = &["segmenter.json"];
    type Config = SegmenterConfig;
    type Train = TrainConfig;
    /// The character table and the multiword lexicon.
    type Data = SegmenterData;

    fn config(&self) -> &SegmenterConfig {
        &self.config
    }

    fn params(&self) -> &ParamStore {
        &self.params
    }

    fn build(config: &SegmenterConfig) -> Result<Self> {
        Ok(Segmenter::new(config.clone(), 0)?)
    }

    fn write_data(data: &SegmenterData) -> Result<Vec<(&'static str, Vec<u8>)>> {
        Ok(vec![checkpoint::json_file("segmenter.json", data)?])
    }

    /// `segmenter.json`, checked against the config.
    fn read_data(ck: &Checkpoint<Self>) -> Result<SegmenterData> {
        let data = ck.read_json::<SegmenterData>("segmenter.json")?.reindex();
        if data.vocab_size() != ck.config.model.chars {
            return Err(checkpoint::ck_err(&ck.dir.join("segmenter.json"), "does not match config.json (the number of characters)"));
        }
        Ok(data)
    }
}

/// The segmenter's training defaults (its own, not the tagger's).
pub fn train_defaults() -> TrainConfig {
    TrainConfig {
        epochs: 4,
        lr: 2e-3,
        warmup_steps: 100,
        batch_tokens: 2048,
        word_dropout: 0.0,
        crop: 512,
        weight_decay: 0.01,
        ..TrainConfig::default()
    }
}

/// Both tables of a segmenter's settings: `[model]` and `[train]` (with the
/// segmenter's own training defaults). In a tagger's settings file they are
/// `[segmenter.model]` and `[segmenter.train]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SegmenterSettings {
    pub model: SegmenterConfig,
    pub train: TrainConfig,
}

impl Default for SegmenterSettings {
    fn default() -> Self {
        SegmenterSettings { model: SegmenterConfig::default(), train: train_defaults() }
    }
}

impl Settings for SegmenterSettings {
    fn validate(&self) -> std::result::Result<(), String> {
        self.model.validate()?;
        self.train.validate()
    }
}

/// A training crop: character ids, kinds and labels.
struct Crop {
    ids: Vec<u32>,
    kinds: Vec<u32>,
    labels: Vec<u32>,
}

/// The segmenter with its training and dev paragraphs.
pub struct SegmenterTask<'a> {
    model: &'a Segmenter,
    data: &'a SegmenterData,
    crops: Vec<Crop>,
    lengths: Vec<usize>,
    dev: &'a [Paragraph],
    cfg: &'a TrainConfig,
}

impl<'a> SegmenterTask<'a> {
    /// Paragraphs longer than `cfg.crop` characters (if set) are cut into pieces.
    pub fn new(
        model: &'a Segmenter,
        data: &'a SegmenterData,
        train: &[Paragraph],
        dev: &'a [Paragraph],
        cfg: &'a TrainConfig,
    ) -> Result<Self> {
        cfg.validate().map_err(Error::Config)?;
        let mut crops = Vec::new();
        for p in train.iter().filter(|p| !p.chars.is_empty()) {
            let (ids, kinds) = data.encode(&p.chars);
            let step = if cfg.crop > 0 { cfg.crop } else { p.chars.len() };
            for lo in (0..p.chars.len()).step_by(step) {
                let hi = (lo + step).min(p.chars.len());
                crops.push(Crop { ids: ids[lo..hi].to_vec(), kinds: kinds[lo..hi].to_vec(), labels: p.labels[lo..hi].to_vec() });
            }
        }
        if crops.is_empty() {
            return Err(Error::Input("no training text for the segmenter".into()));
        }
        let lengths = crops.iter().map(|c| c.ids.len()).collect();
        Ok(SegmenterTask { model, data, crops, lengths, dev, cfg })
    }
}

impl SegmenterTask<'_> {
    /// The crops of a batch, as [`CharBatch::new`] takes them.
    fn items(&self, batch: &[usize]) -> Vec<(&[u32], &[u32], &[u32])> {
        batch
            .iter()
            .map(|&i| {
                let c = &self.crops[i];
                (&c.ids[..], &c.kinds[..], &c.labels[..])
            })
            .collect()
    }
}

impl Task for SegmenterTask<'_> {
    type Report = SegmentReport;

    fn params(&self) -> &ParamStore {
        &self.model.params
    }

    fn batches(&self, rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
        bucket(&self.lengths, self.cfg.batch_tokens, Some(rng))
    }

    fn loss(&self, batch: &[usize], _rng: &mut ChaCha8Rng, ctx: &mut Ctx) -> Result<(Tensor, usize)> {
        let b = CharBatch::new(&self.items(batch))?;
        let units = b.lengths.iter().sum();
        Ok((self.model.loss(&b, ctx)?, units))
    }

    fn split(&self, batch: &[usize], _rng: &mut ChaCha8Rng, parts: usize) -> Result<Option<Split<'_>>> {
        Ok(Some(self.model.split(&self.items(batch), parts)?))
    }

    fn evaluate(&self) -> Result<Evaluation<SegmentReport>> {
        let report = self.model.evaluate(self.data, self.dev)?;
        Ok(Evaluation { accuracy: report.selection_score(), loss: None, report })
    }

    fn contents(&self) -> Result<Contents> {
        Contents::new(self.model, self.data, self.cfg)
    }
}

/// The training and dev paragraphs of a treebank and what the segmenter
/// learns from the training part (its characters, its multiword splits).
pub struct Prepared {
    pub data: SegmenterData,
    pub train: Vec<Paragraph>,
    pub dev: Vec<Paragraph>,
}

pub fn prepare(train: &[Sentence], train_path: &Path, dev: &[Sentence], dev_path: &Path) -> Result<Prepared> {
    let train_pars = raw_text::paragraphs(train, train_path)?;
    let dev_pars = raw_text::paragraphs(dev, dev_path)?;
    let data = SegmenterData::build(&train_pars, MultiwordLexicon::build(train));
    Ok(Prepared { data, train: train_pars, dev: dev_pars })
}

/// A new segmenter for `data`'s characters.
pub fn new_model(settings: &SegmenterConfig, data: &SegmenterData, seed: u64) -> Result<Segmenter> {
    let config = SegmenterConfig { chars: data.vocab_size(), ..settings.clone() };
    config.validate().map_err(Error::Config)?;
    Ok(Segmenter::new(config, seed)?)
}

/// Trains `model`, keeping the epoch with the best dev score; with a
/// checkpoint directory, saves after every epoch (atomically) and can resume.
pub fn train_segmenter(
    model: &Segmenter,
    data: &SegmenterData,
    train: &[Paragraph],
    dev: &[Paragraph],
    cfg: &TrainConfig,
    options: RunOptions<SegmentReport>,
    observer: &mut dyn Observer,
) -> Result<TrainSummary<SegmentReport>> {
    let task = SegmenterTask::new(model, data, train, dev, cfg)?;
    train::fit(&task, &LoopConfig { save_interval_secs: 10.0, ..LoopConfig::minibatch(cfg) }, options, observer)
}

/// A loaded segmenter with its characters and training settings.
pub type LoadedSegmenter = Loaded<Segmenter>;

/// A segmenter run to continue ([`crate::train::load_run`] loads one).
pub type SegmenterRun = train::Run<Segmenter, SegmentReport>;

/// Trains a new segmenter with `settings` on a treebank's training text,
/// choosing on its dev text, into `dir` (as `attend train segmenter` does).
pub fn train_in(
    data: &crate::data::treebank::Treebank,
    dir: &Path,
    settings: &SegmenterSettings,
    interrupt: Option<&std::sync::atomic::AtomicBool>,
    observer: &mut dyn Observer,
) -> Result<TrainSummary<SegmentReport>> {
    let prepared = prepare(&data.train, &data.train_path, &data.dev, &data.dev_path)?;
    let model = new_model(&settings.model, &prepared.data, settings.train.seed)?;
    let options = RunOptions { checkpoint_dir: Some(dir), resume: None, interrupt };
    train_segmenter(&model, &prepared.data, &prepared.train, &prepared.dev, &settings.train, options, observer)
}
