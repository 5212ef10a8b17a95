//! Resource limits: getrlimit, setrlimit and prlimit64 keep what is set (per process,
//! inherited by fork), with Linux's errors; RLIMIT_FSIZE cuts writes short and then
//! refuses them (SIGXFSZ, EFBIG); RLIMIT_CPU sends SIGXCPU at the soft limit and SIGKILL
//! at the hard one; another process's limits need matching ids. Each test changes
//! limits in a child.

use core::sync::atomic::{AtomicU32, Ordering::SeqCst};

use ulib::sys::{self, syscall2, syscall4};
use ulib::uapi::*;
use ulib::{check, check_eq, check_err, check_ok, nr};

use crate::util::*;

pub const TESTS: &[Test] = tests![
    limits_are_kept_and_inherited,
    bad_limits_are_refused,
    fsize_cuts_writes_then_refuses_them,
    cpu_limit_sends_sigxcpu_then_sigkill,
    prlimit_on_another_process,
];

const RLIMIT_CPU: usize = 0;
const RLIMIT_FSIZE: usize = 1;
const RLIMIT_CORE: usize = 4;
const RLIMIT_NOFILE: usize = 7;
const INF: u64 = u64::MAX;
const SIGXCPU: i32 = 24;
const SIGXFSZ: i32 = 25;

fn getrlimit(resource: usize) -> Result<[u64; 2], Failure> {
    let mut l = [0u64; 2];
    // SAFETY: the kernel writes the two words.
    check_eq!(sys::ret(unsafe { syscall2(nr::GETRLIMIT, resource, l.as_mut_ptr() as usize) }), Ok(0));
    Ok(l)
}

fn setrlimit(resource: usize, l: [u64; 2]) -> ulib::errno::Result {
    // SAFETY: the kernel reads the two words.
    sys::ret(unsafe { syscall2(nr::SETRLIMIT, resource, l.as_ptr() as usize) })
}

fn prlimit(pid: i32, resource: usize, new: Option<[u64; 2]>, old: Option<&mut [u64; 2]>) -> ulib::errno::Result {
    let new_ptr = new.as_ref().map_or(0, |n| n.as_ptr() as usize);
    let old_ptr = old.map_or(0, |o| o.as_mut_ptr() as usize);
    // SAFETY: the kernel reads `new` and writes `old`, two words each.
    sys::ret(unsafe { syscall4(nr::PRLIMIT64, pid as usize, resource, new_ptr, old_ptr) })
}

fn limits_are_kept_and_inherited() -> TestResult {
    in_child(|| {
        let [_, hard] = getrlimit(RLIMIT_CORE)?;
        check_eq!(setrlimit(RLIMIT_CORE, [0, hard]), Ok(0));
        check_eq!(getrlimit(RLIMIT_CORE)?, [0, hard]);
        let mut old = [1u64; 2];
        check_eq!(prlimit(0, RLIMIT_CORE, Some([4096, hard]), Some(&mut old)), Ok(0));
        check_eq!(old, [0, hard]);
        check_eq!(getrlimit(RLIMIT_CORE)?, [4096, hard]);
        // A fork keeps them.
        let status = run_child(|| status_if(getrlimit(RLIMIT_CORE).ok(), Some([4096, hard])))?;
        check_eq!(status.exit_code(), Some(0));
        // RLIMIT_NOFILE's soft limit bounds the descriptors.
        let [_, nofile_hard] = getrlimit(RLIMIT_NOFILE)?;
        check_eq!(setrlimit(RLIMIT_NOFILE, [8, nofile_hard]), Ok(0));
        check_err!(sys::dup2(0, 8), EBADF);
        check_eq!(sys::dup2(0, 7), Ok(7));
        Ok(())
    })
}

fn bad_limits_are_refused() -> TestResult {
    check_err!(setrlimit(RLIMIT_CORE, [2, 1]), EINVAL);
    check_err!(setrlimit(16, [0, 0]), EINVAL);
    let mut l = [0u64; 2];
    // SAFETY: the kernel must fail to write the unmapped address.
    check_err!(sys::ret(unsafe { syscall2(nr::GETRLIMIT, RLIMIT_CORE, UNMAPPED_ADDR) }), EFAULT);
    check_err!(prlimit(0x3fff_fff0, RLIMIT_CORE, None, Some(&mut l)), ESRCH);
    check_err!(prlimit(-5, RLIMIT_CORE, None, Some(&mut l)), ESRCH);
    in_child(|| {
        // Without CAP_SYS_RESOURCE a hard limit only comes down.
        let [soft, hard] = getrlimit(RLIMIT_FSIZE)?;
        let lower = if hard == INF { 1 << 40 } else { hard - 1 };
        check_eq!(setrlimit(RLIMIT_FSIZE, [soft.min(lower), lower]), Ok(0));
        // SAFETY: no memory is passed.
        check_eq!(sys::ret(unsafe { sys::syscall3(nr::SETRESUID, 1000, 1000, 1000) }), Ok(0));
        check_err!(setrlimit(RLIMIT_FSIZE, [soft.min(lower), lower + 1]), EPERM);
        check_eq!(setrlimit(RLIMIT_FSIZE, [1, lower - 1]), Ok(0));
        Ok(())
    })
}

