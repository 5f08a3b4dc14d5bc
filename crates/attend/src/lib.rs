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
//! - [`models`]: the part-of-speech tagger and the graph classifier, each
//!   with its training task.
//! - [`train`], [`optim`], [`checkpoint`], [`config`]: the one training loop,
//!   its optimizer, the checkpoint format and settings files.
//!
//! Load a trained tagger and tag a sentence:
//!
//! ```no_run
//! use attend::data::conllu::Sentence;
//! use attend::models::tagger::load::load_tagger;
//! use attend::models::EVAL_BATCH_TOKENS;
//! let loaded = load_tagger(std::path::Path::new("runs/ewt"))?;
//! let mut sentences = vec![Sentence::from_words(&["The", "old", "man", "the", "boat", "."])];
//! loaded.model.tag(&mut sentences, &loaded.vocab, EVAL_BATCH_TOKENS)?;
//! let tags: Vec<&str> = sentences[0].words().map(|w| w.upos.as_str()).collect();
//! println!("{}", tags.join(" "));
//! # Ok::<(), attend::Error>(())
//! ```

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod error;
pub mod fuzzing;
pub mod memory;
pub mod models;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod train;

pub use attend_kernels;
pub use candle_core;
pub use rayon;
pub use error::{Error, Result};
