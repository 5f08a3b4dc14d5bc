//! The graph attention classifier: fused and dense-reference paths agree
//! in outputs and every gradient; every parameter learns; training beats
//! chance on a graph where neighbours matter; checkpoints round-trip; runs
//! are reproducible.

use attend::data::planetoid::{random_graph, GraphData};
use attend::models::graph::task::{train_graph, GraphRun};
use attend::models::graph::{self, GraphInput, Scores};
use attend::models::{GraphClassifier, GraphModelConfig, GraphScoreType, GraphTrainConfig};
use attend::nn::{AttentionKernel, Ctx};
use attend::ops;
use attend::train::{EpochSummary, Observer, RunOptions, Silent};
use candle_core::Tensor;
use rand::SeedableRng;
use std::sync::atomic::{AtomicBool, Ordering};

fn small_graph() -> GraphData {
    random_graph(240, 700, 40, 4, 3, 5)
}

fn config(data: &GraphData, score: GraphScoreType, kernel: AttentionKernel, residual: bool) -> GraphModelConfig {
    GraphModelConfig {
        score,
        heads: 3,
        hidden: 5,
        output_heads: 2,
        residual,
        kernel,
        feature_dim: data.feature_dim,
        classes: data.classes,
        ..GraphModelConfig::default()
    }
}

/// Loss over the training nodes with dropout on, and its gradients by name.
fn loss_and_grads(model: &GraphClassifier, input: &GraphInput, data: &GraphData) -> (f32, Vec<(String, Vec<f32>)>) {
    let mut ctx = Ctx { train: true, rng: rand_chacha::ChaCha8Rng::seed_from_u64(3), rows: None };
    let logits = model.forward(&input.features, &input.graph, &mut ctx).unwrap();
    let idx =
        Tensor::from_vec(data.train.iter().map(|&i| i as u32).collect::<Vec<_>>(), data.train.len(), &candle_core::Device::Cpu).unwrap();
    let targets = Tensor::from_vec(data.labels_of(&data.train), data.train.len(), &candle_core::Device::Cpu).unwrap();
    let loss = ops::cross_entropy(&logits.index_select(&idx, 0).unwrap(), &targets, 0.0).unwrap();
    let grads = loss.backward().unwrap();
    let by_name = model
        .params
        .vars()
        .map(|(name, var)| {
            let g = grads.get(var).map(|g| g.flatten_all().unwrap().to_vec1::<f32>().unwrap()).unwrap_or_default();
            (name.clone(), g)
        })
        .collect();
    (loss.to_scalar::<f32>().unwrap(), by_name)
}

#[test]
fn fused_and_dense_reference_models_agree_and_every_parameter_learns() {
    let data = small_graph();
    for score in [GraphScoreType::Additive, GraphScoreType::Dot] {
        for residual in [false, true] {
            let fused_cfg = config(&data, score, AttentionKernel::Fused, residual);
            let fused = GraphClassifier::new(fused_cfg.clone(), 7).unwrap();
            let dense = GraphClassifier::new(GraphModelConfig { kernel: AttentionKernel::Reference, ..fused_cfg.clone() }, 7).unwrap();
            let input = GraphInput::new(&data, &fused_cfg).unwrap();
            assert!(matches!(input.features, graph::Features::Sparse(_)), "10% dense features should go sparse");
            let (lf, gf) = loss_and_grads(&fused, &input, &data);
            let (ld, gd) = loss_and_grads(&dense, &input, &data);
            assert!((lf - ld).abs() < 1e-5, "{score:?}: loss {lf} vs {ld}");
            for ((name, a), (_, b)) in gf.iter().zip(&gd) {
                assert!(!a.is_empty(), "{score:?} residual {residual}: {name} got no gradient");
                assert!(a.iter().any(|x| *x != 0.0), "{score:?} residual {residual}: {name} has an all-zero gradient");
                let scale = b.iter().fold(1e-3f32, |m, x| m.max(x.abs()));
                for (x, y) in a.iter().zip(b) {
                    assert!((x - y).abs() <= 1e-4 * scale, "{score:?} residual {residual}: {name} fused {x} vs dense {y}");
                }
            }
        }
    }
}

