//! File syscalls: descriptors, reads and writes, paths, directories, pipes and eventfds.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use super::Ctx;
use crate::errno::*;
use crate::fs::file::*;
use crate::fs::{self, eventfd, path, perm, pipe, FileType, IoBuf, Node, OpenFile, Stat};
use crate::task::{self, current_process, with_mm};
use crate::mm::uaccess;

const AT_FDCWD: i32 = -100;
const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const AT_REMOVEDIR: u64 = 0x200;
const AT_SYMLINK_FOLLOW: u64 = 0x400;
const AT_EMPTY_PATH: u64 = 0x1000;
/// Linux caps one read or write at this many bytes.
pub const MAX_RW: usize = 0x7fff_f000;
const UIO_MAXIOV: u64 = 1024;

static UMASK: AtomicU32 = AtomicU32::new(0o022);

pub fn file(fd: i32) -> KResult<Arc<OpenFile>> {
    current_process().files.lock().get(fd)
}

pub fn user_path(addr: u64) -> KResult<String> {
    with_mm(|mm| uaccess::read_path(mm, addr))
}

/// The node at `path` from the working directory (`follow`: a final symlink too).
pub fn cwd_lookup(path: &str, follow: bool) -> KResult<Arc<dyn Node>> {
    fs::lookup(&cwd(), path, follow)
}

fn cwd() -> String {
    current_process().cwd.lock().clone()
}

/// The directory a `*at` path is relative to.
fn at_dir(dirfd: i32, path: &str) -> KResult<String> {
    if path.is_empty() {
        return Err(ENOENT);
    }
    if path.starts_with('/') {
        return Ok(cwd());
    }
    dir_path(dirfd)
}

/// The canonical path of directory `dirfd` (AT_FDCWD: the working directory).
fn dir_path(dirfd: i32) -> KResult<String> {
    if dirfd == AT_FDCWD {
        return Ok(cwd());
    }
    let f = file(dirfd)?;
    if f.node.file_type() != FileType::Directory {
        return Err(ENOTDIR);
    }
    Ok(f.path.clone())
}

pub fn install(file: Arc<OpenFile>, cloexec: bool) -> KResult<u64> {
    current_process().files.lock().insert(file, cloexec).map(|fd| fd as u64)
}

// --- reads and writes ---

/// Reads from `f` at its offset (advancing it) or at `at` (pread).
pub fn read_file(f: &OpenFile, buf: &mut IoBuf, at: Option<u64>) -> KResult<usize> {
    if !f.readable() {
        return Err(EBADF);
    }
    match at {
        Some(off) => f.read_node(off, buf, f.nonblock()),
        None if f.node.seekable() => {
            let mut off = f.offset.lock();
            let n = f.read_node(*off, buf, f.nonblock())?;
            *off += n as u64;
            Ok(n)
        }
        None => f.read_node(0, buf, f.nonblock()),
    }
}

/// Writes to `f` at its offset, or at `at` (pwrite); with O_APPEND at the end either way.
pub fn write_file(f: &OpenFile, buf: &IoBuf, at: Option<u64>) -> KResult<usize> {
    if !f.writable() {
        return Err(EBADF);
    }
    let node = &f.node;
    let regular = node.file_type() == FileType::Regular;
    // RLIMIT_FSIZE: a regular file grows no further than the limit.
    let write_at = |off: u64| -> KResult<usize> {
        if !regular {
            return f.write_node(off, buf, f.nonblock());
        }
        let allowed = crate::task::rlimit::fsize_allows(off, off.saturating_add(buf.len() as u64))? as usize;
        if allowed == buf.len() {
            return f.write_node(off, buf, f.nonblock());
        }
        // A kernel buffer (splice, sendfile) cannot be cut: the whole write is refused.
        let part = buf.prefix(allowed).ok_or(EFBIG)?;
        f.write_node(off, &part, f.nonblock())
    };
    match at {
        // As on Linux, an O_APPEND file is written at its end even by pwrite.
        Some(_) if f.flags() & O_APPEND != 0 && node.seekable() => write_at(node.stat().size),
        Some(off) => write_at(off),
        None if node.seekable() => {
            let mut off = f.offset.lock();
            if f.flags() & O_APPEND != 0 {
                *off = node.stat().size;
            }
            let n = write_at(*off)?;
            *off += n as u64;
            Ok(n)
        }
        None => f.write_node(0, buf, f.nonblock()),
    }
}

fn positional(f: &OpenFile, off: u64) -> KResult<u64> {
    if !f.node.seekable() {
        return Err(ESPIPE);
    }
    if (off as i64) < 0 {
        return Err(EINVAL);
    }
    Ok(off)
}

pub fn read(c: &mut Ctx) -> KResult<u64> {
    let f = file(c.int(0))?;
    let len = (c.a[2] as usize).min(MAX_RW);
    read_file(&f, &mut IoBuf::User { addr: c.a[1], len }, None).map(|n| n as u64)
}

pub fn write(c: &mut Ctx) -> KResult<u64> {
    let f = file(c.int(0))?;
    let len = (c.a[2] as usize).min(MAX_RW);
    write_file(&f, &IoBuf::User { addr: c.a[1], len }, None).map(|n| n as u64)
}

pub fn pread64(c: &mut Ctx) -> KResult<u64> {
    let f = file(c.int(0))?;
    if !f.readable() {
        return Err(EBADF);
    }
    let off = positional(&f, c.a[3])?;
    let len = (c.a[2] as usize).min(MAX_RW);
    read_file(&f, &mut IoBuf::User { addr: c.a[1], len }, Some(off)).map(|n| n as u64)
}

pub fn pwrite64(c: &mut Ctx) -> KResult<u64> {
    let f = file(c.int(0))?;
    if !f.writable() {
        return Err(EBADF);
    }
    let off = positional(&f, c.a[3])?;
    let len = (c.a[2] as usize).min(MAX_RW);
    write_file(&f, &IoBuf::User { addr: c.a[1], len }, Some(off)).map(|n| n as u64)
}

/// Reads a user `iovec` array: (base, len) pairs, checked like Linux's `import_iovec`.
pub fn read_iovecs(addr: u64, count: u64) -> KResult<Vec<(u64, usize)>> {
    if count > UIO_MAXIOV {
        return Err(EINVAL);
    }
    let mut raw = alloc::vec![0u8; count as usize * 16];
    task::copy_from_user(&mut raw, addr)?;
    let mut total: u64 = 0;
    let mut out = Vec::with_capacity(count as usize);
    for v in raw.chunks_exact(16) {
        let base = u64::from_le_bytes(v[..8].try_into().expect("8 bytes"));
        let len = u64::from_le_bytes(v[8..].try_into().expect("8 bytes"));
        if (len as i64) < 0 {
            return Err(EINVAL);
        }
        total = total.checked_add(len).filter(|&t| (t as i64) >= 0).ok_or(EINVAL)?;
        out.push((base, len as usize));
    }
    Ok(out)
}

