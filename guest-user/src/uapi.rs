//! The syscall ABI: `#[repr(C)]` structs (sizes and offsets pinned at compile time) and
//! flag constants, with the values of the Linux x86-64 uapi headers.

use core::ffi::CStr;
use core::fmt;
use core::marker::PhantomData;
use core::mem::{offset_of, size_of};

// ---- files ----------------------------------------------------------------------------

pub const O_RDONLY: i32 = 0;
pub const O_WRONLY: i32 = 0o1;
pub const O_RDWR: i32 = 0o2;
pub const O_ACCMODE: i32 = 0o3;
pub const O_CREAT: i32 = 0o100;
pub const O_EXCL: i32 = 0o200;
pub const O_TRUNC: i32 = 0o1000;
pub const O_APPEND: i32 = 0o2000;
pub const O_NONBLOCK: i32 = 0o4000;
pub const O_DIRECTORY: i32 = 0o200000;
pub const O_NOFOLLOW: i32 = 0o400000;
pub const O_CLOEXEC: i32 = 0o2000000;

/// `dirfd` meaning "the current directory" for the `*at` syscalls.
pub const AT_FDCWD: i32 = -100;
pub const AT_SYMLINK_NOFOLLOW: i32 = 0x100;
pub const AT_REMOVEDIR: i32 = 0x200;
pub const AT_EMPTY_PATH: i32 = 0x1000;

pub const SEEK_SET: i32 = 0;
pub const SEEK_CUR: i32 = 1;
pub const SEEK_END: i32 = 2;

pub const S_IFMT: u32 = 0o170000;
pub const S_IFIFO: u32 = 0o010000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;

pub const F_DUPFD: i32 = 0;
pub const F_GETFD: i32 = 1;
pub const F_SETFD: i32 = 2;
pub const F_GETFL: i32 = 3;
pub const F_SETFL: i32 = 4;
pub const F_DUPFD_CLOEXEC: i32 = 1030;
pub const FD_CLOEXEC: usize = 1;

pub const TIOCGWINSZ: usize = 0x5413;
pub const FIONREAD: usize = 0x541b;

pub const STATX_TYPE: u32 = 0x1;
pub const STATX_MODE: u32 = 0x2;
pub const STATX_SIZE: u32 = 0x200;
pub const STATX_BASIC_STATS: u32 = 0x7ff;

/// `d_type` values of [`Dirent`].
pub const DT_UNKNOWN: u8 = 0;
pub const DT_FIFO: u8 = 1;
pub const DT_CHR: u8 = 2;
pub const DT_DIR: u8 = 4;
pub const DT_REG: u8 = 8;
pub const DT_LNK: u8 = 10;

/// `struct stat` as x86-64 `stat`, `fstat`, `lstat` and `newfstatat` fill it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Stat {
    pub st_dev: u64,
    pub st_ino: u64,
    pub st_nlink: u64,
    pub st_mode: u32,
    pub st_uid: u32,
    pub st_gid: u32,
    pub __pad0: i32,
    pub st_rdev: u64,
    pub st_size: i64,
    pub st_blksize: i64,
    pub st_blocks: i64,
    pub st_atime: i64,
    pub st_atime_nsec: i64,
    pub st_mtime: i64,
    pub st_mtime_nsec: i64,
    pub st_ctime: i64,
    pub st_ctime_nsec: i64,
    pub __unused: [i64; 3],
}
const _: () = assert!(size_of::<Stat>() == 144);
const _: () = assert!(offset_of!(Stat, st_mode) == 24);
const _: () = assert!(offset_of!(Stat, st_rdev) == 40);
const _: () = assert!(offset_of!(Stat, st_size) == 48);
const _: () = assert!(offset_of!(Stat, st_mtime) == 88);

/// A timestamp inside [`Statx`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct StatxTimestamp {
    pub tv_sec: i64,
    pub tv_nsec: u32,
    pub __reserved: i32,
}

