//! cargo-fuzz target: see attend::fuzzing::pickle.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| attend::fuzzing::pickle(data));
