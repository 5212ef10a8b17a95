//! Everything else: uname, getrandom, prlimit64, scheduling, ids, umask, signals
//! (actions, masks, handlers, the alternate stack, default actions of kill/tgkill),
//! unknown syscall numbers, arch_prctl and set_tid_address.

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering::SeqCst};

use ulib::sys::{self, syscall0, syscall1, syscall3, syscall4};
use ulib::uapi::*;
use ulib::{check, check_eq, check_err, check_ok, nr};

use crate::util::*;

pub const TESTS: &[Test] = tests![
    uname_reports_linux_on_x86_64,
    uname_bad_pointer_is_efault,
    getrandom_fills_the_buffer,
    getrandom_zero_length_returns_zero,
    getrandom_unknown_flag_is_einval,
    getrandom_bad_pointer_is_efault,
    prlimit64_nofile_soft_limit_is_at_most_hard,
    prlimit64_lowers_soft_limit_and_reads_it_back,
    prlimit64_soft_above_hard_is_einval,
    prlimit64_unknown_resource_is_einval,
    prlimit64_missing_pid_is_esrch,
    sched_yield_returns_zero,
    sched_getaffinity_returns_mask_size_and_a_cpu,
    sched_getaffinity_size_not_multiple_of_8_is_einval,
    ids_of_a_plain_process_match_their_effective_ids,
    umask_returns_the_previous_mask,
    rt_sigaction_reads_back_the_installed_action,
    rt_sigaction_cannot_change_sigkill_or_sigstop,
    rt_sigaction_signal_out_of_range_is_einval,
    rt_sigaction_wrong_sigset_size_is_einval,
    kill_self_runs_the_handler_before_returning,
    blocked_signal_is_delivered_when_unblocked,
    handler_with_sa_onstack_runs_on_the_alternate_stack,
    rt_sigprocmask_blocks_and_reads_back,
    rt_sigprocmask_cannot_block_sigkill_or_sigstop,
    rt_sigprocmask_bad_how_is_einval,
    sigaltstack_set_query_and_disable,
    sigaltstack_smaller_than_minsigstksz_is_enomem,
    sigaltstack_unknown_flag_is_einval,
    kill_sigterm_default_action_terminates,
    tgkill_sigusr1_default_action_terminates,
    kill_sigchld_default_action_is_to_ignore,
    kill_signal_zero_probes_for_the_process,
    kill_unknown_signal_is_einval,
    tgkill_wrong_tgid_is_esrch,
    tgkill_nonpositive_ids_are_einval,
    unknown_syscall_numbers_are_enosys,
    arch_prctl_sets_and_reads_back_fs_base,
    arch_prctl_set_fs_outside_user_space_is_eperm,
    arch_prctl_unknown_code_is_einval,
    arch_prctl_get_fs_to_bad_pointer_is_efault,
    set_tid_address_returns_the_callers_tid,
];

fn uname_reports_linux_on_x86_64() -> TestResult {
    let mut u = Utsname::default();
    check_eq!(sys::uname(&mut u), Ok(0));
    check_eq!(field_str(&u.sysname), "Linux");
    check_eq!(field_str(&u.machine), "x86_64");
    check!(!field_str(&u.release).is_empty());
    Ok(())
}

fn uname_bad_pointer_is_efault() -> TestResult {
    check_err!(
        // SAFETY: the kernel must refuse to write the utsname at address 1.
        sys::ret(unsafe { syscall1(nr::UNAME, UNMAPPED_ADDR) }),
        EFAULT
    );
    Ok(())
}

fn getrandom_fills_the_buffer() -> TestResult {
    let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
    check_eq!(sys::getrandom(&mut a, 0), Ok(32));
    check_eq!(sys::getrandom(&mut b, GRND_NONBLOCK), Ok(32));
    check!(a != b && a != [0; 32], "two draws of 32 random bytes agree");
    Ok(())
}

fn getrandom_zero_length_returns_zero() -> TestResult {
    check_eq!(sys::getrandom(&mut [], 0), Ok(0));
    Ok(())
}

