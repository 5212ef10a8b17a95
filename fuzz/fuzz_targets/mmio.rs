//! The `mmio` fuzz target: see `src/targets/mmio.rs` for what an input is.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vmm_fuzz::targets::mmio::run(data));
