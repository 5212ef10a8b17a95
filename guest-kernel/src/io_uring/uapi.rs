//! The io_uring ABI (include/uapi/linux/io_uring.h), pinned at compile time: every struct
//! has its size and field offsets asserted, as Linux does with BUILD_BUG_SQE_ELEM.
//! Constants are listed as the ABI defines them, including some not implemented.
#![allow(dead_code)]

use core::mem::{offset_of, size_of};

/// Submission queue entry, as user space writes it.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct Sqe {
    pub opcode: u8,
    pub flags: u8,
    pub ioprio: u16,
    pub fd: i32,
    /// `off` (or `addr2`).
    pub off: u64,
    /// `addr` (or `splice_off_in`).
    pub addr: u64,
    pub len: u32,
    /// The per-opcode flags union (`rw_flags`, `fsync_flags`, `open_flags`, ...).
    pub op_flags: u32,
    pub user_data: u64,
    /// `buf_index` (or `buf_group`).
    pub buf_index: u16,
    pub personality: u16,
    /// `splice_fd_in` / `file_index` / `addr_len`.
    pub file_index: u32,
    pub addr3: u64,
    pub pad2: u64,
}

/// Completion queue entry: the 16 bytes every CQE has, and the two words a 32-byte CQE
/// (IORING_SETUP_CQE32) adds (zero unless the op fills them).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct Cqe {
    pub user_data: u64,
    pub res: i32,
    pub flags: u32,
    pub extra: [u64; 2],
}

impl Cqe {
    pub fn new(user_data: u64, res: i32, flags: u32) -> Self {
        Self { user_data, res, flags, extra: [0; 2] }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct SqringOffsets {
    pub head: u32,
    pub tail: u32,
    pub ring_mask: u32,
    pub ring_entries: u32,
    pub flags: u32,
    pub dropped: u32,
    pub array: u32,
    pub resv1: u32,
    pub user_addr: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct CqringOffsets {
    pub head: u32,
    pub tail: u32,
    pub ring_mask: u32,
    pub ring_entries: u32,
    pub overflow: u32,
    pub cqes: u32,
    pub flags: u32,
    pub resv1: u32,
    pub user_addr: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct Params {
    pub sq_entries: u32,
    pub cq_entries: u32,
    pub flags: u32,
    pub sq_thread_cpu: u32,
    pub sq_thread_idle: u32,
    pub features: u32,
    pub wq_fd: u32,
    pub resv: [u32; 3],
    pub sq_off: SqringOffsets,
    pub cq_off: CqringOffsets,
}

/// `struct io_uring_getevents_arg` (IORING_ENTER_EXT_ARG).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct GeteventsArg {
    pub sigmask: u64,
    pub sigmask_sz: u32,
    /// The first phase of the wait (see `IoUring::wait_cqes`), in microseconds.
    pub min_wait_usec: u32,
    pub ts: u64,
}

/// `struct io_uring_region_desc`: a memory region (IORING_REGISTER_MEM_REGION).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct RegionDesc {
    /// IORING_MEM_REGION_TYPE_USER: the program's memory (page-aligned), else 0.
    pub user_addr: u64,
    pub size: u64,
    pub flags: u32,
    pub id: u32,
    /// Written back: where the program maps a kernel-memory region.
    pub mmap_offset: u64,
    pub resv: [u64; 4],
}

/// `struct io_uring_mem_region_reg`: IORING_REGISTER_MEM_REGION's argument.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct MemRegionReg {
    /// A `struct io_uring_region_desc *`.
    pub region_uptr: u64,
    pub flags: u64,
    pub resv: [u64; 2],
}

/// `struct io_uring_reg_wait`: one wait's arguments in the wait region (EXT_ARG_REG).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct RegWait {
    /// `struct __kernel_timespec`, used only with IORING_REG_WAIT_TS.
    pub ts: [i64; 2],
    pub min_wait_usec: u32,
    pub flags: u32,
    pub sigmask: u64,
    pub sigmask_sz: u32,
    pub pad: [u32; 3],
    pub pad2: [u64; 2],
}

