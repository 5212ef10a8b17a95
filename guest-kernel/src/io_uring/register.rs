//! io_uring_register: what each registration opcode does (the resource tables are
//! `rsrc`'s), an eventfd for completions, restrictions, io-wq limits, and the probe.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;

use super::opdef::{self, IORING_OP_LAST};
use super::rsrc::{self, Kind};
use super::uapi::*;
use super::{cancel, ring_of, IoUring};
use crate::errno::*;
use crate::fs::eventfd::EventFd;
use crate::task;
use crate::task::cred::Cred;

const IORING_REGISTER_RESTRICTIONS: u32 = 11;
const IORING_REGISTER_FILES2: u32 = 13;
const IORING_REGISTER_FILES_UPDATE2: u32 = 14;
const IORING_REGISTER_BUFFERS2: u32 = 15;
const IORING_REGISTER_BUFFERS_UPDATE: u32 = 16;
const IORING_REGISTER_ENABLE_RINGS: u32 = 12;
const IORING_REGISTER_IOWQ_AFF: u32 = 17;
const IORING_UNREGISTER_IOWQ_AFF: u32 = 18;
const IORING_REGISTER_IOWQ_MAX_WORKERS: u32 = 19;
const IORING_REGISTER_RING_FDS: u32 = 20;
const IORING_UNREGISTER_RING_FDS: u32 = 21;
const IORING_REGISTER_PBUF_RING: u32 = 22;
const IORING_UNREGISTER_PBUF_RING: u32 = 23;
const IORING_REGISTER_SYNC_CANCEL: u32 = 24;
const IORING_REGISTER_FILE_ALLOC_RANGE: u32 = 25;
const IORING_REGISTER_PBUF_STATUS: u32 = 26;
const IORING_REGISTER_CLONE_BUFFERS: u32 = 30;
const IORING_REGISTER_CLOCK: u32 = 29;
const IORING_REGISTER_SEND_MSG_RING: u32 = 31;
const IORING_REGISTER_RESIZE_RINGS: u32 = 33;
const IORING_REGISTER_MEM_REGION: u32 = 34;
/// Register opcodes Linux 6.18 knows (IORING_REGISTER_LAST).
pub const IORING_REGISTER_LAST: u32 = 36;
/// In the opcode: `fd` is an index into the task's registered rings.
const IORING_REGISTER_USE_REGISTERED_RING: u32 = 1 << 31;

/// What IORING_REGISTER_RESTRICTIONS allows once the ring is enabled.
pub struct Restrictions {
    register_ops: [bool; IORING_REGISTER_LAST as usize],
    sqe_ops: [bool; IORING_OP_LAST],
    sqe_flags_allowed: u8,
    sqe_flags_required: u8,
}

impl Restrictions {
    /// Linux's io_check_restriction.
    pub fn allows_sqe(&self, opcode: u8, flags: u8) -> bool {
        self.sqe_ops.get(usize::from(opcode)).copied().unwrap_or(false)
            && flags & self.sqe_flags_required == self.sqe_flags_required
            && flags & !(self.sqe_flags_allowed | self.sqe_flags_required) == 0
    }
}

