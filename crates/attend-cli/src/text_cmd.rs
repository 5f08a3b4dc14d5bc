//! Raw text: `attend raw-text` (the shared task's text of a CoNLL-U file)
//! and `attend eval --system --gold` (the CoNLL 2018 metrics).

use anyhow::{Context, Result};
use attend::data::{conllu, raw_text, ud_eval};
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Scores `system` against `gold` and prints the official script's table (or JSON).
pub fn score(system: &Path, gold: &Path, json: bool) -> Result<()> {
    let e = ud_eval::evaluate_files(gold, system)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&e.to_json())?);
    } else {
        print!("{}", e.table());
    }
    Ok(())
}

#[derive(Args)]
pub struct RawTextArgs {
    /// A CoNLL-U file with `# text` comments (else the tokens and their
    /// SpaceAfter=No are used).
    input: PathBuf,
    /// Output file; stdout when absent.
    #[arg(long)]
    output: Option<PathBuf>,
}

pub fn raw_text(args: RawTextArgs) -> Result<()> {
    let sentences = conllu::read_file(&args.input)?;
    let text = raw_text::shared_task_text(&sentences, &args.input)?;
    match &args.output {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(())
}
