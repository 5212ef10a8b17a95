//! The virtual file system: nodes (files, directories, devices, pipes), open file
//! descriptions and per-process descriptor tables, and path resolution.
//!
//! Everything lives in one tree whose root is a RAM filesystem filled from the initramfs;
//! `/dev` is a directory of device nodes in it.

pub mod cpio;
pub mod dev;
pub mod epoll;
pub mod eventfd;
pub mod ext2;
pub mod file;
pub mod flock;
pub mod memfd;
pub mod p9;
pub mod path;
pub mod perm;
pub mod pidfd;
pub mod pipe;
pub mod proc;
pub mod ramfs;
pub mod signalfd;
pub mod timerfd;
pub mod xattr;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::errno::*;
use crate::task;

pub use file::{FdTable, OpenFile};
pub use path::lookup;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FileType {
    Regular,
    Directory,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl FileType {
    /// The `S_IFMT` bits of `st_mode`.
    pub fn mode_bits(self) -> u32 {
        match self {
            FileType::Regular => 0o100000,
            FileType::Directory => 0o040000,
            FileType::Symlink => 0o120000,
            FileType::CharDevice => 0o020000,
            FileType::BlockDevice => 0o060000,
            FileType::Fifo => 0o010000,
            FileType::Socket => 0o140000,
        }
    }

    /// The `d_type` of `getdents64`.
    pub fn dirent_type(self) -> u8 {
        match self {
            FileType::Regular => 8,
            FileType::Directory => 4,
            FileType::Symlink => 10,
            FileType::CharDevice => 2,
            FileType::BlockDevice => 6,
            FileType::Fifo => 1,
            FileType::Socket => 12,
        }
    }
}

/// What `stat` reports, in one place for `stat`, `statx` and io_uring.
#[derive(Clone, Copy, Default, Debug)]
pub struct Stat {
    pub ino: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub size: u64,
    pub rdev: u64,
    /// Last access, modification and status change, in ns since the epoch.
    pub atime_ns: u64,
    pub mtime_ns: u64,
    pub ctime_ns: u64,
}

/// A timestamp to set (utimensat): leave it, the current time, or a given one (ns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeSet {
    Keep,
    Now,
    At(u64),
}

/// A node's owner, kept by memory file systems: its creator's fsuid, and its fsgid or,
/// in a set-group-ID directory, the directory's group (Linux's inode_init_owner).
pub struct Owner {
    uid: core::sync::atomic::AtomicU32,
    gid: core::sync::atomic::AtomicU32,
}

impl Owner {
    pub const fn new(uid: u32, gid: u32) -> Self {
        Self { uid: core::sync::atomic::AtomicU32::new(uid), gid: core::sync::atomic::AtomicU32::new(gid) }
    }

    /// root's (what the kernel itself makes: the initramfs, `/dev`, mount points).
    pub const fn root() -> Self {
        Self::new(0, 0)
    }

    /// The creating task's, in a directory owned by `dir_gid` (`Some` when the
    /// directory is set-group-ID).
    pub fn of_creator(sgid_dir_gid: Option<u32>) -> Self {
        let cred = crate::task::cred::current();
        Self::new(cred.fsuid, sgid_dir_gid.unwrap_or(cred.fsgid))
    }

    pub fn fill(&self, stat: &mut Stat) {
        stat.uid = self.uid.load(Ordering::Relaxed);
        stat.gid = self.gid.load(Ordering::Relaxed);
    }

    /// chown: the ids given (None: unchanged).
    pub fn set(&self, uid: Option<u32>, gid: Option<u32>) {
        if let Some(uid) = uid {
            self.uid.store(uid, Ordering::Relaxed);
        }
        if let Some(gid) = gid {
            self.gid.store(gid, Ordering::Relaxed);
        }
    }
}

/// A node's timestamps, kept by memory file systems (ns since the epoch).
pub struct Times {
    atime: AtomicU64,
    mtime: AtomicU64,
    ctime: AtomicU64,
}

impl Times {
    /// All three at the current time (a new node).
    pub fn now() -> Self {
        let t = crate::time::realtime_ns();
        Self { atime: AtomicU64::new(t), mtime: AtomicU64::new(t), ctime: AtomicU64::new(t) }
    }

