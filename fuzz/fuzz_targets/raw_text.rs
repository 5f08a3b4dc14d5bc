//! cargo-fuzz target: see attend::fuzzing::raw_text.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| attend::fuzzing::raw_text(data));
