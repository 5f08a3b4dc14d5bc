//! Where a tagger or segmenter reads its CoNLL-U data, as flags: a treebank
//! directory, files named one by one, or both (files override); the
//! library reads them (`attend::data::treebank`).

use anyhow::Result;
use attend::data::treebank::{Treebank, TreebankFiles};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Clone, Debug, Default)]
pub struct TreebankArgs {
    /// Treebank directory: its *-ud-train.conllu, *-ud-dev.conllu and
    /// *-ud-test.conllu are used, unless --train, --dev or --test name
    /// other files.
    #[arg(long, value_name = "DIR", required_unless_present = "train_file", help_heading = "Data")]
    pub treebank: Option<PathBuf>,
    /// Training file (CoNLL-U).
    #[arg(long = "train", value_name = "FILE", help_heading = "Data")]
    pub train_file: Option<PathBuf>,
    /// Development file (CoNLL-U), scored after every epoch to choose the
    /// model.
    #[arg(long = "dev", value_name = "FILE", conflicts_with = "dev_fraction", help_heading = "Data")]
    pub dev_file: Option<PathBuf>,
    /// Test file (CoNLL-U), scored once at the end.
    #[arg(long = "test", value_name = "FILE", help_heading = "Data")]
    pub test_file: Option<PathBuf>,
    /// Without a dev file: hold out this fraction (0 < F < 1) of the
    /// training sentences as the dev set: the end of the training file,
    /// cut where a paragraph or document starts (the same every run).
    #[arg(long, value_name = "F", help_heading = "Data")]
    pub dev_fraction: Option<f64>,
}

impl TreebankArgs {
    /// Reads the training and dev data (the test file is only located).
    pub fn read(&self) -> Result<Treebank> {
        let files = TreebankFiles {
            dir: self.treebank.clone(),
            train: self.train_file.clone(),
            dev: self.dev_file.clone(),
            test: self.test_file.clone(),
            dev_fraction: self.dev_fraction,
        };
        Ok(files.read()?)
    }
}
