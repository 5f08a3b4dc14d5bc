//! The sequence model: every parameter learns (each head, pooling and the
//! missing-value inputs); it learns a task whose per-vector label needs
//! context from far away and one whose per-sequence label needs the whole
//! sequence; checkpoints keep the normalisation; long inputs sliced under a
//! window give the whole-sequence labels; an interrupted and resumed run
//! ends bitwise equal to an uninterrupted one.

use attend::config::TrainConfig;
use attend::data::series::{Label, SeriesSet, Target};
use attend::data::synthetic::{series_far_context, series_majority, series_shape};
use attend::models::sequence::config::SequenceSettings;
use attend::models::sequence::input::{encode, DataSpec};
use attend::models::sequence::task::{self, prepare, train_sequence};
use attend::models::sequence::{config::SequenceConfig, Output, SequenceModel};
use attend::nn::head::Pooling;
use attend::nn::position::PositionKind;
use attend::nn::sequence::EncoderConfig;
use attend::nn::Ctx;
use attend::train::{EpochSummary, Observer, RunOptions, Silent};
use rand::SeedableRng;
use std::sync::atomic::{AtomicBool, Ordering};

fn small(pooling: Pooling) -> SequenceConfig {
    let encoder = EncoderConfig { d_model: 32, heads: 4, layers: 2, ff_dim: 64, dropout: 0.0, ..SequenceConfig::default().encoder };
    SequenceConfig { encoder, pooling, ..SequenceConfig::default() }
}

/// `config` with its encoder settings changed by `change`.
fn with_encoder(mut config: SequenceConfig, change: impl FnOnce(&mut EncoderConfig)) -> SequenceConfig {
    change(&mut config.encoder);
    config
}

fn train_cfg(epochs: usize, seed: u64) -> TrainConfig {
    TrainConfig { epochs, batch_tokens: 512, warmup_steps: 20, lr: 3e-3, seed, ..SequenceSettings::train_defaults() }
}

/// A model for `set` (all sequences train, `dev` held out by the split).
fn setup(set: &SeriesSet, settings: &SequenceConfig, cfg: &TrainConfig) -> (SequenceModel, task::Prepared) {
    let p = prepare(set, None, cfg, settings, None).unwrap();
    let model = task::new_model(settings, &p.spec, p.missing, cfg.seed).unwrap();
    (model, p)
}

#[test]
fn every_parameter_gets_a_gradient_for_each_head() {
    let cases: Vec<(SeriesSet, SequenceConfig)> = vec![
        (series_far_context(6, 9, 1), small(Pooling::Mean)),
        (series_majority(6, 11, true, 2), small(Pooling::Mean)),
        (series_majority(6, 11, false, 3), small(Pooling::Summary)),
        (
            series_majority(6, 11, false, 4),
            with_encoder(SequenceConfig { patch: 3, ..small(Pooling::Mean) }, |e| e.position = PositionKind::Learned),
        ),
        (
            series_majority(6, 11, true, 5),
            SequenceConfig { patch: 2, stem: 8, stem_kernel: 3, sequence_norm: true, ..small(Pooling::Summary) },
        ),
        (series_far_context(6, 9, 6), SequenceConfig { stem: 8, stem_kernel: 5, ..small(Pooling::Mean) }),
        // A deeper stem: every layer's convolution and norm learn.
        (
            series_majority(6, 11, true, 9),
            SequenceConfig { patch: 2, stem: 8, stem_kernel: 3, stem_layers: 3, stem_deep_kernel: 3, ..small(Pooling::Mean) },
        ),
        // An ensemble: every member's parameters learn.
        (series_majority(6, 11, true, 7), SequenceConfig { stem: 8, stem_kernel: 3, members: 3, ..small(Pooling::Mean) }),
        (series_far_context(6, 9, 8), SequenceConfig { members: 2, ..small(Pooling::Mean) }),
        // A mixed ensemble: the convolutional member's deep stem learns too.
        (series_majority(6, 11, true, 10), SequenceConfig { stem: 8, stem_kernel: 3, members: 3, conv_members: 1, ..small(Pooling::Mean) }),
        // Its stem max-pooled over pairs of vectors: the gradient passes the maximum.
        (
            series_majority(6, 11, true, 11),
            SequenceConfig { patch: 4, stem: 8, stem_kernel: 3, members: 3, conv_members: 1, conv_pool: 2, ..small(Pooling::Mean) },
        ),
    ];
    for (set, settings) in cases {
        let cfg = train_cfg(1, 5);
        let (model, p) = setup(&set, &settings, &cfg);
        assert_eq!(model.config.missing_indicators, set.missing() > 0);
        let idx: Vec<usize> = (0..p.train.len()).collect();
        let batch = model.batch(&p.train, &idx).unwrap();
        let mut ctx = Ctx { train: true, rng: rand_chacha::ChaCha8Rng::seed_from_u64(1), rows: None };
        let grads = model.loss(&batch, &mut ctx, 0.0).unwrap().backward().unwrap();
        for (name, var) in model.params.vars() {
            let g = grads.get(var).unwrap_or_else(|| panic!("{:?} {:?}: {name} got no gradient", settings.pooling, set.target));
            let g = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(g.iter().any(|x| *x != 0.0), "{:?}: {name} has an all-zero gradient", settings.pooling);
        }
    }
}

