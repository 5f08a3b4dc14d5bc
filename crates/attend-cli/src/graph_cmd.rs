//! `attend train graph`, `attend eval graph`.

use crate::common::{self, PredictFormat};
use crate::progress::{interrupt_flag, Progress};
use crate::settings;
use anyhow::Result;
use attend::api::graph::{predict_nodes, GraphJob, NodeSelection};
use attend::api::seeds;
use attend::checkpoint;
use attend::data::planetoid;
use attend::models::graph::config::GraphSettings;
use attend::models::graph::task::GraphRun;
use attend::models::graph::GraphInput;
use attend::models::{GraphClassifier, GraphModelConfig, GraphScoreType, GraphTrainConfig};
use attend::nn::AttentionKernel;
use clap::Args;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Training a graph model. Defaults in brackets are GAT's settings for Cora.
#[derive(Args)]
pub struct TrainGraphArgs {
    /// Graph directory: nodes.tsv, edges.tsv, train.txt, val.txt, test.txt
    /// (format in docs/graphs.md).
    #[arg(long)]
    data: PathBuf,
    /// Where the model goes: the best model so far, plus resume/ with the
    /// latest state (rewritten atomically every 30 s, at the end and on
    /// Ctrl-C). With --seeds N > 1, one model per seed in OUT/seed-S and a
    /// summary in OUT/report.json.
    #[arg(long, default_value = "runs/graph")]
    out: PathBuf,
    /// Continue the interrupted run in this directory (a model directory,
    /// or the OUT of a --seeds run: every seed is then finished and the
    /// report written) with its saved settings, optimizer and random state:
    /// the result equals an uninterrupted run. Give no model or training
    /// flags with it (except --max-minutes).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "config", "seeds"])]
    resume: Option<PathBuf>,
    /// TOML file with [model] and [train] tables (names as the flags, with
    /// underscores; `kernel` for --attention-kernel); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    model: GraphModelArgs,
    #[command(flatten)]
    train: GraphTrainArgs,
    /// Train this many models (seeds SEED, SEED+1, ...) and report mean +- std [1]
    #[arg(long, default_value_t = 1, help_heading = "Training")]
    seeds: usize,
}

/// Architecture flags; unset ones come from the config file or GraphModelConfig's defaults.
#[derive(Args, Serialize, Default)]
pub struct GraphModelArgs {
    /// Edge score: additive (GAT) or dot (scaled dot product)
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<GraphScoreType>,
    /// Graph attention layers
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    layers: Option<usize>,
    /// Heads per hidden layer, concatenated
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    heads: Option<usize>,
    /// Features per head in hidden layers
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    hidden: Option<usize>,
    /// Heads of the output layer, averaged
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    output_heads: Option<usize>,
    /// Dropout on each layer's input
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    dropout: Option<f32>,
    /// One input dropout mask shared by all heads of a layer (as PyG and
    /// DGL do), instead of one mask per head (the GAT authors' code) [off]
    #[arg(long, help_heading = "Model")]
    #[serde(skip)]
    shared_input_dropout: bool,
    /// Dropout on attention weights
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    attention_dropout: Option<f32>,
    /// Dropout on the projected features where they are aggregated, after
    /// scoring (as in the reference GAT code)
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    value_dropout: Option<f32>,
    /// Negative slope of the additive score's LeakyReLU
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    negative_slope: Option<f32>,
    /// Residual connections around each layer [off]
    #[arg(long, help_heading = "Model")]
    #[serde(skip)]
    residual: bool,
    /// Do not let nodes attend to themselves [self loops on]
    #[arg(long, help_heading = "Model")]
    #[serde(skip)]
    no_self_loops: bool,
    /// Keep raw features (default: each node's features scaled to sum to 1)
    #[arg(long, help_heading = "Model")]
    #[serde(skip)]
    raw_features: bool,
    /// fused (sparse kernel) or reference (dense adjacency-masked, O(nodes^2))
    #[arg(long, help_heading = "Model")]
    #[serde(rename = "kernel", skip_serializing_if = "Option::is_none")]
    attention_kernel: Option<AttentionKernel>,
}

impl GraphModelArgs {
    /// The flags given, as `[model]` table entries.
    fn table(&self) -> Result<toml::Table> {
        let mut t = toml::Table::try_from(self)?;
        for (given, key, value) in [
            (self.shared_input_dropout, "shared_input_dropout", true),
            (self.residual, "residual", true),
            (self.no_self_loops, "self_loops", false),
            (self.raw_features, "normalize_features", false),
        ] {
            if given {
                t.insert(key.into(), toml::Value::Boolean(value));
            }
        }
        Ok(t)
    }
}

