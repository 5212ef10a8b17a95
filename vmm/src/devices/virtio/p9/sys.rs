//! Safe wrappers around the `*at` system calls the 9P server needs.
//!
//! Every path argument here is a single name (checked by the caller: no `/`, not `.` or
//! `..`) resolved relative to a directory fd, or the empty path with `AT_EMPTY_PATH`, or
//! `/proc/self/fd/N`, a magic link that names exactly the inode behind fd N. Nothing
//! here ever resolves a multi-component path chosen by the guest.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

const EMPTY: &CStr = c"";

/// `/proc/self/fd/N` for `fd`: reopening it reaches exactly fd's inode.
pub fn proc_path(fd: BorrowedFd<'_>) -> CString {
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL in a number")
}

pub fn openat(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid C string and `dir` a live fd; the kernel only reads them.
    let fd = check(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags | libc::O_CLOEXEC, mode) })?;
    // SAFETY: `fd` was just returned by openat and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens `path` (a `/proc/self/fd/N` link) with `flags`.
pub fn open(path: &CStr, flags: libc::c_int) -> io::Result<File> {
    // SAFETY: `path` is a valid C string; the kernel only reads it.
    let fd = check(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by open and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`; an empty `name` stats `dir` itself.
pub fn statat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    let flags = libc::AT_SYMLINK_NOFOLLOW | if name.is_empty() { libc::AT_EMPTY_PATH } else { 0 };
    // SAFETY: `st` is writable memory of the right size; `name` is a valid C string.
    check(unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), st.as_mut_ptr(), flags) })?;
    // SAFETY: fstatat succeeded, so it filled `st`.
    Ok(unsafe { st.assume_init() })
}

pub fn stat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    statat(fd, EMPTY)
}

pub fn statfs(fd: BorrowedFd<'_>) -> io::Result<libc::statfs> {
    let mut st = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `st` is writable memory of the right size.
    check(unsafe { libc::fstatfs(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstatfs succeeded, so it filled `st`.
    Ok(unsafe { st.assume_init() })
}

pub fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: valid fd and C string, only read by the kernel.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }).map(drop)
}

pub fn mknodat(dir: BorrowedFd<'_>, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: valid fd and C string, only read by the kernel.
    check(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode, 0) }).map(drop)
}

pub fn symlinkat(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: valid fd and C strings, only read by the kernel.
    check(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }).map(drop)
}

pub fn unlinkat(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: valid fd and C string, only read by the kernel.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(drop)
}

pub fn renameat(olddir: BorrowedFd<'_>, old: &CStr, newdir: BorrowedFd<'_>, new: &CStr) -> io::Result<()> {
    // SAFETY: valid fds and C strings, only read by the kernel.
    check(unsafe { libc::renameat(olddir.as_raw_fd(), old.as_ptr(), newdir.as_raw_fd(), new.as_ptr()) }).map(drop)
}

/// `linkat(olddir, old, newdir, new, flags)`; `olddir` None means AT_FDCWD (with `old` a
/// `/proc/self/fd/N` link and `flags` AT_SYMLINK_FOLLOW).
pub fn linkat(
    olddir: Option<BorrowedFd<'_>>,
    old: &CStr,
    newdir: BorrowedFd<'_>,
    new: &CStr,
    flags: libc::c_int,
) -> io::Result<()> {
    let olddir = olddir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: valid fds and C strings, only read by the kernel.
    check(unsafe { libc::linkat(olddir, old.as_ptr(), newdir.as_raw_fd(), new.as_ptr(), flags) }).map(drop)
}

/// The target of the symlink `fd` (an O_PATH fd of the link itself).
pub fn readlink(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: `buf` is writable for `buf.len()` bytes; the empty path names `fd` itself.
    let n = unsafe { libc::readlinkat(fd.as_raw_fd(), EMPTY.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// `fchownat(fd, "", uid, gid, AT_EMPTY_PATH)`; u32::MAX leaves an id unchanged.
pub fn chown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: valid fd and C string, only read by the kernel.
    check(unsafe { libc::fchownat(fd.as_raw_fd(), EMPTY.as_ptr(), uid, gid, libc::AT_EMPTY_PATH) }).map(drop)
}

pub fn chmod(path: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: valid C string, only read by the kernel.
    check(unsafe { libc::chmod(path.as_ptr(), mode) }).map(drop)
}

pub fn truncate(path: &CStr, size: u64) -> io::Result<()> {
    let size = libc::off_t::try_from(size).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: valid C string, only read by the kernel.
    check(unsafe { libc::truncate(path.as_ptr(), size) }).map(drop)
}

/// `utimensat(dir, name, times, flags)`; `dir` None means AT_FDCWD.
pub fn utimensat(dir: Option<BorrowedFd<'_>>, name: &CStr, times: &[libc::timespec; 2], flags: libc::c_int) -> io::Result<()> {
    let dir = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: valid C string and a two-element timespec array, only read by the kernel.
    check(unsafe { libc::utimensat(dir, name.as_ptr(), times.as_ptr(), flags) }).map(drop)
}

/// One directory entry from getdents64.
pub struct Dirent {
    pub ino: u64,
    pub off: u64,
    pub ty: u8,
    pub name: Vec<u8>,
}

/// Reads directory entries of `dir` from position `offset` (a cookie of an earlier entry,
/// or 0), at most about `bytes` bytes of kernel records.
pub fn read_dir(dir: &File, offset: u64, bytes: usize) -> io::Result<Vec<Dirent>> {
    let off = libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: lseek on a live fd has no memory effects.
    if unsafe { libc::lseek(dir.as_raw_fd(), off, libc::SEEK_SET) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; bytes.clamp(512, 64 << 10)];
    // SAFETY: `buf` is writable for `buf.len()` bytes; getdents64 writes at most that.
    let n = unsafe { libc::syscall(libc::SYS_getdents64, dir.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut rest = &buf[..n as usize];
    // struct linux_dirent64 { u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
    while rest.len() >= 19 {
        let reclen = usize::from(u16::from_ne_bytes([rest[16], rest[17]]));
        if reclen < 19 || reclen > rest.len() {
            break;
        }
        let rec = &rest[..reclen];
        let name = &rec[19..];
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        out.push(Dirent {
            ino: u64::from_ne_bytes(rec[0..8].try_into().expect("8 bytes")),
            off: u64::from_ne_bytes(rec[8..16].try_into().expect("8 bytes")),
            ty: rec[18],
            name: name.to_vec(),
        });
        rest = &rest[reclen..];
    }
    Ok(out)
}

/// Clears O_NONBLOCK on an open file.
pub fn clear_nonblock(fd: BorrowedFd) -> io::Result<()> {
    // SAFETY: fcntl on a valid descriptor with integer arguments only.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The size a getxattr/listxattr answer may have (Linux's XATTR_SIZE_MAX and
/// XATTR_LIST_MAX).
pub const XATTR_MAX: usize = 65536;

/// `getxattr(path, name)` (`name` None: `listxattr(path)`): the value or the name list.
pub fn getxattr(path: &CStr, name: Option<&CStr>) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; XATTR_MAX];
    // SAFETY: valid C strings and a buffer of the length given, which the kernel writes.
    let n = unsafe {
        match name {
            Some(name) => libc::getxattr(path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()),
            None => libc::listxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()),
        }
    };
    buf.truncate(usize::try_from(check_size(n)?).unwrap_or(0));
    Ok(buf)
}

/// `setxattr(path, name, value, flags)`, or with `value` None `removexattr(path, name)`.
pub fn setxattr(path: &CStr, name: &CStr, value: Option<&[u8]>, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: valid C strings and a value buffer of the length given, only read.
    let r = unsafe {
        match value {
            Some(v) => libc::setxattr(path.as_ptr(), name.as_ptr(), v.as_ptr().cast(), v.len(), flags),
            None => libc::removexattr(path.as_ptr(), name.as_ptr()),
        }
    };
    check(r).map(drop)
}

fn check_size(n: libc::ssize_t) -> io::Result<libc::ssize_t> {
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n) }
}
