//! A 9P2000.L file server confined to one host directory.
//!
//! Confinement: every fid holds an `O_PATH | O_NOFOLLOW` fd of its file, opened relative
//! to its parent directory's fd, one name at a time. The guest's names are checked before
//! any system call ([`check_name`]: no `/`, no NUL, not empty, not `.` or `..`), so a
//! lookup can never cross more than one directory level, and it never follows a symlink
//! (`O_NOFOLLOW`; a walk *through* a symlink fails with ENOTDIR because the O_PATH fd of a
//! link is not a directory). `..` is never asked of the host: each fid keeps the chain of
//! directories it was walked through from the root ([`Node::up`]), and `..` steps back
//! along it (at the root it stays at the root), so a directory moved out of the share, by
//! the host or through another share, is never a way out. The root is a descriptor opened
//! once when the VMM starts, never a path looked up again.
//!
//! Creation uses `O_CREAT | O_NOFOLLOW` (a dangling link is not followed out of the
//! share). Files are reopened for I/O through `/proc/self/fd` (opened once at startup;
//! it names exactly the fid's inode), or without /proc by their name in their parent,
//! checked to still be the fid's inode; only regular files and directories are opened at
//! all. Calls that act on a fid's (parent, name) (remove, rename, link or set the times of
//! a symlink) first check that the name still is the fid's inode (ESTALE if not). Symlink
//! targets are the guest's to interpret: the server stores and returns them, never follows
//! them. `read_only` refuses every change with EROFS.
//!
//! Limits and privileges: at most [`MAX_FIDS`] fids per device (then EMFILE). Writes
//! and truncations drop setuid (and setgid with group-exec) bits as Linux does for a
//! writer without CAP_FSETID, even when the VMM has it (runs as root). Ownership changes
//! are passed on only when the VMM lacks CAP_CHOWN, so the host kernel decides; with it
//! they are ignored (as refused ones are), or the guest could give files to anyone.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::sys;
use super::wire::{self, Qid, Reply, SetAttr, Tmessage, HEADER, NOTAG, QID_SIZE};

/// The largest msize offered: 128 KiB of payload plus headers.
pub const MAX_MSIZE: u32 = (128 << 10) + 4096;
const MIN_MSIZE: u32 = 4096;
/// Most fids one device holds at once (Linux's default RLIMIT_NOFILE hard limit, 2^16).
/// Fids cost host memory, and most a host descriptor, so the guest cannot have more.
pub const MAX_FIDS: usize = 65536;

const QTDIR: u8 = 0x80;
const QTSYMLINK: u8 = 0x02;
const QTFILE: u8 = 0x00;

/// Tgetattr: the basic fields (mode .. blocks) are always valid.
const GETATTR_BASIC: u64 = 0x7ff;

/// Tsetattr valid bits.
const SETATTR_MODE: u32 = 0x1;
const SETATTR_UID: u32 = 0x2;
const SETATTR_GID: u32 = 0x4;
const SETATTR_SIZE: u32 = 0x8;
const SETATTR_ATIME: u32 = 0x10;
const SETATTR_MTIME: u32 = 0x20;
const SETATTR_ATIME_SET: u32 = 0x80;
const SETATTR_MTIME_SET: u32 = 0x100;

/// Tunlinkat flag (same value as Linux's AT_REMOVEDIR).
const AT_REMOVEDIR: u32 = 0x200;

/// Open flags (9P2000.L uses Linux's x86 values) the server passes on to the host.
/// Permission bits a guest may set on host files: no setuid or setgid (the files belong
/// to the VMM's user, which may be root).
const SAFE_MODE: u32 = 0o1777;

const OPEN_FLAGS_KEPT: i32 = libc::O_ACCMODE | libc::O_TRUNC | libc::O_APPEND | libc::O_DSYNC | libc::O_SYNC;

fn err(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// A guest-supplied name: one path component, never `.` or `..`.
fn check_name(name: &[u8]) -> io::Result<CString> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.len() > 255 {
        return Err(err(libc::EINVAL));
    }
    CString::new(name).map_err(|_| err(libc::EINVAL))
}

fn qid_of(st: &libc::stat) -> Qid {
    let ty = match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => QTDIR,
        libc::S_IFLNK => QTSYMLINK,
        _ => QTFILE,
    };
    Qid { ty, version: 0, path: st.st_ino }
}

/// Extended attributes are served for regular files and directories only, and only in
/// the `user.` namespace: the others (`trusted.`, `security.`: file capabilities, LSM
/// labels) would let the guest change what the host trusts.
fn xattr_target(st: &libc::stat) -> io::Result<()> {
    if is(st, libc::S_IFREG) || is(st, libc::S_IFDIR) { Ok(()) } else { Err(err(libc::EPERM)) }
}

/// A guest's attribute name, if it is one the server serves (EOPNOTSUPP otherwise).
fn xattr_name(name: &[u8]) -> io::Result<CString> {
    if !name.starts_with(b"user.") || name.len() == 5 || name.len() > 255 {
        return Err(err(libc::EOPNOTSUPP));
    }
    CString::new(name).map_err(|_| err(libc::EINVAL))
}

fn is(st: &libc::stat, fmt: libc::mode_t) -> bool {
    st.st_mode & libc::S_IFMT == fmt
}

/// One file of the share: an O_PATH fd, and where it was found.
#[derive(Clone)]
struct Node {
    fd: Arc<OwnedFd>,
    /// The directory it was walked from and its name there; None only for the root. The
    /// whole chain up to the root answers `..` and is never asked of the host.
    up: Option<Arc<Link>>,
}

struct Link {
    dir: Node,
    name: CString,
}

impl Node {
    fn child(&self, fd: OwnedFd, name: CString) -> Node {
        Node { fd: Arc::new(fd), up: Some(Arc::new(Link { dir: self.clone(), name })) }
    }

    /// (parent, name) once checked to still name this fid's inode: ENOENT if the name is
    /// gone, ESTALE if it is now another file; EBUSY for the root.
    fn located(&self) -> io::Result<(BorrowedFd<'_>, &CStr)> {
        let link = self.up.as_ref().ok_or_else(|| err(libc::EBUSY))?;
        let st = sys::stat(self.fd.as_fd())?;
        let now = sys::statat(link.dir.fd.as_fd(), &link.name)?;
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
            return Err(err(libc::ESTALE));
        }
        Ok((link.dir.fd.as_fd(), &link.name))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Unlink the chain one level at a time: a fid can be thousands of directories
        // deep, and dropping it recursively could overflow the stack.
        let mut up = self.up.take();
        while let Some(link) = up {
            up = Arc::try_unwrap(link).ok().and_then(|mut l| l.dir.up.take());
        }
    }
}

/// How a path call reaches a fid's inode: (dir, name, follow the final symlink).
struct Target<'a> {
    dir: BorrowedFd<'a>,
    name: CString,
    follow: bool,
}

struct Fid {
    node: Node,
    open: Option<File>,
    xattr: Option<XattrFid>,
}

/// A fid turned into an extended attribute: by Txattrwalk (its value, or the name list,
/// read with Tread) or by Txattrcreate (a value written with Twrite, set at Tclunk; size
/// 0 removes it, as 9P2000.L has no other way to).
enum XattrFid {
    Read(Vec<u8>),
    Write { name: CString, size: usize, flags: libc::c_int, data: Vec<u8> },
}

pub struct Server {
    root: Node,
    read_only: bool,
    msize: u32,
    fids: HashMap<u32, Fid>,
    /// `/proc/self/fd`, if it was there at startup.
    proc: Option<BorrowedFd<'static>>,
    /// The VMM may keep setuid/setgid bits on write (CAP_FSETID): the server drops them.
    keeps_privs: bool,
    /// The VMM may give files to anyone (CAP_CHOWN): the server changes no owner.
    chowns_anything: bool,
}

/// Opens a share's root directory (the host's choice, so `path` may cross symlinks): the
/// descriptor a device keeps for the VM's life.
pub fn open_root(path: &Path) -> io::Result<Arc<OwnedFd>> {
    let path = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| err(libc::EINVAL))?;
    Ok(Arc::new(sys::openat(sys::at_fdcwd(), &path, libc::O_PATH | libc::O_DIRECTORY, 0)?))
}

impl Server {
    pub fn new(root: &Path, read_only: bool) -> io::Result<Self> {
        Ok(Self::with_root(open_root(root)?, read_only))
    }

    /// A server for the directory `root` (from [`open_root`]).
    pub fn with_root(root: Arc<OwnedFd>, read_only: bool) -> Self {
        Self {
            root: Node { fd: root, up: None },
            read_only,
            msize: MAX_MSIZE,
            fids: HashMap::new(),
            proc: sys::proc_self_fd(),
            keeps_privs: sys::has_cap(sys::CAP_FSETID),
            chowns_anything: sys::has_cap(sys::CAP_CHOWN),
        }
    }