/// Runs `op` over each iovec until a short transfer; returns the total.
fn vectored(iovs: &[(u64, usize)], mut op: impl FnMut(u64, usize) -> KResult<usize>) -> KResult<u64> {
    let mut total = 0usize;
    for &(base, len) in iovs {
        if len == 0 {
            continue;
        }
        match op(base, len.min(MAX_RW - total)) {
            Ok(n) => {
                total += n;
                if n < len || total >= MAX_RW {
                    break;
                }
            }
            Err(e) if total == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(total as u64)
}

pub fn readv(c: &mut Ctx) -> KResult<u64> {
    let f = file(c.int(0))?;
    if !f.readable() {
        return Err(EBADF);
    }
    let iovs = read_iovecs(c.a[1], c.a[2])?;
    vectored(&iovs, |addr, len| read_file(&f, &mut IoBuf::User { addr, len }, None))
}

pub fn writev(c: &mut Ctx) -> KResult<u64> {
    let f = file(c.int(0))?;
    if !f.writable() {
        return Err(EBADF);
    }
    let iovs = read_iovecs(c.a[1], c.a[2])?;
    vectored(&iovs, |addr, len| write_file(&f, &IoBuf::User { addr, len }, None))
}

pub fn lseek(c: &mut Ctx) -> KResult<u64> {
    let f = file(c.int(0))?;
    if !f.node.seekable() {
        return Err(ESPIPE);
    }
    let (off, whence) = (c.a[1] as i64, c.int(2));
    let mut cur = f.offset.lock();
    let size = f.node.stat().size as i64;
    let new = match whence {
        0 => Some(off),
        1 => (*cur as i64).checked_add(off),
        2 => size.checked_add(off),
        3 if off < size => Some(off),  // SEEK_DATA: all data
        4 if off < size => Some(size), // SEEK_HOLE: the end
        3 | 4 => return Err(ENXIO),
        _ => return Err(EINVAL),
    }
    .ok_or(EOVERFLOW)?;
    if new < 0 {
        return Err(EINVAL);
    }
    *cur = new as u64;
    Ok(new as u64)
}

// --- opening and closing ---

pub fn open(c: &mut Ctx) -> KResult<u64> {
    do_open(AT_FDCWD, &user_path(c.a[0])?, c.a[1] as u32, c.a[2] as u32)
}

pub fn openat(c: &mut Ctx) -> KResult<u64> {
    do_open(c.int(0), &user_path(c.a[1])?, c.a[2] as u32, c.a[3] as u32)
}

/// openat2(dirfd, path, how, size): the flags are checked before the path is read.
pub fn openat2(c: &mut Ctx) -> KResult<u64> {
    if c.a[3] > crate::mm::PAGE_SIZE {
        return Err(E2BIG);
    }
    let mut how = OpenHow::from_user(c.a[2], c.a[3])?;
    if how.flags & u64::from(O_PATH) == 0 {
        how.flags |= u64::from(O_LARGEFILE);
    }
    how.check()?;
    let file = open_file(c.int(0), &user_path(c.a[1])?, &how)?;
    install(file, how.flags & u64::from(O_CLOEXEC) != 0)
}

/// `struct open_how` of openat2 (its first version; later ones only grow it).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct OpenHow {
    pub flags: u64,
    pub mode: u64,
    pub resolve: u64,
}
// SAFETY: integers only, no padding.
unsafe impl uaccess::Pod for OpenHow {}

/// Flags open(2) knows (Linux's VALID_OPEN_FLAGS).
const VALID_OPEN_FLAGS: u32 = O_ACCMODE | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_APPEND | O_NONBLOCK | O_DSYNC
    | FASYNC | O_DIRECT | O_LARGEFILE | O_DIRECTORY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC | O_PATH | __O_SYNC | __O_TMPFILE;
/// The flags O_PATH keeps.
const O_PATH_FLAGS: u32 = O_DIRECTORY | O_NOFOLLOW | O_PATH | O_CLOEXEC;

impl OpenHow {
    /// What open(2) and openat(2) ask: unknown flags dropped, the mode only with O_CREAT.
    pub fn legacy(flags: u32, mode: u32) -> Self {
        let mut flags = flags & VALID_OPEN_FLAGS;
        if flags & O_PATH != 0 {
            flags &= O_PATH_FLAGS;
        }
        let mode = if flags & (O_CREAT | __O_TMPFILE) != 0 { mode & 0o7777 } else { 0 };
        Self { flags: u64::from(flags), mode: u64::from(mode), resolve: 0 }
    }

    /// Reads a `struct open_how` of `size` bytes: EINVAL below the first version's size,
    /// E2BIG when a larger one sets fields this kernel does not know.
    pub fn from_user(addr: u64, size: u64) -> KResult<Self> {
        const KNOWN: u64 = size_of::<OpenHow>() as u64;
        if size < KNOWN {
            return Err(EINVAL);
        }
        let how: OpenHow = task::read_user(addr)?;
        let mut rest = [0u8; 64];
        let mut at = addr + KNOWN;
        let end = addr.checked_add(size).ok_or(EFAULT)?;
        while at < end {
            let n = ((end - at) as usize).min(rest.len());
            task::copy_from_user(&mut rest[..n], at)?;
            if rest[..n].iter().any(|&b| b != 0) {
                return Err(E2BIG);
            }
            at += n as u64;
        }
        Ok(how)
    }

    /// openat2's checks of its arguments (Linux's build_open_flags).
    pub fn check(&self) -> KResult<()> {
        let flags = self.flags & !u64::from(O_CLOEXEC);
        if flags & !u64::from(VALID_OPEN_FLAGS) != 0 || self.resolve & !path::RESOLVE_ALL != 0 {
            return Err(EINVAL);
        }
        let scoped = path::RESOLVE_BENEATH | path::RESOLVE_IN_ROOT;
        if self.resolve & scoped == scoped {
            return Err(EINVAL);
        }
        let flags = flags as u32;
        let creates = flags & (O_CREAT | __O_TMPFILE) != 0;
        if (creates && self.mode & !0o7777 != 0) || (!creates && self.mode != 0) {
            return Err(EINVAL);
        }
        if flags & (O_DIRECTORY | O_CREAT) == O_DIRECTORY | O_CREAT {
            return Err(EINVAL);
        }
        if flags & __O_TMPFILE != 0 && (flags & O_DIRECTORY == 0 || flags & O_ACCMODE == O_RDONLY) {
            return Err(EINVAL);
        }
        if flags & O_PATH != 0 && flags & !O_PATH_FLAGS != 0 {
            return Err(EINVAL);
        }
        if self.resolve & path::RESOLVE_CACHED != 0 && flags & (O_TRUNC | O_CREAT | __O_TMPFILE) != 0 {
            return Err(EAGAIN);
        }
        Ok(())
    }
}

/// The `*at` calls below take paths already copied from user memory (io_uring copies
/// them at prep).
pub fn do_open(dirfd: i32, path: &str, flags: u32, mode: u32) -> KResult<u64> {
    let how = OpenHow::legacy(flags, mode);
    how.check()?;
    install(open_file(dirfd, path, &how)?, flags & O_CLOEXEC != 0)
}

/// Opens `path` from `dirfd` as `how` asks (already checked), without giving it a
/// descriptor.
pub fn open_file(dirfd: i32, path: &str, how: &OpenHow) -> KResult<Arc<OpenFile>> {
    // BENEATH and IN_ROOT hold even an absolute path to the directory.
    let base = if how.resolve & (path::RESOLVE_BENEATH | path::RESOLVE_IN_ROOT) != 0 && !path.is_empty() {
        dir_path(dirfd)?
    } else {
        at_dir(dirfd, path)?
    };
    let flags = how.flags as u32;
    if flags & __O_TMPFILE != 0 {
        return Err(EOPNOTSUPP); // no file system here makes unnamed files
    }
    let (node, canonical) = open_node(&base, path, flags, how.mode as u32, how.resolve)?;
    Ok(OpenFile::new(node, flags & !(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC), canonical))
}

/// Resolves (and with O_CREAT creates) the file to open within the limits of `resolve`,
/// applying O_EXCL, O_DIRECTORY, O_NOFOLLOW and O_TRUNC as Linux does.
pub fn open_node(base: &str, path: &str, flags: u32, mode: u32, resolve: u64) -> KResult<(Arc<dyn Node>, String)> {
    // O_CREAT | O_EXCL never follows a final symlink.
    let follow = flags & O_NOFOLLOW == 0 && flags & (O_CREAT | O_EXCL) != O_CREAT | O_EXCL;
    let found = path::resolve(base, path, follow, resolve);
    let ((node, canonical), created) = match found {
        Ok(found) => {
            if flags & O_CREAT != 0 && flags & O_EXCL != 0 {
                return Err(EEXIST);
            }
            (found, false)
        }
        Err(ENOENT) if flags & O_CREAT != 0 => {
            if path.ends_with('/') {
                return Err(EISDIR);
            }
            let (dir, name, dir_path) = path::resolve_parent(base, path, resolve)?;
            perm::may_create(&*dir)?;
            let node = dir.create(&name, FileType::Regular, mode & !UMASK.load(Ordering::Relaxed))?;
            ((node, path::normalize(&dir_path, &name)), true)
        }
        Err(e) => return Err(e),
    };
    let kind = node.file_type();
    let accmode = flags & O_ACCMODE;
    if kind == FileType::Symlink && flags & O_PATH == 0 {
        return Err(ELOOP);
    }
    if flags & O_DIRECTORY != 0 && kind != FileType::Directory {
        return Err(ENOTDIR);
    }
    if kind == FileType::Directory && (accmode != O_RDONLY || flags & O_CREAT != 0) {
        return Err(EISDIR);
    }
    if accmode == 3 {
        return Err(EINVAL);
    }
    // The file's own permissions (a file this open created is not checked, as Linux).
    if !created && flags & O_PATH == 0 {
        let mut mask = match accmode {
            O_RDONLY => perm::MAY_READ,
            O_WRONLY => perm::MAY_WRITE,
            _ => perm::MAY_READ | perm::MAY_WRITE,
        };
        if flags & O_TRUNC != 0 {
            mask |= perm::MAY_WRITE;
        }
        perm::permission(&*node, mask)?;
    }
    if flags & O_PATH == 0 {
        node.open(flags)?;
    }
    if flags & O_TRUNC != 0 && accmode != O_RDONLY && kind == FileType::Regular {
        node.truncate(0)?;
    }
    Ok((node, canonical))
}

pub fn close(c: &mut Ctx) -> KResult<u64> {
    do_close(c.int(0))
}

pub fn do_close(fd: i32) -> KResult<u64> {
    // The file is dropped after the table's lock is released (closing may do I/O).
    let file = current_process().files.lock().remove(fd);
    file.map(drop).map(|()| 0)
}

/// close_range(first, last, flags): closes (or, with CLOSE_RANGE_CLOEXEC, marks
/// close-on-exec) every open descriptor in `first..=last`. CLOSE_RANGE_UNSHARE asks for a
/// private descriptor table, which a process whose only thread is the caller already
/// has; the threads of a process here always share theirs (EINVAL otherwise).
pub fn close_range(c: &mut Ctx) -> KResult<u64> {
    const CLOSE_RANGE_UNSHARE: u64 = 1 << 1;
    const CLOSE_RANGE_CLOEXEC: u64 = 1 << 2;
    let (first, last, flags) = (c.a[0] as u32, c.a[1] as u32, c.a[2]);
    if flags & !(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) != 0 || first > last {
        return Err(EINVAL);
    }
    let p = current_process();
    if flags & CLOSE_RANGE_UNSHARE != 0 && p.thread_count() > 1 {
        return Err(EINVAL);
    }
    let mut closed = Vec::new();
    {
        let mut files = p.files.lock();
        let end = (last as usize).min(files.len().saturating_sub(1));
        for fd in first as usize..=end {
            if flags & CLOSE_RANGE_CLOEXEC != 0 {
                let _ = files.set_cloexec(fd as i32, true);
            } else if let Ok(f) = files.remove(fd as i32) {
                closed.push(f);
            }
        }
    }
    // The files are dropped after the table's lock is released (closing may do I/O).
    drop(closed);
    Ok(0)
}

/// memfd_create(name, flags): MFD_CLOEXEC, MFD_ALLOW_SEALING, MFD_NOEXEC_SEAL (mode
/// 0666 and F_SEAL_EXEC; sealing allowed) or MFD_EXEC; huge pages (MFD_HUGETLB) are not
/// offered (EINVAL). The name, at most 249 bytes, shows as `/memfd:NAME (deleted)`.
pub fn memfd_create(c: &mut Ctx) -> KResult<u64> {
    const MFD_CLOEXEC: u64 = 1;
    const MFD_ALLOW_SEALING: u64 = 2;
    const MFD_NOEXEC_SEAL: u64 = 8;
    const MFD_EXEC: u64 = 0x10;
    let flags = c.a[1];
    if flags & !(MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL | MFD_EXEC) != 0 || flags & (MFD_EXEC | MFD_NOEXEC_SEAL) == MFD_EXEC | MFD_NOEXEC_SEAL {
        return Err(EINVAL);
    }
    let name = with_mm(|mm| uaccess::read_cstring(mm, c.a[0], 249)).map_err(|e| if e == ENAMETOOLONG { EINVAL } else { e })?;
    let noexec = flags & MFD_NOEXEC_SEAL != 0;
    let (mode, seals) = if noexec { (0o666, fs::memfd::F_SEAL_EXEC) } else { (0o777, 0) };
    let node = fs::memfd::new(mode, noexec || flags & MFD_ALLOW_SEALING != 0, seals);
    let path = alloc::format!("/memfd:{} (deleted)", String::from_utf8_lossy(&name));
    install(OpenFile::new(node, O_RDWR | O_LARGEFILE, path), flags & MFD_CLOEXEC != 0)
}

/// flock(fd, op): see `fs::flock`. O_PATH descriptors cannot lock (EBADF).
pub fn flock(c: &mut Ctx) -> KResult<u64> {
    let f = file(c.int(0))?;
    if f.flags() & O_PATH != 0 {
        return Err(EBADF);
    }
    fs::flock::flock(&f, c.a[1] as u32).map(|()| 0)
}

// --- stat ---

/// `struct stat` on x86-64.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct KStat {
    dev: u64,
    ino: u64,
    nlink: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    pad0: u32,
    rdev: u64,
    size: i64,
    blksize: i64,
    blocks: i64,
    times: [u64; 6],
    unused: [i64; 3],
}
const _: () = assert!(size_of::<KStat>() == 144);
// SAFETY: integers only, no implicit padding (pad0 is explicit).
unsafe impl uaccess::Pod for KStat {}

