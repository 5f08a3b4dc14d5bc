//! `attend train sequence`, and `attend eval`, `attend predict` and
//! `attend attention` for sequence models.

use crate::common::{self, PredictFormat};
use crate::progress::{interrupt_flag, Progress};
use crate::settings::{self, EncoderArgs, TrainArgs};
use anyhow::{bail, Context, Result};
use attend::api::seeds;
use attend::api::sequence::{RunSpec, SequenceJob, SequenceRunReport};
use attend::checkpoint;
use attend::config::TrainConfig;
use attend::data::series::{self, SeriesSet, Target};
use attend::models::sequence::auto;
use attend::models::sequence::config::SequenceSettings;
use attend::models::sequence::{Output, SequenceModel, MAX_DENSE};
use attend::models::EncoderKind;
use attend::nn::head::Pooling;
use clap::Args;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Training a model over vector sequences. Defaults in brackets.
#[derive(Args)]
pub struct TrainSequenceArgs {
    /// Training sequences: a .ts file (UEA/UCR), a .npz file, or vector
    /// text (one vector per line, its label last; formats in docs/sequences.md).
    #[arg(long)]
    train: PathBuf,
    /// Dev sequences to choose the epoch on (default: --dev-fraction of the training file).
    #[arg(long)]
    dev: Option<PathBuf>,
    /// Test sequences, scored at the end with the kept model.
    #[arg(long)]
    test: Option<PathBuf>,
    /// Where the model goes: the best model so far, plus resume/ with the
    /// latest state (rewritten atomically, at most every 10 s, at the end
    /// and on Ctrl-C). With --seeds N > 1, one model per seed in OUT/seed-S
    /// and a summary in OUT/report.json.
    #[arg(long, default_value = "runs/sequence")]
    out: PathBuf,
    /// Continue the interrupted run in this directory (a model directory,
    /// or the OUT of a --seeds run: every seed is then finished and the
    /// report written) with its saved settings, statistics, optimizer and
    /// random state (give the same --train/--dev/--test files): the result
    /// equals an uninterrupted run. Give no model or training flags with it
    /// (except --max-minutes).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "config", "seeds"])]
    resume: Option<PathBuf>,
    /// TOML file with [model] and [train] tables (names as the flags, with
    /// underscores; batch_tokens for --batch-vectors); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    model: SequenceModelArgs,
    #[command(flatten)]
    train_flags: SequenceTrainArgs,
    /// Keep the fixed defaults shown in brackets; without this, the
    /// settings marked "from the data" that no flag or config key gives are
    /// chosen from the training set's shape (printed, and recorded in
    /// train_report.json; rules in docs/sequences.md)
    #[arg(long, help_heading = "Training")]
    fixed_defaults: bool,
    /// Train this many models (seeds SEED, SEED+1, ...; each draws its own
    /// dev split) and report the test mean +- std [1]
    #[arg(long, default_value_t = 1, help_heading = "Training")]
    seeds: usize,
}

