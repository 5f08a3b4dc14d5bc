//! Models: a vector set in, one label per vector out.

pub mod graph;
pub mod tagger;

pub use graph::{GraphClassifier, GraphModelConfig, GraphScoreType, GraphTrainConfig};
pub use tagger::{EncoderKind, EvalReport, Tagger, TaggerConfig, LONG_SLICE_WORDS, MAX_DENSE_WORDS};
