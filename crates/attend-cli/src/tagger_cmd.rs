//! `attend train tagger`, `attend eval`, `attend tag`.

use crate::progress::{self, Progress};
use crate::settings::{self, ModelArgs, TrainArgs};
use anyhow::{bail, Context, Result};
use attend::checkpoint::{self, ModelKind};
use attend::config::TaggerSettings;
use attend::data::conllu::{self, Sentence};
use attend::data::vocab::{Column, TaggerVocab};
use attend::models::tagger::load::load_tagger;
use attend::models::tagger::task::{load_training, train_tagger_with, TaggerRun};
use attend::models::{Tagger, EVAL_BATCH_TOKENS};
use attend::train::RunOptions;
use clap::{Args, ValueEnum};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
pub struct TrainTaggerArgs {
    #[command(flatten)]
    data: crate::treebank_args::TreebankArgs,
    /// Where the checkpoint goes: the best model so far, plus resume/ with
    /// the latest state, rewritten atomically after every epoch (and on
    /// Ctrl-C).
    #[arg(long, default_value = "runs/tagger")]
    out: PathBuf,
    /// Continue the interrupted run in this checkpoint directory, with its
    /// saved settings, vocabulary, optimizer, schedule, data order and random
    /// state (the result equals an uninterrupted run). Give no model or
    /// training flags with it, except --max-minutes.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "config"])]
    resume: Option<PathBuf>,
    /// TOML file with [model] and [train] tables; flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Columns to predict, each with its own head on the shared encoder:
    /// upos, xpos, feats (FEATS as whole strings: `Number=Sing|Person=3`).
    /// UPOS is always among them. A column the training file leaves
    /// empty (all `_`) is skipped with a note.
    #[arg(long, value_delimiter = ',', default_value = "upos,xpos,feats", value_name = "COLUMNS", conflicts_with = "resume")]
    predict: Vec<Column>,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    train: TrainArgs,
    /// Do not train the raw-text segmenter after the tagger (by default
    /// it goes to OUT/segmenter, and the test file, if any, is then also
    /// scored from its raw text with the CoNLL 2018 metrics).
    #[arg(long)]
    no_segmenter: bool,
    #[command(flatten)]
    segmenter: crate::segment_cmd::SegmenterFlags,
}

