//! Shared by the server and picture tests: a small tagger, saved or not, and an `attend serve`
//! child process that is killed when dropped.

#![allow(dead_code)]

use attend::checkpoint;
use attend::config::TrainConfig;
use attend::data::synthetic::toy_treebank;
use attend::data::vocab::TaggerVocab;
use attend::models::{EncoderKind, Tagger, TaggerConfig};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Saves an untrained small tagger (2 layers x 4 heads) with the toy
/// treebank's vocabulary into `dir`: its tags are arbitrary but
/// deterministic, which is all the server tests need.
pub fn small_model(dir: &Path) {
    small_model_with(dir, EncoderKind::Attention)
}

/// [`small_model`] with the given encoder.
pub fn small_model_with(dir: &Path, encoder: EncoderKind) {
    let (model, vocab) = small_tagger(encoder);
    checkpoint::save_model(dir, &model, &vocab, &TrainConfig::default()).unwrap();
}

/// The untrained small tagger of [`small_model`] and its vocabulary.
pub fn small_tagger(encoder: EncoderKind) -> (Tagger, TaggerVocab) {
    let train = toy_treebank(200, 1);
    let vocab = TaggerVocab::build(&train);
    let encoder = attend::nn::sequence::EncoderConfig { kind: encoder, d_model: 32, heads: 4, layers: 2, ff_dim: 64, ..Default::default() };
    let config = TaggerConfig { encoder, word_dim: 16, char_dim: 8, char_filters: 24, ..TaggerConfig::default() }.sized_for(&vocab);
    (Tagger::new(config, 7).unwrap(), vocab)
}

/// A running `attend serve`; killed on drop.
pub struct Server {
    child: Child,
    pub url: String,
}

impl Server {
    /// Starts `attend serve --model DIR --port 0 EXTRA...` and waits for the
    /// address it prints.
    pub fn start(model: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_attend"))
            .args(["--threads", "2", "serve", "--model", model.to_str().unwrap(), "--port", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start attend serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let start = line.find("http://").unwrap_or_else(|| panic!("no address in {line:?}"));
        let url = line[start..].split_whitespace().next().unwrap().trim_end_matches('/').to_string();
        Server { child, url }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
