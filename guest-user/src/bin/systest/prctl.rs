//! Process controls: prctl's common options, the parent-death signal and child
//! subreapers (which change who adopts orphans), close_range, membarrier, sysinfo.

use ulib::sys::{self, syscall1, syscall3, syscall5};
use ulib::uapi::*;
use ulib::{Errno, check, check_eq, check_err, check_ok, nr};

use crate::util::*;

pub const TESTS: &[Test] = tests![
    prctl_name_is_set_truncated_and_read_back,
    prctl_name_is_inherited_by_fork,
    prctl_dumpable_and_keepcaps_take_zero_or_one,
    prctl_no_new_privs_is_one_way_and_inherited,
    prctl_timerslack_defaults_back_on_zero,
    prctl_capbset_read_and_seccomp_mode,
    prctl_get_tid_address_reads_set_tid_address,
    prctl_unknown_option_is_einval,
    pdeathsig_is_sent_when_the_parent_exits,
    subreaper_adopts_orphaned_grandchildren,
    close_range_closes_or_marks_cloexec,
    close_range_bad_arguments_are_einval,
    membarrier_query_and_private_registration,
    sysinfo_reports_uptime_memory_and_tasks,
];

const PR_SET_PDEATHSIG: usize = 1;
const PR_GET_PDEATHSIG: usize = 2;
const PR_GET_DUMPABLE: usize = 3;
const PR_SET_DUMPABLE: usize = 4;
const PR_GET_KEEPCAPS: usize = 7;
const PR_SET_KEEPCAPS: usize = 8;
const PR_SET_NAME: usize = 15;
const PR_GET_NAME: usize = 16;
const PR_GET_SECCOMP: usize = 21;
const PR_CAPBSET_READ: usize = 23;
const PR_SET_TIMERSLACK: usize = 29;
const PR_GET_TIMERSLACK: usize = 30;
const PR_SET_CHILD_SUBREAPER: usize = 36;
const PR_GET_CHILD_SUBREAPER: usize = 37;
const PR_SET_NO_NEW_PRIVS: usize = 38;
const PR_GET_NO_NEW_PRIVS: usize = 39;
const PR_GET_TID_ADDRESS: usize = 40;

fn prctl(option: usize, arg2: usize) -> ulib::errno::Result {
    // SAFETY: the options used here read or write at most 16 bytes at arg2, which the
    // callers point at buffers of theirs (or pass a plain value).
    sys::ret(unsafe { syscall5(nr::PRCTL, option, arg2, 0, 0, 0) })
}

fn get_name() -> Result<[u8; 16], Failure> {
    let mut name = [0xffu8; 16];
    check_eq!(prctl(PR_GET_NAME, name.as_mut_ptr() as usize), Ok(0));
    Ok(name)
}

fn prctl_name_is_set_truncated_and_read_back() -> TestResult {
    let old = get_name()?;
    check_eq!(prctl(PR_SET_NAME, c"worker".as_ptr() as usize), Ok(0));
    check_eq!(&get_name()?[..7], b"worker\0");
    // At most 15 bytes are kept, and a NUL ends the name.
    check_eq!(prctl(PR_SET_NAME, c"a-name-longer-than-fifteen".as_ptr() as usize), Ok(0));
    check_eq!(&get_name()?, b"a-name-longer-t\0");
    check_err!(prctl(PR_SET_NAME, UNMAPPED_ADDR), EFAULT);
    check_err!(prctl(PR_GET_NAME, UNMAPPED_ADDR), EFAULT);
    check_eq!(prctl(PR_SET_NAME, old.as_ptr() as usize), Ok(0));
    Ok(())
}

fn prctl_name_is_inherited_by_fork() -> TestResult {
    let old = get_name()?;
    check_eq!(prctl(PR_SET_NAME, c"parent-name".as_ptr() as usize), Ok(0));
    let status = run_child(|| {
        let mut name = [0u8; 16];
        let _ = prctl(PR_GET_NAME, name.as_mut_ptr() as usize);
        status_if(&name[..12], b"parent-name\0")
    })?;
    check_eq!(prctl(PR_SET_NAME, old.as_ptr() as usize), Ok(0));
    check_eq!(status.exit_code(), Some(0));
    Ok(())
}

