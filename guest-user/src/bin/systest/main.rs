//! The syscall conformance suite: one file per family of syscalls. Every test must pass
//! on host Linux; our guest kernel must give the same answers.
//!
//! ```text
//! systest [--dir DIR] [--exec PATH] [FILTER...]
//! ```
//!
//! - `--dir DIR`: tests create their files in `DIR/systest-PID` (default `/tmp`).
//! - `--exec PATH`: the program execve tests run, one that behaves like our `hello`
//!   (default `/bin/hello`).
//! - `FILTER`: a family (`fs`), a test (`fs::dup_returns_lowest_free_fd`) or a prefix
//!   (`fs::dup`); default: everything.
//!
//! Output: `test NAME ... ok` or `test NAME ... FAILED: reason` per test, then
//! `N passed, M failed`; the exit status is M (at most 255).
#![no_std]
#![no_main]
// A Failure is its message, formatted on the stack (there is no allocator): ~330 bytes.
#![allow(clippy::result_large_err)]

mod cred;
mod filemap;
mod flock;
mod fs;
mod itimer;
mod jobctl;
mod memfd;
mod misc;
mod mremap;
mod mlock;
mod mm;
mod pidfd;
mod pipe;
mod poll;
mod prctl;
mod proc;
mod procfs;
mod rlimit;
mod rusage;
mod rw;
mod sched;
mod sigrestart;
mod sigutil;
mod signalfd;
mod smp;
mod sigwait;
mod time;
mod timerfd;
mod util;
mod utime;
mod vdso;
mod wait;

use ulib::test::Runner;
use ulib::uapi::*;
use ulib::{Args, eprintln, sys};

ulib::entry!(main);

const FAMILIES: &[(&str, &[util::Test])] = &[
    ("fs", fs::TESTS),
    ("flock", flock::TESTS),
    ("cred", cred::TESTS),
    ("mm", mm::TESTS),
    ("mlock", mlock::TESTS),
    ("mremap", mremap::TESTS),
    ("memfd", memfd::TESTS),
    ("filemap", filemap::TESTS),
    ("proc", proc::TESTS),
    ("procfs", procfs::TESTS),
    ("rw", rw::TESTS),
    ("pipe", pipe::TESTS),
    ("pidfd", pidfd::TESTS),
    ("poll", poll::TESTS),
    ("prctl", prctl::TESTS),
    ("sched", sched::TESTS),
    ("smp", smp::TESTS),
    ("rlimit", rlimit::TESTS),
    ("rusage", rusage::TESTS),
    ("time", time::TESTS),
    ("timerfd", timerfd::TESTS),
    ("vdso", vdso::TESTS),
    ("utime", utime::TESTS),
    ("misc", misc::TESTS),
    ("wait", wait::TESTS),
    ("jobctl", jobctl::TESTS),
    ("itimer", itimer::TESTS),
    ("sigwait", sigwait::TESTS),
    ("signalfd", signalfd::TESTS),
    ("sigrestart", sigrestart::TESTS),
];

const USAGE: &str = "usage: systest [--dir DIR] [--exec PATH] [FAMILY|FAMILY::TEST...]";

fn main(args: &Args) -> i32 {
    let (mut dir, mut exec) = (None, None);
    let mut filters = [""; 32];
    let mut nfilters = 0;
    let mut i = 1;
    while i < args.len() {
        match (args.str(i), args.get(i + 1)) {
            (Some("--dir"), Some(value)) => (dir, i) = (Some(value), i + 1),
            (Some("--exec"), Some(value)) => (exec, i) = (Some(value), i + 1),
            (Some(f), _) if !f.starts_with('-') && nfilters < filters.len() => {
                filters[nfilters] = f;
                nfilters += 1;
            }
            _ => {
                eprintln!("{USAGE}");
                return 2;
            }
        }
        i += 1;
    }

    // The file modes the tests expect assume this mask, and the signal tests a process
    // that inherited no blocked or ignored signals.
    let _ = sys::umask(0o022);
    util::reset_inherited_signals();
    let pid = sys::getpid().unwrap_or(0) as u32;
    util::configure(dir, exec, pid);
    util::VDSO.store(args.aux(AT_SYSINFO_EHDR).unwrap_or(0), core::sync::atomic::Ordering::Relaxed);
    // DIR may not exist yet; the scratch directory must not.
    let _ = sys::mkdir(
        util::Path::from_fmt(format_args!("{}", util::base_dir())).as_cstr(),
        0o755,
    );
    let work = util::work_dir();
    if let Err(e) = sys::mkdir(work.as_cstr(), 0o755) {
        eprintln!("systest: cannot create {work}: {e}");
        return 2;
    }

    let mut runner = Runner::new(&filters[..nfilters]);
    for (name, tests) in FAMILIES {
        runner.group(name, tests);
    }
    // Passing tests remove what they create, so this succeeds unless one failed.
    let _ = sys::unlinkat(AT_FDCWD, work.as_cstr(), AT_REMOVEDIR);
    runner.finish().min(255)
}
