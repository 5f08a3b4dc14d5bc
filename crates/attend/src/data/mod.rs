//! Reading data sets and turning them into batches.

pub mod batch;
pub mod conllu;
pub mod vocab;
