//! The pictures: attention heatmaps of a tagger and the node view of a
//! graph model (what `attend attention` writes).

mod common;

use attend::data::batch::{encode, Batch};
use attend::data::conllu::Sentence;
use attend::data::planetoid::random_graph;
use attend::models::graph::GraphInput;
use attend::models::{EncoderKind, GraphClassifier, GraphModelConfig};

#[test]
fn attention_maps_are_softmax_rows_and_heatmaps_are_written() {
    let (model, vocab) = common::small_tagger(EncoderKind::Attention);
    let sentence = Sentence::from_words(&["the", "old", "man", "watch", "the", "boat", "."]);
    let maps = attend_cli::viz::attention_maps(&model, &vocab, &sentence).unwrap();
    assert_eq!(maps.layers.len(), 2);
    assert_eq!(maps.tags.len(), 7);
    for (l, heads) in maps.layers.iter().enumerate() {
        assert_eq!(heads.len(), 4);
        for row in heads.iter().flatten().chain(maps.mean(l).iter()) {
            assert_eq!(row.len(), 7);
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "row sums to {}", row.iter().sum::<f32>());
            assert!(row.iter().all(|w| (0.0..=1.0).contains(w)));
        }
    }
    // the maps are what the layer computes: the reference attention's softmax
    let data = encode(std::slice::from_ref(&sentence), &vocab, model.config.max_word_chars);
    let direct = model.attention_weights(&Batch::new(&data, &[0])).unwrap();
    assert_eq!(direct[1].squeeze(0).unwrap().to_vec3::<f32>().unwrap(), maps.layers[1]);
    let dir = tempfile::tempdir().unwrap();
    let files = attend_cli::viz::write_heatmaps(&maps, dir.path()).unwrap();
    assert_eq!(files.len(), 2 * (4 + 1) + 1);
    let png = std::fs::read(dir.path().join("layer1-head1.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let labels: Vec<String> = maps.words.iter().zip(&maps.tags).map(|(w, t)| format!("{w} {t}")).collect();
    let (w, h) = attend_cli::viz::heatmap_size(&labels);
    assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), w);
    assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), h);
}

/// The node view: every neighbour once, per-head weights summing to 1,
/// pictures and JSON written.
#[test]
fn node_view_lists_each_neighbour_with_weights_summing_to_one() {
    let data = random_graph(240, 700, 40, 4, 3, 5);
    let cfg = GraphModelConfig {
        heads: 3,
        hidden: 5,
        output_heads: 2,
        feature_dim: data.feature_dim,
        classes: data.classes,
        ..GraphModelConfig::default()
    };
    let model = GraphClassifier::new(cfg.clone(), 3).unwrap();
    let input = GraphInput::new(&data, &cfg).unwrap();
    let node = (0..data.nodes()).max_by_key(|&i| input.graph.sources(i).len()).unwrap();
    let view = attend_cli::viz::node_attention(&model, &input, node).unwrap();
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
    assert!(attend_cli::viz::node_attention(&model, &input, data.nodes()).is_err());
    let dir = tempfile::tempdir().unwrap();
    let files = attend_cli::viz::write_node_views(&view, dir.path()).unwrap();
    assert_eq!(files.len(), 3);
    let png = std::fs::read(&files[0]).unwrap();
    assert_eq!(&png[1..4], b"PNG");
}