/// `set` as a regression task: the number is 100 + 10 x the mean of the first channel.
fn as_regression(mut set: SeriesSet) -> SeriesSet {
    set.target = Target::SequenceValue;
    set.classes.clear();
    for s in &mut set.series {
        let mean = s.values.chunks(s.values.len() / s.len).map(|v| v[0]).sum::<f32>() / s.len as f32;
        s.label = Label::Value(100.0 + 10.0 * mean);
    }
    set
}

#[test]
fn a_split_step_adds_up_to_the_whole_batch_for_one_network_and_an_ensemble() {
    use attend::train::Task;
    let cases: Vec<(&str, SeriesSet, SequenceConfig, TrainConfig)> = vec![
        ("one network", series_majority(12, 11, true, 41), small(Pooling::Mean), train_cfg(1, 41)),
        (
            "ensemble, stem",
            series_majority(12, 11, true, 42),
            SequenceConfig { stem: 8, stem_kernel: 3, members: 3, ..small(Pooling::Mean) },
            train_cfg(1, 42),
        ),
        (
            // Unequal lengths re-padded per piece: a deeper stem's padding is
            // zero before every layer, or the pieces would not add up.
            "deeper stem, patches",
            series_majority(12, 11, true, 46),
            SequenceConfig { patch: 2, stem: 8, stem_kernel: 3, stem_layers: 3, stem_deep_kernel: 5, ..small(Pooling::Mean) },
            train_cfg(1, 46),
        ),
        ("ensemble, per vector", series_far_context(12, 9, 43), SequenceConfig { members: 2, ..small(Pooling::Mean) }, train_cfg(1, 43)),
        (
            "mixed ensemble",
            series_majority(12, 11, true, 47),
            SequenceConfig { stem: 8, stem_kernel: 3, members: 3, conv_members: 1, ..small(Pooling::Mean) },
            train_cfg(1, 47),
        ),
        (
            // Unequal lengths: the pooled steps' padding is zero too.
            "mixed ensemble, pooled stem",
            series_majority(12, 11, true, 48),
            SequenceConfig { patch: 2, stem: 8, stem_kernel: 3, members: 3, conv_members: 1, conv_pool: 2, ..small(Pooling::Mean) },
            train_cfg(1, 48),
        ),
        (
            "ensemble, regression",
            as_regression(series_majority(12, 11, false, 44)),
            SequenceConfig { members: 2, ..small(Pooling::Summary) },
            train_cfg(1, 44),
        ),
        (
            "random crops, label smoothing",
            series_majority(12, 11, false, 45),
            SequenceConfig { members: 2, ..small(Pooling::Mean) },
            TrainConfig { random_crop: 0.6, label_smoothing: 0.1, ..train_cfg(1, 45) },
        ),
    ];
    for (what, set, settings, cfg) in cases {
        let (model, p) = setup(&set, &settings, &cfg);
        let task = task::SeriesTask::new(&model, &p.spec, p.train.clone(), &p.dev, &cfg).unwrap();
        let batch: Vec<usize> = (0..p.train.len()).collect();
        let eval = || Ctx { train: false, rng: rand_chacha::ChaCha8Rng::seed_from_u64(0), rows: None };
        for threads in [2, 3, 5] {
            // The same data generator state for both: random crops are drawn alike.
            let rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
            let (whole, units) = task.loss(&batch, &mut rng.clone(), &mut eval()).unwrap();
            let split = task.split(&batch, &mut rng.clone(), threads).unwrap().expect("splits");
            assert_eq!(split.units, units, "{what}");
            assert!(split.pieces.len() >= threads.min(2), "{what}: {} pieces for {threads} threads", split.pieces.len());
            let (loss_off, grad_off, name) = attend::train::split_discrepancy(&model.params, &whole, split, eval).unwrap();
            assert!(loss_off <= 1e-5, "{what}, {threads} threads: loss off by {loss_off}");
            assert!(grad_off <= 1e-4, "{what}, {threads} threads: the gradient of {name} off by {grad_off} of its largest");
        }
        // One thread does not split.
        assert!(task.split(&batch, &mut rand_chacha::ChaCha8Rng::seed_from_u64(7), 1).unwrap().is_none(), "{what}");
    }
}

