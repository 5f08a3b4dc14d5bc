//! cargo-fuzz target: see attend::fuzzing::graph.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| attend::fuzzing::graph(data));
