//! Links every binary as a static, non-PIE executable with no C runtime: `ulib::rt`
//! provides `_start`, and `ulib::mem` provides the `mem*` functions the compiler calls.
fn main() {
    for arg in ["-nostartfiles", "-nostdlib", "-static", "-no-pie"] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