/// `struct statx` (256 bytes; fields after `stx_dev_minor` are left as spare).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Statx {
    pub stx_mask: u32,
    pub stx_blksize: u32,
    pub stx_attributes: u64,
    pub stx_nlink: u32,
    pub stx_uid: u32,
    pub stx_gid: u32,
    pub stx_mode: u16,
    pub __spare0: u16,
    pub stx_ino: u64,
    pub stx_size: u64,
    pub stx_blocks: u64,
    pub stx_attributes_mask: u64,
    pub stx_atime: StatxTimestamp,
    pub stx_btime: StatxTimestamp,
    pub stx_ctime: StatxTimestamp,
    pub stx_mtime: StatxTimestamp,
    pub stx_rdev_major: u32,
    pub stx_rdev_minor: u32,
    pub stx_dev_major: u32,
    pub stx_dev_minor: u32,
    pub __spare: [u64; 14],
}
const _: () = assert!(size_of::<Statx>() == 256);
const _: () = assert!(offset_of!(Statx, stx_mode) == 28);
const _: () = assert!(offset_of!(Statx, stx_ino) == 32);
const _: () = assert!(offset_of!(Statx, stx_size) == 40);
const _: () = assert!(offset_of!(Statx, stx_atime) == 64);
const _: () = assert!(offset_of!(Statx, stx_rdev_major) == 128);

impl Default for Statx {
    fn default() -> Self {
        // SAFETY: Statx is plain integers, for which all-zero bytes are a valid value.
        unsafe { core::mem::zeroed() }
    }
}

/// The fixed header of a `struct linux_dirent64` record written by `getdents64`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Dirent64Header {
    pub d_ino: u64,
    pub d_off: i64,
    pub d_reclen: u16,
    pub d_type: u8,
}
const _: () = assert!(offset_of!(Dirent64Header, d_reclen) == 16);
const _: () = assert!(offset_of!(Dirent64Header, d_type) == 18);
/// Offset of `d_name` in a `linux_dirent64` record.
pub const DIRENT64_NAME_OFFSET: usize = 19;

/// One directory entry decoded from a `getdents64` buffer.
#[derive(Clone, Copy, Debug)]
pub struct Dirent<'a> {
    pub ino: u64,
    pub kind: u8,
    pub name: &'a CStr,
}

/// Iterates over the records `getdents64` wrote into `buf[..len]`.
pub fn dirents(buf: &[u8]) -> impl Iterator<Item = Dirent<'_>> {
    let mut pos = 0;
    core::iter::from_fn(move || {
        let rec = buf.get(pos..)?;
        if rec.len() < DIRENT64_NAME_OFFSET {
            return None;
        }
        let reclen = u16::from_ne_bytes([rec[16], rec[17]]) as usize;
        let name = CStr::from_bytes_until_nul(rec.get(DIRENT64_NAME_OFFSET..reclen)?).ok()?;
        pos += reclen.max(1);
        Some(Dirent {
            ino: u64::from_ne_bytes(rec[0..8].try_into().ok()?),
            kind: rec[18],
            name,
        })
    })
}

/// `struct iovec` describing a buffer the kernel reads (`writev`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IoVec<'a> {
    base: *const u8,
    len: usize,
    _buf: PhantomData<&'a [u8]>,
}
impl<'a> IoVec<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            base: buf.as_ptr(),
            len: buf.len(),
            _buf: PhantomData,
        }
    }
}

/// `struct iovec` describing a buffer the kernel writes (`readv`).
#[repr(C)]
pub struct IoVecMut<'a> {
    base: *mut u8,
    len: usize,
    _buf: PhantomData<&'a mut [u8]>,
}
impl<'a> IoVecMut<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self {
            base: buf.as_mut_ptr(),
            len: buf.len(),
            _buf: PhantomData,
        }
    }
}
const _: () = assert!(size_of::<IoVec<'_>>() == 16 && size_of::<IoVecMut<'_>>() == 16);

