//! A new kind of model, written here and not in the library: it trains
//! through the one loop, saves and loads through the one checkpoint format
//! and predicts, with the public API alone and no edit to the library's
//! checkpoint or settings modules (docs/architecture.md, "adding a new
//! kind"). The kind: points in the plane, one label per point, by a linear
//! classifier over a learned feature map.

use attend::checkpoint::{self, Checkpoint, Contents, Saveable};
use attend::config::{Settings, TrainConfig};
use attend::nn::{Ctx, Linear, ParamStore};
use attend::train::{self, Evaluation, LoopConfig, RunOptions, Silent, Task};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The toy's architecture (`model` in its `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ToyConfig {
    hidden: usize,
    classes: usize,
}

impl Default for ToyConfig {
    fn default() -> Self {
        ToyConfig { hidden: 16, classes: 2 }
    }
}

/// Its settings file: `[model]` and `[train]`, checked.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ToySettings {
    model: ToyConfig,
    train: TrainConfig,
}

impl Settings for ToySettings {
    fn validate(&self) -> Result<(), String> {
        if self.model.classes < 2 {
            return Err("classes must be at least 2".into());
        }
        self.train.validate()
    }
}

/// What it keeps beside its weights: the names of its classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ToyLabels {
    names: Vec<String>,
}

struct Toy {
    config: ToyConfig,
    params: ParamStore,
    hidden: Linear,
    out: Linear,
}

impl Toy {
    fn new(config: ToyConfig, seed: u64) -> attend::Result<Toy> {
        let mut params = ParamStore::new(seed);
        let hidden = Linear::new(&mut params, "hidden", 2, config.hidden, true)?;
        let out = Linear::new(&mut params, "out", config.hidden, config.classes, true)?;
        Ok(Toy { config, params, hidden, out })
    }

    fn logits(&self, points: &[[f32; 2]]) -> candle_core::Result<Tensor> {
        let x = Tensor::from_vec(points.concat(), (points.len(), 2), &Device::Cpu)?;
        self.out.forward(&self.hidden.forward_gelu(&x)?)
    }

    fn predict(&self, points: &[[f32; 2]]) -> attend::Result<Vec<u32>> {
        Ok(self.logits(points)?.argmax(1)?.to_vec1::<u32>()?)
    }
}

impl Saveable for Toy {
    const KIND: &'static str = "toy";
    const EXTRA_FILES: &'static [&'static str] = &["labels.json"];
    type Config = ToyConfig;
    type Train = TrainConfig;
    type Data = ToyLabels;

    fn config(&self) -> &ToyConfig {
        &self.config
    }
    fn params(&self) -> &ParamStore {
        &self.params
    }
    fn build(config: &ToyConfig) -> attend::Result<Self> {
        Toy::new(config.clone(), 0)
    }
    fn write_data(labels: &ToyLabels) -> attend::Result<Vec<(&'static str, Vec<u8>)>> {
        Ok(vec![checkpoint::json_file("labels.json", labels)?])
    }
    fn read_data(ck: &Checkpoint<Self>) -> attend::Result<ToyLabels> {
        let labels: ToyLabels = ck.read_json("labels.json")?;
        if labels.names.len() != ck.config.model.classes {
            return Err(checkpoint::ck_err(&ck.dir.join("labels.json"), "does not match config.json"));
        }
        Ok(labels)
    }
}

/// The toy's task adapter: shuffled minibatches of points, cross-entropy,
/// dev accuracy.
struct ToyTask<'a> {
    model: &'a Toy,
    labels: &'a ToyLabels,
    train: &'a [([f32; 2], u32)],
    dev: &'a [([f32; 2], u32)],
    cfg: &'a TrainConfig,
}

