//! Models: a vector set in, one label per vector out. Each is a composition
//! of parts from [`crate::nn`] (front end, encoder, head) with a task
//! adapter for the training loop ([`crate::train::Task`]).

pub mod graph;
pub mod segmenter;
pub mod sequence;
pub mod tagger;

pub use crate::nn::sequence::EncoderKind;
pub use graph::config::{GraphModelConfig, GraphScoreType, GraphTrainConfig};
pub use graph::GraphClassifier;
pub use tagger::config::TaggerConfig;
pub use tagger::eval::EvalReport;
pub use tagger::{Tagger, EVAL_BATCH_TOKENS, LONG_SLICE_WORDS, MAX_DENSE_WORDS, TAG_BATCH_TOKENS};
