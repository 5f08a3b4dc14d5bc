//! End-to-end checks of the tagger: gradients reach every parameter, the
//! candle attention equals the kernel reference, training learns, is
//! reproducible, and checkpoints round-trip.

use attend::attend_kernels::reference::{attention_forward, AttentionShape};
use attend::attend_kernels::AttentionPattern;
use attend::candle_core::Var;
use attend::candle_core::{Device, Tensor};
use attend::checkpoint;
use attend::config::TrainConfig;
use attend::data::batch::{encode, Batch};
use attend::data::synthetic::toy_treebank;
use attend::data::vocab::{Column, TaggerVocab};
use attend::models::tagger::task::{train_tagger, train_tagger_with, TaggerRun};
use attend::models::{EncoderKind, Tagger, TaggerConfig};
use attend::nn::position::PositionKind;
use attend::nn::sequence::EncoderConfig;
use attend::nn::{AttentionKernel, Ctx, MultiHeadSelfAttention, ParamStore, Rotary};
use attend::train::{Observer, RunOptions, Silent, StepInfo};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicBool, Ordering};

fn tiny_config(vocab: &TaggerVocab, position: PositionKind) -> TaggerConfig {
    let encoder = EncoderConfig {
        d_model: 32,
        heads: 4,
        layers: 2,
        ff_dim: 64,
        dropout: 0.1,
        attention_dropout: 0.1,
        position,
        ..EncoderConfig::default()
    };
    TaggerConfig { encoder, word_dim: 16, char_dim: 8, char_filters: 24, ..TaggerConfig::default() }.sized_for(vocab)
}

/// `config` with its encoder settings changed by `change`.
fn with_encoder(mut config: TaggerConfig, change: impl FnOnce(&mut EncoderConfig)) -> TaggerConfig {
    change(&mut config.encoder);
    config
}

fn tiny_train() -> TrainConfig {
    TrainConfig { epochs: 30, lr: 3e-3, warmup_steps: 20, batch_tokens: 256, seed: 5, ..TrainConfig::default() }
}

#[test]
fn every_parameter_gets_a_nonzero_gradient() {
    let train = toy_treebank(40, 1);
    // with the XPOS and FEATS heads: their gradients, and the encoder's through them
    let vocab = TaggerVocab::build_for(&train, &Column::ALL);
    let rnn = with_encoder(tiny_config(&vocab, PositionKind::None), |e| e.kind = EncoderKind::Rnn);
    for (position, config) in [PositionKind::Rope, PositionKind::Learned, PositionKind::Sinusoidal, PositionKind::None]
        .into_iter()
        .map(|p| (p, tiny_config(&vocab, p)))
        .chain([(PositionKind::None, rnn)])
    {
        let position = (position, config.encoder.kind);
        let model = Tagger::new(config, 3).unwrap();
        assert_eq!(model.columns(), Column::ALL);
        let data = encode(&train, &vocab, 20);
        let batch = Batch::new(&data, &(0..40).collect::<Vec<_>>());
        let mut ctx = Ctx { train: true, rng: ChaCha8Rng::seed_from_u64(1), rows: None };
        let grads = model.loss(&batch, &mut ctx, 0.0).unwrap().backward().unwrap();
        for (name, var) in model.params.vars() {
            let g = grads.get(var).unwrap_or_else(|| panic!("{position:?}: no gradient for {name}"));
            let norm = g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(norm > 0.0 && norm.is_finite(), "{position:?}: gradient of {name} is {norm}");
        }
    }
}

/// The multi-head layer (candle, with our masked softmax) against the
/// kernel crate's plain reference, on a padded batch.
#[test]
fn candle_attention_matches_kernel_reference() {
    let (b, t, d, h) = (2, 5, 12, 3);
    let mut store = ParamStore::new(9);
    let attn = MultiHeadSelfAttention::new(&mut store, "a", d, h, 0.0).unwrap();
    let x: Vec<f32> = (0..b * t * d).map(|i| ((i * 37 % 19) as f32 - 9.0) * 0.1).collect();
    let xt = Tensor::from_slice(&x, (b, t, d), &Device::Cpu).unwrap();
    let pattern = AttentionPattern::dense().with_key_lengths(vec![5, 3]);
    let ours = attn.forward(&xt, &pattern, None, &mut Ctx::eval()).unwrap();
    // Same projections by hand, then the reference attention.
    let qkv = attn.qkv.forward(&xt).unwrap().reshape((b, t, 3, h, d / h)).unwrap().permute((2, 0, 3, 1, 4)).unwrap();
    let get = |i: usize| qkv.get(i).unwrap().contiguous().unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let shape = AttentionShape { batch: b, heads: h, seq: t, head_dim: d / h };
    let r = attention_forward(&get(0), &get(1), &get(2), shape, 1.0 / ((d / h) as f32).sqrt(), &pattern);
    let o = Tensor::from_vec(r.out, (b, h, t, d / h), &Device::Cpu).unwrap().transpose(1, 2).unwrap().reshape((b, t, d)).unwrap();
    let expect = attn.out.forward(&o).unwrap();
    let diff = (ours - expect).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(diff < 1e-5, "max difference {diff}");
    // The weights it reports are the reference's softmax, rows summing to 1.
    let w = attn.attention_weights(&xt, &pattern, None).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for (a, e) in w.iter().zip(&r.weights) {
        assert!((a - e).abs() < 1e-5);
    }
}