/// Member `k` of a trained ensemble alone: a one-network model of its own
/// architecture holding its weights; its class probabilities on `data`.
fn member_alone(model: &SequenceModel, k: usize, data: &[attend::models::sequence::input::Encoded]) -> Vec<Vec<f32>> {
    let weights = model.params.snapshot().unwrap();
    let prefix = if k == 0 { String::new() } else { format!("member{k}.") };
    let own: std::collections::BTreeMap<String, candle_core::Tensor> = weights
        .iter()
        .filter_map(|(name, t)| {
            let plain = name.strip_prefix(&prefix)?;
            (k > 0 || !name.starts_with("member")).then(|| (plain.to_string(), t.clone()))
        })
        .collect();
    let alone = SequenceModel::new(model.config.member(k), 99).unwrap();
    alone.params.load(&own).unwrap();
    alone.probabilities(data).unwrap()
}

#[test]
fn an_ensemble_predicts_the_mean_of_its_members_probabilities() {
    let set = series_majority(20, 11, true, 51);
    let cfg = train_cfg(2, 51);
    // Three alike: equal weights. Two with attention and one convolutional:
    // each kind half.
    // The convolutional one also with its stem max-pooled over pairs.
    for (conv_members, conv_pool, share) in [(0, 1, [1.0 / 3.0; 3]), (1, 1, [0.25, 0.25, 0.5]), (1, 2, [0.25, 0.25, 0.5])] {
        let settings = SequenceConfig { patch: 2, stem: 8, stem_kernel: 3, members: 3, conv_members, conv_pool, ..small(Pooling::Mean) };
        let (model, p) = setup(&set, &settings, &cfg);
        train_sequence(&model, &p.spec, p.train.clone(), &p.dev, &cfg, RunOptions::default(), &mut Silent).unwrap();
        let weights = model.params.snapshot().unwrap();
        let first = weights.keys().filter(|k| !k.starts_with("member")).count();
        let last = weights.keys().filter(|k| k.starts_with("member2.")).count();
        assert_eq!(weights.len(), 2 * first + last, "three copies");
        let deep_stem = weights.keys().any(|k| k.starts_with("member2.stem1."));
        let attention = weights.keys().any(|k| k.starts_with("member2.encoder.layers."));
        assert_eq!((deep_stem, attention), (conv_members == 1, conv_members == 0), "{:?}", weights.keys().collect::<Vec<_>>());
        assert_eq!(model.params.num_scalars() as u128, model.config.parameter_count());
        let ensemble = model.probabilities(&p.train).unwrap();
        let mut mean = vec![vec![0f32; ensemble[0].len()]; ensemble.len()];
        for (k, w) in share.iter().enumerate() {
            for (m, row) in mean.iter_mut().zip(member_alone(&model, k, &p.train)) {
                m.iter_mut().zip(row).for_each(|(a, x)| *a += x * w);
            }
        }
        for (i, (e, m)) in ensemble.iter().zip(&mean).enumerate() {
            for (a, b) in e.iter().zip(m) {
                assert!((a - b).abs() < 1e-5, "{conv_members} convolutional, sequence {i}: ensemble {e:?}, members {m:?}");
            }
        }
    }
    // Regression: the mean of the members' numbers, in the data's units,
    // through a checkpoint (which keeps the mix).
    let set = as_regression(series_majority(20, 11, false, 52));
    for settings in [
        SequenceConfig { members: 2, ..small(Pooling::Mean) },
        SequenceConfig { stem: 8, stem_kernel: 3, members: 2, conv_members: 1, ..small(Pooling::Mean) },
        SequenceConfig { patch: 2, stem: 8, stem_kernel: 3, members: 2, conv_members: 1, conv_pool: 2, ..small(Pooling::Mean) },
    ] {
        let (model, p) = setup(&set, &settings, &cfg);
        let dir = tempfile::tempdir().unwrap();
        let options = RunOptions { checkpoint_dir: Some(dir.path()), ..RunOptions::default() };
        train_sequence(&model, &p.spec, p.train.clone(), &p.dev, &cfg, options, &mut Silent).unwrap();
        let loaded = attend::checkpoint::load::<SequenceModel>(dir.path()).unwrap();
        let c = &loaded.model.config;
        assert_eq!((loaded.model.members(), c.conv_members, c.conv_pool), (2, settings.conv_members, settings.conv_pool));
        assert_eq!(loaded.model.predict(&p.train, &loaded.data).unwrap(), model.predict(&p.train, &p.spec).unwrap());
    }
}

