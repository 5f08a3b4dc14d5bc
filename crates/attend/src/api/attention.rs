//! What a model's attention does, as data (the CLI draws it; the Python
//! package hands it over as arrays): the weights per layer and head for one
//! sentence of a tagger or one sequence of a sequence model, recomputed on
//! demand (the fused training and tagging path never stores them), and the
//! weights one node of a graph model gives its neighbours.

use crate::checkpoint::Loaded;
use crate::data::batch::{encode, Batch};
use crate::data::conllu::Sentence;
use crate::data::series::{Series, SeriesSet, Target};
use crate::data::vocab::TaggerVocab;
use crate::error::{Error, Result};
use crate::models::graph::{GraphClassifier, GraphInput};
use crate::models::sequence::{input, Output, SequenceModel};
use crate::models::Tagger;
use crate::nn::sequence::EncoderKind;
use serde::Serialize;

/// Attention of one sentence: `layers[l][h][i][j]` is how much word i looks
/// at word j in head h of layer l (each row sums to 1 over the words it may
/// see).
#[derive(Debug, Clone, Serialize)]
pub struct AttentionMaps {
    pub words: Vec<String>,
    /// Predicted UPOS per word.
    pub tags: Vec<String>,
    pub layers: Vec<Vec<Vec<Vec<f32>>>>,
}

impl AttentionMaps {
    /// Head-averaged weights of layer `l` (rows still sum to 1).
    pub fn mean(&self, l: usize) -> Vec<Vec<f32>> {
        let heads = &self.layers[l];
        let n = self.words.len();
        (0..n).map(|i| (0..n).map(|j| heads.iter().map(|h| h[i][j]).sum::<f32>() / heads.len() as f32).collect()).collect()
    }
}

/// The tagger's attention weights and tags for one sentence.
pub fn attention_maps(model: &Tagger, vocab: &TaggerVocab, sentence: &Sentence) -> Result<AttentionMaps> {
    let words: Vec<String> = sentence.words().map(|t| t.form.clone()).collect();
    if words.is_empty() {
        return Err(Error::Input("the sentence has no words".into()));
    }
    let data = encode(std::slice::from_ref(sentence), vocab, model.config.max_word_chars);
    let batch = Batch::new(&data, &[0]);
    let tags = model.predict_batch(&batch)?.remove(0).into_iter().map(|t| vocab.tags.name(t).to_string()).collect();
    let layers = model
        .attention_weights(&batch)?
        .into_iter()
        .map(|w| w.squeeze(0).and_then(|w| w.to_vec3::<f32>()))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(AttentionMaps { words, tags, layers })
}

/// A sequence model's attention over one sequence of `set` (index
/// `index`): the inputs are named by the vectors they cover (`0`, or `0-7`
/// for a patch; `[summary]` for the summary vector); `tags` holds the
/// predicted label per vector (or none), and `said` the prediction in words.
pub fn sequence_maps(model: &Loaded<SequenceModel>, set: &SeriesSet, index: usize) -> Result<(AttentionMaps, String)> {
    let (model, spec) = (&model.model, &model.data);
    if model.config.encoder.kind == EncoderKind::Rnn {
        return Err(Error::Input("a BiLSTM model has no attention weights to show".into()));
    }
    if let Some(why) = model.config.no_attention() {
        return Err(Error::Input(why.into()));
    }
    let Some(series) = set.series.get(index) else {
        return Err(Error::Input(format!("{} has {} sequences; `index` {index} is out of range", set.path.display(), set.series.len())));
    };
    let one = SeriesSet { series: vec![series.clone()], ..set.clone() };
    let data = input::encode(&one, spec, &model.config)?;
    let output = model.predict(&data, spec)?.remove(0);
    let layers = model
        .attention_weights(&data[0])?
        .into_iter()
        .map(|w| w.squeeze(0).and_then(|w| w.to_vec3::<f32>()))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let words = input_names(model, series, data[0].tokens);
    let name = |c: u32| spec.classes.get(c as usize).cloned().unwrap_or_else(|| "?".into());
    let (tags, said) = match &output {
        Output::Classes(c) if spec.target == Target::VectorClass => (c.iter().map(|&k| name(k)).collect(), format!("{} labels", c.len())),
        Output::Classes(c) => (vec![String::new(); words.len()], format!("class {}", name(c[0]))),
        Output::Value(v) => (vec![String::new(); words.len()], format!("value {v}")),
    };
    Ok((AttentionMaps { words, tags, layers }, said))
}

