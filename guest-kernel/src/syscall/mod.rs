//! System calls: the Linux x86-64 ABI (number in rax, arguments in rdi, rsi, rdx, r10, r8,
//! r9; result or `-errno` in rax), dispatched through one table from number to handler.
//! One file per family.

pub mod epoll;
pub mod poll;
pub mod prctl;
pub mod rw;
pub mod sched;
pub mod fs;
pub mod futex;
mod cred;
mod io_uring;
pub mod mm;
pub mod mount;
pub mod net;
mod process;
pub mod restart;
pub mod signal;
mod sys;
mod time;
pub mod xattr;

use crate::arch::interrupts::TrapFrame;
use crate::errno::{KResult, EINTR, ENOSYS};
pub use fs::read_iovecs;


/// What a handler sees: the six arguments and the caller's saved registers (for the few
/// calls that change them: fork, clone, execve).
pub struct Ctx<'a> {
    pub a: [u64; 6],
    pub frame: &'a mut TrapFrame,
}

impl Ctx<'_> {
    /// Argument `i` as a C `int` (the upper half ignored, as Linux does).
    pub fn int(&self, i: usize) -> i32 {
        self.a[i] as i32
    }
}

type Handler = fn(&mut Ctx) -> KResult<u64>;

macro_rules! syscall_table {
    ($($nr:literal $name:ident => $handler:path,)*) => {
        const TABLE: [Option<(&str, Handler)>; 512] = {
            let mut t: [Option<(&str, Handler)>; 512] = [None; 512];
            $(t[$nr] = Some((stringify!($name), $handler as Handler));)*
            t
        };
    };
}

