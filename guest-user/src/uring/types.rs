//! Argument types of the [`opcode`](super::opcode) builders: the file an op targets,
//! SQE flags, and the small structs some ops point at.

use core::ops::BitOr;

use super::Sqe;

/// A file descriptor of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fd(pub i32);

/// A slot of the ring's registered (fixed) file table: the SQE gets `IOSQE_FIXED_FILE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed(pub u32);

/// The file an op works on: an fd or a fixed slot. Builders take `impl Into<Target>`,
/// so pass an [`Fd`] or a [`Fixed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Fd(i32),
    Fixed(u32),
}

impl From<Fd> for Target {
    fn from(fd: Fd) -> Self {
        Target::Fd(fd.0)
    }
}

impl From<Fixed> for Target {
    fn from(slot: Fixed) -> Self {
        Target::Fixed(slot.0)
    }
}

impl Target {
    /// Stores the target in `sqe.fd`, marking a fixed slot with `IOSQE_FIXED_FILE`.
    pub(crate) fn apply(self, sqe: &mut Sqe) {
        match self {
            Target::Fd(fd) => sqe.fd = fd,
            Target::Fixed(slot) => {
                sqe.fd = slot as i32;
                sqe.flags |= Flags::FIXED_FILE.0;
            }
        }
    }
}

/// `IOSQE_*` flags of an SQE; combine with `|`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u8);

impl Flags {
    pub const FIXED_FILE: Flags = Flags(1 << 0);
    pub const IO_DRAIN: Flags = Flags(1 << 1);
    pub const IO_LINK: Flags = Flags(1 << 2);
    pub const IO_HARDLINK: Flags = Flags(1 << 3);
    pub const ASYNC: Flags = Flags(1 << 4);
    pub const BUFFER_SELECT: Flags = Flags(1 << 5);
    pub const CQE_SKIP_SUCCESS: Flags = Flags(1 << 6);

    pub const fn bits(self) -> u8 {
        self.0
    }
}

impl BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

/// `struct __kernel_timespec`, what TIMEOUT and LINK_TIMEOUT point at.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timespec {
    pub tv_sec: i64,
    pub tv_nsec: i64,
}

impl Timespec {
    pub const fn new(sec: i64, nsec: i64) -> Self {
        Timespec { tv_sec: sec, tv_nsec: nsec }
    }

    pub const fn from_millis(ms: i64) -> Self {
        Timespec { tv_sec: ms / 1000, tv_nsec: (ms % 1000) * 1_000_000 }
    }
}

/// `struct open_how`, what OPENAT2 points at.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenHow {
    pub flags: u64,
    pub mode: u64,
    pub resolve: u64,
}

/// `struct epoll_event` (packed on x86-64, as in Linux).
#[repr(C, packed)]
#[derive(Debug, Clone, Copy, Default)]
pub struct EpollEvent {
    pub events: u32,
    pub data: u64,
}

/// `struct iovec`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Iovec {
    pub base: *mut u8,
    pub len: usize,
}

impl Iovec {
    pub fn from_slice(buf: &mut [u8]) -> Self {
        Iovec { base: buf.as_mut_ptr(), len: buf.len() }
    }
}

/// `struct futex_waitv`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct FutexWaitv {
    pub val: u64,
    pub uaddr: u64,
    pub flags: u32,
    pub reserved: u32,
}

const _: () = assert!(size_of::<Timespec>() == 16 && size_of::<OpenHow>() == 24);
const _: () = assert!(size_of::<EpollEvent>() == 12 && size_of::<Iovec>() == 16 && size_of::<FutexWaitv>() == 24);
