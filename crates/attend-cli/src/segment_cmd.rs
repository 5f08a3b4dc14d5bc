//! `attend train segmenter`: the raw-text segmenter on its own.

use crate::segmenter_run::{run, SegmenterFlags};
use crate::settings;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct TrainSegmenterArgs {
    /// The training text: CoNLL-U with `# text` comments; `# newpar` /
    /// `# newdoc` mark paragraphs. Needed with --resume too (the text is
    /// not stored with the model).
    #[command(flatten)]
    data: crate::treebank_args::TreebankArgs,
    /// Where the segmenter goes. Put it in a tagger's directory as
    /// DIR/segmenter so that `attend tag --model DIR` reads raw text
    /// (`attend train tagger` does this itself unless --no-segmenter).
    #[arg(long, default_value = "runs/segmenter")]
    out: PathBuf,
    /// Continue the interrupted run in this directory.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "config"])]
    resume: Option<PathBuf>,
    /// TOML file with [model] and [train] tables (the segmenter's settings;
    /// batch_tokens for --segmenter-batch-chars); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: SegmenterFlags,
}

pub fn train(args: TrainSegmenterArgs) -> Result<()> {
    // Settings first: a bad flag or config file is reported before any data is read.
    let settings = match (&args.resume, &args.config) {
        (Some(_), _) => None,
        (None, file) => {
            Some(args.settings.resolve(file.as_deref().map(settings::read_file).transpose()?.unwrap_or_default(), file.as_deref(), 42)?)
        }
    };
    let data = args.data.read()?;
    run(&data, args.resume.as_ref().unwrap_or(&args.out), &args.settings, settings)
}
