//! Reads and writes: IORING_OP_READ, WRITE, READV, WRITEV, READ_FIXED, WRITE_FIXED.
//!
//! `off` is the file offset, or -1 for the file's current position (FEAT_RW_CUR_POS,
//! which advances it, as read(2) does). Buffers are in the submitter's address space; the
//! iovec array of READV/WRITEV is copied at prep (FEAT_SUBMIT_STABLE). Issue, in order:
//! 1. a disk or 9p transfer that fits the device goes to it and completes from its
//!    interrupt (disk: zero copy from the user's pinned pages);
//! 2. a file that can answer without sleeping (memory, pipes, eventfds) is tried with
//!    nonblocking semantics; if a pipe or eventfd would block, an internal poll is armed
//!    and the request is retried when it is ready (even for an O_NONBLOCK file, as Linux);
//! 3. anything else is punted to io-wq, where it may sleep.
//!
//! RWF_NOWAIT turns every "would block" into -EAGAIN. O_APPEND and RWF_APPEND write at
//! the end of the file; RWF_DSYNC, RWF_SYNC, O_DSYNC and O_SYNC flush after writing.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::uapi::*;
use super::kbuf::Buf;
use super::rsrc::FixedBuf;
use super::{io_wq, poll, IoUring, Issued, Op, Request};
use crate::drivers::virtio::blk::{BlockNode, T_IN, T_OUT};
use crate::errno::*;
use crate::fs::file::{O_APPEND, O_DIRECT, O_DSYNC};
use crate::fs::p9::P9Node;
use crate::fs::IoBuf;
use crate::mm::uaccess::{pin_user_segments, unpin_segments};
use crate::sync::SpinLock;
use crate::syscall;

pub const IORING_OP_READV: u8 = 1;
pub const IORING_OP_WRITEV: u8 = 2;
pub const IORING_OP_READ_FIXED: u8 = 4;
pub const IORING_OP_WRITE_FIXED: u8 = 5;
pub const IORING_OP_READ: u8 = 22;
pub const IORING_OP_WRITE: u8 = 23;
pub const IORING_OP_READ_MULTISHOT: u8 = 49;
pub const IORING_OP_READV_FIXED: u8 = 60;
pub const IORING_OP_WRITEV_FIXED: u8 = 61;

const RWF_HIPRI: u32 = 0x1;
const RWF_DSYNC: u32 = 0x2;
const RWF_SYNC: u32 = 0x4;
const RWF_NOWAIT: u32 = 0x8;
const RWF_APPEND: u32 = 0x10;
/// RWF_HIPRI asks for polled completion, which only IOPOLL rings do: elsewhere it is
/// -EINVAL at issue, as Linux's io_rw_init_file answers.
const RWF_SUPPORTED: u32 = RWF_HIPRI | RWF_DSYNC | RWF_SYNC | RWF_NOWAIT | RWF_APPEND;

pub struct Rw {
    write: bool,
    /// Offset, or None for the file position.
    offset: Option<u64>,
    iovecs: Vec<(u64, usize)>,
    /// RWF_* flags.
    rwf: u32,
    /// READ_FIXED/WRITE_FIXED: the registered buffer (its pinned frames are the memory
    /// transferred, and stay pinned while the request holds it).
    fixed: Option<Arc<FixedBuf>>,
    /// IOSQE_BUFFER_SELECT: the group to take a buffer from, the most to read (0: the
    /// buffer's size), and the buffer taken while the read is under way.
    select: Option<(u16, u32, Option<Buf>)>,
    /// The buffer taken is part-used and stays at its ring's head (IORING_CQE_F_BUF_MORE).
    buf_more: bool,
}

/// Whether `opcode` may take a provided buffer (IOSQE_BUFFER_SELECT).
pub fn selects_buffer(opcode: u8) -> bool {
    matches!(opcode, IORING_OP_READ | IORING_OP_READV | IORING_OP_READ_MULTISHOT | super::net::IORING_OP_SEND | super::net::IORING_OP_RECV | super::net::IORING_OP_RECVMSG)
}