/// A node's attributes with its `st_blocks` (512-byte units in use, where the file
/// system counts them; else the size rounded up).
fn stat_of(node: &dyn Node) -> (Stat, u64) {
    let s = node.stat();
    let blocks = node.blocks().unwrap_or(s.size.div_ceil(512));
    (s, blocks)
}

fn to_kstat((s, blocks): &(Stat, u64)) -> KStat {
    let split = |ns: u64| (ns / 1_000_000_000, ns % 1_000_000_000);
    let ((asec, ansec), (msec, mnsec), (csec, cnsec)) = (split(s.atime_ns), split(s.mtime_ns), split(s.ctime_ns));
    KStat {
        dev: 1,
        ino: s.ino,
        nlink: u64::from(s.nlink),
        mode: s.mode,
        uid: s.uid,
        gid: s.gid,
        rdev: s.rdev,
        size: s.size as i64,
        blksize: 4096,
        blocks: *blocks as i64,
        times: [asec, ansec, msec, mnsec, csec, cnsec],
        ..KStat::default()
    }
}

fn stat_path(dirfd: i32, path_addr: u64, flags: u64) -> KResult<(Stat, u64)> {
    stat_at(dirfd, &user_path(path_addr)?, flags)
}

fn stat_at(dirfd: i32, path: &str, flags: u64) -> KResult<(Stat, u64)> {
    if path.is_empty() && flags & AT_EMPTY_PATH != 0 {
        return Ok(stat_of(&*file(dirfd)?.node));
    }
    let base = at_dir(dirfd, path)?;
    Ok(stat_of(&*fs::lookup(&base, path, flags & AT_SYMLINK_NOFOLLOW == 0)?))
}

// --- timestamps ---

const UTIME_NOW: u64 = (1 << 30) - 1;
const UTIME_OMIT: u64 = (1 << 30) - 2;

/// One timestamp of utimensat's array (UTIME_NOW, UTIME_OMIT, or a time: EINVAL when
/// its nanoseconds are out of range).
fn time_set([sec, nsec]: [u64; 2]) -> KResult<fs::TimeSet> {
    match nsec {
        UTIME_NOW => Ok(fs::TimeSet::Now),
        UTIME_OMIT => Ok(fs::TimeSet::Keep),
        n if n < 1_000_000_000 && (sec as i64) >= 0 => Ok(fs::TimeSet::At(sec * 1_000_000_000 + n)),
        _ => Err(EINVAL),
    }
}

