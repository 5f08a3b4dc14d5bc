//! `attend train graph`, `attend eval graph`.

use anyhow::{Context, Result};
use attend::data::planetoid;
use attend::models::graph::{self, GraphEpoch, GraphInput, GraphRun};
use attend::models::{GraphClassifier, GraphModelConfig, GraphScoreType, GraphTrainConfig};
use attend::nn::AttentionKernel;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Defaults in brackets are GAT's settings for Cora.
#[derive(Args)]
pub struct TrainGraphArgs {
    /// Graph directory: nodes.tsv, edges.tsv, train.txt, val.txt, test.txt
    /// (format in docs/graphs.md).
    #[arg(long)]
    data: PathBuf,
    /// Where the model goes; with --seeds N > 1, one model per seed in
    /// OUT/seed-S and a summary in OUT/report.json.
    #[arg(long, default_value = "runs/graph")]
    out: PathBuf,
    /// Edge score: additive (GAT) or dot (scaled dot product) [additive]
    #[arg(long, default_value = "additive", help_heading = "Model")]
    score: GraphScoreType,
    /// Graph attention layers [2]
    #[arg(long, default_value_t = 2, help_heading = "Model")]
    layers: usize,
    /// Heads per hidden layer, concatenated [8]
    #[arg(long, default_value_t = 8, help_heading = "Model")]
    heads: usize,
    /// Features per head in hidden layers [8]
    #[arg(long, default_value_t = 8, help_heading = "Model")]
    hidden: usize,
    /// Heads of the output layer, averaged [1]
    #[arg(long, default_value_t = 1, help_heading = "Model")]
    output_heads: usize,
    /// Dropout on each layer's input [0.6]
    #[arg(long, default_value_t = 0.6, help_heading = "Model")]
    dropout: f32,
    /// One input dropout mask shared by all heads of a layer (as PyG and
    /// DGL do), instead of one mask per head (the GAT authors' code) [off]
    #[arg(long, help_heading = "Model")]
    shared_input_dropout: bool,
    /// Dropout on attention weights [0.6]
    #[arg(long, default_value_t = 0.6, help_heading = "Model")]
    attention_dropout: f32,
    /// Dropout on the projected features where they are aggregated, after
    /// scoring (as in the reference GAT code) [0.6]
    #[arg(long, default_value_t = 0.6, help_heading = "Model")]
    value_dropout: f32,
    /// Residual connections around each layer [off]
    #[arg(long, help_heading = "Model")]
    residual: bool,
    /// Do not let nodes attend to themselves [self loops on]
    #[arg(long, help_heading = "Model")]
    no_self_loops: bool,
    /// Keep raw features (default: each node's features scaled to sum to 1)
    #[arg(long, help_heading = "Model")]
    raw_features: bool,
    /// fused (sparse kernel) or reference (dense adjacency-masked, O(nodes^2)) [fused]
    #[arg(long, default_value = "fused", help_heading = "Model")]
    attention_kernel: AttentionKernel,
    /// Learning rate [0.005]
    #[arg(long, default_value_t = 0.005, help_heading = "Training")]
    lr: f32,
    /// L2 regularisation of weight matrices [0.0005]
    #[arg(long, default_value_t = 5e-4, help_heading = "Training")]
    l2: f32,
    /// Stop after this many epochs without validation loss or accuracy improving [100]
    #[arg(long, default_value_t = 100, help_heading = "Training")]
    patience: usize,
    /// Upper limit on epochs (early stopping usually ends sooner) [5000]
    #[arg(long, default_value_t = 5000, help_heading = "Training")]
    max_epochs: usize,
    /// First random seed [42]
    #[arg(long, default_value_t = 42, help_heading = "Training")]
    seed: u64,
    /// Train this many models (seeds SEED, SEED+1, ...) and report mean +- std [1]
    #[arg(long, default_value_t = 1, help_heading = "Training")]
    seeds: usize,
}

#[derive(Args)]
pub struct EvalGraphArgs {
    /// Model directory written by `attend train graph`.
    #[arg(long)]
    model: PathBuf,
    /// Graph directory (same format as for training).
    #[arg(long)]
    data: PathBuf,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    data: PathBuf,
    model: GraphModelConfig,
    train: GraphTrainConfig,
    runs: Vec<GraphRun>,
    test_accuracy_mean: f64,
    test_accuracy_std: f64,
}