/// `io_uring_register(fd, opcode, arg, nr_args)`.
pub fn register(fd: i32, opcode: u32, arg: u64, nr_args: u32) -> KResult<u64> {
    let use_registered = opcode & IORING_REGISTER_USE_REGISTERED_RING != 0;
    let opcode = opcode & !IORING_REGISTER_USE_REGISTERED_RING;
    if opcode >= IORING_REGISTER_LAST {
        return Err(EINVAL);
    }
    // Linux's "blind" registrations (fd -1, whether or not the opcode says the fd is a
    // registered ring's index): SEND_MSG_RING and QUERY.
    if fd == -1 {
        return match opcode {
            IORING_REGISTER_SEND_MSG_RING => super::msg_ring::send_blind(arg, nr_args),
            IORING_REGISTER_QUERY => super::query::query(arg, nr_args),
            _ => Err(EINVAL),
        };
    }
    let (_file, ring) = if use_registered { super::tctx::registered_ring(fd)? } else { ring_of(fd)? };
    // A restricted ring (enabled after IORING_REGISTER_RESTRICTIONS) allows only the
    // registrations it listed.
    if !ring.disabled.load(core::sync::atomic::Ordering::Relaxed)
        && let Some(r) = ring.restrictions.lock().as_ref()
        && !r.register_ops[opcode as usize]
    {
        return Err(EACCES);
    }
    match opcode {
        // The ring-fd table belongs to the calling task, whichever ring names it.
        IORING_REGISTER_RING_FDS => return super::tctx::register_ring_fds(arg, nr_args),
        IORING_UNREGISTER_RING_FDS => return super::tctx::unregister_ring_fds(arg, nr_args),
        _ => {}
    }
    super::check_issuer(&ring, crate::task::sched::current().tid)?;
    match opcode {
        IORING_REGISTER_RESTRICTIONS => restrict(&ring, arg, nr_args),
        IORING_REGISTER_ENABLE_RINGS => {
            if arg != 0 || nr_args != 0 {
                return Err(EINVAL);
            }
            if !ring.disabled.load(core::sync::atomic::Ordering::Relaxed) {
                return Err(EBADFD);
            }
            // The enabler becomes the single issuer (Linux: set at enable for R_DISABLED).
            if ring.setup_flags & IORING_SETUP_SINGLE_ISSUER != 0 && ring.sqpoll.is_none() {
                ring.issuer.store(crate::task::sched::current().tid, core::sync::atomic::Ordering::Relaxed);
            }
            ring.disabled.store(false, core::sync::atomic::Ordering::Release);
            if let Some(sq) = &ring.sqpoll {
                super::sqpoll::wake(sq);
            }
            Ok(0)
        }
        IORING_REGISTER_BUFFERS => rsrc::register_buffers(&ring, arg, nr_args, 0),
        IORING_UNREGISTER_BUFFERS => rsrc::unregister(&ring, arg, nr_args, Kind::Buffers),
        IORING_REGISTER_FILES => rsrc::register_files(&ring, arg, nr_args, 0),
        IORING_UNREGISTER_FILES => rsrc::unregister(&ring, arg, nr_args, Kind::Files),
        IORING_REGISTER_FILES_UPDATE => rsrc::register_files_update(&ring, arg, nr_args),
        IORING_REGISTER_FILES2 => rsrc::register2(&ring, arg, nr_args, Kind::Files),
        IORING_REGISTER_BUFFERS2 => rsrc::register2(&ring, arg, nr_args, Kind::Buffers),
        IORING_REGISTER_FILES_UPDATE2 => rsrc::register_update2(&ring, arg, nr_args, Kind::Files),
        IORING_REGISTER_BUFFERS_UPDATE => rsrc::register_update2(&ring, arg, nr_args, Kind::Buffers),
        IORING_REGISTER_FILE_ALLOC_RANGE => rsrc::register_alloc_range(&ring, arg, nr_args),
        IORING_REGISTER_CLOCK => {
            if arg == 0 || nr_args != 0 {
                return Err(EINVAL);
            }
            register_clock(&ring, arg)
        }
        IORING_REGISTER_CLONE_BUFFERS => {
            if arg == 0 || nr_args != 1 {
                return Err(EINVAL);
            }
            rsrc::clone_buffers(&ring, arg)
        }
        IORING_REGISTER_EVENTFD | IORING_REGISTER_EVENTFD_ASYNC => {
            if nr_args != 1 {
                return Err(EINVAL);
            }
            let efd_fd: i32 = task::read_user(arg)?;
            let f = task::current_process().files.lock().get(efd_fd)?;
            let node: Arc<dyn crate::fs::Node> = Arc::clone(&f.node);
            if node.as_any().downcast_ref::<EventFd>().is_none() {
                return Err(EINVAL);
            }
            let mut slot = ring.eventfd.lock();
            if slot.is_some() {
                return Err(EBUSY);
            }
            let efd = arc_downcast::<EventFd>(node).ok_or(EINVAL)?;
            let async_only = opcode == IORING_REGISTER_EVENTFD_ASYNC;
            *slot = Some((efd, async_only));
            ring.eventfd_mode.store(if async_only { 2 } else { 1 }, core::sync::atomic::Ordering::Relaxed);
            Ok(0)
        }
        IORING_UNREGISTER_EVENTFD => {
            if arg != 0 || nr_args != 0 {
                return Err(EINVAL);
            }
            ring.eventfd_mode.store(0, core::sync::atomic::Ordering::Relaxed);
            ring.eventfd.lock().take().map(|_| 0).ok_or(ENXIO)
        }
        IORING_REGISTER_PROBE => probe(arg, nr_args),
        IORING_REGISTER_PERSONALITY => {
            if arg != 0 || nr_args != 0 {
                return Err(EINVAL);
            }
            ring.personalities.lock().register(crate::task::cred::current())
        }
        IORING_UNREGISTER_PERSONALITY => {
            if arg != 0 {
                return Err(EINVAL);
            }
            // nr_args is the id.
            ring.personalities.lock().unregister(nr_args)
        }
        IORING_REGISTER_QUERY => super::query::query(arg, nr_args),
        IORING_REGISTER_IOWQ_AFF => {
            if arg == 0 || nr_args == 0 {
                return Err(EINVAL);
            }
            // A CPU mask of nr_args bytes: Linux refuses CPUs that cannot exist; the
            // workers then run on those of them their task may use.
            let mut mask = alloc::vec![0u8; (nr_args as usize).min(128)];
            task::copy_from_user(&mut mask, arg)?;
            let online = crate::arch::smp::online_mask();
            let mut bits = 0u64;
            for (i, &b) in mask.iter().enumerate() {
                if i < 8 {
                    bits |= u64::from(b) << (8 * i);
                } else if b != 0 {
                    return Err(EINVAL);
                }
            }
            if bits & !online != 0 {
                return Err(EINVAL);
            }
            iowq_of(&ring)?.set_affinity(Some(bits));
            Ok(0)
        }
        IORING_UNREGISTER_IOWQ_AFF => {
            if arg != 0 || nr_args != 0 {
                return Err(EINVAL);
            }
            iowq_of(&ring)?.set_affinity(None);
            Ok(0)
        }
        IORING_REGISTER_IOWQ_MAX_WORKERS => {
            if arg == 0 || nr_args != 2 {
                return Err(EINVAL);
            }
            let new: [u32; 2] = task::read_user(arg)?;
            if new.iter().any(|&n| n > i32::MAX as u32) {
                return Err(EINVAL);
            }
            let old = match iowq_of(&ring) {
                Ok(wq) => wq.set_max(new),
                Err(_) => [0, 0],
            };
            task::write_user(arg, &old).map(|()| 0)
        }
        IORING_REGISTER_PBUF_RING => super::kbuf::register_ring(&ring, arg, nr_args),
        IORING_UNREGISTER_PBUF_RING => super::kbuf::unregister_ring(&ring, arg, nr_args),
        IORING_REGISTER_PBUF_STATUS => super::kbuf::ring_status(&ring, arg, nr_args),
        IORING_REGISTER_MEM_REGION => {
            if arg == 0 || nr_args != 1 {
                return Err(EINVAL);
            }
            mem_region(&ring, arg)
        }
        IORING_REGISTER_RESIZE_RINGS => {
            if arg == 0 || nr_args != 1 {
                return Err(EINVAL);
            }
            resize_rings(&ring, arg)
        }
        IORING_REGISTER_SYNC_CANCEL => {
            if arg == 0 || nr_args != 1 {
                return Err(EINVAL);
            }
            sync_cancel(&ring, arg)
        }
        _ => Err(EINVAL),
    }
}