/// `struct winsize`, the answer to `TIOCGWINSZ`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct WinSize {
    pub ws_row: u16,
    pub ws_col: u16,
    pub ws_xpixel: u16,
    pub ws_ypixel: u16,
}

// ---- memory ---------------------------------------------------------------------------

pub const PAGE_SIZE: usize = 4096;
pub const PROT_NONE: usize = 0;
pub const PROT_READ: usize = 1;
pub const PROT_WRITE: usize = 2;
pub const PROT_EXEC: usize = 4;
pub const MAP_SHARED: usize = 0x01;
pub const MAP_PRIVATE: usize = 0x02;
pub const MAP_FIXED: usize = 0x10;
pub const MAP_ANONYMOUS: usize = 0x20;
pub const MAP_FIXED_NOREPLACE: usize = 0x100000;
pub const MADV_NORMAL: usize = 0;
pub const MADV_DONTNEED: usize = 4;

pub const ARCH_SET_GS: usize = 0x1001;
pub const ARCH_SET_FS: usize = 0x1002;
pub const ARCH_GET_FS: usize = 0x1003;
pub const ARCH_GET_GS: usize = 0x1004;

// ---- processes and threads --------------------------------------------------------------

pub const CLONE_VM: u64 = 0x100;
pub const CLONE_FS: u64 = 0x200;
pub const CLONE_FILES: u64 = 0x400;
pub const CLONE_SIGHAND: u64 = 0x800;
pub const CLONE_VFORK: u64 = 0x4000;
pub const CLONE_THREAD: u64 = 0x10000;
pub const CLONE_SYSVSEM: u64 = 0x40000;
pub const CLONE_SETTLS: u64 = 0x80000;
pub const CLONE_PARENT_SETTID: u64 = 0x100000;
pub const CLONE_CHILD_CLEARTID: u64 = 0x200000;
pub const CLONE_CHILD_SETTID: u64 = 0x1000000;

pub const WNOHANG: i32 = 1;
pub const WUNTRACED: i32 = 2;
pub const WSTOPPED: i32 = 2;
pub const WEXITED: i32 = 4;
pub const WCONTINUED: i32 = 8;
pub const WNOWAIT: i32 = 0x0100_0000;

/// waitid's id types.
pub const P_ALL: i32 = 0;
pub const P_PID: i32 = 1;
pub const P_PGID: i32 = 2;
pub const P_PIDFD: i32 = 3;
/// SIGCHLD's si_code.
pub const CLD_EXITED: i32 = 1;
pub const CLD_KILLED: i32 = 2;

/// A `siginfo_t` (128 bytes); waitid fills the fields below.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct Siginfo(pub [u8; 128]);

impl Siginfo {
    fn int(&self, off: usize) -> i32 {
        i32::from_ne_bytes([self.0[off], self.0[off + 1], self.0[off + 2], self.0[off + 3]])
    }
    pub fn signo(&self) -> i32 {
        self.int(0)
    }
    pub fn errno(&self) -> i32 {
        self.int(4)
    }
    pub fn code(&self) -> i32 {
        self.int(8)
    }
    pub fn pid(&self) -> i32 {
        self.int(16)
    }
    pub fn uid(&self) -> i32 {
        self.int(20)
    }
    pub fn status(&self) -> i32 {
        self.int(24)
    }
    /// SIGCHLD's si_utime and si_stime, in clock ticks.
    pub fn times(&self) -> (u64, u64) {
        let word = |off: usize| u64::from_ne_bytes(self.0[off..off + 8].try_into().unwrap_or([0; 8]));
        (word(32), word(40))
    }
    /// si_value (sigqueue's), as a pointer-sized word.
    pub fn value(&self) -> u64 {
        u64::from_ne_bytes(self.0[24..32].try_into().unwrap_or([0; 8]))
    }
    /// A siginfo for rt_sigqueueinfo: signo, code, pid, uid and value; the rest zero.
    pub fn queued(signo: i32, code: i32, pid: i32, uid: u32, value: u64) -> Self {
        let mut s = Siginfo([0; 128]);
        s.0[0..4].copy_from_slice(&signo.to_ne_bytes());
        s.0[8..12].copy_from_slice(&code.to_ne_bytes());
        s.0[16..20].copy_from_slice(&pid.to_ne_bytes());
        s.0[20..24].copy_from_slice(&uid.to_ne_bytes());
        s.0[24..32].copy_from_slice(&value.to_ne_bytes());
        s
    }
}

