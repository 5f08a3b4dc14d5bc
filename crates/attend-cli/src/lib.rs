//! What only the tools need, kept out of the core library so that a program
//! that loads a model and tags compiles neither plotting nor benchmarks:
//! - [`viz`]: attention heatmaps and graph node views (plotters);
//! - [`bench`]: kernel and graph-model benchmarks (`attend bench`);
//! - [`compare`]: encoder comparisons (`attend compare`) and the latency plot;
//! - [`timing`]: the one wall-clock sampler they share.

pub mod bench;
pub mod compare;
pub mod timing;
pub mod viz;
