//! Linux error numbers. Syscalls return `-errno` exactly as Linux would.
//! The table is Linux's, whole: not every value has a use yet.
#![allow(dead_code)]

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

pub type KResult<T> = Result<T, Errno>;

macro_rules! errnos {
    ($($name:ident = $value:expr),* $(,)?) => {
        $(pub const $name: Errno = Errno($value);)*
    };
}

errnos! {
    EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EIO = 5, ENXIO = 6, E2BIG = 7, ENOEXEC = 8,
    EBADF = 9, ECHILD = 10, EAGAIN = 11, ENOMEM = 12, EACCES = 13, EFAULT = 14, ENOTBLK = 15, EBUSY = 16,
    EEXIST = 17, EXDEV = 18, ENODEV = 19, ENOTDIR = 20, EISDIR = 21, EINVAL = 22, ENFILE = 23,
    EMFILE = 24, ENOTTY = 25, EFBIG = 27, ENOSPC = 28, ESPIPE = 29, EROFS = 30, EMLINK = 31,
    EPIPE = 32, EDOM = 33, ERANGE = 34, EDEADLK = 35, ENAMETOOLONG = 36, ENOSYS = 38, ENOTEMPTY = 39,
    ELOOP = 40, ENODATA = 61, ETIME = 62, EOVERFLOW = 75, EBADFD = 77, EOPNOTSUPP = 95, ENOBUFS = 105, ETIMEDOUT = 110, EALREADY = 114, ECANCELED = 125, EUCLEAN = 117,
    ENOTSOCK = 88, EDESTADDRREQ = 89, EMSGSIZE = 90, EPROTOTYPE = 91, ENOPROTOOPT = 92, EPROTONOSUPPORT = 93,
    ESOCKTNOSUPPORT = 94, EPFNOSUPPORT = 96, EAFNOSUPPORT = 97, EADDRINUSE = 98, EADDRNOTAVAIL = 99, ENETDOWN = 100,
    ENETUNREACH = 101, ECONNABORTED = 103, ECONNRESET = 104, EISCONN = 106, ENOTCONN = 107, ESHUTDOWN = 108,
    ECONNREFUSED = 111, EHOSTUNREACH = 113, EINPROGRESS = 115,
}

/// Kernel-internal, never seen by user space: a user access needs a file page read in
/// first, which may sleep (`mm::uaccess::with_user` reads it and tries again).
pub const EFILL: Errno = Errno(600);

impl From<crate::mm::paging::OutOfMemory> for Errno {
    fn from(_: crate::mm::paging::OutOfMemory) -> Self {
        ENOMEM
    }
}