pub fn prep(ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    if sqe.op_flags & !RWF_SUPPORTED != 0 {
        return Err(EOPNOTSUPP);
    }
    let write = matches!(sqe.opcode, IORING_OP_WRITEV | IORING_OP_WRITE_FIXED | IORING_OP_WRITE | IORING_OP_WRITEV_FIXED);
    let offset = (sqe.off != u64::MAX).then_some(sqe.off);
    if offset.is_some_and(|o| (o as i64) < 0) {
        return Err(EINVAL);
    }
    let mut fixed = None;
    if sqe.flags & IOSQE_BUFFER_SELECT != 0 {
        // The buffer comes from group `buf_index` when the read happens. READV names
        // one iovec, whose length is the most to read.
        let max = if sqe.opcode == IORING_OP_READV {
            if sqe.len != 1 {
                return Err(EINVAL);
            }
            syscall::read_iovecs(sqe.addr, 1)?[0].1 as u32
        } else {
            sqe.len
        };
        let select = Some((sqe.buf_index, max, None));
        return Ok(Op::Rw(Rw { write, offset, iovecs: alloc::vec::Vec::new(), rwf: sqe.op_flags, fixed, select, buf_more: false }));
    }
    let iovecs = match sqe.opcode {
        IORING_OP_READV | IORING_OP_WRITEV => {
            if sqe.buf_index != 0 {
                return Err(EINVAL);
            }
            syscall::read_iovecs(sqe.addr, u64::from(sqe.len))?
        }
        IORING_OP_READ_FIXED | IORING_OP_WRITE_FIXED => {
            fixed = Some(ring.rsrc.lock().fixed(sqe.buf_index, sqe.addr, u64::from(sqe.len))?);
            alloc::vec![(sqe.addr, sqe.len as usize)]
        }
        // Every iovec must lie in the registered buffer.
        IORING_OP_READV_FIXED | IORING_OP_WRITEV_FIXED => {
            let iovecs = syscall::read_iovecs(sqe.addr, u64::from(sqe.len))?;
            let rsrc = ring.rsrc.lock();
            for &(addr, len) in &iovecs {
                // Linux refuses even an empty iovec here.
                if len == 0 {
                    return Err(EFAULT);
                }
                fixed = Some(rsrc.fixed(sqe.buf_index, addr, len as u64)?);
            }
            if fixed.is_none() {
                fixed = Some(rsrc.fixed_at(sqe.buf_index)?);
            }
            iovecs
        }
        _ => {
            if sqe.buf_index != 0 {
                return Err(EINVAL);
            }
            alloc::vec![(sqe.addr, sqe.len as usize)]
        }
    };
    Ok(Op::Rw(Rw { write, offset, iovecs, rwf: sqe.op_flags, fixed, select: None, buf_more: false }))
}

/// Expected result of a full transfer (a shorter one breaks a link, as in Linux).
pub fn expected(op: &Op) -> Option<i32> {
    match op {
        Op::Rw(rw) if rw.select.is_none() => i32::try_from(rw.iovecs.iter().map(|v| v.1).sum::<usize>()).ok(),
        _ => None,
    }
}

/// IOSQE_BUFFER_SELECT: takes a buffer from the group for the attempt about to be made
/// (ENOBUFS when the group is empty). From a ring-mapped group, a read that may sleep
/// (not a pipe, or any read in io-wq) consumes it at once, as Linux, so no other read can
/// take it meanwhile; a pipe read issued inline consumes it only when it takes data.
fn select_buffer(ring: &IoUring, req: &mut Request, commit_later: bool) -> KResult<()> {
    let Op::Rw(rw) = &mut req.op else { return Ok(()) };
    let Some((bgid, max, held)) = &mut rw.select else { return Ok(()) };
    if held.is_none() {
        let mut groups = ring.kbufs.lock();
        let buf = groups.select(*bgid)?;
        let len = if *max == 0 { buf.len } else { (*max).min(buf.len) };
        // Consumed now by the length asked (Linux's commit at selection).
        if !commit_later {
            rw.buf_more = groups.commit(*bgid, len);
        }
        drop(groups);
        rw.iovecs.clear();
        rw.iovecs.push((buf.addr, len as usize));
        *held = Some(buf);
    }
    Ok(())
}

/// A pipe read's attempt is over. A ring-mapped buffer that the read used leaves its
/// ring (with INC, the bytes read of it); one it did not use (None) stays there: it was
/// never taken off. A classic one stays with the read.
fn settle_ring_buffer(ring: &IoUring, req: &mut Request, used: Option<usize>) {
    let Op::Rw(rw) = &mut req.op else { return };
    let Some((bgid, _, held)) = &mut rw.select else { return };
    let mut groups = ring.kbufs.lock();
    if held.is_some() && groups.is_ring(*bgid) {
        match used {
            Some(n) => rw.buf_more = groups.commit(*bgid, n as u32),
            None => *held = None,
        }
    }
}