/// IORING_REGISTER_PERSONALITY: credentials snapshots, by id (Linux's
/// `ctx->personalities`, an xarray allocating 1..=USHRT_MAX cyclically).
#[derive(Default)]
pub struct Personalities {
    creds: BTreeMap<u16, Arc<Cred>>,
    /// Where the next search for a free id starts (Linux's `pers_next`).
    next: u32,
}

impl Personalities {
    /// Stores `cred` under the first free id from the last one given plus one, wrapping
    /// to 1 (id 0 means "none" in an SQE); -EBUSY when all are taken.
    fn register(&mut self, cred: Arc<Cred>) -> KResult<u64> {
        let free_from = |start: u32| {
            let mut id = start;
            for &k in self.creds.range(start as u16..).map(|(k, _)| k) {
                if u32::from(k) != id {
                    break;
                }
                id += 1;
            }
            (id <= u32::from(u16::MAX)).then_some(id as u16)
        };
        let start = self.next.max(1);
        let id = if start <= u32::from(u16::MAX) { free_from(start) } else { None };
        let id = id.or_else(|| free_from(1)).ok_or(EBUSY)?;
        self.creds.insert(id, cred);
        self.next = u32::from(id) + 1;
        Ok(u64::from(id))
    }

    /// IORING_UNREGISTER_PERSONALITY: -EINVAL for an id not registered.
    fn unregister(&mut self, id: u32) -> KResult<u64> {
        let id = u16::try_from(id).map_err(|_| EINVAL)?;
        self.creds.remove(&id).map(|_| 0).ok_or(EINVAL)
    }