/// futex2 flags and `struct futex_waitv`.
pub const FUTEX2_SIZE_U8: u32 = 0x00;
pub const FUTEX2_SIZE_U32: u32 = 0x02;
pub const FUTEX2_PRIVATE: u32 = 0x80;
pub const FUTEX_BITSET_MATCH_ANY: u32 = u32::MAX;

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct FutexWaitv {
    pub val: u64,
    pub uaddr: u64,
    pub flags: u32,
    pub reserved: u32,
}

pub const FUTEX_WAIT: i32 = 0;
pub const FUTEX_WAKE: i32 = 1;
pub const FUTEX_PRIVATE_FLAG: i32 = 128;

/// The status word `wait4` stores, decoded as `<sys/wait.h>` does.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct WaitStatus(pub i32);

impl WaitStatus {
    /// `WEXITSTATUS` if the child exited (`WIFEXITED`).
    pub fn exit_code(self) -> Option<i32> {
        (self.0 & 0x7f == 0).then_some((self.0 >> 8) & 0xff)
    }
    /// `WTERMSIG` if a signal killed the child (`WIFSIGNALED`).
    pub fn term_signal(self) -> Option<i32> {
        let sig = self.0 & 0x7f;
        (sig != 0 && sig != 0x7f).then_some(sig)
    }
}

impl fmt::Debug for WaitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.exit_code(), self.term_signal()) {
            (Some(code), _) => write!(f, "exited({code})"),
            (_, Some(sig)) => write!(f, "killed(signal {sig})"),
            _ => write!(f, "WaitStatus({:#x})", self.0),
        }
    }
}

// ---- signals --------------------------------------------------------------------------

pub const SIGHUP: i32 = 1;
pub const SIGINT: i32 = 2;
pub const SIGQUIT: i32 = 3;
pub const SIGILL: i32 = 4;
pub const SIGABRT: i32 = 6;
pub const SIGBUS: i32 = 7;
pub const SIGFPE: i32 = 8;
pub const SIGKILL: i32 = 9;
pub const SIGUSR1: i32 = 10;
pub const SIGSEGV: i32 = 11;
pub const SIGUSR2: i32 = 12;
pub const SIGPIPE: i32 = 13;
pub const SIGALRM: i32 = 14;
pub const SIGTERM: i32 = 15;
pub const SIGCHLD: i32 = 17;
pub const SIGCONT: i32 = 18;
pub const SIGSTOP: i32 = 19;
pub const SIGVTALRM: i32 = 26;
pub const SIGPROF: i32 = 27;
/// The kernel's first real-time signal (C libraries keep 32 and 33 for themselves).
pub const SIGRTMIN_KERNEL: i32 = 32;
pub const SIGRTMAX: i32 = 64;

/// si_code values.
pub const SI_USER: i32 = 0;
pub const SI_KERNEL: i32 = 0x80;
pub const SI_QUEUE: i32 = -1;
pub const SI_TKILL: i32 = -6;

pub const SIG_DFL: usize = 0;
pub const SIG_IGN: usize = 1;
pub const SA_SIGINFO: u64 = 0x4;
pub const SA_RESTORER: u64 = 0x0400_0000;
pub const SA_ONSTACK: u64 = 0x0800_0000;
pub const SA_RESTART: u64 = 0x1000_0000;
pub const SA_NODEFER: u64 = 0x4000_0000;