/// Architecture flags: the encoder's, then the sequence model's own. Unset
/// ones come from the config file or SequenceConfig's defaults.
#[derive(Args, Serialize, Debug, Default)]
pub struct SequenceModelArgs {
    #[command(flatten)]
    #[serde(flatten)]
    encoder: EncoderArgs,
    /// One label per sequence: mean (of the outputs over the real vectors)
    /// or summary (a learned vector before the sequence that attends like
    /// the others)
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pooling: Option<Pooling>,
    /// Join N consecutive vectors into one input of the encoder (shortens
    /// long signals N times; one label per sequence only)
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<usize>,
    /// Scale each sequence by its own per-channel mean and deviation, and
    /// give those two (log deviation) and the log length as extra inputs:
    /// for signals whose amplitudes span orders of magnitude [off]
    #[arg(long, help_heading = "Model")]
    #[serde(skip)]
    sequence_norm: bool,
    /// A convolutional stem: each vector first becomes N learned features
    /// of the --stem-kernel vectors around it (then GELU), before patches
    /// are joined; 0 = off
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    stem: Option<usize>,
    /// Width of the stem's window, odd
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    stem_kernel: Option<usize>,
    /// Convolutional layers in the stem: the first over raw vectors, each
    /// further one over the --stem-deep-kernel feature vectors around each
    /// step (then layer norm and GELU)
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    stem_layers: Option<usize>,
    /// Width of the further stem layers' windows, odd
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    stem_deep_kernel: Option<usize>,
    /// An ensemble of N copies of the network (own initial weights and
    /// dropout, same batches, trained side by side, in parallel with
    /// several threads); predictions average their class probabilities.
    /// Default: below 1,000 sequences 6, or 3 where each network's run
    /// passes more than 6.25 M vectors; else 1
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    members: Option<usize>,
    /// Of the members, how many are convolutional (a stem of at least 3
    /// layers, no attention); with both kinds, each kind has half the say
    /// in predictions. Default: one in three on small sets
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    conv_members: Option<usize>,
    /// A convolutional network (member, or --layers 0) keeps the maximum
    /// of each N vectors after its stem's first layer (a divisor of
    /// --patch); its deeper layers run over N times fewer steps. Default:
    /// the largest divisor of the patch up to 4
    #[arg(long, help_heading = "Model")]
    #[serde(skip_serializing_if = "Option::is_none")]
    conv_pool: Option<usize>,
}

impl SequenceModelArgs {
    /// The flags given, as `[model]` table entries.
    fn table(&self) -> Result<toml::Table> {
        let mut t = toml::Table::try_from(self)?;
        if self.sequence_norm {
            t.insert("sequence_norm".into(), toml::Value::Boolean(true));
        }
        Ok(t)
    }
}

/// Training flags: the shared ones, then the sequence model's own. Unset
/// ones come from the config file or the sequence defaults.
#[derive(Args, Serialize, Debug, Default)]
pub struct SequenceTrainArgs {
    #[command(flatten)]
    #[serde(flatten)]
    common: TrainArgs,
    /// Padded inputs (vectors, or patches) per batch
    #[arg(long, help_heading = "Training")]
    #[serde(rename = "batch_tokens", skip_serializing_if = "Option::is_none")]
    batch_vectors: Option<usize>,
    /// Without --dev: hold out this share of the training sequences as dev
    /// data (stratified by class), drawn with the seed; 0: none (train on
    /// all of it, keep the last epoch)
    #[arg(long, help_heading = "Training", conflicts_with = "dev")]
    #[serde(skip_serializing_if = "Option::is_none")]
    dev_fraction: Option<f32>,
    /// Cut training sequences with a label per vector into pieces of N
    /// vectors (long signals; use with --window; 0: whole sequences)
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    crop: Option<usize>,
    /// One label per sequence: train on a random window of at least this
    /// share of each sequence, drawn at every step (augmentation)
    #[arg(long, help_heading = "Training")]
    #[serde(skip_serializing_if = "Option::is_none")]
    random_crop: Option<f32>,
}

fn read(path: &Path) -> Result<SeriesSet> {
    Ok(series::read_file(path)?)
}

fn describe(set: &SeriesSet) -> String {
    let (lo, hi) = set.length_range();
    let lengths = if lo == hi { format!("length {lo}") } else { format!("lengths {lo}-{hi}") };
    let labels = match set.target {
        Target::SequenceClass | Target::VectorClass => format!("{}, {} classes", set.target, set.classes.len()),
        t => t.to_string(),
    };
    let width = if set.dims == 1 { "1 value per vector".to_string() } else { format!("{} values per vector", set.dims) };
    format!("{} sequences ({lengths}, {width}, {} missing; {labels})", set.series.len(), set.missing())
}

/// How a run's dev score is shown.
fn score_format(target: Target) -> fn(f64) -> String {
    match target {
        Target::SequenceValue => |x| format!("RMSE {:.4}", -x),
        _ => |x| format!("{:.2}%", 100.0 * x),
    }
}