/// Sets the times of `path` from `dirfd` (a null path: `dirfd` itself, as Linux's
/// futimens does).
fn set_times(dirfd: i32, path: Option<&str>, flags: u64, atime: fs::TimeSet, mtime: fs::TimeSet) -> KResult<u64> {
    let node = match path {
        None => file(dirfd)?.node.clone(),
        Some(p) => stat_node(dirfd, p, flags)?,
    };
    if atime == fs::TimeSet::Keep && mtime == fs::TimeSet::Keep {
        return Ok(0);
    }
    let explicit = [atime, mtime].iter().any(|t| matches!(t, fs::TimeSet::At(_)));
    perm::may_set_times(&*node, explicit)?;
    node.set_times(atime, mtime).map(|()| 0)
}

/// The node `path` names from `dirfd`, as stat resolves it.
fn stat_node(dirfd: i32, path: &str, flags: u64) -> KResult<Arc<dyn Node>> {
    if path.is_empty() && flags & AT_EMPTY_PATH != 0 {
        return Ok(file(dirfd)?.node.clone());
    }
    let base = at_dir(dirfd, path)?;
    fs::lookup(&base, path, flags & AT_SYMLINK_NOFOLLOW == 0)
}

/// utimensat(dirfd, path, times, flags): times[0] is the access time, times[1] the
/// modification time; null times: both now.
pub fn utimensat(c: &mut Ctx) -> KResult<u64> {
    let (dirfd, path, times, flags) = (c.int(0), c.a[1], c.a[2], c.a[3]);
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(EINVAL);
    }
    let (atime, mtime) = if times == 0 {
        (fs::TimeSet::Now, fs::TimeSet::Now)
    } else {
        let t: [[u64; 2]; 2] = task::read_user(times)?;
        (time_set(t[0])?, time_set(t[1])?)
    };
    let path = if path == 0 { None } else { Some(user_path(path)?) };
    if path.is_none() && flags & AT_SYMLINK_NOFOLLOW != 0 {
        return Err(EINVAL);
    }
    set_times(dirfd, path.as_deref(), flags, atime, mtime)
}

/// utimes(path, times) and futimesat(dirfd, path, times): `struct timeval` pairs.
fn utimes_at(dirfd: i32, path: u64, times: u64) -> KResult<u64> {
    let (atime, mtime) = if times == 0 {
        (fs::TimeSet::Now, fs::TimeSet::Now)
    } else {
        let t: [[u64; 2]; 2] = task::read_user(times)?;
        let tv = |[sec, usec]: [u64; 2]| if usec < 1_000_000 && (sec as i64) >= 0 { Ok(fs::TimeSet::At(sec * 1_000_000_000 + usec * 1000)) } else { Err(EINVAL) };
        (tv(t[0])?, tv(t[1])?)
    };
    set_times(dirfd, Some(&user_path(path)?), 0, atime, mtime)
}

pub fn utimes(c: &mut Ctx) -> KResult<u64> {
    utimes_at(AT_FDCWD, c.a[0], c.a[1])
}

pub fn futimesat(c: &mut Ctx) -> KResult<u64> {
    utimes_at(c.int(0), c.a[1], c.a[2])
}

pub fn stat(c: &mut Ctx) -> KResult<u64> {
    let s = stat_path(AT_FDCWD, c.a[0], 0)?;
    task::write_user(c.a[1], &to_kstat(&s)).map(|()| 0)
}

pub fn lstat(c: &mut Ctx) -> KResult<u64> {
    let s = stat_path(AT_FDCWD, c.a[0], AT_SYMLINK_NOFOLLOW)?;
    task::write_user(c.a[1], &to_kstat(&s)).map(|()| 0)
}

pub fn fstat(c: &mut Ctx) -> KResult<u64> {
    let s = stat_of(&*file(c.int(0))?.node);
    task::write_user(c.a[1], &to_kstat(&s)).map(|()| 0)
}

pub fn newfstatat(c: &mut Ctx) -> KResult<u64> {
    if c.a[3] & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | 0x800) != 0 {
        return Err(EINVAL);
    }
    let s = stat_path(c.int(0), c.a[1], c.a[3])?;
    task::write_user(c.a[2], &to_kstat(&s)).map(|()| 0)
}

pub fn statx(c: &mut Ctx) -> KResult<u64> {
    check_statx(c.a[2], c.a[3])?;
    do_statx(c.int(0), &user_path(c.a[1])?, c.a[2], c.a[3], c.a[4])
}

pub fn check_statx(flags: u64, mask: u64) -> KResult<()> {
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | 0x800 | 0x6000) != 0 || flags & 0x6000 == 0x6000 {
        return Err(EINVAL);
    }
    if mask & 0x8000_0000 != 0 {
        return Err(EINVAL); // STATX__RESERVED
    }
    Ok(())
}

/// statx(dirfd, path, flags, mask, buf): the basic statistics, whatever the mask asks.
pub fn do_statx(dirfd: i32, path: &str, flags: u64, mask: u64, buf_addr: u64) -> KResult<u64> {
    check_statx(flags, mask)?;
    let (s, blocks) = stat_at(dirfd, path, flags)?;
    let mut buf = [0u8; 256];
    let put32 = |b: &mut [u8; 256], o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_le_bytes());
    let put64 = |b: &mut [u8; 256], o: usize, v: u64| b[o..o + 8].copy_from_slice(&v.to_le_bytes());
    put32(&mut buf, 0, 0x7ff); // STATX_BASIC_STATS
    put32(&mut buf, 4, 4096);
    put32(&mut buf, 16, s.nlink);
    put32(&mut buf, 20, s.uid);
    put32(&mut buf, 24, s.gid);
    buf[28..30].copy_from_slice(&(s.mode as u16).to_le_bytes());
    put64(&mut buf, 32, s.ino);
    put64(&mut buf, 40, s.size);
    put64(&mut buf, 48, blocks);
    // stx_atime, stx_btime (not kept: 0), stx_ctime, stx_mtime.
    for (t, ns) in [(64, s.atime_ns), (96, s.ctime_ns), (112, s.mtime_ns)] {
        put64(&mut buf, t, ns / 1_000_000_000);
        put32(&mut buf, t + 8, (ns % 1_000_000_000) as u32);
    }
    put32(&mut buf, 128, (s.rdev >> 8) as u32);
    put32(&mut buf, 132, (s.rdev & 0xff) as u32);
    put32(&mut buf, 140, 1);
    task::copy_to_user(buf_addr, &buf).map(|()| 0)
}

pub fn access(c: &mut Ctx) -> KResult<u64> {
    faccess(AT_FDCWD, c.a[0], c.a[1], 0)
}

pub fn faccessat(c: &mut Ctx) -> KResult<u64> {
    faccess(c.int(0), c.a[1], c.a[2], 0)
}

pub fn faccessat2(c: &mut Ctx) -> KResult<u64> {
    faccess(c.int(0), c.a[1], c.a[2], c.a[3])
}

const AT_EACCESS: u64 = 0x200;

/// access(2) and faccessat2: the whole lookup and the check run with the real ids
/// (unless AT_EACCESS), as Linux's do_faccessat.
fn faccess(dirfd: i32, path_addr: u64, mode: u64, flags: u64) -> KResult<u64> {
    if mode & !7 != 0 || flags & !(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(EINVAL);
    }
    let path = user_path(path_addr)?;
    let cred = Arc::new(perm::access_cred(flags & AT_EACCESS != 0));
    crate::task::cred::override_with(Some(&cred), || {
        let (s, _) = stat_at(dirfd, &path, flags)?;
        if mode == 0 {
            return Ok(0);
        }
        perm::check(&cred, &s, mode as u32).map(|()| 0)
    })
}

// --- directories ---

