//! The graph attention classifier: fused and dense-reference paths agree
//! in outputs and every gradient; every parameter learns; training beats
//! chance on a graph where neighbours matter; checkpoints round-trip; runs
//! are reproducible.

use attend::data::planetoid::{random_graph, GraphData};
use attend::models::graph::{self, GraphInput};
use attend::models::{GraphClassifier, GraphModelConfig, GraphScoreType, GraphTrainConfig};
use attend::nn::{AttentionKernel, Ctx};
use attend::ops;
use candle_core::Tensor;
use rand::SeedableRng;

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
    let mut ctx = Ctx { train: true, rng: rand_chacha::ChaCha8Rng::seed_from_u64(3) };
    let logits = model.forward(&input.features, &input.graph, &mut ctx).unwrap();
    let idx = Tensor::from_vec(data.train.iter().map(|&i| i as u32).collect::<Vec<_>>(), data.train.len(), &candle_core::Device::Cpu).unwrap();
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

#[test]
fn training_beats_chance_saves_loads_and_reproduces() {
    let data = random_graph(600, 2400, 50, 5, 3, 11);
    let cfg = GraphModelConfig { feature_dim: data.feature_dim, classes: data.classes, ..GraphModelConfig::default() };
    let input = GraphInput::new(&data, &cfg).unwrap();
    let train = GraphTrainConfig { max_epochs: 120, patience: 40, seed: 3, ..GraphTrainConfig::default() };
    let model = GraphClassifier::new(cfg.clone(), 3).unwrap();
    let mut epochs = 0;
    let run = graph::train_graph(&model, &input, &data, &train, |_| epochs += 1).unwrap();
    assert_eq!(epochs, run.epochs);
    assert!(run.test.accuracy > 0.6, "test accuracy {} (chance ~0.33)", run.test.accuracy);
    // same seed, same weights
    let again = GraphClassifier::new(cfg.clone(), 3).unwrap();
    let run2 = graph::train_graph(&again, &input, &data, &train, |_| {}).unwrap();
    assert_eq!(run.best_epoch, run2.best_epoch);
    for ((_, a), (_, b)) in model.params.vars().zip(again.params.vars()) {
        assert_eq!(a.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap(), b.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap());
    }
    let dir = tempfile::tempdir().unwrap();
    graph::save(&dir.path().join("m"), &model, &train).unwrap();
    let (loaded, saved) = graph::load(&dir.path().join("m")).unwrap();
    assert_eq!(saved.model, cfg);
    assert_eq!(loaded.predict(&input).unwrap(), model.predict(&input).unwrap());
    assert_eq!(loaded.evaluate(&input, &data.test).unwrap(), run.test);
}

/// The node view: every neighbour once, per-head weights summing to 1,
/// pictures and JSON written.
#[test]
fn node_view_lists_each_neighbour_with_weights_summing_to_one() {
    let data = small_graph();
    let cfg = config(&data, GraphScoreType::Additive, AttentionKernel::Fused, false);
    let model = GraphClassifier::new(cfg.clone(), 3).unwrap();
    let input = GraphInput::new(&data, &cfg).unwrap();
    let node = (0..data.nodes()).max_by_key(|&i| input.graph.sources(i).len()).unwrap();
    let view = attend::viz::node_attention(&model, &input, node).unwrap();
    assert_eq!(view.layers.len(), 2);
    for (l, list) in view.layers.iter().enumerate() {
        let mut ids: Vec<usize> = list.iter().map(|n| n.node).collect();
        ids.sort();
        assert_eq!(ids, input.graph.sources(node).iter().map(|&j| j as usize).collect::<Vec<_>>());
        assert!(ids.contains(&node), "self loop");
        let heads = if l == 0 { 3 } else { 2 };
        for h in 0..heads {
            let sum: f32 = list.iter().map(|n| n.weights[h]).sum();
            assert!((sum - 1.0).abs() < 1e-5, "layer {l} head {h}: {sum}");
        }
        assert!(list.windows(2).all(|w| w[0].mean >= w[1].mean), "heaviest first");
    }
    assert!(attend::viz::node_attention(&model, &input, data.nodes()).is_err());
    let dir = tempfile::tempdir().unwrap();
    let files = attend::viz::write_node_views(&view, dir.path()).unwrap();
    assert_eq!(files.len(), 3);
    let png = std::fs::read(&files[0]).unwrap();
    assert_eq!(&png[1..4], b"PNG");
}