pub fn train(args: TrainSequenceArgs) -> Result<()> {
    anyhow::ensure!(args.seeds >= 1, "--seeds must be at least 1");
    interrupt_flag()?;
    let settings = match &args.resume {
        Some(dir) => {
            settings::refuse_on_resume(dir, &args.model.table()?, &args.train_flags)?;
            None
        }
        None => Some(settings::resolve::<SequenceSettings>(args.config.as_deref(), &args.model.table()?, &args.train_flags)?),
    };
    let train_set = read(&args.train)?;
    eprintln!("train {}: {}", args.train.display(), describe(&train_set));
    let dev_set = args.dev.as_deref().map(read).transpose()?;
    if let (Some(d), Some(path)) = (&dev_set, &args.dev) {
        eprintln!("dev {}: {}", path.display(), describe(d));
    }
    let test_set = args.test.as_deref().map(read).transpose()?;
    let saved = args.resume.as_deref().map(seeds::read_plan::<SeedsPlan>).transpose()?.flatten();
    let (plan, out, resuming) = match (&args.resume, saved) {
        (Some(dir), Some(plan)) => (plan, dir.clone(), true),
        (Some(dir), None) => {
            let job = SequenceJob::resume(dir, &train_set, dev_set.as_ref(), args.train_flags.common.max_minutes())?;
            train_one(job, dir, test_set.as_ref(), "")?;
            return Ok(());
        }
        (None, _) => {
            let SequenceSettings { model, train } = settings.expect("resolved above");
            (SeedsPlan { seeds: args.seeds, model, train }, args.out.clone(), false)
        }
    };
    let SeedsPlan { seeds, model: mut settings, mut train } = plan;
    // Defaults from the data, decided once for every seed (a resumed run has its settings).
    let mut choices = Vec::new();
    if !resuming && !args.fixed_defaults {
        let given = settings::given_keys(args.config.as_deref(), &args.model.table()?, &args.train_flags)?;
        let mut both = SequenceSettings { model: settings, train };
        let profile = auto::Profile::of(&train_set);
        choices = auto::adapt(&mut both, &given, &profile, dev_set.is_some());
        if !choices.is_empty() {
            eprintln!("chosen from the data ({profile}; a flag or config key overrides each, --fixed-defaults keeps all):");
            for c in &choices {
                eprintln!("  {c}");
            }
        }
        (settings, train) = (both.model, both.train);
    }
    if args.train_flags.common.max_minutes().is_some() {
        train.max_minutes = args.train_flags.common.max_minutes();
    }
    if seeds > 1 && !resuming {
        // What `--resume OUT` needs to finish every seed and the report.
        seeds::write_plan(&out, &SeedsPlan { seeds, model: settings.clone(), train: train.clone() })?;
    }
    let mut runs = Vec::new();
    for s in 0..seeds {
        let cfg = TrainConfig { seed: train.seed + s as u64, ..train.clone() };
        let (dir, prefix) = seeds::seed_dir(&out, seeds, cfg.seed);
        // Resuming a multi-seed run: seeds with a saved state continue (a
        // finished one gives its result again), the others start.
        if resuming && seeds::has_saved_state(&dir) {
            let job = SequenceJob::resume(&dir, &train_set, dev_set.as_ref(), args.train_flags.common.max_minutes())?;
            let run = train_one(job, &dir, test_set.as_ref(), &prefix)?;
            runs.push(run);
            continue;
        }
        let mut job = SequenceJob::new(&train_set, dev_set.as_ref(), &SequenceSettings { model: settings.clone(), train: cfg.clone() })?;
        job.choices = choices.clone();
        let (model, p) = (&job.model, &job.prepared);
        if s == 0 {
            let dev = match p.held_out {
                Some(0) => "none (dev_fraction 0: trains on every training sequence, keeps the last epoch)".into(),
                Some(n) => format!("{n} sequences held out of train ({:.0}%, seed {})", 100.0 * cfg.dev_fraction, cfg.seed),
                None => format!("{} sequences", p.dev.len()),
            };
            let c = &model.config;
            let networks = match (c.members, c.conv_members) {
                (1, 0) => String::new(),
                (n, 0) => format!(" in {n} networks"),
                (n, k) if k == n => format!(" in {n} convolutional networks"),
                (n, k) => format!(" in {n} networks ({} with attention, {k} convolutional)", n - k),
            };
            eprintln!(
                "model: inputs {} wide ({}) -> {} outputs; {} parameters{networks}; dev: {dev}; {} threads",
                c.input_width(),
                if c.patch > 1 { format!("patches of {} vectors", c.patch) } else { "one per vector".into() },
                c.outputs,
                model.params.num_scalars(),
                attend::rayon::current_num_threads()
            );
        }
        let run = train_one(job, &dir, test_set.as_ref(), &prefix)?;
        runs.push(run);
    }
    if seeds > 1 {
        let scores: Vec<f64> = runs.iter().filter_map(|r| r.test_score).collect();
        let (mean, std) = seeds::mean_std(&scores);
        let seconds = runs.iter().map(|r| r.train_seconds).collect::<Vec<_>>();
        let (time_mean, _) = seeds::mean_std(&seconds);
        if !scores.is_empty() {
            let what = if train_set.target == Target::SequenceValue { "RMSE" } else { "accuracy" };
            let scale = if train_set.target == Target::SequenceValue { 1.0 } else { 100.0 };
            println!("test {what} over {seeds} seeds: {:.2} +- {:.2}; training {:.1} s per seed", scale * mean, scale * std, time_mean);
        }
        let report = serde_json::json!({
            "train": args.train, "dev": args.dev, "test": args.test,
            "model": settings, "settings": train, "runs": runs,
            "test_mean": mean, "test_std": std, "train_seconds_mean": time_mean,
        });
        seeds::write_json(&out.join("report.json"), &report)?;
    }
    Ok(())
}