/// `struct io_uring_files_update` / `io_uring_rsrc_update`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct FilesUpdate {
    pub offset: u32,
    pub resv: u32,
    pub fds: u64,
}

/// `struct io_uring_query_hdr` (IORING_REGISTER_QUERY): one entry of a chain of queries.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct QueryHdr {
    /// The next header's address (0: the last).
    pub next_entry: u64,
    /// Where the answer goes, `size` bytes.
    pub query_data: u64,
    pub query_op: u32,
    /// In: the caller's buffer size; out: how many bytes the answer holds.
    pub size: u32,
    /// In: must be 0; out: 0 or -errno for this entry.
    pub result: i32,
    pub resv: [u32; 3],
}

/// `struct io_uring_query_opcode` (IO_URING_QUERY_OPCODES).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct QueryOpcode {
    pub nr_request_opcodes: u32,
    pub nr_register_opcodes: u32,
    pub feature_flags: u64,
    pub ring_setup_flags: u64,
    pub enter_flags: u64,
    pub sqe_flags: u64,
    pub nr_query_opcodes: u32,
    pub pad: u32,
}

/// `struct io_uring_query_scq` (IO_URING_QUERY_SCQ): the SQ/CQ rings' header.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct QueryScq {
    pub hdr_size: u64,
    pub hdr_alignment: u64,
}

/// `struct io_uring_query_zcrx` (IO_URING_QUERY_ZCRX; only its size matters here).
pub const QUERY_ZCRX_SIZE: usize = 40;
/// `struct io_uring_query_zcrx_notif` (IO_URING_QUERY_ZCRX_NOTIF; likewise).
pub const QUERY_ZCRX_NOTIF_SIZE: usize = 48;

const _: () = {
    assert!(size_of::<Sqe>() == 64);
    assert!(offset_of!(Sqe, opcode) == 0);
    assert!(offset_of!(Sqe, flags) == 1);
    assert!(offset_of!(Sqe, ioprio) == 2);
    assert!(offset_of!(Sqe, fd) == 4);
    assert!(offset_of!(Sqe, off) == 8);
    assert!(offset_of!(Sqe, addr) == 16);
    assert!(offset_of!(Sqe, len) == 24);
    assert!(offset_of!(Sqe, op_flags) == 28);
    assert!(offset_of!(Sqe, user_data) == 32);
    assert!(offset_of!(Sqe, buf_index) == 40);
    assert!(offset_of!(Sqe, personality) == 42);
    assert!(offset_of!(Sqe, file_index) == 44);
    assert!(offset_of!(Sqe, addr3) == 48);
    assert!(size_of::<Cqe>() == 32);
    assert!(offset_of!(Cqe, res) == 8);
    assert!(offset_of!(Cqe, flags) == 12);
    assert!(size_of::<SqringOffsets>() == 40);
    assert!(size_of::<CqringOffsets>() == 40);
    assert!(size_of::<Params>() == 120);
    assert!(offset_of!(Params, features) == 20);
    assert!(offset_of!(Params, resv) == 28);
    assert!(offset_of!(Params, sq_off) == 40);
    assert!(offset_of!(Params, cq_off) == 80);
    assert!(size_of::<GeteventsArg>() == 24);
    assert!(size_of::<FilesUpdate>() == 16);
    assert!(size_of::<RegionDesc>() == 64);
    assert!(offset_of!(RegionDesc, size) == 8);
    assert!(offset_of!(RegionDesc, flags) == 16);
    assert!(offset_of!(RegionDesc, id) == 20);
    assert!(offset_of!(RegionDesc, mmap_offset) == 24);
    assert!(offset_of!(RegionDesc, resv) == 32);
    assert!(size_of::<MemRegionReg>() == 32);
    assert!(offset_of!(MemRegionReg, flags) == 8);
    assert!(offset_of!(MemRegionReg, resv) == 16);
    assert!(size_of::<RegWait>() == REG_WAIT_SIZE as usize);
    assert!(offset_of!(RegWait, min_wait_usec) == 16);
    assert!(offset_of!(RegWait, flags) == 20);
    assert!(offset_of!(RegWait, sigmask) == 24);
    assert!(offset_of!(RegWait, sigmask_sz) == 32);
    assert!(offset_of!(RegWait, pad) == 36);
    assert!(offset_of!(RegWait, pad2) == 48);
    assert!(size_of::<QueryHdr>() == 40);
    assert!(offset_of!(QueryHdr, query_data) == 8);
    assert!(offset_of!(QueryHdr, query_op) == 16);
    assert!(offset_of!(QueryHdr, size) == 20);
    assert!(offset_of!(QueryHdr, result) == 24);
    assert!(offset_of!(QueryHdr, resv) == 28);
    assert!(size_of::<QueryOpcode>() == 48);
    assert!(offset_of!(QueryOpcode, nr_register_opcodes) == 4);
    assert!(offset_of!(QueryOpcode, feature_flags) == 8);
    assert!(offset_of!(QueryOpcode, ring_setup_flags) == 16);
    assert!(offset_of!(QueryOpcode, enter_flags) == 24);
    assert!(offset_of!(QueryOpcode, sqe_flags) == 32);
    assert!(offset_of!(QueryOpcode, nr_query_opcodes) == 40);
    assert!(offset_of!(QueryOpcode, pad) == 44);
    assert!(size_of::<QueryScq>() == 16);
    assert!(offset_of!(QueryScq, hdr_alignment) == 8);
};

