//! seccomp-bpf filters, one per kind of VMM thread, as Firecracker installs them: each
//! thread may make only the system calls its own code makes, and any other kills the
//! whole process (SIGSYS). `vmm run --no-seccomp` turns them off.
//!
//! A thread installs its filter itself, once its setup is done: the main thread when the
//! VM is built, a vCPU before its first KVM_RUN, the stdin thread before its first read.
//! Filters are inherited by threads created later and stack with their own (the stricter
//! answer wins), so device worker threads, which start at the guest's DRIVER_OK, are not
//! created by the vCPU that asked for them: a launcher thread started before any filter
//! creates them (its filter is the union of the workers' and what creating a thread and
//! a ring takes), and each worker narrows its filter to its own list after its setup
//! (creating the host io_uring). vCPUs therefore cannot create threads or rings.
//!
//! Lists were found by reading the code and by `strace -f` over the test suite's
//! scenarios; every thread also gets [`common`]: memory, futexes, logging on stderr, and
//! what the console's signal handler and a panic's abort need.
//!
//! Test-only hook: `VMM_SECCOMP_SELFTEST=KIND` (KIND one of [`Thread::name`]), read when
//! filters are enabled, makes that kind of thread call socket(2) right after installing
//! its filter; the filter itself is the same, and the process must die by SIGSYS.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, OnceLock};
use std::thread::JoinHandle;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond, SeccompFilter,
    SeccompRule, TargetArch,
};

/// The environment variable of the test-only hook (see the module's docs).
pub const SELFTEST_ENV: &str = "VMM_SECCOMP_SELFTEST";

/// The kinds of VMM thread, each with its filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Thread {
    /// Waits for the VM's end, restores the terminal, prints and exits.
    Main,
    /// Runs KVM_RUN and emulates port I/O and MMIO.
    Vcpu,
    /// Reads stdin into the UART.
    Stdin,
    /// Creates device worker threads for the vCPUs.
    Launcher,
    /// A virtio-blk worker (either engine).
    Block,
    /// A virtio-9p worker.
    P9,
    /// A virtio-net worker.
    Net,
    /// Writes the guest console's buffered output to stdout.
    ConsoleOut,
}

impl Thread {
    pub const ALL: [Thread; 8] =
        [Thread::Main, Thread::Vcpu, Thread::Stdin, Thread::Launcher, Thread::Block, Thread::P9, Thread::Net, Thread::ConsoleOut];

