//! `vmm` as a command: timeouts, guest crashes, and one-line errors for bad input.

use std::process::Command;

use tests::{guest_elf, kvm_available, vmm, vmm_bin, Outcome};

fn guest() -> String {
    guest_elf().to_str().expect("utf-8 path").to_owned()
}

/// Bad input: exactly one line on stderr, containing `needle`, the given exit code, no
/// backtrace.
#[track_caller]
fn assert_one_line_error(out: &Outcome, code: i32, needle: &str) {
    assert_eq!(out.code, Some(code), "wrong exit code\n{out}");
    assert_eq!(out.stderr.lines().count(), 1, "not one line\n{out}");
    assert!(out.stderr.starts_with("vmm: "), "no vmm: prefix\n{out}");
    assert!(out.stderr.contains(needle), "stderr lacks {needle:?}\n{out}");
    assert!(!out.stderr.contains("panicked"), "panic\n{out}");
}

#[test]
fn timeout_stops_a_spinning_guest() {
    if !kvm_available() {
        return;
    }
    let start = std::time::Instant::now();
    let out = vmm(&["run", &guest(), "--cmdline", "test=spin", "--timeout", "1"]);
    assert_eq!(out.code, Some(124), "{out}");
    assert!(out.stdout.contains("ktest spin: spinning forever"), "{out}");
    assert!(out.stderr.contains("timeout"), "{out}");
    assert!(start.elapsed().as_secs_f64() < 10.0, "took {:?}", start.elapsed());
}

#[test]
fn triple_fault_is_reported_with_rip() {
    if !kvm_available() {
        return;
    }
    let out = vmm(&["run", &guest(), "--cmdline", "test=triple"]);
    assert_one_line_error(&out, 1, "triple fault");
    assert!(out.stderr.contains("rip=0x"), "{out}");
}

#[test]
fn missing_image() {
    assert_one_line_error(&vmm(&["run", "/nonexistent/guest.elf"]), 2, "/nonexistent/guest.elf");
}

#[test]
fn not_an_elf() {
    let path = tests::root().join("Cargo.toml");
    assert_one_line_error(&vmm(&["run", path.to_str().unwrap()]), 2, "not an ELF file");
}