syscall_table! {
    0 read => fs::read,
    1 write => fs::write,
    2 open => fs::open,
    3 close => fs::close,
    4 stat => fs::stat,
    5 fstat => fs::fstat,
    6 lstat => fs::lstat,
    7 poll => poll::poll,
    8 lseek => fs::lseek,
    9 mmap => mm::mmap,
    10 mprotect => mm::mprotect,
    11 munmap => mm::munmap,
    12 brk => mm::brk,
    13 rt_sigaction => signal::rt_sigaction,
    14 rt_sigprocmask => signal::rt_sigprocmask,
    15 rt_sigreturn => signal::rt_sigreturn,
    16 ioctl => fs::ioctl,
    17 pread64 => fs::pread64,
    18 pwrite64 => fs::pwrite64,
    19 readv => fs::readv,
    20 writev => fs::writev,
    21 access => fs::access,
    22 pipe => fs::pipe,
    23 select => poll::select,
    24 sched_yield => process::sched_yield,
    25 mremap => mm::mremap,
    26 msync => mm::msync,
    27 mincore => mm::mincore,
    28 madvise => mm::madvise,
    32 dup => fs::dup,
    33 dup2 => fs::dup2,
    34 pause => time::pause,
    35 nanosleep => time::nanosleep,
    36 getitimer => time::getitimer,
    37 alarm => time::alarm,
    38 setitimer => time::setitimer,
    39 getpid => process::getpid,
    40 sendfile => rw::sendfile,
    41 socket => net::socket,
    42 connect => net::connect,
    43 accept => net::accept,
    44 sendto => net::sendto,
    45 recvfrom => net::recvfrom,
    46 sendmsg => net::sendmsg,
    47 recvmsg => net::recvmsg,
    48 shutdown => net::shutdown,
    49 bind => net::bind,
    50 listen => net::listen,
    51 getsockname => net::getsockname,
    52 getpeername => net::getpeername,
    53 socketpair => net::socketpair,
    54 setsockopt => net::setsockopt,
    55 getsockopt => net::getsockopt,
    56 clone => process::clone,
    57 fork => process::fork,
    58 vfork => process::vfork,
    59 execve => process::execve,
    60 exit => process::exit,
    61 wait4 => process::wait4,
    62 kill => signal::kill,
    63 uname => sys::uname,
    72 fcntl => fs::fcntl,
    73 flock => fs::flock,
    74 fsync => fs::fsync,
    75 fdatasync => fs::fsync,
    76 truncate => fs::truncate,
    77 ftruncate => fs::ftruncate,
    79 getcwd => fs::getcwd,
    80 chdir => fs::chdir,
    81 fchdir => fs::fchdir,
    82 rename => fs::rename,
    83 mkdir => fs::mkdir,
    84 rmdir => fs::rmdir,
    86 link => fs::link,
    87 unlink => fs::unlink,
    88 symlink => fs::symlink,
    89 readlink => fs::readlink,
    90 chmod => fs::chmod,
    91 fchmod => fs::fchmod,
    92 chown => fs::chown,
    93 fchown => fs::fchown,
    94 lchown => fs::lchown,
    95 umask => fs::umask,
    96 gettimeofday => time::gettimeofday,
    97 getrlimit => sys::getrlimit,
    98 getrusage => process::getrusage,
    99 sysinfo => sys::sysinfo,
    100 times => process::times,
    102 getuid => cred::getuid,
    104 getgid => cred::getgid,
    105 setuid => cred::setuid,
    106 setgid => cred::setgid,
    107 geteuid => cred::geteuid,
    108 getegid => cred::getegid,
    109 setpgid => process::setpgid,
    110 getppid => process::getppid,
    111 getpgrp => process::getpgrp,
    112 setsid => process::setsid,
    113 setreuid => cred::setreuid,
    114 setregid => cred::setregid,
    115 getgroups => cred::getgroups,
    116 setgroups => cred::setgroups,
    117 setresuid => cred::setresuid,
    118 getresuid => cred::getresuid,
    119 setresgid => cred::setresgid,
    120 getresgid => cred::getresgid,
    121 getpgid => process::getpgid,
    122 setfsuid => cred::setfsuid,
    123 setfsgid => cred::setfsgid,
    124 getsid => process::getsid,
    125 capget => cred::capget,
    126 capset => cred::capset,
    127 rt_sigpending => signal::rt_sigpending,
    128 rt_sigtimedwait => signal::rt_sigtimedwait,
    129 rt_sigqueueinfo => signal::rt_sigqueueinfo,
    130 rt_sigsuspend => signal::rt_sigsuspend,
    131 sigaltstack => signal::sigaltstack,
    137 statfs => fs::statfs,
    138 fstatfs => fs::fstatfs,
    140 getpriority => sched::getpriority,
    141 setpriority => sched::setpriority,
    142 sched_setparam => sched::sched_setparam,
    143 sched_getparam => sched::sched_getparam,
    144 sched_setscheduler => sched::sched_setscheduler,
    145 sched_getscheduler => sched::sched_getscheduler,
    146 sched_get_priority_max => sched::sched_get_priority_max,
    147 sched_get_priority_min => sched::sched_get_priority_min,
    148 sched_rr_get_interval => sched::sched_rr_get_interval,
    149 mlock => mm::mlock,
    150 munlock => mm::munlock,
    151 mlockall => mm::mlockall,
    152 munlockall => mm::munlockall,
    157 prctl => prctl::prctl,
    158 arch_prctl => process::arch_prctl,
    160 setrlimit => sys::setrlimit,
    162 sync => fs::sync,
    165 mount => mount::mount,
    166 umount2 => mount::umount2,
    186 gettid => process::gettid,
    187 readahead => rw::readahead,
    188 setxattr => xattr::setxattr,
    189 lsetxattr => xattr::lsetxattr,
    190 fsetxattr => xattr::fsetxattr,
    191 getxattr => xattr::getxattr,
    192 lgetxattr => xattr::lgetxattr,
    193 fgetxattr => xattr::fgetxattr,
    194 listxattr => xattr::listxattr,
    195 llistxattr => xattr::llistxattr,
    196 flistxattr => xattr::flistxattr,
    197 removexattr => xattr::removexattr,
    198 lremovexattr => xattr::lremovexattr,
    199 fremovexattr => xattr::fremovexattr,
    200 tkill => signal::tkill,
    201 time => time::time,
    202 futex => futex::futex,
    203 sched_setaffinity => sys::sched_setaffinity,
    204 sched_getaffinity => sys::sched_getaffinity,
    213 epoll_create => epoll::epoll_create,
    217 getdents64 => fs::getdents64,
    218 set_tid_address => process::set_tid_address,
    221 fadvise64 => rw::fadvise64,
    228 clock_gettime => time::clock_gettime,
    229 clock_getres => time::clock_getres,
    230 clock_nanosleep => time::clock_nanosleep,
    231 exit_group => process::exit_group,
    232 epoll_wait => epoll::epoll_wait,
    233 epoll_ctl => epoll::epoll_ctl,
    234 tgkill => signal::tgkill,
    235 utimes => fs::utimes,
    247 waitid => process::waitid,
    257 openat => fs::openat,
    258 mkdirat => fs::mkdirat,
    260 fchownat => fs::fchownat,
    261 futimesat => fs::futimesat,
    262 newfstatat => fs::newfstatat,
    263 unlinkat => fs::unlinkat,
    264 renameat => fs::renameat,
    265 linkat => fs::linkat,
    266 symlinkat => fs::symlinkat,
    267 readlinkat => fs::readlinkat,
    268 fchmodat => fs::fchmodat,
    269 faccessat => fs::faccessat,
    270 pselect6 => poll::pselect6,
    271 ppoll => poll::ppoll,
    273 set_robust_list => sys::set_robust_list,
    275 splice => fs::splice,
    276 tee => fs::tee,
    277 sync_file_range => fs::sync_file_range,
    278 vmsplice => fs::vmsplice,
    280 utimensat => fs::utimensat,
    281 epoll_pwait => epoll::epoll_pwait,
    282 signalfd => signal::signalfd,
    283 timerfd_create => time::timerfd_create,
    284 eventfd => fs::eventfd,
    285 fallocate => fs::fallocate,
    286 timerfd_settime => time::timerfd_settime,
    287 timerfd_gettime => time::timerfd_gettime,
    288 accept4 => net::accept4,
    289 signalfd4 => signal::signalfd4,
    290 eventfd2 => fs::eventfd2,
    291 epoll_create1 => epoll::epoll_create1,
    292 dup3 => fs::dup3,
    293 pipe2 => fs::pipe2,
    295 preadv => rw::preadv,
    296 pwritev => rw::pwritev,
    297 rt_tgsigqueueinfo => signal::rt_tgsigqueueinfo,
    299 recvmmsg => net::recvmmsg,
    302 prlimit64 => sys::prlimit64,
    306 syncfs => fs::syncfs,
    307 sendmmsg => net::sendmmsg,
    309 getcpu => sys::getcpu,
    316 renameat2 => fs::renameat2,
    318 getrandom => sys::getrandom,
    319 memfd_create => fs::memfd_create,
    324 membarrier => sys::membarrier,
    325 mlock2 => mm::mlock2,
    326 copy_file_range => rw::copy_file_range,
    327 preadv2 => rw::preadv2,
    328 pwritev2 => rw::pwritev2,
    332 statx => fs::statx,
    424 pidfd_send_signal => process::pidfd_send_signal,
    425 io_uring_setup => io_uring::setup,
    426 io_uring_enter => io_uring::enter,
    427 io_uring_register => io_uring::register,
    434 pidfd_open => process::pidfd_open,
    435 clone3 => process::clone3,
    436 close_range => fs::close_range,
    437 openat2 => fs::openat2,
    439 faccessat2 => fs::faccessat2,
    441 epoll_pwait2 => epoll::epoll_pwait2,
    449 futex_waitv => futex::futex_waitv,
    454 futex_wake => futex::futex_wake,
    455 futex_wait => futex::futex_wait,
}