fn prctl_dumpable_and_keepcaps_take_zero_or_one() -> TestResult {
    check_eq!(prctl(PR_GET_DUMPABLE, 0), Ok(1));
    check_err!(prctl(PR_SET_DUMPABLE, 2), EINVAL);
    check_eq!(prctl(PR_SET_DUMPABLE, 0), Ok(0));
    check_eq!(prctl(PR_GET_DUMPABLE, 0), Ok(0));
    check_eq!(prctl(PR_SET_DUMPABLE, 1), Ok(0));
    check_eq!(prctl(PR_GET_KEEPCAPS, 0), Ok(0));
    check_err!(prctl(PR_SET_KEEPCAPS, 2), EINVAL);
    check_eq!(prctl(PR_SET_KEEPCAPS, 1), Ok(0));
    check_eq!(prctl(PR_GET_KEEPCAPS, 0), Ok(1));
    check_eq!(prctl(PR_SET_KEEPCAPS, 0), Ok(0));
    Ok(())
}

fn prctl_no_new_privs_is_one_way_and_inherited() -> TestResult {
    // Set in a child (it cannot be cleared), whose own child sees it.
    let status = run_child(|| {
        let get = || prctl(PR_GET_NO_NEW_PRIVS, 0);
        if get() != Ok(0) || prctl(PR_SET_NO_NEW_PRIVS, 0) != Err(Errno::EINVAL) {
            return 1;
        }
        // SAFETY: no memory is passed.
        let extra = sys::ret(unsafe { syscall5(nr::PRCTL, PR_SET_NO_NEW_PRIVS, 1, 1, 0, 0) });
        if extra != Err(Errno::EINVAL) || prctl(PR_SET_NO_NEW_PRIVS, 1) != Ok(0) || get() != Ok(1) {
            return 2;
        }
        // SAFETY: as above.
        let bad_get = sys::ret(unsafe { syscall5(nr::PRCTL, PR_GET_NO_NEW_PRIVS, 1, 0, 0, 0) });
        if bad_get != Err(Errno::EINVAL) {
            return 3;
        }
        match run_child(|| status_if(prctl(PR_GET_NO_NEW_PRIVS, 0), Ok(1))) {
            Ok(s) if s.exit_code() == Some(0) => 0,
            _ => 4,
        }
    })?;
    check_eq!(status.exit_code(), Some(0));
    check_eq!(prctl(PR_GET_NO_NEW_PRIVS, 0), Ok(0));
    Ok(())
}

fn prctl_timerslack_defaults_back_on_zero() -> TestResult {
    check_eq!(prctl(PR_SET_TIMERSLACK, 1000), Ok(0));
    check_eq!(prctl(PR_GET_TIMERSLACK, 0), Ok(1000));
    check_eq!(prctl(PR_SET_TIMERSLACK, 0), Ok(0));
    check_eq!(prctl(PR_GET_TIMERSLACK, 0), Ok(50_000));
    Ok(())
}

fn prctl_capbset_read_and_seccomp_mode() -> TestResult {
    // Root's bounding set has every capability (CAP_CHOWN 0 .. CAP_CHECKPOINT_RESTORE 40).
    check_eq!(prctl(PR_CAPBSET_READ, 0), Ok(1));
    check_eq!(prctl(PR_CAPBSET_READ, 40), Ok(1));
    check_err!(prctl(PR_CAPBSET_READ, 64), EINVAL);
    check_eq!(prctl(PR_GET_SECCOMP, 0), Ok(0));
    Ok(())
}

fn prctl_get_tid_address_reads_set_tid_address() -> TestResult {
    let status = run_child(|| {
        let word = 0u32;
        let addr = &raw const word as usize;
        // SAFETY: the kernel only remembers the address (it writes there at exit, when
        // this child is gone).
        let _ = unsafe { syscall1(nr::SET_TID_ADDRESS, addr) };
        let mut got = 0usize;
        let _ = prctl(PR_GET_TID_ADDRESS, &raw mut got as usize);
        status_if(got, addr)
    })?;
    check_eq!(status.exit_code(), Some(0));
    Ok(())
}

fn prctl_unknown_option_is_einval() -> TestResult {
    check_err!(prctl(0, 0), EINVAL);
    check_err!(prctl(0x7fff_0000, 0), EINVAL);
    Ok(())
}

