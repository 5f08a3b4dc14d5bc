//! What the commands share: where output goes (files moved in place,
//! devices written as they are), output formats, a training run's progress
//! and Ctrl-C, and library messages in the CLI's words (its flags).

use crate::progress::{self, Progress};
use anyhow::{Context, Result};
use attend::data::conllu::{self, Sentence};
use attend::data::raw_text;
use clap::ValueEnum;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

/// Where a command writes. A regular file (or a new one) is written beside
/// its target and moved in place at the end, so a failed run leaves an
/// existing file as it was. Anything else that exists (`/dev/null`, a pipe,
/// a terminal) is written as it is: moving a file onto it would replace the
/// device or pipe with a plain file.
pub enum OutputSink {
    Stdout,
    Direct(PathBuf),
    Atomic { partial: PathBuf, target: PathBuf },
}

impl OutputSink {
    /// The sink for `--output PATH` (`None` or `-`: standard output).
    pub fn for_path(output: Option<&Path>) -> OutputSink {
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

    /// A buffered writer to the sink.
    pub fn writer(&self) -> Result<Box<dyn Write>> {
        let path = match self {
            OutputSink::Stdout => return Ok(Box::new(std::io::BufWriter::new(std::io::stdout().lock()))),
            OutputSink::Direct(p) => p,
            OutputSink::Atomic { partial, .. } => partial,
        };
        let file = std::fs::File::create(path).with_context(|| format!("writing {}", self.target().display()))?;
        Ok(Box::new(std::io::BufWriter::new(file)))
    }

    fn target(&self) -> &Path {
        match self {
            OutputSink::Stdout => Path::new("<stdout>"),
            OutputSink::Direct(p) | OutputSink::Atomic { target: p, .. } => p,
        }
    }

    /// Moves a finished file in place, or removes a failed run's partial file.
    pub fn finish(self, result: Result<()>) -> Result<()> {
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

/// Writes `write`'s output to `--output PATH` (or stdout) through an [`OutputSink`].
pub fn write_output(output: Option<&Path>, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let sink = OutputSink::for_path(output);
    let result = sink.writer().and_then(|mut out| {
        write(&mut out)?;
        out.flush().map_err(Into::into)
    });
    sink.finish(result)
}

/// How tagged sentences are written.
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

/// Writes tagged sentences in `format`. A sentence nothing parsed gets
/// the flat tree of [`raw_text::fill_flat_tree`] in CoNLL-U.
pub fn write_sentences(out: &mut dyn Write, sentences: &mut [Sentence], format: OutputFormat) -> Result<()> {
    match format {
        OutputFormat::Conllu => {
            sentences.iter_mut().for_each(raw_text::fill_flat_tree);
            out.write_all(conllu::to_string(sentences).as_bytes())?;
        }
        OutputFormat::Horizontal => {
            for s in sentences.iter() {
                let words: Vec<&str> = s.words().map(|w| w.form.as_str()).collect();
                writeln!(out, "{}", words.join(" "))?;
            }
        }
        OutputFormat::Json => {
            for (k, s) in sentences.iter().enumerate() {
                writeln!(out, "{}", attend::api::text::sentence_record(s, k + 1))?;
            }
        }
    }
    Ok(())
}

/// How `attend predict` writes labels.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum PredictFormat {
    /// Tab-separated with a header: sequence, line, (position,)
    /// prediction; for a graph: node, prediction, probability, label (the
    /// node's own label in nodes.tsv, `?` if none).
    Tsv,
    /// One JSON array: {sequence, line, label | labels | value} per
    /// sequence; for a graph {node, prediction, probability, label}
    /// (label null when the node has none).
    Json,
}

/// Runs one training through the library with a progress display. Ctrl-C
/// saves and stops: the bar stays as it was and the error is
/// [`attend::Error::Interrupted`] with `interrupted(why)` as its message
/// (`main` ends the process with exit code 130); otherwise the bar is
/// cleared when the run ends.
pub fn with_progress<T>(
    mut progress: Progress,
    interrupted: impl FnOnce(String) -> String,
    run: impl FnOnce(&'static AtomicBool, &mut Progress) -> attend::Result<T>,
) -> Result<T> {
    let flag = progress::interrupt_flag()?;
    match run(flag, &mut progress) {
        Err(attend::Error::Interrupted(why)) => {
            progress.abandon();
            Err(attend::Error::Interrupted(interrupted(why)).into())
        }
        other => {
            progress.finish();
            Ok(other?)
        }
    }
}

static FLAGS: OnceLock<BTreeSet<String>> = OnceLock::new();

/// Tells [`cli_words`] the long flags of `cmd` and all its subcommands.
pub fn init_flags(cmd: clap::Command) {
    let mut names = BTreeSet::new();
    let mut stack = vec![cmd];
    while let Some(cmd) = stack.pop() {
        names.extend(cmd.get_arguments().filter_map(|a| a.get_long()).map(str::to_string));
        stack.extend(cmd.get_subcommands().cloned());
    }
    let _ = FLAGS.set(names);
}

/// A library message in the CLI's words: a setting named in backticks
/// (`` `lr` ``) becomes its flag (`--lr`) where the command line has one.
pub fn cli_words(message: &str) -> String {
    let empty = BTreeSet::new();
    let flags = FLAGS.get().unwrap_or(&empty);
    let mut out = String::new();
    let mut rest = message;
    while let Some(start) = rest.find('`') {
        let Some(len) = rest[start + 1..].find('`') else { break };
        let name = &rest[start + 1..start + 1 + len];
        let flag = name.replace('_', "-");
        out.push_str(&rest[..start]);
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') && flags.contains(&flag) {
            out.push_str("--");
            out.push_str(&flag);
        } else {
            out.push_str(&rest[start..start + len + 2]);
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// A library error with a sequence of `input` too long for dense attention
/// told in the words of the command that ran it (`limit_flag`:
/// `--max-dense-words`, `--max-dense-vectors`); any other error as it is.
pub fn dense_limit_in_flags(e: attend::Error, input: &Path, limit_flag: &str, unit: &str) -> anyhow::Error {
    match e {
        attend::Error::DenseTooLong { longest, .. } => anyhow::anyhow!(
            "{}: a sequence of {longest} {unit} under dense attention costs {longest}^2 scores per head and layer (minutes on a CPU; \
             memory stays linear with the fused kernel); pass --window 64 for truncated attention with linear cost, or {limit_flag} {longest} to run it anyway",
            input.display()
        ),
        other => other.into(),
    }
}