/// The fused kernel and the candle reference path of the same layer give the
/// same outputs and the same gradients for the input and every parameter,
/// with RoPE, padding and a window.
#[test]
fn fused_layer_matches_reference_layer_with_gradients() {
    let (b, t, d, h) = (3, 37, 64, 4);
    let mut store = ParamStore::new(4);
    let mut attn = MultiHeadSelfAttention::new(&mut store, "a", d, h, 0.0).unwrap();
    let x: Vec<f32> = (0..b * t * d).map(|i| ((i * 53 % 29) as f32 - 14.0) * 0.07).collect();
    let x = Var::from_tensor(&Tensor::from_slice(&x, (b, t, d), &Device::Cpu).unwrap()).unwrap();
    let w: Vec<f32> = (0..b * t * d).map(|i| ((i * 17 % 13) as f32 - 6.0) * 0.1).collect();
    let w = Tensor::from_slice(&w, (b, t, d), &Device::Cpu).unwrap();
    let rotary = Rotary::new(t, d / h, &Device::Cpu).unwrap();
    for pattern in [
        AttentionPattern::dense().with_key_lengths(vec![37, 20, 1]),
        AttentionPattern::dense().with_key_lengths(vec![37, 30, 0]).with_window(5, 5),
    ] {
        let mut results = Vec::new();
        for kernel in [AttentionKernel::Fused, AttentionKernel::Reference] {
            attn.kernel = kernel;
            let y = attn.forward(x.as_tensor(), &pattern, Some(&rotary), &mut Ctx::eval()).unwrap();
            let grads = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let mut all = vec![("y".to_string(), y.flatten_all().unwrap().to_vec1::<f32>().unwrap())];
            let dx = grads.get(x.as_tensor()).expect("gradient for x");
            all.push(("dx".into(), dx.flatten_all().unwrap().to_vec1::<f32>().unwrap()));
            for (name, var) in store.vars() {
                let g = grads.get(var).unwrap_or_else(|| panic!("{kernel:?}: no gradient for {name}"));
                all.push((name.to_string(), g.flatten_all().unwrap().to_vec1::<f32>().unwrap()));
            }
            results.push(all);
        }
        for ((name, fused), (_, reference)) in results[0].iter().zip(&results[1]) {
            let scale = reference.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            for (i, (a, e)) in fused.iter().zip(reference).enumerate() {
                assert!((a - e).abs() <= 2e-5 * scale, "{name}[{i}]: fused {a} vs reference {e} ({pattern:?})");
            }
        }
    }
}