/// A read sent to io-wq gives its buffer back (it takes one again there); one that waits
/// for a pipe keeps it, as Linux.
fn recycle_buffer(ring: &IoUring, req: &mut Request) {
    let Op::Rw(rw) = &mut req.op else { return };
    let Some((bgid, _, held)) = &mut rw.select else { return };
    if let Some(buf) = held.take() {
        ring.kbufs.lock().recycle(*bgid, buf);
    }
}

/// The CQE flags of a finished read that holds a provided buffer: IORING_CQE_F_BUFFER
/// and the buffer's id (the buffer is the program's from then on).
pub fn selected_flags(req: &Request) -> u32 {
    match &req.op {
        Op::Rw(Rw { select: Some((_, _, Some(buf))), buf_more, .. }) => {
            let more = if *buf_more { super::kbuf::IORING_CQE_F_BUF_MORE } else { 0 };
            super::kbuf::IORING_CQE_F_BUFFER | more | (u32::from(buf.bid) << super::kbuf::IORING_CQE_BUFFER_SHIFT)
        }
        _ => 0,
    }
}

impl Rw {
    /// Whether the write goes to the end of the file (O_APPEND or RWF_APPEND).
    fn appends(&self, file: &crate::fs::OpenFile) -> bool {
        self.write && file.node.seekable() && (self.rwf & RWF_APPEND != 0 || file.flags() & O_APPEND != 0)
    }

    /// The memory of iovec `(addr, len)`: the registered buffer's frames, or user memory.
    fn buf(&self, mm: &Option<crate::task::Mm>, addr: u64, len: usize) -> KResult<IoBuf<'static>> {
        Ok(match &self.fixed {
            Some(f) => IoBuf::Frames(f.slice(addr, len)),
            None => IoBuf::UserOf { mm: mm.clone().ok_or(EFAULT)?, addr, len },
        })
    }

    /// Whether the data must be on the device before completion.
    fn syncs(&self, file: &crate::fs::OpenFile) -> bool {
        self.write && (self.rwf & (RWF_DSYNC | RWF_SYNC) != 0 || file.flags() & O_DSYNC != 0)
    }
}

/// One attempt. With `nonblock`, a pipe or eventfd answers EAGAIN rather than sleep, and
/// so does a file position held by another task.
fn attempt(req: &Request, rw: &Rw, nonblock: bool) -> KResult<usize> {
    let file = req.file.as_ref().expect("opdef: rw needs a file");
    let node = &file.node;
    let mut pos_guard = match (rw.offset.is_none() && node.seekable(), nonblock) {
        (false, _) => None,
        (true, true) => Some(file.offset.try_lock().ok_or(EAGAIN)?),
        (true, false) => Some(file.offset.lock()),
    };
    let mut pos = match (&pos_guard, rw.offset) {
        _ if rw.appends(file) => node.stat().size,
        (Some(g), _) => **g,
        (None, Some(o)) => o,
        (None, None) => 0,
    };
    let mut total = 0usize;
    for &(addr, len) in &rw.iovecs {
        if len == 0 {
            continue;
        }
        let mut buf = rw.buf(&req.mm, addr, len)?;
        let result = if rw.write { file.write_node(pos, &buf, nonblock) } else { file.read_node(pos, &mut buf, nonblock) };
        match result {
            Ok(n) => {
                total += n;
                pos += n as u64;
                if n < len {
                    break;
                }
            }
            Err(e) if total == 0 => return Err(e),
            Err(_) => break,
        }
    }
    if let Some(g) = pos_guard.as_mut() {
        **g = pos;
    }
    if total > 0 && rw.syncs(file) {
        node.sync()?;
    }
    Ok(total)
}

