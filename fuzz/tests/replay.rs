//! Replays every committed input of `corpus/<target>` (seeds and crash reproducers)
//! through its target, without libFuzzer: `cd fuzz && cargo test` (a second or so).

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        eprintln!("{target}: {}", path.display());
        run(&std::fs::read(&path).unwrap());
        n += 1;
    }
    assert!(n > 0, "no input in {}", dir.display());
}

#[test]
fn mmio() {
    replay("mmio", vmm_fuzz::targets::mmio::run);
}

#[test]
fn virtq() {
    replay("virtq", vmm_fuzz::targets::virtq::run);
}

#[test]
fn p9() {
    replay("p9", vmm_fuzz::targets::p9::run);
}

#[test]
fn net() {
    replay("net", vmm_fuzz::targets::net::run);
}