/// Marks in the help of `train sequence` the defaults chosen from the data
/// ([`auto::KEYS`]; `--batch-vectors` sets `batch_tokens`): `[1]` becomes
/// `[from the data; fixed: 1]`.
pub fn mark_adaptive(mut cmd: clap::Command) -> clap::Command {
    let ids: Vec<String> = cmd
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .filter(|id| auto::KEYS.contains(&if id == "batch_vectors" { "batch_tokens" } else { id.as_str() }))
        .collect();
    for id in ids {
        cmd = cmd.mut_arg(id, |arg| {
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            match help.rfind(" [").filter(|_| help.ends_with(']')) {
                Some(at) => arg.help(format!("{} [from the data; fixed: {}", &help[..at], &help[at + 2..])),
                None => arg.help(format!("{help} [from the data]")),
            }
        });
    }
    cmd
}

/// A multi-seed run's settings (`OUT/seeds.json`), so `--resume OUT` can finish it.
#[derive(Serialize, serde::Deserialize)]
struct SeedsPlan {
    seeds: usize,
    model: attend::models::sequence::config::SequenceConfig,
    train: TrainConfig,
}

/// Trains one model (or continues it), checkpointed in `dir`, and scores
/// the test set; Ctrl-C saves and stops.
fn train_one(job: SequenceJob, dir: &Path, test: Option<&SeriesSet>, prefix: &str) -> Result<SequenceRunReport> {
    let every = if job.train.epochs >= 50 { 10 } else { 1 };
    let target = job.prepared.spec.target;
    let unit = if target == Target::VectorClass { "vec" } else { "seq" };
    if let Some(r) = &job.resume {
        eprintln!(
            "{prefix}resuming {} at epoch {}, batch {} (step {})",
            dir.display(),
            r.state.epoch,
            r.state.next_batch,
            r.optimizer.step
        );
    }
    // Without dev data the progress line and the summary score the training data.
    let scored = if job.prepared.dev.is_empty() { "train" } else { "dev" };
    let progress = Progress::new(unit, scored, every).with_prefix(prefix.to_string()).with_score(score_format(target));
    let (_, report) = common::with_progress(
        progress,
        |why| seeds::interrupted(why, dir),
        |interrupt, progress| job.run(RunSpec { dir: Some(dir), interrupt: Some(interrupt), test }, progress),
    )?;
    if let Some(why) = &report.stopped_early {
        eprintln!("{prefix}stopped early: {}", common::cli_words(why));
    }
    if let (Some(set), Some((summary, secs))) = (test, &report.test_summary) {
        eprintln!("{prefix}test {}: {summary} in {secs:.2} s", set.path.display());
    }
    print_run(&report, dir, scored);
    Ok(report)
}