fn getrandom_unknown_flag_is_einval() -> TestResult {
    check_err!(sys::getrandom(&mut [0u8; 4], 0x40), EINVAL);
    Ok(())
}

fn getrandom_bad_pointer_is_efault() -> TestResult {
    // SAFETY: the kernel must refuse to write at address 1.
    let ret = sys::ret(unsafe { syscall3(nr::GETRANDOM, UNMAPPED_ADDR, 16, 0) });
    check_err!(ret, EFAULT);
    Ok(())
}

fn prlimit64_nofile_soft_limit_is_at_most_hard() -> TestResult {
    let mut lim = Rlimit::default();
    check_eq!(
        sys::prlimit64(0, RLIMIT_NOFILE, None, Some(&mut lim)),
        Ok(0)
    );
    check!(lim.rlim_cur > 3 && lim.rlim_cur <= lim.rlim_max, "{lim:?}");
    check_ok!(sys::prlimit64(0, RLIMIT_STACK, None, Some(&mut lim)));
    check!(lim.rlim_cur > 0 && lim.rlim_cur <= lim.rlim_max, "{lim:?}"); // RLIM_INFINITY is the largest
    Ok(())
}

fn prlimit64_lowers_soft_limit_and_reads_it_back() -> TestResult {
    let mut old = Rlimit::default();
    check_ok!(sys::prlimit64(0, RLIMIT_NOFILE, None, Some(&mut old)));
    let lower = Rlimit {
        rlim_cur: 64,
        rlim_max: old.rlim_max,
    };
    let mut prev = Rlimit::default();
    check_ok!(sys::prlimit64(
        0,
        RLIMIT_NOFILE,
        Some(&lower),
        Some(&mut prev)
    ));
    check_eq!(prev, old); // the old value comes back from the same call
    let mut now = Rlimit::default();
    check_ok!(sys::prlimit64(0, RLIMIT_NOFILE, None, Some(&mut now)));
    check_eq!(now, lower);
    check_ok!(sys::prlimit64(0, RLIMIT_NOFILE, Some(&old), None)); // raising back to hard is fine
    Ok(())
}

fn prlimit64_soft_above_hard_is_einval() -> TestResult {
    let bad = Rlimit {
        rlim_cur: 100,
        rlim_max: 50,
    };
    check_err!(sys::prlimit64(0, RLIMIT_NOFILE, Some(&bad), None), EINVAL);
    Ok(())
}

fn prlimit64_unknown_resource_is_einval() -> TestResult {
    let mut lim = Rlimit::default();
    check_err!(sys::prlimit64(0, 16, None, Some(&mut lim)), EINVAL); // RLIM_NLIMITS is 16
    Ok(())
}

fn prlimit64_missing_pid_is_esrch() -> TestResult {
    let pid = fork_child(|| 0)?;
    wait_child(pid)?; // reaped: the pid is free now
    let mut lim = Rlimit::default();
    check_err!(
        sys::prlimit64(pid, RLIMIT_NOFILE, None, Some(&mut lim)),
        ESRCH
    );
    Ok(())
}

fn sched_yield_returns_zero() -> TestResult {
    check_eq!(sys::sched_yield(), Ok(0));
    Ok(())
}

fn sched_getaffinity_returns_mask_size_and_a_cpu() -> TestResult {
    // The raw syscall returns how many bytes of mask it wrote (a multiple of 8).
    let mut mask = [0u8; 128];
    let n = check_ok!(sys::sched_getaffinity(0, &mut mask));
    check!(n > 0 && n % 8 == 0 && n <= mask.len(), "returned {n}");
    check!(mask[..n].iter().any(|&b| b != 0), "no CPU in the mask");
    Ok(())
}

fn sched_getaffinity_size_not_multiple_of_8_is_einval() -> TestResult {
    check_err!(sys::sched_getaffinity(0, &mut [0u8; 7]), EINVAL);
    Ok(())
}

fn ids_of_a_plain_process_match_their_effective_ids() -> TestResult {
    check_eq!(sys::getuid(), sys::geteuid());
    check_eq!(sys::getgid(), sys::getegid());
    check_ok!(sys::getuid());
    check_ok!(sys::getgid());
    Ok(())
}

