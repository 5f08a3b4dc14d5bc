//! The `attend` command line.

mod bench_cmd;
mod common;
mod compare_cmd;
mod data_cmd;
mod graph_cmd;
mod kinds;
mod progress;
mod segment_cmd;
mod segmenter_run;
mod sequence_cmd;
mod serve;
mod settings;
mod tagger_cmd;
mod text_cmd;
mod treebank_args;

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

// candle allocates a fresh buffer per op; mimalloc reuses them instead of
// returning pages to the OS and faulting them back in. The counting wrapper
// gives `attend bench` its peak-memory column.
#[global_allocator]
static GLOBAL: attend_cli::memory::Counting<mimalloc::MiMalloc> = attend_cli::memory::Counting(mimalloc::MiMalloc);

/// Self-attention models over vector sets: train, evaluate and run
/// part-of-speech taggers, graph node classifiers and models over vector
/// sequences built from stacked multi-head self-attention.
#[derive(Parser)]
#[command(name = "attend", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Worker threads for matrix products and kernels (default: all cores).
    /// Results are reproducible for a given seed and thread count.
    /// `attend bench tagger` also takes a list (1,2,4) and runs once per
    /// count.
    #[arg(long, global = true, value_delimiter = ',', value_name = "N")]
    threads: Vec<usize>,
    /// Matrix products when a tagger tags or is scored (never in training;
    /// the segmenter, sequence and graph models stay f32): auto is bf16
    /// where the CPU has AVX-512 BF16 and f32 elsewhere; f32 is the
    /// reference; bf16 rounds the products' inputs to bfloat16 and sums in
    /// f32 (the dense layers and character CNN about 1.7-2x as fast;
    /// attention, norms and softmax stay f32).
    #[arg(long, global = true, value_enum, default_value_t = PrecisionChoice::Auto)]
    precision: PrecisionChoice,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Train a model.
    #[command(subcommand)]
    Train(TrainCommand),
    /// Score a trained model: `attend eval --model DIR --input FILE` for a
    /// tagger (CoNLL-U) or a sequence model (.ts, .npz, vector text), by
    /// what the model directory holds; `attend eval graph ...` for a graph
    /// model. `attend eval --system FILE --gold FILE` scores any CoNLL-U
    /// output (from raw text or not) with the CoNLL 2018 shared task metrics.
    Eval(EvalCommand),
    /// Tag raw text (with the model's segmenter: tokens, multiword tokens,
    /// sentences), CoNLL-U or tokenized text, from a file or stdin; writes
    /// CoNLL-U, JSON or horizontal text. Raw text is streamed a paragraph
    /// at a time.
    Tag(tagger_cmd::TagArgs),
    /// Label data with a trained model: vector sequences with a sequence
    /// model (one label or number per sequence, or one label per vector),
    /// or the nodes of a graph with a graph model; TSV or JSON.
    Predict(kinds::PredictArgs),
    /// Heatmaps of a model's attention for one sentence (tagger) or one
    /// sequence (sequence model), per layer and head and averaged, plus the
    /// weights as JSON; for a graph model, where one node looks.
    Attention(kinds::AttentionArgs),
    /// Self-attention against the BiLSTM baseline on EWT (accuracy, training
    /// and tagging speed, latency by length with a plot, one very long
    /// input) and what truncated attention costs on a long-range task.
    Compare(compare_cmd::CompareArgs),
    /// A local web page (and JSON API) that tags sentences and shows their
    /// attention interactively.
    Serve(serve::ServeArgs),
    /// The raw text of a CoNLL-U file as the CoNLL 2018 shared task built it
    /// (`# text` of each sentence, a paragraph's sentences joined by a
    /// space, a blank line between paragraphs and documents).
    RawText(text_cmd::RawTextArgs),
    /// Benchmarks, reported as ratios against a baseline measured in the same run.
    #[command(subcommand)]
    Bench(bench_cmd::BenchCommand),
    /// Convert public data releases into the formats attend reads
    /// (scripts/fetch-data.sh downloads them).
    #[command(subcommand)]
    Data(data_cmd::DataCommand),
    /// Print a shell completion script: `attend completions bash >
    /// ~/.local/share/bash-completion/completions/attend` (zsh: a file
    /// `_attend` on $fpath; fish: ~/.config/fish/completions/attend.fish).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages: attend.1 and one per subcommand
    /// (attend-train-tagger.1, ...) into DIR; `man -l DIR/attend.1` reads one.
    Man {
        /// Directory for the pages (created if missing).
        #[arg(long, default_value = "man")]
        out: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
enum TrainCommand {
    /// Train a UPOS tagger on a Universal Dependencies treebank.
    Tagger(tagger_cmd::TrainTaggerArgs),
    /// Train a graph attention node classifier (GAT) on a graph directory.
    Graph(graph_cmd::TrainGraphArgs),
    /// Train a model over vector sequences (signals, frames, sensor rows)
    /// from .ts, .npz or vector text files: one label per sequence, one
    /// number per sequence, or one label per vector.
    Sequence(sequence_cmd::TrainSequenceArgs),
    /// Train a raw-text segmenter (tokens, multiword tokens, sentences) on
    /// a UD treebank: self-attention over characters with a window.
    /// `attend train tagger` trains one into its directory by default.
    Segmenter(segment_cmd::TrainSegmenterArgs),
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct EvalCommand {
    #[command(subcommand)]
    kind: Option<EvalKind>,
    #[command(flatten)]
    flat: Option<FlatEvalArgs>,
}

/// `attend eval` without a subcommand: a model on gold data, or a system
/// file against a gold file.
#[derive(clap::Args)]
struct FlatEvalArgs {
    /// Model directory written by `attend train tagger` or `attend train sequence`.
    #[arg(long, requires = "input", conflicts_with_all = ["system", "gold"])]
    model: Option<std::path::PathBuf>,
    /// Gold data for --model: CoNLL-U with UPOS tags (tagger); labelled
    /// .ts, .npz or vector text (sequence model).
    #[arg(long, requires = "model")]
    input: Option<std::path::PathBuf>,
    /// CoNLL-U written by a tagger (attend's or another's), scored against
    /// --gold with the CoNLL 2018 shared task metrics: Tokens, Sentences,
    /// Words, UPOS, XPOS, UFeats, AllTags, Lemmas, and UAS, LAS, CLAS, MLAS,
    /// BLEX when both files have HEADs. The two files must hold the same
    /// text (spaces aside).
    #[arg(long, requires = "gold")]
    system: Option<std::path::PathBuf>,
    /// The gold CoNLL-U file for --system.
    #[arg(long, requires = "system")]
    gold: Option<std::path::PathBuf>,
    /// Print the full report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum EvalKind {
    /// Score a trained tagger on a CoNLL-U file with gold UPOS tags.
    Tagger(tagger_cmd::EvalArgs),
    /// Score a graph model on the train/val/test splits of a graph directory.
    Graph(graph_cmd::EvalGraphArgs),
    /// Score a sequence model on labelled sequences: accuracy, macro-F1 and
    /// per class; RMSE and MAE for numbers.
    Sequence(tagger_cmd::EvalArgs),
}

fn main() {
    attend_cli::memory::enable();
    attend_cli::alloc::keep_freed_pages();
    let cli = Cli::from_arg_matches(&cli_command().get_matches()).unwrap_or_else(|e| e.exit());
    common::init_flags(cli_command());
    let result =
        attend::precision::set(cli.precision.into()).map_err(anyhow::Error::from).and_then(|()| thread_count(&cli)).and_then(|threads| {
            let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            one_pool(threads).and_then(|pool| pool.install(move || dispatch(cli.command, &cli.threads)))
        });
    if let Err(e) = result {
        report(e);
    }
}

/// `--precision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PrecisionChoice {
    Auto,
    F32,
    Bf16,
}

impl From<PrecisionChoice> for attend::precision::Precision {
    fn from(c: PrecisionChoice) -> Self {
        match c {
            PrecisionChoice::Auto => attend::precision::Precision::Auto,
            PrecisionChoice::F32 => attend::precision::Precision::F32,
            PrecisionChoice::Bf16 => attend::precision::Precision::Bf16,
        }
    }
}

/// Prints an error in the CLI's words and exits: 130 for an interrupted
/// run (its state saved), 1 otherwise. A library message names settings as
/// the flags that set them, and a checkpoint of another kind the commands
/// that take it.
fn report(e: anyhow::Error) -> ! {
    let text = format!("{e:#}");
    match e.chain().find_map(|c| c.downcast_ref::<attend::Error>()) {
        Some(attend::Error::Interrupted(why)) => {
            eprintln!("interrupted: {}", common::cli_words(why));
            std::process::exit(130)
        }
        Some(attend::Error::WrongKind { found, .. }) => match kinds::commands(found) {
            Some(commands) => eprintln!("error: {text} (use {commands})"),
            None => eprintln!("error: {text}"),
        },
        // Their text quotes files (and serde's field names), not settings;
        // and an error the CLI made (a settings file's, say) is in its words already.
        Some(attend::Error::Parse { .. } | attend::Error::Checkpoint { .. } | attend::Error::Io { .. }) | None => {
            eprintln!("error: {text}")
        }
        Some(_) => eprintln!("error: {}", common::cli_words(&text)),
    }
    std::process::exit(1)
}

/// The command line as `attend --help`, the man pages and the completions
/// show it: each `train` subcommand's flags with that kind's defaults.
pub(crate) fn cli_command() -> clap::Command {
    use attend::models::graph::config::GraphSettings;
    use attend::models::sequence::config::SequenceSettings;
    use attend::models::tagger::config::TaggerSettings;
    Cli::command().mut_subcommand("train", |train| {
        train
            .mut_subcommand("tagger", |c| segmenter_run::show_defaults(settings::show_defaults(c, &TaggerSettings::default(), &[])))
            .mut_subcommand("segmenter", segmenter_run::show_defaults)
            .mut_subcommand("sequence", |c| {
                sequence_cmd::mark_adaptive(settings::show_defaults(c, &SequenceSettings::default(), &[("batch_vectors", "batch_tokens")]))
            })
            .mut_subcommand("graph", |c| settings::show_defaults(c, &GraphSettings::default(), &[("attention_kernel", "kernel")]))
    })
}

/// All parallel work in one pool of `threads` workers, the command itself
/// running on one of them: our kernels, the GEMMs (rayon's current pool)
/// and candle's matmul (told the same count through `RAYON_NUM_THREADS`).
/// candle's own element-wise pool is off in our vendored candle unless
/// `CANDLE_NUM_THREADS` asks for it (`vendor/candle-core/ATTEND-PATCH.md`).
fn one_pool(threads: usize) -> Result<attend::rayon::ThreadPool> {
    if threads == 0 {
        anyhow::bail!("--threads must be at least 1");
    }
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    // Threads started outside the pool (the web server's) that call into
    // rayon get a global pool of the same size.
    let _ = attend::rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
    // The command runs on a worker: give it the main thread's stack size.
    Ok(attend::rayon::ThreadPoolBuilder::new().num_threads(threads).stack_size(8 << 20).build()?)
}

/// The one thread count of this run (`None`: all cores); a list only where
/// the command runs once per count.
fn thread_count(cli: &Cli) -> Result<Option<usize>> {
    match cli.threads[..] {
        [] => Ok(None),
        [n] => Ok(Some(n)),
        _ if matches!(cli.command, Command::Bench(bench_cmd::BenchCommand::Tagger(_))) => Ok(None),
        _ => anyhow::bail!("--threads takes one count here (a list such as 1,2,4 is for `attend bench tagger`)"),
    }
}

fn dispatch(command: Command, threads: &[usize]) -> Result<()> {
    match command {
        Command::Train(TrainCommand::Tagger(args)) => tagger_cmd::train(args),
        Command::Train(TrainCommand::Graph(args)) => graph_cmd::train(args),
        Command::Train(TrainCommand::Sequence(args)) => sequence_cmd::train(args),
        Command::Train(TrainCommand::Segmenter(args)) => segment_cmd::train(args),
        Command::Eval(EvalCommand { kind: Some(EvalKind::Tagger(args)), .. }) => tagger_cmd::eval(&args.model, &args.input, args.json),
        Command::Eval(EvalCommand { kind: Some(EvalKind::Graph(args)), .. }) => graph_cmd::eval(args),
        Command::Eval(EvalCommand { kind: Some(EvalKind::Sequence(args)), .. }) => sequence_cmd::eval(&args.model, &args.input, args.json),
        Command::Eval(EvalCommand { flat: Some(FlatEvalArgs { system: Some(system), gold: Some(gold), json, .. }), .. }) => {
            text_cmd::score(&system, &gold, json)
        }
        Command::Eval(EvalCommand { flat: Some(FlatEvalArgs { model: Some(model), input: Some(input), json, .. }), .. }) => kinds::eval(&model, &input, json),
        Command::Eval(_) => Err(anyhow::anyhow!(
            "attend eval needs --model and --input (a tagger or sequence model), --system and --gold (two CoNLL-U files), or the graph subcommand; see attend eval --help"
        )),
        Command::Tag(args) => tagger_cmd::tag(args),
        Command::Predict(args) => kinds::predict(args),
        Command::Attention(args) => kinds::attention(args),
        Command::Serve(args) => serve::serve(args),
        Command::Compare(args) => compare_cmd::compare(args),
        Command::Bench(command) => bench_cmd::run(command, threads),
        Command::RawText(args) => text_cmd::raw_text(args),
        Command::Data(command) => data_cmd::run(command),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cli_command(), "attend", &mut script);
            use std::io::Write;
            std::io::stdout().write_all(&script).map_err(Into::into)
        }
        Command::Man { out } => man_pages(&out),
    }
}

/// `attend man`: a page for the command and each subcommand, from the clap definitions.
fn man_pages(out: &std::path::Path) -> Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut written = 0;
    // (command, page name attend-train-tagger, usage name "attend train tagger")
    let mut stack = vec![(cli_command(), "attend".to_string(), "attend".to_string())];
    while let Some((cmd, name, usage)) = stack.pop() {
        let cmd = cmd.name(name.clone()).bin_name(usage.clone());
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            stack.push((sub.clone(), format!("{name}-{}", sub.get_name()), format!("{usage} {}", sub.get_name())));
        }
        let path = out.join(format!("{name}.1"));
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut page)?;
        std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
        written += 1;
    }
    eprintln!("{written} man pages in {}", out.display());
    Ok(())
}