/// The run's summary line; `scored`: what the kept epoch was scored on (`dev`, or `train` without dev data).
fn print_run(run: &SequenceRunReport, dir: &Path, scored: &str) {
    let dev = run
        .dev
        .get("accuracy")
        .and_then(|a| a.as_f64())
        .map_or_else(|| format!("RMSE {:.4}", run.dev["rmse"].as_f64().unwrap_or(f64::NAN)), |a| format!("{:.2}%", 100.0 * a));
    let test = match (run.test_score, run.dev.get("accuracy").is_some()) {
        (Some(s), true) => format!("test {:.2}%, ", 100.0 * s),
        (Some(s), false) => format!("test RMSE {s:.4}, "),
        (None, _) => String::new(),
    };
    println!(
        "seed {}: {test}{scored} {dev} (best epoch {} of {}; {:.1} s training) -> {}",
        run.seed,
        run.best_epoch,
        run.epochs,
        run.train_seconds,
        dir.display()
    );
}

/// `attend eval` for a sequence model.
pub fn eval(model: &Path, input: &Path, json: bool) -> Result<()> {
    let loaded = checkpoint::load::<SequenceModel>(model)?;
    let set = read(input)?;
    if set.target == Target::Unlabelled {
        bail!("{}: has no labels to score against (attend predict labels it)", input.display());
    }
    let data = encoded(&loaded, &set, MAX_DENSE, input)?;
    let t0 = Instant::now();
    let r = loaded.model.evaluate(&data, &loaded.data)?;
    let secs = t0.elapsed().as_secs_f64();
    if json {
        let mut j = r.to_json();
        j["seconds"] = secs.into();
        println!("{}", serde_json::to_string_pretty(&j)?);
        return Ok(());
    }
    println!("{}: {} sequences, {} vectors, {:.2} s", input.display(), set.series.len(), set.vectors(), secs);
    println!("{}", r.summary());
    if r.target != Target::SequenceValue {
        if r.unseen > 0 {
            println!("({} gold labels are classes the model never saw in training; scored as wrong)", r.unseen);
        }
        println!("{:<16} {:>7} {:>9} {:>7} {:>7}", "class", "gold", "precision", "recall", "f1");
        for c in &r.per_class {
            println!("{:<16} {:>7} {:>8.2}% {:>6.2}% {:>6.2}%", c.class, c.gold, 100.0 * c.precision(), 100.0 * c.recall(), 100.0 * c.f1());
        }
    }
    Ok(())
}

/// `set` (read from `input`) as the model's inputs, refusing sequences
/// longer than `limit` under dense attention in the words of `attend predict`.
fn encoded(
    loaded: &checkpoint::Loaded<SequenceModel>,
    set: &SeriesSet,
    limit: usize,
    input: &Path,
) -> Result<Vec<attend::models::sequence::input::Encoded>> {
    loaded.encode(set, limit).map_err(|e| common::dense_limit_in_flags(e, input, "--max-dense-vectors", "vectors"))
}

/// `attend predict`: a label per sequence or per vector.
/// What `attend predict` was asked for a sequence model.
pub struct PredictOptions<'a> {
    pub model: &'a Path,
    pub input: &'a Path,
    pub output: Option<&'a Path>,
    pub format: PredictFormat,
    pub window: Option<usize>,
    pub max_dense_vectors: usize,
    pub stats: bool,
}