// SAFETY: plain integers, no padding (sizes asserted above).
unsafe impl crate::mm::uaccess::Pod for Params {}
// SAFETY: integers only, laid out without padding (size asserted above).
unsafe impl crate::mm::uaccess::Pod for Sqe {}
// SAFETY: as above.
unsafe impl crate::mm::uaccess::Pod for GeteventsArg {}
// SAFETY: as above.
unsafe impl crate::mm::uaccess::Pod for FilesUpdate {}
// SAFETY: as above.
unsafe impl crate::mm::uaccess::Pod for RegionDesc {}
// SAFETY: as above.
unsafe impl crate::mm::uaccess::Pod for MemRegionReg {}
// SAFETY: as above.
unsafe impl crate::mm::uaccess::Pod for RegWait {}
// SAFETY: as above.
unsafe impl crate::mm::uaccess::Pod for QueryHdr {}
// SAFETY: as above.
unsafe impl crate::mm::uaccess::Pod for QueryOpcode {}
// SAFETY: as above.
unsafe impl crate::mm::uaccess::Pod for QueryScq {}

// io_uring_setup flags.
pub const IORING_SETUP_IOPOLL: u32 = 1 << 0;
pub const IORING_SETUP_SQPOLL: u32 = 1 << 1;
pub const IORING_SETUP_SQ_AFF: u32 = 1 << 2;
pub const IORING_SETUP_CQSIZE: u32 = 1 << 3;
pub const IORING_SETUP_CLAMP: u32 = 1 << 4;
/// With SQPOLL: share the SQ poller of the ring `wq_fd` names.
pub const IORING_SETUP_ATTACH_WQ: u32 = 1 << 5;
pub const IORING_SETUP_R_DISABLED: u32 = 1 << 6;
pub const IORING_SETUP_SUBMIT_ALL: u32 = 1 << 7;
pub const IORING_SETUP_COOP_TASKRUN: u32 = 1 << 8;
/// 128-byte SQEs (the second half is for URING_CMD's payload).
pub const IORING_SETUP_SQE128: u32 = 1 << 10;
/// 32-byte CQEs.
pub const IORING_SETUP_CQE32: u32 = 1 << 11;
/// IOPOLL that sleeps part of the expected completion time before polling.
pub const IORING_SETUP_HYBRID_IOPOLL: u32 = 1 << 17;
/// 16-byte CQE slots, and 32-byte CQEs (IORING_CQE_F_32, two slots) where an op asks.
pub const IORING_SETUP_CQE_MIXED: u32 = 1 << 18;
/// A filler CQE in the last slot, before a 32-byte CQE that would wrap (CQE_MIXED).
pub const IORING_CQE_F_SKIP: u32 = 1 << 5;
/// A 32-byte CQE on a CQE_MIXED ring.
pub const IORING_CQE_F_32: u32 = 1 << 15;
pub const IORING_SETUP_TASKRUN_FLAG: u32 = 1 << 9;
pub const IORING_SETUP_SINGLE_ISSUER: u32 = 1 << 12;
pub const IORING_SETUP_DEFER_TASKRUN: u32 = 1 << 13;
/// The rings are in memory the program gives (sq_off/cq_off.user_addr), not mmap'd.
pub const IORING_SETUP_NO_MMAP: u32 = 1 << 14;
/// Setup answers a registered-ring index, not a descriptor (needs NO_MMAP).
pub const IORING_SETUP_REGISTERED_FD_ONLY: u32 = 1 << 15;
pub const IORING_SETUP_NO_SQARRAY: u32 = 1 << 16;
/// 64-byte SQE slots, and 128-byte ops (NOP128, URING_CMD128) in two of them (6.19).
pub const IORING_SETUP_SQE_MIXED: u32 = 1 << 19;
/// Every submission takes SQEs from slot 0 on; the SQ head and tail stay 0 (7.0; needs
/// NO_SQARRAY, not with SQPOLL).
pub const IORING_SETUP_SQ_REWIND: u32 = 1 << 20;

