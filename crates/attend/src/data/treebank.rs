//! Where a tagger or segmenter reads its CoNLL-U data: a treebank
//! directory (`*-ud-train.conllu`, `*-ud-dev.conllu`, `*-ud-test.conllu`),
//! files named one by one, or both (files win); without a dev file, a
//! share of the training file held out as dev.

use crate::data::conllu::{self, Sentence};
use crate::error::{Error, Result};
use std::path::PathBuf;

/// What to read. Messages name these settings in backticks (`train`,
/// `dev`, `dev_fraction`), as a front end's flags do.
#[derive(Debug, Clone, Default)]
pub struct TreebankFiles {
    /// A treebank directory.
    pub dir: Option<PathBuf>,
    pub train: Option<PathBuf>,
    pub dev: Option<PathBuf>,
    pub test: Option<PathBuf>,
    /// Without a dev file: hold out this share (0 < F < 1) of the training
    /// sentences, the end of the file, cut where a paragraph or document starts.
    pub dev_fraction: Option<f64>,
}

/// The data of a run, read once (the test file only located).
#[derive(Debug, Clone)]
pub struct Treebank {
    pub train_path: PathBuf,
    pub train: Vec<Sentence>,
    /// The dev file, or the training file when the dev set was held out of it.
    pub dev_path: PathBuf,
    pub dev: Vec<Sentence>,
    pub test_path: Option<PathBuf>,
    /// How the dev set was obtained, for a log.
    pub dev_origin: String,
}

impl TreebankFiles {
    /// Reads the training and dev data; checks the test file exists.
    pub fn read(&self) -> Result<Treebank> {
        let [mut train, mut dev, mut test] = match &self.dir {
            Some(dir) => conllu::find_splits(dir)?,
            None => [None, None, None],
        };
        for (slot, given) in [(&mut train, &self.train), (&mut dev, &self.dev), (&mut test, &self.test)] {
            if let Some(path) = given {
                *slot = Some(path.clone());
            }
        }
        let in_dir = |split: &str| {
            self.dir.as_ref().map_or(String::new(), |d| format!(" ({}: no *-ud-{split}.conllu file in this directory)", d.display()))
        };
        let Some(train_path) = train else { return Err(Error::Input(format!("no training file: give `train` FILE{}", in_dir("train")))) };
        if let Some(f) = self.dev_fraction {
            if !(f > 0.0 && f < 1.0) {
                return Err(Error::Input(format!("`dev_fraction` must be between 0 and 1 (exclusive), got {f}")));
            }
        }
        if let Some(t) = test.as_ref().filter(|t| !t.is_file()) {
            return Err(Error::Input(format!("{}: no such test file", t.display())));
        }
        let train_sentences = conllu::read_file(&train_path)?;
        let (train, dev, dev_path, dev_origin) = match (dev, self.dev_fraction) {
            // an explicit fraction wins over a dev file found in the directory
            (_, Some(f)) => {
                let (train, dev) = conllu::split_dev(train_sentences, f);
                if dev.is_empty() {
                    return Err(Error::Input(format!(
                        "{}: too few sentences to hold out a dev set (`dev_fraction`)",
                        train_path.display()
                    )));
                }
                let origin = format!("the last {} sentences of {} (`dev_fraction` {f})", dev.len(), train_path.display());
                (train, dev, train_path.clone(), origin)
            }
            (Some(dev_path), None) => {
                let dev = conllu::read_file(&dev_path)?;
                let origin = dev_path.display().to_string();
                (train_sentences, dev, dev_path, origin)
            }
            (None, None) => {
                return Err(Error::Input(format!(
                    "no dev file: give `dev` FILE, or `dev_fraction` F to hold out part of the training file{}",
                    in_dir("dev")
                )))
            }
        };
        Ok(Treebank { train_path, train, dev_path, dev, test_path: test, dev_origin })
    }
}

impl Treebank {
    /// Where the data came from, for a log.
    pub fn describe(&self) -> String {
        format!("train {}, dev {}", self.train_path.display(), self.dev_origin)
    }
}
