//! `attend train segmenter`: the raw-text segmenter on its own.

use crate::segmenter_run::{run, SegmenterFlags};
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
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    resume: Option<PathBuf>,
    #[command(flatten)]
    settings: SegmenterFlags,
}

pub fn train(args: TrainSegmenterArgs) -> Result<()> {
    let data = args.data.read()?;
    match &args.resume {
        Some(dir) => run(&data, dir, &args.settings, true, 42),
        None => run(&data, &args.out, &args.settings, false, 42),
    }
}