fn umask_returns_the_previous_mask() -> TestResult {
    let old = check_ok!(sys::umask(0o027));
    check_eq!(sys::umask(old as u32), Ok(0o027));
    check_eq!(sys::umask(0o1777), Ok(old)); // only the 0777 bits are kept...
    check_eq!(sys::umask(old as u32), Ok(0o777)); // ...as this shows
    Ok(())
}

/// Installs `act` for `sig`; returns the previous action.
fn set_action(sig: i32, act: &SigAction) -> Result<SigAction, Failure> {
    let mut old = SigAction::default();
    // SAFETY: the handlers used in this file only touch atomics, and use restore_rt.
    check_ok!(unsafe { sys::rt_sigaction(sig, Some(act), Some(&mut old)) });
    Ok(old)
}

/// A handler that counts its calls and records where its stack was.
extern "C" fn count_signal(_sig: i32) {
    let local = 0u8;
    HANDLER_SP.store(&raw const local as usize, SeqCst);
    HITS.fetch_add(1, SeqCst);
}
static HITS: AtomicU32 = AtomicU32::new(0);
static HANDLER_SP: AtomicUsize = AtomicUsize::new(0);

fn counting_action(flags: u64) -> SigAction {
    SigAction {
        handler: count_signal as *const () as usize,
        flags: SA_RESTORER | flags,
        restorer: sys::restore_rt as *const () as usize,
        mask: 0,
    }
}

fn rt_sigaction_reads_back_the_installed_action() -> TestResult {
    // The kernel drops SIGKILL and SIGSTOP from the handler's mask.
    let mask = sigbit(SIGUSR1) | sigbit(SIGKILL) | sigbit(SIGSTOP);
    let act = SigAction {
        handler: SIG_IGN,
        flags: SA_RESTART,
        restorer: 0,
        mask,
    };
    let old = set_action(SIGUSR2, &act)?;
    let mut now = SigAction::default();
    // SAFETY: only reads the action.
    check_ok!(unsafe { sys::rt_sigaction(SIGUSR2, None, Some(&mut now)) });
    check_eq!(
        now,
        SigAction {
            mask: sigbit(SIGUSR1),
            ..act
        }
    );
    set_action(SIGUSR2, &old)?;
    Ok(())
}

fn rt_sigaction_cannot_change_sigkill_or_sigstop() -> TestResult {
    let ignore = SigAction {
        handler: SIG_IGN,
        ..SigAction::default()
    };
    for sig in [SIGKILL, SIGSTOP] {
        check_err!(
            // SAFETY: refused.
            unsafe { sys::rt_sigaction(sig, Some(&ignore), None) },
            EINVAL
        );
        let mut now = SigAction {
            handler: 7,
            ..SigAction::default()
        };
        // SAFETY: only reads the action, which is allowed.
        check_ok!(unsafe { sys::rt_sigaction(sig, None, Some(&mut now)) });
        check_eq!(now.handler, SIG_DFL);
    }
    Ok(())
}

fn rt_sigaction_signal_out_of_range_is_einval() -> TestResult {
    let mut old = SigAction::default();
    for sig in [0, 65] {
        check_err!(
            // SAFETY: only reads (and is refused).
            unsafe { sys::rt_sigaction(sig, None, Some(&mut old)) },
            EINVAL
        );
    }
    Ok(())
}

fn rt_sigaction_wrong_sigset_size_is_einval() -> TestResult {
    // SAFETY: no pointers; refused for its sigsetsize of 4 (x86-64 wants 8).
    let ret = sys::ret(unsafe { syscall4(nr::RT_SIGACTION, SIGUSR1 as usize, 0, 0, 4) });
    check_err!(ret, EINVAL);
    // SAFETY: as above, for rt_sigprocmask.
    let ret = sys::ret(unsafe { syscall4(nr::RT_SIGPROCMASK, SIG_BLOCK as usize, 0, 0, 4) });
    check_err!(ret, EINVAL);
    Ok(())
}