    /// Writes `stat`'s three times.
    pub fn fill(&self, stat: &mut Stat) {
        stat.atime_ns = self.atime.load(Ordering::Relaxed);
        stat.mtime_ns = self.mtime.load(Ordering::Relaxed);
        stat.ctime_ns = self.ctime.load(Ordering::Relaxed);
    }

    /// The contents changed: modification and change time are now.
    pub fn modified(&self) {
        let t = crate::time::realtime_ns();
        self.mtime.store(t, Ordering::Relaxed);
        self.ctime.store(t, Ordering::Relaxed);
    }

    /// The attributes changed (mode, links, xattrs): change time is now.
    pub fn changed(&self) {
        self.ctime.store(crate::time::realtime_ns(), Ordering::Relaxed);
    }

    /// utimensat: access and modification time as asked; the change time is now.
    pub fn set(&self, atime: TimeSet, mtime: TimeSet) {
        let now = crate::time::realtime_ns();
        for (slot, t) in [(&self.atime, atime), (&self.mtime, mtime)] {
            match t {
                TimeSet::Keep => {}
                TimeSet::Now => slot.store(now, Ordering::Relaxed),
                TimeSet::At(ns) => slot.store(ns, Ordering::Relaxed),
            }
        }
        self.ctime.store(now, Ordering::Relaxed);
    }
}

/// A transfer's place on a disk (`Node::direct_extent`): the disk, the first sector, and
/// a hold released when the transfer ends.
pub type DirectExtent = (Arc<crate::drivers::virtio::blk::Blk>, u64, Option<alloc::boxed::Box<dyn Send>>);

/// A buffer a file reads into or writes from: user memory of the current process, or
/// kernel memory. Files copy straight between their data and the buffer (one copy).
pub enum IoBuf<'a> {
    User { addr: u64, len: usize },
    /// User memory of a given address space (io_uring completing outside its submitter).
    UserOf { mm: crate::task::Mm, addr: u64, len: usize },
    Kernel(&'a mut [u8]),
    /// Pinned physical memory (an io_uring registered buffer), as (address, length)
    /// segments; whoever made it keeps the frames pinned while it is in use.
    Frames(Vec<(u64, u32)>),
}