    /// The credentials registered as `id`.
    pub fn get(&self, id: u16) -> Option<Arc<Cred>> {
        self.creds.get(&id).cloned()
    }
}

/// `struct io_uring_restriction`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct RestrictionReg {
    opcode: u16,
    /// register_op, sqe_op or sqe_flags, per `opcode`.
    value: u8,
    resv: u8,
    resv2: [u32; 3],
}
const _: () = assert!(size_of::<RestrictionReg>() == 16);
// SAFETY: plain integers, every bit pattern valid.
unsafe impl crate::mm::uaccess::Pod for RestrictionReg {}

/// IORING_REGISTER_RESTRICTIONS: only on a disabled ring, once; an unknown kind or a
/// value out of range leaves no restrictions and is -EINVAL.
fn restrict(ring: &IoUring, arg: u64, nr: u32) -> KResult<u64> {
    if !ring.disabled.load(core::sync::atomic::Ordering::Relaxed) {
        return Err(EBADFD);
    }
    if ring.restrictions.lock().is_some() {
        return Err(EBUSY);
    }
    // Linux: IORING_RESTRICTION_LAST + IORING_REGISTER_LAST + IORING_OP_LAST at most.
    if arg == 0 || nr as usize > 4 + IORING_REGISTER_LAST as usize + IORING_OP_LAST {
        return Err(EINVAL);
    }
    let mut r = Restrictions {
        register_ops: [false; IORING_REGISTER_LAST as usize],
        sqe_ops: [false; IORING_OP_LAST],
        sqe_flags_allowed: 0,
        sqe_flags_required: 0,
    };
    for i in 0..u64::from(nr) {
        let reg: RestrictionReg = task::read_user(arg + i * 16)?;
        let v = usize::from(reg.value);
        match reg.opcode {
            0 if v < IORING_REGISTER_LAST as usize => r.register_ops[v] = true,
            1 if v < IORING_OP_LAST => r.sqe_ops[v] = true,
            2 => r.sqe_flags_allowed = reg.value,
            3 => r.sqe_flags_required = reg.value,
            _ => return Err(EINVAL),
        }
    }
    *ring.restrictions.lock() = Some(r);
    Ok(0)
}

/// The io-wq a registration acts on: the SQ poller's for an SQPOLL ring, else the
/// caller's (EINVAL if it has none yet).
fn iowq_of(ring: &Arc<IoUring>) -> KResult<Arc<super::io_wq::IoWq>> {
    let tctx = match &ring.sqpoll {
        Some(sq) => sq.tctx.lock().clone(),
        None => super::tctx::of(&crate::task::sched::current()),
    };
    tctx.map(|t| Arc::clone(&t.iowq)).ok_or(EINVAL)
}