/// Logs an unknown syscall number the first time a program uses it: libcs probe some
/// (glibc's rseq at every start) and a warning per call would flood the console.
fn warn_unknown_once(nr: u64) {
    use core::sync::atomic::{AtomicU64, Ordering};
    static SEEN: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
    // Numbers past the table share the last bit.
    let bit = nr.min(8 * 64 - 1);
    let mask = 1 << (bit % 64);
    if SEEN[(bit / 64) as usize].fetch_or(mask, Ordering::Relaxed) & mask == 0 {
        log::warn!("unknown syscall {nr}: -ENOSYS (logged once per number)");
    }
}

/// Runs the syscall in `frame` and stores its result in `frame.rax`.
pub fn dispatch(frame: &mut TrapFrame) {
    let nr = frame.rax;
    let a = [frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9];
    let result = match TABLE.get(nr as usize).copied().flatten() {
        Some((name, handler)) => {
            log::trace!("syscall {name}({:#x}, {:#x}, {:#x})", a[0], a[1], a[2]);
            handler(&mut Ctx { a, frame })
        }
        None => {
            warn_unknown_once(nr);
            Err(ENOSYS)
        }
    };
    if matches!(result, Err(e) if e == EINTR) {
        restart::interrupted(nr, &a);
    }
    frame.rax = match result {
        Ok(v) => v,
        Err(e) if e == crate::errno::EFILL => {
            // A user access that was not run under `with_user`: a kernel bug, never
            // shown as an unknown error number.
            log::warn!("syscall {nr}: unhandled EFILL");
            (-i64::from(crate::errno::EFAULT.0)) as u64
        }
        Err(e) => (-i64::from(e.0)) as u64,
    };
}