impl IoBuf<'_> {
    /// Whether an O_DIRECT transfer of this buffer at `offset` is in whole `unit`s (a
    /// power of two) at aligned offsets and addresses, as a disk needs (Linux: EINVAL).
    pub fn direct_aligned(&self, offset: u64, unit: u64) -> bool {
        let mask = unit - 1;
        let addr_ok = match self {
            IoBuf::User { addr, .. } | IoBuf::UserOf { addr, .. } => addr & mask == 0,
            IoBuf::Kernel(b) => b.as_ptr() as u64 & mask == 0,
            IoBuf::Frames(segs) => segs.iter().all(|&(a, n)| a & mask == 0 && u64::from(n) & mask == 0),
        };
        addr_ok && offset & mask == 0 && self.len() as u64 & mask == 0
    }

    pub fn len(&self) -> usize {
        match self {
            IoBuf::User { len, .. } | IoBuf::UserOf { len, .. } => *len,
            IoBuf::Kernel(b) => b.len(),
            IoBuf::Frames(segs) => segs.iter().map(|s| s.1 as usize).sum(),
        }
    }

    /// The first `n` bytes as a buffer of their own (a write cut short by RLIMIT_FSIZE);
    /// None for a kernel buffer, which cannot be lent twice.
    pub fn prefix(&self, n: usize) -> Option<IoBuf<'static>> {
        self.window(0, n)
    }

    /// Up to `n` bytes from `from` as a buffer of their own (a copy made a piece at a
    /// time); None for a kernel buffer.
    pub fn window(&self, from: usize, n: usize) -> Option<IoBuf<'static>> {
        let from = from.min(self.len());
        let n = n.min(self.len() - from);
        match self {
            IoBuf::User { addr, .. } => Some(IoBuf::User { addr: *addr + from as u64, len: n }),
            IoBuf::UserOf { mm, addr, .. } => Some(IoBuf::UserOf { mm: mm.clone(), addr: *addr + from as u64, len: n }),
            IoBuf::Kernel(_) => None,
            IoBuf::Frames(segs) => {
                let (mut skip, mut left, mut out) = (from, n, Vec::new());
                for &(phys, len) in segs {
                    let len = len as usize;
                    if skip >= len {
                        skip -= len;
                        continue;
                    }
                    if left == 0 {
                        break;
                    }
                    let take = (len - skip).min(left);
                    out.push((phys + skip as u64, take as u32));
                    left -= take;
                    skip = 0;
                }
                Some(IoBuf::Frames(out))
            }
        }
    }

    /// Calls `f(kernel pointer, length, offset in the range)` for each piece of pinned
    /// memory covering `[at, at + len)` of a `Frames` buffer.
    fn frames_chunks(segs: &[(u64, u32)], at: usize, len: usize, mut f: impl FnMut(*mut u8, usize, usize)) {
        let (mut skip, mut done) = (at, 0);
        for &(phys, n) in segs {
            let n = n as usize;
            if skip >= n {
                skip -= n;
                continue;
            }
            let take = (n - skip).min(len - done);
            f(crate::mm::frame_ptr(phys + skip as u64), take, done);
            done += take;
            skip = 0;
            if done == len {
                break;
            }
        }
    }

    /// Brings user memory of the buffer in (for the device or the kernel to write it,
    /// with `write`): see `uaccess::prefault`.
    pub fn prefault(&self, write: bool) {
        match self {
            IoBuf::User { addr, len } => {
                if let Some(mm) = task::current_process().mm() {
                    crate::mm::uaccess::prefault(&mm, *addr, *len, write);
                }
            }
            IoBuf::UserOf { mm, addr, len } => crate::mm::uaccess::prefault(mm, *addr, *len, write),
            IoBuf::Kernel(_) | IoBuf::Frames(_) => {}
        }
    }

    /// Copies `src` into the buffer at `at`.
    pub fn put(&mut self, at: usize, src: &[u8]) -> KResult<()> {
        match self {
            IoBuf::User { addr, .. } => task::copy_to_user(*addr + at as u64, src),
            IoBuf::UserOf { mm, addr, .. } => crate::mm::uaccess::copy_out(mm, *addr + at as u64, src),
            IoBuf::Kernel(b) => {
                b[at..at + src.len()].copy_from_slice(src);
                Ok(())
            }
            IoBuf::Frames(segs) => {
                Self::frames_chunks(segs, at, src.len(), |kptr, n, off| {
                    // SAFETY: pinned frames of the buffer, reached through the kernel's
                    // direct map; `n` bytes fit in the segment and in `src`.
                    unsafe { core::ptr::copy_nonoverlapping(src.as_ptr().add(off), kptr, n) }
                });
                Ok(())
            }
        }
    }

    /// Copies the buffer's bytes at `at` into `dst`.
    pub fn get(&self, at: usize, dst: &mut [u8]) -> KResult<()> {
        match self {
            IoBuf::User { addr, .. } => task::copy_from_user(dst, *addr + at as u64),
            IoBuf::UserOf { mm, addr, .. } => crate::mm::uaccess::copy_in(mm, dst, *addr + at as u64),
            IoBuf::Kernel(b) => {
                dst.copy_from_slice(&b[at..at + dst.len()]);
                Ok(())
            }
            IoBuf::Frames(segs) => {
                let out = dst.as_mut_ptr();
                Self::frames_chunks(segs, at, dst.len(), |kptr, n, off| {
                    // SAFETY: as in `put`, in the other direction.
                    unsafe { core::ptr::copy_nonoverlapping(kptr, out.add(off), n) }
                });
                Ok(())
            }
        }
    }
}

/// A file's whole contents, borrowed from the initramfs when possible.
pub enum FileBytes {
    Static(&'static [u8]),
    Owned(Vec<u8>),
}

impl core::ops::Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Static(s) => s,
            FileBytes::Owned(v) => v,
        }
    }
}

/// A directory entry as `getdents64` lists it.
pub struct DirEntry {
    pub name: String,
    pub ino: u64,
    pub kind: FileType,
}

/// Anything that can be in the tree or behind a file descriptor. Defaults answer as
/// Linux does for an operation the kind of file does not support.
pub trait Node: Send + Sync + Any {
    fn stat(&self) -> Stat;

    fn file_type(&self) -> FileType {
        match self.stat().mode & 0o170000 {
            0o040000 => FileType::Directory,
            0o120000 => FileType::Symlink,
            0o020000 => FileType::CharDevice,
            0o060000 => FileType::BlockDevice,
            0o010000 => FileType::Fifo,
            0o140000 => FileType::Socket,
            _ => FileType::Regular,
        }
    }

