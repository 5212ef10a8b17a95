//! Processes and threads: getpid and friends, fork, vfork, execve, wait4, exit,
//! clone threads (shared memory, tids, TLS), futex, and preemption of a busy child.

use core::ffi::c_char;
use core::ptr;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering::SeqCst};

use ulib::sys::{self, syscall3, syscall4, syscall6};
use ulib::uapi::*;
use ulib::{check, check_eq, check_err, check_ok, nr, thread};

use crate::util::*;

pub const TESTS: &[Test] = tests![
    execve_ends_the_other_threads,
    getpid_equals_gettid_in_main_thread,
    getppid_in_child_is_the_parent,
    fork_child_exit_status_reaches_wait4,
    exit_status_keeps_only_the_low_8_bits,
    fork_child_writes_its_own_copy_of_memory,
    wait4_without_children_is_echild,
    wait4_for_a_non_child_is_echild,
    wait4_any_child_returns_its_pid,
    wait4_wnohang_on_running_child_returns_zero,
    wait4_unknown_option_is_einval,
    wait4_bad_status_pointer_is_efault_but_reaps,
    child_killed_by_sigsegv_is_reported_by_wait4,
    vfork_parent_waits_until_child_exits,
    vfork_then_execve,
    execve_runs_program_with_argv,
    execve_missing_file_is_enoent,
    execve_directory_is_eacces,
    execve_file_without_exec_permission_is_eacces,
    execve_file_without_a_known_format_is_enoexec,
    execve_bad_pointers_are_efault,
    clone_thread_shares_memory_and_is_joined_by_futex,
    clone_thread_has_own_tid_and_same_pid,
    clone_settls_sets_the_thread_fs_base,
    exit_group_from_a_thread_ends_the_process,
    futex_wait_on_changed_value_is_eagain,
    futex_wait_times_out_with_etimedout,
    futex_wake_without_waiters_returns_zero,
    futex_unaligned_address_is_einval,
    futex_wait_on_unmapped_address_is_efault,
    futex_unknown_op_is_enosys,
    spinning_child_is_preempted,
];

fn getpid_equals_gettid_in_main_thread() -> TestResult {
    let pid = check_ok!(sys::getpid());
    check!(pid > 0);
    check_eq!(sys::gettid(), Ok(pid));
    Ok(())
}

fn getppid_in_child_is_the_parent() -> TestResult {
    let me = check_ok!(sys::getpid());
    let status = run_child(|| status_if(sys::getppid(), Ok(me)))?;
    check_eq!(status.exit_code(), Some(0));
    Ok(())
}

fn fork_child_exit_status_reaches_wait4() -> TestResult {
    let pid = check_ok!(sys::fork());
    if pid == 0 {
        sys::exit_group(42); // the child
    }
    let mut status = 0;
    check_eq!(sys::wait4(pid as i32, Some(&mut status), 0), Ok(pid));
    check_eq!(WaitStatus(status).exit_code(), Some(42));
    check_eq!(status, 42 << 8); // the raw encoding
    Ok(())
}

fn exit_status_keeps_only_the_low_8_bits() -> TestResult {
    let status = run_child(|| 0x1234)?;
    check_eq!(status.exit_code(), Some(0x34));
    Ok(())
}

fn fork_child_writes_its_own_copy_of_memory() -> TestResult {
    static VALUE: AtomicU32 = AtomicU32::new(0);
    VALUE.store(1, SeqCst);
    let status = run_child(|| {
        VALUE.store(2, SeqCst);
        VALUE.load(SeqCst) as i32
    })?;
    check_eq!(status.exit_code(), Some(2));
    check_eq!(VALUE.load(SeqCst), 1);
    Ok(())
}

fn wait4_without_children_is_echild() -> TestResult {
    check_err!(sys::wait4(-1, None, 0), ECHILD);
    check_err!(sys::wait4(-1, None, WNOHANG), ECHILD);
    Ok(())
}

fn wait4_for_a_non_child_is_echild() -> TestResult {
    let me = check_ok!(sys::getpid()) as i32;
    check_err!(sys::wait4(me, None, 0), ECHILD);
    Ok(())
}

fn wait4_any_child_returns_its_pid() -> TestResult {
    let pid = fork_child(|| 3)?;
    let mut status = 0;
    check_eq!(sys::wait4(-1, Some(&mut status), 0), Ok(pid as usize));
    check_eq!(WaitStatus(status).exit_code(), Some(3));
    Ok(())
}

