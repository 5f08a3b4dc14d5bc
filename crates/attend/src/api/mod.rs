//! The task-level API every front end calls (the `attend` command line,
//! the Python package): each kind of model trained, evaluated and run from
//! data on disk or in memory, with no logic a front end would have to copy.
//!
//! - [`tagger`]: part-of-speech taggers from CoNLL-U (a treebank read by
//!   [`crate::data::treebank`]): train, continue, score;
//! - [`text`]: raw text (or sentences) in, tagged sentences out, streamed; the
//!   raw-text scores of the CoNLL 2018 shared task;
//! - [`sequence`]: models over vector sequences: train (with a held-out dev
//!   share, a test score, resume), predict, evaluate;
//! - [`graph`]: node classification: train, predict the nodes asked about;
//! - [`seeds`]: multi-seed runs (plans to resume, mean and spread);
//! - [`attention`]: what a model's attention does, as data (per layer and
//!   head for a sentence or a sequence; per neighbour for a graph node).
//!
//! Progress goes to a [`crate::train::Observer`]: [`crate::train::Silent`],
//! [`crate::train::OnEpoch`] (a closure per epoch), or a front end's own
//! (the CLI's progress bars).

pub mod attention;
pub mod graph;
pub mod seeds;
pub mod sequence;
pub mod tagger;
pub mod text;