/// `struct io_uring_sync_cancel_reg`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct SyncCancelReg {
    addr: u64,
    fd: i32,
    flags: u32,
    timeout: [i64; 2],
    opcode: u8,
    pad: [u8; 7],
    pad2: [u64; 3],
}
const _: () = assert!(size_of::<SyncCancelReg>() == 64);
// SAFETY: plain integers, every bit pattern valid.
unsafe impl crate::mm::uaccess::Pod for SyncCancelReg {}

fn sync_cancel(ring: &Arc<IoUring>, arg: u64) -> KResult<u64> {
    let sc: SyncCancelReg = task::read_user(arg)?;
    if sc.pad.iter().any(|&b| b != 0) || sc.pad2.iter().any(|&w| w != 0) {
        return Err(EINVAL);
    }
    let known = cancel::IORING_ASYNC_CANCEL_ALL
        | cancel::IORING_ASYNC_CANCEL_FD
        | cancel::IORING_ASYNC_CANCEL_ANY
        | cancel::IORING_ASYNC_CANCEL_FD_FIXED
        | cancel::IORING_ASYNC_CANCEL_USERDATA
        | cancel::IORING_ASYNC_CANCEL_OP;
    if sc.flags & !known != 0 {
        return Err(EINVAL);
    }
    // A timeout of {-1, -1} means none; else it is relative.
    let deadline = match sc.timeout {
        [-1, -1] => None,
        [sec, nsec] if sec >= 0 && (0..1_000_000_000).contains(&nsec) => {
            Some(crate::time::monotonic_ns().saturating_add((sec as u64).saturating_mul(1_000_000_000).saturating_add(nsec as u64)))
        }
        _ => return Err(EINVAL),
    };
    let cd = cancel::CancelData { user_data: sc.addr, flags: sc.flags, fd: sc.fd, opcode: sc.opcode, file: None };
    cancel::sync_cancel(ring, cd, deadline)
}

/// Converts `Arc<dyn Node>` into `Arc<T>` when the node is a `T`.
fn arc_downcast<T: crate::fs::Node>(node: Arc<dyn crate::fs::Node>) -> Option<Arc<T>> {
    let any: Arc<dyn core::any::Any + Send + Sync> = node;
    any.downcast::<T>().ok()
}

/// IORING_REGISTER_CLOCK: the clock of the ring's waits (EXT_ARG timeouts, ABS_TIMER):
/// CLOCK_MONOTONIC or CLOCK_BOOTTIME, which read the same here (there is no suspend).
fn register_clock(ring: &IoUring, arg: u64) -> KResult<u64> {
    const CLOCK_MONOTONIC: u32 = 1;
    const CLOCK_BOOTTIME: u32 = 7;
    let [clockid, resv @ ..]: [u32; 4] = task::read_user(arg)?;
    if resv != [0; 3] || !matches!(clockid, CLOCK_MONOTONIC | CLOCK_BOOTTIME) {
        return Err(EINVAL);
    }
    ring.clock.store(clockid, core::sync::atomic::Ordering::Relaxed);
    Ok(0)
}

/// IORING_REGISTER_MEM_REGION (Linux's io_register_mem_region): the ring's one parameter
/// region (EBUSY for a second), in the program's memory or in kernel memory it maps at the
/// offset written back into the descriptor. With IORING_MEM_REGION_REG_WAIT_ARG it holds
/// the ring's wait arguments, which may be set only while the ring is disabled (no
/// waiter can be reading them).
fn mem_region(ring: &IoUring, arg: u64) -> KResult<u64> {
    if ring.param_region.lock().is_some() {
        return Err(EBUSY);
    }
    let reg: MemRegionReg = task::read_user(arg)?;
    let mut desc: RegionDesc = task::read_user(reg.region_uptr)?;
    if reg.resv != [0; 2] || reg.flags & !IORING_MEM_REGION_REG_WAIT_ARG != 0 {
        return Err(EINVAL);
    }
    let wait = reg.flags & IORING_MEM_REGION_REG_WAIT_ARG != 0;
    if wait && !ring.disabled.load(core::sync::atomic::Ordering::Relaxed) {
        return Err(EINVAL);
    }
    let region = super::memmap::Region::create(&mut desc, IORING_MAP_OFF_PARAM_REGION)?;
    // A descriptor that cannot be written back frees the region again.
    task::write_user(reg.region_uptr, &desc)?;
    // (The lock is not held across user memory accesses, which may sleep: a racing
    // registration that got there first wins.)
    let mut slot = ring.param_region.lock();
    if slot.is_some() {
        return Err(EBUSY);
    }
    *slot = Some((Arc::new(region), wait));
    Ok(0)
}