fn accuracy(report: &attend::models::sequence::eval::SeriesReport) -> f64 {
    report.accuracy()
}

#[test]
fn learns_a_per_vector_label_that_needs_far_context() {
    let set = series_far_context(240, 24, 7);
    let cfg = train_cfg(30, 7);
    let (model, p) = setup(&set, &small(Pooling::Mean), &cfg);
    let summary = train_sequence(&model, &p.spec, p.train.clone(), &p.dev, &cfg, RunOptions::default(), &mut Silent).unwrap();
    let test = series_far_context(100, 24, 99);
    let report = model.evaluate(&encode(&test, &p.spec, &model.config).unwrap(), &p.spec).unwrap();
    assert!(
        accuracy(&report) > 0.95,
        "far-context accuracy {:.3} (guessing: 0.5); dev {:.3}",
        accuracy(&report),
        summary.best_dev.accuracy()
    );
    assert_eq!(report.count, 100 * 24);
}

#[test]
fn learns_a_per_sequence_label_that_needs_the_whole_sequence_with_either_pooling() {
    for pooling in [Pooling::Mean, Pooling::Summary] {
        let set = series_majority(300, 31, true, 11);
        let cfg = train_cfg(40, 11);
        let (model, p) = setup(&set, &small(pooling), &cfg);
        assert!(model.config.missing_indicators);
        train_sequence(&model, &p.spec, p.train.clone(), &p.dev, &cfg, RunOptions::default(), &mut Silent).unwrap();
        let test = series_majority(200, 31, true, 12);
        let report = model.evaluate(&encode(&test, &p.spec, &model.config).unwrap(), &p.spec).unwrap();
        assert!(accuracy(&report) > 0.9, "{pooling:?}: majority accuracy {:.3} (guessing: 0.5)", accuracy(&report));
        assert!(report.macro_f1() > 0.85, "{pooling:?}: macro-F1 {:.3}", report.macro_f1());
    }
}