// Features this kernel honours (advertised in `params.features`).
pub const IORING_FEAT_SINGLE_MMAP: u32 = 1 << 0;
pub const IORING_FEAT_NODROP: u32 = 1 << 1;
pub const IORING_FEAT_SUBMIT_STABLE: u32 = 1 << 2;
pub const IORING_FEAT_RW_CUR_POS: u32 = 1 << 3;
/// Requests run with the submitting task's credentials (or a registered personality's).
pub const IORING_FEAT_CUR_PERSONALITY: u32 = 1 << 4;
/// Pollable files are polled internally rather than handed to a worker.
pub const IORING_FEAT_FAST_POLL: u32 = 1 << 5;
/// POLL_ADD takes the full 32-bit poll32_events.
pub const IORING_FEAT_POLL_32BITS: u32 = 1 << 6;
pub const IORING_FEAT_EXT_ARG: u32 = 1 << 8;
/// io-wq workers are tasks of the submitting process (its files, memory, credentials).
pub const IORING_FEAT_NATIVE_WORKERS: u32 = 1 << 9;
pub const IORING_FEAT_CQE_SKIP: u32 = 1 << 11;
pub const IORING_FEAT_SQPOLL_NONFIXED: u32 = 1 << 7;
pub const IORING_FEAT_RSRC_TAGS: u32 = 1 << 10;
pub const IORING_FEAT_LINKED_FILE: u32 = 1 << 12;
/// io_uring_register takes IORING_REGISTER_USE_REGISTERED_RING.
pub const IORING_FEAT_REG_REG_RING: u32 = 1 << 13;
/// SEND and RECV take IORING_RECVSEND_BUNDLE.
pub const IORING_FEAT_RECVSEND_BUNDLE: u32 = 1 << 14;
/// EXT_ARG's min_wait_usec.
pub const IORING_FEAT_MIN_TIMEOUT: u32 = 1 << 15;
pub const IORING_FEAT_NO_IOWAIT: u32 = 1 << 17;

// io_uring_enter flags.
pub const IORING_ENTER_GETEVENTS: u32 = 1 << 0;
pub const IORING_ENTER_SQ_WAKEUP: u32 = 1 << 1;
pub const IORING_ENTER_SQ_WAIT: u32 = 1 << 2;
pub const IORING_ENTER_EXT_ARG: u32 = 1 << 3;
/// `fd` is an index into the task's registered rings (IORING_REGISTER_RING_FDS).
pub const IORING_ENTER_REGISTERED_RING: u32 = 1 << 4;
/// EXT_ARG's timeout is an absolute time of the ring's clock (CLOCK_MONOTONIC).
pub const IORING_ENTER_ABS_TIMER: u32 = 1 << 5;
/// EXT_ARG's argument is a byte offset into the ring's wait region (a region registered
/// with IORING_MEM_REGION_REG_WAIT_ARG), where a `struct io_uring_reg_wait` lies.
pub const IORING_ENTER_EXT_ARG_REG: u32 = 1 << 6;
/// The wait does not count as I/O wait: no wait here ever does.
pub const IORING_ENTER_NO_IOWAIT: u32 = 1 << 7;
/// `struct io_uring_reg_wait`, what EXT_ARG_REG names.
pub const REG_WAIT_SIZE: u64 = 64;
/// `io_uring_reg_wait.flags`: `ts` holds a timeout.
pub const IORING_REG_WAIT_TS: u32 = 1 << 0;