fn kill_self_runs_the_handler_before_returning() -> TestResult {
    let old = set_action(SIGUSR1, &counting_action(0))?;
    HITS.store(0, SeqCst);
    let me = check_ok!(sys::getpid()) as i32;
    check_eq!(sys::kill(me, SIGUSR1), Ok(0));
    check_eq!(HITS.load(SeqCst), 1); // delivered on the way out of kill
    let tid = check_ok!(sys::gettid()) as i32;
    check_eq!(sys::tgkill(me, tid, SIGUSR1), Ok(0));
    check_eq!(HITS.load(SeqCst), 2);
    set_action(SIGUSR1, &old)?;
    Ok(())
}

fn blocked_signal_is_delivered_when_unblocked() -> TestResult {
    let old = set_action(SIGUSR1, &counting_action(0))?;
    HITS.store(0, SeqCst);
    let mut old_mask = 0;
    check_ok!(sys::rt_sigprocmask(
        SIG_BLOCK,
        Some(&sigbit(SIGUSR1)),
        Some(&mut old_mask)
    ));
    check_ok!(sys::kill(check_ok!(sys::getpid()) as i32, SIGUSR1));
    check_eq!(HITS.load(SeqCst), 0); // pending
    check_ok!(sys::rt_sigprocmask(SIG_SETMASK, Some(&old_mask), None));
    check_eq!(HITS.load(SeqCst), 1); // delivered on the way out of rt_sigprocmask
    set_action(SIGUSR1, &old)?;
    Ok(())
}

fn handler_with_sa_onstack_runs_on_the_alternate_stack() -> TestResult {
    const SIZE: usize = 4 * PAGE_SIZE;
    let stack = map_anon(SIZE, PROT_READ | PROT_WRITE)?;
    let ss = SigStack {
        ss_sp: stack,
        ss_flags: 0,
        ss_size: SIZE,
    };
    let mut old_ss = SigStack::default();
    // SAFETY: the mapping is reserved for signal frames until we disable it below.
    check_ok!(unsafe { sys::sigaltstack(Some(&ss), Some(&mut old_ss)) });
    let old = set_action(SIGUSR1, &counting_action(SA_ONSTACK))?;
    check_ok!(sys::kill(check_ok!(sys::getpid()) as i32, SIGUSR1));
    let sp = HANDLER_SP.load(SeqCst);
    set_action(SIGUSR1, &old)?;
    // SAFETY: restores the previous (disabled) state; the mapping is then unused.
    check_ok!(unsafe { sys::sigaltstack(Some(&old_ss), None) });
    unmap(stack, SIZE)?; // no longer the alternate stack
    check!(
        (stack..stack + SIZE).contains(&sp),
        "handler stack {sp:#x} outside {stack:#x}+{SIZE:#x}"
    );
    Ok(())
}

fn rt_sigprocmask_blocks_and_reads_back() -> TestResult {
    let mut old = 0;
    check_eq!(
        sys::rt_sigprocmask(SIG_BLOCK, Some(&sigbit(SIGUSR2)), Some(&mut old)),
        Ok(0)
    );
    let mut now = 0;
    check_ok!(sys::rt_sigprocmask(SIG_BLOCK, None, Some(&mut now))); // no set: a query
    check_eq!(now, old | sigbit(SIGUSR2));
    check_ok!(sys::rt_sigprocmask(
        SIG_UNBLOCK,
        Some(&sigbit(SIGUSR2)),
        Some(&mut now)
    ));
    check_eq!(now & sigbit(SIGUSR2), sigbit(SIGUSR2));
    check_ok!(sys::rt_sigprocmask(SIG_SETMASK, Some(&old), None));
    Ok(())
}

fn rt_sigprocmask_cannot_block_sigkill_or_sigstop() -> TestResult {
    let mut old = 0;
    let both = sigbit(SIGKILL) | sigbit(SIGSTOP);
    check_eq!(
        sys::rt_sigprocmask(SIG_BLOCK, Some(&both), Some(&mut old)),
        Ok(0)
    ); // silently
    let mut now = 0;
    check_ok!(sys::rt_sigprocmask(SIG_BLOCK, None, Some(&mut now)));
    check_eq!(now & both, 0);
    check_ok!(sys::rt_sigprocmask(SIG_SETMASK, Some(&old), None));
    Ok(())
}

