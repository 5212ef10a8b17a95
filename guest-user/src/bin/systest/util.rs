//! What the families share: the run's settings, scratch paths, child processes, sleeps.

use core::ffi::{CStr, c_char};
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use ulib::io::StackStr;
use ulib::sys;
use ulib::uapi::*;
use ulib::{Errno, check_eq, check_ok};

pub use ulib::test::{Failure, Test, TestResult};

/// A path or other short text on the stack.
pub type Path = StackStr<256>;

/// `tests![a, b]` is `&[("a", a), ("b", b)]`.
macro_rules! tests {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), $name as fn() -> $crate::util::TestResult)),*]
    };
}
pub(crate) use tests;

/// A string from argv, set by `main` before any test runs.
struct Setting(AtomicPtr<c_char>);

impl Setting {
    fn set(&self, s: &'static CStr) {
        self.0.store(s.as_ptr().cast_mut(), Ordering::Relaxed);
    }
    fn get(&self) -> &'static str {
        let p = self.0.load(Ordering::Relaxed);
        // SAFETY: only `set` stores here, always a &'static CStr from the initial stack.
        unsafe { CStr::from_ptr(p) }.to_str().unwrap_or("/tmp")
    }
}

static DIR: Setting = Setting(AtomicPtr::new(c"/tmp".as_ptr().cast_mut()));
static EXEC: Setting = Setting(AtomicPtr::new(c"/bin/hello".as_ptr().cast_mut()));
static RUN_ID: AtomicU32 = AtomicU32::new(0);

/// Records `--dir` and `--exec`; the scratch directory is named after `run_id`.
pub fn configure(dir: Option<&'static CStr>, exec: Option<&'static CStr>, run_id: u32) {
    if let Some(dir) = dir {
        DIR.set(dir);
    }
    if let Some(exec) = exec {
        EXEC.set(exec);
    }
    RUN_ID.store(run_id, Ordering::Relaxed);
}

/// `--dir`: where the scratch directory goes.
pub fn base_dir() -> &'static str {
    DIR.get()
}

/// `--exec`: a program that behaves like our `hello`.
pub fn exec_path() -> &'static str {
    EXEC.get()
}

/// This run's scratch directory, `DIR/systest-PID`.
pub fn work_dir() -> Path {
    Path::from_fmt(format_args!(
        "{}/systest-{}",
        DIR.get(),
        RUN_ID.load(Ordering::Relaxed)
    ))
}

/// `name` inside the scratch directory.
pub fn scratch(name: &str) -> Path {
    Path::from_fmt(format_args!("{}/{name}", work_dir()))
}

/// Creates (or empties) `scratch(name)` holding `data`; returns its path.
pub fn make_file(name: &str, data: &[u8]) -> Result<Path, Failure> {
    let path = scratch(name);
    let fd = check_ok!(sys::open(
        path.as_cstr(),
        O_CREAT | O_WRONLY | O_TRUNC,
        0o644
    )) as i32;
    check_eq!(sys::write(fd, data), Ok(data.len()));
    check_ok!(sys::close(fd));
    Ok(path)
}

/// Forks a child that runs `f` and exits with its result; returns the child's pid.
/// (The child must not return into the test runner, which would then run twice.)
pub fn fork_child(f: impl FnOnce() -> i32) -> Result<i32, Failure> {
    match check_ok!(sys::fork()) {
        0 => sys::exit_group(f()),
        pid => Ok(pid as i32),
    }
}

/// Waits for child `pid` to end; returns its status.
pub fn wait_child(pid: i32) -> Result<WaitStatus, Failure> {
    let mut status = 0;
    check_eq!(sys::wait4(pid, Some(&mut status), 0), Ok(pid as usize));
    Ok(WaitStatus(status))
}

/// Forks a child running `f` and waits for it: the child's status.
pub fn run_child(f: impl FnOnce() -> i32) -> Result<WaitStatus, Failure> {
    let pid = fork_child(f)?;
    wait_child(pid)
}