// Memory regions (IORING_REGISTER_MEM_REGION).
/// `io_uring_region_desc.flags`: the memory is the program's, at `user_addr`.
pub const IORING_MEM_REGION_TYPE_USER: u32 = 1;
/// `io_uring_mem_region_reg.flags`: the region holds the ring's wait arguments.
pub const IORING_MEM_REGION_REG_WAIT_ARG: u64 = 1;

// SQE flags.
pub const IOSQE_FIXED_FILE: u8 = 1 << 0;
pub const IOSQE_IO_DRAIN: u8 = 1 << 1;
pub const IOSQE_IO_LINK: u8 = 1 << 2;
pub const IOSQE_IO_HARDLINK: u8 = 1 << 3;
pub const IOSQE_ASYNC: u8 = 1 << 4;
pub const IOSQE_BUFFER_SELECT: u8 = 1 << 5;
pub const IOSQE_CQE_SKIP_SUCCESS: u8 = 1 << 6;

// CQE flags.
pub const IORING_CQE_F_MORE: u32 = 1 << 1;

// SQ ring flags (sq_off.flags).
pub const IORING_SQ_CQ_OVERFLOW: u32 = 1 << 1;
/// Task work is pending: enter the kernel (GETEVENTS) to run it (TASKRUN_FLAG).
pub const IORING_SQ_TASKRUN: u32 = 1 << 2;

// cq_flags
/// Set by user space: do not signal the registered eventfd.
pub const IORING_CQ_EVENTFD_DISABLED: u32 = 1 << 0;

// mmap offsets.
pub const IORING_OFF_SQ_RING: u64 = 0;
pub const IORING_OFF_CQ_RING: u64 = 0x800_0000;
pub const IORING_OFF_SQES: u64 = 0x1000_0000;
/// The ring's parameter region (IORING_REGISTER_MEM_REGION, kernel memory).
pub const IORING_MAP_OFF_PARAM_REGION: u64 = 0x2000_0000;
/// The bits of an mmap offset that say which region it names.
pub const IORING_OFF_MMAP_MASK: u64 = 0xf800_0000;

// io_uring_register opcodes.
pub const IORING_REGISTER_BUFFERS: u32 = 0;
pub const IORING_UNREGISTER_BUFFERS: u32 = 1;
pub const IORING_REGISTER_FILES: u32 = 2;
pub const IORING_UNREGISTER_FILES: u32 = 3;
pub const IORING_REGISTER_EVENTFD: u32 = 4;
pub const IORING_UNREGISTER_EVENTFD: u32 = 5;
pub const IORING_REGISTER_FILES_UPDATE: u32 = 6;
pub const IORING_REGISTER_EVENTFD_ASYNC: u32 = 7;
pub const IORING_REGISTER_PROBE: u32 = 8;
pub const IORING_REGISTER_PERSONALITY: u32 = 9;
pub const IORING_UNREGISTER_PERSONALITY: u32 = 10;
pub const IORING_REGISTER_QUERY: u32 = 35;

pub const IORING_FSYNC_DATASYNC: u32 = 1;

/// Ring size limits (Linux's IORING_MAX_ENTRIES and IORING_MAX_CQ_ENTRIES).
pub const IORING_MAX_ENTRIES: u32 = 32768;
pub const IORING_MAX_CQ_ENTRIES: u32 = 2 * IORING_MAX_ENTRIES;
