//! The registry of model kinds: the commands that use each kind (for
//! messages), and the commands that take any model directory (`attend eval
//! --model`, `attend predict`, `attend attention`) dispatched by the kind
//! its `config.json` names. A new kind adds one entry here and a module of
//! its own.

use crate::{graph_cmd, sequence_cmd, tagger_cmd};
use anyhow::{bail, Result};
use attend::checkpoint::{self, Saveable};
use attend::models::segmenter::Segmenter;
use attend::models::sequence::SequenceModel;
use attend::models::{GraphClassifier, Tagger};
use clap::Args;
use std::path::{Path, PathBuf};

/// One kind of model the command line knows.
struct Kind {
    /// The `kind` in `config.json`.
    name: &'static str,
    /// The commands that take such a model.
    commands: &'static str,
}

const KINDS: &[Kind] = &[
    Kind { name: Tagger::KIND, commands: "attend eval tagger, attend tag" },
    Kind { name: GraphClassifier::KIND, commands: "attend eval graph" },
    Kind { name: SequenceModel::KIND, commands: "attend eval, attend predict" },
    Kind { name: Segmenter::KIND, commands: "attend tag (from the tagger's directory)" },
];

/// The commands that take a model of kind `name`, if the CLI knows it.
pub fn commands(name: &str) -> Option<&'static str> {
    KINDS.iter().find(|k| k.name == name).map(|k| k.commands)
}

/// The kind of model in `dir`, refusing one this CLI does not know.
fn kind_of(dir: &Path) -> Result<&'static str> {
    let name = checkpoint::kind(dir)?;
    match KINDS.iter().find(|k| k.name == name) {
        Some(k) => Ok(k.name),
        None => {
            let known: Vec<String> = KINDS.iter().map(|k| format!("{:?}", k.name)).collect();
            bail!(
                "checkpoint {}: holds an unknown kind of model {name:?} (this attend reads {})",
                dir.join("config.json").display(),
                known.join(", ")
            )
        }
    }
}

/// `attend eval --model DIR --input FILE`: a tagger or a sequence model.
pub fn eval(model: &Path, input: &Path, json: bool) -> Result<()> {
    match kind_of(model) {
        Ok(SequenceModel::KIND) => sequence_cmd::eval(model, input, json),
        Ok(GraphClassifier::KIND) => bail!("{} is a graph model: use attend eval graph --model DIR --data DIR", model.display()),
        _ => tagger_cmd::eval(model, input, json),
    }
}

#[derive(Args)]
pub struct PredictArgs {
    /// Model directory written by `attend train sequence` or `attend train graph`.
    #[arg(long)]
    pub model: PathBuf,
    /// Sequences to label (.ts, .npz or vector text; labels, if any, are
    /// ignored). Sequence models. .ts and vector text are read, labelled
    /// and written a chunk of sequences at a time (memory bounded on any
    /// input); .npz is read whole.
    #[arg(long, required_unless_present = "data", conflicts_with = "data")]
    pub input: Option<PathBuf>,
    /// Graph directory whose nodes to label: nodes.tsv and edges.tsv (the
    /// split files are not needed). Graph models.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Graph models: label every node, or only the unlabelled (`?`) ones.
    #[arg(long, value_enum, default_value = "all", requires = "data")]
    pub nodes: graph_cmd::NodeSelectionArg,
    /// Output file; stdout when absent.
    #[arg(long)]
    pub output: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "tsv")]
    pub format: crate::common::PredictFormat,
    /// Truncated attention for this run: each vector sees N on each side
    /// (linear cost). With a label per vector, a sequence longer than 4096
    /// is then labelled in slices, in memory bounded by the slice.
    #[arg(long, value_name = "N")]
    pub window: Option<usize>,
    /// Longest sequence run with dense attention; longer ones are refused
    /// with a pointer to --window.
    #[arg(long, value_name = "VECTORS", default_value_t = attend::models::sequence::MAX_DENSE)]
    pub max_dense_vectors: usize,
    /// Print sequences, vectors, time, speed and peak memory (RSS) to stderr.
    #[arg(long)]
    pub stats: bool,
}

/// `attend predict`: a sequence model's labels, or a graph model's nodes.
pub fn predict(args: PredictArgs) -> Result<()> {
    let is_graph = matches!(kind_of(&args.model), Ok(GraphClassifier::KIND));
    match (&args.data, &args.input) {
        (Some(data), _) if is_graph => graph_cmd::predict(&args.model, data, args.nodes, args.format, args.output.as_deref()),
        (Some(_), _) => bail!("{} is not a graph model: give sequences with --input FILE instead of --data", args.model.display()),
        (None, _) if is_graph => bail!("{} is a graph model: give the graph directory with --data DIR", args.model.display()),
        (None, Some(input)) => sequence_cmd::predict(sequence_cmd::PredictOptions {
            model: &args.model,
            input,
            output: args.output.as_deref(),
            format: args.format,
            window: args.window,
            max_dense_vectors: args.max_dense_vectors,
            stats: args.stats,
        }),
        (None, None) => bail!("give --input FILE (sequence model) or --data DIR (graph model)"),
    }
}

#[derive(Args)]
pub struct AttentionArgs {
    /// Model directory written by `attend train tagger`, `attend train sequence` or `attend train graph`.
    #[arg(long)]
    pub model: PathBuf,
    /// Tagger: the sentence, whitespace-tokenized.
    #[arg(long, required_unless_present_any = ["node", "input"])]
    pub text: Option<String>,
    /// Sequence model: the file holding the sequence (.ts, .npz or vector text).
    #[arg(long, conflicts_with_all = ["text", "node"])]
    pub input: Option<PathBuf>,
    /// Sequence model: which sequence of --input (0 = the first).
    #[arg(long, default_value_t = 0, requires = "input")]
    pub index: usize,
    /// Graph model: the node whose neighbours' weights to show (its id in nodes.tsv order).
    #[arg(long, requires = "data", conflicts_with = "text")]
    pub node: Option<usize>,
    /// Graph model: the graph directory (nodes.tsv, edges.tsv) the node is in.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Directory for the pictures and JSON: layerL-headH.png, layerL-mean.png
    /// and attention.json for a tagger or a sequence; node-N-layerL.png and
    /// node-N.json for a graph.
    #[arg(long, default_value = "attention")]
    pub out: PathBuf,
}

/// `attend attention`: who attends to whom, for one sentence (tagger), one
/// sequence (sequence model) or one node (graph model).
pub fn attention(args: AttentionArgs) -> Result<()> {
    let model = &args.model;
    match (kind_of(model)?, &args.text, &args.input, args.node, &args.data) {
        (SequenceModel::KIND, _, Some(input), _, _) => sequence_cmd::attention(model, input, args.index, &args.out),
        (SequenceModel::KIND, ..) => {
            bail!("{} is a sequence model: give the file with --input FILE (and --index N for its N-th sequence)", model.display())
        }
        (Tagger::KIND, Some(text), ..) => tagger_cmd::sentence_attention(model, text, &args.out),
        (Tagger::KIND, ..) => bail!("{} is a tagger: give the sentence with --text", model.display()),
        (GraphClassifier::KIND, _, _, Some(node), Some(data)) => graph_cmd::node_attention(model, data, node, &args.out),
        (GraphClassifier::KIND, ..) => bail!("{} is a graph model: give --node ID and --data DIR", model.display()),
        _ => bail!("{} is a segmenter: give its tagger's directory (attention is shown for taggers)", model.display()),
    }
}
