//! `attend train tagger`, `attend eval` for a tagger, `attend tag`, and
//! `attend attention` for a sentence.

use crate::common::{self, OutputFormat};
use crate::progress::Progress;
use crate::settings::{self, ModelArgs, TaggerTrainArgs};
use anyhow::{bail, Context, Result};
use attend::api::tagger::{self, TaggerJob};
use attend::api::text::{segmenter_dir, TextTagger};
use attend::checkpoint;
use attend::data::conllu::{self, Sentence};
use attend::data::vocab::Column;
use attend::models::tagger::config::TaggerSettings;
use attend::models::Tagger;
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
    train: TaggerTrainArgs,
    /// Do not train the raw-text segmenter after the tagger (by default
    /// it goes to OUT/segmenter, and the test file, if any, is then also
    /// scored from its raw text with the CoNLL 2018 metrics).
    #[arg(long)]
    no_segmenter: bool,
    #[command(flatten)]
    segmenter: crate::segmenter_run::SegmenterFlags,
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
    // The file's [segmenter.model] and [segmenter.train] are the segmenter's.
    let (settings, segmenter_settings) = match args.resume {
        Some(_) => (None, None),
        None => {
            let mut file = args.config.as_deref().map(settings::read_file).transpose()?.unwrap_or_default();
            let segmenter_file = match file.remove("segmenter") {
                Some(toml::Value::Table(t)) => t,
                Some(_) => bail!("[segmenter] in {} must be a table", args.config.as_deref().unwrap_or(Path::new("")).display()),
                None => toml::Table::new(),
            };
            let settings = settings::resolve_table::<TaggerSettings>(file, args.config.as_deref(), &args.model, &args.train)?;
            let segmenter = args.segmenter.resolve(segmenter_file, args.config.as_deref(), settings.train.seed)?;
            (Some(settings), Some(segmenter))
        }
    };
    let data = args.data.read()?;
    let (train, dev) = (&data.train, &data.dev);
    let (job, out) = match &args.resume {
        Some(dir) => {
            settings::refuse_on_resume(dir, &args.model, &args.train)?;
            let job = TaggerJob::resume(dir, args.train.common.max_minutes())?;
            if let Some(r) = &job.resume {
                eprintln!(
                    "resuming {} at epoch {}, batch {} (step {})",
                    dir.display(),
                    r.state.epoch,
                    r.state.next_batch,
                    r.optimizer.step
                );
            }
            (job, dir.clone())
        }
        None => {
            if !args.predict.contains(&Column::Upos) {
                bail!("--predict must include upos (the tagger always predicts UPOS), got {}", column_list(&args.predict));
            }
            let job = TaggerJob::new(train, &args.predict, &settings.expect("resolved above"))?;
            for c in &job.skipped {
                eprintln!("note: {} has no {} labels (only `_`): not predicting {}", data.train_path.display(), c.name(), c.name());
            }
            (job, args.out.clone())
        }
    };
    let vocab = &job.vocab;
    eprintln!(
        "{}\ntrain {} sentences / {} words, dev {} sentences; {} word types, {} chars; predicting {}; {} parameters; {} threads",
        data.describe(),
        train.len(),
        train.iter().map(Sentence::word_count).sum::<usize>(),
        dev.len(),
        vocab.words.len(),
        vocab.chars.len(),
        vocab
            .columns()
            .iter()
            .map(|&c| format!("{} ({})", c.name(), vocab.column(c).map_or(0, |v| v.len())))
            .collect::<Vec<_>>()
            .join(", "),
        job.model.params.num_scalars(),
        attend::rayon::current_num_threads()
    );
    let progress = Progress::new("tok", job.selection(), 1);
    let (tagger, summary) =
        common::with_progress(progress, |why| why, |interrupt, progress| job.run(train, dev, Some(&out), Some(interrupt), progress))?;
    if let Some(why) = &summary.stopped_early {
        eprintln!("stopped early: {}", common::cli_words(why));
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
        let (r, secs) = tagger::evaluate(&tagger, &read_conllu(test_path)?, test_path)?;
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
    let segmenter_dir = segmenter_dir(&out);
    // A segmenter run this tagger's run left unfinished continues; otherwise one starts.
    let segmenter_settings = match (attend::api::seeds::has_saved_state(&segmenter_dir), segmenter_settings) {
        (true, _) => None,
        (false, Some(s)) => Some(s),
        (false, None) => Some(args.segmenter.resolve(toml::Table::new(), None, tagger.train.seed)?),
    };
    crate::segmenter_run::run(&data, &segmenter_dir, &args.segmenter, segmenter_settings)?;
    if let Some(test_path) = &data.test_path {
        let segmenter = Some(checkpoint::load(&segmenter_dir)?);
        let text = TextTagger { tagger, segmenter, max_dense: attend::models::MAX_DENSE_WORDS };
        let scores = text.score_raw_text(test_path)?;
        let line: Vec<String> = ["Tokens", "Sentences", "Words", "UPOS"]
            .iter()
            .map(|m| format!("{m} {:.2}", 100.0 * scores.get(m).map_or(0.0, |s| s.f1())))
            .collect();
        eprintln!("test {} from raw text (CoNLL 2018 F1): {}", test_path.display(), line.join(", "));
        report["test_raw_text"] = scores.to_json();
        write_report(&report)?;
    }
    Ok(())
}