/// Only the shape of a tooth separates the classes (its place, amplitude
/// and level are random): the defaults chosen from the data learn it.
#[test]
fn adaptive_defaults_learn_a_class_that_only_the_shape_of_a_pattern_tells() {
    use attend::api::sequence::{RunSpec, SequenceJob};
    let (train, test) = (series_shape(60, 96, 31), series_shape(200, 96, 32));
    let job = SequenceJob::adaptive(&train, None, &SequenceSettings::default(), &Default::default()).unwrap();
    assert_eq!((job.model.config.stem, job.model.config.sequence_norm, job.train.dev_fraction), (64, true, 0.0));
    assert!(job.prepared.dev.is_empty(), "60 series: none held out");
    let (_, report) = job.run(RunSpec { test: Some(&test), ..RunSpec::default() }, &mut Silent).unwrap();
    let keys: Vec<&str> = report.adaptive.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, attend::models::sequence::auto::KEYS, "the choices are reported");
    assert_eq!(report.best_epoch, report.epochs, "without dev data the last epoch is kept");
    let score = report.test_score.unwrap();
    assert!(score >= 0.9, "shape accuracy {score:.3} (guessing: 0.5)");
}

#[test]
fn regression_predicts_numbers_in_the_data_units() {
    // Target: 100 + 10 x (the mean of the first channel), a sequence-level number.
    let mut set = series_majority(200, 15, false, 21);
    set.target = Target::SequenceValue;
    set.classes.clear();
    for s in &mut set.series {
        let mean = s.values.chunks(2).map(|v| v[0]).sum::<f32>() / s.len as f32;
        s.label = Label::Value(100.0 + 10.0 * mean);
    }
    let cfg = train_cfg(40, 21);
    let (model, p) = setup(&set, &small(Pooling::Mean), &cfg);
    assert!((p.spec.target_mean - 100.0).abs() < 2.0, "target mean {}", p.spec.target_mean);
    train_sequence(&model, &p.spec, p.train.clone(), &p.dev, &cfg, RunOptions::default(), &mut Silent).unwrap();
    let report = model.evaluate(&p.dev, &p.spec).unwrap();
    // The targets' own spread is about 3; predicting the mean would give that RMSE.
    assert!(report.rmse < 1.0, "RMSE {} (MAE {})", report.rmse, report.mae);
    let Output::Value(v) = &model.predict(&p.dev[..1], &p.spec).unwrap()[0] else { panic!("a number") };
    assert!((80.0..120.0).contains(v), "{v}");
}

#[test]
fn checkpoint_keeps_the_normalisation_and_predictions() {
    // Channels far from mean 0 / std 1, so a lost normalisation would show.
    let mut set = series_majority(60, 11, true, 31);
    for s in &mut set.series {
        for v in s.values.chunks_mut(2) {
            v[0] = 500.0 + 40.0 * v[0];
        }
    }
    let cfg = train_cfg(3, 31);
    let (model, p) = setup(&set, &small(Pooling::Summary), &cfg);
    assert!((p.spec.mean[0] - 500.0).abs() < 20.0 && (p.spec.std[0] - 40.0).abs() < 5.0, "{:?} {:?}", p.spec.mean, p.spec.std);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m");
    let options = RunOptions { checkpoint_dir: Some(&out), ..RunOptions::default() };
    train_sequence(&model, &p.spec, p.train.clone(), &p.dev, &cfg, options, &mut Silent).unwrap();
    let loaded = attend::checkpoint::load::<SequenceModel>(&out).unwrap();
    assert_eq!(loaded.data, p.spec);
    assert_eq!(loaded.model.config, model.config);
    assert_eq!(loaded.train, cfg);
    let again = encode(&set, &loaded.data, &loaded.model.config).unwrap();
    assert_eq!(loaded.model.predict(&again, &loaded.data).unwrap(), model.predict(&again, &p.spec).unwrap());
    // Another kind's loader names the kind.
    let err = attend::checkpoint::load::<attend::models::Tagger>(&out).err().unwrap().to_string();
    assert!(err.contains("holds a \"sequence\" model, not a tagger model"), "{err}");
    // data.json that disagrees with config.json is refused.
    let mut spec = p.spec.clone();
    spec.mean.push(0.0);
    std::fs::write(out.join("data.json"), serde_json::to_vec(&spec).unwrap()).unwrap();
    assert!(attend::checkpoint::load::<SequenceModel>(&out).err().unwrap().to_string().contains("does not match config.json"));
}

