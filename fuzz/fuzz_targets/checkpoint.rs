//! cargo-fuzz target: see attend::fuzzing::checkpoint.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| attend::fuzzing::checkpoint(data));