/// Names of a sequence's inputs to the encoder: the vectors each covers.
fn input_names(model: &SequenceModel, series: &Series, tokens: usize) -> Vec<String> {
    let patch = model.config.patch;
    let summary = model.config.summary();
    let mut words: Vec<String> = (0..tokens - usize::from(summary))
        .map(|t| if patch > 1 { format!("{}-{}", t * patch, ((t + 1) * patch).min(series.len) - 1) } else { t.to_string() })
        .collect();
    if summary {
        words.insert(0, "[summary]".into());
    }
    words
}

/// One neighbour of a node in one graph attention layer.
#[derive(Debug, Clone, Serialize)]
pub struct Neighbour {
    pub node: usize,
    /// Its true class, when labelled.
    pub label: Option<u32>,
    pub predicted: u32,
    /// Weight the centre node gives it, per head (each head's weights over
    /// the neighbours sum to 1).
    pub weights: Vec<f32>,
    /// Mean over heads.
    pub mean: f32,
}

/// Where one node of a graph looks: its neighbours and their weights in
/// every layer, heaviest (by mean over heads) first.
#[derive(Debug, Clone, Serialize)]
pub struct NodeAttention {
    pub node: usize,
    pub label: Option<u32>,
    pub predicted: u32,
    /// `layers[l]`: the node's neighbours in layer l (itself included when
    /// the model adds self loops).
    pub layers: Vec<Vec<Neighbour>>,
}

/// The attention of node `node` over its neighbours, in every layer of a
/// graph model.
pub fn node_attention(model: &GraphClassifier, input: &GraphInput, node: usize) -> Result<NodeAttention> {
    let n = input.graph.nodes();
    if node >= n {
        return Err(Error::Input(format!("node {node} is not in the graph (ids 0..{n})")));
    }
    let predicted = model.predict(input)?;
    let weights = model.attention_weights(input)?;
    let label = |i: usize| (input.labels[i] != u32::MAX).then_some(input.labels[i]);
    let (first, sources) = (input.graph.first_edge(node), input.graph.sources(node));
    let layers = weights
        .iter()
        .enumerate()
        .map(|(l, w)| {
            let heads = model.layer_heads(l);
            let mut list: Vec<Neighbour> = sources
                .iter()
                .enumerate()
                .map(|(t, &j)| {
                    let ws = w[(first + t) * heads..(first + t + 1) * heads].to_vec();
                    let mean = ws.iter().sum::<f32>() / heads as f32;
                    Neighbour { node: j as usize, label: label(j as usize), predicted: predicted[j as usize], weights: ws, mean }
                })
                .collect();
            list.sort_by(|a, b| b.mean.total_cmp(&a.mean).then(a.node.cmp(&b.node)));
            list
        })
        .collect();
    Ok(NodeAttention { node, label: label(node), predicted: predicted[node], layers })
}

/// The attention of every edge in every layer of a graph model, the edges
/// as the model sees them (each direction, repeats merged, self loops
/// where the model adds them), grouped by the node that attends.
#[derive(Debug, Clone, Serialize)]
pub struct EdgeAttention {
    /// The node that attends (`target`) and the neighbour it attends to
    /// (`source`), one pair per edge.
    pub target: Vec<usize>,
    pub source: Vec<usize>,
    /// `layers[l][edge * heads + head]`: layer l's weights (each node's
    /// weights over its neighbours sum to 1 per head).
    pub layers: Vec<Vec<f32>>,
    /// Heads of each layer.
    pub heads: Vec<usize>,
}