/// Training flags; unset ones come from the config file or GraphTrainConfig's defaults.
#[derive(Args, Serialize, Default)]
pub struct GraphTrainArgs {
    /// Learning rate (Adam, constant)
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    lr: Option<f32>,
    /// L2 regularisation of weight matrices
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    l2: Option<f32>,
    /// Stop after this many epochs without validation loss or accuracy improving
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    patience: Option<usize>,
    /// Upper limit on epochs (early stopping usually ends sooner)
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_epochs: Option<usize>,
    /// Random seed (the first, with --seeds)
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    /// Stop after this many minutes of this session, keeping the best model
    /// so far (continue with --resume) [no limit]
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_minutes: Option<f64>,
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

pub fn train(args: TrainGraphArgs) -> Result<()> {
    anyhow::ensure!(args.seeds >= 1, "--seeds must be at least 1");
    interrupt_flag()?; // from here on, Ctrl-C saves (the run stops after its current epoch)
                       // Settings first: a bad flag or config file is reported before any data is read.
    let settings = match &args.resume {
        Some(dir) => {
            settings::refuse_on_resume(dir, &args.model.table()?, &args.train)?;
            None
        }
        None => Some(settings::resolve::<GraphSettings>(args.config.as_deref(), &args.model.table()?, &args.train)?),
    };
    let data = planetoid::read_dir(&args.data, 0)?;
    let saved = args.resume.as_deref().map(seeds::read_plan::<SeedsPlan>).transpose()?.flatten();
    let (plan, out, resuming) = match (&args.resume, saved) {
        (Some(dir), Some(plan)) => (plan, dir.clone(), true),
        (Some(dir), None) => {
            let job = GraphJob::resume(dir, &data, args.train.max_minutes)?;
            eprintln!("resuming {} at epoch {} (seed {})", dir.display(), job.resume.as_ref().map_or(0, |r| r.state.epoch), job.train.seed);
            let run = train_one(job, dir, "")?;
            print_run(&run, dir);
            return Ok(());
        }
        (None, _) => {
            let GraphSettings { model: mut config, train } = settings.expect("resolved above");
            config.feature_dim = data.feature_dim;
            config.classes = data.classes;
            (SeedsPlan { seeds: args.seeds, model: config, train }, args.out.clone(), false)
        }
    };
    let SeedsPlan { seeds, model: config, mut train } = plan;
    if args.train.max_minutes.is_some() {
        train.max_minutes = args.train.max_minutes;
    }
    // One input for every seed (it also checks the data fits the model before any starts).
    let input = GraphInput::new(&data, &config)?;
    let (_, stats) = data.graph(config.self_loops)?;
    eprintln!(
        "{}: {} nodes, {} features, {} classes; {} edges given ({} self edges dropped, {} repeats merged) -> {} directed edges incl. self loops; split {}/{}/{}; {} threads",
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
        data.test.len(),
        attend::rayon::current_num_threads()
    );
    if seeds > 1 && !resuming {
        // What `--resume OUT` needs to finish every seed and the report.
        seeds::write_plan(&out, &SeedsPlan { seeds, model: config.clone(), train: train.clone() })?;
    }
    let mut runs = Vec::new();
    for s in 0..seeds {
        let train_cfg = GraphTrainConfig { seed: train.seed + s as u64, ..train.clone() };
        let (dir, prefix) = seeds::seed_dir(&out, seeds, train_cfg.seed);
        // Resuming a multi-seed run: seeds with a saved state continue (a
        // finished one returns its result at once), the others start.
        let run = if resuming && seeds::has_saved_state(&dir) {
            let mut job = GraphJob::resume_with_input(&dir, &input, &data)?;
            job.train = train_cfg; // the plan's settings for this seed, with this session's time limit
            eprintln!("resuming {} at epoch {}", dir.display(), job.resume.as_ref().map_or(0, |r| r.state.epoch));
            train_one(job, &dir, &prefix)?
        } else {
            train_one(GraphJob::with_input(&input, &data, config.clone(), train_cfg)?, &dir, &prefix)?
        };
        print_run(&run, &dir);
        runs.push(run);
    }
    if seeds > 1 {
        let accs: Vec<f64> = runs.iter().map(|r| r.test.accuracy as f64 * 100.0).collect();
        let (mean, std) = seeds::mean_std(&accs);
        println!("test accuracy over {seeds} seeds: {mean:.2} +- {std:.2}%");
        let report = Report { data: args.data.clone(), model: config, train, runs, test_accuracy_mean: mean, test_accuracy_std: std };
        seeds::write_json(&out.join("report.json"), &report)?;
    }
    Ok(())
}

/// A multi-seed run's settings (`OUT/seeds.json`), so `--resume OUT` can finish it.
#[derive(Serialize, serde::Deserialize)]
struct SeedsPlan {
    seeds: usize,
    model: GraphModelConfig,
    train: GraphTrainConfig,
}

/// One run through the training loop, checkpointed in `dir`; Ctrl-C saves and stops.
fn train_one(job: GraphJob, dir: &Path, prefix: &str) -> Result<GraphRun> {
    let progress = Progress::new("nodes", "val", 100).with_prefix(prefix.to_string());
    let (_, run) = common::with_progress(
        progress,
        |why| seeds::interrupted(why, dir),
        |interrupt, progress| job.run(Some(dir), Some(interrupt), progress),
    )?;
    if let Some(why) = &run.stopped_early {
        eprintln!("{prefix}early stop: {}", common::cli_words(why));
    }
    Ok(run)
}

fn print_run(run: &GraphRun, dir: &Path) {
    println!(
        "seed {}: test {:.2}%  (val {:.2}%, loss {:.4}; best epoch {} of {}; {:.1} ms per training step; {:.1} s) -> {}",
        run.seed,
        100.0 * run.test.accuracy,
        100.0 * run.val.accuracy,
        run.val.loss,
        run.best_epoch,
        run.epochs,
        run.train_step_ms,
        run.seconds,
        dir.display()
    );
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
    let model = checkpoint::load::<GraphClassifier>(&args.model)?.model;
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

/// Which nodes `attend predict` labels in a graph.
#[derive(Clone, Copy, clap::ValueEnum, PartialEq, Eq, Debug)]
pub enum NodeSelectionArg {
    /// Every node.
    All,
    /// Only nodes whose label in nodes.tsv is `?`.
    Unlabelled,
}

/// `attend predict` for a graph model: a class (and its probability) per node.
pub fn predict(model_dir: &Path, data_dir: &Path, nodes: NodeSelectionArg, format: PredictFormat, output: Option<&Path>) -> Result<()> {
    let model = checkpoint::load::<GraphClassifier>(model_dir)?.model;
    let data = planetoid::read_graph(data_dir, model.config.feature_dim)?;
    let selection = match nodes {
        NodeSelectionArg::All => NodeSelection::All,
        NodeSelectionArg::Unlabelled => NodeSelection::Unlabelled,
    };
    let predicted = predict_nodes(&model, &data, selection)?;
    common::write_output(output, |out| {
        match format {
            PredictFormat::Tsv => {
                writeln!(out, "node\tprediction\tprobability\tlabel")?;
                for p in &predicted {
                    writeln!(
                        out,
                        "{}\t{}\t{:.4}\t{}",
                        p.node,
                        p.prediction,
                        p.probability,
                        p.label.map_or("?".to_string(), |l| l.to_string())
                    )?;
                }
            }
            PredictFormat::Json => {
                serde_json::to_writer(&mut *out, &predicted)?;
                writeln!(out)?;
            }
        }
        Ok(())
    })?;
    eprintln!("labelled {} of {} nodes of {}", predicted.len(), data.nodes(), data_dir.display());
    Ok(())
}

/// `attend attention` for a graph model: where one node looks.
pub fn node_attention(model_dir: &Path, data_dir: &Path, node: usize, out: &Path) -> Result<()> {
    let model = checkpoint::load::<GraphClassifier>(model_dir)?.model;
    let data = planetoid::read_dir(data_dir, model.config.feature_dim)?;
    let input = GraphInput::new(&data, &model.config)?;
    let view = attend_cli::viz::node_attention(&model, &input, node)?;
    let files = attend_cli::viz::write_node_views(&view, out)?;
    let class = |c: Option<u32>| c.map_or("unlabelled".to_string(), |c| format!("class {c}"));
    println!("node {node}: {}, predicted class {}", class(view.label), view.predicted);
    for (l, list) in view.layers.iter().enumerate() {
        let top: Vec<String> = list.iter().take(5).map(|n| format!("{} ({:.2})", n.node, n.mean)).collect();
        println!("  layer {}: {} neighbours; heaviest: {}", l + 1, list.len(), top.join(", "));
    }
    println!("{} files in {}", files.len(), out.display());
    Ok(())
}
