//! Error numbers. A failing syscall returns `-errno` in `rax`, in `-4095..=-1`.

use core::fmt;

/// A Linux error number (positive, as in `errno.h`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

/// What the typed syscall wrappers return: the non-negative result or the error.
pub type Result<T = usize> = core::result::Result<T, Errno>;

macro_rules! errnos {
    ($($name:ident = $val:literal,)*) => {
        impl Errno {
            $(#[doc = concat!("`", stringify!($name), "` (", stringify!($val), ")")]
              pub const $name: Errno = Errno($val);)*

            /// The symbolic name, or `None` for a number this table does not know.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($val => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

errnos! {
    EPERM = 1,
    ENOENT = 2,
    ESRCH = 3,
    EINTR = 4,
    EIO = 5,
    ENXIO = 6,
    E2BIG = 7,
    ENOEXEC = 8,
    EBADF = 9,
    ECHILD = 10,
    EAGAIN = 11,
    ENOMEM = 12,
    EACCES = 13,
    EFAULT = 14,
    EBUSY = 16,
    EEXIST = 17,
    EXDEV = 18,
    ENODEV = 19,
    ENOTDIR = 20,
    EISDIR = 21,
    EINVAL = 22,
    ENFILE = 23,
    EMFILE = 24,
    ENOTTY = 25,
    EFBIG = 27,
    ENOSPC = 28,
    ESPIPE = 29,
    EROFS = 30,
    EMLINK = 31,
    EPIPE = 32,
    ERANGE = 34,
    EDEADLK = 35,
    ENAMETOOLONG = 36,
    ENOSYS = 38,
    ENOTEMPTY = 39,
    ELOOP = 40,
    EOVERFLOW = 75,
    EOPNOTSUPP = 95,
    ETIMEDOUT = 110,
    EUCLEAN = 117,
}

impl Errno {
    /// Splits a raw syscall return value into a result or an error.
    pub fn from_ret(ret: isize) -> Result<usize> {
        if (-4095..0).contains(&ret) {
            Err(Errno(-ret as i32))
        } else {
            Ok(ret as usize)
        }
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
