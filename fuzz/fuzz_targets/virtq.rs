//! The `virtq` fuzz target: see `src/targets/virtq.rs` for what an input is.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vmm_fuzz::targets::virtq::run(data));