fn pdeathsig_is_sent_when_the_parent_exits() -> TestResult {
    // A subreaper child forks a middle process, which forks a grandchild that asks for
    // SIGUSR1 (whose default action kills) on its parent's death. The middle one exits
    // once the grandchild is ready; the grandchild dies of SIGUSR1, and the subreaper,
    // which adopted it, reaps it (so no orphan reaches whoever runs this test).
    let status = run_child(|| {
        if prctl(PR_SET_CHILD_SUBREAPER, 1) != Ok(0) {
            return 1;
        }
        let mut p = [-1; 2];
        if sys::pipe(&mut p) != Ok(0) {
            return 2;
        }
        let (r, w) = (p[0], p[1]);
        let middle = fork_child(move || {
            let grandchild = fork_child(move || {
                let mut sig = 0i32;
                if prctl(PR_SET_PDEATHSIG, SIGUSR1 as usize) != Ok(0)
                    || prctl(PR_GET_PDEATHSIG, &raw mut sig as usize) != Ok(0)
                    || sig != SIGUSR1
                {
                    return 1;
                }
                let _ = sys::write(w, b"r");
                sleep_ms(5000);
                7
            });
            let mut b = [0u8; 1];
            match (grandchild, sys::read(r, &mut b)) {
                (Ok(_), Ok(1)) => 0,
                _ => 1,
            }
        });
        let Ok(middle) = middle else { return 3 };
        if !matches!(wait_child(middle), Ok(s) if s.exit_code() == Some(0)) {
            return 4;
        }
        let mut st = 0;
        if sys::wait4(-1, Some(&mut st), 0).is_err() {
            return 5;
        }
        status_if(WaitStatus(st).term_signal(), Some(SIGUSR1))
    })?;
    check_eq!(status.exit_code(), Some(0));
    Ok(())
}

fn subreaper_adopts_orphaned_grandchildren() -> TestResult {
    // A subreaper's orphaned grandchild becomes its child: getppid() says so, and the
    // subreaper can reap it.
    let status = run_child(|| {
        if prctl(PR_SET_CHILD_SUBREAPER, 1) != Ok(0) {
            return 1;
        }
        let mut v = 0i32;
        if prctl(PR_GET_CHILD_SUBREAPER, &raw mut v as usize) != Ok(0) || v != 1 {
            return 2;
        }
        let me = sys::getpid().unwrap_or(0) as i32;
        let mut p = [-1; 2];
        if sys::pipe(&mut p) != Ok(0) {
            return 3;
        }
        let (r, w) = (p[0], p[1]);
        let middle = fork_child(move || {
            // The grandchild waits for its parent to go, then reports its new parent.
            match fork_child(move || {
                for _ in 0..500 {
                    if sys::getppid() == Ok(me as usize) {
                        let _ = sys::write(w, b"y");
                        return 0;
                    }
                    sleep_ms(10);
                }
                let _ = sys::write(w, b"n");
                1
            }) {
                Ok(_) => 0,
                Err(_) => 9,
            }
        });
        let Ok(middle) = middle else { return 4 };
        if !matches!(wait_child(middle), Ok(s) if s.exit_code() == Some(0)) {
            return 5;
        }
        let mut b = [0u8; 1];
        if sys::read(r, &mut b) != Ok(1) || b[0] != b'y' {
            return 6;
        }
        // Adopted: this process reaps it.
        let mut st = 0;
        match sys::wait4(-1, Some(&mut st), 0) {
            Ok(_) => 0,
            Err(_) => 7,
        }
    })?;
    check_eq!(status.exit_code(), Some(0));
    Ok(())
}