#[test]
fn a_long_sequence_sliced_under_a_window_gets_the_whole_sequence_labels() {
    let set = series_far_context(1, 700, 41);
    let settings = with_encoder(small(Pooling::Mean), |e| e.window = Some(8));
    let cfg = train_cfg(1, 41);
    let p = prepare(&set, Some(&set), &cfg, &settings, None).unwrap();
    let model = task::new_model(&settings, &p.spec, false, 41).unwrap();
    let Output::Classes(whole) = model.predict(&p.train, &p.spec).unwrap().remove(0) else { panic!("classes") };
    let logits = |o: Output| match o {
        Output::Classes(c) => c,
        Output::Value(_) => panic!("classes"),
    };
    // Slices of 100 vectors, each with the receptive field (8 x 2 layers) of context on both sides.
    let sliced = logits(model.predict_in_slices(&p.train[0], &p.spec, 100).unwrap());
    assert_eq!(sliced.len(), 700);
    let differ = sliced.iter().zip(&whole).filter(|(a, b)| a != b).count();
    assert!(differ <= 1, "{differ} of 700 labels differ between slices and the whole sequence");
    let report = attend::models::sequence::eval::score(&p.train, &[Output::Classes(sliced)], &p.spec);
    assert_eq!(report.count, 700);
}

/// Sets the interrupt flag after epoch `stop_after`.
struct StopAfter<'a>(usize, &'a AtomicBool);

impl Observer for StopAfter<'_> {
    fn epoch_end(&mut self, s: &EpochSummary) {
        if s.epoch == self.0 {
            self.1.store(true, Ordering::SeqCst);
        }
    }
}

fn weights(model: &SequenceModel) -> Vec<(String, Vec<f32>)> {
    model.params.snapshot().unwrap().into_iter().map(|(k, v)| (k, v.flatten_all().unwrap().to_vec1::<f32>().unwrap())).collect()
}

#[test]
fn an_interrupted_and_resumed_sequence_run_ends_with_the_same_weights() {
    let set = series_majority(80, 15, false, 51);
    let settings = with_encoder(small(Pooling::Summary), |e| e.dropout = 0.1);
    let cfg = train_cfg(6, 51);
    let dir = tempfile::tempdir().unwrap();
    let (whole, p) = setup(&set, &settings, &cfg);
    let whole_dir = dir.path().join("whole");
    let options = RunOptions { checkpoint_dir: Some(&whole_dir), ..RunOptions::default() };
    let full = train_sequence(&whole, &p.spec, p.train.clone(), &p.dev, &cfg, options, &mut Silent).unwrap();

    let ck = dir.path().join("split");
    let flag = AtomicBool::new(false);
    let (model, _) = setup(&set, &settings, &cfg);
    let options = RunOptions { checkpoint_dir: Some(&ck), resume: None, interrupt: Some(&flag) };
    let err = train_sequence(&model, &p.spec, p.train.clone(), &p.dev, &cfg, options, &mut StopAfter(2, &flag)).err().unwrap().to_string();
    assert!(err.starts_with("interrupted: stopped after epoch 2;"), "{err}");
    let r = load_run(&ck);
    assert_eq!(r.data, p.spec);
    // The data prepared again from the saved settings and spec is the same.
    let again = prepare(&set, None, &r.train, &settings, Some(r.data.clone())).unwrap();
    assert_eq!((again.train, again.dev.len()), (p.train.clone(), p.dev.len()));
    let options = RunOptions { checkpoint_dir: Some(&ck), resume: Some(r.resume), interrupt: None };
    let resumed = train_sequence(&r.model, &r.data, p.train.clone(), &p.dev, &r.train, options, &mut Silent).unwrap();
    assert_eq!(weights(&r.model), weights(&whole), "kept weights differ");
    assert_eq!((resumed.best_epoch, resumed.steps), (full.best_epoch, full.steps));
    let (a, b) = (load_run(&ck), load_run(&whole_dir));
    assert_eq!(weights(&a.model), weights(&b.model), "last weights differ");
    assert_eq!(a.resume.optimizer, b.resume.optimizer, "optimizer state differs");
}