/// `attend eval` for a tagger: its scores on a CoNLL-U file with gold tags.
pub fn eval(model: &Path, input: &Path, json: bool) -> Result<()> {
    let loaded = checkpoint::load::<Tagger>(model)?;
    let (r, secs) = tagger::evaluate(&loaded, &read_conllu(input)?, input)?;
    if json {
        let mut j = r.to_json();
        j["tokens_per_sec"] = serde_json::json!(r.tokens as f64 / secs);
        println!("{}", serde_json::to_string_pretty(&j)?);
        return Ok(());
    }
    println!("{}: {} tokens, {:.0} tok/s", input.display(), r.tokens, r.tokens as f64 / secs);
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
    // The segmenter is loaded only for raw text (below).
    let mut tagger = TextTagger { tagger: checkpoint::load::<Tagger>(&args.model)?, segmenter: None, max_dense: args.max_dense_words };
    if args.window.is_some() {
        tagger.set_window(args.window)?;
    }
    let has_segmenter = attend::api::text::has_segmenter(&args.model);
    let label = match args.input.as_deref() {
        Some(p) if p != Path::new("-") => p.to_path_buf(),
        _ => PathBuf::from("<stdin>"),
    };
    let mut input: Box<dyn std::io::BufRead> = match args.input.as_deref() {
        Some(p) if p != Path::new("-") => {
            Box::new(std::io::BufReader::new(std::fs::File::open(p).with_context(|| format!("reading {}", p.display()))?))
        }
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
                    segmenter_dir(&args.model).display()
                );
                InputFormat::Horizontal
            }
        }
        f => f,
    };
    if format == InputFormat::Raw {
        if !has_segmenter {
            bail!(
                "{} has no segmenter/ to read raw text: train one with attend train segmenter --treebank DIR --out {} (or pass --format horizontal for tokenized text)",
                args.model.display(),
                segmenter_dir(&args.model).display()
            );
        }
        tagger.segmenter = Some(checkpoint::load(&segmenter_dir(&args.model))?);
    }
    common::write_output(args.output.as_deref(), |out| tag_into(&args, &tagger, input, &label, format, out, started))
}

