//! `make bench` fails when a run fails, and says which.

use std::process::Command;

// A disk image that does not exist: the runs that read it (our guest under vmm and QEMU,
// and the host, which cannot create it in a missing directory) fail, and the bench exits
// 1 naming each, after its tables.
#[test]
fn a_failed_run_fails_the_bench_and_is_named() {
    let out_dir = tests::scratch_dir("bench-fails");
    let out = Command::new(env!("CARGO_BIN_EXE_bench"))
        .env("BENCH_ONLY", "syscalls")
        .env("BENCH_ROUNDS", "1")
        .env("BENCH_IMAGE", "/nonexistent-bench-dir/disk.img")
        .env("BENCH_OUT", &out_dir)
        .output()
        .expect("run the bench");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&out_dir);
    assert_eq!(out.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    for platform in ["host Linux", "vmm (KVM)", "QEMU (TCG)"] {
        assert!(stderr.contains(&format!("make bench: FAILED run: syscalls, {platform}, warm-up")), "{platform} not named\n{stderr}");
    }
    assert!(stdout.contains("FAILED (see the end)"), "the table does not mark the failure\n{stdout}");
}