/// The asynchronous path for a virtio disk, and for O_DIRECT on a file whose blocks
/// there are one run on a disk: the request goes to the device with the user's own
/// pages as its buffers (zero copy, pinned until it completes), and completes from the
/// interrupt handler. Err: not such a transfer (not sector-aligned, past the end, a
/// hole, blocks not known without I/O), or (without `wait`) the queue is full: take
/// another path.
fn issue_to_disk(ring: &Arc<IoUring>, req: Box<Request>, wait: bool) -> Result<Issued, Box<Request>> {
    let Op::Rw(rw) = &req.op else { return Err(req) };
    let file = req.file.clone().expect("opdef: rw needs a file");
    let Some(offset) = rw.offset else { return Err(req) };
    let len: usize = rw.iovecs.iter().map(|v| v.1).sum();
    if len == 0 || rw.iovecs.len() > 64 {
        return Err(req);
    }
    let direct = file.flags() & O_DIRECT != 0;
    // Misaligned O_DIRECT buffers: the synchronous path says what the file says.
    if direct && rw.iovecs.iter().any(|&(a, n)| a % 512 != 0 || n % 512 != 0) {
        return Err(req);
    }
    let Some((dev, sector, hold)) = file.node.direct_extent(offset, len, rw.write, direct) else { return Err(req) };
    // A registered buffer's frames are pinned already; user pages are pinned here.
    let pinned = rw.fixed.is_none();
    let mut segments = Vec::new();
    if let Some(f) = &rw.fixed {
        for &(addr, n) in &rw.iovecs {
            segments.extend(f.slice(addr, n));
        }
    } else {
        let Some(mm) = req.mm.clone() else { return Ok(Some((req, -EFAULT.0))) };
        let mut space = mm.lock();
        for &(addr, n) in &rw.iovecs {
            match pin_user_segments(&mut space, addr, n, !rw.write) {
                Ok(s) => segments.extend(s),
                Err(e) => {
                    unpin_segments(&segments);
                    space.pending_fill = None;
                    drop(space);
                    // The pin table is full, or a page must be read in first (EFILL): the
                    // path that may sleep takes it.
                    return if e == EAGAIN || e == EFILL { Err(req) } else { Ok(Some((req, -e.0))) };
                }
            }
        }
    }
    // The device gets a copy of the segment list; the completion keeps the list to unpin.
    let mut small = [(0u64, 0u32); 4];
    let long: Vec<(u64, u32)>;
    let copy: &[(u64, u32)] = if segments.len() <= small.len() {
        small[..segments.len()].copy_from_slice(&segments);
        &small[..segments.len()]
    } else {
        long = segments.clone();
        &long
    };
    let kind = if rw.write { T_OUT } else { T_IN };
    let ring2 = Arc::clone(ring);
    let slot = Arc::new(SpinLock::new(Some(req)));
    let slot2 = Arc::clone(&slot);
    // IOPOLL: to the polled queue, and reaped by polling.
    let polled = ring.flag(IORING_SETUP_IOPOLL);
    let submitted = dev.submit_to(
        kind,
        sector,
        copy,
        Box::new(move |result| {
            if pinned {
                unpin_segments(&segments);
            }
            drop(hold);
            // The slot lock ends here, before completing (which may take other locks).
            let taken = slot2.lock().take();
            if let Some(req) = taken {
                let res = match result { Ok(n) => n as i32, Err(e) => -e.0 };
                if polled {
                    super::iopoll::finished(&ring2, req, res);
                } else {
                    ring2.complete_async(req, res);
                }
            }
        }),
        wait,
        polled,
    );
    match submitted {
        Ok(()) => {
            if polled {
                super::iopoll::submitted(ring);
            }
            Ok(None)
        }
        Err(e) => {
            // Not queued: the completion (which owned the list) was dropped unrun.
            if pinned {
                unpin_segments(copy);
            }
            let req = slot.lock().take().expect("not completed: submission failed");
            // Too many segments for one chain (the synchronous path splits the transfer),
            // or a full queue: another path.
            if e == EINVAL || e == EAGAIN {
                return Err(req);
            }
            Ok(Some((req, -e.0)))
        }
    }
}