pub fn predict(args: PredictOptions) -> Result<()> {
    let input = args.input;
    let started = Instant::now();
    let mut loaded = checkpoint::load::<SequenceModel>(args.model)?;
    if args.window.is_some() {
        loaded.model.set_window(args.window)?;
    }
    let chunks = series::read_chunks(input, series::CHUNK_VALUES)?;
    let (mut sequences, mut vectors, mut longest, mut secs) = (0, 0, 0, 0.0);
    let name = |c: u32| loaded.class_name(c).to_string();
    let mut writer = PredictionWriter::new(args.format, loaded.data.target);
    // A chunk of series at a time: read, encoded, predicted, written, dropped.
    common::write_output(args.output, |out| {
        for set in chunks {
            let set = set?;
            let data = encoded(&loaded, &set, args.max_dense_vectors, input)?;
            let t0 = Instant::now();
            let outputs = loaded.model.predict(&data, &loaded.data)?;
            secs += t0.elapsed().as_secs_f64();
            writer.write(out, &set, &outputs, &name)?;
            (sequences, vectors, longest) = (sequences + set.series.len(), vectors + set.vectors(), longest.max(set.length_range().1));
        }
        writer.finish(out)
    })?;
    if args.stats {
        let rss = attend::memory::peak_rss_bytes().map_or("unknown".to_string(), attend::memory::human_bytes);
        eprintln!(
            "labelled {sequences} sequence(s), {vectors} vectors (longest {longest}) in {secs:.2} s ({:.0} vectors/s); total {:.2} s; peak RSS {rss}",
            vectors as f64 / secs.max(1e-9),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Writes a label (or number, or labels) per sequence in `format`, a
/// chunk of sequences at a time, numbering them on across chunks.
struct PredictionWriter {
    format: PredictFormat,
    target: Target,
    /// The next sequence's number.
    next: usize,
    /// Whether the TSV header or the JSON array's opening is written.
    opened: bool,
}

impl PredictionWriter {
    fn new(format: PredictFormat, target: Target) -> Self {
        PredictionWriter { format, target, next: 0, opened: false }
    }

    fn open(&mut self, out: &mut dyn Write) -> Result<()> {
        if !self.opened {
            match self.format {
                PredictFormat::Tsv if self.target == Target::VectorClass => writeln!(out, "sequence\tline\tposition\tprediction")?,
                PredictFormat::Tsv => writeln!(out, "sequence\tline\tprediction")?,
                PredictFormat::Json => write!(out, "[")?,
            }
            self.opened = true;
        }
        Ok(())
    }

    fn write(&mut self, out: &mut dyn Write, set: &SeriesSet, outputs: &[Output], name: &dyn Fn(u32) -> String) -> Result<()> {
        let per_vector = self.target == Target::VectorClass;
        self.open(out)?;
        for (k, (s, o)) in set.series.iter().zip(outputs).enumerate() {
            let i = self.next + k;
            match self.format {
                PredictFormat::Tsv => match o {
                    Output::Value(v) => writeln!(out, "{i}\t{}\t{v}", s.line)?,
                    Output::Classes(c) if per_vector => {
                        for (t, &k) in c.iter().enumerate() {
                            writeln!(out, "{i}\t{}\t{t}\t{}", s.line, name(k))?;
                        }
                    }
                    Output::Classes(c) => writeln!(out, "{i}\t{}\t{}", s.line, name(c[0]))?,
                },
                PredictFormat::Json => {
                    let item = match o {
                        Output::Value(v) => serde_json::json!({ "sequence": i, "line": s.line, "value": v }),
                        Output::Classes(c) if per_vector => {
                            serde_json::json!({ "sequence": i, "line": s.line, "labels": c.iter().map(|&k| name(k)).collect::<Vec<_>>() })
                        }
                        Output::Classes(c) => serde_json::json!({ "sequence": i, "line": s.line, "label": name(c[0]) }),
                    };
                    if i > 0 {
                        write!(out, ",")?;
                    }
                    serde_json::to_writer(&mut *out, &item)?;
                }
            }
        }
        self.next += set.series.len();
        Ok(())
    }

    /// Ends the output (the JSON array's close).
    fn finish(&mut self, out: &mut dyn Write) -> Result<()> {
        self.open(out)?;
        if self.format == PredictFormat::Json {
            writeln!(out, "]")?;
        }
        Ok(())
    }
}

/// Heatmaps are drawn for sequences up to this many inputs (the JSON has any length).
const MAX_HEATMAP: usize = 400;

/// `attend attention` for a sequence model: who attends to whom in sequence `index` of `input`.
pub fn attention(model_dir: &Path, input: &Path, index: usize, out: &Path) -> Result<()> {
    let loaded = checkpoint::load::<SequenceModel>(model_dir)?;
    if loaded.model.config.encoder.kind == EncoderKind::Rnn {
        bail!("{} is a BiLSTM model: it has no attention weights to show", model_dir.display());
    }
    let set = read(input)?;
    let (maps, said) = attend::api::attention::sequence_maps(&loaded, &set, index)?;
    let series = &set.series[index];
    println!("sequence {index} (line {}) of {}: {} vectors; predicted {said}", series.line, input.display(), series.len);
    if maps.words.len() > MAX_HEATMAP {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let path = out.join("attention.json");
        std::fs::write(&path, serde_json::to_string(&maps)?).with_context(|| format!("writing {}", path.display()))?;
        println!(
            "{} inputs are too many to draw (up to {MAX_HEATMAP}; --patch shortens signals): weights in {}",
            maps.words.len(),
            path.display()
        );
        return Ok(());
    }
    let files = attend_cli::viz::write_heatmaps(&maps, out)?;
    println!("{} files in {}", files.len(), out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use attend::data::series::{Label, Series};

    fn set(n: usize, from: usize) -> SeriesSet {
        let series = (0..n).map(|i| Series { values: vec![0.0; 2], len: 2, label: Label::None, line: from + i }).collect();
        SeriesSet { path: "x".into(), name: None, dims: 1, target: Target::Unlabelled, classes: Vec::new(), series }
    }

    /// Written a chunk at a time, predictions are the bytes written at once.
    #[test]
    fn chunks_write_what_the_whole_writes() {
        let name = |c: u32| format!("c{c}");
        let outputs = |n: usize, per_vector: bool| -> Vec<Output> {
            (0..n).map(|i| Output::Classes(if per_vector { vec![i as u32, 1] } else { vec![i as u32] })).collect()
        };
        for format in [PredictFormat::Tsv, PredictFormat::Json] {
            for target in [Target::SequenceClass, Target::VectorClass] {
                let per_vector = target == Target::VectorClass;
                let write = |sizes: &[usize]| {
                    let mut w = PredictionWriter::new(format, target);
                    let mut out = Vec::new();
                    let mut from = 0;
                    for &n in sizes {
                        let mut o = outputs(from + n, per_vector);
                        w.write(&mut out, &set(n, from), &o.split_off(from), &name).unwrap();
                        from += n;
                    }
                    w.finish(&mut out).unwrap();
                    String::from_utf8(out).unwrap()
                };
                let whole = write(&[5]);
                assert_eq!(write(&[2, 0, 3]), whole);
                assert_eq!(write(&[1, 1, 1, 1, 1]), whole);
                assert_eq!(write(&[]), write(&[0]));
                if format == PredictFormat::Json {
                    let v: serde_json::Value = serde_json::from_str(&whole).unwrap();
                    assert_eq!(v.as_array().unwrap().len(), 5);
                    assert_eq!(v[4]["sequence"], 4);
                    assert_eq!(write(&[]), "[]\n");
                } else {
                    assert_eq!(whole.lines().count(), 1 + if per_vector { 10 } else { 5 });
                }
            }
        }
    }
}