fn rt_sigprocmask_bad_how_is_einval() -> TestResult {
    check_err!(sys::rt_sigprocmask(3, Some(&0), None), EINVAL);
    let mut now = 0;
    check_eq!(sys::rt_sigprocmask(3, None, Some(&mut now)), Ok(0)); // no set: how is ignored
    Ok(())
}

fn sigaltstack_set_query_and_disable() -> TestResult {
    const SIZE: usize = 2 * PAGE_SIZE;
    let mut old = SigStack::default();
    // SAFETY: a query.
    check_ok!(unsafe { sys::sigaltstack(None, Some(&mut old)) });
    check_eq!(old.ss_flags, SS_DISABLE); // none yet
    let stack = map_anon(SIZE, PROT_READ | PROT_WRITE)?;
    let ss = SigStack {
        ss_sp: stack,
        ss_flags: 0,
        ss_size: SIZE,
    };
    // SAFETY: the mapping is reserved for signal frames until disabled below.
    check_eq!(unsafe { sys::sigaltstack(Some(&ss), None) }, Ok(0));
    let mut now = SigStack::default();
    // SAFETY: a query.
    check_ok!(unsafe { sys::sigaltstack(None, Some(&mut now)) });
    check_eq!(now, ss);
    let off = SigStack {
        ss_flags: SS_DISABLE,
        ..SigStack::default()
    };
    // SAFETY: disables the alternate stack.
    check_ok!(unsafe { sys::sigaltstack(Some(&off), None) });
    unmap(stack, SIZE) // no longer the alternate stack
}

fn sigaltstack_smaller_than_minsigstksz_is_enomem() -> TestResult {
    let mut buf = [0u8; 1024];
    let ss = SigStack {
        ss_sp: buf.as_mut_ptr() as usize,
        ss_flags: 0,
        ss_size: buf.len(),
    };
    // SAFETY: refused (smaller than MINSIGSTKSZ = 2048): nothing is installed.
    check_err!(unsafe { sys::sigaltstack(Some(&ss), None) }, ENOMEM);
    Ok(())
}

fn sigaltstack_unknown_flag_is_einval() -> TestResult {
    let ss = SigStack {
        ss_sp: 0,
        ss_flags: 0x4,
        ss_size: 0,
    };
    // SAFETY: refused: nothing is installed.
    check_err!(unsafe { sys::sigaltstack(Some(&ss), None) }, EINVAL);
    Ok(())
}

fn kill_sigterm_default_action_terminates() -> TestResult {
    let pid = fork_child(|| {
        loop {
            sleep_ms(10);
        }
    })?;
    check_eq!(sys::kill(pid, SIGTERM), Ok(0));
    check_eq!(wait_child(pid)?.term_signal(), Some(SIGTERM));
    Ok(())
}

fn tgkill_sigusr1_default_action_terminates() -> TestResult {
    let status = run_child(|| {
        let (pid, tid) = (sys::getpid().unwrap_or(0), sys::gettid().unwrap_or(0));
        let _ = sys::tgkill(pid as i32, tid as i32, SIGUSR1);
        0
    })?;
    check_eq!(status.term_signal(), Some(SIGUSR1));
    Ok(())
}

fn kill_sigchld_default_action_is_to_ignore() -> TestResult {
    let status = run_child(|| {
        let pid = sys::getpid().unwrap_or(0) as i32;
        status_if(sys::kill(pid, SIGCHLD), Ok(0))
    })?;
    check_eq!(status.exit_code(), Some(0));
    Ok(())
}

fn kill_signal_zero_probes_for_the_process() -> TestResult {
    let me = check_ok!(sys::getpid()) as i32;
    check_eq!(sys::kill(me, 0), Ok(0));
    let pid = fork_child(|| 0)?;
    wait_child(pid)?;
    check_err!(sys::kill(pid, 0), ESRCH); // reaped: gone
    Ok(())
}

