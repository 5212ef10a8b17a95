//! `uringrs`, the Rust user library's typed io_uring builders (`ulib::uring::opcode`)
//! exercised op by op: natively on the host's Linux, the reference, and in the guest,
//! which must print the same lines.

use std::process::Command;

use tests::{boot_rootfs, on_both_platforms, root, run, scratch_dir};

/// The `uringrs NAME ... verdict` lines of a transcript.
fn test_lines(out: &str) -> Vec<String> {
    out.lines().filter(|l| l.starts_with("uringrs ")).map(str::to_owned).collect()
}

/// Runs the host build of `uringrs` (the file the rootfs holds in /bin) in a fresh
/// directory: (exit code, stdout, stderr).
fn run_on_host(scratch: &str) -> (Option<i32>, String, String) {
    let bin = root().join("target/x86_64-unknown-linux-gnu/release/uringrs");
    assert!(bin.exists(), "{} is missing: run `make` first", bin.display());
    let dir = scratch_dir(scratch);
    let mut cmd = Command::new(bin);
    cmd.arg(&dir);
    let out = run(cmd);
    let _ = std::fs::remove_dir_all(&dir);
    out
}

#[test]
fn host_linux_passes_uringrs() {
    let (code, stdout, stderr) = run_on_host("uringrs-host");
    assert!(stdout.contains("uringrs: ") && stdout.contains(" passed, 0 failed"), "{stdout}\n{stderr}");
    assert!(!stdout.contains("FAILED"), "{stdout}\n{stderr}");
    assert!(test_lines(&stdout).len() > 20, "too few tests ran\n{stdout}");
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
}

on_both_platforms!(guest_passes_uringrs_like_the_host, |p| {
    let (_, host, _) = run_on_host(&format!("uringrs-{p:?}"));
    // loglevel=error keeps kernel log lines out of the middle of a test's line.
    let guest = boot_rootfs(p, "loglevel=error init=/bin/uringrs");
    guest.assert_stdout(" passed, 0 failed").assert_status(0);
    assert!(!guest.stdout.contains("FAILED"), "{guest}");
    assert_eq!(test_lines(&guest.stdout), test_lines(&host), "guest and host differ\n{guest}");
});