fn wait4_wnohang_on_running_child_returns_zero() -> TestResult {
    let mut fds = [0; 2];
    check_ok!(sys::pipe(&mut fds));
    // The child blocks reading the pipe until the parent closes the write end.
    let pid = fork_child(|| {
        let _ = sys::close(fds[1]);
        status_if(sys::read(fds[0], &mut [0u8; 1]), Ok(0))
    })?;
    check_eq!(sys::wait4(pid, None, WNOHANG), Ok(0));
    check_ok!(sys::close(fds[1]));
    check_eq!(wait_child(pid)?.exit_code(), Some(0));
    check_ok!(sys::close(fds[0]));
    Ok(())
}

fn wait4_unknown_option_is_einval() -> TestResult {
    check_err!(sys::wait4(-1, None, 0x1000), EINVAL);
    Ok(())
}

fn wait4_bad_status_pointer_is_efault_but_reaps() -> TestResult {
    // Linux reaps the child first and only then fails to store its status.
    let pid = fork_child(|| 0)?;
    // SAFETY: the kernel must refuse to write the status at address 1.
    let ret = sys::ret(unsafe { syscall4(nr::WAIT4, pid as usize, UNMAPPED_ADDR, 0, 0) });
    check_err!(ret, EFAULT);
    check_err!(sys::wait4(pid, None, 0), ECHILD);
    Ok(())
}

fn child_killed_by_sigsegv_is_reported_by_wait4() -> TestResult {
    let status = run_child(|| {
        // SAFETY: none: the write must fault and kill the child.
        unsafe { ptr::write_volatile(0x10 as *mut u8, 1) };
        0
    })?;
    check_eq!(status.exit_code(), None);
    check_eq!(status.term_signal(), Some(SIGSEGV));
    Ok(())
}

fn vfork_parent_waits_until_child_exits() -> TestResult {
    static SEEN: AtomicU32 = AtomicU32::new(0);
    SEEN.store(0, SeqCst);
    // SAFETY: the child only stores to a static and exits.
    let pid = check_ok!(sys::ret(unsafe { sys::vfork() }));
    if pid == 0 {
        SEEN.store(1, SeqCst); // the parent's memory: vfork shares it
        sys::exit_group(7);
    }
    // The parent was suspended until the child exited, so the store is already there.
    check_eq!(SEEN.load(SeqCst), 1);
    check_eq!(wait_child(pid as i32)?.exit_code(), Some(7));
    Ok(())
}

fn vfork_then_execve() -> TestResult {
    let exec = Path::from_fmt(format_args!("{}", exec_path()));
    let argv = [c"hello".as_ptr(), c"5".as_ptr(), ptr::null()];
    let envp: [*const c_char; 1] = [ptr::null()];
    let null = check_ok!(sys::open(c"/dev/null", O_WRONLY, 0)) as i32;
    // SAFETY: the child only calls dup2, execve and exit_group, on data prepared above.
    let pid = check_ok!(sys::ret(unsafe { sys::vfork() }));
    if pid == 0 {
        let _ = sys::dup2(null, 1); // the child's own fd table: vfork does not share it
        let _ = sys::execve(exec.as_cstr(), &argv, &envp);
        sys::exit_group(127);
    }
    check_eq!(wait_child(pid as i32)?.exit_code(), Some(5));
    check_ok!(sys::close(null));
    Ok(())
}

/// execve from a thread group: the other threads end (Linux's de_thread), even one
/// sleeping in the kernel, and the new program runs.
fn execve_ends_the_other_threads() -> TestResult {
    let exec = Path::from_fmt(format_args!("{}", exec_path()));
    let null = check_ok!(sys::open(c"/dev/null", O_WRONLY, 0)) as i32;
    let pid = fork_child(|| {
        let sleeper = ulib::thread::spawn(|| {
            loop {
                let _ = sys::nanosleep(&ulib::uapi::Timespec { tv_sec: 100, tv_nsec: 0 }, None);
            }
        });
        if sleeper.is_err() {
            return 125;
        }
        let _ = sys::dup2(null, 1);
        let argv = [c"hello".as_ptr(), c"6".as_ptr(), ptr::null()];
        let _ = sys::execve(exec.as_cstr(), &argv, &[ptr::null()]);
        127
    })?;
    check_eq!(wait_child(pid)?.exit_code(), Some(6));
    check_ok!(sys::close(null));
    Ok(())
}