pub fn getdents64(c: &mut Ctx) -> KResult<u64> {
    let f = file(c.int(0))?;
    if f.node.file_type() != FileType::Directory {
        return Err(ENOTDIR);
    }
    let (addr, count) = (c.a[1], c.a[2] as usize);
    let mut entries = f.node.entries()?;
    let me = f.node.stat().ino;
    entries.insert(0, fs::DirEntry { name: String::from(".."), ino: me, kind: FileType::Directory });
    entries.insert(0, fs::DirEntry { name: String::from("."), ino: me, kind: FileType::Directory });
    let mut off = f.offset.lock();
    let mut out = Vec::new();
    let mut index = *off as usize;
    while let Some(e) = entries.get(index) {
        let reclen = (19 + e.name.len() + 1).next_multiple_of(8);
        if out.len() + reclen > count {
            if out.is_empty() {
                return Err(EINVAL);
            }
            break;
        }
        out.extend_from_slice(&e.ino.to_le_bytes());
        out.extend_from_slice(&((index + 1) as i64).to_le_bytes());
        out.extend_from_slice(&(reclen as u16).to_le_bytes());
        out.push(e.kind.dirent_type());
        out.extend_from_slice(e.name.as_bytes());
        out.resize(out.len() + reclen - 19 - e.name.len(), 0);
        index += 1;
    }
    task::copy_to_user(addr, &out)?;
    *off = index as u64;
    Ok(out.len() as u64)
}

pub fn mkdir(c: &mut Ctx) -> KResult<u64> {
    do_mkdir(AT_FDCWD, &user_path(c.a[0])?, c.a[1] as u32)
}

pub fn mkdirat(c: &mut Ctx) -> KResult<u64> {
    do_mkdir(c.int(0), &user_path(c.a[1])?, c.a[2] as u32)
}

pub fn do_mkdir(dirfd: i32, path: &str, mode: u32) -> KResult<u64> {
    let base = at_dir(dirfd, path)?;
    let (dir, name, _) = path::lookup_parent(&base, path)?;
    if name == "." || name == ".." {
        return Err(EEXIST);
    }
    if dir.lookup(&name).is_ok() {
        return Err(EEXIST);
    }
    perm::may_create(&*dir)?;
    dir.create(&name, FileType::Directory, mode & !UMASK.load(Ordering::Relaxed) & 0o7777).map(|_| 0)
}

pub fn do_unlink(dirfd: i32, path: &str, dir: bool) -> KResult<u64> {
    let base = at_dir(dirfd, path)?;
    let (parent, name, _) = path::lookup_parent(&base, path).map_err(|e| if e == EEXIST { EBUSY } else { e })?;
    match name.as_str() {
        "." if dir => return Err(EINVAL),
        ".." if dir => return Err(ENOTEMPTY),
        _ => {}
    }
    let node = parent.lookup(&name)?;
    if !dir && path.ends_with('/') {
        return Err(if node.file_type() == FileType::Directory { EISDIR } else { ENOTDIR });
    }
    perm::may_delete(&*parent, &*node)?;
    parent.unlink(&name, dir).map(|()| 0)
}

pub fn unlink(c: &mut Ctx) -> KResult<u64> {
    do_unlink(AT_FDCWD, &user_path(c.a[0])?, false)
}

pub fn rmdir(c: &mut Ctx) -> KResult<u64> {
    do_unlink(AT_FDCWD, &user_path(c.a[0])?, true)
}

pub fn unlinkat(c: &mut Ctx) -> KResult<u64> {
    if c.a[2] & !AT_REMOVEDIR != 0 {
        return Err(EINVAL);
    }
    do_unlink(c.int(0), &user_path(c.a[1])?, c.a[2] & AT_REMOVEDIR != 0)
}

const RENAME_NOREPLACE: u64 = 1;

fn rename_user(olddirfd: i32, old_addr: u64, newdirfd: i32, new_addr: u64, flags: u64) -> KResult<u64> {
    if flags & !RENAME_NOREPLACE != 0 {
        return Err(EINVAL);
    }
    do_rename(olddirfd, &user_path(old_addr)?, newdirfd, &user_path(new_addr)?, flags)
}

pub fn do_rename(olddirfd: i32, old: &str, newdirfd: i32, new: &str, flags: u64) -> KResult<u64> {
    if flags & !RENAME_NOREPLACE != 0 {
        return Err(EINVAL);
    }
    let (old_base, new_base) = (at_dir(olddirfd, old)?, at_dir(newdirfd, new)?);
    let (odir, oname, opath) = path::lookup_parent(&old_base, old).map_err(|e| if e == EEXIST { EBUSY } else { e })?;
    let (ndir, nname, npath) = path::lookup_parent(&new_base, new).map_err(|e| if e == EEXIST { EBUSY } else { e })?;
    if [&oname, &nname].iter().any(|n| *n == "." || *n == "..") {
        return Err(EBUSY);
    }
    // Across mounted file systems (a disk, a share, the RAM tree): EXDEV, as Linux.
    if odir.mount_id() != ndir.mount_id() {
        return Err(EXDEV);
    }
    let node = odir.lookup(&oname)?;
    let src = path::normalize(&opath, &oname);
    let dst = path::normalize(&npath, &nname);
    if src == dst {
        return Ok(0);
    }
    let is_dir = node.file_type() == FileType::Directory;
    if is_dir && dst.starts_with(&src) && dst.as_bytes().get(src.len()) == Some(&b'/') {
        return Err(EINVAL);
    }
    perm::may_delete(&*odir, &*node)?;
    if let Ok(existing) = ndir.lookup(&nname) {
        if flags & RENAME_NOREPLACE != 0 {
            return Err(EEXIST);
        }
        perm::may_delete(&*ndir, &*existing)?;
        match (is_dir, existing.file_type() == FileType::Directory) {
            (true, false) => return Err(ENOTDIR),
            (false, true) => return Err(EISDIR),
            (true, true) if !existing.entries()?.is_empty() => return Err(ENOTEMPTY),
            _ => {}
        }
    } else {
        perm::may_create(&*ndir)?;
    }
    // A directory moving to another parent has its `..` rewritten: it must be writable.
    if is_dir && opath != npath {
        perm::permission(&*node, perm::MAY_WRITE)?;
    }
    odir.rename(&oname, &ndir, &nname).map(|()| 0)
}

pub fn rename(c: &mut Ctx) -> KResult<u64> {
    rename_user(AT_FDCWD, c.a[0], AT_FDCWD, c.a[1], 0)
}

pub fn renameat(c: &mut Ctx) -> KResult<u64> {
    rename_user(c.int(0), c.a[1], c.int(2), c.a[3], 0)
}

pub fn renameat2(c: &mut Ctx) -> KResult<u64> {
    rename_user(c.int(0), c.a[1], c.int(2), c.a[3], c.a[4])
}

fn link_user(olddirfd: i32, old_addr: u64, newdirfd: i32, new_addr: u64, flags: u64) -> KResult<u64> {
    if flags & !(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(EINVAL);
    }
    do_link(olddirfd, &user_path(old_addr)?, newdirfd, &user_path(new_addr)?, flags)
}

pub fn do_link(olddirfd: i32, old: &str, newdirfd: i32, new: &str, flags: u64) -> KResult<u64> {
    if flags & !(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(EINVAL);
    }
    let node = fs::lookup(&at_dir(olddirfd, old)?, old, flags & AT_SYMLINK_FOLLOW != 0)?;
    if node.file_type() == FileType::Directory {
        return Err(EPERM);
    }
    let (dir, name, _) = path::lookup_parent(&at_dir(newdirfd, new)?, new)?;
    if dir.lookup(&name).is_ok() {
        return Err(EEXIST);
    }
    if node.mount_id() != dir.mount_id() {
        return Err(EXDEV);
    }
    perm::may_create(&*dir)?;
    dir.link(&name, node).map(|()| 0)
}

pub fn link(c: &mut Ctx) -> KResult<u64> {
    link_user(AT_FDCWD, c.a[0], AT_FDCWD, c.a[1], 0)
}

pub fn linkat(c: &mut Ctx) -> KResult<u64> {
    link_user(c.int(0), c.a[1], c.int(2), c.a[3], c.a[4])
}

fn symlink_user(target_addr: u64, dirfd: i32, path_addr: u64) -> KResult<u64> {
    let target = user_path(target_addr)?;
    if target.is_empty() {
        return Err(ENOENT);
    }
    do_symlink(&target, dirfd, &user_path(path_addr)?)
}