#[test]
fn elf_for_another_machine() {
    let mut bytes = std::fs::read(guest_elf()).expect("read guest");
    bytes[18..20].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
    let path = std::env::temp_dir().join(format!("aarch64-{}.elf", std::process::id()));
    std::fs::write(&path, bytes).expect("write");
    let out = vmm(&["run", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    assert_one_line_error(&out, 2, "ELF for machine 183, expected x86-64");
}

#[test]
fn elf_without_pvh_note() {
    // The VMM binary itself is an x86-64 ELF without a PVH note.
    assert_one_line_error(&vmm(&["run", vmm_bin().to_str().unwrap()]), 2, "no PVH entry point");
}

#[test]
fn unparseable_mem() {
    assert_one_line_error(&vmm(&["run", &guest(), "--mem", "lots"]), 2, "not a size");
}

#[test]
fn mem_below_minimum() {
    assert_one_line_error(&vmm(&["run", &guest(), "--mem", "1M"]), 2, "at least 2 MiB");
}

#[test]
fn mem_too_small_for_initrd() {
    let path = std::env::temp_dir().join(format!("big-initrd-{}", std::process::id()));
    std::fs::write(&path, vec![0u8; 3 << 20]).expect("write");
    let out = vmm(&["run", &guest(), "--mem", "2M", "--initrd", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    assert_one_line_error(&out, 2, "too small");
}

#[test]
fn bad_flag_and_missing_image() {
    assert_one_line_error(&vmm(&["run", &guest(), "--bogus"]), 2, "--bogus");
    assert_one_line_error(&vmm(&["run"]), 2, "<IMAGE>");
    assert_one_line_error(&vmm(&["run", &guest(), "--vcpus", "0"]), 2, "--vcpus");
    assert_one_line_error(&vmm(&["run", &guest(), "--timeout", "soon"]), 2, "--timeout");
}

#[test]
fn kvm_device_missing() {
    assert_one_line_error(&vmm(&["run", &guest(), "--kvm-device", "/nonexistent/kvm"]), 1, "cannot open /nonexistent/kvm");
}

#[test]
fn kvm_device_not_kvm() {
    assert_one_line_error(&vmm(&["run", &guest(), "--kvm-device", "/dev/null"]), 1, "cannot open /dev/null");
}

#[test]
fn kvm_device_not_permitted() {
    if !kvm_available() {
        return;
    }
    // The child drops to `nobody` (setgid, setgroups, setuid: std's Command does them in
    // that order after fork) before exec, so vmm meets /dev/kvm as a user who may not
    // open it. That needs root; and where nobody may open it, there is nothing to see.
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    const NOBODY: u32 = 65534;
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return tests::skip("needs root to switch to an unprivileged user");
    }
    let mode = std::fs::metadata("/dev/kvm").map(|m| m.permissions().mode()).unwrap_or(0);
    if mode & 0o006 != 0 {
        return tests::skip(&format!("/dev/kvm is open to every user here (mode {mode:o})"));
    }
    let mut cmd = Command::new(vmm_bin());
    cmd.args(["run", &guest()]).uid(NOBODY).gid(NOBODY);
    let (code, stdout, stderr) = match tests::try_run(cmd, std::time::Duration::from_secs(60)) {
        Ok(done) => done,
        // A private directory on the way to vmm.
        Err(e) if e.contains("Permission denied") => return tests::skip(&format!("nobody cannot run vmm: {e}")),
        Err(e) => panic!("{e}"),
    };
    let out = Outcome { code, guest_status: None, stdout, stderr };
    assert_one_line_error(&out, 1, "cannot open /dev/kvm");
    assert!(out.stderr.contains("Permission denied"), "{out}");
}

#[test]
fn help_describes_run() {
    let out = vmm(&["run", "--help"]);
    assert_eq!(out.code, Some(0), "{out}");
    for flag in ["--mem", "--vcpus", "--cmdline", "--initrd", "--timeout", "--blk-poll-us", "--no-seccomp", "(status << 1) | 1"] {
        assert!(out.stdout.contains(flag), "help lacks {flag}\n{out}");
    }
}

#[test]
fn bad_blk_poll_us() {
    for (value, needle) in [("abc", "invalid digit"), ("1000001", "not in 0..=1000000"), ("", "empty string"), ("-1", "'-1'")] {
        assert_one_line_error(&vmm(&["run", &guest(), "--blk-poll-us", value]), 2, needle);
    }
}

#[test]
fn overlapping_shares() {
    let dir = tests::scratch_dir("overlap");
    let inner = dir.join("inner");
    std::fs::create_dir(&inner).unwrap();
    let (outer, inner) = (dir.to_str().unwrap(), inner.to_str().unwrap());
    // Refused before anything is loaded: the image need not exist.
    for (a, b) in [(outer, inner), (inner, outer), (outer, outer)] {
        let out = vmm(&["run", "/nonexistent/guest.elf", "--share", a, "--share", &format!("{b},tag=two")]);
        assert_one_line_error(&out, 2, "overlap");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A pipe whose buffer is as small as Linux allows (a page): (read end, write end).
fn small_pipe() -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors, which we own from here on.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: a valid descriptor; F_SETPIPE_SZ only resizes the pipe's buffer.
    unsafe { libc::fcntl(fds[0], libc::F_SETPIPE_SZ, 4096) };
    // SAFETY: fresh descriptors owned by nobody else.
    unsafe { (std::fs::File::from_raw_fd(fds[0]), std::fs::File::from_raw_fd(fds[1])) }
}

/// A guest that prints without end into a stdout nobody reads: the console output blocks,
/// and --timeout still stops vmm on time, with 124 (it used to hang: the vCPU held the
/// serial lock in a blocked write, and the timeout path waited for that lock).
#[test]
fn timeout_with_a_blocked_stdout() {
    if !kvm_available() {
        return;
    }
    let (read_end, write_end) = small_pipe();
    let mut cmd = Command::new(vmm_bin());
    cmd.args(["run", &guest(), "--initrd"]).arg(tests::console::busybox_image());
    // cat prints the 2 MB busybox binary: far more than the pipe and vmm's buffer hold.
    cmd.args(["--cmdline", "init=/bin/cat loglevel=error -- /bin/busybox", "--timeout", "5"]);
    cmd.stdin(std::process::Stdio::null()).stdout(write_end).stderr(std::process::Stdio::piped());
    let start = std::time::Instant::now();
    let mut child = cmd.spawn().expect("start vmm");
    drop(cmd); // our copy of the pipe's write end
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("vmm still running 30 s after a 5 s timeout, its stdout blocked");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let elapsed = start.elapsed();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(124), "{stderr}");
    assert!(stderr.contains("timeout"), "{stderr}");
    assert!(elapsed < std::time::Duration::from_secs(9), "took {elapsed:?}");
    // The pipe is full: stdout was blocked when the timeout came. (Nearly full counts: a
    // write of up to PIPE_BUF bytes waits until all of it fits, so the last one may wait
    // with less than a page queued.)
    let mut queued: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&read_end), libc::FIONREAD, &mut queued) };
    assert!(queued >= 3072, "stdout did not block before the timeout ({queued} bytes queued): the test proves nothing");
}