    /// The msize agreed with Tversion.
    pub fn msize(&self) -> u32 {
        self.msize
    }

    /// Handles one T-message; the reply is at most `max_reply` bytes (at least an Rlerror:
    /// 11 bytes).
    pub fn handle(&mut self, msg: &[u8], max_reply: usize) -> Vec<u8> {
        let (ty, tag) = match wire::header(msg) {
            Ok(h) => h,
            Err(e) => {
                crate::guest_warn!(crate::devices::guest_errors::P9, "9p: bad message: {e}");
                return Reply::error(NOTAG, libc::EINVAL);
            }
        };
        let max_reply = max_reply.min(self.msize as usize);
        let reply = match wire::parse(msg) {
            Ok(m) => self.dispatch(ty + 1, tag, m, max_reply),
            Err(e @ wire::WireError::Unknown(_)) => {
                crate::guest_warn!(crate::devices::guest_errors::P9, "9p: {e}");
                Err(err(libc::EOPNOTSUPP))
            }
            Err(e) => {
                crate::guest_warn!(crate::devices::guest_errors::P9, "9p: bad message of type {ty}: {e}");
                Err(err(libc::EINVAL))
            }
        };
        match reply {
            Ok(r) if r.len() <= max_reply => r,
            Ok(_) => Reply::error(tag, libc::ERANGE),
            Err(e) => Reply::error(tag, errno_of(&e)),
        }
    }

    fn fid(&self, fid: u32) -> io::Result<&Fid> {
        self.fids.get(&fid).ok_or_else(|| err(libc::EBADF))
    }

    /// Checks that `fid` can be made: not in use, and fewer than [`MAX_FIDS`] held.
    fn check_new_fid(&self, fid: u32) -> io::Result<()> {
        if self.fids.contains_key(&fid) {
            return Err(err(libc::EBADF));
        }
        if self.fids.len() >= MAX_FIDS {
            return Err(err(libc::EMFILE));
        }
        Ok(())
    }

    fn writable(&self) -> io::Result<()> {
        if self.read_only { Err(err(libc::EROFS)) } else { Ok(()) }
    }