fn execve_runs_program_with_argv() -> TestResult {
    let exec = Path::from_fmt(format_args!("{}", exec_path()));
    let mut fds = [0; 2];
    check_ok!(sys::pipe(&mut fds));
    let pid = fork_child(|| {
        if sys::dup2(fds[1], 1).is_err() {
            return 126;
        }
        let argv = [c"hello".as_ptr(), c"42".as_ptr(), ptr::null()];
        let _ = sys::execve(exec.as_cstr(), &argv, &[ptr::null()]);
        127
    })?;
    check_ok!(sys::close(fds[1]));
    let mut buf = [0u8; 256];
    let mut len = 0;
    while len < buf.len() {
        match check_ok!(sys::read(fds[0], &mut buf[len..])) {
            0 => break,
            n => len += n,
        }
    }
    check_ok!(sys::close(fds[0]));
    check_eq!(wait_child(pid)?.exit_code(), Some(42));
    let out = core::str::from_utf8(&buf[..len]).unwrap_or("<not UTF-8>");
    check_eq!(
        out,
        "hello from user space\nargv[0] = hello\nargv[1] = 42\n"
    );
    Ok(())
}

/// execve(path, {path, NULL}, {NULL}) in the caller (which the test must expect to fail).
fn exec(path: &Path) -> ulib::errno::Result {
    sys::execve(
        path.as_cstr(),
        &[path.as_cstr().as_ptr(), ptr::null()],
        &[ptr::null()],
    )
}

fn execve_missing_file_is_enoent() -> TestResult {
    check_err!(exec(&scratch("missing")), ENOENT);
    Ok(())
}

fn execve_directory_is_eacces() -> TestResult {
    check_err!(exec(&work_dir()), EACCES);
    Ok(())
}

