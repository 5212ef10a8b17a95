//! One builder per opcode our guest kernel supports, in the shape of the `io-uring`
//! crate's `opcode` module: `Op::new(required args)`, chainable setters for the optional
//! fields, `build()` into an [`Entry`] that [`Ring::push`](super::Ring::push) queues.
//!
//! Each `build` places the fields where Linux's prep for that op reads them
//! (`struct io_uring_sqe`); fields an op does not use stay zero, as Linux requires.
//! Pointers are stored as addresses: the memory must stay valid until the CQE arrives.

use super::Sqe;
use super::types::{EpollEvent, Fixed, Flags, FutexWaitv, Iovec, OpenHow, Target, Timespec};

/// A filled SQE, ready to push.
#[derive(Debug, Clone, Copy)]
pub struct Entry(pub Sqe);

impl Entry {
    /// The value the CQE carries back.
    pub const fn user_data(mut self, user_data: u64) -> Self {
        self.0.user_data = user_data;
        self
    }

    /// Adds `IOSQE_*` flags (those `build` set, like `FIXED_FILE`, stay).
    pub const fn flags(mut self, flags: Flags) -> Self {
        self.0.flags |= flags.0;
        self
    }

    /// The I/O priority (`ioprio`).
    pub const fn ioprio(mut self, ioprio: u16) -> Self {
        self.0.ioprio = ioprio;
        self
    }

    pub const fn sqe(&self) -> &Sqe {
        &self.0
    }
}

/// A zeroed SQE for `opcode`.
const fn sqe(opcode: u8) -> Sqe {
    Sqe {
        opcode,
        flags: 0,
        ioprio: 0,
        fd: 0,
        off: 0,
        addr: 0,
        len: 0,
        op_flags: 0,
        user_data: 0,
        buf_index: 0,
        personality: 0,
        file_index: 0,
        addr3: 0,
        pad: 0,
    }
}

