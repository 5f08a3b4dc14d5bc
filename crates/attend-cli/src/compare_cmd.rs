//! `attend compare`: self-attention against the BiLSTM baseline, and what
//! truncating attention costs, from runs it makes itself.

use anyhow::{bail, Context, Result};
use attend::config::TrainConfig;
use attend::data::conllu::{self, Sentence};
use attend::data::synthetic::repeat_task;
use attend::data::vocab::TaggerVocab;
use attend::models::tagger::load::LoadedTagger;
use attend::models::tagger::task::train_tagger;
use attend::models::{EncoderKind, Tagger, TaggerConfig};
use attend::nn::position::PositionKind;
use attend::nn::sequence::EncoderConfig;
use attend::train::Silent;
use attend_cli::compare::{accuracy_by_distance, latency_ms, latency_plot, throughput, DistanceRow};
use clap::Args;
use serde_json::json;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[derive(Args)]
pub struct CompareArgs {
    /// Treebank directory (train, dev and test CoNLL-U).
    #[arg(long)]
    treebank: PathBuf,
    /// Where the models, compare.json, compare.md and latency.png go.
    #[arg(long, default_value = "runs/compare")]
    out: PathBuf,
    /// Use this trained attention tagger instead of training one in OUT/attention.
    #[arg(long, value_name = "DIR")]
    attention_model: Option<PathBuf>,
    /// Use this trained BiLSTM tagger instead of training one in OUT/rnn.
    #[arg(long, value_name = "DIR")]
    rnn_model: Option<PathBuf>,
    /// Epochs for the two EWT trainings (default: the training default).
    /// A finished run already in OUT/attention or OUT/rnn is reused.
    #[arg(long)]
    epochs: Option<usize>,
    /// Sequence lengths for the latency rows.
    #[arg(long, value_delimiter = ',', default_value = "16,64,256,1024,4096,8192")]
    lengths: Vec<usize>,
    /// Window (words each side) of the truncated-attention rows.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Words of the single long input tagged by window attention and the
    /// BiLSTM (peak RSS of a separate `attend tag` process); 0 skips.
    #[arg(long, default_value_t = 100_000)]
    long_words: usize,
    /// Training sequences of the long-range synthetic task; 0 skips it.
    #[arg(long, default_value_t = 4000)]
    synthetic_train: usize,
    /// Length of the synthetic sequences.
    #[arg(long, default_value_t = 64)]
    synthetic_length: usize,
    /// Epochs of each synthetic-task model.
    #[arg(long, default_value_t = 20)]
    synthetic_epochs: usize,
    /// Positional encoding of the synthetic task's attention models.
    #[arg(long, default_value = "rope")]
    synthetic_position: PositionKind,
    /// Window (words each side) of the synthetic task's truncated model.
    #[arg(long, default_value_t = 4)]
    synthetic_window: usize,
    /// Training speed is measured in this run (not read from the training
    /// logs, which other work on the machine may have slowed) by one epoch
    /// of each architecture over this many training sentences; 0 skips.
    #[arg(long, default_value_t = 2000)]
    speed_sentences: usize,
    /// Repeat each timing for at least this long (median of at least 3 runs).
    #[arg(long, default_value_t = 1.0)]
    min_seconds: f64,
}

/// Trains a tagger with `attend train tagger` in its own process (same
/// progress, checkpointing and Ctrl-C handling), unless `dir` already holds
/// a finished run.
fn ensure_trained(treebank: &Path, dir: &Path, encoder: &str, epochs: Option<usize>) -> Result<()> {
    if dir.join("train_report.json").exists() {
        eprintln!("compare: reusing the finished {encoder} run in {}", dir.display());
        return Ok(());
    }
    eprintln!("compare: training the {encoder} tagger into {}", dir.display());
    let exe = std::env::current_exe().context("finding the attend executable")?;
    let mut cmd = Command::new(exe);
    cmd.args(["--threads", &attend::rayon::current_num_threads().to_string(), "train", "tagger", "--encoder", encoder]);
    cmd.arg("--treebank").arg(treebank).arg("--out").arg(dir);
    if let Some(e) = epochs {
        cmd.args(["--epochs", &e.to_string()]);
    }
    let status = cmd.status().context("running attend train tagger")?;
    if !status.success() {
        bail!("training the {encoder} tagger failed ({status}); its checkpoint, if any, is in {}", dir.display());
    }
    Ok(())
}