#[test]
fn dense_features_take_the_dense_path_and_give_the_same_logits() {
    let mut data = small_graph();
    let cfg = config(&data, GraphScoreType::Additive, AttentionKernel::Fused, false);
    let model = GraphClassifier::new(cfg.clone(), 1).unwrap();
    let sparse = GraphInput::new(&data, &cfg).unwrap();
    // Make every entry non-zero (tiny), so the input is stored dense.
    data.features.iter_mut().for_each(|x| *x += 1e-30);
    let dense = GraphInput::new(&data, &cfg).unwrap();
    assert!(matches!(dense.features, graph::Features::Dense(_)));
    let a = model.forward(&sparse.features, &sparse.graph, &mut Ctx::eval()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = model.forward(&dense.features, &dense.graph, &mut Ctx::eval()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-4, "sparse {x} vs dense {y}");
    }
}

/// Counts epochs, and sets the interrupt flag after epoch `stop_after`.
struct Epochs<'a> {
    seen: usize,
    stop_after: usize,
    flag: Option<&'a AtomicBool>,
}

impl Observer for Epochs<'_> {
    fn epoch_end(&mut self, s: &EpochSummary) {
        self.seen += 1;
        if s.epoch == self.stop_after {
            self.flag.unwrap().store(true, Ordering::SeqCst);
        }
    }
}

fn train(
    model: &GraphClassifier,
    input: &GraphInput,
    data: &GraphData,
    cfg: &GraphTrainConfig,
    options: RunOptions<Scores>,
    observer: &mut dyn Observer,
) -> attend::Result<GraphRun> {
    train_graph(model, input, [&data.train, &data.val, &data.test], cfg, options, observer)
}

fn weights(model: &GraphClassifier) -> Vec<(String, Vec<f32>)> {
    model.params.snapshot().unwrap().into_iter().map(|(k, v)| (k, v.flatten_all().unwrap().to_vec1::<f32>().unwrap())).collect()
}

#[test]
fn training_beats_chance_saves_loads_and_reproduces() {
    let data = random_graph(600, 2400, 50, 5, 3, 11);
    let cfg = GraphModelConfig { feature_dim: data.feature_dim, classes: data.classes, ..GraphModelConfig::default() };
    let input = GraphInput::new(&data, &cfg).unwrap();
    let train_cfg = GraphTrainConfig { max_epochs: 120, patience: 40, seed: 3, ..GraphTrainConfig::default() };
    let model = GraphClassifier::new(cfg.clone(), 3).unwrap();
    let mut epochs = Epochs { seen: 0, stop_after: 0, flag: None };
    let run = train(&model, &input, &data, &train_cfg, RunOptions::default(), &mut epochs).unwrap();
    assert_eq!(epochs.seen, run.epochs);
    assert!(run.test.accuracy > 0.6, "test accuracy {} (chance ~0.33)", run.test.accuracy);
    // same seed, same weights
    let again = GraphClassifier::new(cfg.clone(), 3).unwrap();
    let run2 = train(&again, &input, &data, &train_cfg, RunOptions::default(), &mut Silent).unwrap();
    assert_eq!(run.best_epoch, run2.best_epoch);
    assert_eq!(weights(&model), weights(&again));
    let dir = tempfile::tempdir().unwrap();
    attend::checkpoint::save_model(&dir.path().join("m"), &model, &(), &train_cfg).unwrap();
    let attend::checkpoint::Loaded { model: loaded, train: saved, .. } =
        attend::checkpoint::load::<GraphClassifier>(&dir.path().join("m")).unwrap();
    assert_eq!(loaded.config, cfg);
    assert_eq!(saved, train_cfg);
    assert_eq!(loaded.predict(&input).unwrap(), model.predict(&input).unwrap());
    assert_eq!(loaded.evaluate(&input, &data.test).unwrap(), run.test);
    // a tagger loader names the kind
    let err = attend::checkpoint::load::<attend::models::Tagger>(&dir.path().join("m")).err().unwrap().to_string();
    assert!(err.contains("holds a \"graph\" model, not a tagger model"), "{err}");
}