fn close_range_closes_or_marks_cloexec() -> TestResult {
    let base = lowest_free_fd(10).max(10);
    let mut fds = [-1; 2];
    check_eq!(sys::pipe(&mut fds), Ok(0));
    for i in 0..4 {
        check_ok!(sys::dup2(fds[0], base + i));
    }
    // SAFETY: no memory is passed.
    let cr = |first: i32, last: u32, flags: usize| sys::ret(unsafe { syscall3(nr::CLOSE_RANGE, first as usize, last as usize, flags) });
    // Mark base..base+1 close-on-exec, close base+2..=u32::MAX (the rest of the table).
    check_eq!(cr(base, (base + 1) as u32, 4), Ok(0));
    check_eq!(sys::fcntl(base, F_GETFD, 0), Ok(FD_CLOEXEC));
    check_eq!(sys::fcntl(base + 1, F_GETFD, 0), Ok(FD_CLOEXEC));
    check_eq!(cr(base + 2, u32::MAX, 0), Ok(0));
    check_err!(sys::fcntl(base + 2, F_GETFD, 0), EBADF);
    check_err!(sys::fcntl(base + 3, F_GETFD, 0), EBADF);
    check_eq!(sys::fcntl(base, F_GETFD, 0), Ok(FD_CLOEXEC));
    check_eq!(cr(base, (base + 1) as u32, 0), Ok(0));
    check_err!(sys::fcntl(base, F_GETFD, 0), EBADF);
    check_ok!(sys::close(fds[0]));
    check_ok!(sys::close(fds[1]));
    Ok(())
}

fn close_range_bad_arguments_are_einval() -> TestResult {
    // SAFETY: no memory is passed.
    let cr = |first: usize, last: usize, flags: usize| sys::ret(unsafe { syscall3(nr::CLOSE_RANGE, first, last, flags) });
    check_err!(cr(5, 4, 0), EINVAL);
    check_err!(cr(100, 200, 1), EINVAL);
    check_err!(cr(100, 200, 8), EINVAL);
    check_eq!(cr(1000, 1000, 0), Ok(0));
    Ok(())
}

fn membarrier_query_and_private_registration() -> TestResult {
    // SAFETY: no memory is passed.
    let mb = |cmd: usize, flags: usize| sys::ret(unsafe { syscall3(nr::MEMBARRIER, cmd, flags, 0) });
    const GLOBAL: usize = 1;
    const PRIVATE_EXPEDITED: usize = 8;
    const REGISTER_PRIVATE_EXPEDITED: usize = 16;
    const GET_REGISTRATIONS: usize = 512;
    let supported = check_ok!(mb(0, 0));
    let need = GLOBAL | PRIVATE_EXPEDITED | REGISTER_PRIVATE_EXPEDITED | GET_REGISTRATIONS;
    check!(supported & need == need, "QUERY says {supported:#x}");
    check_eq!(mb(GLOBAL, 0), Ok(0));
    check_err!(mb(GLOBAL, 1), EINVAL);
    check_err!(mb(1 << 20, 0), EINVAL);
    // In a child: the private barrier wants the registration first.
    let status = run_child(move || {
        let steps = [
            mb(PRIVATE_EXPEDITED, 0) == Err(Errno::EPERM),
            mb(GET_REGISTRATIONS, 0) == Ok(0),
            mb(REGISTER_PRIVATE_EXPEDITED, 0) == Ok(0),
            mb(PRIVATE_EXPEDITED, 0) == Ok(0),
            mb(GET_REGISTRATIONS, 0) == Ok(REGISTER_PRIVATE_EXPEDITED),
        ];
        steps.iter().position(|ok| !ok).map_or(0, |i| i as i32 + 1)
    })?;
    check_eq!(status.exit_code(), Some(0));
    Ok(())
}

fn sysinfo_reports_uptime_memory_and_tasks() -> TestResult {
    let mut info = [0u64; 14];
    // SAFETY: the kernel writes the 112-byte struct sysinfo.
    check_eq!(sys::ret(unsafe { syscall1(nr::SYSINFO, info.as_mut_ptr() as usize) }), Ok(0));
    let (uptime, total, free, procs, unit) = (info[0], info[4], info[5], info[10] & 0xffff, info[13] & 0xffff_ffff);
    check!(uptime > 0, "uptime 0");
    check!(unit >= 1 && total > 0 && free <= total, "total {total} free {free} unit {unit}");
    check!(total * unit >= 16 << 20, "only {} bytes of RAM", total * unit);
    check!(procs >= 1, "no tasks");
    // SAFETY: the kernel must refuse the unmapped address.
    check_err!(sys::ret(unsafe { syscall1(nr::SYSINFO, UNMAPPED_ADDR) }), EFAULT);
    Ok(())
}
