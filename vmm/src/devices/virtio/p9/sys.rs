//! Safe wrappers around the `*at` system calls the 9P server needs.
//!
//! Every path argument here is a single name (checked by the caller: no `/`, not `.` or
//! `..`) resolved relative to a directory fd, or `.` relative to a directory's own fd, or
//! the empty path with `AT_EMPTY_PATH`, or a number relative to [`proc_self_fd`] (a magic
//! link that names exactly the inode behind that fd). Nothing here ever resolves a
//! multi-component path chosen by the guest.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

const EMPTY: &CStr = c"";

/// `/proc/self/fd`, opened once (the first call; the VMM makes it at startup) and kept:
/// None if /proc was not mounted then. `openat(dir, "N")` on it reaches exactly fd N's inode.
pub fn proc_self_fd() -> Option<BorrowedFd<'static>> {
    static PROC: OnceLock<Option<OwnedFd>> = OnceLock::new();
    let fd = PROC.get_or_init(|| {
        let cwd = at_fdcwd();
        openat(cwd, c"/proc/self/fd", libc::O_PATH | libc::O_DIRECTORY, 0)
            .inspect_err(|e| log::warn!("9p: /proc/self/fd: {e}; files are reopened by name"))
            .ok()
    });
    fd.as_ref().map(|fd| {
        use std::os::fd::AsFd;
        fd.as_fd()
    })
}

/// The name of `fd` in [`proc_self_fd`].
pub fn fd_name(fd: BorrowedFd<'_>) -> CString {
    CString::new(fd.as_raw_fd().to_string()).expect("no NUL in a number")
}

/// AT_FDCWD as a descriptor for the `*at` calls.
pub fn at_fdcwd() -> BorrowedFd<'static> {
    // SAFETY: AT_FDCWD is a valid "fd" for the *at calls for the whole process lifetime;
    // it is never closed (it is not a real descriptor).
    unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) }
}

pub fn openat(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid C string and `dir` a live fd; the kernel only reads them.
    let fd = check(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags | libc::O_CLOEXEC, mode) })?;
    // SAFETY: `fd` was just returned by openat and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
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

pub fn linkat(olddir: BorrowedFd<'_>, old: &CStr, newdir: BorrowedFd<'_>, new: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: valid fds and C strings, only read by the kernel.
    check(unsafe { libc::linkat(olddir.as_raw_fd(), old.as_ptr(), newdir.as_raw_fd(), new.as_ptr(), flags) }).map(drop)
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

/// `fchmodat(dir, name, mode, 0)` (it follows a final symlink: callers name a magic link,
/// `.`, or a name just checked not to be a symlink).
pub fn chmodat(dir: BorrowedFd<'_>, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: valid fd and C string, only read by the kernel.
    check(unsafe { libc::fchmodat(dir.as_raw_fd(), name.as_ptr(), mode, 0) }).map(drop)
}

/// `fchmod` on an open file.
pub fn fchmod(file: &File, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: fchmod on a live fd with an integer argument.
    check(unsafe { libc::fchmod(file.as_raw_fd(), mode) }).map(drop)
}

pub fn utimensat(dir: BorrowedFd<'_>, name: &CStr, times: &[libc::timespec; 2], flags: libc::c_int) -> io::Result<()> {
    // SAFETY: valid fd, C string and a two-element timespec array, only read by the kernel.
    check(unsafe { libc::utimensat(dir.as_raw_fd(), name.as_ptr(), times.as_ptr(), flags) }).map(drop)
}

/// CAP_CHOWN: change any file's owner and group.
pub const CAP_CHOWN: u32 = 0;
/// CAP_FSETID: keep setuid/setgid bits when writing or truncating a file.
pub const CAP_FSETID: u32 = 4;

/// Whether this process has capability `cap` in its effective set (as root it has them
/// all); on any doubt, true.
pub fn has_cap(cap: u32) -> bool {
    // struct __user_cap_header_struct and __user_cap_data_struct (version 3: two of them).
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header { version: 0x2008_0522, pid: 0 };
    let mut data = [Data::default(); 2];
    // SAFETY: capget reads `header` and writes at most two Data structs (version 3) into
    // `data`; both live for the call.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut header as *mut Header, data.as_mut_ptr()) };
    let word = data[(cap / 32) as usize % 2].effective;
    r != 0 || word & (1 << (cap % 32)) != 0
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

/// The access mode (O_RDONLY, O_WRONLY or O_RDWR) an open file was opened with.
pub fn access_mode(fd: BorrowedFd) -> io::Result<libc::c_int> {
    // SAFETY: fcntl on a valid descriptor with integer arguments only.
    let flags = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    Ok(flags & libc::O_ACCMODE)
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

/// `fgetxattr(file, name)` (`name` None: `flistxattr(file)`): the value or the name list.
pub fn getxattr(file: &File, name: Option<&CStr>) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; XATTR_MAX];
    let fd = file.as_raw_fd();
    // SAFETY: a live fd, valid C strings and a buffer of the length given, which the
    // kernel writes.
    let n = unsafe {
        match name {
            Some(name) => libc::fgetxattr(fd, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()),
            None => libc::flistxattr(fd, buf.as_mut_ptr().cast(), buf.len()),
        }
    };
    buf.truncate(usize::try_from(check_size(n)?).unwrap_or(0));
    Ok(buf)
}

/// `fsetxattr(file, name, value, flags)`, or with `value` None `fremovexattr(file, name)`.
pub fn setxattr(file: &File, name: &CStr, value: Option<&[u8]>, flags: libc::c_int) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: a live fd, valid C strings and a value buffer of the length given, only read.
    let r = unsafe {
        match value {
            Some(v) => libc::fsetxattr(fd, name.as_ptr(), v.as_ptr().cast(), v.len(), flags),
            None => libc::fremovexattr(fd, name.as_ptr()),
        }
    };
    check(r).map(drop)
}

fn check_size(n: libc::ssize_t) -> io::Result<libc::ssize_t> {
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n) }
}