pub const SIG_BLOCK: i32 = 0;
pub const SIG_UNBLOCK: i32 = 1;
pub const SIG_SETMASK: i32 = 2;

/// The bit of signal `sig` in a 64-bit signal mask.
pub const fn sigbit(sig: i32) -> u64 {
    1 << (sig - 1)
}

/// The kernel's `struct sigaction` (x86-64 `rt_sigaction`; not libc's layout).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigAction {
    /// `SIG_DFL`, `SIG_IGN` or the address of an `extern "C" fn(i32)`.
    pub handler: usize,
    pub flags: u64,
    /// Where the handler returns to: code that calls `rt_sigreturn` (see `sys::restore_rt`).
    pub restorer: usize,
    pub mask: u64,
}
const _: () = assert!(size_of::<SigAction>() == 32);

pub const SS_ONSTACK: i32 = 1;
pub const SS_DISABLE: i32 = 2;
pub const MINSIGSTKSZ: usize = 2048;

/// `stack_t`, for `sigaltstack`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigStack {
    pub ss_sp: usize,
    pub ss_flags: i32,
    pub ss_size: usize,
}
const _: () = assert!(size_of::<SigStack>() == 24 && offset_of!(SigStack, ss_size) == 16);

// ---- time -----------------------------------------------------------------------------

pub const CLOCK_REALTIME: i32 = 0;
pub const CLOCK_MONOTONIC: i32 = 1;
pub const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
pub const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
pub const CLOCK_MONOTONIC_RAW: i32 = 4;
pub const CLOCK_BOOTTIME: i32 = 7;
pub const TIMER_ABSTIME: i32 = 1;

/// `struct timespec`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timespec {
    pub tv_sec: i64,
    pub tv_nsec: i64,
}
const _: () = assert!(size_of::<Timespec>() == 16);

impl Timespec {
    pub const fn from_nanos(ns: i64) -> Self {
        Self {
            tv_sec: ns / 1_000_000_000,
            tv_nsec: ns % 1_000_000_000,
        }
    }
    pub const fn as_nanos(&self) -> i64 {
        self.tv_sec * 1_000_000_000 + self.tv_nsec
    }
}

/// `struct timeval`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeval {
    pub tv_sec: i64,
    pub tv_usec: i64,
}
const _: () = assert!(size_of::<Timeval>() == 16);

// ---- system ---------------------------------------------------------------------------

/// `struct utsname` (`new_utsname`): six NUL-terminated fields of 65 bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Utsname {
    pub sysname: [u8; 65],
    pub nodename: [u8; 65],
    pub release: [u8; 65],
    pub version: [u8; 65],
    pub machine: [u8; 65],
    pub domainname: [u8; 65],
}
const _: () = assert!(size_of::<Utsname>() == 390);

impl Default for Utsname {
    fn default() -> Self {
        Self {
            sysname: [0; 65],
            nodename: [0; 65],
            release: [0; 65],
            version: [0; 65],
            machine: [0; 65],
            domainname: [0; 65],
        }
    }
}

/// The text of one `Utsname` field, up to its NUL.
pub fn field_str(field: &[u8]) -> &str {
    let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    core::str::from_utf8(&field[..len]).unwrap_or("<not UTF-8>")
}

pub const RLIMIT_STACK: i32 = 3;
pub const RLIMIT_NOFILE: i32 = 7;
pub const RLIM_INFINITY: u64 = !0;

/// `struct rlimit64`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rlimit {
    pub rlim_cur: u64,
    pub rlim_max: u64,
}
const _: () = assert!(size_of::<Rlimit>() == 16);

pub const EFD_SEMAPHORE: i32 = 1;
pub const EFD_NONBLOCK: i32 = O_NONBLOCK;
pub const EFD_CLOEXEC: i32 = O_CLOEXEC;

pub const GRND_NONBLOCK: u32 = 1;
pub const GRND_RANDOM: u32 = 2;

