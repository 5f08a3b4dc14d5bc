//! Models: a vector set in, one label per vector out.

pub mod tagger;

pub use tagger::{EvalReport, Tagger, TaggerConfig};