/// Training tokens per second of a fresh model with `config`: one epoch
/// over `train` (dev scoring not timed).
fn train_speed(config: &TaggerConfig, vocab: &TaggerVocab, train: &[Sentence], dev: &[Sentence]) -> Result<f64> {
    let mut model = Tagger::new(config.clone(), 1)?;
    let cfg = TrainConfig { epochs: 1, ..TrainConfig::default() };
    let summary = train_tagger(&mut model, vocab, train, dev, &cfg, None, &mut Silent)?;
    Ok(summary.train_tokens as f64 / summary.train_seconds)
}

/// Runs `attend tag --stats` on `input` in a separate process; returns its
/// stats line (words/s, peak RSS) or its error.
fn tag_process(model: &Path, input: &Path, extra: &[&str]) -> Result<(bool, String)> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .args(["--threads", &attend::rayon::current_num_threads().to_string(), "tag", "--format", "text", "--stats"])
        .arg("--model")
        .arg(model)
        .arg("--input")
        .arg(input)
        .args(["--output", "/dev/null"])
        .args(extra)
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().rfind(|l| l.starts_with("tagged ") || l.starts_with("error:")).unwrap_or("").to_string();
    Ok((out.status.success(), line))
}

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

pub fn compare(args: CompareArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let files = conllu::find_treebank(&args.treebank)?;
    let Some(test_path) = files.test.clone() else { bail!("{}: no *-ud-test.conllu to score on", args.treebank.display()) };
    let attention_dir = args.attention_model.clone().unwrap_or_else(|| args.out.join("attention"));
    let rnn_dir = args.rnn_model.clone().unwrap_or_else(|| args.out.join("rnn"));
    if args.attention_model.is_none() {
        ensure_trained(&args.treebank, &attention_dir, "attention", args.epochs)?;
    }
    if args.rnn_model.is_none() {
        ensure_trained(&args.treebank, &rnn_dir, "rnn", args.epochs)?;
    }
    let attention = attend::checkpoint::load::<Tagger>(&attention_dir)?;
    let rnn = attend::checkpoint::load::<Tagger>(&rnn_dir)?;
    if attention.model.config.encoder.kind != EncoderKind::Attention || rnn.model.config.encoder.kind != EncoderKind::Rnn {
        bail!("--attention-model must be an attention tagger and --rnn-model a BiLSTM (--encoder rnn) tagger");
    }
    let mut windowed = attend::checkpoint::load::<Tagger>(&attention_dir)?;
    windowed.model.set_window(Some(args.window))?;
    let test = conllu::read_file(&test_path)?;
    let mut speeds = [None, None];
    if args.speed_sentences > 0 {
        let train = conllu::read_file(&files.train)?;
        let dev = conllu::read_file(&files.dev)?;
        let (train, dev) = (&train[..args.speed_sentences.min(train.len())], &dev[..dev.len().min(50)]);
        for (k, m) in [&attention, &rnn].into_iter().enumerate() {
            eprintln!("compare: training speed, {:?} encoder, one epoch of {} sentences", m.model.config.encoder.kind, train.len());
            speeds[k] = Some(train_speed(&m.model.config, &m.data, train, dev)?);
        }
    }
    let threads = attend::rayon::current_num_threads();
    let mut md = String::new();
    let machine = format!("{threads} threads, {:?} kernels", attend::attend_kernels::Isa::detect());
    writeln!(md, "Measured by `attend compare` ({machine}).\n")?;

    // Accuracy and throughput on EWT.
    eprintln!("compare: accuracy and tagging throughput on {}", test_path.display());
    let models: Vec<(String, &LoadedTagger)> = vec![
        ("self-attention (dense)".into(), &attention),
        (format!("self-attention, window {}", args.window), &windowed),
        ("BiLSTM".into(), &rnn),
    ];
    let mut rows = Vec::new();
    writeln!(md, "| EWT test | UPOS | unknown words | training tok/s | tagging tok/s (batch) | parameters |\n|---|---|---|---|---|---|")?;
    for (k, (name, m)) in models.iter().enumerate() {
        let r = m.model.evaluate(&test, &m.data, attend::models::EVAL_BATCH_TOKENS)?;
        let speed = throughput(&m.model, &m.data, &test, attend::models::EVAL_BATCH_TOKENS, args.min_seconds)?;
        let train = match k {
            0 => speeds[0],
            2 => speeds[1],
            _ => None,
        };
        writeln!(
            md,
            "| {name} | {} | {} | {} | {speed:.0} | {:.2} M |",
            pct(r.accuracy()),
            pct(r.unknown_accuracy()),
            train.map_or("–".into(), |t| format!("{t:.0}")),
            m.model.params.num_scalars() as f64 / 1e6
        )?;
        rows.push(json!({ "model": name, "upos": r.accuracy(), "unknown": r.unknown_accuracy(), "train_tokens_per_sec": train, "tag_tokens_per_sec": speed }));
    }
    let ratio = rows[0]["tag_tokens_per_sec"].as_f64().unwrap_or(0.0) / rows[2]["tag_tokens_per_sec"].as_f64().unwrap_or(1.0);
    writeln!(md, "\nTagging throughput, dense self-attention / BiLSTM, same run: **{ratio:.2}x**.")?;
    if let [Some(a), Some(r)] = speeds {
        writeln!(md, "Training throughput (one epoch of {} sentences each, same run): **{:.2}x**.", args.speed_sentences, a / r)?;
    }

    // Latency by length.
    let words: Vec<String> = test.iter().flat_map(|s| s.words().map(|t| t.form.clone()).collect::<Vec<_>>()).collect();
    let mut series: Vec<(String, Vec<(usize, f64)>)> = models.iter().map(|(n, _)| (n.to_string(), Vec::new())).collect();
    let names: Vec<&str> = models.iter().map(|m| m.0.as_str()).collect();
    writeln!(md, "\n| one sequence of N words (ms) | {} |\n|---|---|---|---|", names.join(" | "))?;
    for &n in &args.lengths {
        let seq: Vec<String> = words.iter().cycle().take(n).cloned().collect();
        let mut cells = Vec::new();
        for (k, (_, m)) in models.iter().enumerate() {
            let ms = latency_ms(&m.model, &m.data, &seq, 3, args.min_seconds.min(0.5))?;
            series[k].1.push((n, ms));
            cells.push(format!("{ms:.2}"));
        }
        eprintln!("compare: latency N={n}: {}", cells.join(" / "));
        writeln!(md, "| {n} | {} |", cells.join(" | "))?;
    }
    let plot = args.out.join("latency.png");
    latency_plot(&plot, &format!("Tagging one sequence: latency by length ({machine})"), &series)?;

    // One very long input, each in its own process for an honest peak RSS.
    let mut long = Vec::new();
    if args.long_words > 0 {
        let path = args.out.join(format!("long-{}.txt", args.long_words));
        let text: Vec<&str> = words.iter().cycle().take(args.long_words).map(String::as_str).collect();
        std::fs::write(&path, text.join(" ") + "\n")?;
        writeln!(md, "\n| one input of {} words | result |\n|---|---|", args.long_words)?;
        let window = args.window.to_string();
        for (name, model, extra) in [
            ("self-attention, dense", &attention_dir, vec![]),
            ("self-attention, window", &attention_dir, vec!["--window", window.as_str()]),
            ("BiLSTM", &rnn_dir, vec![]),
        ] {
            let (ok, line) = tag_process(model, &path, &extra)?;
            eprintln!("compare: {name}: {line}");
            writeln!(md, "| {name} | {} |", line.replace('|', "/"))?;
            long.push(json!({ "model": name, "ok": ok, "result": line }));
        }
        std::fs::remove_file(&path).ok();
    }

    // The long-range synthetic task.
    let mut synthetic = Vec::new();
    if args.synthetic_train > 0 {
        let len = args.synthetic_length;
        let symbols = ((len as f64 - 1.0) / std::f64::consts::LN_2).round() as usize; // about half the positions repeat
        let (train, dev, test) = (
            repeat_task(args.synthetic_train, len, symbols, 11),
            repeat_task(args.synthetic_train / 10 + 1, len, symbols, 12),
            repeat_task(1000, len, symbols, 13),
        );
        let vocab = TaggerVocab::build(&train);
        let tiny = |kind: EncoderKind, window: Option<usize>| {
            let encoder = EncoderConfig {
                kind,
                d_model: 64,
                heads: 4,
                layers: 2,
                ff_dim: 128,
                dropout: 0.0,
                attention_dropout: 0.0,
                position: args.synthetic_position,
                window,
                ..EncoderConfig::default()
            };
            TaggerConfig { encoder, word_dim: 32, char_dim: 8, char_filters: 16, ..TaggerConfig::default() }.sized_for(&vocab)
        };
        let cfg = TrainConfig {
            epochs: args.synthetic_epochs,
            batch_tokens: 2048,
            warmup_steps: 100,
            lr: 0.002,
            word_dropout: 0.0,
            seed: 1,
            ..TrainConfig::default()
        };
        let edges: Vec<usize> = [2, 4, 8, 16, 32].into_iter().filter(|&e| e < len).collect();
        let w = args.synthetic_window;
        writeln!(
            md,
            "\nLong-range task: {} sequences of {len} symbols from {symbols}; each position is tagged by whether its symbol appears \
             anywhere else. Accuracy by distance to the nearest repeat (`once`: no repeat), test set of 1000 sequences:\n",
            args.synthetic_train
        )?;
        let mut table: Vec<(String, Vec<DistanceRow>)> = Vec::new();
        for (name, config) in [
            ("self-attention (dense)".to_string(), tiny(EncoderKind::Attention, None)),
            (format!("self-attention, window {w}"), tiny(EncoderKind::Attention, Some(w))),
            ("BiLSTM".to_string(), tiny(EncoderKind::Rnn, None)),
        ] {
            let t0 = Instant::now();
            let mut model = Tagger::new(config, 5)?;
            train_tagger(&mut model, &vocab, &train, &dev, &cfg, None, &mut Silent)?;
            let rows = accuracy_by_distance(&model, &vocab, &test, &edges)?;
            let total: usize = rows.iter().map(|r| r.tokens).sum();
            let correct: usize = rows.iter().map(|r| r.correct).sum();
            eprintln!("compare: synthetic {name}: {} overall ({:.0} s)", pct(correct as f64 / total as f64), t0.elapsed().as_secs_f64());
            synthetic.push(json!({ "model": name, "overall": correct as f64 / total as f64, "by_distance": rows }));
            table.push((name, rows));
        }
        let header: Vec<String> = table[0].1.iter().map(|r| format!("{} ({})", r.bucket, r.tokens)).collect();
        writeln!(md, "| model | {} |\n|---|{}", header.join(" | "), "---|".repeat(header.len()))?;
        for (name, rows) in &table {
            writeln!(md, "| {name} | {} |", rows.iter().map(|r| pct(r.accuracy())).collect::<Vec<_>>().join(" | "))?;
        }
    }

    let doc = json!({
        "machine": machine,
        "treebank_test": test_path,
        "models": rows,
        "throughput_ratio_attention_to_bilstm": ratio,
        "latency_ms": series.iter().map(|(n, p)| json!({ "model": n, "points": p })).collect::<Vec<_>>(),
        "long_input": long,
        "synthetic": synthetic,
    });
    std::fs::write(args.out.join("compare.json"), serde_json::to_string_pretty(&doc)?)?;
    std::fs::write(args.out.join("compare.md"), &md)?;
    println!("{md}");
    println!("wrote {}, compare.json and compare.md in {}", plot.display(), args.out.display());
    Ok(())
}