fn kill_unknown_signal_is_einval() -> TestResult {
    let me = check_ok!(sys::getpid()) as i32;
    check_err!(sys::kill(me, 65), EINVAL);
    check_err!(sys::kill(me, -1), EINVAL);
    Ok(())
}

fn tgkill_wrong_tgid_is_esrch() -> TestResult {
    let pid = fork_child(|| 0)?;
    wait_child(pid)?;
    let tid = check_ok!(sys::gettid()) as i32;
    check_err!(sys::tgkill(pid, tid, 0), ESRCH); // our thread, but not in that group
    Ok(())
}

fn tgkill_nonpositive_ids_are_einval() -> TestResult {
    let me = check_ok!(sys::getpid()) as i32;
    check_err!(sys::tgkill(0, me, 0), EINVAL);
    check_err!(sys::tgkill(me, -1, 0), EINVAL);
    Ok(())
}

fn unknown_syscall_numbers_are_enosys() -> TestResult {
    // 400 lies in the unused gap of the table (335..=423); -1 is what seccomp and
    // ptrace use for "no syscall".
    for number in [400, 1000, 100_000, usize::MAX] {
        // SAFETY: no such syscall: nothing happens.
        let ret = sys::ret(unsafe { syscall0(number) });
        check!(ret == Err(ulib::Errno::ENOSYS), "syscall {number}: {ret:?}");
    }
    Ok(())
}

fn arch_prctl_sets_and_reads_back_fs_base() -> TestResult {
    // A thread control block whose first word points at itself, as TLS code expects.
    static TCB: AtomicUsize = AtomicUsize::new(0);
    let tcb = TCB.as_ptr() as usize;
    TCB.store(tcb, SeqCst);
    let mut old = 0usize;
    // Nothing in this program uses thread-local storage, so FS is ours to change.
    // SAFETY: see above; GET writes 8 bytes to a local.
    check_ok!(unsafe { sys::arch_prctl(ARCH_GET_FS, &raw mut old as usize) });
    // SAFETY: see above.
    check_eq!(unsafe { sys::arch_prctl(ARCH_SET_FS, tcb) }, Ok(0));
    let mut base = 0usize;
    // SAFETY: see above.
    check_ok!(unsafe { sys::arch_prctl(ARCH_GET_FS, &raw mut base as usize) });
    let fs0: usize;
    // SAFETY: FS points at TCB, which is mapped.
    unsafe { core::arch::asm!("mov {}, fs:[0]", out(reg) fs0, options(nostack, readonly)) };
    // SAFETY: see above.
    check_ok!(unsafe { sys::arch_prctl(ARCH_SET_FS, old) });
    check_eq!(base, tcb);
    check_eq!(fs0, tcb);
    Ok(())
}

fn arch_prctl_set_fs_outside_user_space_is_eperm() -> TestResult {
    // SAFETY: refused: FS stays as it is.
    check_err!(unsafe { sys::arch_prctl(ARCH_SET_FS, KERNEL_ADDR) }, EPERM);
    Ok(())
}

fn arch_prctl_unknown_code_is_einval() -> TestResult {
    // SAFETY: refused: no such code.
    check_err!(unsafe { sys::arch_prctl(0x9999, 0) }, EINVAL);
    Ok(())
}

fn arch_prctl_get_fs_to_bad_pointer_is_efault() -> TestResult {
    check_err!(
        // SAFETY: the kernel must refuse to write at address 1.
        unsafe { sys::arch_prctl(ARCH_GET_FS, UNMAPPED_ADDR) },
        EFAULT
    );
    Ok(())
}

fn set_tid_address_returns_the_callers_tid() -> TestResult {
    // The kernel zeroes this word when the main thread exits (if other threads share
    // the memory then); it lives as long as the process.
    static CLEAR_AT_EXIT: AtomicU32 = AtomicU32::new(0);
    // SAFETY: a static word outlives the thread.
    let tid = check_ok!(unsafe { sys::set_tid_address(CLEAR_AT_EXIT.as_ptr()) });
    check_eq!(sys::gettid(), Ok(tid));
    Ok(())
}