    fn dispatch(&mut self, rty: u8, tag: u16, m: Tmessage<'_>, max_reply: usize) -> io::Result<Vec<u8>> {
        let r = Reply::new(rty, tag);
        Ok(match m {
            Tmessage::Version { msize, version } => {
                if msize < MIN_MSIZE {
                    return Err(err(libc::EINVAL));
                }
                self.fids.clear();
                self.msize = msize.min(MAX_MSIZE);
                let version: &[u8] = if version == b"9P2000.L" { version } else { b"unknown" };
                r.u32(self.msize).string(version).finish()
            }
            Tmessage::Auth => return Err(err(libc::EOPNOTSUPP)),
            Tmessage::Attach { fid } => {
                self.check_new_fid(fid)?;
                let st = sys::stat(self.root.fd.as_fd())?;
                self.fids.insert(fid, Fid { node: self.root.clone(), open: None, xattr: None });
                r.qid(qid_of(&st)).finish()
            }
            Tmessage::Flush => r.finish(), // every request completes before the next
            Tmessage::Walk { fid, newfid, names } => {
                if newfid != fid {
                    self.check_new_fid(newfid)?;
                }
                let mut node = self.fid(fid)?.node.clone();
                let mut qids = Vec::new();
                for name in &names {
                    match self.lookup(&node, name) {
                        Ok((next, st)) => {
                            qids.push(qid_of(&st));
                            node = next;
                        }
                        Err(e) if qids.is_empty() => return Err(e),
                        Err(_) => break,
                    }
                }
                if qids.len() == names.len() {
                    self.fids.insert(newfid, Fid { node, open: None, xattr: None });
                }
                qids.iter().fold(r.u16(qids.len() as u16), |r, &q| r.qid(q)).finish()
            }
            Tmessage::Read { fid, offset, count } => {
                let room = max_reply.saturating_sub(HEADER + 4);
                if let Some(XattrFid::Read(data)) = &self.fid(fid)?.xattr {
                    let from = (offset as usize).min(data.len());
                    let n = (count as usize).min(room).min(data.len() - from);
                    return Ok(r.u32(n as u32).bytes(&data[from..from + n]).finish());
                }
                let file = self.fid(fid)?.open.as_ref().ok_or_else(|| err(libc::EBADF))?;
                let mut buf = vec![0u8; (count as usize).min(room)];
                let n = file.read_at(&mut buf, offset)?;
                r.u32(n as u32).bytes(&buf[..n]).finish()
            }
            Tmessage::Write { fid, offset, data } => {
                self.writable()?;
                let f = self.fids.get_mut(&fid).ok_or_else(|| err(libc::EBADF))?;
                if let Some(XattrFid::Write { size, data: value, .. }) = &mut f.xattr {
                    // The value comes in order and no longer than announced.
                    if offset != value.len() as u64 || value.len() + data.len() > *size {
                        return Err(err(libc::EINVAL));
                    }
                    value.extend_from_slice(data);
                    return Ok(r.u32(data.len() as u32).finish());
                }
                let file = self.fid(fid)?.open.as_ref().ok_or_else(|| err(libc::EBADF))?;
                self.remove_privs(file)?;
                let n = file.write_at(data, offset)?;
                r.u32(n as u32).finish()
            }
            Tmessage::Clunk { fid } => {
                let f = self.fids.remove(&fid).ok_or_else(|| err(libc::EBADF))?;
                if let Some(XattrFid::Write { name, size, flags, data }) = f.xattr {
                    if size != 0 && data.len() != size {
                        return Err(err(libc::EINVAL));
                    }
                    let file = self.xattr_file(&f.node, true)?;
                    match size {
                        0 => sys::setxattr(&file, &name, None, 0)?,
                        _ => sys::setxattr(&file, &name, Some(&data), flags)?,
                    }
                }
                r.finish()
            }
            Tmessage::Remove { fid } => {
                let f = self.fids.remove(&fid).ok_or_else(|| err(libc::EBADF))?;
                self.writable()?;
                let st = sys::stat(f.node.fd.as_fd())?;
                let (parent, name) = f.node.located()?;
                let flags = if is(&st, libc::S_IFDIR) { libc::AT_REMOVEDIR } else { 0 };
                sys::unlinkat(parent, name, flags)?;
                r.finish()
            }
            Tmessage::Statfs { fid } => {
                let s = sys::statfs(self.fid(fid)?.node.fd.as_fd())?;
                let [a, b] = fsid_words(&s.f_fsid);
                let fsid = u64::from(a as u32) | (u64::from(b as u32) << 32);
                r.u32(s.f_type as u32)
                    .u32(s.f_bsize as u32)
                    .u64(s.f_blocks)
                    .u64(s.f_bfree)
                    .u64(s.f_bavail)
                    .u64(s.f_files)
                    .u64(s.f_ffree)
                    .u64(fsid)
                    .u32(s.f_namelen as u32)
                    .finish()
            }
            Tmessage::Lopen { fid, flags } => {
                let (file, st) = self.open(fid, flags)?;
                self.fids.get_mut(&fid).ok_or_else(|| err(libc::EBADF))?.open = Some(file);
                r.qid(qid_of(&st)).u32(0).finish()
            }
            Tmessage::Lcreate { fid, name, flags, mode } => {
                self.writable()?;
                let name = check_name(name)?;
                let dir = self.fid(fid)?.node.clone();
                // O_NONBLOCK: an existing FIFO must not block the worker; then anything
                // but a regular file is refused (no FIFOs or device nodes opened here).
                let oflags = (flags as i32 & OPEN_FLAGS_KEPT)
                    | (flags as i32 & libc::O_EXCL)
                    | libc::O_CREAT
                    | libc::O_NOFOLLOW
                    | libc::O_NONBLOCK;
                let file = File::from(sys::openat(dir.fd.as_fd(), &name, oflags, mode & SAFE_MODE)?);
                if !is(&sys::stat(file.as_fd())?, libc::S_IFREG) {
                    return Err(err(libc::EOPNOTSUPP));
                }
                sys::clear_nonblock(file.as_fd())?;
                if oflags & libc::O_TRUNC != 0 {
                    self.remove_privs(&file)?;
                }
                let fd = sys::openat(dir.fd.as_fd(), &name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
                let st = sys::stat(fd.as_fd())?;
                let node = dir.child(fd, name);
                self.fids.insert(fid, Fid { node, open: Some(file), xattr: None });
                r.qid(qid_of(&st)).u32(0).finish()
            }
            Tmessage::Symlink { fid, name, target } => {
                self.writable()?;
                let name = check_name(name)?;
                let target = CString::new(target).map_err(|_| err(libc::EINVAL))?;
                let dir = self.fid(fid)?.node.fd.as_fd();
                sys::symlinkat(&target, dir, &name)?;
                r.qid(qid_of(&sys::statat(dir, &name)?)).finish()
            }
            Tmessage::Mknod { dfid, name, mode } => {
                self.writable()?;
                let name = check_name(name)?;
                if !matches!(mode & libc::S_IFMT, libc::S_IFIFO | libc::S_IFSOCK | libc::S_IFREG) {
                    return Err(err(libc::EPERM)); // no device nodes in a share
                }
                let dir = self.fid(dfid)?.node.fd.as_fd();
                sys::mknodat(dir, &name, (mode & libc::S_IFMT) | (mode & SAFE_MODE))?;
                r.qid(qid_of(&sys::statat(dir, &name)?)).finish()
            }
            Tmessage::Rename { fid, dfid, name } => {
                self.writable()?;
                let name = check_name(name)?;
                let newdir = self.fid(dfid)?.node.clone();
                let f = self.fids.get_mut(&fid).ok_or_else(|| err(libc::EBADF))?;
                let (olddir, oldname) = f.node.located()?;
                sys::renameat(olddir, oldname, newdir.fd.as_fd(), &name)?;
                f.node.up = Some(Arc::new(Link { dir: newdir, name }));
                r.finish()
            }
            Tmessage::Readlink { fid } => {
                let target = sys::readlink(self.fid(fid)?.node.fd.as_fd())?;
                r.string(&target).finish()
            }
            Tmessage::Getattr { fid } => {
                let st = sys::stat(self.fid(fid)?.node.fd.as_fd())?;
                r.u64(GETATTR_BASIC)
                    .qid(qid_of(&st))
                    .u32(st.st_mode)
                    .u32(st.st_uid)
                    .u32(st.st_gid)
                    .u64(st.st_nlink)
                    .u64(st.st_rdev)
                    .u64(st.st_size as u64)
                    .u64(st.st_blksize as u64)
                    .u64(st.st_blocks as u64)
                    .u64(st.st_atime as u64)
                    .u64(st.st_atime_nsec as u64)
                    .u64(st.st_mtime as u64)
                    .u64(st.st_mtime_nsec as u64)
                    .u64(st.st_ctime as u64)
                    .u64(st.st_ctime_nsec as u64)
                    .u64(0) // btime
                    .u64(0)
                    .u64(0) // gen
                    .u64(0) // data_version
                    .finish()
            }
            Tmessage::Setattr { fid, attr } => {
                self.writable()?;
                self.setattr(fid, &attr)?;
                r.finish()
            }
            Tmessage::XattrWalk { fid, newfid, name } => {
                if newfid != fid {
                    self.check_new_fid(newfid)?;
                }
                let node = self.fid(fid)?.node.clone();
                let data = self.xattr_get(&node, name)?;
                let size = data.len() as u64;
                self.fids.insert(newfid, Fid { node, open: None, xattr: Some(XattrFid::Read(data)) });
                r.u64(size).finish()
            }
            Tmessage::XattrCreate { fid, name, size, flags } => {
                self.writable()?;
                let name = xattr_name(name)?;
                if size > sys::XATTR_MAX as u64 {
                    return Err(err(libc::E2BIG));
                }
                if flags & !((libc::XATTR_CREATE | libc::XATTR_REPLACE) as u32) != 0 {
                    return Err(err(libc::EINVAL));
                }
                let f = self.fids.get_mut(&fid).ok_or_else(|| err(libc::EBADF))?;
                xattr_target(&sys::stat(f.node.fd.as_fd())?)?;
                f.open = None;
                f.xattr = Some(XattrFid::Write { name, size: size as usize, flags: flags as libc::c_int, data: Vec::new() });
                r.finish()
            }
            Tmessage::Readdir { fid, offset, count } => {
                let dir = self.fid(fid)?.open.as_ref().ok_or_else(|| err(libc::EBADF))?;
                let room = (count as usize).min(max_reply.saturating_sub(HEADER + 4));
                let mut data = Vec::new();
                'fill: for entry in sys::read_dir(dir, offset, room)? {
                    let size = QID_SIZE + 8 + 1 + 2 + entry.name.len();
                    if data.len() + size > room {
                        break 'fill;
                    }
                    let ty = match entry.ty {
                        libc::DT_DIR => QTDIR,
                        libc::DT_LNK => QTSYMLINK,
                        _ => QTFILE,
                    };
                    let qid = Qid { ty, version: 0, path: entry.ino };
                    let e = Reply::new(0, 0).qid(qid).u64(entry.off).u8(entry.ty).string(&entry.name).finish();
                    data.extend_from_slice(&e[HEADER..]);
                }
                r.u32(data.len() as u32).bytes(&data).finish()
            }
            Tmessage::Fsync { fid, datasync } => {
                let file = self.fid(fid)?.open.as_ref().ok_or_else(|| err(libc::EBADF))?;
                if datasync { file.sync_data()? } else { file.sync_all()? }
                r.finish()
            }
            Tmessage::Lock { fid } => {
                self.fid(fid)?;
                r.u8(0).finish() // P9_LOCK_SUCCESS: locks are advisory and local to the guest
            }
            Tmessage::GetLock { fid, ty: _, start, length, proc_id, client_id } => {
                self.fid(fid)?;
                r.u8(libc::F_UNLCK as u8).u64(start).u64(length).u32(proc_id).string(client_id).finish()
            }
            Tmessage::Link { dfid, fid, name } => {
                self.writable()?;
                let name = check_name(name)?;
                let dir = self.fid(dfid)?.node.fd.as_fd();
                let node = &self.fid(fid)?.node;
                let st = sys::stat(node.fd.as_fd())?;
                if is(&st, libc::S_IFDIR) {
                    return Err(err(libc::EPERM));
                }
                // A symlink is linked itself (never followed), by its checked name.
                let t = self.target(node, &st)?;
                sys::linkat(t.dir, &t.name, dir, &name, if t.follow { libc::AT_SYMLINK_FOLLOW } else { 0 })?;
                r.finish()
            }
            Tmessage::Mkdir { dfid, name, mode } => {
                self.writable()?;
                let name = check_name(name)?;
                let dir = self.fid(dfid)?.node.fd.as_fd();
                sys::mkdirat(dir, &name, mode & SAFE_MODE)?;
                r.qid(qid_of(&sys::statat(dir, &name)?)).finish()
            }
            Tmessage::Renameat { olddirfid, oldname, newdirfid, newname } => {
                self.writable()?;
                let (oldname, newname) = (check_name(oldname)?, check_name(newname)?);
                let olddir = self.fid(olddirfid)?.node.clone();
                let newdir = self.fid(newdirfid)?.node.clone();
                sys::renameat(olddir.fd.as_fd(), &oldname, newdir.fd.as_fd(), &newname)?;
                self.renamed(&olddir, &oldname, &newdir, &newname);
                r.finish()
            }
            Tmessage::Unlinkat { dirfid, name, flags } => {
                self.writable()?;
                let name = check_name(name)?;
                let dir = self.fid(dirfid)?.node.fd.as_fd();
                let flags = if flags & AT_REMOVEDIR != 0 { libc::AT_REMOVEDIR } else { 0 };
                sys::unlinkat(dir, &name, flags)?;
                r.finish()
            }
        })
    }