pub fn do_symlink(target: &str, dirfd: i32, path: &str) -> KResult<u64> {
    if target.is_empty() {
        return Err(ENOENT);
    }
    let (dir, name, _) = path::lookup_parent(&at_dir(dirfd, path)?, path)?;
    if dir.lookup(&name).is_ok() {
        return Err(EEXIST);
    }
    perm::may_create(&*dir)?;
    dir.symlink(&name, target).map(|()| 0)
}

pub fn symlink(c: &mut Ctx) -> KResult<u64> {
    symlink_user(c.a[0], AT_FDCWD, c.a[1])
}

pub fn symlinkat(c: &mut Ctx) -> KResult<u64> {
    symlink_user(c.a[0], c.int(1), c.a[2])
}

fn do_readlink(dirfd: i32, path_addr: u64, buf: u64, size: u64) -> KResult<u64> {
    if (size as i64) <= 0 {
        return Err(EINVAL);
    }
    let path = user_path(path_addr)?;
    let node = fs::lookup(&at_dir(dirfd, &path)?, &path, false)?;
    let target = node.readlink()?;
    let n = target.len().min(size as usize);
    task::copy_to_user(buf, &target.as_bytes()[..n]).map(|()| n as u64)
}

pub fn readlink(c: &mut Ctx) -> KResult<u64> {
    do_readlink(AT_FDCWD, c.a[0], c.a[1], c.a[2])
}

pub fn readlinkat(c: &mut Ctx) -> KResult<u64> {
    do_readlink(c.int(0), c.a[1], c.a[2], c.a[3])
}

fn do_chmod(node: &dyn Node, mode: u32) -> KResult<u64> {
    let mode = perm::chmod_mode(node, mode)?;
    node.set_mode(mode).map(|()| 0)
}

pub fn chmod(c: &mut Ctx) -> KResult<u64> {
    let path = user_path(c.a[0])?;
    do_chmod(&*fs::lookup(&cwd(), &path, true)?, c.a[1] as u32)
}

pub fn fchmodat(c: &mut Ctx) -> KResult<u64> {
    let path = user_path(c.a[1])?;
    do_chmod(&*fs::lookup(&at_dir(c.int(0), &path)?, &path, true)?, c.a[2] as u32)
}

pub fn fchmod(c: &mut Ctx) -> KResult<u64> {
    do_chmod(&*file(c.int(0))?.node, c.a[1] as u32)
}

/// An id argument of the chown family: -1 leaves it.
fn chown_id(v: u64) -> Option<u32> {
    (v as u32 != u32::MAX).then_some(v as u32)
}

pub fn chown(c: &mut Ctx) -> KResult<u64> {
    let path = user_path(c.a[0])?;
    perm::chown(&*fs::lookup(&cwd(), &path, true)?, chown_id(c.a[1]), chown_id(c.a[2])).map(|()| 0)
}

pub fn lchown(c: &mut Ctx) -> KResult<u64> {
    let path = user_path(c.a[0])?;
    perm::chown(&*fs::lookup(&cwd(), &path, false)?, chown_id(c.a[1]), chown_id(c.a[2])).map(|()| 0)
}

pub fn fchown(c: &mut Ctx) -> KResult<u64> {
    perm::chown(&*file(c.int(0))?.node, chown_id(c.a[1]), chown_id(c.a[2])).map(|()| 0)
}

/// fchownat(dirfd, path, uid, gid, flags): AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH.
pub fn fchownat(c: &mut Ctx) -> KResult<u64> {
    let flags = c.a[4];
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(EINVAL);
    }
    let path = user_path(c.a[1])?;
    let node = stat_node(c.int(0), &path, flags)?;
    perm::chown(&*node, chown_id(c.a[2]), chown_id(c.a[3])).map(|()| 0)
}

/// The process's file-mode creation mask.
pub fn umask_now() -> u32 {
    UMASK.load(Ordering::Relaxed)
}

pub fn umask(c: &mut Ctx) -> KResult<u64> {
    Ok(u64::from(UMASK.swap(c.a[0] as u32 & 0o777, Ordering::Relaxed)))
}

pub fn getcwd(c: &mut Ctx) -> KResult<u64> {
    let mut path = cwd().into_bytes();
    path.push(0);
    if (c.a[1] as usize) < path.len() {
        return Err(ERANGE);
    }
    task::copy_to_user(c.a[0], &path).map(|()| path.len() as u64)
}

fn set_cwd(node: &Arc<dyn Node>, path: String) -> KResult<u64> {
    if node.file_type() != FileType::Directory {
        return Err(ENOTDIR);
    }
    perm::permission(&**node, perm::MAY_EXEC)?;
    *current_process().cwd.lock() = path;
    Ok(0)
}

pub fn chdir(c: &mut Ctx) -> KResult<u64> {
    let path = user_path(c.a[0])?;
    let (node, canonical) = path::lookup_with_path(&cwd(), &path, true)?;
    set_cwd(&node, canonical)
}

pub fn fchdir(c: &mut Ctx) -> KResult<u64> {
    let f = file(c.int(0))?;
    set_cwd(&f.node, f.path.clone())
}

// --- sizes and syncing ---

pub fn ftruncate(c: &mut Ctx) -> KResult<u64> {
    truncate_file(&*file(c.int(0))?, c.a[1]).map(|()| 0)
}

/// ftruncate(2) on an open file (also io_uring's FTRUNCATE).
pub fn truncate_file(f: &OpenFile, len: u64) -> KResult<()> {
    if (len as i64) < 0 || !f.writable() || f.node.file_type() != FileType::Regular {
        return Err(EINVAL);
    }
    crate::task::rlimit::fsize_allows(len, len)?;
    f.node.truncate(len)
}

pub fn fallocate(c: &mut Ctx) -> KResult<u64> {
    fallocate_file(&*file(c.int(0))?, c.a[1] as u32, c.a[2], c.a[3]).map(|()| 0)
}

pub const FALLOC_FL_KEEP_SIZE: u32 = 0x01;
pub const FALLOC_FL_PUNCH_HOLE: u32 = 0x02;
const FALLOC_FL_ALL: u32 = 0x01 | 0x02 | 0x08 | 0x10 | 0x20 | 0x40 | 0x80;

/// fallocate(2), with Linux's checks in Linux's order (vfs_fallocate); the file system
/// does the rest (or answers EOPNOTSUPP).
pub fn fallocate_file(f: &OpenFile, mode: u32, off: u64, len: u64) -> KResult<()> {
    if (off as i64) < 0 || (len as i64) <= 0 {
        return Err(EINVAL);
    }
    if mode & !FALLOC_FL_ALL != 0 {
        return Err(EOPNOTSUPP);
    }
    if mode & FALLOC_FL_PUNCH_HOLE != 0 && mode & FALLOC_FL_KEEP_SIZE == 0 {
        return Err(EOPNOTSUPP);
    }
    if !f.writable() {
        return Err(EBADF);
    }
    match f.node.file_type() {
        FileType::Fifo => return Err(ESPIPE),
        FileType::Directory => return Err(EISDIR),
        FileType::Regular | FileType::BlockDevice => {}
        _ => return Err(ENODEV),
    }
    if off.checked_add(len).is_none_or(|end| end as i64 <= 0) {
        return Err(EFBIG);
    }
    f.node.fallocate(mode, off, len)
}

pub fn sync_file_range(c: &mut Ctx) -> KResult<u64> {
    sync_range(&*file(c.int(0))?, c.a[1], c.a[2], c.a[3] as u32).map(|()| 0)
}

