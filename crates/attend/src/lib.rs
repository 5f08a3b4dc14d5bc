//! # attend
//!
//! Self-attention models over vector sets: a sentence (one vector per word),
//! a signal (one vector per frame) or a graph (one vector per node) goes in,
//! one label per vector comes out.
//!
//! - [`data`]: CoNLL-U reading and writing, vocabularies, batches.
//! - [`ops`]: fused candle ops with backward (layer norm, masked softmax,
//!   cross-entropy, AdamW) over the `attend-kernels` crate.
//! - [`nn`]: multi-head self-attention, positional encodings, encoder layers.
//! - [`models`]: the part-of-speech tagger.
//! - [`train`], [`checkpoint`]: training loop and saved models.
//! - [`bench`], [`memory`]: kernel benchmarks and heap accounting.

pub mod bench;
pub mod checkpoint;
pub mod compare;
pub mod config;
pub mod data;
pub mod error;
pub mod fuzzing;
pub mod memory;
pub mod models;
pub mod nn;
pub mod ops;
pub mod train;
pub mod viz;

pub use attend_kernels;
pub use candle_core;
pub use rayon;
pub use error::{Error, Result};