    /// One step of a walk from `node`.
    fn lookup(&self, node: &Node, name: &[u8]) -> io::Result<(Node, libc::stat)> {
        let st = sys::stat(node.fd.as_fd())?;
        if !is(&st, libc::S_IFDIR) {
            return Err(err(libc::ENOTDIR));
        }
        if name == b".." {
            // Back along the walked chain; the root is its own parent.
            let Some(link) = &node.up else { return Ok((node.clone(), st)) };
            let up = link.dir.clone();
            let st = sys::stat(up.fd.as_fd())?;
            return Ok((up, st));
        }
        if name == b"." {
            return Ok((node.clone(), st));
        }
        let name = check_name(name)?;
        let fd = sys::openat(node.fd.as_fd(), &name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
        let st = sys::stat(fd.as_fd())?;
        Ok((node.child(fd, name), st))
    }

    /// Where path calls reach `node` (whose stat is `st`): a directory as `.` of its own
    /// fd; a symlink, or anything when /proc is missing, by its checked name in its
    /// parent (not followed); the rest through /proc/self/fd.
    fn target<'a>(&self, node: &'a Node, st: &libc::stat) -> io::Result<Target<'a>> {
        if is(st, libc::S_IFDIR) {
            return Ok(Target { dir: node.fd.as_fd(), name: c".".to_owned(), follow: true });
        }
        if let (Some(proc), false) = (self.proc, is(st, libc::S_IFLNK)) {
            return Ok(Target { dir: proc, name: sys::fd_name(node.fd.as_fd()), follow: true });
        }
        let (dir, name) = node.located()?;
        Ok(Target { dir, name: name.to_owned(), follow: false })
    }

    /// Opens `node`, a regular file or directory (stat `st`), for I/O with `flags`.
    fn reopen(&self, node: &Node, st: &libc::stat, flags: i32) -> io::Result<File> {
        if is(st, libc::S_IFDIR) {
            return Ok(File::from(sys::openat(node.fd.as_fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?));
        }
        if !is(st, libc::S_IFREG) {
            return Err(err(libc::EOPNOTSUPP)); // fifos and devices are not opened here
        }
        if let Some(proc) = self.proc {
            return Ok(File::from(sys::openat(proc, &sys::fd_name(node.fd.as_fd()), flags, 0)?));
        }
        // By name: O_NONBLOCK and no O_TRUNC until the file is known to be the fid's.
        let (dir, name) = node.located()?;
        let open = (flags & !libc::O_TRUNC) | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
        let file = File::from(sys::openat(dir, name, open, 0)?);
        let now = sys::stat(file.as_fd())?;
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
            return Err(err(libc::ESTALE));
        }
        sys::clear_nonblock(file.as_fd())?;
        if flags & libc::O_TRUNC != 0 {
            file.set_len(0)?;
        }
        Ok(file)
    }

    /// Tlopen: a regular file or a directory.
    fn open(&self, fid: u32, flags: u32) -> io::Result<(File, libc::stat)> {
        let node = &self.fid(fid)?.node;
        let st = sys::stat(node.fd.as_fd())?;
        let flags = flags as i32 & OPEN_FLAGS_KEPT;
        let writes = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        if writes {
            self.writable()?;
        }
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR if writes => return Err(err(libc::EISDIR)),
            libc::S_IFLNK => return Err(err(libc::ELOOP)),
            _ => {}
        }
        let file = self.reopen(node, &st, flags)?;
        if flags & libc::O_TRUNC != 0 {
            self.remove_privs(&file)?;
        }
        Ok((file, st))
    }

    /// A regular file or directory opened for its extended attributes (`set`: to change
    /// them, which needs only write permission).
    fn xattr_file(&self, node: &Node, set: bool) -> io::Result<File> {
        let st = sys::stat(node.fd.as_fd())?;
        xattr_target(&st)?;
        match self.reopen(node, &st, libc::O_RDONLY) {
            Err(e) if set && is(&st, libc::S_IFREG) && e.raw_os_error() == Some(libc::EACCES) => {
                self.reopen(node, &st, libc::O_WRONLY)
            }
            other => other,
        }
    }

    /// Txattrwalk's data: attribute `name`'s value, or with an empty name the list of the
    /// `user.` names (NUL-terminated).
    fn xattr_get(&self, node: &Node, name: &[u8]) -> io::Result<Vec<u8>> {
        if name.is_empty() {
            if xattr_target(&sys::stat(node.fd.as_fd())?).is_err() {
                return Ok(Vec::new());
            }
            let all = sys::getxattr(&self.xattr_file(node, false)?, None)?;
            let user = all.split(|&b| b == 0).filter(|n| n.starts_with(b"user.")).flat_map(|n| n.iter().copied().chain([0]));
            return Ok(user.collect());
        }
        let name = xattr_name(name)?;
        xattr_target(&sys::stat(node.fd.as_fd())?).map_err(|_| err(libc::ENODATA))?;
        let file = self.xattr_file(node, false)?;
        sys::getxattr(&file, Some(&name)).map_err(|e| if e.raw_os_error() == Some(libc::ERANGE) { err(libc::E2BIG) } else { e })
    }

    /// Before a write or truncation: drops setuid, and setgid if group-exec is set, as
    /// Linux's file_remove_privs does for a writer without CAP_FSETID. Only needed when
    /// the VMM has it (else the host kernel already does this).
    fn remove_privs(&self, file: &File) -> io::Result<()> {
        if !self.keeps_privs {
            return Ok(());
        }
        let mode = sys::stat(file.as_fd())?.st_mode;
        let mut kill = libc::S_ISUID;
        if mode & libc::S_IXGRP != 0 {
            kill |= libc::S_ISGID;
        }
        if is_reg(mode) && mode & kill != 0 && sys::access_mode(file.as_fd())? != libc::O_RDONLY {
            sys::fchmod(file, mode & !kill & 0o7777)?;
        }
        Ok(())
    }

    fn setattr(&self, fid: u32, a: &SetAttr) -> io::Result<()> {
        let node = &self.fid(fid)?.node;
        let st = sys::stat(node.fd.as_fd())?;
        let link = is(&st, libc::S_IFLNK);
        if a.valid & SETATTR_MODE != 0 {
            if link {
                return Err(err(libc::EOPNOTSUPP));
            }
            let t = self.target(node, &st)?;
            sys::chmodat(t.dir, &t.name, a.mode & SAFE_MODE)?;
        }
        if a.valid & (SETATTR_UID | SETATTR_GID) != 0 && !self.chowns_anything {
            let uid = if a.valid & SETATTR_UID != 0 { a.uid } else { u32::MAX };
            let gid = if a.valid & SETATTR_GID != 0 { a.gid } else { u32::MAX };
            // Like QEMU's security_model=none: ownership changes the host refuses are
            // ignored. A VMM with CAP_CHOWN would refuse none, so it makes none.
            match sys::chown(node.fd.as_fd(), uid, gid) {
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
                other => other?,
            }
        }
        if a.valid & SETATTR_SIZE != 0 {
            if !is(&st, libc::S_IFREG) {
                return Err(err(if is(&st, libc::S_IFDIR) { libc::EISDIR } else { libc::EINVAL }));
            }
            let size = i64::try_from(a.size).map_err(|_| err(libc::EFBIG))?;
            let file = self.reopen(node, &st, libc::O_WRONLY)?;
            self.remove_privs(&file)?;
            file.set_len(size as u64)?;
        }
        if a.valid & (SETATTR_ATIME | SETATTR_MTIME) != 0 {
            let time = |valid: u32, set: u32, (sec, nsec): (u64, u64)| {
                if a.valid & valid == 0 {
                    libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT }
                } else if a.valid & set == 0 {
                    libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_NOW }
                } else {
                    libc::timespec { tv_sec: sec as libc::time_t, tv_nsec: (nsec % 1_000_000_000) as libc::c_long }
                }
            };
            let times = [time(SETATTR_ATIME, SETATTR_ATIME_SET, a.atime), time(SETATTR_MTIME, SETATTR_MTIME_SET, a.mtime)];
            let t = self.target(node, &st)?;
            sys::utimensat(t.dir, &t.name, &times, if t.follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW })?;
        }
        Ok(())
    }

    /// After a renameat, fids that were found as `olddir/oldname` are `newdir/newname`.
    fn renamed(&mut self, olddir: &Node, oldname: &CStr, newdir: &Node, newname: &CString) {
        let Ok(old) = sys::stat(olddir.fd.as_fd()) else { return };
        for f in self.fids.values_mut() {
            let Some(link) = &f.node.up else { continue };
            if link.name.as_c_str() != oldname {
                continue;
            }
            if sys::stat(link.dir.fd.as_fd()).is_ok_and(|s| (s.st_dev, s.st_ino) == (old.st_dev, old.st_ino)) {
                f.node.up = Some(Arc::new(Link { dir: newdir.clone(), name: newname.clone() }));
            }
        }
    }
}

fn is_reg(mode: libc::mode_t) -> bool {
    mode & libc::S_IFMT == libc::S_IFREG
}