/// Kills and reaps a child however the test ends: a failed check must not leave a
/// process running that holds the runner's output open.
pub struct Reaper(pub i32);

impl Drop for Reaper {
    fn drop(&mut self) {
        if sys::kill(self.0, SIGKILL).is_ok() {
            let _ = sys::wait4(self.0, None, 0);
        }
    }
}

/// Runs `f` in a child (a test changing ids or limits for good); its failure fails the
/// test, the message printed by the child.
pub fn in_child(f: impl FnOnce() -> TestResult) -> TestResult {
    let status = run_child(|| match f() {
        Ok(()) => 0,
        Err(e) => {
            ulib::eprintln!("  child: {}", e.message());
            1
        }
    })?;
    check_eq!(status.exit_code(), Some(0));
    Ok(())
}

/// A new shared anonymous mapping (seen by forked children too).
pub fn map_anon_shared(len: usize) -> Result<usize, Failure> {
    // SAFETY: not MAP_FIXED: the kernel picks the address.
    Ok(check_ok!(unsafe { sys::mmap(0, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0) }))
}

/// A new private anonymous mapping.
pub fn map_anon(len: usize, prot: usize) -> Result<usize, Failure> {
    // SAFETY: not MAP_FIXED: the kernel picks free addresses.
    Ok(check_ok!(unsafe {
        sys::mmap(0, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    }))
}

/// Unmaps what `map_anon` returned.
pub fn unmap(addr: usize, len: usize) -> TestResult {
    // SAFETY: only the test that mapped the range uses it, and it is done.
    check_eq!(unsafe { sys::munmap(addr, len) }, Ok(0));
    Ok(())
}

/// The lowest fd at or above `from` that is not open. Tests ask rather than assume: on the
/// host, systest may inherit open fds (make's jobserver pipes, a CI runner's), which our
/// guest's init never has.
pub fn lowest_free_fd(from: i32) -> i32 {
    let mut fd = from;
    while sys::fcntl(fd, F_GETFD, 0) != Err(Errno::EBADF) {
        fd += 1;
    }
    fd
}

/// Undoes the signal state a parent can hand down through execve: blocked signals and
/// ignored ones (a SIGCHLD set to SIG_IGN would even make every child reap itself). The
/// tests assume what our guest's init starts with: nothing blocked, every action SIG_DFL.
pub fn reset_inherited_signals() {
    let _ = sys::rt_sigprocmask(SIG_SETMASK, Some(&0), None);
    for sig in (1..=64).filter(|&s| s != SIGKILL && s != SIGSTOP) {
        let mut act = SigAction::default();
        // SAFETY: only reads the action.
        let ignored = unsafe { sys::rt_sigaction(sig, None, Some(&mut act)) }.is_ok()
            && act.handler == SIG_IGN;
        if ignored {
            // SAFETY: SIG_DFL runs no code of ours.
            let _ = unsafe { sys::rt_sigaction(sig, Some(&SigAction::default()), None) };
        }
    }
}

/// `nanosleep` for `ms` milliseconds.
pub fn sleep_ms(ms: i64) {
    let _ = sys::nanosleep(&Timespec::from_nanos(ms * 1_000_000), None);
}

/// CLOCK_MONOTONIC in nanoseconds.
pub fn now_ns() -> i64 {
    let mut ts = Timespec::default();
    let _ = sys::clock_gettime(CLOCK_MONOTONIC, &mut ts);
    ts.as_nanos()
}

/// A result as an exit status for a child: 0 if it matches `expected`, else 1.
pub fn status_if<T: PartialEq>(actual: T, expected: T) -> i32 {
    if actual == expected { 0 } else { 1 }
}

/// A user address that is never mapped (inside the first page).
pub const UNMAPPED_ADDR: usize = 0x1;
/// An address in the kernel half: user copies must refuse it before touching it.
pub const KERNEL_ADDR: usize = 0xffff_8000_0000_0000;

/// The vDSO's address (AT_SYSINFO_EHDR; 0 if none), read at start-up.
pub static VDSO: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