/// `ops::flash_attention` (q, k, v already split into heads) against candle
/// matmuls + masked softmax: outputs and the three gradients.
#[test]
fn flash_attention_op_matches_candle_composition() {
    let (b, h, t, dh) = (2, 3, 21, 16);
    let init = |seed: usize| {
        let v: Vec<f32> = (0..b * h * t * dh).map(|i| (((i * 7919 + seed * 104_729) % 1000) as f32 - 500.0) / 400.0).collect();
        Var::from_tensor(&Tensor::from_vec(v, (b, h, t, dh), &Device::Cpu).unwrap()).unwrap()
    };
    let (q, k, v, w) = (init(1), init(2), init(3), init(4));
    let pattern = AttentionPattern::dense().with_key_lengths(vec![21, 9]).with_causal(true);
    let scale = 0.25;
    let fused = attend::ops::flash_attention(q.as_tensor(), k.as_tensor(), v.as_tensor(), scale, &pattern, None).unwrap();
    let scores = q.as_tensor().matmul(&k.as_tensor().t().unwrap()).unwrap();
    let reference = attend::ops::masked_softmax(&scores, scale, &pattern).unwrap().matmul(v.as_tensor()).unwrap();
    let gf = (&fused * w.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
    let gr = (&reference * w.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let mut pairs = vec![("out", flat(&fused), flat(&reference))];
    for (name, var) in [("dq", &q), ("dk", &k), ("dv", &v)] {
        pairs.push((name, flat(gf.get(var).unwrap()), flat(gr.get(var).unwrap())));
    }
    for (name, a, e) in pairs {
        for (i, (a, e)) in a.iter().zip(&e).enumerate() {
            assert!((a - e).abs() < 2e-5, "{name}[{i}]: fused {a} vs candle {e}");
        }
    }
}

/// The seed's example in miniature: one head, W^q = W^k = W^v = W^o = I, so
/// b^i = sum_j softmax_j(a^i . a^j / sqrt(2)) a^j, computed here by hand.
#[test]
fn four_vectors_by_hand_through_the_layer() {
    let mut store = ParamStore::new(0);
    let attn = MultiHeadSelfAttention::new(&mut store, "a", 2, 1, 0.0).unwrap();
    // qkv columns are [W^q | W^k | W^v]: three identities side by side
    let qkv = Tensor::from_slice(&[1f32, 0., 1., 0., 1., 0., 0., 1., 0., 1., 0., 1.], (2, 6), &Device::Cpu).unwrap();
    let eye = Tensor::from_slice(&[1f32, 0., 0., 1.], (2, 2), &Device::Cpu).unwrap();
    store.get("a.qkv.weight").unwrap().set(&qkv).unwrap();
    store.get("a.out.weight").unwrap().set(&eye).unwrap();
    let a = [[1f32, 0.], [0., 1.], [1., 1.], [0., 0.]];
    let x = Tensor::from_slice(&a.concat(), (1, 4, 2), &Device::Cpu).unwrap();
    let out = attn.forward(&x, &AttentionPattern::dense(), None, &mut Ctx::eval()).unwrap().squeeze(0).unwrap().to_vec2::<f32>().unwrap();
    for i in 0..4 {
        let scores: Vec<f32> = a.iter().map(|aj| (a[i][0] * aj[0] + a[i][1] * aj[1]) / 2f32.sqrt()).collect();
        let z: f32 = scores.iter().map(|s| s.exp()).sum();
        for c in 0..2 {
            let b: f32 = scores.iter().zip(&a).map(|(s, aj)| s.exp() / z * aj[c]).sum();
            assert!((out[i][c] - b).abs() < 1e-6, "b^{i}[{c}] = {} expected {b}", out[i][c]);
        }
    }
}

#[test]
fn padded_keys_get_zero_weight_and_empty_rows_are_zero() {
    let mut store = ParamStore::new(2);
    let attn = MultiHeadSelfAttention::new(&mut store, "a", 8, 2, 0.0).unwrap();
    let x = Tensor::from_vec((0..2 * 4 * 8).map(|i| (i as f32 * 0.3).sin()).collect::<Vec<_>>(), (2, 4, 8), &Device::Cpu).unwrap();
    let pattern = AttentionPattern::dense().with_key_lengths(vec![2, 0]);
    let w = attn.attention_weights(&x, &pattern, None).unwrap();
    let first = w.get(0).unwrap().to_vec3::<f32>().unwrap();
    for head in &first {
        for row in head {
            assert!((row[0] + row[1] - 1.0).abs() < 1e-6);
            assert_eq!((row[2], row[3]), (0.0, 0.0));
        }
    }
    assert!(w.get(1).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().all(|&v| v == 0.0));
    let y = attn.forward(&x, &pattern, None, &mut Ctx::eval()).unwrap();
    let y1 = y.get(1).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(y1.iter().all(|v| v.is_finite()));
    // a sequence that sees no key outputs only the W^o bias (zero at init)
    assert!(y1.iter().all(|&v| v == 0.0));
}

#[test]
fn learns_the_toy_task_and_round_trips_through_a_checkpoint() {
    let (train, dev, test) = (toy_treebank(300, 1), toy_treebank(60, 2), toy_treebank(100, 3));
    let vocab = TaggerVocab::build(&train);
    let mut model = Tagger::new(tiny_config(&vocab, PositionKind::Rope), 7).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("model");
    let summary = train_tagger(&mut model, &vocab, &train, &dev, &tiny_train(), Some(&ck), &mut Silent).unwrap();
    let report = model.evaluate(&test, &vocab, 1024).unwrap();
    // Chance is 1/7 and the majority tag is ~30%; context and spelling are both needed.
    assert!(report.accuracy() > 0.93, "test accuracy {}", report.accuracy());
    assert!(report.unknown_tokens > 20);
    assert!(report.unknown_accuracy() > 0.8, "unknown-word accuracy {}", report.unknown_accuracy());
    assert!(summary.best_dev.accuracy() > 0.9);
    // The checkpoint holds the selected model: same predictions after loading.
    let loaded = attend::checkpoint::load::<Tagger>(&ck).unwrap();
    assert_eq!(loaded.model.evaluate(&test, &loaded.data, 1024).unwrap(), report);
    for f in ["model.safetensors", "optimizer.safetensors", "state.json"] {
        assert!(ck.join("resume").join(f).exists(), "resume/{f} missing");
    }
}

/// The BiLSTM baseline learns the same task through the same training
/// loop, round-trips through a checkpoint, and has no attention to show.
#[test]
fn bilstm_learns_the_toy_task_and_round_trips_through_a_checkpoint() {
    let (train, dev, test) = (toy_treebank(300, 1), toy_treebank(60, 2), toy_treebank(100, 3));
    let vocab = TaggerVocab::build(&train);
    let mut model = Tagger::new(with_encoder(tiny_config(&vocab, PositionKind::None), |e| e.kind = EncoderKind::Rnn), 7).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("model");
    train_tagger(&mut model, &vocab, &train, &dev, &tiny_train(), Some(&ck), &mut Silent).unwrap();
    let report = model.evaluate(&test, &vocab, 1024).unwrap();
    assert!(report.accuracy() > 0.93, "test accuracy {}", report.accuracy());
    let loaded = attend::checkpoint::load::<Tagger>(&ck).unwrap();
    assert_eq!(loaded.model.config.encoder.kind, EncoderKind::Rnn);
    assert_eq!(loaded.model.evaluate(&test, &loaded.data, 1024).unwrap(), report);
    let data = encode(&test[..1], &vocab, model.config.max_word_chars);
    let err = model.attention_weights(&Batch::new(&data, &[0])).unwrap_err().to_string();
    assert!(err.contains("BiLSTM: it has no attention weights"), "{err}");
}

/// Stops a run at a chosen step, as Ctrl-C does.
struct StopAt<'a> {
    step: usize,
    flag: &'a AtomicBool,
}

impl Observer for StopAt<'_> {
    fn step(&mut self, info: &StepInfo) {
        if info.step == self.step {
            self.flag.store(true, Ordering::SeqCst);
        }
    }
}

fn weights(params: &ParamStore) -> Vec<(String, Vec<f32>)> {
    params.snapshot().unwrap().into_iter().map(|(k, v)| (k, v.flatten_all().unwrap().to_vec1::<f32>().unwrap())).collect()
}