impl Task for ToyTask<'_> {
    type Report = f64;

    fn params(&self) -> &ParamStore {
        &self.model.params
    }

    fn batches(&self, rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
        use rand::seq::SliceRandom;
        let mut order: Vec<usize> = (0..self.train.len()).collect();
        order.shuffle(rng);
        order.chunks(self.cfg.batch_tokens).map(<[usize]>::to_vec).collect()
    }

    fn loss(&self, batch: &[usize], _rng: &mut ChaCha8Rng, _ctx: &mut Ctx) -> attend::Result<(Tensor, usize)> {
        let points: Vec<[f32; 2]> = batch.iter().map(|&i| self.train[i].0).collect();
        let targets = Tensor::from_vec(batch.iter().map(|&i| self.train[i].1).collect::<Vec<u32>>(), batch.len(), &Device::Cpu)?;
        Ok((attend::ops::cross_entropy(&self.model.logits(&points)?, &targets, 0.0)?, batch.len()))
    }

    fn evaluate(&self) -> attend::Result<Evaluation<f64>> {
        let points: Vec<[f32; 2]> = self.dev.iter().map(|p| p.0).collect();
        let predicted = self.model.predict(&points)?;
        let accuracy = predicted.iter().zip(self.dev).filter(|(p, d)| **p == d.1).count() as f64 / self.dev.len() as f64;
        Ok(Evaluation { accuracy, loss: None, report: accuracy })
    }

    fn contents(&self) -> attend::Result<Contents> {
        Contents::new(self.model, self.labels, self.cfg)
    }
}

/// Points inside (class 1) or outside (class 0) the unit circle.
fn circle(n: usize, seed: u64) -> Vec<([f32; 2], u32)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let p = [rng.random_range(-2.0f32..2.0), rng.random_range(-2.0f32..2.0)];
            (p, u32::from(p[0] * p[0] + p[1] * p[1] < 1.5))
        })
        .collect()
}

#[test]
fn a_kind_outside_the_library_trains_saves_loads_and_predicts() {
    let settings =
        ToySettings::from_toml("[model]\nhidden = 32\n[train]\nepochs = 40\nlr = 0.02\nwarmup_steps = 5\nbatch_tokens = 32\nseed = 3\n")
            .unwrap();
    assert!(ToySettings::from_toml("[model]\nhiden = 3\n").unwrap_err().contains("unknown field `hiden`"));
    let labels = ToyLabels { names: vec!["outside".into(), "inside".into()] };
    let (train, dev, test) = (circle(400, 1), circle(200, 2), circle(200, 3));
    let model = Toy::new(settings.model.clone(), settings.train.seed).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("toy");
    let task = ToyTask { model: &model, labels: &labels, train: &train, dev: &dev, cfg: &settings.train };
    let options = RunOptions { checkpoint_dir: Some(&out), ..RunOptions::default() };
    let summary = train::fit(&task, &LoopConfig::minibatch(&settings.train), options, &mut Silent).unwrap();
    assert!(summary.best_dev > 0.9, "dev accuracy {}", summary.best_dev);

    // The checkpoint holds the kind's files; it loads as a toy and as nothing else.
    for file in ["config.json", "model.safetensors", "labels.json", "resume/state.json"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    assert_eq!(checkpoint::kind(&out).unwrap(), "toy");
    let loaded = checkpoint::load::<Toy>(&out).unwrap();
    assert_eq!((&loaded.model.config, &loaded.data, &loaded.train), (&settings.model, &labels, &settings.train));
    let err = checkpoint::load::<attend::models::GraphClassifier>(&out).err().unwrap().to_string();
    assert!(err.ends_with("holds a \"toy\" model, not a graph model"), "{err}");

    // It predicts as the trained model does, and well.
    let points: Vec<[f32; 2]> = test.iter().map(|p| p.0).collect();
    let predicted = loaded.model.predict(&points).unwrap();
    assert_eq!(predicted, model.predict(&points).unwrap());
    let right = predicted.iter().zip(&test).filter(|(p, t)| **p == t.1).count();
    assert!(right >= 180, "{right} of 200 test points right");

    // And its run continues from resume/ like any other kind's.
    let run: train::Run<Toy, f64> = train::load_run(&out).unwrap();
    assert_eq!(run.resume.state.epoch, settings.train.epochs + 1, "a finished run");
}