/// IORING_REGISTER_RESIZE_RINGS (Linux's io_register_resize_rings): new rings of the sizes
/// the params ask for (only CQSIZE and CLAMP may be given; the ring's NO_SQARRAY, SQE128,
/// CQE32, NO_MMAP, CQE_MIXED and SQE_MIXED carry over), for DEFER_TASKRUN rings only: there
/// completions are posted by the one issuer, which is here, so nothing else writes the CQ.
/// The params go back with the sizes and ring offsets filled in (not the SQ array's, nor
/// the features: as Linux). What is pending moves over (`Rings::take_over`).
fn resize_rings(ring: &IoUring, arg: u64) -> KResult<u64> {
    const RESIZE_FLAGS: u32 = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
    const COPY_FLAGS: u32 = IORING_SETUP_NO_SQARRAY
        | IORING_SETUP_SQE128
        | IORING_SETUP_CQE32
        | IORING_SETUP_NO_MMAP
        | IORING_SETUP_CQE_MIXED
        | IORING_SETUP_SQE_MIXED;
    if !ring.flag(IORING_SETUP_DEFER_TASKRUN) {
        return Err(EINVAL);
    }
    let mut p: Params = task::read_user(arg)?;
    if p.flags & !RESIZE_FLAGS != 0 {
        return Err(EINVAL);
    }
    p.flags |= ring.setup_flags & COPY_FLAGS;
    let (sq_entries, cq_entries) = super::ring_sizes(&p)?;
    let no_mmap = p.flags & IORING_SETUP_NO_MMAP != 0;
    let user_mem = no_mmap.then_some((p.cq_off.user_addr, p.sq_off.user_addr));
    let new = super::ring::Rings::new(sq_entries, cq_entries, p.flags, user_mem)?;
    p.sq_entries = sq_entries;
    p.cq_entries = cq_entries;
    p.sq_off = SqringOffsets { array: p.sq_off.array, user_addr: if no_mmap { p.sq_off.user_addr } else { 0 }, ..new.sq_offsets() };
    p.cq_off = CqringOffsets { user_addr: if no_mmap { p.cq_off.user_addr } else { 0 }, ..new.cq_offsets() };
    task::write_user(arg, &p)?;
    // No submission (the submission lock) and no completion (`state`) while the rings
    // change hands; all three references to them change together.
    let old = {
        let mut submit = ring.submit.lock();
        let mut state = ring.state.lock();
        let mut rings = ring.rings.lock();
        new.take_over(&rings)?;
        let new = Arc::new(new);
        submit.rings = Arc::clone(&new);
        state.rings = Arc::clone(&new);
        core::mem::replace(&mut *rings, new)
    };
    // The old rings go with their last user (freed or unpinned outside the locks).
    drop(old);
    Ok(0)
}

/// `struct io_uring_probe` (16 bytes) followed by `io_uring_probe_op`s (8 bytes each).
fn probe(arg: u64, nr: u32) -> KResult<u64> {
    let nr = (nr as usize).min(IORING_OP_LAST);
    let size = 16 + nr * 8;
    let mut buf = alloc::vec![0u8; size];
    task::copy_from_user(&mut buf, arg)?;
    if buf.iter().any(|&b| b != 0) {
        return Err(EINVAL);
    }
    buf[0] = (IORING_OP_LAST - 1) as u8;
    buf[1] = nr.min(IORING_OP_LAST) as u8;
    for op in 0..nr.min(IORING_OP_LAST) {
        let at = 16 + op * 8;
        buf[at] = op as u8;
        if opdef::supported(op) {
            buf[at + 2] = 1; // IO_URING_OP_SUPPORTED
        }
    }
    task::copy_to_user(arg, &buf).map(|()| 0)
}