/// A buffered read through the page cache (9p and ext2 files), as Linux's filemap_read
/// with IOCB_NOWAIT and then IOCB_WAITQ: cached pages are copied at once (the request
/// completes inline); on a miss the page (and its readahead) is read from the device
/// without waiting, and the request parks on the cache's wait queue until it arrives,
/// to be issued again from task work (and copies it all again then). With RWF_NOWAIT a
/// miss ends the read short (-EAGAIN if nothing was cached); in io-wq, or where the read
/// cannot start without sleeping, a miss takes the sleeping path. Err(req): not such a
/// read.
fn read_cached(ring: &Arc<IoUring>, req: Box<Request>, may_sleep: bool, nowait: bool) -> Result<Issued, Box<Request>> {
    let Op::Rw(rw) = &req.op else { return Err(req) };
    let file = req.file.clone().expect("opdef: rw needs a file");
    let (Some((cache, io)), Some(offset)) = (file.node.page_cache(), rw.offset) else { return Err(req) };
    if rw.write || file.flags() & O_DIRECT != 0 {
        return Err(req);
    }
    let size = match io.size() {
        Ok(size) => size,
        Err(e) => return Ok(Some((req, -e.0))),
    };
    let mut done = 0usize;
    let mut missing = None;
    for &(addr, len) in &rw.iovecs {
        let mut buf = match rw.buf(&req.mm, addr, len) {
            Ok(buf) => buf,
            Err(e) => return Ok(Some((req, if done > 0 { done as i32 } else { -e.0 }))),
        };
        match cache.read_cached(offset + done as u64, &mut buf, size) {
            Ok((n, None)) => {
                done += n;
                if n < len {
                    break;
                }
            }
            Ok((n, Some(index))) => {
                done += n;
                missing = Some(index);
                break;
            }
            Err(e) => return Ok(Some((req, if done > 0 { done as i32 } else { -e.0 }))),
        }
    }
    let Some(index) = missing else { return Ok(Some((req, done as i32))) };
    if nowait {
        // What was cached, as Linux's short read; nothing: EAGAIN.
        return Ok(Some((req, if done > 0 { done as i32 } else { -EAGAIN.0 })));
    }
    if may_sleep || !cache.start_read(io, index, size) {
        return Err(req);
    }
    if let Some(req) = poll::arm_wait(ring, req, cache.wait_queue(), || cache.settled(index)) {
        io_wq::enqueue(ring, req);
    }
    Ok(None)
}

/// A buffered write into a write-back page cache (ext2), as Linux's buffered write with
/// IOCB_NOWAIT: the bytes are copied into the file's pages, which become dirty, and the
/// request completes in the submit. Where that would sleep (a page to read first, the
/// file system's lock taken, metadata not cached, the dirty limits reached) it goes to
/// io-wq, or with RWF_NOWAIT ends with what was written (-EAGAIN if nothing). Err(req):
/// not such a write.
fn write_cached(req: Box<Request>, may_sleep: bool, nowait: bool) -> Result<Issued, Box<Request>> {
    let Op::Rw(rw) = &req.op else { return Err(req) };
    let file = req.file.clone().expect("opdef: rw needs a file");
    let (Some((_, io)), Some(offset)) = (file.node.page_cache(), rw.offset) else { return Err(req) };
    if !rw.write || may_sleep || file.flags() & O_DIRECT != 0 {
        return Err(req);
    }
    let mut done = 0usize;
    for &(addr, len) in &rw.iovecs {
        let buf = match rw.buf(&req.mm, addr, len) {
            Ok(buf) => buf,
            Err(e) => return Ok(Some((req, if done > 0 { done as i32 } else { -e.0 }))),
        };
        let Some(written) = io.write_nowait(offset + done as u64, &buf) else { return Err(req) };
        match written {
            Ok(n) => {
                done += n;
                if n < len {
                    break;
                }
            }
            Err(EAGAIN) if done == 0 && !nowait => return Err(req),
            Err(EAGAIN) if done == 0 => return Ok(Some((req, -EAGAIN.0))),
            Err(EAGAIN) => break,
            Err(e) => return Ok(Some((req, if done > 0 { done as i32 } else { -e.0 }))),
        }
    }
    Ok(Some((req, done as i32)))
}