/// Auxiliary vector keys (see [`crate::Args::aux`]).
pub const AT_PAGESZ: usize = 6;
pub const AT_RANDOM: usize = 25;
pub const AT_SYSINFO_EHDR: usize = 33;

// ---- poll and select ----------------------------------------------------------------

pub const POLLIN: i16 = 0x1;
pub const POLLPRI: i16 = 0x2;
pub const POLLOUT: i16 = 0x4;
pub const POLLERR: i16 = 0x8;
pub const POLLHUP: i16 = 0x10;
pub const POLLNVAL: i16 = 0x20;

/// `struct pollfd`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollFd {
    pub fd: i32,
    pub events: i16,
    pub revents: i16,
}
const _: () = assert!(size_of::<PollFd>() == 8);

/// `fd_set` for select: 1024 bits.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FdSet(pub [u64; 16]);

impl FdSet {
    pub fn set(&mut self, fd: i32) {
        self.0[fd as usize / 64] |= 1 << (fd as usize % 64);
    }
    pub fn is_set(&self, fd: i32) -> bool {
        self.0[fd as usize / 64] >> (fd as usize % 64) & 1 != 0
    }
}

// ---- timerfd ----------------------------------------------------------------------------

pub const TFD_TIMER_ABSTIME: i32 = 1;
pub const TFD_NONBLOCK: i32 = O_NONBLOCK;
pub const TFD_CLOEXEC: i32 = O_CLOEXEC;

/// `struct itimerspec`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Itimerspec {
    pub it_interval: Timespec,
    pub it_value: Timespec,
}
const _: () = assert!(size_of::<Itimerspec>() == 32);

// ---- preadv2 and pwritev2 ---------------------------------------------------------------

pub const RWF_HIPRI: i32 = 0x1;
pub const RWF_DSYNC: i32 = 0x2;
pub const RWF_SYNC: i32 = 0x4;
pub const RWF_NOWAIT: i32 = 0x8;
pub const RWF_APPEND: i32 = 0x10;
pub const RWF_NOAPPEND: i32 = 0x20;
pub const RWF_ATOMIC: i32 = 0x40;
// ---- interval timers, signalfd ----------------------------------------------------------

pub const ITIMER_REAL: i32 = 0;
pub const ITIMER_VIRTUAL: i32 = 1;
pub const ITIMER_PROF: i32 = 2;

/// `struct itimerval`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Itimerval {
    pub it_interval: Timeval,
    pub it_value: Timeval,
}
const _: () = assert!(size_of::<Itimerval>() == 32);

pub const SFD_NONBLOCK: i32 = O_NONBLOCK;
pub const SFD_CLOEXEC: i32 = O_CLOEXEC;

/// `struct signalfd_siginfo` (128 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SignalfdSiginfo {
    pub ssi_signo: u32,
    pub ssi_errno: i32,
    pub ssi_code: i32,
    pub ssi_pid: u32,
    pub ssi_uid: u32,
    pub ssi_fd: i32,
    pub ssi_tid: u32,
    pub ssi_band: u32,
    pub ssi_overrun: u32,
    pub ssi_trapno: u32,
    pub ssi_status: i32,
    pub ssi_int: i32,
    pub ssi_ptr: u64,
    pub ssi_utime: u64,
    pub ssi_stime: u64,
    pub ssi_addr: u64,
    pub ssi_addr_lsb: u16,
    pub pad2: u16,
    pub ssi_syscall: i32,
    pub ssi_call_addr: u64,
    pub ssi_arch: u32,
    pub pad: [u8; 28],
}
const _: () = assert!(
    size_of::<SignalfdSiginfo>() == 128
        && offset_of!(SignalfdSiginfo, ssi_ptr) == 48
        && offset_of!(SignalfdSiginfo, ssi_addr_lsb) == 80
        && offset_of!(SignalfdSiginfo, ssi_call_addr) == 88
        && offset_of!(SignalfdSiginfo, ssi_arch) == 96
);