/// sync_file_range(2): Linux's checks; with SYNC_FILE_RANGE_WRITE the file's dirty
/// pages (and what mappings stored) are written back, all of them rather than the range
/// alone, and waited for; no metadata, no device flush (fsync does those).
pub fn sync_range(f: &OpenFile, off: u64, len: u64, flags: u32) -> KResult<()> {
    const VALID: u32 = 1 | 2 | 4; // WAIT_BEFORE, WRITE, WAIT_AFTER
    const WRITE: u32 = 2;
    if flags & !VALID != 0 || (off as i64) < 0 || (len as i64) < 0 {
        return Err(EINVAL);
    }
    if len != 0 && off.checked_add(len).is_none_or(|end| (end as i64) < 0) {
        return Err(EINVAL);
    }
    match f.node.file_type() {
        FileType::Regular if flags & WRITE != 0 => f.node.writeback(),
        FileType::Regular | FileType::BlockDevice | FileType::Directory | FileType::Symlink => Ok(()),
        _ => Err(ESPIPE),
    }
}

pub fn truncate(c: &mut Ctx) -> KResult<u64> {
    if (c.a[1] as i64) < 0 {
        return Err(EINVAL);
    }
    let path = user_path(c.a[0])?;
    let node = fs::lookup(&cwd(), &path, true)?;
    if node.file_type() == FileType::Directory {
        return Err(EISDIR);
    }
    perm::permission(&*node, perm::MAY_WRITE)?;
    crate::task::rlimit::fsize_allows(c.a[1], c.a[1])?;
    node.truncate(c.a[1]).map(|()| 0)
}

/// sync(2): every mounted ext2 written back, every disk's write cache flushed (9p writes
/// reach the host as they are made; what the caller's shared mappings stored is written
/// back too).
pub fn sync(_: &mut Ctx) -> KResult<u64> {
    if let Ok(files) = crate::task::with_mm(|mm| Ok(mm.files_in(0, crate::mm::USER_END))) {
        super::mm::writeback(files);
    }
    fs::ext2::sync_all();
    crate::drivers::virtio::blk::sync_all();
    Ok(0)
}

/// syncfs(fd): as sync, for the file system of `fd`.
pub fn syncfs(c: &mut Ctx) -> KResult<u64> {
    file(c.int(0))?;
    fs::ext2::sync_all();
    crate::drivers::virtio::blk::sync_all();
    Ok(0)
}

pub fn fsync(c: &mut Ctx) -> KResult<u64> {
    let f = file(c.int(0))?;
    if !f.node.seekable() {
        return Err(EINVAL);
    }
    f.node.sync().map(|()| 0)
}

// --- descriptors ---

pub fn dup(c: &mut Ctx) -> KResult<u64> {
    let p = current_process();
    let mut files = p.files.lock();
    let f = files.get(c.int(0))?;
    files.insert(f, false).map(|fd| fd as u64)
}

fn do_dup3(old: i32, new: i32, flags: u64) -> KResult<u64> {
    if flags & !u64::from(O_CLOEXEC) != 0 {
        return Err(EINVAL);
    }
    let p = current_process();
    let mut files = p.files.lock();
    let f = files.get(old)?;
    let replaced = files.insert_at(new, f, flags != 0)?;
    drop(files);
    drop(replaced); // outside the lock, as in close
    Ok(new as u64)
}

pub fn dup2(c: &mut Ctx) -> KResult<u64> {
    let (old, new) = (c.int(0), c.int(1));
    if old == new {
        return file(old).map(|_| new as u64);
    }
    do_dup3(old, new, 0)
}

pub fn dup3(c: &mut Ctx) -> KResult<u64> {
    if c.int(0) == c.int(1) {
        return Err(EINVAL);
    }
    do_dup3(c.int(0), c.int(1), c.a[2])
}

pub fn fcntl(c: &mut Ctx) -> KResult<u64> {
    const F_DUPFD: i32 = 0;
    const F_GETFD: i32 = 1;
    const F_SETFD: i32 = 2;
    const F_GETFL: i32 = 3;
    const F_SETFL: i32 = 4;
    const F_DUPFD_CLOEXEC: i32 = 1030;
    const F_ADD_SEALS: i32 = 1033;
    const F_GET_SEALS: i32 = 1034;
    const SETTABLE: u32 = O_APPEND | O_NONBLOCK | O_DIRECT;
    let (fd, cmd, arg) = (c.int(0), c.int(1), c.a[2]);
    let p = current_process();
    let mut files = p.files.lock();
    let f = files.get(fd)?;
    match cmd {
        F_DUPFD | F_DUPFD_CLOEXEC => {
            let min = usize::try_from(arg as i32).map_err(|_| EINVAL)?;
            files.insert_from(min, f, cmd == F_DUPFD_CLOEXEC).map(|fd| fd as u64)
        }
        F_GETFD => Ok(u64::from(files.cloexec(fd)?)),
        F_SETFD => files.set_cloexec(fd, arg & 1 != 0).map(|()| 0),
        F_GETFL => Ok(u64::from(f.flags() | O_LARGEFILE)),
        F_SETFL => {
            let new = (f.flags() & !SETTABLE) | (arg as u32 & SETTABLE);
            f.flags.store(new, Ordering::Relaxed);
            Ok(0)
        }
        // Seals: memfds only (EINVAL for other files); adding needs a writable descriptor.
        F_ADD_SEALS | F_GET_SEALS => {
            let m = f.node.as_any().downcast_ref::<fs::memfd::MemFd>().ok_or(EINVAL)?;
            if cmd == F_GET_SEALS {
                return Ok(u64::from(m.seals()));
            }
            if !f.writable() {
                return Err(EPERM);
            }
            m.add_seals(arg as u32).map(|()| 0)
        }
        _ => Err(EINVAL),
    }
}

pub fn ioctl(c: &mut Ctx) -> KResult<u64> {
    const FIONCLEX: u64 = 0x5450;
    const FIOCLEX: u64 = 0x5451;
    const FIONBIO: u64 = 0x5421;
    const FIONREAD: u64 = 0x541b;
    let fd = c.int(0);
    let f = file(fd)?;
    match c.a[1] & 0xffff_ffff {
        FIONREAD if f.node.file_type() == FileType::Regular => {
            let left = f.node.stat().size.saturating_sub(*f.offset.lock());
            task::write_user(c.a[2], &(left.min(i32::MAX as u64) as i32)).map(|()| 0)
        }
        FIOCLEX | FIONCLEX => current_process().files.lock().set_cloexec(fd, c.a[1] == FIOCLEX).map(|()| 0),
        FIONBIO => {
            let on: u32 = task::read_user(c.a[2])?;
            let flags = if on != 0 { f.flags() | O_NONBLOCK } else { f.flags() & !O_NONBLOCK };
            f.flags.store(flags, Ordering::Relaxed);
            Ok(0)
        }
        cmd => f.node.ioctl(&f, cmd, c.a[2]),
    }
}

// --- pipes and eventfds ---

pub fn do_pipe(fds_addr: u64, flags: u64) -> KResult<u64> {
    let allowed = u64::from(O_CLOEXEC | O_NONBLOCK | O_DIRECT);
    if flags & !allowed != 0 {
        return Err(EINVAL);
    }
    let [r, w] = pipe::open_pair(flags as u32);
    let cloexec = flags & u64::from(O_CLOEXEC) != 0;
    let p = current_process();
    let mut files = p.files.lock();
    let rfd = files.insert(r, cloexec)?;
    let wfd = match files.insert(w, cloexec) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = files.remove(rfd);
            return Err(e);
        }
    };
    drop(files);
    if let Err(e) = task::write_user(fds_addr, &[rfd, wfd]) {
        let mut files = p.files.lock();
        let _ = files.remove(rfd);
        let _ = files.remove(wfd);
        return Err(e);
    }
    Ok(0)
}

pub fn pipe(c: &mut Ctx) -> KResult<u64> {
    do_pipe(c.a[0], 0)
}

pub fn pipe2(c: &mut Ctx) -> KResult<u64> {
    do_pipe(c.a[0], c.a[1])
}

fn do_eventfd(initval: u64, flags: u64) -> KResult<u64> {
    let allowed = u64::from(eventfd::EFD_SEMAPHORE | O_CLOEXEC | O_NONBLOCK);
    if flags & !allowed != 0 {
        return Err(EINVAL);
    }
    let node = eventfd::new(initval as u32, flags & u64::from(eventfd::EFD_SEMAPHORE) != 0);
    let f = OpenFile::new(node, O_RDWR | (flags as u32 & O_NONBLOCK), String::from("anon_inode:[eventfd]"));
    install(f, flags & u64::from(O_CLOEXEC) != 0)
}