fn execve_file_without_exec_permission_is_eacces() -> TestResult {
    let path = make_file("noexec", b"#!/bin/sh\n")?; // mode 0644: even root may not run it
    check_err!(exec(&path), EACCES);
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn execve_file_without_a_known_format_is_enoexec() -> TestResult {
    let path = scratch("garbage");
    let fd = check_ok!(sys::open(
        path.as_cstr(),
        O_CREAT | O_WRONLY | O_TRUNC,
        0o755
    )) as i32;
    check_ok!(sys::write(fd, b"neither ELF nor #!\n"));
    check_ok!(sys::close(fd)); // an fd open for writing would make it ETXTBSY
    check_err!(exec(&path), ENOEXEC);
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn execve_bad_pointers_are_efault() -> TestResult {
    let exec = Path::from_fmt(format_args!("{}", exec_path()));
    let envp: [*const c_char; 1] = [ptr::null()];
    // SAFETY: the kernel must refuse the path at address 1; the process stays as it is.
    let ret = sys::ret(unsafe { syscall3(nr::EXECVE, UNMAPPED_ADDR, 0, envp.as_ptr() as usize) });
    check_err!(ret, EFAULT);
    let argv = [
        exec.as_cstr().as_ptr(),
        UNMAPPED_ADDR as *const c_char,
        ptr::null(),
    ];
    // SAFETY: argv[1] is a bad pointer: the kernel must fail before replacing the process.
    let ret = sys::ret(unsafe {
        syscall3(
            nr::EXECVE,
            exec.as_cstr().as_ptr() as usize,
            argv.as_ptr() as usize,
            envp.as_ptr() as usize,
        )
    });
    check_err!(ret, EFAULT);
    Ok(())
}

fn clone_thread_shares_memory_and_is_joined_by_futex() -> TestResult {
    static SHARED: AtomicU32 = AtomicU32::new(0);
    SHARED.store(0, SeqCst);
    let t = check_ok!(thread::spawn(|| {
        SHARED.store(1234, SeqCst);
        5
    }));
    // join futex-waits until CLONE_CHILD_CLEARTID zeroes the tid word at thread exit.
    check_eq!(t.join(), 5);
    check_eq!(SHARED.load(SeqCst), 1234);
    Ok(())
}

fn clone_thread_has_own_tid_and_same_pid() -> TestResult {
    static GATE: AtomicU32 = AtomicU32::new(0);
    static PID: AtomicUsize = AtomicUsize::new(0);
    GATE.store(0, SeqCst);
    // The thread sleeps on GATE until we have looked at its tid word.
    let t = check_ok!(thread::spawn(|| {
        while GATE.load(SeqCst) == 0 {
            let _ = sys::futex_wait(&GATE, 0, None);
        }
        PID.store(sys::getpid().unwrap_or(0), SeqCst);
        sys::gettid().unwrap_or(0) as i32
    }));
    let tid = t.tid();
    check_eq!(t.tid_word(), tid); // CLONE_PARENT_SETTID wrote it before clone returned
    GATE.store(1, SeqCst);
    check_ok!(sys::futex_wake(&GATE, 1));
    check_eq!(t.join() as u32, tid);
    let pid = check_ok!(sys::getpid());
    check_eq!(PID.load(SeqCst), pid); // one process (CLONE_THREAD)...
    check!(tid as usize != pid); // ...with two threads
    Ok(())
}

fn clone_settls_sets_the_thread_fs_base() -> TestResult {
    static FS0: AtomicUsize = AtomicUsize::new(0);
    static FS_BASE: AtomicUsize = AtomicUsize::new(0);
    let t = check_ok!(thread::spawn(|| {
        let (fs0, mut base): (usize, usize);
        // SAFETY: CLONE_SETTLS pointed FS at the thread's control block, whose first
        // TLS word holds its own address.
        unsafe { core::arch::asm!("mov {}, fs:[0]", out(reg) fs0, options(nostack, readonly)) };
        FS0.store(fs0, SeqCst);
        base = 0;
        // SAFETY: ARCH_GET_FS writes 8 bytes to `base`.
        let _ = unsafe { sys::arch_prctl(ARCH_GET_FS, &raw mut base as usize) };
        FS_BASE.store(base, SeqCst);
        0
    }));
    let tls = t.tls();
    t.join();
    check_eq!(FS_BASE.load(SeqCst), tls);
    check_eq!(FS0.load(SeqCst), tls);
    Ok(())
}

fn exit_group_from_a_thread_ends_the_process() -> TestResult {
    let status = run_child(|| {
        let _thread = thread::spawn(|| sys::exit_group(5));
        loop {
            sleep_ms(10); // the main thread would sleep forever
        }
    })?;
    check_eq!(status.exit_code(), Some(5));
    Ok(())
}

fn futex_wait_on_changed_value_is_eagain() -> TestResult {
    let word = AtomicU32::new(1);
    check_err!(sys::futex_wait(&word, 0, None), EAGAIN);
    Ok(())
}

fn futex_wait_times_out_with_etimedout() -> TestResult {
    let word = AtomicU32::new(0);
    let start = now_ns();
    check_err!(
        sys::futex_wait(&word, 0, Some(&Timespec::from_nanos(10_000_000))),
        ETIMEDOUT
    );
    let slept = now_ns() - start;
    check!(slept >= 10_000_000, "woke after {slept} ns");
    Ok(())
}

fn futex_wake_without_waiters_returns_zero() -> TestResult {
    let word = AtomicU32::new(0);
    check_eq!(sys::futex_wake(&word, 1), Ok(0));
    check_eq!(
        sys::futex(&word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, None),
        Ok(0)
    );
    Ok(())
}

fn futex_unaligned_address_is_einval() -> TestResult {
    let words = [AtomicU32::new(0), AtomicU32::new(0)];
    let addr = words.as_ptr() as usize + 1;
    // SAFETY: the kernel must refuse the unaligned address before using it.
    let ret = sys::ret(unsafe { syscall6(nr::FUTEX, addr, FUTEX_WAKE as usize, 1, 0, 0, 0) });
    check_err!(ret, EINVAL);
    Ok(())
}

fn futex_wait_on_unmapped_address_is_efault() -> TestResult {
    // SAFETY: the kernel must fail to read the word at 0x10 (never mapped).
    let ret = sys::ret(unsafe { syscall6(nr::FUTEX, 0x10, FUTEX_WAIT as usize, 0, 0, 0, 0) });
    check_err!(ret, EFAULT);
    Ok(())
}

fn futex_unknown_op_is_enosys() -> TestResult {
    let word = AtomicU32::new(0);
    check_err!(sys::futex(&word, 99, 0, None), ENOSYS);
    Ok(())
}

fn spinning_child_is_preempted() -> TestResult {
    // The child tells us it runs, then spins without a syscall. On one CPU the parent can
    // only get back to the read's result if the kernel preempts the child.
    let mut fds = [0; 2];
    check_ok!(sys::pipe(&mut fds));
    let pid = fork_child(|| {
        let _ = sys::write(fds[1], b"r");
        loop {
            core::hint::spin_loop();
        }
    })?;
    check_ok!(sys::close(fds[1]));
    check_eq!(sys::read(fds[0], &mut [0u8; 1]), Ok(1));
    sleep_ms(20); // and the parent keeps getting CPU time
    check_ok!(sys::kill(pid, SIGKILL));
    check_eq!(wait_child(pid)?.term_signal(), Some(SIGKILL));
    check_ok!(sys::close(fds[0]));
    Ok(())
}