#[derive(Args)]
pub struct EvalArgs {
    /// Model directory written by `attend train tagger` or `attend train sequence`.
    #[arg(long)]
    pub model: PathBuf,
    /// Gold data: CoNLL-U with UPOS tags (tagger); labelled .ts, .npz or
    /// vector text (sequence model).
    #[arg(long)]
    pub input: PathBuf,
    /// Print the full report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum InputFormat {
    /// CoNLL-U if the input starts with a comment or a 10-column line;
    /// otherwise raw text when the model has a segmenter, else horizontal.
    Auto,
    /// CoNLL-U: its words are tagged as they are (gold tokenization).
    Conllu,
    /// Raw text: paragraphs end at blank lines; the segmenter finds
    /// tokens, multiword tokens and sentences. Read and written a
    /// paragraph at a time (constant memory on any input).
    Raw,
    /// Tokenized text, one sentence per line, tokens separated by spaces.
    #[value(alias = "text")]
    Horizontal,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum OutputFormat {
    /// CoNLL-U with `# sent_id`, `# text`, `SpaceAfter=No`, multiword
    /// tokens, UPOS (XPOS, FEATS when the model predicts them). Without a parser, HEAD and DEPREL hold a flat tree
    /// (word 1 is the root, the others depend on it as `dep`), so standard
    /// tools (the UD evaluation script, validators) read the file.
    Conllu,
    /// One JSON object per line and sentence: id, text, and its tokens
    /// with their words, UPOS, and XPOS and FEATS when the model predicts
    /// them and they are not `_`.
    Json,
    /// One sentence per line, its words separated by spaces (as UDPipe writes it).
    Horizontal,
}

#[derive(Args)]
pub struct TagArgs {
    /// Model directory written by `attend train tagger` (raw text needs
    /// the segmenter it trains into DIR/segmenter).
    #[arg(long)]
    model: PathBuf,
    /// Input file; stdin when absent or `-`.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Output file; stdout when absent or `-`. A file is written beside its
    /// target and moved in place at the end (a failed run leaves an existing
    /// file as it was); a device or pipe such as /dev/null is written as it is.
    #[arg(long)]
    output: Option<PathBuf>,
    /// What the input is.
    #[arg(long, value_enum, default_value = "auto")]
    format: InputFormat,
    /// What to write.
    #[arg(long, value_enum, default_value = "conllu")]
    output_format: OutputFormat,
    /// Truncated attention for this run: each word sees N words on each
    /// side (linear cost; for long inputs). A sequence longer than 4096
    /// words is then tagged in slices with N x layers words of context on
    /// each side: the same tags, in memory bounded by the slice.
    /// Attention taggers only.
    #[arg(long, value_name = "N")]
    window: Option<usize>,
    /// Longest sequence tagged with dense attention; longer ones are
    /// refused with a pointer to --window. Raw text: a sentence the
    /// segmenter finds longer than this is cut into pieces of this many tokens.
    #[arg(long, value_name = "WORDS", default_value_t = attend::models::MAX_DENSE_WORDS)]
    max_dense_words: usize,
    /// Print words, time, speed and peak memory (RSS) to stderr at the end.
    #[arg(long)]
    stats: bool,
}

fn read_conllu(path: &Path) -> Result<Vec<Sentence>> {
    Ok(conllu::read_file(path)?)
}

fn column_list(columns: &[Column]) -> String {
    columns.iter().map(|c| c.name()).collect::<Vec<_>>().join(",")
}

/// `UPOS 95.48%, XPOS 95.10%, ...`: the report's CoNLL 2018 metrics.
fn metrics_line(r: &attend::models::EvalReport) -> String {
    r.metrics().iter().map(|(name, a)| format!("{name} {:.2}%", 100.0 * a)).collect::<Vec<_>>().join(", ")
}

pub fn train(args: TrainTaggerArgs) -> Result<()> {
    // Settings first: a bad flag or config file is reported before any data is read.
    let settings = match args.resume {
        Some(_) => None,
        None => Some(settings::resolve::<TaggerSettings>(args.config.as_deref(), &args.model, &args.train)?),
    };
    let data = args.data.read()?;
    let (train, dev) = (&data.train, &data.dev);
    let (mut model, vocab, tcfg, out, resume) = match &args.resume {
        Some(dir) => {
            settings::refuse_on_resume(dir, &args.model, &args.train)?;
            let TaggerRun { model, vocab, mut train, resume } = load_training(dir)?;
            if let Some(m) = args.train.max_minutes() {
                train.max_minutes = Some(m);
            }
            eprintln!("resuming {} at epoch {}, batch {} (step {})", dir.display(), resume.state.epoch, resume.state.next_batch, resume.optimizer.step);
            (model, vocab, train, dir.clone(), Some(resume))
        }
        None => {
            let settings = settings.expect("resolved above");
            if !args.predict.contains(&Column::Upos) {
                bail!("--predict must include upos (the tagger always predicts UPOS), got {}", column_list(&args.predict));
            }
            let vocab = TaggerVocab::build_for(train, &args.predict);
            for c in args.predict.iter().filter(|c| vocab.column(**c).is_none()) {
                eprintln!("note: {} has no {} labels (only `_`): not predicting {}", data.train_path.display(), c.name(), c.name());
            }
            let config = settings.model.sized_for(&vocab);
            let model = Tagger::new(config, settings.train.seed)?;
            (model, vocab, settings.train, args.out.clone(), None)
        }
    };
    eprintln!(
        "{}\ntrain {} sentences / {} words, dev {} sentences; {} word types, {} chars; predicting {}; {} parameters; {} threads",
        data.describe(),
        train.len(),
        train.iter().map(Sentence::word_count).sum::<usize>(),
        dev.len(),
        vocab.words.len(),
        vocab.chars.len(),
        vocab.columns().iter().map(|&c| format!("{} ({})", c.name(), vocab.column(c).map_or(0, |v| v.len()))).collect::<Vec<_>>().join(", "),
        model.params.num_scalars(),
        attend::rayon::current_num_threads()
    );
    let interrupt = progress::interrupt_flag()?;
    // With XPOS or FEATS, model selection uses the mean of the columns' dev accuracies.
    let dev_label = match (vocab.xpos.is_some(), vocab.feats.is_some()) {
        (false, false) => "dev UPOS",
        (true, false) => "dev mean of UPOS/XPOS",
        (false, true) => "dev mean of UPOS/UFeats",
        (true, true) => "dev mean of UPOS/XPOS/UFeats",
    };
    let mut progress = Progress::new("tok", dev_label, 1);
    let options = RunOptions { checkpoint_dir: Some(&out), resume, interrupt: Some(interrupt) };
    let summary = match train_tagger_with(&mut model, &vocab, train, dev, &tcfg, options, &mut progress) {
        Err(attend::Error::Interrupted(why)) => progress::exit_interrupted(&mut progress, &why),
        other => other?,
    };
    progress.finish();
    if let Some(why) = &summary.stopped_early {
        eprintln!("stopped early: {why}");
    }
    eprintln!(
        "best dev {} at epoch {}; {} steps, {:.0} train tok/s, {:.1} min; model in {}",
        metrics_line(&summary.best_dev),
        summary.best_epoch,
        summary.steps,
        summary.train_tokens as f64 / summary.train_seconds,
        summary.train_seconds / 60.0,
        out.display()
    );
    let mut report = serde_json::json!({ "train": summary, "dev": summary.best_dev.to_json() });
    if let Some(test_path) = &data.test_path {
        let test = read_conllu(test_path)?;
        let t0 = Instant::now();
        let r = model.evaluate(&test, &vocab, EVAL_BATCH_TOKENS)?;
        let secs = t0.elapsed().as_secs_f64();
        eprintln!(
            "test {}: {}, unknown words UPOS {:.2}% ({} tokens), tagging {:.0} tok/s",
            test_path.display(),
            metrics_line(&r),
            100.0 * r.unknown_accuracy(),
            r.unknown_tokens,
            r.tokens as f64 / secs
        );
        report["test"] = r.to_json();
        report["test_tagging_tokens_per_sec"] = serde_json::json!(r.tokens as f64 / secs);
    }
    let path = out.join("train_report.json");
    let write_report = |report: &serde_json::Value| -> Result<()> {
        std::fs::write(&path, serde_json::to_string_pretty(report)?).with_context(|| format!("writing {}", path.display()))
    };
    write_report(&report)?;
    if args.no_segmenter {
        return Ok(());
    }
    let segmenter_dir = out.join("segmenter");
    let resume_segmenter = segmenter_dir.join("resume/state.json").is_file();
    crate::segment_cmd::run(&data, &segmenter_dir, &args.segmenter, resume_segmenter, tcfg.seed)?;
    if let Some(test_path) = &data.test_path {
        let scores = crate::text_cmd::score_raw_text(&model, &vocab, &segmenter_dir, test_path)?;
        let line: Vec<String> = ["Tokens", "Sentences", "Words", "UPOS"].iter().map(|m| format!("{m} {:.2}", 100.0 * scores.get(m).map_or(0.0, |s| s.f1()))).collect();
        eprintln!("test {} from raw text (CoNLL 2018 F1): {}", test_path.display(), line.join(", "));
        report["test_raw_text"] = scores.to_json();
        write_report(&report)?;
    }
    Ok(())
}

pub fn eval(args: EvalArgs) -> Result<()> {
    let loaded = load_tagger(&args.model)?;
    let gold = read_conllu(&args.input)?;
    attend::models::tagger::eval::check_gold_tags(&gold, &loaded.vocab, &args.input)?;
    let t0 = Instant::now();
    let r = loaded.model.evaluate(&gold, &loaded.vocab, EVAL_BATCH_TOKENS)?;
    let secs = t0.elapsed().as_secs_f64();
    if args.json {
        let mut j = r.to_json();
        j["tokens_per_sec"] = serde_json::json!(r.tokens as f64 / secs);
        println!("{}", serde_json::to_string_pretty(&j)?);
        return Ok(());
    }
    println!("{}: {} tokens, {:.0} tok/s", args.input.display(), r.tokens, r.tokens as f64 / secs);
    for (name, a) in r.metrics() {
        println!("{:<18} {:6.2}%", format!("{name} accuracy"), 100.0 * a);
    }
    println!("unknown words UPOS {:6.2}%  ({} tokens)", 100.0 * r.unknown_accuracy(), r.unknown_tokens);
    println!("{:<8} {:>7} {:>9} {:>7} {:>7}", "tag", "gold", "precision", "recall", "f1");
    let j = r.to_json();
    for (tag, s) in j["per_tag"].as_object().expect("object") {
        println!(
            "{:<8} {:>7} {:>8.2}% {:>6.2}% {:>6.2}%",
            tag,
            s["gold"],
            100.0 * s["precision"].as_f64().unwrap_or(0.0),
            100.0 * s["recall"].as_f64().unwrap_or(0.0),
            100.0 * s["f1"].as_f64().unwrap_or(0.0)
        );
    }
    Ok(())
}

pub fn tag(args: TagArgs) -> Result<()> {
    let started = Instant::now();
    let mut loaded = load_tagger(&args.model)?;
    if args.window.is_some() {
        loaded.model.set_window(args.window)?;
    }
    let segmenter_dir = args.model.join("segmenter");
    let has_segmenter = segmenter_dir.join("config.json").is_file();
    let label = match args.input.as_deref() {
        Some(p) if p != Path::new("-") => p.to_path_buf(),
        _ => PathBuf::from("<stdin>"),
    };
    let mut input: Box<dyn std::io::BufRead> = match args.input.as_deref() {
        Some(p) if p != Path::new("-") => Box::new(std::io::BufReader::new(std::fs::File::open(p).with_context(|| format!("reading {}", p.display()))?)),
        _ => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    let format = match args.format {
        InputFormat::Auto => {
            let head = input.fill_buf().with_context(|| format!("reading {}", label.display()))?;
            if conllu::looks_like_conllu(&String::from_utf8_lossy(&head[..head.len().min(4096)])) {
                InputFormat::Conllu
            } else if has_segmenter {
                InputFormat::Raw
            } else {
                eprintln!(
                    "note: {} has no segmenter/ (train one with attend train segmenter --out {}): reading one sentence per line, tokens separated by spaces",
                    args.model.display(),
                    segmenter_dir.display()
                );
                InputFormat::Horizontal
            }
        }
        f => f,
    };
    let sink = OutputSink::for_path(args.output.as_deref());
    let mut out: Box<dyn Write> = match sink.write_path() {
        Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p).with_context(|| format!("writing {}", p.display()))?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let result = tag_into(&args, &mut loaded, input, &label, format, has_segmenter, &segmenter_dir, &mut out, started);
    drop(out);
    sink.finish(result)
}

/// Where `attend tag` writes. A regular file (or a new one) is written
/// beside its target and moved in place at the end, so a failed run leaves
/// an existing file as it was. Anything else that exists (`/dev/null`, a
/// pipe, a terminal) is written as it is: moving a file onto it would
/// replace the device or pipe with a plain file.
enum OutputSink {
    Stdout,
    Direct(PathBuf),
    Atomic { partial: PathBuf, target: PathBuf },
}

impl OutputSink {
    fn for_path(output: Option<&Path>) -> OutputSink {
        match output {
            None => OutputSink::Stdout,
            Some(p) if p == Path::new("-") => OutputSink::Stdout,
            Some(p) => match std::fs::metadata(p) {
                Ok(meta) if !meta.file_type().is_file() => OutputSink::Direct(p.to_path_buf()),
                _ => {
                    let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    let partial = p.with_file_name(format!(".{name}.partial-{}", std::process::id()));
                    OutputSink::Atomic { partial, target: p.to_path_buf() }
                }
            },
        }
    }

    /// The path to open for writing; `None` for standard output.
    fn write_path(&self) -> Option<&Path> {
        match self {
            OutputSink::Stdout => None,
            OutputSink::Direct(p) => Some(p),
            OutputSink::Atomic { partial, .. } => Some(partial),
        }
    }

    /// Moves a finished file in place, or removes a failed run's partial file.
    fn finish(self, result: Result<()>) -> Result<()> {
        match (self, result) {
            (OutputSink::Atomic { partial, target }, Ok(())) => {
                std::fs::rename(&partial, &target).with_context(|| format!("writing {}", target.display()))
            }
            (OutputSink::Atomic { partial, .. }, Err(e)) => {
                let _ = std::fs::remove_file(partial);
                Err(e)
            }
            (_, r) => r,
        }
    }
}

/// Tags `input` in `format` into `out`; `--stats` goes to stderr.
#[allow(clippy::too_many_arguments)]
fn tag_into(
    args: &TagArgs,
    loaded: &mut attend::models::tagger::load::LoadedTagger,
    mut input: Box<dyn std::io::BufRead>,
    label: &Path,
    format: InputFormat,
    has_segmenter: bool,
    segmenter_dir: &Path,
    out: &mut Box<dyn Write>,
    started: Instant,
) -> Result<()> {
    let (mut tag_secs, mut segment_secs) = (0.0, 0.0);
    let (mut sentences_done, mut words, mut longest) = (0usize, 0usize, 0usize);
    let mut tag_and_write = |sentences: &mut Vec<Sentence>, out: &mut dyn Write| -> Result<()> {
        let n = sentences.iter().map(Sentence::word_count).max().unwrap_or(0);
        loaded.model.check_dense_length(n, args.max_dense_words).with_context(|| format!("{}", label.display()))?;
        let t = Instant::now();
        loaded.model.tag(sentences, &loaded.vocab, attend::models::TAG_BATCH_TOKENS)?;
        tag_secs += t.elapsed().as_secs_f64();
        crate::text_cmd::write_sentences(out, sentences, args.output_format)?;
        sentences_done += sentences.len();
        words += sentences.iter().map(Sentence::word_count).sum::<usize>();
        longest = longest.max(n);
        Ok(())
    };
    if format == InputFormat::Raw {
        if !has_segmenter {
            bail!("{} has no segmenter/ to read raw text: train one with attend train segmenter --treebank DIR --out {} (or pass --format horizontal for tokenized text)", args.model.display(), segmenter_dir.display());
        }
        let segmenter = attend::models::segmenter::task::load(segmenter_dir)?;
        let mut raw = crate::text_cmd::RawTagger::new(&segmenter, args.max_dense_words);
        raw.run(input, label, |sentences| tag_and_write(sentences, out), &mut segment_secs)?;
    } else {
        // CoNLL-U and horizontal text are read whole: refuse a file that would not fit.
        if let Some(p) = args.input.as_deref().filter(|p| *p != Path::new("-")) {
            conllu::check_fits_in_memory(p)?;
        }
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes).with_context(|| format!("reading {}", label.display()))?;
        let mut sentences = if format == InputFormat::Conllu { conllu::parse_bytes(&bytes, label)? } else { conllu::parse_plain_text(&bytes, label)? };
        if sentences.is_empty() {
            bail!("{}: no sentences to tag", label.display());
        }
        tag_and_write(&mut sentences, out)?;
    }
    out.flush()?;
    if sentences_done == 0 {
        bail!("{}: no text to tag", label.display());
    }
    if args.stats {
        let rss = attend::memory::peak_rss_bytes().map_or("unknown".to_string(), attend::memory::human_bytes);
        let total = started.elapsed().as_secs_f64();
        let segmenting = if format == InputFormat::Raw { format!("segmenting {segment_secs:.2} s, ") } else { String::new() };
        eprintln!(
            "tagged {} sentence{}, {words} words (longest {longest}); {segmenting}tagging {tag_secs:.2} s ({:.0} words/s); total {total:.2} s ({:.0} words/s); peak RSS {rss}",
            sentences_done,
            if sentences_done == 1 { "" } else { "s" },
            words as f64 / tag_secs.max(1e-9),
            words as f64 / total.max(1e-9),
        );
    }
    Ok(())
}

#[derive(Args)]
pub struct AttentionArgs {
    /// Model directory written by `attend train tagger`, `attend train sequence` or `attend train graph`.
    #[arg(long)]
    model: PathBuf,
    /// Tagger: the sentence, whitespace-tokenized.
    #[arg(long, required_unless_present_any = ["node", "input"])]
    text: Option<String>,
    /// Sequence model: the file holding the sequence (.ts, .npz or vector text).
    #[arg(long, conflicts_with_all = ["text", "node"])]
    input: Option<PathBuf>,
    /// Sequence model: which sequence of --input (0 = the first).
    #[arg(long, default_value_t = 0, requires = "input")]
    index: usize,
    /// Graph model: the node whose neighbours' weights to show (its id in nodes.tsv order).
    #[arg(long, requires = "data", conflicts_with = "text")]
    node: Option<usize>,
    /// Graph model: the graph directory (nodes.tsv, edges.tsv) the node is in.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Directory for the pictures and JSON: layerL-headH.png, layerL-mean.png
    /// and attention.json for a tagger or a sequence; node-N-layerL.png and
    /// node-N.json for a graph.
    #[arg(long, default_value = "attention")]
    out: PathBuf,
}

/// `attend attention`: who attends to whom, for one sentence (tagger) or
/// one node (graph model).
pub fn attention(args: AttentionArgs) -> Result<()> {
    let kind = checkpoint::kind(&args.model)?;
    if kind == ModelKind::Sequence {
        let Some(input) = &args.input else {
            bail!("{} is a sequence model: give the file with --input FILE (and --index N for its N-th sequence)", args.model.display());
        };
        return crate::sequence_cmd::attention(&args.model, input, args.index, &args.out);
    }
    match (kind, &args.text, args.node, &args.data) {
        (ModelKind::Tagger, Some(text), _, _) => sentence_attention(&args, text),
        (ModelKind::Graph, _, Some(node), Some(data)) => crate::graph_cmd::node_attention(&args.model, data, node, &args.out),
        (ModelKind::Tagger, None, _, _) => bail!("{} is a tagger: give the sentence with --text", args.model.display()),
        (ModelKind::Graph, _, _, _) => bail!("{} is a graph model: give --node ID and --data DIR", args.model.display()),
        (ModelKind::Sequence, _, _, _) => unreachable!("handled above"),
        (ModelKind::Segmenter, _, _, _) => bail!("{} is a segmenter: give its tagger's directory (attention is shown for taggers)", args.model.display()),
    }
}

fn sentence_attention(args: &AttentionArgs, text: &str) -> Result<()> {
    let loaded = load_tagger(&args.model)?;
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() {
        bail!("--text has no words");
    }
    let maps = attend_cli::viz::attention_maps(&loaded.model, &loaded.vocab, &Sentence::from_words(&words))?;
    let files = attend_cli::viz::write_heatmaps(&maps, &args.out)?;
    let tagged: Vec<String> = maps.words.iter().zip(&maps.tags).map(|(w, t)| format!("{w}/{t}")).collect();
    println!("{}", tagged.join(" "));
    // Where each word looks most, averaged over the last layer's heads.
    let last = maps.mean(maps.layers.len() - 1);
    for (i, row) in last.iter().enumerate() {
        let (j, w) = row.iter().enumerate().fold((0, f32::MIN), |b, (j, &w)| if w > b.1 { (j, w) } else { b });
        println!("  {:<16} looks most at {:<16} ({:.2})", maps.words[i], maps.words[j], w);
    }
    println!("{} files in {}", files.len(), args.out.display());
    Ok(())
}