#[test]
fn an_interrupted_and_resumed_run_ends_with_the_same_weights() {
    let (train, dev) = (toy_treebank(80, 1), toy_treebank(12, 2));
    let vocab = TaggerVocab::build(&train);
    let cfg = TrainConfig { epochs: 3, word_dropout: 0.3, ..tiny_train() };
    let dir = tempfile::tempdir().unwrap();
    // Uninterrupted.
    let mut whole = Tagger::new(tiny_config(&vocab, PositionKind::Rope), 11).unwrap();
    let full = train_tagger(&mut whole, &vocab, &train, &dev, &cfg, Some(&dir.path().join("whole")), &mut Silent).unwrap();
    let steps_per_epoch = full.steps / 3;
    // Stopped mid-epoch 2, then at the end of an epoch, resumed each time.
    let ck = dir.path().join("split");
    let flag = AtomicBool::new(false);
    for stop_at in [steps_per_epoch + 2, 2 * steps_per_epoch] {
        flag.store(false, Ordering::SeqCst);
        let (mut model, resume) = match load_training(&ck) {
            Ok(r) => (r.model, Some(r.resume)),
            Err(_) => (Tagger::new(tiny_config(&vocab, PositionKind::Rope), 11).unwrap(), None),
        };
        let options = RunOptions { checkpoint_dir: Some(&ck), resume, interrupt: Some(&flag) };
        let err =
            train_tagger_with(&mut model, &vocab, &train, &dev, &cfg, options, &mut StopAt { step: stop_at, flag: &flag }).err().unwrap();
        let msg = err.to_string();
        assert!(msg.starts_with("interrupted: stop"), "{msg}");
        assert!(msg.contains(&format!("continue with `resume` {}", ck.display())), "{msg}");
    }
    let r = load_training(&ck).unwrap();
    assert_eq!(r.resume.state.epoch, 3, "the second stop was at the end of epoch 2");
    let mut model = r.model;
    let options = RunOptions { checkpoint_dir: Some(&ck), resume: Some(r.resume), interrupt: None };
    let resumed = train_tagger_with(&mut model, &vocab, &train, &dev, &cfg, options, &mut Silent).unwrap();
    assert_eq!(weights(&model.params), weights(&whole.params), "best weights differ");
    assert_eq!(resumed.best_epoch, full.best_epoch);
    assert_eq!(resumed.steps, full.steps);
    assert_eq!(resumed.train_tokens, full.train_tokens);
    let last = |d: &std::path::Path| load_training(d).unwrap();
    assert_eq!(weights(&last(&ck).model.params), weights(&last(&dir.path().join("whole")).model.params), "last weights differ");
    let (a, b) = (last(&ck).resume.optimizer, last(&dir.path().join("whole")).resume.optimizer);
    assert_eq!((a.step, a.m, a.v), (b.step, b.m, b.v), "optimizer state differs");
}

/// The same seed and thread count give the same weights, one thread
/// (the whole batch per step) or several (data-parallel steps).
#[test]
fn same_seed_gives_identical_weights() {
    let (train, dev) = (toy_treebank(60, 1), toy_treebank(10, 2));
    let vocab = TaggerVocab::build(&train);
    let cfg = TrainConfig { epochs: 2, word_dropout: 0.3, ..tiny_train() };
    let run = |threads: usize| {
        let pool = attend::rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let mut model = Tagger::new(tiny_config(&vocab, PositionKind::Rope), 11).unwrap();
        pool.install(|| train_tagger(&mut model, &vocab, &train, &dev, &cfg, None, &mut Silent)).unwrap();
        weights(&model.params)
    };
    let one = run(1);
    assert_eq!(one, run(1));
    let three = run(3);
    assert_eq!(three, run(3));
    assert_ne!(one, three, "three threads split each batch (their own dropout streams)");
}

/// A data-parallel step: the pieces of a batch add up to the whole batch's
/// loss, and their gradients to its gradients, with every column's mean
/// weighted by the piece's share of that column's labelled words (which
/// differ between columns where labels are missing).
#[test]
fn split_batch_losses_and_gradients_add_up_to_the_whole_batch() {
    use attend::attend_kernels::loss::IGNORE;
    let train = toy_treebank(40, 1);
    let vocab = TaggerVocab::build_for(&train, &Column::ALL);
    let config = with_encoder(tiny_config(&vocab, PositionKind::Rope), |e| {
        e.dropout = 0.0;
        e.attention_dropout = 0.0;
    });
    let model = Tagger::new(config, 3).unwrap();
    let data = encode(&train, &vocab, 20);
    let mut batch = Batch::new(&data, &(0..40).collect::<Vec<_>>());
    // Missing labels, more of them early in the batch and in XPOS than in UPOS.
    for t in batch.tags.iter_mut().take(150).step_by(3) {
        *t = IGNORE;
    }
    for t in batch.other_tags[0].iter_mut().take(250) {
        *t = IGNORE;
    }
    let labelled = batch.labelled();
    assert!(labelled[0] < batch.tokens() && labelled[1] < labelled[0], "{labelled:?}");
    let ctx = || Ctx { train: true, rng: ChaCha8Rng::seed_from_u64(1), rows: None };
    for parts in [2, 3, 7] {
        let whole = model.loss(&batch, &mut ctx(), 0.1).unwrap();
        let split = model.split(&batch, parts, 0.1);
        assert_eq!(split.units, batch.tokens());
        assert_eq!(split.pieces.len(), parts);
        let (loss_off, grad_off, name) = attend::train::split_discrepancy(&model.params, &whole, split, ctx).unwrap();
        assert!(loss_off <= 1e-5, "{parts} pieces: loss off by {loss_off}");
        assert!(grad_off <= 1e-4, "{parts} pieces: the gradient of {name} off by {grad_off} of its largest");
    }
}