/// The two words of an fsid_t.
fn fsid_words(fsid: &libc::fsid_t) -> [i32; 2] {
    // fsid_t's fields are private in libc.
    const _: () = assert!(size_of::<libc::fsid_t>() == 8);
    // SAFETY: fsid_t is a plain 8-byte C struct (two ints) with no padding or invalid
    // bit patterns, so reading it as [i32; 2] is sound.
    unsafe { std::mem::transmute_copy(fsid) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::p9::wire::{op, tmsg};
    use crate::devices::virtio::test_util::TempDir;

    /// A 9P client driving a server in-process: each call returns the reply body or the
    /// Rlerror errno.
    struct Client {
        server: Server,
        _dir: Option<TempDir>,
        outside: std::path::PathBuf,
        root: std::path::PathBuf,
    }

    fn s(text: &str) -> Vec<u8> {
        let mut v = (text.len() as u16).to_le_bytes().to_vec();
        v.extend_from_slice(text.as_bytes());
        v
    }

    fn u32s(v: &[u32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    const ROOT: u32 = 0;

    impl Client {
        /// A share at `<tmp>/root` beside `<tmp>/secret` (a file) and `<tmp>/outside/`
        /// (a directory with a file): the guest must reach neither.
        fn new(read_only: bool) -> Self {
            let dir = TempDir::new("9p");
            let root = dir.path().join("root");
            let outside = dir.path().join("outside");
            std::fs::create_dir(&root).unwrap();
            std::fs::create_dir(&outside).unwrap();
            std::fs::write(dir.path().join("secret"), b"host secret").unwrap();
            std::fs::write(outside.join("file"), b"outside file").unwrap();
            std::fs::write(root.join("hello"), b"hello world").unwrap();
            std::fs::create_dir(root.join("sub")).unwrap();
            let server = Server::new(&root, read_only).unwrap();
            Client::start(server, Some(dir), outside, root)
        }

        /// A client of `server`, whose share is `root`.
        fn start(server: Server, dir: Option<TempDir>, outside: std::path::PathBuf, root: std::path::PathBuf) -> Self {
            let mut c = Client { server, _dir: dir, outside, root };
            let mut body = 65536u32.to_le_bytes().to_vec();
            body.extend(s("9P2000.L"));
            c.call(op::TVERSION, &body).unwrap();
            let body = [u32s(&[ROOT, u32::MAX]), s("root"), s(""), u32s(&[0])].concat();
            c.call(op::TATTACH, &body).unwrap();
            c
        }

        fn call(&mut self, ty: u8, body: &[u8]) -> Result<Vec<u8>, i32> {
            let reply = self.server.handle(&tmsg(ty, 1, body), 1 << 20);
            assert_eq!(u32::from_le_bytes(reply[..4].try_into().unwrap()) as usize, reply.len());
            if reply[4] == op::RLERROR {
                return Err(i32::from_le_bytes(reply[7..11].try_into().unwrap()));
            }
            assert_eq!(reply[4], ty + 1);
            Ok(reply[7..].to_vec())
        }

        /// Twalk from `fid` to `newfid`; Ok(number of qids).
        fn walk(&mut self, fid: u32, newfid: u32, names: &[&str]) -> Result<usize, i32> {
            let mut body = [u32s(&[fid, newfid]), (names.len() as u16).to_le_bytes().to_vec()].concat();
            for n in names {
                body.extend(s(n));
            }
            let r = self.call(op::TWALK, &body)?;
            Ok(usize::from(u16::from_le_bytes([r[0], r[1]])))
        }

        fn lopen(&mut self, fid: u32, flags: i32) -> Result<Vec<u8>, i32> {
            self.call(op::TLOPEN, &u32s(&[fid, flags as u32]))
        }

        fn read(&mut self, fid: u32) -> Result<Vec<u8>, i32> {
            let body = [u32s(&[fid]), 0u64.to_le_bytes().to_vec(), u32s(&[4096])].concat();
            self.call(op::TREAD, &body).map(|r| r[4..].to_vec())
        }

        fn clunk(&mut self, fid: u32) {
            self.call(op::TCLUNK, &u32s(&[fid])).unwrap();
        }

        fn lcreate(&mut self, fid: u32, name: &str) -> Result<Vec<u8>, i32> {
            let body = [u32s(&[fid]), s(name), u32s(&[libc::O_RDWR as u32, 0o644, 0])].concat();
            self.call(op::TLCREATE, &body)
        }

        fn mkdir(&mut self, dfid: u32, name: &str) -> Result<Vec<u8>, i32> {
            self.call(op::TMKDIR, &[u32s(&[dfid]), s(name), u32s(&[0o755, 0])].concat())
        }

        fn symlink(&mut self, dfid: u32, name: &str, target: &str) -> Result<Vec<u8>, i32> {
            self.call(op::TSYMLINK, &[u32s(&[dfid]), s(name), s(target), u32s(&[0])].concat())
        }

        /// The qid Tgetattr reports for `fid`.
        fn qid(&mut self, fid: u32) -> Vec<u8> {
            let attr = self.call(op::TGETATTR, &[u32s(&[fid]), 0u64.to_le_bytes().to_vec()].concat()).unwrap();
            attr[8..21].to_vec()
        }

        /// Twalk of one name, returning the qid it reached.
        fn walk_qid(&mut self, fid: u32, newfid: u32, name: &str) -> Result<Vec<u8>, i32> {
            let r = self.call(op::TWALK, &[u32s(&[fid, newfid]), 1u16.to_le_bytes().to_vec(), s(name)].concat())?;
            Ok(r[2..].to_vec())
        }

        /// Tsetattr with `valid`, the given uid and size, and mtime `mtime` seconds.
        fn setattr(&mut self, fid: u32, valid: u32, mode: u32, uid: u32, size: u64, mtime: u64) -> Result<Vec<u8>, i32> {
            let mut body = u32s(&[fid, valid, mode, uid, u32::MAX]);
            body.extend(size.to_le_bytes());
            body.extend([0u8; 16]);
            body.extend(mtime.to_le_bytes());
            body.extend(0u64.to_le_bytes());
            self.call(op::TSETATTR, &body)
        }

        fn write(&mut self, fid: u32, data: &[u8]) -> Result<Vec<u8>, i32> {
            let body = [u32s(&[fid]), 0u64.to_le_bytes().to_vec(), u32s(&[data.len() as u32]), data.to_vec()].concat();
            self.call(op::TWRITE, &body)
        }

        fn readdir(&mut self, fid: u32) -> Vec<String> {
            let mut names = Vec::new();
            let mut offset = 0u64;
            loop {
                let body = [u32s(&[fid]), offset.to_le_bytes().to_vec(), u32s(&[100])].concat();
                let r = self.call(op::TREADDIR, &body).unwrap();
                let mut d = &r[4..];
                if d.is_empty() {
                    return names;
                }
                while !d.is_empty() {
                    offset = u64::from_le_bytes(d[13..21].try_into().unwrap());
                    let n = usize::from(u16::from_le_bytes([d[22], d[23]]));
                    names.push(String::from_utf8(d[24..24 + n].to_vec()).unwrap());
                    d = &d[24 + n..];
                }
            }
        }
    }

    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn files_and_directories() {
        files_and_directories_on(Client::new(false));
    }

    /// Without /proc, files are reopened by their checked names: everything still works.
    #[test]
    fn files_and_directories_without_proc() {
        let mut c = Client::new(false);
        c.server.proc = None;
        files_and_directories_on(c);
    }

    fn files_and_directories_on(mut c: Client) {
        assert_eq!(c.walk(ROOT, 1, &["hello"]), Ok(1));
        c.lopen(1, libc::O_RDONLY).unwrap();
        assert_eq!(c.read(1).unwrap(), b"hello world");
        c.clunk(1);

        // Create, write, read back, getattr.
        c.walk(ROOT, 2, &["sub"]).unwrap();
        c.lcreate(2, "new").unwrap();
        let body = [u32s(&[2]), 0u64.to_le_bytes().to_vec(), u32s(&[5]), b"12345".to_vec()].concat();
        assert_eq!(c.call(op::TWRITE, &body).unwrap(), u32s(&[5]));
        c.call(op::TFSYNC, &u32s(&[2, 0])).unwrap();
        assert_eq!(std::fs::read(c.root.join("sub/new")).unwrap(), b"12345");
        let attr = c.call(op::TGETATTR, &[u32s(&[2]), 0x7ffu64.to_le_bytes().to_vec()].concat()).unwrap();
        let size = u64::from_le_bytes(attr[8 + 13 + 12 + 16..8 + 13 + 12 + 24].try_into().unwrap());
        assert_eq!(size, 5);
        c.clunk(2);

        // Truncate through setattr.
        c.walk(ROOT, 3, &["sub", "new"]).unwrap();
        let mut body = u32s(&[3, SETATTR_SIZE, 0, 0, 0]);
        body.extend(2u64.to_le_bytes());
        body.extend([0u8; 32]);
        c.call(op::TSETATTR, &body).unwrap();
        assert_eq!(std::fs::read(c.root.join("sub/new")).unwrap(), b"12");

        // mkdir, renameat, link, unlinkat, readdir.
        c.mkdir(ROOT, "d").unwrap();
        c.walk(ROOT, 4, &["d"]).unwrap();
        c.call(op::TRENAMEAT, &[u32s(&[ROOT]), s("hello"), u32s(&[4]), s("moved")].concat()).unwrap();
        assert!(c.root.join("d/moved").exists());
        c.call(op::TLINK, &[u32s(&[4, 3]), s("hard")].concat()).unwrap();
        assert_eq!(std::fs::read(c.root.join("d/hard")).unwrap(), b"12");
        c.symlink(4, "sym", "moved").unwrap();
        c.walk(4, 5, &["sym"]).unwrap();
        assert_eq!(c.call(op::TREADLINK, &u32s(&[5])).unwrap(), s("moved"));
        c.walk(ROOT, 6, &["d"]).unwrap();
        c.lopen(6, libc::O_RDONLY | libc::O_DIRECTORY).unwrap();
        let mut names = c.readdir(6);
        names.sort();
        assert_eq!(names, [".", "..", "hard", "moved", "sym"]);
        c.call(op::TUNLINKAT, &[u32s(&[4]), s("hard"), u32s(&[0])].concat()).unwrap();
        assert!(!c.root.join("d/hard").exists());
        // Tremove of a fid found by walking.
        c.walk(4, 7, &["moved"]).unwrap();
        c.call(op::TREMOVE, &u32s(&[7])).unwrap();
        assert!(!c.root.join("d/moved").exists());
        c.call(op::TSTATFS, &u32s(&[ROOT])).unwrap();
        // Unknown fids and unknown messages are errors, not crashes.
        assert_eq!(c.lopen(99, 0), Err(libc::EBADF));
        assert_eq!(c.call(op::TXATTRWALK, &[u32s(&[ROOT, 8]), s("trusted.x")].concat()), Err(libc::EOPNOTSUPP));
        assert_eq!(c.call(200, &[]), Err(libc::EOPNOTSUPP));
    }

    #[test]
    fn user_xattrs_round_trip_and_others_are_refused() {
        user_xattrs_on(Client::new(false));
    }

    #[test]
    fn user_xattrs_without_proc() {
        let mut c = Client::new(false);
        c.server.proc = None;
        user_xattrs_on(c);
    }

    fn user_xattrs_on(mut c: Client) {
        // A fid turned into an attribute: value announced, written, set at clunk.
        c.walk(ROOT, 2, &["hello"]).unwrap();
        let create = |name: &str, size: u64| [u32s(&[2]), s(name), size.to_le_bytes().to_vec(), u32s(&[0])].concat();
        if c.call(op::TXATTRCREATE, &create("user.k", 3)) == Err(libc::EOPNOTSUPP) {
            return; // the host file system keeps no user attributes (tmpfs before 6.6)
        }
        let write = [u32s(&[2]), 0u64.to_le_bytes().to_vec(), u32s(&[3]), b"v1!".to_vec()].concat();
        c.call(op::TWRITE, &write).unwrap();
        c.call(op::TCLUNK, &u32s(&[2])).unwrap();
        // Read back through an xattr walk, and in the name list.
        let walk = |name: &str| [u32s(&[ROOT, 3]), s(name)].concat();
        c.walk(ROOT, 4, &["hello"]).unwrap();
        let r = c.call(op::TXATTRWALK, &[u32s(&[4, 5]), s("user.k")].concat()).unwrap();
        assert_eq!(u64::from_le_bytes(r[..8].try_into().unwrap()), 3);
        assert_eq!(c.read(5).unwrap(), b"v1!");
        let r = c.call(op::TXATTRWALK, &[u32s(&[4, 6]), s("")].concat()).unwrap();
        assert!(u64::from_le_bytes(r[..8].try_into().unwrap()) >= 7);
        assert!(c.read(6).unwrap().windows(7).any(|w| w == b"user.k\0"));
        // A value longer than announced, privileged namespaces, a missing name.
        c.walk(ROOT, 7, &["hello"]).unwrap();
        c.call(op::TXATTRCREATE, &[u32s(&[7]), s("user.j"), 1u64.to_le_bytes().to_vec(), u32s(&[0])].concat()).unwrap();
        assert_eq!(c.call(op::TWRITE, &[u32s(&[7]), 0u64.to_le_bytes().to_vec(), u32s(&[2]), b"xy".to_vec()].concat()), Err(libc::EINVAL));
        c.call(op::TCLUNK, &u32s(&[7])).unwrap_err();
        assert_eq!(c.call(op::TXATTRWALK, &walk("security.capability")), Err(libc::EOPNOTSUPP));
        assert_eq!(c.call(op::TXATTRWALK, &walk("trusted.x")), Err(libc::EOPNOTSUPP));
        assert_eq!(c.call(op::TXATTRWALK, &[u32s(&[4, 8]), s("user.none")].concat()), Err(libc::ENODATA));
        // Size 0 removes.
        c.walk(ROOT, 9, &["hello"]).unwrap();
        c.call(op::TXATTRCREATE, &[u32s(&[9]), s("user.k"), 0u64.to_le_bytes().to_vec(), u32s(&[0])].concat()).unwrap();
        c.call(op::TCLUNK, &u32s(&[9])).unwrap();
        assert_eq!(c.call(op::TXATTRWALK, &[u32s(&[4, 10]), s("user.k")].concat()), Err(libc::ENODATA));
    }

    #[test]
    fn lcreate_does_not_open_an_existing_fifo_or_set_setuid() {
        let mut c = Client::new(false);
        let fifo = c.root.join("fifo");
        let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid path; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
        // Over an existing FIFO: refused at once (a blocking open would hang the worker).
        c.walk(ROOT, 1, &[]).unwrap();
        assert_eq!(c.lcreate(1, "fifo"), Err(libc::EOPNOTSUPP));
        // setuid and setgid bits asked by the guest are dropped.
        c.walk(ROOT, 2, &[]).unwrap();
        let body = [u32s(&[2]), s("suid"), u32s(&[libc::O_RDWR as u32, 0o6755, 0])].concat();
        c.call(op::TLCREATE, &body).unwrap();
        let mode = std::fs::metadata(c.root.join("suid")).unwrap().permissions().mode();
        assert_eq!(mode & 0o6000, 0, "mode {mode:o}");
    }

    #[test]
    fn dotdot_stays_inside() {
        let mut c = Client::new(false);
        // ".." from the root is the root (same qid as getattr on the root).
        let up = c.call(op::TWALK, &[u32s(&[ROOT, 2]), 1u16.to_le_bytes().to_vec(), s("..")].concat()).unwrap();
        let attr = c.call(op::TGETATTR, &[u32s(&[ROOT]), 0u64.to_le_bytes().to_vec()].concat()).unwrap();
        assert_eq!(up[2..], attr[8..21]);
        // The host files beside the share cannot be reached by any number of "..": the
        // walk stops at the root (fewer qids than names, and no new fid).
        assert_eq!(c.walk(ROOT, 4, &["..", "secret"]), Ok(1));
        assert_eq!(c.walk(ROOT, 4, &["..", "..", "..", "outside", "file"]), Ok(3));
        assert_eq!(c.walk(ROOT, 4, &["sub", "..", "..", "secret"]), Ok(3));
        assert_eq!(c.lopen(4, 0), Err(libc::EBADF), "a partial walk creates no fid");
        assert_eq!(c.walk(ROOT, 4, &["secret"]), Err(libc::ENOENT));
        // Names with slashes are refused outright.
        assert_eq!(c.walk(ROOT, 4, &["../secret"]), Err(libc::EINVAL));
        assert_eq!(c.walk(ROOT, 4, &["sub/../../secret"]), Err(libc::EINVAL));
        assert_eq!(c.walk(ROOT, 4, &["/etc"]), Err(libc::EINVAL));
        assert_eq!(c.walk(ROOT, 4, &["a\0b"]), Err(libc::EINVAL));
    }

    #[test]
    fn symlinks_are_not_followed_out() {
        let mut c = Client::new(false);
        let secret = c.root.parent().unwrap().join("secret");
        std::os::unix::fs::symlink(&secret, c.root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../secret", c.root.join("rel")).unwrap();
        std::os::unix::fs::symlink(&c.outside, c.root.join("dir")).unwrap();
        std::os::unix::fs::symlink(c.outside.join("created"), c.root.join("dangling")).unwrap();
        for link in ["abs", "rel"] {
            // The link itself can be found and read as a link...
            assert_eq!(c.walk(ROOT, 1, &[link]), Ok(1));
            assert!(c.call(op::TREADLINK, &u32s(&[1])).is_ok());
            // ...but never opened, read or truncated through.
            assert_eq!(c.lopen(1, libc::O_RDONLY), Err(libc::ELOOP));
            assert_eq!(c.read(1), Err(libc::EBADF));
            let mut body = u32s(&[1, SETATTR_SIZE, 0, 0, 0]);
            body.extend([0u8; 40]);
            assert!(c.call(op::TSETATTR, &body).is_err());
            c.clunk(1);
        }
        assert_eq!(std::fs::read(&secret).unwrap(), b"host secret");
        // A walk through a link to an outside directory fails.
        assert_eq!(c.walk(ROOT, 2, &["dir", "file"]), Ok(1));
        assert_eq!(c.walk(ROOT, 2, &["abs", "x"]), Ok(1));
        c.walk(ROOT, 2, &["dir"]).unwrap();
        assert_eq!(c.lcreate(2, "x"), Err(libc::ENOTDIR));
        assert_eq!(c.mkdir(2, "x"), Err(libc::ENOTDIR));
        assert!(c.lopen(2, libc::O_RDONLY | libc::O_DIRECTORY).is_err());
        // Creating over a dangling link does not create its target outside.
        let e = c.lcreate(ROOT, "dangling").unwrap_err();
        assert!(e == libc::ELOOP || e == libc::EEXIST, "errno {e}");
        assert!(!c.outside.join("created").exists());
        // A hard link of a link to a secret is only another link, not the secret's data.
        c.walk(ROOT, 3, &["abs"]).unwrap();
        c.call(op::TLINK, &[u32s(&[ROOT, 3]), s("hard")].concat()).unwrap();
        assert!(std::fs::symlink_metadata(c.root.join("hard")).unwrap().file_type().is_symlink());
        c.walk(ROOT, 4, &["hard"]).unwrap();
        assert_eq!(c.lopen(4, libc::O_RDONLY), Err(libc::ELOOP));
        // Names that would leave the directory are refused by every creating call.
        for name in ["..", ".", "../evil", "a/b", ""] {
            assert_eq!(c.lcreate(ROOT, name), Err(libc::EINVAL), "lcreate {name:?}");
            assert_eq!(c.mkdir(ROOT, name), Err(libc::EINVAL), "mkdir {name:?}");
            assert_eq!(c.symlink(ROOT, name, "x"), Err(libc::EINVAL), "symlink {name:?}");
            assert_eq!(c.call(op::TLINK, &[u32s(&[ROOT, 3]), s(name)].concat()), Err(libc::EINVAL));
            let rn = [u32s(&[ROOT]), s("sub"), u32s(&[ROOT]), s(name)].concat();
            assert_eq!(c.call(op::TRENAMEAT, &rn), Err(libc::EINVAL), "renameat to {name:?}");
            let rn = [u32s(&[ROOT]), s(name), u32s(&[ROOT]), s("x")].concat();
            assert_eq!(c.call(op::TRENAMEAT, &rn), Err(libc::EINVAL), "renameat from {name:?}");
            assert_eq!(c.call(op::TUNLINKAT, &[u32s(&[ROOT]), s(name), u32s(&[0])].concat()), Err(libc::EINVAL));
        }
        assert!(c.root.parent().unwrap().join("secret").exists());
        assert!(c.outside.join("file").exists());
    }

    #[test]
    fn read_only_refuses_changes() {
        let mut c = Client::new(true);
        c.walk(ROOT, 1, &["hello"]).unwrap();
        assert_eq!(c.lopen(1, libc::O_RDWR), Err(libc::EROFS));
        assert_eq!(c.lopen(1, libc::O_RDONLY | libc::O_TRUNC), Err(libc::EROFS));
        c.lopen(1, libc::O_RDONLY).unwrap();
        assert_eq!(c.read(1).unwrap(), b"hello world");
        let body = [u32s(&[1]), 0u64.to_le_bytes().to_vec(), u32s(&[1]), b"x".to_vec()].concat();
        assert_eq!(c.call(op::TWRITE, &body), Err(libc::EROFS));
        assert_eq!(c.lcreate(ROOT, "new"), Err(libc::EROFS));
        assert_eq!(c.mkdir(ROOT, "new"), Err(libc::EROFS));
        assert_eq!(c.symlink(ROOT, "new", "x"), Err(libc::EROFS));
        assert_eq!(c.call(op::TUNLINKAT, &[u32s(&[ROOT]), s("hello"), u32s(&[0])].concat()), Err(libc::EROFS));
        let rn = [u32s(&[ROOT]), s("hello"), u32s(&[ROOT]), s("x")].concat();
        assert_eq!(c.call(op::TRENAMEAT, &rn), Err(libc::EROFS));
        let mut body = u32s(&[1, SETATTR_MODE, 0o777, 0, 0]);
        body.extend([0u8; 40]);
        assert_eq!(c.call(op::TSETATTR, &body), Err(libc::EROFS));
        c.walk(ROOT, 2, &["hello"]).unwrap();
        assert_eq!(c.call(op::TREMOVE, &u32s(&[2])), Err(libc::EROFS));
        assert_eq!(std::fs::read(c.root.join("hello")).unwrap(), b"hello world");
    }

    #[test]
    fn replies_fit_the_buffer() {
        let mut c = Client::new(false);
        std::fs::write(c.root.join("big"), vec![1u8; 10000]).unwrap();
        c.walk(ROOT, 1, &["big"]).unwrap();
        c.lopen(1, 0).unwrap();
        let body = [u32s(&[1]), 0u64.to_le_bytes().to_vec(), u32s(&[10000])].concat();
        let reply = c.server.handle(&tmsg(op::TREAD, 9, &body), 1000);
        assert_eq!(reply.len(), 1000);
        assert_eq!(u32::from_le_bytes(reply[7..11].try_into().unwrap()), 1000 - 11);
        // A malformed message gets an error with its tag, or NOTAG without a header.
        let reply = c.server.handle(&tmsg(op::TREAD, 9, &[1, 2]), 1000);
        assert_eq!((reply[4], u16::from_le_bytes([reply[5], reply[6]])), (op::RLERROR, 9));
        let reply = c.server.handle(&[1, 2, 3], 1000);
        assert_eq!((reply[4], u16::from_le_bytes([reply[5], reply[6]])), (op::RLERROR, NOTAG));
    }

    /// Shares A = `root` and B = `root/y` overlap (the VMM now refuses that, but the host
    /// can move directories just the same): a fid of B moved through A, out of B, must
    /// still find B's root by `..`, never the host's parent of where it is now.
    #[test]
    fn dotdot_follows_the_walk_not_the_host() {
        let mut a = Client::new(false);
        std::fs::create_dir_all(a.root.join("y/sub")).unwrap();
        let broot = a.root.join("y");
        let mut b = Client::start(Server::new(&broot, false).unwrap(), None, a.outside.clone(), broot);
        let root_qid = b.qid(ROOT);
        b.walk(ROOT, 1, &["sub"]).unwrap();
        a.walk(ROOT, 1, &["y"]).unwrap();
        a.call(op::TRENAMEAT, &[u32s(&[1]), s("sub"), u32s(&[ROOT]), s("sub")].concat()).unwrap();
        // root/sub now: its host parent is A's root, then <tmp> with the secret.
        assert_eq!(b.walk_qid(1, 2, ".."), Ok(root_qid.clone()));
        assert_eq!(b.walk(1, 3, &["..", "..", "secret"]), Ok(2));
        assert_eq!(b.walk(1, 3, &["..", "..", "..", "hello"]), Ok(3), "B's root has no hello");
        assert_eq!(b.lopen(3, 0), Err(libc::EBADF));

        // The host moves a directory out from under a fid: `..` climbs back the way it came.
        let mut c = Client::new(false);
        std::fs::create_dir_all(c.root.join("sub/deep")).unwrap();
        c.walk(ROOT, 1, &["sub", "deep"]).unwrap();
        let root_qid = c.qid(ROOT);
        std::fs::rename(c.root.join("sub"), c.outside.join("sub")).unwrap();
        assert_eq!(c.walk(1, 2, &["..", "..", "file"]), Ok(2), "outside/file must not be found");
        c.walk(1, 2, &["..", ".."]).unwrap();
        assert_eq!(c.qid(2), root_qid);
        assert_eq!(c.walk_qid(2, 3, ".."), Ok(root_qid));
    }

    /// The root is the descriptor opened when the device was made: swapping the directory
    /// for a symlink to elsewhere before a reset changes nothing.
    #[test]
    fn share_root_is_opened_once() {
        let c = Client::new(false);
        let device = crate::devices::virtio::p9::P9Device::new(&c.root, "t", false).unwrap();
        let kept = c.root.with_file_name("kept");
        std::fs::rename(&c.root, &kept).unwrap();
        std::os::unix::fs::symlink(&c.outside, &c.root).unwrap();
        let mut after = Client::start(device.server(), None, c.outside.clone(), c.root.clone());
        assert_eq!(after.walk(ROOT, 1, &["hello"]), Ok(1));
        assert_eq!(after.walk(ROOT, 2, &["file"]), Err(libc::ENOENT));
        after.lcreate(ROOT, "made").unwrap();
        assert!(kept.join("made").exists() && !c.outside.join("made").exists());
    }

    #[test]
    fn fids_are_capped() {
        let mut c = Client::new(false);
        // Clones (walks of no names) hold no host descriptor, only memory: capped too.
        for fid in 1..MAX_FIDS as u32 {
            c.walk(ROOT, fid, &[]).unwrap();
        }
        let next = MAX_FIDS as u32;
        assert_eq!(c.walk(ROOT, next, &[]), Err(libc::EMFILE));
        assert_eq!(c.walk(ROOT, next, &["hello"]), Err(libc::EMFILE));
        assert_eq!(c.call(op::TXATTRWALK, &[u32s(&[ROOT, next]), s("")].concat()), Err(libc::EMFILE));
        let attach = [u32s(&[next, u32::MAX]), s("root"), s(""), u32s(&[0])].concat();
        assert_eq!(c.call(op::TATTACH, &attach), Err(libc::EMFILE));
        // A walk onto itself or onto an existing fid makes none; a clunk frees one.
        assert_eq!(c.walk(5, 5, &["sub"]), Ok(1));
        c.clunk(7);
        assert_eq!(c.walk(ROOT, next, &["hello"]), Ok(1));
        assert_eq!(c.walk(ROOT, next + 1, &[]), Err(libc::EMFILE));
    }

    /// A fid's chain of directories can be very deep; dropping it must not recurse.
    #[test]
    fn deep_chains_drop_without_recursion() {
        let fd = open_root(&std::env::temp_dir()).unwrap();
        let mut node = Node { fd: Arc::clone(&fd), up: None };
        for _ in 0..1_000_000 {
            node = Node { fd: Arc::clone(&fd), up: Some(Arc::new(Link { dir: node, name: c"d".to_owned() })) };
        }
        let copy = node.clone();
        drop(node);
        drop(copy);
        assert_eq!(Arc::strong_count(&fd), 1);
    }

    /// Calls on a fid's (parent, name) act only while the name is still that fid's file.
    #[test]
    fn names_are_rechecked_before_acting() {
        for proc in [true, false] {
            let mut c = Client::new(false);
            if !proc {
                c.server.proc = None;
            }
            let root = c.root.clone();
            // Rename: the host moved the file away and put another in its place.
            c.walk(ROOT, 1, &["hello"]).unwrap();
            std::fs::rename(root.join("hello"), root.join("was-hello")).unwrap();
            std::fs::write(root.join("hello"), b"impostor").unwrap();
            let rename = [u32s(&[1, ROOT]), s("renamed")].concat();
            assert_eq!(c.call(op::TRENAME, &rename), Err(libc::ESTALE));
            assert_eq!(std::fs::read(root.join("hello")).unwrap(), b"impostor");
            assert!(!root.join("renamed").exists());
            std::fs::remove_file(root.join("hello")).unwrap();
            assert_eq!(c.call(op::TRENAME, &rename), Err(libc::ENOENT));
            // Link and times of a symlink, which only its name reaches.
            std::os::unix::fs::symlink("a", root.join("l")).unwrap();
            c.walk(ROOT, 2, &["l"]).unwrap();
            std::fs::remove_file(root.join("l")).unwrap();
            std::os::unix::fs::symlink("b", root.join("l")).unwrap();
            assert_eq!(c.call(op::TLINK, &[u32s(&[ROOT, 2]), s("hard")].concat()), Err(libc::ESTALE));
            assert!(!root.join("hard").exists());
            std::fs::remove_file(root.join("l")).unwrap();
            std::fs::write(root.join("l"), b"a file now").unwrap();
            assert_eq!(c.setattr(2, SETATTR_MTIME | SETATTR_MTIME_SET, 0, 0, 0, 12345), Err(libc::ESTALE));
            let mtime = std::fs::metadata(root.join("l")).unwrap().modified().unwrap();
            assert_ne!(mtime, std::time::UNIX_EPOCH + std::time::Duration::from_secs(12345));
            // A regular file: through /proc it is reached by its descriptor (still the
            // moved file); without, by its checked name (now another file: ESTALE).
            c.walk(ROOT, 3, &["sub"]).unwrap();
            c.lcreate(3, "f").unwrap();
            c.walk(ROOT, 4, &["sub", "f"]).unwrap();
            std::fs::rename(root.join("sub/f"), root.join("f-moved")).unwrap();
            std::fs::write(root.join("sub/f"), b"impostor").unwrap();
            let r = c.setattr(4, SETATTR_MTIME | SETATTR_MTIME_SET, 0, 0, 0, 12345);
            assert_eq!(r.map_err(|e| e == libc::ESTALE), if proc { Ok(Vec::new()) } else { Err(true) });
            let moved = std::fs::metadata(root.join("f-moved")).unwrap().modified().unwrap();
            assert_eq!(moved == std::time::UNIX_EPOCH + std::time::Duration::from_secs(12345), proc);
            assert_eq!(c.lopen(4, libc::O_RDWR | libc::O_TRUNC).map(drop), if proc { Ok(()) } else { Err(libc::ESTALE) });
            assert_eq!(std::fs::read(root.join("sub/f")).unwrap(), b"impostor", "never truncated");
        }
    }

    /// A privileged VMM (root) would keep setuid/setgid bits on write and pass any owner
    /// on: the server drops the bits as Linux does for other writers and makes no
    /// ownership change. (Unprivileged, the host kernel does the same.)
    #[test]
    fn writes_drop_setuid_and_chown_is_not_passed_on_when_privileged() {
        let mut c = Client::new(false);
        let mode_of = |c: &Client, name: &str| std::fs::metadata(c.root.join(name)).unwrap().permissions().mode() & 0o7777;
        for (name, mode) in [("w", 0o6755), ("t", 0o4755), ("o", 0o6755), ("g", 0o2644), ("r", 0o4755)] {
            std::fs::write(c.root.join(name), b"data").unwrap();
            std::fs::set_permissions(c.root.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        c.walk(ROOT, 1, &["w"]).unwrap();
        c.lopen(1, libc::O_RDWR).unwrap();
        c.write(1, b"x").unwrap();
        assert_eq!(mode_of(&c, "w"), 0o755);
        c.walk(ROOT, 2, &["t"]).unwrap();
        c.setattr(2, SETATTR_SIZE, 0, 0, 1, 0).unwrap();
        assert_eq!(mode_of(&c, "t"), 0o755);
        c.walk(ROOT, 3, &["o"]).unwrap();
        c.lopen(3, libc::O_WRONLY | libc::O_TRUNC).unwrap();
        assert_eq!(mode_of(&c, "o"), 0o755);
        // setgid without group-exec is kept (it is not a set-group-ID program), as in Linux.
        c.walk(ROOT, 4, &["g"]).unwrap();
        c.lopen(4, libc::O_WRONLY).unwrap();
        c.write(4, b"x").unwrap();
        assert_eq!(mode_of(&c, "g"), 0o2644);
        // Reading changes nothing.
        c.walk(ROOT, 5, &["r"]).unwrap();
        c.lopen(5, libc::O_RDONLY).unwrap();
        assert_eq!(c.write(5, b"x"), Err(libc::EBADF));
        assert_eq!(mode_of(&c, "r"), 0o4755);
        // Ownership: the guest's uid is not applied by a privileged VMM (nor, refused by
        // the host, by an unprivileged one); the call succeeds either way.
        let uid = std::fs::metadata(c.root.join("w")).unwrap().uid();
        assert_eq!(c.setattr(1, SETATTR_UID, 0, 4242, 0, 0).map(drop), Ok(()));
        assert_eq!(std::fs::metadata(c.root.join("w")).unwrap().uid(), uid);
        // Without CAP_CHOWN the host decides: as root (told it lacks it) that is a yes.
        c.server.chowns_anything = false;
        c.setattr(1, SETATTR_UID, 0, 4242, 0, 0).unwrap();
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(std::fs::metadata(c.root.join("w")).unwrap().uid(), 4242);
        }
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            /// Any sequence of arbitrary messages to a live server never panics, every
            /// reply is a well-formed message within the buffer, and nothing outside the
            /// share changes.
            #[test]
            fn arbitrary_messages(msgs in proptest::collection::vec(
                    (proptest::sample::select(vec![
                        op::TWALK, op::TLOPEN, op::TLCREATE, op::TREAD, op::TWRITE, op::TCLUNK,
                        op::TMKDIR, op::TSYMLINK, op::TLINK, op::TRENAMEAT, op::TUNLINKAT,
                        op::TREADDIR, op::TGETATTR, op::TSETATTR, op::TREMOVE, op::TRENAME]),
                     proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(b'.'), Just(b'/'), any::<u8>()], 0..40)),
                    1..12),
                    room in 11usize..300) {
                let mut c = Client::new(false);
                c.walk(ROOT, 1, &["sub"]).unwrap();
                for (ty, body) in msgs {
                    let reply = c.server.handle(&tmsg(ty, 3, &body), room);
                    prop_assert!(reply.len() <= room && reply.len() >= HEADER);
                    prop_assert_eq!(u32::from_le_bytes(reply[..4].try_into().unwrap()) as usize, reply.len());
                }
                let parent = c.root.parent().unwrap();
                let mut outside: Vec<_> = std::fs::read_dir(parent).unwrap().map(|e| e.unwrap().file_name()).collect();
                outside.sort();
                prop_assert_eq!(outside, ["outside", "root", "secret"]);
                prop_assert_eq!(std::fs::read_dir(&c.outside).unwrap().count(), 1);
            }
        }
    }
}