    fn is_executable(&self) -> bool {
        self.file_type() == FileType::Regular && self.stat().mode & 0o111 != 0
    }

    /// Called when the file is opened with `flags` (a remote file opens its handle now,
    /// so the file stays usable if it is unlinked).
    fn open(&self, _flags: u32) -> KResult<()> {
        Ok(())
    }

    /// Reads at `offset` (ignored by streams). `nonblock`: O_NONBLOCK on the open file.
    fn read(&self, _offset: u64, _buf: &mut IoBuf, _nonblock: bool) -> KResult<usize> {
        Err(EINVAL)
    }

    fn write(&self, _offset: u64, _buf: &IoBuf, _nonblock: bool) -> KResult<usize> {
        Err(EINVAL)
    }

    /// An O_DIRECT read, around the page cache (by default the file has none).
    fn read_direct(&self, offset: u64, buf: &mut IoBuf, nonblock: bool) -> KResult<usize> {
        self.read(offset, buf, nonblock)
    }

    /// An O_DIRECT write, around the page cache (by default the file has none).
    fn write_direct(&self, offset: u64, buf: &IoBuf, nonblock: bool) -> KResult<usize> {
        self.write(offset, buf, nonblock)
    }

    /// posix_fadvise's `advice` (checked) for `len` bytes at `offset` (0: to the end):
    /// WILLNEED reads ahead, DONTNEED drops clean cached pages, RANDOM turns readahead
    /// off; files without a page
    /// cache take any advice and do nothing.
    fn advise(&self, _offset: u64, _len: u64, _advice: u32) -> KResult<()> {
        Ok(())
    }

    /// Writes back what shared mappings of the file changed (msync, munmap).
    fn writeback(&self) -> KResult<()> {
        Ok(())
    }

    /// Where a transfer of `len` bytes at `offset` lies on a disk, when it is one run of
    /// sectors found without sleeping: the disk, the first sector, and what to keep until
    /// the transfer ends (a file's blocks are not freed meanwhile). io_uring sends it to
    /// the device with the user's own pages. A block device answers for any transfer
    /// inside it, a file system for O_DIRECT ones (`direct`) only.
    fn direct_extent(&self, _offset: u64, _len: usize, _write: bool, _direct: bool) -> Option<DirectExtent> {
        None
    }

    /// A regular file's page cache and the I/O that fills it (io_uring's cached reads);
    /// None: reads go to the file system.
    fn page_cache(&self) -> Option<(&crate::mm::filemap::FileCache, &dyn crate::mm::filemap::PageIo)> {
        None
    }

    /// False for pipes, sockets and the like: `lseek` and `pread` give ESPIPE.
    fn seekable(&self) -> bool {
        true
    }

    fn truncate(&self, _len: u64) -> KResult<()> {
        Err(EINVAL)
    }

    /// fallocate(2) after the generic checks (`syscall::fs::fallocate_file`): a file
    /// system without it answers EOPNOTSUPP, as Linux's 9p client does.
    fn fallocate(&self, _mode: u32, _offset: u64, _len: u64) -> KResult<()> {
        Err(EOPNOTSUPP)
    }

    fn sync(&self) -> KResult<()> {
        Ok(())
    }

    /// An ioctl on `file` (an open file of this node).
    fn ioctl(&self, _file: &OpenFile, _cmd: u64, _arg: u64) -> KResult<u64> {
        Err(ENOTTY)
    }

    /// The whole file (for exec).
    fn contents(&self) -> KResult<FileBytes> {
        let size = self.stat().size as usize;
        if size > MAX_CONTENTS {
            return Err(ENOMEM);
        }
        let mut data = Vec::new();
        data.try_reserve_exact(size).map_err(|_| ENOMEM)?;
        data.resize(size, 0);
        let n = self.read(0, &mut IoBuf::Kernel(&mut data), false)?;
        data.truncate(n);
        Ok(FileBytes::Owned(data))
    }

    fn lookup(&self, _name: &str) -> KResult<Arc<dyn Node>> {
        Err(ENOTDIR)
    }

    /// Extended attribute `name` (checked by `xattr::check`): its value (ENODATA: none).
    fn getxattr(&self, _name: &str) -> KResult<Vec<u8>> {
        Err(EOPNOTSUPP)
    }

