//! Reading data sets and turning them into batches.

pub mod batch;
pub mod conllu;
pub mod planetoid;
pub mod synthetic;
pub mod vocab;
