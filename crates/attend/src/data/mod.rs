//! Reading data sets and turning them into batches.

pub mod batch;
pub mod conllu;
pub mod planetoid;
pub mod raw_text;
pub mod series;
pub mod synthetic;
pub mod ud_eval;
pub mod vocab;
