//! The segmenter as a training [`Task`]: paragraphs of a treebank's raw
//! text, cut into crops, batched by length; dev scored by token and
//! sentence F1 (the mean of the two selects the epoch); the checkpoint
//! (`config.json`, `model.safetensors`, `segmenter.json`).

use super::{CharBatch, Segmenter, SegmenterConfig, SegmenterData};
use crate::checkpoint::{self, Checkpoint, CheckpointConfig, Contents, ModelKind, Saved};
use crate::config::TrainConfig;
use crate::data::batch::bucket;
use crate::data::conllu::Sentence;
use crate::data::raw_text::{self, decode, MultiwordLexicon, Paragraph};
use crate::error::{Error, Result};
use crate::nn::{Ctx, ParamStore};
use crate::train::{self, Evaluation, LoopConfig, Observer, Resume, RunOptions, RunState, Task, TrainSummary};
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

    /// What a checkpoint of this model holds besides its weights.
    pub fn contents(&self, data: &SegmenterData, train: &TrainConfig) -> Result<Contents> {
        let bytes = serde_json::to_vec_pretty(data).map_err(|e| Error::Input(format!("segmenter.json: {e}")))?;
        Ok(Contents { config: CheckpointConfig::Segmenter(Saved::new(self.config.clone(), train.clone())), extras: vec![("segmenter.json", bytes)] })
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
    pub fn new(model: &'a Segmenter, data: &'a SegmenterData, train: &[Paragraph], dev: &'a [Paragraph], cfg: &'a TrainConfig) -> Result<Self> {
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

impl Task for SegmenterTask<'_> {
    type Report = SegmentReport;

    fn params(&self) -> &ParamStore {
        &self.model.params
    }

    fn batches(&self, rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
        bucket(&self.lengths, self.cfg.batch_tokens, Some(rng))
    }

    fn loss(&self, batch: &[usize], _rng: &mut ChaCha8Rng, ctx: &mut Ctx) -> Result<(Tensor, usize)> {
        let items: Vec<(&[u32], &[u32], &[u32])> = batch.iter().map(|&i| {
            let c = &self.crops[i];
            (&c.ids[..], &c.kinds[..], &c.labels[..])
        }).collect();
        let b = CharBatch::new(&items)?;
        let units = b.lengths.iter().sum();
        Ok((self.model.loss(&b, ctx)?, units))
    }

    fn evaluate(&self) -> Result<Evaluation<SegmentReport>> {
        let report = self.model.evaluate(self.data, self.dev)?;
        Ok(Evaluation { accuracy: report.selection_score(), loss: None, report })
    }

    fn contents(&self) -> Result<Contents> {
        self.model.contents(self.data, self.cfg)
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
pub struct LoadedSegmenter {
    pub model: Segmenter,
    pub data: SegmenterData,
    pub train: TrainConfig,
}

/// Loads a segmenter from `dir`.
pub fn load(dir: &Path) -> Result<LoadedSegmenter> {
    load_from(&checkpoint::open(dir, ModelKind::Segmenter)?)
}

fn load_from(ck: &Checkpoint) -> Result<LoadedSegmenter> {
    let CheckpointConfig::Segmenter(saved) = &ck.config else {
        return Err(checkpoint::ck_err(&ck.dir, format!("holds a {} model, not a segmenter", ck.config.kind())));
    };
    let path = ck.dir.join("segmenter.json");
    let data: SegmenterData =
        serde_json::from_slice(&ck.read("segmenter.json")?).map_err(|e| Error::Parse { path: path.clone(), line: e.line(), message: e.to_string() })?;
    let data = data.reindex();
    if data.vocab_size() != saved.model.chars {
        return Err(checkpoint::ck_err(&path, "does not match config.json (the number of characters)"));
    }
    let model = Segmenter::new(saved.model.clone(), 0).map_err(|e| checkpoint::ck_err(&ck.dir.join("config.json"), e.to_string()))?;
    ck.load_weights(&model.params)?;
    Ok(LoadedSegmenter { model, data, train: saved.train.clone() })
}

/// A segmenter run to continue.
pub struct SegmenterRun {
    pub model: Segmenter,
    pub data: SegmenterData,
    pub train: TrainConfig,
    pub resume: Resume<SegmentReport>,
}

/// Loads the run saved in `dir` by a training with a checkpoint directory.
pub fn load_training(dir: &Path) -> Result<SegmenterRun> {
    let ck = checkpoint::open(dir, ModelKind::Segmenter)?;
    let LoadedSegmenter { model, data, train } = load_from(&ck)?;
    let best = model.params.snapshot()?;
    let r = ck.resume::<RunState<SegmentReport>>(&model.params)?;
    Ok(SegmenterRun { model, data, train, resume: Resume { optimizer: r.optimizer, state: r.state, best } })
}