/// The asynchronous path for a 9p file: one Tread/Twrite, completed from the interrupt
/// handler. Err(req): not a 9p file, not one message's worth, or (without `wait`) the
/// queue is full: take another path.
fn issue_to_share(ring: &Arc<IoUring>, req: Box<Request>, wait: bool) -> Result<Issued, Box<Request>> {
    let Op::Rw(rw) = &req.op else { return Err(req) };
    let file = req.file.clone().expect("opdef: rw needs a file");
    let Some(node) = file.node.as_any().downcast_ref::<P9Node>() else { return Err(req) };
    let (Some(offset), [(addr, len)]) = (rw.offset, rw.iovecs.as_slice()) else { return Err(req) };
    // Reads go through the page cache (`read_cached`), except O_DIRECT ones of a file
    // no mapping could have changed.
    if let Some((cache, _)) = crate::fs::Node::page_cache(node)
        && !rw.write
        && (file.flags() & O_DIRECT == 0 || cache.in_use())
    {
        return Err(req);
    }
    let buf = match rw.buf(&req.mm, *addr, *len) {
        Ok(buf) => buf,
        Err(e) => return Ok(Some((req, -e.0))),
    };
    // The reply is copied into the buffer from the interrupt, which cannot read in a page
    // of a mapped file: the buffer is brought in now.
    if !rw.write {
        buf.prefault(true);
    }
    let write = rw.write;
    let ring2 = Arc::clone(ring);
    let slot = Arc::new(SpinLock::new(Some(req)));
    let slot2 = Arc::clone(&slot);
    let done: crate::fs::p9::RwDone = Box::new(move |result| {
        // The slot lock ends here, before completing (which may take other locks).
        let taken = slot2.lock().take();
        if let Some(req) = taken {
            ring2.complete_async(req, match result { Ok(n) => n as i32, Err(e) => -e.0 });
        }
    });
    match node.rw_async(write, offset, buf, done, wait) {
        Ok(()) => Ok(None),
        Err(_) => Err(slot.lock().take().expect("not submitted")),
    }
}

/// A read into a provided buffer: the buffer is taken at issue and kept while the read
/// waits for a pipe (Linux too); it is given back only if the read goes to io-wq.
fn issue_selected(ring: &Arc<IoUring>, mut req: Box<Request>, may_sleep: bool, nowait: bool) -> Issued {
    let file = req.file.clone().expect("opdef: rw needs a file");
    let pollable = file.node.poll_queue(false).is_some();
    if !file.node.nowait() && !may_sleep {
        if nowait {
            return Some((req, -EAGAIN.0));
        }
        io_wq::enqueue(ring, req);
        return None;
    }
    let commit_later = pollable && !may_sleep;
    if let Err(e) = select_buffer(ring, &mut req, commit_later) {
        return Some((req, -e.0));
    }
    let Op::Rw(rw) = &req.op else { return Some((req, -EINVAL.0)) };
    let result = attempt(&req, rw, !may_sleep || pollable);
    if commit_later {
        let used = match result {
            Err(EAGAIN) => None,
            Ok(n) => Some(n),
            Err(_) => Some(0),
        };
        settle_ring_buffer(ring, &mut req, used);
    }
    match result {
        Err(EAGAIN) => would_block(ring, req, false, may_sleep, nowait, pollable),
        result => Some((req, result_code(result))),
    }
}

/// A transfer's result as a CQE's res.
fn result_code(result: KResult<usize>) -> i32 {
    result.map_or_else(|e| -e.0, |n| n as i32)
}

/// An attempt that would have blocked (EAGAIN): RWF_NOWAIT answers so; a pipe or eventfd
/// is poll-armed (after too many useless wakeups it is waited for like anything else);
/// anything else waits, right here in an io-wq worker, or in one.
fn would_block(ring: &Arc<IoUring>, mut req: Box<Request>, write: bool, may_sleep: bool, nowait: bool, pollable: bool) -> Issued {
    if nowait {
        return Some((req, -EAGAIN.0));
    }
    if pollable {
        req = poll::arm_retry(ring, req, write)?;
    }
    if may_sleep {
        let Op::Rw(rw) = &req.op else { return Some((req, -EINVAL.0)) };
        let res = result_code(attempt(&req, rw, false));
        return Some((req, res));
    }
    recycle_buffer(ring, &mut req);
    io_wq::enqueue(ring, req);
    None
}

