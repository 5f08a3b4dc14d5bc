//! Where a tagger or segmenter reads its CoNLL-U data: a treebank
//! directory, files named one by one, or both (files override).

use anyhow::{bail, Result};
use attend::data::conllu::{self, Sentence};
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

/// The data of a run, read once.
pub struct Treebank {
    pub train_path: PathBuf,
    pub train: Vec<Sentence>,
    /// The dev file, or the training file when the dev set was held out of it.
    pub dev_path: PathBuf,
    pub dev: Vec<Sentence>,
    pub test_path: Option<PathBuf>,
    /// How the dev set was obtained, for the log.
    pub dev_origin: String,
}

impl TreebankArgs {
    /// Reads the training and dev data (the test file is only located).
    pub fn read(&self) -> Result<Treebank> {
        let [mut train, mut dev, mut test] = match &self.treebank {
            Some(dir) => conllu::find_splits(dir)?,
            None => [None, None, None],
        };
        for (slot, given) in [(&mut train, &self.train_file), (&mut dev, &self.dev_file), (&mut test, &self.test_file)] {
            if let Some(path) = given {
                *slot = Some(path.clone());
            }
        }
        let in_dir = |split: &str| {
            self.treebank.as_ref().map_or(String::new(), |d| format!(" ({}: no *-ud-{split}.conllu file in this directory)", d.display()))
        };
        let Some(train_path) = train else { bail!("no training file: give --train FILE{}", in_dir("train")) };
        if let Some(f) = self.dev_fraction {
            if !(f > 0.0 && f < 1.0) {
                bail!("--dev-fraction must be between 0 and 1 (exclusive), got {f}");
            }
        }
        if let Some(t) = &test {
            if !t.is_file() {
                bail!("{}: no such test file", t.display());
            }
        }
        let train_sentences = conllu::read_file(&train_path)?;
        let (train, dev, dev_path, dev_origin) = match (dev, self.dev_fraction) {
            // an explicit fraction wins over a dev file found in the directory
            (_, Some(f)) => {
                let (train, dev) = conllu::split_dev(train_sentences, f);
                if dev.is_empty() {
                    bail!("{}: too few sentences to hold out a dev set (--dev-fraction)", train_path.display());
                }
                let origin = format!("the last {} sentences of {} (--dev-fraction {f})", dev.len(), train_path.display());
                (train, dev, train_path.clone(), origin)
            }
            (Some(dev_path), None) => {
                let dev = conllu::read_file(&dev_path)?;
                let origin = dev_path.display().to_string();
                (train_sentences, dev, dev_path, origin)
            }
            (None, None) => {
                bail!("no dev file: give --dev FILE, or --dev-fraction F to hold out part of the training file{}", in_dir("dev"))
            }
        };
        Ok(Treebank { train_path, train, dev_path, dev, test_path: test, dev_origin })
    }
}

impl Treebank {
    /// Where the data came from, for the log.
    pub fn describe(&self) -> String {
        format!("train {}, dev {}", self.train_path.display(), self.dev_origin)
    }
}