fn fsize_cuts_writes_then_refuses_them() -> TestResult {
    let path = make_file("rlimit-fsize", b"")?;
    in_child(|| {
        check_eq!(setrlimit(RLIMIT_FSIZE, [4096, INF]), Ok(0));
        crate::sigutil::set_action(SIGXFSZ, &SigAction { handler: SIG_IGN, flags: SA_RESTORER, restorer: sys::restore_rt as *const () as usize, mask: 0 })?;
        let fd = check_ok!(sys::open(path.as_cstr(), O_RDWR, 0)) as i32;
        let block = [7u8; 8192];
        check_eq!(sys::pwrite64(fd, &block, 0), Ok(4096));
        check_err!(sys::pwrite64(fd, &block, 4096), EFBIG);
        check_err!(sys::ftruncate(fd, 8192), EFBIG);
        check_eq!(sys::ftruncate(fd, 100), Ok(0));
        check_ok!(sys::close(fd));
        Ok(())
    })?;
    // With SIGXFSZ's default action the writer dies of it.
    let status = run_child(|| {
        let _ = setrlimit(RLIMIT_FSIZE, [100, INF]);
        let Ok(fd) = sys::open(path.as_cstr(), O_RDWR, 0) else { return 2 };
        let _ = sys::pwrite64(fd as i32, b"x", 200);
        3
    })?;
    check_eq!(status.term_signal(), Some(SIGXFSZ));
    Ok(())
}

static XCPU: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_xcpu(_: i32) {
    XCPU.fetch_add(1, SeqCst);
}

fn cpu_limit_sends_sigxcpu_then_sigkill() -> TestResult {
    let m = map_anon_shared(4096)?;
    // SAFETY: a fresh shared page, used only as this counter.
    let seen: &'static AtomicU32 = unsafe { &*(m as *const AtomicU32) };
    let start = now_ns();
    let status = run_child(move || {
        let act = SigAction { handler: on_xcpu as *const () as usize, flags: SA_RESTORER, restorer: sys::restore_rt as *const () as usize, mask: 0 };
        if setrlimit(RLIMIT_CPU, [1, 2]).is_err() || crate::sigutil::set_action(SIGXCPU, &act).is_err() {
            return 2;
        }
        loop {
            seen.store(XCPU.load(SeqCst), SeqCst);
            core::hint::spin_loop();
        }
    })?;
    check_eq!(status.term_signal(), Some(SIGKILL));
    check!(seen.load(SeqCst) >= 1, "no SIGXCPU before the SIGKILL");
    check!(now_ns() - start < 30_000_000_000, "the hard limit took {} ms", (now_ns() - start) / 1_000_000);
    Ok(())
}

fn prlimit_on_another_process() -> TestResult {
    // A child waits to be asked its limit: the parent sets it from outside.
    let mut fds = [0i32; 2];
    check_ok!(sys::pipe(&mut fds));
    let pid = fork_child(|| {
        let mut b = [0u8; 1];
        let _ = sys::read(fds[0], &mut b);
        status_if(getrlimit(RLIMIT_CORE).ok().map(|l| l[0]), Some(1234))
    })?;
    let _reaper = Reaper(pid);
    let mut old = [0u64; 2];
    check_eq!(prlimit(pid, RLIMIT_CORE, None, Some(&mut old)), Ok(0));
    check_eq!(prlimit(pid, RLIMIT_CORE, Some([1234, old[1]]), None), Ok(0));
    // Another user may not touch it.
    in_child(|| {
        // SAFETY: no memory is passed.
        check_eq!(sys::ret(unsafe { sys::syscall3(nr::SETRESUID, 1000, 1000, 1000) }), Ok(0));
        check_err!(prlimit(pid, RLIMIT_CORE, Some([1, 1]), None), EPERM);
        Ok(())
    })?;
    check_eq!(sys::write(fds[1], b"x"), Ok(1));
    check_eq!(wait_child(pid)?.exit_code(), Some(0));
    check_ok!(sys::close(fds[0]));
    check_ok!(sys::close(fds[1]));
    Ok(())
}
