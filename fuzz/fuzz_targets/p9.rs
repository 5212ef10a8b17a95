//! The `p9` fuzz target: see `src/targets/p9.rs` for what an input is.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vmm_fuzz::targets::p9::run(data));