pub fn issue(ring: &Arc<IoUring>, req: Box<Request>) -> Issued {
    let Op::Rw(rw) = &req.op else { return Some((req, -EINVAL.0)) };
    let file = req.file.clone().expect("opdef: rw needs a file");
    if (rw.write && !file.writable()) || (!rw.write && !file.readable()) {
        return Some((req, -EBADF.0));
    }
    let iopoll = ring.flag(IORING_SETUP_IOPOLL);
    if rw.rwf & RWF_HIPRI != 0 && !iopoll {
        return Some((req, -EINVAL.0));
    }
    // IOPOLL takes a block device opened O_DIRECT (Linux: files without ->iopoll) that
    // has a polled queue (Linux: a queue without QUEUE_FLAG_POLL fails the bio).
    let polls = file.node.as_any().downcast_ref::<BlockNode>().is_some_and(|d| d.dev.polls());
    if iopoll && !(polls && file.flags() & O_DIRECT != 0) {
        return Some((req, -EOPNOTSUPP.0));
    }
    let may_sleep = req.in_iowq;
    let nowait = rw.rwf & RWF_NOWAIT != 0;
    let (appends, syncs, write) = (rw.appends(&file), rw.syncs(&file), rw.write);
    let selects = rw.select.is_some();
    let mut req = req;
    if selects {
        return issue_selected(ring, req, may_sleep, nowait);
    }
    if !appends && !syncs {
        req = match issue_to_disk(ring, req, may_sleep) {
            Ok(issued) => return issued,
            Err(req) => req,
        };
        req = match read_cached(ring, req, may_sleep, nowait) {
            Ok(issued) => return issued,
            Err(req) => req,
        };
        req = match write_cached(req, may_sleep, nowait) {
            Ok(issued) => return issued,
            Err(req) => req,
        };
        req = match issue_to_share(ring, req, may_sleep) {
            Ok(issued) => return issued,
            Err(req) => req,
        };
    }
    let Op::Rw(rw) = &req.op else { return Some((req, -EINVAL.0)) };
    let pollable = file.node.poll_queue(write).is_some();
    // (A write that must flush waits for the device: in io-wq.)
    // A file that can answer without sleeping is tried (a contended file position is
    // EAGAIN too); the rest, and a write that must flush, would block.
    if !(file.node.nowait() && (may_sleep || !syncs)) {
        if may_sleep {
            let res = result_code(attempt(&req, rw, false));
            return Some((req, res));
        }
        return would_block(ring, req, write, false, nowait, false);
    }
    match attempt(&req, rw, !may_sleep || pollable) {
        Err(EAGAIN) => would_block(ring, req, write, may_sleep, nowait, pollable),
        result => Some((req, result_code(result))),
    }
}

/// IORING_OP_READ_MULTISHOT: a READ that must take provided buffers, with no address or
/// length of its own.
pub fn prep_mshot(ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    if sqe.flags & IOSQE_BUFFER_SELECT == 0 {
        return Err(EINVAL);
    }
    let op = prep(ring, sqe)?;
    if sqe.addr != 0 || sqe.len != 0 {
        return Err(EINVAL);
    }
    Ok(op)
}

/// IORING_OP_READ_MULTISHOT on a pollable file: each read that finds data fills one
/// provided buffer and posts a CQE with IORING_CQE_F_MORE, then the next read is tried
/// at once; when the file is empty the request waits on its poll queue. It ends, with a
/// CQE without F_MORE, at end of file (res 0), an error (-ENOBUFS when the group is
/// empty), a cancellation, or a full CQ ring (res is then that last read's count).
pub fn issue_mshot(ring: &Arc<IoUring>, mut req: Box<Request>) -> Issued {
    let file = req.file.clone().expect("opdef: READ_MULTISHOT needs a file");
    if !file.readable() {
        return Some((req, -EBADF.0));
    }
    if file.node.poll_queue(false).is_none() {
        return Some((req, -EBADFD.0));
    }
    loop {
        if let Err(e) = select_buffer(ring, &mut req, true) {
            return Some((req, -e.0));
        }
        let Op::Rw(rw) = &req.op else { return Some((req, -EINVAL.0)) };
        match attempt(&req, rw, true) {
            Ok(n) if n > 0 => {
                settle_ring_buffer(ring, &mut req, Some(n));
                if !ring.post_more(req.user_data, n as i32, selected_flags(&req)) {
                    return Some((req, n as i32)); // the CQ is full: this is the last CQE
                }
                // The buffer is the program's now.
                if let Op::Rw(Rw { select: Some((_, _, held)), buf_more, .. }) = &mut req.op {
                    *held = None;
                    *buf_more = false;
                }
                req.poll_retries = 0;
            }
            Err(EAGAIN) => {
                settle_ring_buffer(ring, &mut req, None);
                recycle_buffer(ring, &mut req);
                // Woken, it is issued here again; it never goes to io-wq.
                req.poll_retries = 0;
                return poll::arm_retry(ring, req, false).map(|req| (req, -EAGAIN.0));
            }
            result => {
                settle_ring_buffer(ring, &mut req, None);
                recycle_buffer(ring, &mut req);
                return Some((req, result_code(result)));
            }
        }
    }
}