/// Mean and sample standard deviation.
fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 { xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

pub fn train(args: TrainGraphArgs) -> Result<()> {
    anyhow::ensure!(args.seeds >= 1, "--seeds must be at least 1");
    let data = planetoid::read_dir(&args.data, 0)?;
    let config = GraphModelConfig {
        score: args.score,
        layers: args.layers,
        heads: args.heads,
        hidden: args.hidden,
        output_heads: args.output_heads,
        dropout: args.dropout,
        shared_input_dropout: args.shared_input_dropout,
        attention_dropout: args.attention_dropout,
        value_dropout: args.value_dropout,
        negative_slope: 0.2,
        residual: args.residual,
        self_loops: !args.no_self_loops,
        normalize_features: !args.raw_features,
        kernel: args.attention_kernel,
        feature_dim: data.feature_dim,
        classes: data.classes,
    };
    let input = GraphInput::new(&data, &config)?;
    let (_, stats) = data.graph(config.self_loops)?;
    eprintln!(
        "{}: {} nodes, {} features, {} classes; {} edges given ({} self edges dropped, {} repeats merged) -> {} directed edges incl. self loops; split {}/{}/{}",
        args.data.display(),
        data.nodes(),
        data.feature_dim,
        data.classes,
        stats.given,
        stats.self_edges_dropped,
        stats.duplicates_merged,
        stats.edges,
        data.train.len(),
        data.val.len(),
        data.test.len()
    );
    let mut runs = Vec::new();
    for s in 0..args.seeds {
        let seed = args.seed + s as u64;
        let train_cfg = GraphTrainConfig { max_epochs: args.max_epochs, lr: args.lr, l2: args.l2, patience: args.patience, seed };
        let model = GraphClassifier::new(config.clone(), seed)?;
        let bar = ProgressBar::new(args.max_epochs as u64);
        bar.set_style(ProgressStyle::with_template("seed {prefix} [{bar:30}] epoch {pos} {msg}").expect("valid template").progress_chars("=> "));
        bar.set_prefix(seed.to_string());
        let run = graph::train_graph(&model, &input, &data, &train_cfg, |e: &GraphEpoch| {
            bar.set_position(e.epoch as u64);
            bar.set_message(format!("loss {:.4}  val loss {:.4}  val acc {:.2}%", e.train_loss, e.val.loss, 100.0 * e.val.accuracy));
        })?;
        bar.finish_and_clear();
        let dir = if args.seeds == 1 { args.out.clone() } else { args.out.join(format!("seed-{seed}")) };
        graph::save(&dir, &model, &train_cfg)?;
        println!(
            "seed {seed}: test {:.2}%  (val {:.2}%, loss {:.4}; best epoch {} of {}; {:.1} ms per training step; {:.1} s) -> {}",
            100.0 * run.test.accuracy,
            100.0 * run.val.accuracy,
            run.val.loss,
            run.best_epoch,
            run.epochs,
            run.train_step_ms,
            run.seconds,
            dir.display()
        );
        runs.push(run);
    }
    let accs: Vec<f64> = runs.iter().map(|r| r.test.accuracy as f64 * 100.0).collect();
    let (mean, std) = mean_std(&accs);
    if args.seeds > 1 {
        println!("test accuracy over {} seeds: {mean:.2} +- {std:.2}%", args.seeds);
        let report = Report {
            data: args.data.clone(),
            model: config,
            train: GraphTrainConfig { max_epochs: args.max_epochs, lr: args.lr, l2: args.l2, patience: args.patience, seed: args.seed },
            runs,
            test_accuracy_mean: mean,
            test_accuracy_std: std,
        };
        let path = args.out.join("report.json");
        std::fs::write(&path, serde_json::to_string_pretty(&report)?).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[derive(Serialize)]
struct EvalReport<'a> {
    model: &'a Path,
    data: &'a Path,
    train_accuracy: f32,
    val_accuracy: f32,
    test_accuracy: f32,
    test_loss: f32,
}

pub fn eval(args: EvalGraphArgs) -> Result<()> {
    let (model, _) = graph::load(&args.model)?;
    let data = planetoid::read_dir(&args.data, model.config.feature_dim)?;
    let input = GraphInput::new(&data, &model.config)?;
    let [train, val, test] = [&data.train, &data.val, &data.test].map(|nodes| model.evaluate(&input, nodes));
    let (train, val, test) = (train?, val?, test?);
    let report = EvalReport {
        model: &args.model,
        data: &args.data,
        train_accuracy: train.accuracy,
        val_accuracy: val.accuracy,
        test_accuracy: test.accuracy,
        test_loss: test.loss,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{}: test {:.2}% ({} nodes, loss {:.4}); val {:.2}%; train {:.2}%",
            args.data.display(),
            100.0 * test.accuracy,
            data.test.len(),
            test.loss,
            100.0 * val.accuracy,
            100.0 * train.accuracy
        );
    }
    Ok(())
}

/// `attend attention` for a graph model: where one node looks.
pub fn node_attention(model_dir: &Path, data_dir: &Path, node: usize, out: &Path) -> Result<()> {
    let (model, _) = graph::load(model_dir)?;
    let data = planetoid::read_dir(data_dir, model.config.feature_dim)?;
    let input = GraphInput::new(&data, &model.config)?;
    let view = attend::viz::node_attention(&model, &input, node)?;
    let files = attend::viz::write_node_views(&view, out)?;
    let class = |c: Option<u32>| c.map_or("unlabelled".to_string(), |c| format!("class {c}"));
    println!("node {node}: {}, predicted class {}", class(view.label), view.predicted);
    for (l, list) in view.layers.iter().enumerate() {
        let top: Vec<String> = list.iter().take(5).map(|n| format!("{} ({:.2})", n.node, n.mean)).collect();
        println!("  layer {}: {} neighbours; heaviest: {}", l + 1, list.len(), top.join(", "));
    }
    println!("{} files in {}", files.len(), out.display());
    Ok(())
}
