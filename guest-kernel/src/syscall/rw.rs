//! More ways to read and write: preadv, pwritev, preadv2 and pwritev2 (with RWF_*
//! flags), sendfile, copy_file_range, and the advice calls fadvise64 and readahead
//! (which act on the page cache of files that have one, and elsewhere check their
//! arguments and succeed, as Linux's advice amounts to on tmpfs).

use alloc::sync::Arc;

use super::fs::{file, read_file, read_iovecs, write_file, MAX_RW};
use super::Ctx;
use crate::errno::*;
use crate::fs::file::{O_APPEND, O_DIRECT};
use crate::fs::{FileType, IoBuf, OpenFile};
use crate::task;

const RWF_HIPRI: u64 = 0x1;
const RWF_DSYNC: u64 = 0x2;
const RWF_SYNC: u64 = 0x4;
const RWF_NOWAIT: u64 = 0x8;
const RWF_APPEND: u64 = 0x10;
const RWF_NOAPPEND: u64 = 0x20;
const RWF_ATOMIC: u64 = 0x40;
const RWF_DONTCACHE: u64 = 0x80;
const RWF_SUPPORTED: u64 = RWF_HIPRI | RWF_DSYNC | RWF_SYNC | RWF_NOWAIT | RWF_APPEND | RWF_NOAPPEND | RWF_ATOMIC | RWF_DONTCACHE;

/// How one vectored transfer goes (from RWF_* flags and the file's own).
struct Mode {
    write: bool,
    /// The file offset, or None for the file position (advanced).
    at: Option<u64>,
    /// A read or write that would block answers EAGAIN (RWF_NOWAIT).
    nowait: bool,
    /// A write goes to the end of the file (O_APPEND unless RWF_NOAPPEND, or RWF_APPEND).
    append: bool,
    /// A write is flushed before the call returns (RWF_DSYNC, RWF_SYNC).
    sync: bool,
}

/// Linux's kiocb_set_rw_flags: unknown flags and what the file cannot do are
/// EOPNOTSUPP. RWF_HIPRI asks for polled completion, which a synchronous call on these
/// files does not have: as on Linux it changes nothing. RWF_ATOMIC needs a device that
/// writes atomically, and RWF_DONTCACHE a file system that drops the pages after the
/// I/O (Linux's FOP_DONTCACHE): none here does. RWF_NOWAIT needs a file that can answer
/// without sleeping, or a page cache to answer from.
fn mode(f: &OpenFile, write: bool, at: Option<u64>, flags: u64) -> KResult<Mode> {
    if flags & !RWF_SUPPORTED != 0 {
        return Err(EOPNOTSUPP);
    }
    if flags & RWF_APPEND != 0 && flags & RWF_NOAPPEND != 0 {
        return Err(EINVAL);
    }
    if flags & RWF_NOWAIT != 0 && !f.node.nowait() && f.node.page_cache().is_none() {
        return Err(EOPNOTSUPP);
    }
    if flags & (RWF_ATOMIC | RWF_DONTCACHE) != 0 {
        return Err(EOPNOTSUPP);
    }
    let append = write && f.node.seekable() && (flags & RWF_APPEND != 0 || (f.flags() & O_APPEND != 0 && flags & RWF_NOAPPEND == 0));
    Ok(Mode { write, at, nowait: flags & RWF_NOWAIT != 0, append, sync: write && flags & (RWF_DSYNC | RWF_SYNC) != 0 })
}