pub fn eventfd(c: &mut Ctx) -> KResult<u64> {
    do_eventfd(c.a[0], 0)
}

pub fn eventfd2(c: &mut Ctx) -> KResult<u64> {
    do_eventfd(c.a[0], c.a[1])
}

// --- file-system statistics ---

/// `struct statfs` on x86-64 (120 bytes).
fn write_statfs(addr: u64, s: &fs::StatFs) -> KResult<u64> {
    let words: [u64; 15] = [s.kind, s.bsize, s.blocks, s.bfree, s.bavail, s.files, s.ffree, 0, s.namelen, s.bsize, 0, 0, 0, 0, 0];
    task::write_user(addr, &words).map(|()| 0)
}

pub fn statfs(c: &mut Ctx) -> KResult<u64> {
    let path = user_path(c.a[0])?;
    let node = fs::lookup(&cwd(), &path, true)?;
    write_statfs(c.a[1], &node.statfs()?)
}

pub fn fstatfs(c: &mut Ctx) -> KResult<u64> {
    let f = file(c.int(0))?;
    write_statfs(c.a[1], &f.node.statfs()?)
}

// --- splice and tee ---

pub const SPLICE_F_NONBLOCK: u32 = 2;
/// MOVE, NONBLOCK, MORE, GIFT.
pub const SPLICE_F_ALL: u32 = 0xf;
/// The most one splice or tee moves (a pipe's capacity).
const SPLICE_MAX: usize = 64 * 1024;

fn as_pipe(f: &OpenFile) -> Option<&pipe::PipeEnd> {
    f.node.as_any().downcast_ref::<pipe::PipeEnd>()
}

/// vmsplice(fd, iov, nr_segs, flags): user memory into a pipe's write end, or out of its
/// read end, as writev and readv (Linux may give pages to the pipe; the bytes are the
/// same). SPLICE_F_NONBLOCK makes it nonblocking; a file that is no pipe is EBADF.
pub fn vmsplice(c: &mut Ctx) -> KResult<u64> {
    let f = file(c.int(0))?;
    let flags = c.a[3] as u32;
    if flags & !SPLICE_F_ALL != 0 {
        return Err(EINVAL);
    }
    as_pipe(&f).ok_or(EBADF)?;
    let iovs = read_iovecs(c.a[1], c.a[2])?;
    let nonblock = flags & SPLICE_F_NONBLOCK != 0 || f.nonblock();
    let write = f.writable();
    if !write && !f.readable() {
        return Err(EBADF);
    }
    vectored(&iovs, |addr, len| {
        if write {
            f.node.write(0, &IoBuf::User { addr, len }, nonblock)
        } else {
            f.node.read(0, &mut IoBuf::User { addr, len }, nonblock)
        }
    })
}

/// splice(2) (also io_uring's SPLICE): moves up to `len` bytes from `fin` to `fout`, one
/// of which is a pipe; a file side reads or writes at its offset, or at (and advancing)
/// its position when the offset is None. The bytes go through a kernel buffer here,
/// where Linux moves pipe pages: the same results, one copy more.
pub fn splice_files(fin: &OpenFile, off_in: Option<u64>, fout: &OpenFile, off_out: Option<u64>, len: usize, flags: u32) -> KResult<usize> {
    if flags & !SPLICE_F_ALL != 0 {
        return Err(EINVAL);
    }
    if !fin.readable() || !fout.writable() {
        return Err(EBADF);
    }
    let (pin, pout) = (as_pipe(fin), as_pipe(fout));
    match (pin, pout) {
        (None, None) => return Err(EINVAL),
        (Some(a), Some(b)) if a.same_pipe(b) => return Err(EINVAL),
        _ => {}
    }
    if (pin.is_some() && off_in.is_some()) || (pout.is_some() && off_out.is_some()) {
        return Err(ESPIPE);
    }
    if pout.is_none() && fout.flags() & O_APPEND != 0 {
        return Err(EINVAL);
    }
    if off_in.is_some_and(|o| (o as i64) < 0) || off_out.is_some_and(|o| (o as i64) < 0) {
        return Err(EINVAL);
    }
    if len == 0 {
        return Ok(0);
    }
    // O_NONBLOCK on either file makes the splice nonblocking, as SPLICE_F_NONBLOCK.
    let nonblock = flags & SPLICE_F_NONBLOCK != 0 || (fin.flags() | fout.flags()) & O_NONBLOCK != 0;
    let room = match pout {
        Some(p) => p.wait_room(nonblock)?,
        None => SPLICE_MAX,
    };
    let mut buf = alloc::vec![0u8; len.min(room).min(SPLICE_MAX)];
    let n = match pin {
        Some(_) => fin.node.read(0, &mut IoBuf::Kernel(&mut buf), nonblock)?,
        None => read_file(fin, &mut IoBuf::Kernel(&mut buf), off_in)?,
    };
    if n == 0 {
        return Ok(0);
    }
    write_file(fout, &IoBuf::Kernel(&mut buf[..n]), off_out)
}

/// tee(2) (also io_uring's TEE): copies up to `len` bytes from one pipe to another
/// without consuming them.
pub fn tee_files(fin: &OpenFile, fout: &OpenFile, len: usize, flags: u32) -> KResult<usize> {
    if flags & !SPLICE_F_ALL != 0 {
        return Err(EINVAL);
    }
    let (Some(pin), Some(pout)) = (as_pipe(fin), as_pipe(fout)) else { return Err(EINVAL) };
    if !fin.readable() || !fout.writable() {
        return Err(EBADF);
    }
    if pin.same_pipe(pout) {
        return Err(EINVAL);
    }
    if len == 0 {
        return Ok(0);
    }
    let nonblock = flags & SPLICE_F_NONBLOCK != 0 || (fin.flags() | fout.flags()) & O_NONBLOCK != 0;
    let room = pout.wait_room(nonblock)?;
    let mut buf = alloc::vec![0u8; len.min(room).min(SPLICE_MAX)];
    let n = pin.peek(&mut buf, nonblock)?;
    if n == 0 {
        return Ok(0);
    }
    fout.node.write(0, &IoBuf::Kernel(&mut buf[..n]), nonblock)
}

/// Reads an optional `loff_t *` argument.
fn user_offset(addr: u64) -> KResult<Option<u64>> {
    if addr == 0 {
        return Ok(None);
    }
    Ok(Some(task::read_user::<u64>(addr)?))
}

pub fn splice(c: &mut Ctx) -> KResult<u64> {
    // Linux answers a zero length before looking at anything else.
    if c.a[4] == 0 {
        return Ok(0);
    }
    let (fin, fout) = (file(c.int(0))?, file(c.int(2))?);
    let (off_in, off_out) = (user_offset(c.a[1])?, user_offset(c.a[3])?);
    let n = splice_files(&fin, off_in, &fout, off_out, c.a[4] as usize, c.a[5] as u32)?;
    advance_offsets([(c.a[1], off_in), (c.a[3], off_out)], n)
}

/// The offsets a splice-like call was given (at user addresses, `None` when not given)
/// move past the `n` bytes moved; `n` is the call's answer.
pub fn advance_offsets(offsets: [(u64, Option<u64>); 2], n: usize) -> KResult<u64> {
    for (addr, off) in offsets {
        if let Some(o) = off {
            task::write_user(addr, &(o + n as u64))?;
        }
    }
    Ok(n as u64)
}

pub fn tee(c: &mut Ctx) -> KResult<u64> {
    // The flags are checked first, then a zero length is 0 before the files.
    if c.a[3] as u32 & !SPLICE_F_ALL != 0 {
        return Err(EINVAL);
    }
    if c.a[2] == 0 {
        return Ok(0);
    }
    let (fin, fout) = (file(c.int(0))?, file(c.int(1))?);
    tee_files(&fin, &fout, c.a[2] as usize, c.a[3] as u32).map(|n| n as u64)
}