/// Tags `input` in `format` into `out`; `--stats` goes to stderr.
fn tag_into(
    args: &TagArgs,
    tagger: &TextTagger,
    mut input: Box<dyn std::io::BufRead>,
    label: &Path,
    format: InputFormat,
    out: &mut dyn Write,
    started: Instant,
) -> Result<()> {
    let in_flags = |e: attend::Error| common::dense_limit_in_flags(e, label, "--max-dense-words", "words");
    let stats = if format == InputFormat::Raw {
        let mut write_error = None;
        let result = tagger.tag_stream(input, label, |sentences| {
            common::write_sentences(out, sentences, args.output_format).map_err(|e| {
                let message = format!("{e:#}");
                write_error = Some(e);
                attend::Error::Input(message)
            })
        });
        match (result, write_error) {
            (_, Some(e)) => return Err(e),
            (r, None) => r.map_err(in_flags)?,
        }
    } else {
        // CoNLL-U and horizontal text are read whole: refuse a file that would not fit.
        if let Some(p) = args.input.as_deref().filter(|p| *p != Path::new("-")) {
            conllu::check_fits_in_memory(p)?;
        }
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes).with_context(|| format!("reading {}", label.display()))?;
        let mut sentences =
            if format == InputFormat::Conllu { conllu::parse_bytes(&bytes, label)? } else { conllu::parse_plain_text(&bytes, label)? };
        if sentences.is_empty() {
            bail!("{}: no sentences to tag", label.display());
        }
        let t = Instant::now();
        tagger.tag(&mut sentences).map_err(in_flags)?;
        let stats = attend::api::text::TagStats {
            sentences: sentences.len(),
            words: sentences.iter().map(Sentence::word_count).sum(),
            longest: sentences.iter().map(Sentence::word_count).max().unwrap_or(0),
            segment_seconds: 0.0,
            tag_seconds: t.elapsed().as_secs_f64(),
        };
        common::write_sentences(out, &mut sentences, args.output_format)?;
        stats
    };
    out.flush()?;
    if stats.sentences == 0 {
        bail!("{}: no text to tag", label.display());
    }
    if args.stats {
        let rss = attend::memory::peak_rss_bytes().map_or("unknown".to_string(), attend::memory::human_bytes);
        let total = started.elapsed().as_secs_f64();
        let segmenting = if format == InputFormat::Raw { format!("segmenting {:.2} s, ", stats.segment_seconds) } else { String::new() };
        eprintln!(
            "tagged {} sentence{}, {} words (longest {}); {segmenting}tagging {:.2} s ({:.0} words/s); total {total:.2} s ({:.0} words/s); peak RSS {rss}",
            stats.sentences,
            if stats.sentences == 1 { "" } else { "s" },
            stats.words,
            stats.longest,
            stats.tag_seconds,
            stats.words as f64 / stats.tag_seconds.max(1e-9),
            stats.words as f64 / total.max(1e-9),
        );
    }
    Ok(())
}

/// `attend attention` for a tagger: heatmaps of one sentence.
pub fn sentence_attention(model: &Path, text: &str, out: &Path) -> Result<()> {
    let loaded = checkpoint::load::<Tagger>(model)?;
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() {
        bail!("--text has no words");
    }
    let maps = attend_cli::viz::attention_maps(&loaded.model, &loaded.data, &Sentence::from_words(&words))?;
    let files = attend_cli::viz::write_heatmaps(&maps, out)?;
    let tagged: Vec<String> = maps.words.iter().zip(&maps.tags).map(|(w, t)| format!("{w}/{t}")).collect();
    println!("{}", tagged.join(" "));
    // Where each word looks most, averaged over the last layer's heads.
    let last = maps.mean(maps.layers.len() - 1);
    for (i, row) in last.iter().enumerate() {
        let (j, w) = row.iter().enumerate().fold((0, f32::MIN), |b, (j, &w)| if w > b.1 { (j, w) } else { b });
        println!("  {:<16} looks most at {:<16} ({:.2})", maps.words[i], maps.words[j], w);
    }
    println!("{} files in {}", files.len(), out.display());
    Ok(())
}
