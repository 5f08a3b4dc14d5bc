//! cargo-fuzz target: see attend::fuzzing::conllu.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| attend::fuzzing::conllu(data));