    /// Sets (`Some`) or removes (`None`) extended attribute `name`; `flags` holds
    /// XATTR_CREATE or XATTR_REPLACE.
    fn setxattr(&self, _name: &str, _value: Option<&[u8]>, _flags: u32) -> KResult<()> {
        Err(EOPNOTSUPP)
    }

    /// The names of the node's extended attributes, each NUL-terminated.
    fn listxattr(&self) -> KResult<Vec<u8>> {
        Ok(Vec::new())
    }

    /// The mounted file system the node belongs to (RESOLVE_NO_XDEV compares them): 0 for
    /// the in-memory tree (the root, `/dev`, `/tmp`, `/proc`).
    fn mount_id(&self) -> usize {
        0
    }

    /// Whether `lookup` answers from memory without I/O (RESOLVE_CACHED).
    fn lookup_cached(&self) -> bool {
        true
    }

    fn create(&self, _name: &str, _kind: FileType, _mode: u32) -> KResult<Arc<dyn Node>> {
        Err(ENOTDIR)
    }

    fn link(&self, _name: &str, _node: Arc<dyn Node>) -> KResult<()> {
        Err(ENOTDIR)
    }

    /// Removes `name`; `dir` selects rmdir semantics (EISDIR/ENOTDIR as Linux).
    fn unlink(&self, _name: &str, _dir: bool) -> KResult<()> {
        Err(ENOTDIR)
    }

    fn entries(&self) -> KResult<Vec<DirEntry>> {
        Err(ENOTDIR)
    }

    /// Takes `name` out of the directory without any check (the first half of rename).
    fn detach(&self, _name: &str) -> KResult<Arc<dyn Node>> {
        Err(ENOTDIR)
    }

    /// Moves entry `old` to `new` in `new_dir` (replacing it; the caller checked the
    /// kinds). The default works for directories that can detach and link.
    fn rename(&self, old: &str, new_dir: &Arc<dyn Node>, new: &str) -> KResult<()> {
        if new_dir.lookup(new).is_ok() {
            new_dir.detach(new)?;
        }
        let node = self.detach(old)?;
        new_dir.link(new, node)
    }

    /// Adds a symbolic link `name` -> `target`.
    fn symlink(&self, _name: &str, _target: &str) -> KResult<()> {
        Err(EPERM)
    }

    fn readlink(&self) -> KResult<String> {
        Err(EINVAL)
    }

    /// The 512-byte units the file occupies (`st_blocks`) where the file system counts
    /// them (a sparse file takes fewer than its size); None: its size rounded up.
    fn blocks(&self) -> Option<u64> {
        None
    }

    /// File seals (memfd's F_SEAL_*): 0 for files that take none.
    fn seals(&self) -> u32 {
        0
    }

    /// What `/proc/PID/fdinfo/FD` adds for this kind of file after the common lines
    /// (io_uring prints its rings' state, as Linux's io_uring_show_fdinfo).
    fn fdinfo(&self) -> Option<String> {
        None
    }

    /// utimensat: the access and modification times (EPERM where the file system keeps
    /// none).
    fn set_times(&self, _atime: TimeSet, _mtime: TimeSet) -> KResult<()> {
        Err(EPERM)
    }

    fn set_mode(&self, _mode: u32) -> KResult<()> {
        Err(EPERM)
    }

    /// chown: the owner and group given (None: unchanged); the caller checked the
    /// caller may, and clears set-ID bits itself.
    fn set_owner(&self, _uid: Option<u32>, _gid: Option<u32>) -> KResult<()> {
        Err(EPERM)
    }

    /// The pages a `MAP_SHARED` mapping of `len` bytes at file offset `offset` maps, and
    /// the index of the first one (ENODEV: the file cannot be mapped).
    fn mmap_pages(&self, _offset: u64, _len: u64) -> KResult<(Arc<crate::mm::user::SharedPages>, usize)> {
        Err(ENODEV)
    }

    /// What the file is ready for now (POLLIN, POLLOUT, POLLHUP, POLLERR bits). Files
    /// that never block are always ready.
    fn poll_mask(&self) -> u32 {
        POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM
    }

    /// The wait queue that is woken when the file may have become readable (`write`
    /// false) or writable: io_uring parks requests that would block there.
    fn poll_queue(&self, _write: bool) -> Option<&crate::task::wait::WaitQueue> {
        None
    }

