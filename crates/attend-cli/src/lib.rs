//! What only the tools need, kept out of the core library so that a program
//! that loads a model and tags compiles neither plotting nor benchmarks:
//! - [`viz`]: attention heatmaps and graph node views (plotters);
//! - [`bench`]: kernel and graph-model benchmarks (`attend bench`);
//! - [`bench_tagger`]: the default tagger end to end (`attend bench tagger`);
//! - [`compare`]: encoder comparisons (`attend compare`) and the latency plot;
//! - [`timing`]: the one wall-clock sampler they share;
//! - [`alloc`]: the binary's allocator settings; [`memory`]: the counting
//!   allocator behind the benchmarks' peak-memory columns.

pub mod alloc;
pub mod bench;
pub mod bench_tagger;
pub mod compare;
pub mod memory;
pub mod timing;
pub mod viz;
