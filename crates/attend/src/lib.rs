//! # attend
//!
//! Self-attention models over vector sets: a sentence (one vector per word),
//! a signal (one vector per frame) or a graph (one vector per node) goes in,
//! one label per vector comes out.
//!
//! - [`data`]: readers (CoNLL-U, graphs), vocabularies, batches.
//! - [`ops`]: fused candle ops with backward (attention, layer norm, masked
//!   softmax, cross-entropy, AdamW) over the `attend-kernels` crate.
//! - [`nn`]: the parts models are made of: front ends, the sequence encoder
//!   (self-attention or BiLSTM), heads, positional encodings.
//! - [`models`]: the part-of-speech tagger, the raw-text segmenter, the graph
//!   classifier and the model over vector sequences, each with its config,
//!   its training task and its place in a checkpoint.
//! - [`train`], [`optim`], [`checkpoint`], [`config`]: the one training loop,
//!   its optimizer, the checkpoint format (generic over the model) and
//!   settings files.
//! - [`api`]: the task-level API every front end calls: raw text in, tagged
//!   sentences out; sequence and graph models trained and run from files or
//!   from data in memory; multi-seed runs.
//! - [`memory`]: what the system says about memory.
//! - [`precision`]: f32 or bf16 matrix products at inference.
//!
//! Train a small tagger into a model directory (as `attend train tagger`
//! writes one), load it, and tag sentences: UPOS, XPOS and FEATS.
//!
//! ```
//! use attend::config::TrainConfig;
//! use attend::data::{conllu::{self, Sentence}, synthetic, vocab::{Column, TaggerVocab}};
//! use attend::models::tagger::task::train_tagger;
//! use attend::models::{Tagger, TaggerConfig, TAG_BATCH_TOKENS};
//! use attend::nn::sequence::EncoderConfig;
//!
//! // Training data: any CoNLL-U (conllu::read_file); here a built-in toy treebank.
//! let (train, dev) = (synthetic::toy_treebank(300, 1), synthetic::toy_treebank(50, 2));
//! let vocab = TaggerVocab::build_for(&train, &Column::ALL);
//! let encoder = EncoderConfig { d_model: 32, heads: 4, ff_dim: 64, ..EncoderConfig::default() };
//! let config = TaggerConfig { encoder, word_dim: 16, char_dim: 8, char_filters: 24, ..TaggerConfig::default() }
//!     .sized_for(&vocab); // table sizes: words, characters, each column's labels
//! let mut model = Tagger::new(config, 7)?;
//! let settings = TrainConfig { epochs: 30, lr: 3e-3, warmup_steps: 20, batch_tokens: 256, ..TrainConfig::default() };
//! let dir = tempfile::tempdir().expect("a temporary directory");
//! train_tagger(&mut model, &vocab, &train, &dev, &settings, Some(dir.path()), &mut attend::train::Silent)?;
//!
//! // Load the model directory and tag.
//! let loaded = attend::checkpoint::load::<Tagger>(dir.path())?;
//! let mut sentences = vec![Sentence::from_words(&["the", "run", "watch", "it", "."])];
//! loaded.model.tag(&mut sentences, &loaded.data, TAG_BATCH_TOKENS)?;
//! let upos: Vec<&str> = sentences[0].words().map(|w| w.upos.as_str()).collect();
//! assert_eq!(upos, ["DET", "NOUN", "VERB", "PRON", "PUNCT"]);
//! assert_eq!(sentences[0].tokens[0].xpos, "DT");
//! print!("{}", conllu::to_string(&sentences));
//! # Ok::<(), attend::Error>(())
//! ```

pub mod api;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod error;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod memory;
pub mod models;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod precision;
pub mod shard;
pub mod train;

pub use attend_kernels;
pub use candle_core;
pub use error::{Error, Result};
pub use rayon;