#[test]
fn data_that_does_not_fit_the_model_is_refused_by_name() {
    let set = series_majority(20, 9, false, 61);
    let cfg = train_cfg(1, 61);
    let (model, p) = setup(&set, &small(Pooling::Mean), &cfg);
    let other = series_far_context(3, 5, 1);
    let err = encode(&other, &p.spec, &model.config).unwrap_err().to_string();
    assert!(err.contains("far-context.txt: vectors have 3 values, the model was trained on 2"), "{err}");
    let per_vector = SequenceConfig { patch: 2, ..small(Pooling::Mean) };
    let spec = DataSpec::fit(&other, &[0, 1, 2]).unwrap();
    let err = task::new_model(&per_vector, &spec, false, 1).err().unwrap().to_string();
    assert!(err.contains("`patch` 2 joins vectors, but this data has one label per vector"), "{err}");
}

fn load_run(dir: &std::path::Path) -> attend::models::sequence::task::SequenceRun {
    attend::train::load_run(dir).unwrap()
}

#[test]
fn a_mixed_ensemble_is_checked_and_shows_no_attention_when_all_convolutional() {
    let with = |members, conv_members, stem| SequenceConfig {
        stem,
        stem_kernel: 3,
        members,
        conv_members,
        dims: 1,
        outputs: 2,
        ..small(Pooling::Mean)
    };
    assert!(with(3, 1, 8).validate().is_ok());
    let e = with(2, 3, 8).validate().unwrap_err();
    assert!(e.contains("conv_members") && e.contains("members"), "{e}");
    let e = with(3, 1, 0).validate().unwrap_err();
    assert!(e.contains("conv_members") && e.contains("stem"), "{e}");
    // Member architectures: attention first, then the deep stem without
    // attention, which alone pools (over a divisor of the patch).
    let c = SequenceConfig { patch: 4, conv_pool: 2, ..with(3, 1, 8) };
    assert_eq!((c.member(0).encoder.layers, c.member(0).stem_layers, c.member(0).members, c.member(0).stem_pool()), (2, 1, 1, 1));
    assert_eq!(
        (c.member(2).encoder.layers, c.member(2).stem_layers, c.member(2).stem_pool()),
        (0, attend::models::sequence::config::CONV_MEMBER_STEM_LAYERS, 2)
    );
    assert_eq!((c.member(0).encoder_input_width(), c.member(2).encoder_input_width()), (4 * 8, 2 * 8), "pairs of the patch's 4 vectors");
    let e = SequenceConfig { conv_pool: 3, ..c.clone() }.validate().unwrap_err();
    assert!(e.contains("conv_pool must divide patch (4), got 3"), "{e}");
    // A pool given before the data chooses the patch is checked after it.
    assert_eq!(SequenceConfig { conv_pool: 2, ..SequenceConfig::default() }.validate_settings(), Ok(()));
    assert!(SequenceConfig { conv_pool: 0, ..c.clone() }.validate_settings().unwrap_err().contains("conv_pool must be at least 1"));
    // Every member convolutional: no attention weights to show.
    let set = series_majority(6, 11, true, 12);
    let (model, p) =
        setup(&set, &SequenceConfig { stem: 8, stem_kernel: 3, members: 2, conv_members: 2, ..small(Pooling::Mean) }, &train_cfg(1, 12));
    let e = model.attention_weights(&p.train[0]).unwrap_err().to_string();
    assert!(e.contains("convolutional"), "{e}");
}
