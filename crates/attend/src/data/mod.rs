//! Reading data sets and turning them into batches.

pub mod batch;
pub mod conllu;
pub mod pickle;
pub mod planetoid;
pub mod planetoid_release;
pub mod raw_text;
pub mod series;
pub mod synthetic;
pub mod treebank;
pub mod ud_eval;
pub mod vocab;