#[test]
fn checkpoint_mismatch_is_reported_clearly() {
    let train = toy_treebank(20, 1);
    let vocab = TaggerVocab::build(&train);
    let model = Tagger::new(tiny_config(&vocab, PositionKind::Rope), 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("m");
    checkpoint::save_model(&ck, &model, &vocab, &TrainConfig::default()).unwrap();
    // Change the architecture in config.json: loading must name the mismatch.
    let path = ck.join("config.json");
    let text = std::fs::read_to_string(&path).unwrap().replace("\"ff_dim\": 64", "\"ff_dim\": 48");
    std::fs::write(&path, text).unwrap();
    let err = attend::checkpoint::load::<Tagger>(&ck).err().unwrap().to_string();
    assert!(err.contains("parameter encoder.layers.0.ff1.weight: checkpoint has shape [32, 64], config expects [32, 48]"), "{err}");
    assert!(attend::checkpoint::load::<Tagger>(&dir.path().join("nope")).err().unwrap().to_string().contains("not a directory"));
}

#[test]
fn a_diverging_run_stops_with_the_step_and_a_remedy() {
    let (train, dev) = (toy_treebank(60, 1), toy_treebank(10, 2));
    let vocab = TaggerVocab::build(&train);
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("m");
    let cfg = TrainConfig { epochs: 2, lr: 1e30, warmup_steps: 0, clip: 0.0, ..tiny_train() };
    let mut model = Tagger::new(tiny_config(&vocab, PositionKind::Rope), 3).unwrap();
    let err = train_tagger(&mut model, &vocab, &train, &dev, &cfg, Some(&ck), &mut Silent).err().unwrap().to_string();
    assert!(err.starts_with("training diverged: loss became "), "{err}");
    assert!(err.contains(" at step 2 (epoch 1); no checkpoint was written (it diverged in the first epoch); try a lower `lr` (now 1000000000000000000000000000000)"), "{err}");
    assert!(!ck.exists(), "nothing half-written");

    // Diverging later keeps the last good state: one good epoch (stopped at
    // its end), then the same run continued with an absurd learning rate.
    let good = TrainConfig { epochs: 2, ..tiny_train() };
    let flag = AtomicBool::new(true);
    let mut model = Tagger::new(tiny_config(&vocab, PositionKind::Rope), 3).unwrap();
    let options = RunOptions { checkpoint_dir: Some(&ck), resume: None, interrupt: Some(&flag) };
    let stop = train_tagger_with(&mut model, &vocab, &train, &dev, &good, options, &mut StopAt { step: usize::MAX, flag: &flag });
    // the flag is set from the start: the run stops at step 1 and saves mid-epoch
    assert!(stop.err().unwrap().to_string().contains("stopped at step 1"));
    let r = load_training(&ck).unwrap();
    let mut model = r.model;
    let options = RunOptions { checkpoint_dir: Some(&ck), resume: Some(r.resume), interrupt: None };
    let bad = TrainConfig { lr: 1e30, warmup_steps: 0, clip: 0.0, ..good };
    let err = train_tagger_with(&mut model, &vocab, &train, &dev, &bad, options, &mut Silent).err().unwrap().to_string();
    assert!(
        err.contains(&format!(
            "at step 3 (epoch 1); the last good state (epoch 1, after batch 1) is kept in {}; try a lower `lr`",
            ck.display()
        )),
        "{err}"
    );
    assert!(load_training(&ck).unwrap().resume.state.next_batch == 1, "the saved state is untouched");
}

#[test]
fn long_sentences_are_tagged_or_refused_with_a_remedy() {
    let train = toy_treebank(20, 1);
    let vocab = TaggerVocab::build(&train);
    let words: Vec<String> = (0..3000).map(|i| ["the", "old", "man", "boats", "."][i % 5].to_string()).collect();
    let long = vec![attend::data::conllu::Sentence::from_words(&words)];
    // rope and the fused kernel: any length, memory linear in it
    let model = Tagger::new(tiny_config(&vocab, PositionKind::Rope), 1).unwrap();
    let tags = model.predict(&long, &vocab, 8192).unwrap();
    assert_eq!(tags[0].len(), 3000);
    // a learned position table has a fixed length: a clear error instead
    let config = with_encoder(tiny_config(&vocab, PositionKind::Learned), |e| e.max_positions = 512);
    let err = Tagger::new(config, 1).unwrap().predict(&long, &vocab, 8192).err().unwrap().to_string();
    assert!(err.contains("sequence of 3000 words is longer than the learned position table (512); retrain with a larger `max_positions` or use `position` rope"), "{err}");
}

/// A long input under truncated attention is tagged in slices with the
/// receptive field (window x layers) as context on both sides: the scores
/// equal the whole-sequence pass for every kind of position encoding.
#[test]
fn sliced_long_inputs_match_the_whole_sequence_pass() {
    let train = toy_treebank(20, 1);
    let vocab = TaggerVocab::build(&train);
    let all_columns = TaggerVocab::build_for(&train, &Column::ALL);
    let words: Vec<String> = (0..700).map(|i| ["the", "old", "man", "boats", ".", "Zork"][(i * 7 + i / 3) % 6].to_string()).collect();
    let long = vec![attend::data::conllu::Sentence::from_words(&words)];
    for position in [PositionKind::Rope, PositionKind::Sinusoidal, PositionKind::Learned, PositionKind::None] {
        let config = with_encoder(tiny_config(&all_columns, position), |e| (e.window, e.max_positions) = (Some(3), 1024));
        let model = Tagger::new(config, 2).unwrap();
        assert_eq!(model.receptive_field(), Some(6));
        let data = encode(&long, &all_columns, model.config.max_word_chars);
        // at the products' precision inference runs at, as long_logits does
        let whole = attend::precision::inference(|| model.forward_columns(&Batch::new(&data, &[0]), &mut Ctx::eval())).unwrap();
        assert_eq!(whole.len(), 3, "UPOS, XPOS and FEATS scores");
        for core in [1, 3, 50, 333, 700, 1000] {
            let sliced = model.long_logits(&data[0], core).unwrap();
            for (column, (sliced, whole)) in sliced.iter().zip(&whole).enumerate() {
                let whole = whole.squeeze(0).unwrap();
                assert_eq!(sliced.dims(), whole.dims());
                let diff = (sliced - &whole).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                assert!(diff < 1e-5, "{position:?} core {core} column {column}: max difference {diff}");
            }
        }
    }
    // predict() slices sequences past LONG_SLICE_WORDS and batches the rest
    let config = with_encoder(tiny_config(&vocab, PositionKind::Rope), |e| e.window = Some(2));
    let model = Tagger::new(config, 3).unwrap();
    let n = attend::models::LONG_SLICE_WORDS + 500;
    let words: Vec<String> = (0..n).map(|i| ["the", "old", "man", "boats", "."][(i * 3 + i / 7) % 5].to_string()).collect();
    let mixed = vec![train[0].clone(), attend::data::conllu::Sentence::from_words(&words), train[1].clone()];
    let tags = model.predict(&mixed, &vocab, 4096).unwrap();
    let data = encode(&mixed, &vocab, model.config.max_word_chars);
    for (i, tags) in tags.iter().enumerate() {
        assert_eq!(tags, &model.predict_batch(&Batch::new(&data, &[i])).unwrap()[0], "sentence {i}");
    }
}

/// A sentence gets the same scores alone or batched with longer sentences
/// and longer words (padding of words and of characters changes nothing).
#[test]
fn scores_do_not_depend_on_batch_mates() {
    let train = toy_treebank(20, 1);
    let vocab = TaggerVocab::build(&train);
    let model = Tagger::new(tiny_config(&vocab, PositionKind::Rope), 4).unwrap();
    let short = attend::data::conllu::Sentence::from_words(&["the", "old", "man"].map(String::from));
    let long = attend::data::conllu::Sentence::from_words(
        &["Antidisestablishmentarianism", "is", "a", "long", "word", "indeed", "."].map(String::from),
    );
    let data = encode(&[short, long], &vocab, model.config.max_word_chars);
    let alone = model.forward(&Batch::new(&data, &[0]), &mut Ctx::eval()).unwrap().squeeze(0).unwrap();
    let together = model.forward(&Batch::new(&data, &[0, 1]), &mut Ctx::eval()).unwrap().get(0).unwrap().narrow(0, 0, 3).unwrap();
    let diff = (&alone - &together).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(diff < 1e-5, "max difference {diff}");
}

#[test]
fn parameter_count_is_exact_and_oversized_models_are_refused() {
    let train = toy_treebank(20, 1);
    let vocab = TaggerVocab::build(&train);
    for position in [PositionKind::Rope, PositionKind::Learned] {
        for encoder in [EncoderKind::Attention, EncoderKind::Rnn] {
            let config = with_encoder(tiny_config(&vocab, position), |e| e.kind = encoder);
            let model = Tagger::new(config.clone(), 1).unwrap();
            assert_eq!(config.parameter_count(), model.params.num_scalars() as u128, "{position:?} {encoder:?}");
        }
    }
    let huge = with_encoder(tiny_config(&vocab, PositionKind::Rope), |e| (e.d_model, e.ff_dim) = (1 << 16, 1 << 20));
    let err = Tagger::new(huge, 1).err().unwrap().to_string();
    assert!(err.contains("attend refuses more than 1073741824 (4 GiB) up front"), "{err}");
}

/// The fused character CNN op and its candle reference twin (every padded
/// position, five ops) give the same word vectors and the same gradients
/// for the character table, the convolution weight and its bias, with
/// words of different lengths, a one-character word and an empty one.
#[test]
fn fused_char_cnn_matches_reference_with_gradients() {
    use attend::nn::char_encoder::CharEncoder;
    let (chars, dim, filters, max_chars) = (11, 6, 9, 7);
    let mut store = ParamStore::new(3);
    let enc = CharEncoder::new(&mut store, "chars", chars, dim, filters, 3).unwrap();
    // Non-zero bias, so ReLU cuts at a place the test can see.
    let bias = store.get("chars.conv.bias").unwrap();
    bias.set(&Tensor::from_vec((0..filters).map(|i| (i as f32 - 4.0) * 0.05).collect::<Vec<_>>(), filters, &Device::Cpu).unwrap()).unwrap();
    let lengths = vec![7, 3, 1, 0, 5];
    let ids: Vec<u32> = (0..lengths.len() * max_chars)
        .map(|i| if i % max_chars < lengths[i / max_chars] { (i * 7 % (chars - 1) + 1) as u32 } else { 0 })
        .collect();
    let w: Vec<f32> = (0..lengths.len() * filters).map(|i| ((i * 13 % 7) as f32 - 3.0) * 0.3).collect();
    let w = Tensor::from_slice(&w, (lengths.len(), filters), &Device::Cpu).unwrap();
    let mut results = Vec::new();
    for fused in [true, false] {
        let y = if fused {
            enc.forward(&ids, &lengths, max_chars).unwrap()
        } else {
            enc.forward_reference(&ids, &lengths, max_chars, &Device::Cpu).unwrap()
        };
        let grads = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let mut all = vec![("y".to_string(), y.flatten_all().unwrap().to_vec1::<f32>().unwrap())];
        for (name, var) in store.vars() {
            let g = grads.get(var).unwrap_or_else(|| panic!("fused {fused}: no gradient for {name}"));
            all.push((name.to_string(), g.flatten_all().unwrap().to_vec1::<f32>().unwrap()));
        }
        results.push(all);
    }
    for ((name, fused), (_, reference)) in results[0].iter().zip(&results[1]) {
        assert_eq!(fused.len(), reference.len(), "{name}");
        assert!(reference.iter().any(|&v| v != 0.0), "{name}: the reference is all zeros, the test shows nothing");
        for (i, (a, e)) in fused.iter().zip(reference).enumerate() {
            assert!((a - e).abs() <= 1e-5 * e.abs().max(1.0), "{name}[{i}]: fused {a} vs reference {e}");
        }
    }
    assert!(results[0][0].1[3 * filters..4 * filters].iter().all(|&v| v == 0.0), "the empty word gives 0");
}

/// The fused dense layer (bias in the GEMM, GELU in its output pass) and
/// its candle twin (matmul, broadcast add, candle's exact `gelu_erf`) give
/// the same outputs and gradients for the input, weight and bias.
#[test]
fn fused_linear_matches_reference_with_gradients() {
    use attend::nn::Linear;
    let mut store = ParamStore::new(9);
    let layer = Linear::new(&mut store, "l", 24, 40, true).unwrap();
    store
        .get("l.bias")
        .unwrap()
        .set(&Tensor::from_vec((0..40).map(|i| (i as f32 - 20.0) * 0.03).collect::<Vec<_>>(), 40, &Device::Cpu).unwrap())
        .unwrap();
    let x: Vec<f32> = (0..2 * 11 * 24).map(|i| ((i * 31 % 23) as f32 - 11.0) * 0.15).collect();
    let x = Var::from_tensor(&Tensor::from_slice(&x, (2, 11, 24), &Device::Cpu).unwrap()).unwrap();
    let w: Vec<f32> = (0..2 * 11 * 40).map(|i| ((i * 7 % 17) as f32 - 8.0) * 0.1).collect();
    let w = Tensor::from_slice(&w, (2, 11, 40), &Device::Cpu).unwrap();
    for gelu in [false, true] {
        let mut results = Vec::new();
        for fused in [true, false] {
            let y = match (fused, gelu) {
                (true, false) => layer.forward(x.as_tensor()),
                (true, true) => layer.forward_gelu(x.as_tensor()),
                (false, false) => layer.forward_reference(x.as_tensor()),
                (false, true) => layer.forward_reference(x.as_tensor()).and_then(|y| y.gelu_erf()),
            }
            .unwrap();
            assert_eq!(y.dims(), &[2, 11, 40]);
            let grads = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let mut all = vec![("y".to_string(), y.flatten_all().unwrap().to_vec1::<f32>().unwrap())];
            all.push(("dx".into(), grads.get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()));
            for (name, var) in store.vars() {
                all.push((name.to_string(), grads.get(var).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()));
            }
            results.push(all);
        }
        for ((name, fused), (_, reference)) in results[0].iter().zip(&results[1]) {
            let scale = reference.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            for (i, (a, e)) in fused.iter().zip(reference).enumerate() {
                assert!((a - e).abs() <= 1e-5 * scale, "gelu {gelu}, {name}[{i}]: fused {a} vs reference {e}");
            }
        }
    }
}

fn load_training(dir: &std::path::Path) -> attend::Result<TaggerRun> {
    attend::train::load_run(dir)
}

/// Tagging shares whole batches out among the threads (attend::shard), each
/// batch on one thread: the labels are the same for any thread count.
#[test]
fn tagging_on_more_threads_gives_one_threads_labels() {
    let train = toy_treebank(40, 2);
    let vocab = TaggerVocab::build(&train);
    let model = Tagger::new(tiny_config(&vocab, PositionKind::Rope), 6).unwrap();
    let test = toy_treebank(300, 9);
    let on = |threads: usize| {
        let pool = attend::rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| model.predict_columns(&test, &vocab, 128)).unwrap()
    };
    let one = on(1);
    assert_eq!(one.len(), test.len());
    for threads in [2, 3] {
        assert!(on(threads) == one, "{threads} threads tag otherwise than 1");
    }
}