    /// The last open file description of this node went away (`close` of the last
    /// descriptor): io_uring cancels its requests here, as Linux's `release` does.
    fn release(&self) {}

    /// Whether reads and writes can be tried without sleeping (Linux's FMODE_NOWAIT):
    /// with `nonblock` they answer EAGAIN rather than wait. io_uring tries such files
    /// inline and sends the others to io-wq.
    fn nowait(&self) -> bool {
        self.poll_queue(false).is_some() || self.poll_queue(true).is_some()
    }

    /// File-system statistics (`statfs`): type, block size, blocks, free blocks, available
    /// blocks, files, free files, name length. The default describes the RAM filesystem.
    fn statfs(&self) -> KResult<StatFs> {
        Ok(StatFs { kind: 0x0102_1994, bsize: 4096, namelen: 255, ..StatFs::default() })
    }

    fn as_any(&self) -> &dyn Any;
}

/// What `statfs` reports.
#[derive(Clone, Copy, Default, Debug)]
pub struct StatFs {
    pub kind: u64,
    pub bsize: u64,
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub namelen: u64,
}

/// Waits on `queue` until `ready()` (a blocking read or write of eventfds and timerfds):
/// EAGAIN at once for a nonblocking file, EINTR when a signal comes first.
pub fn wait_ready(queue: &crate::task::wait::WaitQueue, nonblock: bool, ready: impl FnMut() -> bool) -> KResult<()> {
    let mut ready = ready;
    if nonblock {
        return if ready() { Ok(()) } else { Err(EAGAIN) };
    }
    queue.wait_until(None, ready).map_err(|e| if e == crate::task::wait::WaitError::Interrupted { EINTR } else { EAGAIN })
}

/// Largest file read whole into kernel memory (an executable being loaded).
const MAX_CONTENTS: usize = 16 << 20;

pub const POLLIN: u32 = 0x1;
pub const POLLPRI: u32 = 0x2;
pub const POLLOUT: u32 = 0x4;
pub const POLLERR: u32 = 0x8;
pub const POLLHUP: u32 = 0x10;
pub const POLLRDNORM: u32 = 0x40;
pub const POLLWRNORM: u32 = 0x100;
pub const POLLRDHUP: u32 = 0x2000;

static NEXT_INO: AtomicU64 = AtomicU64::new(1);

pub fn alloc_ino() -> u64 {
    NEXT_INO.fetch_add(1, Ordering::Relaxed)
}

/// Builds the tree: the initramfs (if any) at `/`, then `/dev` and `/tmp`. Returns
/// whether an initramfs was unpacked.
pub fn init(initrd: Option<&'static [u8]>) -> bool {
    let root = ramfs::root();
    let unpacked = match initrd.map(|archive| cpio::unpack(archive, &root)) {
        Some(Ok(n)) => {
            log::info!("initramfs: {n} entries");
            true
        }
        Some(Err(e)) => {
            log::error!("initrd is not a usable initramfs: {e}");
            false
        }
        None => false,
    };
    dev::populate(&root);
    proc::populate(&root);
    let _ = root.create("tmp", FileType::Directory, 0o1777);
    sys_cpu(&root);
    unpacked
}

/// `/sys/devices/system/cpu/{online,possible,present}`: the CPUs as glibc counts them
/// (sysconf(_SC_NPROCESSORS_ONLN) reads `online`), all started at boot: "0" or "0-N".
fn sys_cpu(root: &Arc<ramfs::RamDir>) {
    let mut dir: Arc<dyn Node> = Arc::clone(root) as Arc<dyn Node>;
    for name in ["sys", "devices", "system", "cpu"] {
        dir = match dir.lookup(name) {
            Ok(d) => d,
            Err(_) => match dir.create(name, FileType::Directory, 0o755) {
                Ok(d) => d,
                Err(_) => return,
            },
        };
    }
    let n = crate::arch::smp::online_count();
    // Leaked once at boot: the files hold static bytes.
    let list: &'static str = if n == 1 { "0\n" } else { alloc::format!("0-{}\n", n - 1).leak() };
    for name in ["online", "possible", "present"] {
        let _ = dir.link(name, ramfs::RamFile::new(0o444, list.as_bytes()));
    }
}