/// Declares a builder: the struct, `CODE`, `new` taking the target (if any, as
/// `impl Into<Target>`) then the required fields, one setter per optional field (with
/// its default), and `build`.
macro_rules! opcode {
    (
        $(#[$meta:meta])*
        $name:ident = $code:literal {
            $(@target $target:ident,)?
            $($field:ident: $ty:ty),* $(,)?
            ;;
            $($(#[$ometa:meta])* $ofield:ident: $oty:ty = $default:expr),* $(,)?
        }
        fn build($this:ident, $sqe:ident) $build:block
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name {
            $($target: Target,)?
            $($field: $ty,)*
            $($ofield: $oty,)*
        }

        impl $name {
            pub const CODE: u8 = $code;

            #[allow(clippy::new_without_default)]
            pub fn new($($target: impl Into<Target>,)? $($field: $ty),*) -> Self {
                $name { $($target: $target.into(),)? $($field,)* $($ofield: $default,)* }
            }

            $(
                $(#[$ometa])*
                pub const fn $ofield(mut self, $ofield: $oty) -> Self {
                    self.$ofield = $ofield;
                    self
                }
            )*

            pub fn build(self) -> Entry {
                let $this = self;
                let mut $sqe = sqe(Self::CODE);
                $( $this.$target.apply(&mut $sqe); )?
                $build
                Entry($sqe)
            }
        }
    };
}

opcode! {
    /// Completes with 0 (or the injected result).
    Nop = 0 {
        ;;
        /// `IORING_NOP_*` flags (`nop_flags`).
        nop_flags: u32 = 0,
        /// The result to post with `IORING_NOP_INJECT_RESULT` (in `len`).
        result: i32 = 0,
    }
    fn build(op, sqe) {
        sqe.op_flags = op.nop_flags;
        sqe.len = op.result as u32;
    }
}

/// `IORING_NOP_INJECT_RESULT`: post `len` as the result.
pub const NOP_INJECT_RESULT: u32 = 1 << 0;

opcode! {
    /// `preadv2(fd, iov, len, offset, rw_flags)`.
    Readv = 1 {
        @target fd,
        iovec: *const Iovec,
        len: u32,
        ;;
        /// File offset; `u64::MAX` (-1): the file position.
        offset: u64 = 0,
        rw_flags: i32 = 0,
        /// With `Flags::BUFFER_SELECT`: the provided-buffer group.
        buf_group: u16 = 0,
    }
    fn build(op, sqe) {
        sqe.addr = op.iovec as u64;
        sqe.len = op.len;
        sqe.off = op.offset;
        sqe.op_flags = op.rw_flags as u32;
        sqe.buf_index = op.buf_group;
    }
}

opcode! {
    /// `pwritev2(fd, iov, len, offset, rw_flags)`.
    Writev = 2 {
        @target fd,
        iovec: *const Iovec,
        len: u32,
        ;;
        offset: u64 = 0,
        rw_flags: i32 = 0,
    }
    fn build(op, sqe) {
        sqe.addr = op.iovec as u64;
        sqe.len = op.len;
        sqe.off = op.offset;
        sqe.op_flags = op.rw_flags as u32;
    }
}

/// `IORING_FSYNC_DATASYNC`: fdatasync.
pub const FSYNC_DATASYNC: u32 = 1;

opcode! {
    /// `fsync(fd)`, or `fdatasync` with `FSYNC_DATASYNC`.
    Fsync = 3 {
        @target fd,
        ;;
        /// `IORING_FSYNC_*` (`fsync_flags`).
        flags: u32 = 0,
    }
    fn build(op, sqe) {
        sqe.op_flags = op.flags;
    }
}

opcode! {
    /// A read into registered buffer `buf_index`; `buf` must lie inside it.
    ReadFixed = 4 {
        @target fd,
        buf: *mut u8,
        len: u32,
        buf_index: u16,
        ;;
        offset: u64 = 0,
        rw_flags: i32 = 0,
    }
    fn build(op, sqe) {
        sqe.addr = op.buf as u64;
        sqe.len = op.len;
        sqe.buf_index = op.buf_index;
        sqe.off = op.offset;
        sqe.op_flags = op.rw_flags as u32;
    }
}

opcode! {
    /// A write from registered buffer `buf_index`; `buf` must lie inside it.
    WriteFixed = 5 {
        @target fd,
        buf: *const u8,
        len: u32,
        buf_index: u16,
        ;;
        offset: u64 = 0,
        rw_flags: i32 = 0,
    }
    fn build(op, sqe) {
        sqe.addr = op.buf as u64;
        sqe.len = op.len;
        sqe.buf_index = op.buf_index;
        sqe.off = op.offset;
        sqe.op_flags = op.rw_flags as u32;
    }
}

/// `IORING_POLL_ADD_MULTI`: keep posting CQEs (with `IORING_CQE_F_MORE`).
pub const POLL_ADD_MULTI: u32 = 1 << 0;

opcode! {
    /// Waits for `flags` (`POLLIN`, ...) on the file; the result is the ready mask.
    PollAdd = 6 {
        @target fd,
        flags: u32,
        ;;
        /// Multishot: `POLL_ADD_MULTI` (in `len`).
        multi: bool = false,
    }
    fn build(op, sqe) {
        sqe.op_flags = op.flags;
        if op.multi {
            sqe.len = POLL_ADD_MULTI;
        }
    }
}

/// `IORING_POLL_UPDATE_EVENTS`: POLL_REMOVE updates the poll's events instead.
pub const POLL_UPDATE_EVENTS: u32 = 1 << 1;
/// `IORING_POLL_UPDATE_USER_DATA`: POLL_REMOVE updates the poll's user_data instead.
pub const POLL_UPDATE_USER_DATA: u32 = 1 << 2;

opcode! {
    /// Removes the poll whose `user_data` is `target_user_data`, or with a setter below
    /// updates it in place (a poll update, Linux's `io_poll_remove`).
    PollRemove = 7 {
        target_user_data: u64,
        ;;
        /// Update the poll's events (`POLL_UPDATE_EVENTS`).
        new_events: Option<u32> = None,
        /// Update the poll's user_data (`POLL_UPDATE_USER_DATA`).
        new_user_data: Option<u64> = None,
    }
    fn build(op, sqe) {
        sqe.addr = op.target_user_data;
        if let Some(events) = op.new_events {
            sqe.len |= POLL_UPDATE_EVENTS;
            sqe.op_flags = events;
        }
        if let Some(user_data) = op.new_user_data {
            sqe.len |= POLL_UPDATE_USER_DATA;
            sqe.off = user_data;
        }
    }
}

opcode! {
    /// `sync_file_range(fd, offset, len, flags)`.
    SyncFileRange = 8 {
        @target fd,
        len: u32,
        ;;
        offset: u64 = 0,
        flags: u32 = 0,
    }
    fn build(op, sqe) {
        sqe.len = op.len;
        sqe.off = op.offset;
        sqe.op_flags = op.flags;
    }
}

/// `IORING_TIMEOUT_ABS`: the timespec is an absolute time.
pub const TIMEOUT_ABS: u32 = 1 << 0;
/// `IORING_TIMEOUT_UPDATE`: TIMEOUT_REMOVE changes the time (set by `update`).
pub const TIMEOUT_UPDATE: u32 = 1 << 1;
/// `IORING_TIMEOUT_BOOTTIME`: measured on CLOCK_BOOTTIME.
pub const TIMEOUT_BOOTTIME: u32 = 1 << 2;
/// `IORING_TIMEOUT_REALTIME`: measured on CLOCK_REALTIME.
pub const TIMEOUT_REALTIME: u32 = 1 << 3;
/// `IORING_TIMEOUT_ETIME_SUCCESS`: expiry is not an error (links go on).
pub const TIMEOUT_ETIME_SUCCESS: u32 = 1 << 5;
/// `IORING_TIMEOUT_MULTISHOT`: fire `count` times (0: until removed), with F_MORE.
pub const TIMEOUT_MULTISHOT: u32 = 1 << 6;

opcode! {
    /// Completes with -ETIME after `timespec`, or with 0 once `count` other CQEs came.
    Timeout = 11 {
        timespec: *const Timespec,
        ;;
        /// Completions to wait for (0: time only).
        count: u32 = 0,
        /// `IORING_TIMEOUT_*` (`timeout_flags`).
        flags: u32 = 0,
    }
    fn build(op, sqe) {
        sqe.addr = op.timespec as u64;
        sqe.len = 1;
        sqe.off = u64::from(op.count);
        sqe.op_flags = op.flags;
    }
}

opcode! {
    /// Removes the timeout whose `user_data` is `target_user_data`, or with `update`
    /// restarts it with a new time.
    TimeoutRemove = 12 {
        target_user_data: u64,
        ;;
        /// `IORING_TIMEOUT_*` (`timeout_flags`).
        flags: u32 = 0,
        /// The new time (`TIMEOUT_UPDATE`).
        update: Option<*const Timespec> = None,
    }
    fn build(op, sqe) {
        sqe.addr = op.target_user_data;
        sqe.op_flags = op.flags;
        if let Some(ts) = op.update {
            sqe.op_flags |= TIMEOUT_UPDATE;
            sqe.off = ts as u64;
        }
    }
}

/// `IORING_ASYNC_CANCEL_ALL`: cancel every match.
pub const ASYNC_CANCEL_ALL: u32 = 1 << 0;
/// `IORING_ASYNC_CANCEL_FD`: match on the fd, not user_data.
pub const ASYNC_CANCEL_FD: u32 = 1 << 1;
/// `IORING_ASYNC_CANCEL_ANY`: match every request.
pub const ASYNC_CANCEL_ANY: u32 = 1 << 2;

opcode! {
    /// Cancels the request whose `user_data` is `target_user_data`.
    AsyncCancel = 14 {
        target_user_data: u64,
        ;;
        /// `IORING_ASYNC_CANCEL_*` (`cancel_flags`).
        flags: u32 = 0,
        /// The fd to match with `ASYNC_CANCEL_FD`.
        fd: i32 = 0,
    }
    fn build(op, sqe) {
        sqe.addr = op.target_user_data;
        sqe.op_flags = op.flags;
        sqe.fd = op.fd;
    }
}

opcode! {
    /// A timeout for the request linked before it (which gets `Flags::IO_LINK`).
    LinkTimeout = 15 {
        timespec: *const Timespec,
        ;;
        flags: u32 = 0,
    }
    fn build(op, sqe) {
        sqe.addr = op.timespec as u64;
        sqe.len = 1;
        sqe.op_flags = op.flags;
    }
}

opcode! {
    /// `fallocate(fd, mode, offset, len)`.
    Fallocate = 17 {
        @target fd,
        len: u64,
        ;;
        offset: u64 = 0,
        mode: i32 = 0,
    }
    fn build(op, sqe) {
        sqe.addr = op.len;
        sqe.off = op.offset;
        sqe.len = op.mode as u32;
    }
}

opcode! {
    /// `openat(dirfd, path, flags, mode)`; a `file_index` puts the file in the fixed
    /// table instead: slot `file_index - 1`, or any free one with `FILE_INDEX_ALLOC`.
    OpenAt = 18 {
        dirfd: i32,
        path: *const u8,
        ;;
        flags: i32 = 0,
        mode: u32 = 0,
        file_index: u32 = 0,
    }
    fn build(op, sqe) {
        sqe.fd = op.dirfd;
        sqe.addr = op.path as u64;
        sqe.op_flags = op.flags as u32;
        sqe.len = op.mode;
        sqe.file_index = op.file_index;
    }
}

/// `IORING_FILE_INDEX_ALLOC`: any free fixed slot (the result is its index).
pub const FILE_INDEX_ALLOC: u32 = !0;

opcode! {
    /// Closes an fd, or with `Target::Fixed` a fixed slot.
    Close = 19 {
        @target fd,
        ;;
    }
    fn build(op, sqe) {
        if let Target::Fixed(slot) = op.fd {
            // Linux's close reads a fixed slot from `file_index` (slot + 1), not `fd`.
            sqe.fd = 0;
            sqe.flags = 0;
            sqe.file_index = slot + 1;
        }
    }
}

opcode! {
    /// Replaces `len` fixed files from slot `offset` with the fds at `fds` (-1: empty).
    FilesUpdate = 20 {
        fds: *const i32,
        len: u32,
        ;;
        offset: i32 = 0,
    }
    fn build(op, sqe) {
        sqe.addr = op.fds as u64;
        sqe.len = op.len;
        sqe.off = op.offset as u64;
    }
}

opcode! {
    /// `statx(dirfd, path, flags, mask, statxbuf)`.
    Statx = 21 {
        dirfd: i32,
        path: *const u8,
        statxbuf: *mut u8,
        ;;
        flags: i32 = 0,
        mask: u32 = 0,
    }
    fn build(op, sqe) {
        sqe.fd = op.dirfd;
        sqe.addr = op.path as u64;
        sqe.off = op.statxbuf as u64;
        sqe.op_flags = op.flags as u32;
        sqe.len = op.mask;
    }
}

opcode! {
    /// `pread(fd, buf, len, offset)`; with `Flags::BUFFER_SELECT`, `buf` may be null and
    /// the kernel takes a buffer from `buf_group`.
    Read = 22 {
        @target fd,
        buf: *mut u8,
        len: u32,
        ;;
        /// File offset; `u64::MAX` (-1): the file position.
        offset: u64 = 0,
        rw_flags: i32 = 0,
        buf_group: u16 = 0,
    }
    fn build(op, sqe) {
        sqe.addr = op.buf as u64;
        sqe.len = op.len;
        sqe.off = op.offset;
        sqe.op_flags = op.rw_flags as u32;
        sqe.buf_index = op.buf_group;
    }
}

opcode! {
    /// `pwrite(fd, buf, len, offset)`.
    Write = 23 {
        @target fd,
        buf: *const u8,
        len: u32,
        ;;
        offset: u64 = 0,
        rw_flags: i32 = 0,
    }
    fn build(op, sqe) {
        sqe.addr = op.buf as u64;
        sqe.len = op.len;
        sqe.off = op.offset;
        sqe.op_flags = op.rw_flags as u32;
    }
}

opcode! {
    /// `posix_fadvise(fd, offset, len, advice)`.
    Fadvise = 24 {
        @target fd,
        len: u32,
        advice: i32,
        ;;
        offset: u64 = 0,
    }
    fn build(op, sqe) {
        sqe.len = op.len;
        sqe.op_flags = op.advice as u32;
        sqe.off = op.offset;
    }
}

opcode! {
    /// `madvise(addr, len, advice)`.
    Madvise = 25 {
        addr: *const u8,
        len: u32,
        advice: i32,
        ;;
    }
    fn build(op, sqe) {
        sqe.addr = op.addr as u64;
        sqe.len = op.len;
        sqe.op_flags = op.advice as u32;
    }
}

opcode! {
    /// `openat2(dirfd, path, how)`; `file_index` as for [`OpenAt`].
    OpenAt2 = 28 {
        dirfd: i32,
        path: *const u8,
        how: *const OpenHow,
        ;;
        file_index: u32 = 0,
    }
    fn build(op, sqe) {
        sqe.fd = op.dirfd;
        sqe.addr = op.path as u64;
        sqe.len = size_of::<OpenHow>() as u32;
        sqe.off = op.how as u64;
        sqe.file_index = op.file_index;
    }
}

opcode! {
    /// `epoll_ctl(epfd, op, fd, event)`.
    EpollCtl = 29 {
        epfd: i32,
        fd: i32,
        op: i32,
        event: *const EpollEvent,
        ;;
    }
    fn build(op, sqe) {
        sqe.fd = op.epfd;
        sqe.off = op.fd as u64;
        sqe.len = op.op as u32;
        sqe.addr = op.event as u64;
    }
}

/// `SPLICE_F_FD_IN_FIXED`: `fd_in` is a fixed slot.
pub const SPLICE_F_FD_IN_FIXED: u32 = 1 << 31;

/// The input fd of SPLICE and TEE: a fixed one sets `SPLICE_F_FD_IN_FIXED`.
fn splice_in(sqe: &mut Sqe, fd_in: Target) {
    match fd_in {
        Target::Fd(fd) => sqe.file_index = fd as u32,
        Target::Fixed(slot) => {
            sqe.file_index = slot;
            sqe.op_flags |= SPLICE_F_FD_IN_FIXED;
        }
    }
}

/// `splice(fd_in, off_in, fd_out, off_out, len, flags)`: an offset of `u64::MAX` (-1)
/// means the file position (and is required for a pipe).
#[derive(Debug, Clone, Copy)]
pub struct Splice {
    fd_in: Target,
    off_in: u64,
    fd_out: Target,
    off_out: u64,
    len: u32,
    flags: u32,
}

impl Splice {
    pub const CODE: u8 = 30;

    pub fn new(fd_in: impl Into<Target>, off_in: u64, fd_out: impl Into<Target>, off_out: u64, len: u32) -> Self {
        Splice { fd_in: fd_in.into(), off_in, fd_out: fd_out.into(), off_out, len, flags: 0 }
    }

    /// `SPLICE_F_*`.
    pub const fn flags(mut self, flags: u32) -> Self {
        self.flags = flags;
        self
    }

    pub fn build(self) -> Entry {
        let mut sqe = sqe(Self::CODE);
        self.fd_out.apply(&mut sqe);
        sqe.off = self.off_out;
        sqe.addr = self.off_in;
        sqe.len = self.len;
        sqe.op_flags = self.flags;
        splice_in(&mut sqe, self.fd_in);
        Entry(sqe)
    }
}

opcode! {
    /// Hands `nbufs` buffers of `len` bytes from `addr` to group `bgid`, ids from `bid`.
    ProvideBuffers = 31 {
        addr: *mut u8,
        len: i32,
        nbufs: u16,
        bgid: u16,
        bid: u16,
        ;;
    }
    fn build(op, sqe) {
        sqe.fd = i32::from(op.nbufs);
        sqe.addr = op.addr as u64;
        sqe.len = op.len as u32;
        sqe.off = u64::from(op.bid);
        sqe.buf_index = op.bgid;
    }
}

opcode! {
    /// Takes up to `nbufs` buffers out of group `bgid`; the result is how many.
    RemoveBuffers = 32 {
        nbufs: u16,
        bgid: u16,
        ;;
    }
    fn build(op, sqe) {
        sqe.fd = i32::from(op.nbufs);
        sqe.buf_index = op.bgid;
    }
}

/// `tee(fd_in, fd_out, len, flags)`: both are pipes.
#[derive(Debug, Clone, Copy)]
pub struct Tee {
    fd_in: Target,
    fd_out: Target,
    len: u32,
    flags: u32,
}

impl Tee {
    pub const CODE: u8 = 33;

    pub fn new(fd_in: impl Into<Target>, fd_out: impl Into<Target>, len: u32) -> Self {
        Tee { fd_in: fd_in.into(), fd_out: fd_out.into(), len, flags: 0 }
    }

    pub const fn flags(mut self, flags: u32) -> Self {
        self.flags = flags;
        self
    }

    pub fn build(self) -> Entry {
        let mut sqe = sqe(Self::CODE);
        self.fd_out.apply(&mut sqe);
        sqe.len = self.len;
        sqe.op_flags = self.flags;
        splice_in(&mut sqe, self.fd_in);
        Entry(sqe)
    }
}

opcode! {
    /// `renameat2(olddirfd, oldpath, newdirfd, newpath, flags)`.
    RenameAt = 35 {
        olddirfd: i32,
        oldpath: *const u8,
        newdirfd: i32,
        newpath: *const u8,
        ;;
        flags: u32 = 0,
    }
    fn build(op, sqe) {
        sqe.fd = op.olddirfd;
        sqe.addr = op.oldpath as u64;
        sqe.len = op.newdirfd as u32;
        sqe.off = op.newpath as u64;
        sqe.op_flags = op.flags;
    }
}

opcode! {
    /// `unlinkat(dirfd, path, flags)` (`AT_REMOVEDIR` for a directory).
    UnlinkAt = 36 {
        dirfd: i32,
        path: *const u8,
        ;;
        flags: i32 = 0,
    }
    fn build(op, sqe) {
        sqe.fd = op.dirfd;
        sqe.addr = op.path as u64;
        sqe.op_flags = op.flags as u32;
    }
}

opcode! {
    /// `mkdirat(dirfd, path, mode)`.
    MkDirAt = 37 {
        dirfd: i32,
        path: *const u8,
        ;;
        mode: u32 = 0,
    }
    fn build(op, sqe) {
        sqe.fd = op.dirfd;
        sqe.addr = op.path as u64;
        sqe.len = op.mode;
    }
}

opcode! {
    /// `symlinkat(target, newdirfd, linkpath)`.
    SymlinkAt = 38 {
        newdirfd: i32,
        target: *const u8,
        linkpath: *const u8,
        ;;
    }
    fn build(op, sqe) {
        sqe.fd = op.newdirfd;
        sqe.addr = op.target as u64;
        sqe.off = op.linkpath as u64;
    }
}

opcode! {
    /// `linkat(olddirfd, oldpath, newdirfd, newpath, flags)`.
    LinkAt = 39 {
        olddirfd: i32,
        oldpath: *const u8,
        newdirfd: i32,
        newpath: *const u8,
        ;;
        flags: i32 = 0,
    }
    fn build(op, sqe) {
        sqe.fd = op.olddirfd;
        sqe.addr = op.oldpath as u64;
        sqe.len = op.newdirfd as u32;
        sqe.off = op.newpath as u64;
        sqe.op_flags = op.flags as u32;
    }
}

opcode! {
    /// Posts a CQE `{user_data, result}` on the ring `ring_fd` (`IORING_MSG_DATA`).
    MsgRingData = 40 {
        @target ring_fd,
        result: i32,
        user_data: u64,
        ;;
        /// `IORING_MSG_RING_*` (`msg_ring_flags`).
        flags: u32 = 0,
        /// The target CQE's flags, with `IORING_MSG_RING_FLAGS_PASS`.
        cqe_flags: u32 = 0,
    }
    fn build(op, sqe) {
        sqe.addr = 0;
        sqe.len = op.result as u32;
        sqe.off = op.user_data;
        sqe.op_flags = op.flags;
        sqe.file_index = op.cqe_flags;
    }
}

/// `IORING_MSG_RING_CQE_SKIP`: no CQE on the sending ring.
pub const MSG_RING_CQE_SKIP: u32 = 1 << 0;
/// `IORING_MSG_RING_FLAGS_PASS`: the target CQE gets `cqe_flags`.
pub const MSG_RING_FLAGS_PASS: u32 = 1 << 1;

opcode! {
    /// Sends our fixed file `src_slot` to the fixed table of ring `ring_fd`
    /// (`IORING_MSG_SEND_FD`): `file_index` is the slot + 1, or `FILE_INDEX_ALLOC`.
    MsgRingSendFd = 40 {
        @target ring_fd,
        src_slot: u32,
        file_index: u32,
        ;;
        /// The user_data of the CQE the target ring gets.
        user_data: u64 = 0,
        flags: u32 = 0,
    }
    fn build(op, sqe) {
        sqe.addr = 1;
        sqe.addr3 = u64::from(op.src_slot);
        sqe.file_index = op.file_index;
        sqe.off = op.user_data;
        sqe.op_flags = op.flags;
    }
}

opcode! {
    /// `fsetxattr(fd, name, value, len, flags)`.
    FSetXattr = 41 {
        @target fd,
        name: *const u8,
        value: *const u8,
        len: u32,
        ;;
        flags: i32 = 0,
    }
    fn build(op, sqe) {
        sqe.addr = op.name as u64;
        sqe.off = op.value as u64;
        sqe.len = op.len;
        sqe.op_flags = op.flags as u32;
    }
}

opcode! {
    /// `setxattr(path, name, value, len, flags)`.
    SetXattr = 42 {
        name: *const u8,
        value: *const u8,
        path: *const u8,
        len: u32,
        ;;
        flags: i32 = 0,
    }
    fn build(op, sqe) {
        sqe.addr = op.name as u64;
        sqe.off = op.value as u64;
        sqe.addr3 = op.path as u64;
        sqe.len = op.len;
        sqe.op_flags = op.flags as u32;
    }
}

opcode! {
    /// `fgetxattr(fd, name, value, len)`.
    FGetXattr = 43 {
        @target fd,
        name: *const u8,
        value: *mut u8,
        len: u32,
        ;;
    }
    fn build(op, sqe) {
        sqe.addr = op.name as u64;
        sqe.off = op.value as u64;
        sqe.len = op.len;
    }
}

opcode! {
    /// `getxattr(path, name, value, len)`.
    GetXattr = 44 {
        name: *const u8,
        value: *mut u8,
        path: *const u8,
        len: u32,
        ;;
    }
    fn build(op, sqe) {
        sqe.addr = op.name as u64;
        sqe.off = op.value as u64;
        sqe.addr3 = op.path as u64;
        sqe.len = op.len;
    }
}

opcode! {
    /// Reads into buffers of group `buf_group` each time data comes, one CQE each (with
    /// `IORING_CQE_F_MORE` while it stays armed). Sets `Flags::BUFFER_SELECT` itself.
    ReadMulti = 49 {
        @target fd,
        len: u32,
        buf_group: u16,
        ;;
        offset: u64 = 0,
    }
    fn build(op, sqe) {
        sqe.len = op.len;
        sqe.buf_index = op.buf_group;
        sqe.off = op.offset;
        sqe.flags |= Flags::BUFFER_SELECT.0;
    }
}

opcode! {
    /// `waitid(idtype, id, infop, options)`; `infop` points at a `siginfo_t`.
    WaitId = 50 {
        idtype: i32,
        id: i32,
        options: i32,
        ;;
        infop: *mut u8 = core::ptr::null_mut(),
    }
    fn build(op, sqe) {
        sqe.fd = op.id;
        sqe.len = op.idtype as u32;
        sqe.file_index = op.options as u32;
        sqe.off = op.infop as u64;
    }
}

opcode! {
    /// `futex_wait` (futex2): sleeps while `*futex == val` (masked), until woken.
    FutexWait = 51 {
        futex: *const u32,
        val: u64,
        mask: u64,
        futex_flags: u32,
        ;;
    }
    fn build(op, sqe) {
        sqe.fd = op.futex_flags as i32;
        sqe.addr = op.futex as u64;
        sqe.off = op.val;
        sqe.addr3 = op.mask;
    }
}

opcode! {
    /// `futex_wake` (futex2): wakes up to `nr` waiters; the result is how many.
    FutexWake = 52 {
        futex: *const u32,
        nr: u64,
        mask: u64,
        futex_flags: u32,
        ;;
    }
    fn build(op, sqe) {
        sqe.fd = op.futex_flags as i32;
        sqe.addr = op.futex as u64;
        sqe.off = op.nr;
        sqe.addr3 = op.mask;
    }
}

opcode! {
    /// `futex_waitv`: waits on `nr` futexes; the result is the index of the one woken.
    FutexWaitV = 53 {
        futexv: *const FutexWaitv,
        nr: u32,
        ;;
    }
    fn build(op, sqe) {
        sqe.addr = op.futexv as u64;
        sqe.len = op.nr;
    }
}

/// `IORING_FIXED_FD_NO_CLOEXEC`: the installed fd is not close-on-exec.
pub const FIXED_FD_NO_CLOEXEC: u32 = 1 << 0;

opcode! {
    /// Installs fixed file `fd` as a normal fd of the process; the result is the fd.
    FixedFdInstall = 54 {
        fd: Fixed,
        ;;
        /// `FIXED_FD_NO_CLOEXEC` (`install_fd_flags`).
        flags: u32 = 0,
    }
    fn build(op, sqe) {
        sqe.fd = op.fd.0 as i32;
        sqe.flags = Flags::FIXED_FILE.0;
        sqe.op_flags = op.flags;
    }
}

opcode! {
    /// `ftruncate(fd, len)`.
    Ftruncate = 55 {
        @target fd,
        len: u64,
        ;;
    }
    fn build(op, sqe) {
        sqe.off = op.len;
    }
}

opcode! {
    /// `epoll_wait(epfd, events, maxevents, 0)`: the result is how many events.
    EpollWait = 59 {
        @target epfd,
        events: *mut EpollEvent,
        max_events: u32,
        ;;
    }
    fn build(op, sqe) {
        sqe.addr = op.events as u64;
        sqe.len = op.max_events;
    }
}

opcode! {
    /// `preadv2` into the registered buffer `buf_index` (every iovec lies inside it).
    ReadvFixed = 60 {
        @target fd,
        iovec: *const Iovec,
        len: u32,
        buf_index: u16,
        ;;
        offset: u64 = 0,
        rw_flags: i32 = 0,
    }
    fn build(op, sqe) {
        sqe.addr = op.iovec as u64;
        sqe.len = op.len;
        sqe.buf_index = op.buf_index;
        sqe.off = op.offset;
        sqe.op_flags = op.rw_flags as u32;
    }
}

opcode! {
    /// `pwritev2` from the registered buffer `buf_index`.
    WritevFixed = 61 {
        @target fd,
        iovec: *const Iovec,
        len: u32,
        buf_index: u16,
        ;;
        offset: u64 = 0,
        rw_flags: i32 = 0,
    }
    fn build(op, sqe) {
        sqe.addr = op.iovec as u64;
        sqe.len = op.len;
        sqe.buf_index = op.buf_index;
        sqe.off = op.offset;
        sqe.op_flags = op.rw_flags as u32;
    }
}

opcode! {
    /// `pipe2(fds, flags)`; a `file_index` (as for [`OpenAt`]) puts both ends in the
    /// fixed table (slots `file_index - 1` and `file_index`) and stores their slots.
    Pipe = 62 {
        fds: *mut i32,
        ;;
        flags: u32 = 0,
        file_index: u32 = 0,
    }
    fn build(op, sqe) {
        sqe.addr = op.fds as u64;
        sqe.op_flags = op.flags;
        sqe.file_index = op.file_index;
    }
}