/// Attention weights of every edge and layer of a graph model.
pub fn edge_attention(model: &GraphClassifier, input: &GraphInput) -> Result<EdgeAttention> {
    let (mut target, mut source) = (Vec::new(), Vec::new());
    for node in 0..input.graph.nodes() {
        for &j in input.graph.sources(node) {
            target.push(node);
            source.push(j as usize);
        }
    }
    let layers = model.attention_weights(input)?;
    let heads = (0..layers.len()).map(|l| model.layer_heads(l)).collect();
    Ok(EdgeAttention { target, source, layers, heads })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::sequence::{RunSpec, SequenceJob};
    use crate::models::sequence::config::SequenceSettings;
    use crate::nn::head::Pooling;

    /// Every edge's weights, per layer and head, sum to 1 over the edges
    /// of the node that attends; the edges are the model's (both
    /// directions, self loops), and the probabilities agree with `predict`.
    #[test]
    fn edge_attention_sums_to_one_per_node_and_head() {
        use crate::models::graph::config::GraphSettings;
        let data = crate::data::planetoid::random_graph(30, 60, 8, 3, 3, 5);
        let mut settings = GraphSettings::default();
        settings.train.max_epochs = 5;
        let (model, _) = crate::api::graph::GraphJob::new(&data, &settings).unwrap().run(None, None, &mut crate::train::Silent).unwrap();
        let input = GraphInput::new(&data, &model.config).unwrap();
        let a = edge_attention(&model, &input).unwrap();
        assert_eq!(a.layers.len(), 2);
        assert!(a.target.iter().zip(&a.source).any(|(t, s)| t == s), "self loops");
        for (w, &heads) in a.layers.iter().zip(&a.heads) {
            assert_eq!(w.len(), a.target.len() * heads);
            let mut sums = vec![0f32; 30 * heads];
            for (e, &t) in a.target.iter().enumerate() {
                for h in 0..heads {
                    sums[t * heads + h] += w[e * heads + h];
                }
            }
            assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-4), "{sums:?}");
        }
        let proba = model.probabilities(&input).unwrap();
        let predicted = model.predict(&input).unwrap();
        for (row, &p) in proba.iter().zip(&predicted) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            assert!(row.iter().all(|&v| v <= row[p as usize]));
        }
    }

    /// A sequence's maps: one row per input that sums to 1 in every layer
    /// and head, inputs named by the vectors a patch covers, the summary
    /// vector first.
    #[test]
    fn sequence_maps_name_the_inputs_and_rows_sum_to_one() {
        let set = crate::data::synthetic::series_majority(12, 11, false, 4);
        let mut settings = SequenceSettings::default();
        (settings.model.encoder.d_model, settings.model.encoder.heads, settings.model.encoder.layers) = (16, 2, 2);
        (settings.model.patch, settings.model.pooling) = (3, Pooling::Summary);
        settings.train.epochs = 2;
        let (model, _) = SequenceJob::new(&set, Some(&set), &settings).unwrap().run(RunSpec::default(), &mut crate::train::Silent).unwrap();
        let (maps, said) = sequence_maps(&model, &set, 1).unwrap();
        let len = set.series[1].len;
        let inputs = len.div_ceil(3) + 1;
        assert_eq!(maps.words.len(), inputs);
        assert_eq!(maps.words[0], "[summary]");
        assert_eq!(maps.words[1], "0-2");
        assert_eq!(maps.words[inputs - 1], format!("{}-{}", 3 * (inputs - 2), len - 1));
        assert!(said.starts_with("class "), "{said}");
        assert_eq!(maps.layers.len(), 2);
        for head in maps.layers.iter().flatten() {
            for row in head {
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4);
            }
        }
        assert!(sequence_maps(&model, &set, 99).unwrap_err().to_string().contains("`index` 99 is out of range"));
    }
}