/// One vectored transfer: each iovec in turn until a short one; errors count only when
/// nothing was transferred.
fn transfer(f: &OpenFile, iov: u64, count: u64, m: &Mode) -> KResult<u64> {
    if (m.write && !f.writable()) || (!m.write && !f.readable()) {
        return Err(EBADF);
    }
    let iovs = read_iovecs(iov, count)?;
    // Where the transfer starts: the offset given, the end for an append, else the file
    // position (which a plain read moves itself, through read_file).
    let direct = m.write || m.nowait;
    let base = match m.at {
        _ if m.append => Some(f.node.stat().size),
        Some(at) => Some(at),
        None if direct && f.node.seekable() => Some(*f.offset.lock()),
        None => None,
    };
    let mut total = 0usize;
    for &(addr, len) in &iovs {
        let len = len.min(MAX_RW - total);
        if len == 0 {
            continue;
        }
        let at = base.map(|p| p + total as u64);
        let done = if !direct {
            read_file(f, &mut IoBuf::User { addr, len }, at)
        } else if m.nowait && !f.node.nowait() {
            nowait_cached(f, m.write, at.unwrap_or(0), &mut IoBuf::User { addr, len })
        } else if m.write {
            f.write_node(at.unwrap_or(0), &IoBuf::User { addr, len }, m.nowait || f.nonblock())
        } else {
            f.read_node(at.unwrap_or(0), &mut IoBuf::User { addr, len }, true)
        };
        match done {
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
    // A transfer at the file position moves it, as read and write do.
    if direct && m.at.is_none() && f.node.seekable() {
        *f.offset.lock() = base.unwrap_or(0) + total as u64;
    }
    if m.sync && total > 0 {
        f.node.sync()?;
    }
    Ok(total as u64)
}

/// RWF_NOWAIT on a file with a page cache (Linux's IOCB_NOWAIT): a read copies what is
/// cached and starts reading the page it stopped at (EAGAIN when nothing was cached); a
/// write goes into a write-back cache if it can without sleeping; O_DIRECT would wait
/// for the device: EAGAIN.
fn nowait_cached(f: &OpenFile, write: bool, at: u64, buf: &mut IoBuf) -> KResult<usize> {
    let Some((cache, io)) = f.node.page_cache() else { return Err(EAGAIN) };
    if f.flags() & O_DIRECT != 0 {
        return Err(EAGAIN);
    }
    if write {
        return io.write_nowait(at, buf).unwrap_or(Err(EAGAIN));
    }
    let size = io.size()?;
    match cache.read_cached(at, buf, size)? {
        (0, Some(index)) => {
            cache.start_read(io, index, size);
            Err(EAGAIN)
        }
        (n, _) => Ok(n),
    }
}

/// A positioned transfer's offset: not on a pipe (ESPIPE), not negative (EINVAL).
fn offset(f: &OpenFile, off: u64) -> KResult<u64> {
    if !f.node.seekable() {
        return Err(ESPIPE);
    }
    if (off as i64) < 0 {
        return Err(EINVAL);
    }
    Ok(off)
}

/// preadv/pwritev (as pread/pwrite, an O_APPEND file is written at its end on Linux).
fn rw(c: &Ctx, write: bool) -> KResult<u64> {
    let f = file(c.int(0))?;
    let m = mode(&f, write, Some(offset(&f, c.a[3])?), 0)?;
    transfer(&f, c.a[1], c.a[2], &m)
}

pub fn preadv(c: &mut Ctx) -> KResult<u64> {
    rw(c, false)
}

pub fn pwritev(c: &mut Ctx) -> KResult<u64> {
    rw(c, true)
}

/// preadv2/pwritev2: offset -1 is the file position (as readv/writev).
fn rw2(c: &Ctx, write: bool) -> KResult<u64> {
    let f = file(c.int(0))?;
    let at = if c.a[3] as i64 == -1 { None } else { Some(offset(&f, c.a[3])?) };
    let m = mode(&f, write, at, c.a[5])?;
    transfer(&f, c.a[1], c.a[2], &m)
}

pub fn preadv2(c: &mut Ctx) -> KResult<u64> {
    rw2(c, false)
}

pub fn pwritev2(c: &mut Ctx) -> KResult<u64> {
    rw2(c, true)
}

/// Copies up to `len` bytes from `fin` (at `off_in`, or its position) to `fout` (at
/// `off_out`, or its position) through a kernel buffer; stops at a short read or
/// write. Errors count only when nothing was copied.
fn copy(fin: &OpenFile, off_in: Option<u64>, fout: &OpenFile, off_out: Option<u64>, len: usize) -> KResult<usize> {
    const CHUNK: usize = 64 * 1024;
    let mut buf = alloc::vec![0u8; len.min(CHUNK)];
    let mut total = 0;
    while total < len {
        let want = (len - total).min(CHUNK);
        let step = read_file(fin, &mut IoBuf::Kernel(&mut buf[..want]), off_in.map(|o| o + total as u64)).and_then(|n| {
            if n == 0 {
                return Ok((0, 0));
            }
            write_file(fout, &IoBuf::Kernel(&mut buf[..n]), off_out.map(|o| o + total as u64)).map(|w| (n, w))
        });
        match step {
            Ok((0, _)) => break,
            Ok((n, w)) => {
                total += w;
                if w < n || n < want {
                    break;
                }
            }
            Err(e) if total == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(total)
}

/// An offset argument passed by pointer (0: none).
fn user_offset(addr: u64) -> KResult<Option<u64>> {
    if addr == 0 {
        return Ok(None);
    }
    let off: u64 = task::read_user(addr)?;
    if (off as i64) < 0 {
        return Err(EINVAL);
    }
    Ok(Some(off))
}

/// sendfile(out_fd, in_fd, offset, count): from a file that is read at `*offset` (then
/// advanced; the file position stays) or at its position, to any writable file.
pub fn sendfile(c: &mut Ctx) -> KResult<u64> {
    let (fout, fin) = (file(c.int(0))?, file(c.int(1))?);
    if !fin.readable() || !fout.writable() {
        return Err(EBADF);
    }
    if fout.flags() & O_APPEND != 0 {
        return Err(EINVAL);
    }
    let off = user_offset(c.a[2])?;
    if off.is_some() && !fin.node.seekable() {
        return Err(ESPIPE);
    }
    let n = copy(&fin, off, &fout, None, (c.a[3] as usize).min(MAX_RW))?;
    if let Some(o) = off {
        task::write_user(c.a[2], &(o + n as u64))?;
    }
    Ok(n as u64)
}

/// Linux's generic_file_rw_checks for copy_file_range: regular files (a directory is
/// EISDIR, anything else EINVAL), readable and writable without O_APPEND (EBADF).
fn regular(f: &OpenFile) -> KResult<()> {
    match f.node.file_type() {
        FileType::Directory => Err(EISDIR),
        FileType::Regular if f.node.seekable() => Ok(()),
        _ => Err(EINVAL),
    }
}

pub fn copy_file_range(c: &mut Ctx) -> KResult<u64> {
    if c.a[5] != 0 {
        return Err(EINVAL);
    }
    let (fin, fout) = (file(c.int(0))?, file(c.int(2))?);
    regular(&fin)?;
    regular(&fout)?;
    if !fin.readable() || !fout.writable() || fout.flags() & O_APPEND != 0 {
        return Err(EBADF);
    }
    let (off_in, off_out) = (user_offset(c.a[1])?, user_offset(c.a[3])?);
    // What there is to copy: nothing from the end of the input on.
    let pos_in = off_in.unwrap_or_else(|| *fin.offset.lock());
    let size = fin.node.stat().size;
    let len = if pos_in >= size { 0 } else { (c.a[4] as usize).min(MAX_RW).min((size - pos_in) as usize) };
    // Within one file the ranges must not overlap.
    if Arc::ptr_eq(&fin.node, &fout.node) {
        let pos_out = off_out.unwrap_or_else(|| *fout.offset.lock());
        if pos_out + (len as u64) > pos_in && pos_out < pos_in + len as u64 {
            return Err(EINVAL);
        }
    }
    if len == 0 {
        return Ok(0);
    }
    let n = copy(&fin, off_in, &fout, off_out, len)?;
    super::fs::advance_offsets([(c.a[1], off_in), (c.a[3], off_out)], n)
}

/// fadvise64(fd, offset, len, advice): advice 0..=5 (EINVAL otherwise), not on a pipe
/// (ESPIPE), len not negative.
pub fn fadvise64(c: &mut Ctx) -> KResult<u64> {
    let f = file(c.int(0))?;
    if f.node.file_type() == FileType::Fifo {
        return Err(ESPIPE);
    }
    if (c.a[2] as i64) < 0 || c.int(3) as u32 > 5 {
        return Err(EINVAL);
    }
    f.node.advise(c.a[1], c.a[2], c.int(3) as u32).map(|()| 0)
}

/// readahead(fd, offset, count): a readable regular file (EBADF, EINVAL).
pub fn readahead(c: &mut Ctx) -> KResult<u64> {
    let f = file(c.int(0))?;
    if !f.readable() {
        return Err(EBADF);
    }
    if f.node.file_type() != FileType::Regular || !f.node.seekable() {
        return Err(EINVAL);
    }
    const POSIX_FADV_WILLNEED: u32 = 3;
    f.node.advise(c.a[1], c.a[2], POSIX_FADV_WILLNEED).map(|()| 0)
}