/// --exit-status-file holds the guest's status, and tells a guest's 124 from a timeout.
#[test]
fn exit_status_file() {
    if !kvm_available() {
        return;
    }
    let file = std::env::temp_dir().join(format!("vmm-exit-status-{}", std::process::id()));
    let path = file.to_str().unwrap();
    let out = vmm(&["run", &guest(), "--cmdline", "test=exit:124", "--exit-status-file", path]);
    assert_eq!(out.code, Some(124), "{out}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "124\n");
    let out = vmm(&["run", &guest(), "--cmdline", "test=exit:300", "--exit-status-file", path]);
    assert_eq!(out.code, Some(255), "a status above 255 is not taken for another\n{out}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "300\n");
    let out = vmm(&["run", &guest(), "--cmdline", "test=spin", "--timeout", "1", "--exit-status-file", path]);
    assert_eq!(out.code, Some(124), "{out}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "", "a timeout leaves the file empty");
    let _ = std::fs::remove_file(&file);
    let out = vmm(&["run", &guest(), "--exit-status-file", "/nonexistent/dir/status"]);
    assert_one_line_error(&out, 2, "--exit-status-file");
}

/// Each thread runs under its seccomp filter, and a call outside it kills vmm by SIGSYS:
/// the test-only hook VMM_SECCOMP_SELFTEST=KIND makes that kind of thread call socket(2)
/// right after installing its (unchanged) filter. With --no-seccomp nothing is filtered
/// and the hook is not armed: the guest runs to its end.
#[test]
fn forbidden_syscall_kills_the_vmm_by_sigsys() {
    use std::os::unix::process::ExitStatusExt;
    if !kvm_available() {
        return;
    }
    let dir = tests::scratch_dir("seccomp");
    let img = dir.join("disk.img");
    std::fs::write(&img, vec![0u8; 1 << 20]).unwrap();
    let (disk, share) = (img.to_str().unwrap(), dir.to_str().unwrap());
    let devices = ["--disk", disk, "--share", share];
    let rootfs = tests::rootfs();
    let run = |hook: &str, extra: &[&str]| {
        let out = Command::new(vmm_bin())
            .args(["run", &guest(), "--initrd", rootfs.to_str().unwrap(), "--timeout", "60"])
            .args(["--cmdline", "init=/bin/hello -- 7"])
            .args(extra)
            .env("VMM_SECCOMP_SELFTEST", hook)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run vmm");
        (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // virtio-net's worker needs a tap: vmm creates this one (CAP_NET_ADMIN, as the tap
    // tests of tests/tests/net.rs need; it goes with vmm). NO_NET=1 leaves that kind out.
    let tap = format!("tap=vsc{}", std::process::id());
    let with_net = [&devices[..], &["--net", &tap]].concat();
    let mut kinds = vec!["main", "vcpu", "stdin", "launcher", "virtio-blk", "virtio-9p", "console-out"];
    if std::env::var("NO_NET").is_ok_and(|v| v == "1") {
        tests::skip("the virtio-net thread's filter not checked because NO_NET=1 is set");
    } else {
        kinds.push("virtio-net");
    }
    for kind in kinds {
        let (status, stderr) = run(kind, if kind == "virtio-net" { &with_net } else { &devices });
        assert_eq!(status.signal(), Some(libc::SIGSYS), "{kind}: {status:?}\n{stderr}");
        assert!(stderr.contains(&format!("the {kind} thread calls socket(2)")), "{kind}: not the hook's call\n{stderr}");
    }
    let (status, stderr) = run("vcpu", &[&devices[..], &["--no-seccomp"]].concat());
    assert_eq!(status.code(), Some(7), "--no-seccomp\n{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