/// A run stopped by Ctrl-C (the interrupt flag) after epoch 7, then by its
/// time limit, and resumed each time, ends bitwise equal to an uninterrupted
/// run: same kept weights, same last weights, same optimizer state, same
/// early stop.
#[test]
fn an_interrupted_and_resumed_graph_run_ends_with_the_same_weights() {
    let data = random_graph(300, 1200, 30, 4, 3, 5);
    let cfg = GraphModelConfig { feature_dim: data.feature_dim, classes: data.classes, ..GraphModelConfig::default() };
    let input = GraphInput::new(&data, &cfg).unwrap();
    let train_cfg = GraphTrainConfig { max_epochs: 60, patience: 15, seed: 9, ..GraphTrainConfig::default() };
    let dir = tempfile::tempdir().unwrap();
    let whole_dir = dir.path().join("whole");
    let whole = GraphClassifier::new(cfg.clone(), 9).unwrap();
    let options = RunOptions { checkpoint_dir: Some(&whole_dir), ..RunOptions::default() };
    let full = train(&whole, &input, &data, &train_cfg, options, &mut Silent).unwrap();
    assert!(full.epochs > 10, "the run is long enough to stop in ({} epochs)", full.epochs);

    let ck = dir.path().join("split");
    let flag = AtomicBool::new(false);
    let model = GraphClassifier::new(cfg.clone(), 9).unwrap();
    let options = RunOptions { checkpoint_dir: Some(&ck), resume: None, interrupt: Some(&flag) };
    let err = train(&model, &input, &data, &train_cfg, options, &mut Epochs { seen: 0, stop_after: 7, flag: Some(&flag) })
        .err()
        .unwrap()
        .to_string();
    assert!(err.starts_with("interrupted: stopped after epoch 7;"), "{err}");
    assert!(err.contains(&format!("continue with `resume` {}", ck.display())), "{err}");
    // Resumed with a time limit that ends the session after one more epoch.
    let r = load_run(&ck);
    assert_eq!(r.resume.state.epoch, 8);
    let limited = GraphTrainConfig { max_minutes: Some(1e-9), ..r.train.clone() };
    let options = RunOptions { checkpoint_dir: Some(&ck), resume: Some(r.resume), interrupt: None };
    let part = train(&r.model, &input, &data, &limited, options, &mut Silent).unwrap();
    assert!(part.stopped_early.as_deref().is_some_and(|w| w.starts_with("time limit")), "{:?}", part.stopped_early);
    assert_eq!(part.epochs, 8);
    // Resumed to the end (the checkpoint keeps the last session's limit: lift it).
    let r = load_run(&ck);
    assert_eq!(r.resume.state.epoch, 9);
    assert_eq!(r.train.max_minutes, Some(1e-9));
    let unlimited = GraphTrainConfig { max_minutes: None, ..r.train };
    let options = RunOptions { checkpoint_dir: Some(&ck), resume: Some(r.resume), interrupt: None };
    let resumed = train(&r.model, &input, &data, &unlimited, options, &mut Silent).unwrap();
    assert_eq!(weights(&r.model), weights(&whole), "kept weights differ");
    assert_eq!((resumed.epochs, resumed.best_epoch, resumed.val, resumed.test), (full.epochs, full.best_epoch, full.val, full.test));
    assert_eq!(resumed.stopped_early, full.stopped_early);
    let (a, b) = (load_run(&ck), load_run(&whole_dir));
    assert_eq!(weights(&a.model), weights(&b.model), "last weights differ");
    assert_eq!(a.resume.optimizer, b.resume.optimizer, "optimizer state differs");
    // A finished run has nothing left to do: resuming it returns the same result.
    let options = RunOptions { checkpoint_dir: Some(&ck), resume: Some(a.resume), interrupt: None };
    let again = train(&a.model, &input, &data, &a.train, options, &mut Silent).unwrap();
    assert_eq!((again.best_epoch, again.test), (full.best_epoch, full.test));
}

fn load_run(dir: &std::path::Path) -> attend::train::Run<GraphClassifier, attend::models::graph::Scores> {
    attend::train::load_run(dir).unwrap()
}