    pub fn name(self) -> &'static str {
        match self {
            Thread::Main => "main",
            Thread::Vcpu => "vcpu",
            Thread::Stdin => "stdin",
            Thread::Launcher => "launcher",
            Thread::Block => "virtio-blk",
            Thread::P9 => "virtio-9p",
            Thread::Net => "virtio-net",
            Thread::ConsoleOut => "console-out",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("cannot build the {0} thread's seccomp filter: {1}")]
    Build(&'static str, String),
    #[error("cannot install the {0} thread's seccomp filter: {1}")]
    Install(&'static str, String),
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static SELFTEST: OnceLock<Option<Thread>> = OnceLock::new();

/// Turns filters on for threads that install theirs from now on, and reads the test hook.
pub fn enable() {
    // glibc gives threads arenas of their own, and reads /proc/sys/vm/overcommit_memory
    // the first time one shrinks: an openat no filter allows (it killed the VMM when a
    // disk thread freed its buffers). One arena for every thread, shrunk with brk.
    // SAFETY: mallopt sets a malloc tunable; no other thread exists yet.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    let hook = std::env::var(SELFTEST_ENV).ok();
    let _ = SELFTEST.set(hook.and_then(|name| Thread::ALL.into_iter().find(|t| t.name() == name)));
    ENABLED.store(true, Ordering::Release);
}

/// Whether filters are on.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Acquire)
}

/// Installs `thread`'s filter on the calling thread (nothing when filters are off).
pub fn install(thread: Thread) -> Result<(), SeccompError> {
    if !enabled() {
        return Ok(());
    }
    let program = program(thread)?;
    seccompiler::apply_filter(&program).map_err(|e| SeccompError::Install(thread.name(), e.to_string()))?;
    if SELFTEST.get().copied().flatten() == Some(thread) {
        forbidden_call(thread);
    }
    Ok(())
}

/// The test hook: a system call no filter allows.
fn forbidden_call(thread: Thread) -> ! {
    eprintln!("vmm: {SELFTEST_ENV}: the {} thread calls socket(2)", thread.name());
    // SAFETY: socket(2) with constant arguments touches no memory of ours.
    unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    eprintln!("vmm: {SELFTEST_ENV}: socket(2) was allowed");
    std::process::abort()
}

/// The compiled filter of `thread`: KillProcess for any call not listed.
pub fn program(thread: Thread) -> Result<BpfProgram, SeccompError> {
    let err = |e: seccompiler::BackendError| SeccompError::Build(thread.name(), e.to_string());
    let mut rules = Rules::default();
    common(&mut rules).map_err(err)?;
    match thread {
        Thread::Main => main_thread(&mut rules),
        Thread::Vcpu => vcpu(&mut rules),
        Thread::Stdin => stdin(&mut rules),
        Thread::Launcher => launcher(&mut rules),
        Thread::Block => block(&mut rules),
        Thread::P9 => p9(&mut rules),
        Thread::Net => net(&mut rules),
        // write(1) and the buffer's condition variables: the common list.
        Thread::ConsoleOut => Ok(()),
    }
    .map_err(err)?;
    let filter = SeccompFilter::new(rules.0, SeccompAction::KillProcess, SeccompAction::Allow, TargetArch::x86_64).map_err(err)?;
    filter.try_into().map_err(err)
}

type RuleResult<T> = std::result::Result<T, seccompiler::BackendError>;

/// Allowed calls, each unconditionally (no rules) or when one of its rules matches.
#[derive(Default)]
struct Rules(BTreeMap<i64, Vec<SeccompRule>>);

impl Rules {
    /// `calls` with any arguments.
    fn allow(&mut self, calls: &[libc::c_long]) {
        for &call in calls {
            self.0.insert(call, Vec::new());
        }
    }

    /// `call` when all `conds` hold (one more rule: any rule may match). A call already
    /// allowed with any arguments stays so.
    fn allow_if(&mut self, call: libc::c_long, conds: Vec<Cond>) -> RuleResult<()> {
        let rule = SeccompRule::new(conds)?;
        match self.0.get_mut(&call) {
            Some(rules) if rules.is_empty() => {}
            Some(rules) => rules.push(rule),
            None => {
                self.0.insert(call, vec![rule]);
            }
        }
        Ok(())
    }
}

fn arg_eq(arg: u8, value: u64) -> RuleResult<Cond> {
    Cond::new(arg, Len::Qword, Op::Eq, value)
}

/// `arg & mask == 0`.
fn arg_clear(arg: u8, mask: u64) -> RuleResult<Cond> {
    Cond::new(arg, Len::Qword, Op::MaskedEq(mask), 0)
}

/// ioctl(fd, request) on any descriptor.
fn ioctl(rules: &mut Rules, request: u64) -> RuleResult<()> {
    rules.allow_if(libc::SYS_ioctl, vec![arg_eq(1, request)?])
}

const TCSETS: u64 = libc::TCSETS;
const TCGETS: u64 = libc::TCGETS;

/// Linux's _IOC for KVM's ioctls (type 0xAE).
const fn kvm_ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | (0xae << 8) | nr
}
const KVM_RUN: u64 = kvm_ioc(0, 0x80, 0);
const KVM_GET_REGS: u64 = kvm_ioc(2, 0x81, size_of::<kvm_bindings::kvm_regs>());

/// What every thread needs: memory (never executable), futexes, time, writing its log
/// to stderr, exiting; and the console's signal handler (restore stdin's terminal, raise
/// the signal again) and a panic's abort, which run on whichever thread they hit.
fn common(rules: &mut Rules) -> RuleResult<()> {
    rules.allow(&[
        libc::SYS_brk,
        libc::SYS_munmap,
        libc::SYS_mremap,
        libc::SYS_madvise,
        libc::SYS_futex,
        libc::SYS_sched_yield,
        libc::SYS_clock_gettime,
        libc::SYS_write,
        libc::SYS_close,
        libc::SYS_rt_sigprocmask,
        libc::SYS_rt_sigreturn,
        libc::SYS_rt_sigaction,
        libc::SYS_sigaltstack,
        libc::SYS_restart_syscall,
        libc::SYS_getpid,
        libc::SYS_gettid,
        libc::SYS_exit,
        libc::SYS_exit_group,
    ]);
    for call in [libc::SYS_mmap, libc::SYS_mprotect] {
        rules.allow_if(call, vec![arg_clear(2, libc::PROT_EXEC as u64)?])?;
    }
    // Signals only to this process (raise, abort).
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u64;
    rules.allow_if(libc::SYS_tgkill, vec![arg_eq(0, pid)?])?;
    // std checks a descriptor is open before closing it (in debug builds).
    rules.allow_if(libc::SYS_fcntl, vec![arg_eq(1, libc::F_GETFD as u64)?])?;
    // glibc's tcsetattr reads the settings back (TCGETS) after TCSETS.
    for request in [TCSETS, TCGETS] {
        rules.allow_if(libc::SYS_ioctl, vec![arg_eq(0, libc::STDIN_FILENO as u64)?, arg_eq(1, request)?])?;
    }
    Ok(())
}

/// After setup: wait for the vCPUs' reports (or the timeout), stop the vCPUs (kicking
/// them with a signal, sleeping between kicks), flush the console, restore the terminal,
/// print statistics and errors, write the exit status file (opened at start), exit.
/// A reset on the way out (the last vCPU gone) stops workers and reads stale kicks.
fn main_thread(rules: &mut Rules) -> RuleResult<()> {
    rules.allow(&[libc::SYS_read, libc::SYS_clock_nanosleep, libc::SYS_nanosleep]);
    Ok(())
}

/// KVM_RUN and the devices' registers: serial output on stdout and eventfds (interrupts,
/// a worker's stop); DRIVER_OK makes an eventfd and duplicates queue eventfds (the
/// launcher creates the worker), a reset reads stale kicks. A 9p device's activation
/// builds its server (capget for its privileges, getrandom for a HashMap's keys).
/// KVM_GET_REGS reports a crash.
fn vcpu(rules: &mut Rules) -> RuleResult<()> {
    rules.allow(&[libc::SYS_read, libc::SYS_eventfd2, libc::SYS_capget, libc::SYS_getrandom]);
    rules.allow_if(libc::SYS_fcntl, vec![arg_eq(1, libc::F_DUPFD_CLOEXEC as u64)?])?;
    ioctl(rules, KVM_RUN)?;
    ioctl(rules, KVM_GET_REGS)
}

/// read(0), then into the UART (waiting for room on its eventfd: poll, read); the help
/// text.
fn stdin(rules: &mut Rules) -> RuleResult<()> {
    rules.allow(&[libc::SYS_read, libc::SYS_poll, libc::SYS_ppoll]);
    Ok(())
}

/// Creating threads (their stacks, TLS and name) that then set up and narrow their own
/// filter; everything the workers may do, since filters stack; and what a worker does
/// before narrowing it: create its host io_uring (with its eventfd, restrictions and
/// duplicated disk descriptors), set its tap's offloads (TUNSETOFFLOAD).
fn launcher(rules: &mut Rules) -> RuleResult<()> {
    block(rules)?;
    p9(rules)?;
    net(rules)?;
    rules.allow(&[
        libc::SYS_clone3,
        libc::SYS_set_robust_list,
        libc::SYS_rseq,
        libc::SYS_sched_getaffinity,
        libc::SYS_getrandom,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_register,
        libc::SYS_eventfd2,
        libc::SYS_seccomp,
    ]);
    rules.allow_if(libc::SYS_clone, vec![Cond::new(0, Len::Qword, Op::MaskedEq(libc::CLONE_THREAD as u64), libc::CLONE_THREAD as u64)?])?;
    ioctl(rules, libc::TUNSETOFFLOAD)?;
    for option in [libc::PR_SET_NAME, libc::PR_SET_NO_NEW_PRIVS] {
        rules.allow_if(libc::SYS_prctl, vec![arg_eq(0, option as u64)?])?;
    }
    rules.allow_if(libc::SYS_fcntl, vec![arg_eq(1, libc::F_DUPFD_CLOEXEC as u64)?])
}

/// A worker's loop: epoll on the queues' eventfds, the stop and resample eventfds and the
/// ring's completion eventfd (or virtio-net's epoll without io_uring), which it reads
/// (the interrupt eventfd is written).
fn device_loop(rules: &mut Rules) {
    rules.allow(&[
        libc::SYS_epoll_create1,
        libc::SYS_epoll_ctl,
        libc::SYS_epoll_wait,
        libc::SYS_epoll_pwait,
        libc::SYS_read,
    ]);
}

/// The disk's I/O: pread/pwrite/fdatasync/fallocate (the sync and test engines, and the
/// uring engine's blocking calls), io_uring_enter on the worker's own ring (the uring
/// engine, which sleeps briefly while draining on reset), sched_yield while busy polling.
fn block(rules: &mut Rules) -> RuleResult<()> {
    device_loop(rules);
    rules.allow(&[
        libc::SYS_pread64,
        libc::SYS_pwrite64,
        libc::SYS_preadv,
        libc::SYS_pwritev,
        libc::SYS_fdatasync,
        libc::SYS_fsync,
        libc::SYS_fallocate,
        libc::SYS_io_uring_enter,
        libc::SYS_clock_nanosleep,
        libc::SYS_nanosleep,
    ]);
    Ok(())
}

/// The 9p server: every file-system call it makes on the share (always relative to a
/// descriptor it holds: the share's root or a fid's), and capget for its privileges.
fn p9(rules: &mut Rules) -> RuleResult<()> {
    device_loop(rules);
    rules.allow(&[
        libc::SYS_openat,
        libc::SYS_newfstatat,
        libc::SYS_fstat,
        libc::SYS_statx,
        libc::SYS_fstatfs,
        libc::SYS_getdents64,
        libc::SYS_lseek,
        libc::SYS_pread64,
        libc::SYS_pwrite64,
        libc::SYS_readlinkat,
        libc::SYS_mkdirat,
        libc::SYS_mknodat,
        libc::SYS_symlinkat,
        libc::SYS_linkat,
        libc::SYS_unlinkat,
        libc::SYS_renameat,
        libc::SYS_renameat2,
        libc::SYS_fchmod,
        libc::SYS_fchmodat,
        libc::SYS_fchownat,
        libc::SYS_utimensat,
        libc::SYS_ftruncate,
        libc::SYS_fsync,
        libc::SYS_fdatasync,
        libc::SYS_fgetxattr,
        libc::SYS_fsetxattr,
        libc::SYS_flistxattr,
        libc::SYS_fremovexattr,
        libc::SYS_capget,
        libc::SYS_getrandom,
    ]);
    for cmd in [libc::F_GETFL, libc::F_SETFL, libc::F_DUPFD_CLOEXEC] {
        rules.allow_if(libc::SYS_fcntl, vec![arg_eq(1, cmd as u64)?])?;
    }
    Ok(())
}

/// The tap: io_uring_enter on the worker's own ring (made before the filter: frames
/// written in batches, the tap polled), a readv per frame received, and the ring's
/// eventfd (read, written). Without io_uring: a writev per frame sent, and its own epoll
/// (the tap added and removed with epoll_ctl) and wake eventfd.
fn net(rules: &mut Rules) -> RuleResult<()> {
    device_loop(rules);
    rules.allow(&[libc::SYS_readv, libc::SYS_writev, libc::SYS_io_uring_enter]);
    Ok(())
}

/// A job for the launcher: a thread's name and body, and where to send its handle.
type Job = (String, Box<dyn FnOnce() + Send>, mpsc::Sender<io::Result<JoinHandle<()>>>);

static LAUNCHER: OnceLock<mpsc::Sender<Job>> = OnceLock::new();

/// Starts the launcher thread (with filters on: call it before any filter is installed).
pub fn start_launcher() -> io::Result<()> {
    let (tx, rx) = mpsc::channel::<Job>();
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::Builder::new().name("launcher".into()).spawn(move || {
        let _ = ready_tx.send(install(Thread::Launcher));
        for (name, body, reply) in rx {
            let _ = reply.send(std::thread::Builder::new().name(name).spawn(body));
        }
    })?;
    ready_rx.recv().map_err(io::Error::other)?.map_err(io::Error::other)?;
    LAUNCHER.set(tx).map_err(|_| io::Error::other("the launcher is already running"))
}

/// Starts a device worker thread: through the launcher when it runs, else directly.
pub fn spawn_worker(name: String, body: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    let Some(launcher) = LAUNCHER.get() else {
        return std::thread::Builder::new().name(name).spawn(body);
    };
    let (reply, handle) = mpsc::channel();
    launcher.send((name, Box::new(body), reply)).map_err(|_| io::Error::other("the launcher thread ended"))?;
    handle.recv().map_err(|_| io::Error::other("the launcher thread ended"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_filter_compiles() {
        for thread in Thread::ALL {
            let program = program(thread).unwrap();
            assert!(!program.is_empty(), "{thread:?}");
        }
    }

    #[test]
    fn kvm_ioctl_numbers() {
        assert_eq!(KVM_RUN, 0xae80);
        assert_eq!(KVM_GET_REGS, 0x8090_ae81);
        assert_eq!((TCGETS, TCSETS), (0x5401, 0x5402));
    }

    /// A thread under the virtio-blk filter may make its calls (a forbidden one would
    /// kill the test process: tests/tests/vmm_cli.rs checks that on the real VMM).
    #[test]
    fn a_filtered_thread_runs_its_calls() {
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        let program = program(Thread::Block).unwrap();
        std::thread::spawn(move || {
            seccompiler::apply_filter(&program).unwrap();
            let mut buf = vec![0u8; 1 << 20];
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut buf[..4], 0).unwrap();
            assert_eq!(&buf[..4], b"\x7fELF");
        })
        .join()
        .unwrap();
    }

    /// A thread under the virtio-net filter may move frames with readv and writev, add
    /// and remove descriptors of an epoll made before (as `Watch` does), and poll and
    /// write through a ring made before (as the device's `Uring` does).
    #[test]
    fn a_net_thread_runs_its_calls() {
        let mut fds = [0; 2];
        // SAFETY: socketpair fills two descriptors, closed at the end of the test.
        assert_eq!(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, 0, fds.as_mut_ptr()) }, 0);
        let epoll = vmm_sys_util::epoll::Epoll::new().unwrap();
        let eventfd = vmm_sys_util::eventfd::EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let ops = crate::devices::virtio::net::device::RING_OPS;
        let ring = crate::devices::virtio::block::engine_uring::restricted_ring_for(4, &eventfd, &ops, io_uring::squeue::Flags::empty());
        let program = program(Thread::Net).unwrap();
        std::thread::spawn(move || {
            use io_uring::{opcode, types};
            use vmm_sys_util::epoll::{ControlOperation, EpollEvent, EventSet};
            seccompiler::apply_filter(&program).unwrap();
            if let Ok(mut ring) = ring {
                let out = *b"ring";
                let iov = libc::iovec { iov_base: out.as_ptr().cast_mut().cast(), iov_len: out.len() };
                let write = opcode::Writev::new(types::Fd(fds[0]), &iov, 1).offset(u64::MAX).rw_flags(libc::RWF_NOWAIT).build().user_data(1);
                let poll = opcode::PollAdd::new(types::Fd(fds[1]), libc::POLLIN as u32).build().user_data(2);
                // SAFETY: `iov` and `out` outlive the ops, which are reaped below.
                unsafe { ring.submission().push_multiple(&[write, poll]) }.unwrap();
                ring.submit_and_wait(2).unwrap();
                let mut cqes: Vec<(u64, i32)> = ring.completion().map(|c| (c.user_data(), c.result())).collect();
                cqes.sort_unstable();
                assert_eq!(cqes, [(1, 4), (2, i32::from(libc::POLLIN))]);
                assert!(eventfd.read().unwrap() >= 1);
                let mut back = [0u8; 8];
                // SAFETY: a read into our own buffer.
                assert_eq!(unsafe { libc::read(fds[1], back.as_mut_ptr().cast(), back.len()) }, 4);
            }
            let out = *b"frame";
            let iov = libc::iovec { iov_base: out.as_ptr().cast_mut().cast(), iov_len: out.len() };
            // SAFETY: one iovec on our own buffer.
            assert_eq!(unsafe { libc::writev(fds[0], &iov, 1) }, 5);
            epoll.ctl(ControlOperation::Add, fds[1], EpollEvent::new(EventSet::IN, 1)).unwrap();
            let mut events = [EpollEvent::default(); 1];
            assert_eq!(epoll.wait(0, &mut events).unwrap(), 1);
            epoll.ctl(ControlOperation::Delete, fds[1], EpollEvent::default()).unwrap();
            let mut back = [0u8; 8];
            let iov = libc::iovec { iov_base: back.as_mut_ptr().cast(), iov_len: back.len() };
            // SAFETY: one iovec on our own buffer.
            assert_eq!(unsafe { libc::readv(fds[1], &iov, 1) }, 5);
            assert_eq!(&back[..5], b"frame");
            // SAFETY: the descriptors are ours and used no more.
            unsafe { libc::close(fds[0]) };
            // SAFETY: as above.
            unsafe { libc::close(fds[1]) };
        })
        .join()
        .unwrap();
    }
}