/// bf16 products (inference only, where the CPU has AVX-512 BF16) against
/// the f32 reference on a whole forward pass, character CNN and dense
/// layers included: close, but not equal (so the bf16 path really ran).
#[test]
fn bf16_inference_stays_close_to_f32() {
    use attend::attend_kernels::matmul::{with_precision, Precision};
    if !attend::attend_kernels::bf16::available() {
        eprintln!("skipped: this CPU has no AVX-512 BF16");
        return;
    }
    let train = toy_treebank(40, 2);
    let vocab = TaggerVocab::build_for(&train, &Column::ALL);
    let model = Tagger::new(tiny_config(&vocab, PositionKind::Rope), 6).unwrap();
    let test = toy_treebank(50, 9);
    let data = encode(&test, &vocab, model.config.max_word_chars);
    let batch = Batch::new(&data, &(0..data.len()).collect::<Vec<_>>());
    let run = |p: Precision| -> Vec<Vec<f32>> {
        let logits = with_precision(p, || model.forward_columns(&batch, &mut Ctx::eval())).unwrap();
        logits.iter().map(|l| l.flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect()
    };
    let (reference, bf16) = (run(Precision::F32), run(Precision::Bf16));
    assert_eq!(reference.len(), 3, "UPOS, XPOS and FEATS columns");
    for (column, (r, b)) in reference.iter().zip(&bf16).enumerate() {
        let scale = r.iter().fold(0f32, |m, x| m.max(x.abs()));
        let worst = r.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(worst <= 0.02 * scale, "column {column}: bf16 differs from f32 by {worst} (largest score {scale})");
        assert!(worst > 0.0, "column {column}: bf16 gave f32's scores exactly: the bf16 path did not run");
    }
}

/// In a training step the word table's gradient comes back as rows (no
/// table of zeros per pass): the rows hold the dense gradient's values bit
/// for bit, the table gets no dense gradient, and whole training steps
/// (one thread: the whole batch; three: pieces whose rows overlap) leave
/// the same weights and optimizer state as the dense gradient, bit for bit.
#[test]
fn row_gradients_of_the_word_table_equal_the_dense_ones() {
    use attend::ops::RowGrads;
    use attend::optim::{AdamW, AdamWConfig};
    use attend::train::{Stepper, Task};
    use std::sync::Arc;
    let (train, dev) = (toy_treebank(60, 1), toy_treebank(10, 2));
    let vocab = TaggerVocab::build(&train);
    let model = Tagger::new(tiny_config(&vocab, PositionKind::Rope), 11).unwrap();
    let table = model.params.get("words.weight").expect("the word table").clone();
    let data = encode(&train, &vocab, 20);
    let batch = Batch::new(&data, &(0..30).collect::<Vec<_>>());
    let ctx = |rows: Option<Arc<RowGrads>>| Ctx { train: true, rng: ChaCha8Rng::seed_from_u64(1), rows };
    let dense = model.loss(&batch, &mut ctx(None), 0.1).unwrap().backward().unwrap();
    let sink = Arc::new(RowGrads::default());
    let by_rows = model.loss(&batch, &mut ctx(Some(sink.clone())), 0.1).unwrap().backward().unwrap();
    assert!(by_rows.get(&table).is_none(), "no dense table when rows are collected");
    let rows = sink.take();
    assert_eq!(rows.len(), 1, "one lookup of one table");
    assert_eq!(rows[0].0, table.id());
    let looked_up: std::collections::BTreeSet<u32> = batch.word_ids.iter().copied().collect();
    assert_eq!(rows[0].1.ids, looked_up.into_iter().collect::<Vec<_>>(), "one row per word the batch looked up");
    let bits = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&rows[0].1.to_dense(table.dim(0).unwrap()).unwrap()), bits(dense.get(&table).unwrap()));
    for (name, var) in model.params.vars().filter(|(name, _)| name.as_str() != "words.weight") {
        assert_eq!(bits(by_rows.get(var).unwrap()), bits(dense.get(var).unwrap()), "{name}");
    }

    // Whole steps, dropout and word dropout on.
    let cfg = TrainConfig { word_dropout: 0.3, ..tiny_train() };
    let h = AdamWConfig { beta1: 0.9, beta2: 0.98, clip: 1.0, weight_decay: 0.01, l2: 0.0 };
    let steps = |threads: usize, row_gradients: bool| {
        let model = Tagger::new(tiny_config(&vocab, PositionKind::Rope), 11).unwrap();
        let task = attend::models::tagger::task::TaggerTask::new(&model, &vocab, &train, &dev, &cfg).unwrap();
        let mut stepper = Stepper::new(AdamW::default(), ctx(None));
        stepper.row_gradients = row_gradients;
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let pool = attend::rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            for batch in task.batches(&mut rng.clone()).iter().take(4) {
                stepper.step(&task, batch, &mut rng, 3e-3, &h).unwrap();
            }
        });
        (weights(&model.params), stepper.optimizer)
    };
    for threads in [1, 3] {
        let (w_rows, o_rows) = steps(threads, true);
        let (w_dense, o_dense) = steps(threads, false);
        let start = weights(&Tagger::new(tiny_config(&vocab, PositionKind::Rope), 11).unwrap().params);
        assert_ne!(w_rows, start, "{threads} threads: the weights moved");
        assert_eq!(w_rows, w_dense, "{threads} threads: weights");
        assert_eq!((o_rows.m, o_rows.v), (o_dense.m, o_dense.v), "{threads} threads: moments");
    }
}
