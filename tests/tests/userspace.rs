//! Static Linux programs run unmodified in the guest, under `vmm run` (KVM) and QEMU (TCG):
//! our no_std Rust programs (guest-user/) and a C program linked with musl. The syscall
//! suite `systest` also runs natively on the host's Linux, which must give the same answers.

use tests::{boot_rootfs, on_both_platforms, Platform};

on_both_platforms!(init_gets_its_arguments_and_its_status_reaches_the_host, |p| {
    let out = boot_rootfs(p, "init=/bin/hello -- 42 b");
    out.assert_init_status(p, 42)
        .assert_stdout("hello from user space")
        .assert_stdout("argv[0] = /bin/hello")
        .assert_stdout("argv[1] = 42")
        .assert_stdout("argv[2] = b");
});

on_both_platforms!(default_init_is_the_io_uring_demo, |p| {
    let out = boot_rootfs(p, "");
    out.assert_init_status(p, 0)
        .assert_stdout("demo: pid 1, io_uring_setup(8)")
        .assert_stdout("demo: submitted 2 (WRITE linked to FSYNC)")
        .assert_stdout("demo: cqe user_data=1 res=20")
        .assert_stdout("demo: cqe user_data=2 res=0") // the FSYNC
        .assert_stdout("demo: READV res=20: \"written by io_uring\\n\"")
        .assert_stdout("demo: 8 NOPs completed (user_data sum 828, 8 with res=0)") // 100 + ... + 107
        .assert_stdout("demo: io_uring works");
});

on_both_platforms!(init_program_prints_its_pid_and_arguments, |p| {
    let out = boot_rootfs(p, "init=/bin/init -- one two");
    out.assert_init_status(p, 0).assert_stdout("init: running as pid 1").assert_stdout("init: argv[2] = two");
});

on_both_platforms!(segfault_ends_only_that_process_with_139, |p| {
    let out = boot_rootfs(p, "init=/bin/segv");
    out.assert_init_status(p, 139).assert_stdout("page fault at 0x10").assert_stdout("killed by signal 11");
});

on_both_platforms!(missing_init_is_a_clear_panic, |p| {
    let out = boot_rootfs(p, "init=/bin/nonexistent");
    out.assert_status(101).assert_stdout("cannot run init /bin/nonexistent: error 2");
});

on_both_platforms!(musl_c_program_with_printf_malloc_files_and_a_thread, |p| {
    let out = boot_rootfs(p, "init=/bin/hello-musl -- /tmp");
    out.assert_init_status(p, 7).assert_stdout("musl: ok");
});

on_both_platforms!(glibc_static_pie_program_runs, |p| {
    let out = boot_rootfs(p, "init=/bin/static-pie -- x");
    out.assert_init_status(p, 5).assert_stdout("static-pie: /bin/static-pie with 2 args");
});

/// One boot per family of the syscall suite, so a failure names its family.
macro_rules! systest_family {
    ($($family:ident),*) => { $(
        on_both_platforms!($family, |p| {
            let family = stringify!($family);
            let out = boot_rootfs(p, &format!("init=/bin/systest -- --exec /bin/hello {family}"));
            out.assert_stdout(&format!("test {family}::")).assert_stdout(" passed, 0 failed").assert_status(0);
            assert!(!out.stdout.contains("FAILED"), "{out}");
        });
    )* };
}

mod systest {
    use std::path::PathBuf;
    use std::process::Command;

    use tests::{root, run, scratch_dir};

    use super::*;
    systest_family!(fs, filemap, flock, cred, rlimit, rw, mm, mlock, mremap, memfd, proc, procfs, pidfd, pipe, poll, prctl, sched, smp, rusage, time, timerfd, vdso, utime, misc, wait, jobctl, itimer, sigwait, signalfd, sigrestart);

    /// A program as `make` built it for the host (the same file the rootfs holds in /bin).
    fn built_for_host(name: &str) -> PathBuf {
        let path = root().join("target/x86_64-unknown-linux-gnu/release").join(name);
        assert!(path.exists(), "{} is missing: run `make` first", path.display());
        path
    }

    /// Runs the whole suite natively, its scratch files in a fresh directory and its execve
    /// tests running the host's build of `hello`: (exit code, stdout, stderr).
    fn run_on_host(scratch: &str) -> (Option<i32>, String, String) {
        let dir = scratch_dir(scratch);
        let mut cmd = Command::new(built_for_host("systest"));
        cmd.arg("--dir").arg(&dir).arg("--exec").arg(built_for_host("hello"));
        let out = run(cmd);
        let _ = std::fs::remove_dir_all(&dir);
        out
    }

    /// The same binary on the host's Linux, the reference: every test passes there.
    #[test]
    fn host_linux_passes_the_same_suite() {
        let (code, stdout, stderr) = run_on_host("systest-host");
        assert!(stdout.contains(" passed, 0 failed"), "{stdout}\n{stderr}");
        assert!(!stdout.contains("FAILED"), "{stdout}\n{stderr}");
        assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    }

    /// Every test the guest runs is one the host ran too, with the same verdict.
    #[test]
    fn guest_and_host_run_the_same_tests() {
        let (_, host, _) = run_on_host("systest-names");
        // loglevel=error keeps kernel log lines (a child's page fault, an unknown syscall)
        // out of the middle of a test's line.
        let guest = boot_rootfs(Platform::QemuTcg, "loglevel=error init=/bin/systest -- --exec /bin/hello");
        let lines = |s: &str| s.lines().filter(|l| l.starts_with("test ")).map(str::to_owned).collect::<Vec<_>>();
        assert!(lines(&host).len() > 100, "the host ran too few tests\n{host}");
        assert_eq!(lines(&guest.stdout), lines(&host), "guest and host differ\n{guest}");
    }
}

on_both_platforms!(unknown_syscall_is_logged_with_its_number, |p| {
    let out = boot_rootfs(p, "init=/bin/systest -- misc");
    out.assert_status(0).assert_stdout("unknown syscall");
});

// The fuzzer's seed corpus (tests/fuzz/seeds), replayed: each seed gives the same
// programs; the kernel must neither panic nor hang, and still work afterwards.
on_both_platforms!(fuzzer_seed_corpus_replays_without_a_crash, |p| {
    let corpus = std::fs::read_to_string(tests::root().join("tests/fuzz/seeds")).expect("tests/fuzz/seeds");
    let seeds: Vec<(u64, u64)> = corpus
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split_whitespace().map(|w| w.parse::<u64>().expect("SEED OPS"));
            (f.next().expect("seed"), f.next().expect("ops"))
        })
        .collect();
    assert!(!seeds.is_empty(), "no seeds in tests/fuzz/seeds");
    for (seed, ops) in seeds {
        // Ring 0 is slow under vmm: a tenth of the operations there.
        let ops = if p == Platform::Vmm { ops / 10 } else { ops };
        let out = boot_rootfs(p, &format!("loglevel=error init=/bin/fuzz -- --seed {seed} --ops {ops} --per-child 50 --ms 1000"));
        // loglevel=error keeps the log quiet (no "init exited" line): the VM's status tells.
        out.assert_stdout("fuzz: kernel ok").assert_status(0);
        assert!(!out.stdout.contains("kernel panic"), "seed {seed}: {out}");
    }
});
