//! io_uring_register: fixed buffers and files, an eventfd for completions, and the probe.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::opdef::{self, IORING_OP_LAST};
use super::rsrc::{MAX_BUFFERS, MAX_BUFFER_LEN, MAX_FIXED_FILES};
use super::uapi::*;
use super::{ring_of, IoUring};
use crate::errno::*;
use crate::fs::eventfd::EventFd;
use crate::mm::PAGE_SIZE;
use crate::task;

/// `io_uring_register(fd, opcode, arg, nr_args)`.
pub fn register(fd: i32, opcode: u32, arg: u64, nr_args: u32) -> KResult<u64> {
    let (_file, ring) = ring_of(fd)?;
    match opcode {
        IORING_REGISTER_BUFFERS => register_buffers(&ring, arg, nr_args),
        IORING_UNREGISTER_BUFFERS => {
            if arg != 0 || nr_args != 0 {
                return Err(EINVAL);
            }
            ring.rsrc.lock().buffers.take().map(|_| 0).ok_or(ENXIO)
        }
        IORING_REGISTER_FILES => register_files(&ring, arg, nr_args),
        IORING_UNREGISTER_FILES => {
            if arg != 0 || nr_args != 0 {
                return Err(EINVAL);
            }
            ring.rsrc.lock().files.take().map(|_| 0).ok_or(ENXIO)
        }
        IORING_REGISTER_FILES_UPDATE => update_files(&ring, arg, nr_args),
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
        _ => Err(EINVAL),
    }
}

/// Converts `Arc<dyn Node>` into `Arc<T>` when the node is a `T`.
fn arc_downcast<T: crate::fs::Node>(node: Arc<dyn crate::fs::Node>) -> Option<Arc<T>> {
    let any: Arc<dyn core::any::Any + Send + Sync> = node;
    any.downcast::<T>().ok()
}

fn register_buffers(ring: &IoUring, arg: u64, nr: u32) -> KResult<u64> {
    if nr == 0 || nr as usize > MAX_BUFFERS {
        return Err(EINVAL);
    }
    if ring.rsrc.lock().buffers.is_some() {
        return Err(EBUSY);
    }
    let iovecs = crate::syscall::read_iovecs(arg, u64::from(nr)).map_err(|e| if e == EINVAL { EFAULT } else { e })?;
    let mut buffers = Vec::with_capacity(iovecs.len());
    for (base, len) in iovecs {
        let len = len as u64;
        if len > MAX_BUFFER_LEN || (base == 0 && len != 0) {
            return Err(EFAULT);
        }
        // Fault every page in now, checking the whole range is writable user memory.
        let mut page = base & !(PAGE_SIZE - 1);
        while page < base + len {
            let mut byte = [0u8];
            task::copy_from_user(&mut byte, page.max(base))?;
            task::copy_to_user(page.max(base), &byte)?;
            page += PAGE_SIZE;
        }
        buffers.push((base, len));
    }
    ring.rsrc.lock().buffers = Some(buffers);
    Ok(0)
}

/// IORING_REGISTER_FILES_SKIP: leave this slot as it is (FILES_UPDATE).
const FILES_SKIP: i32 = -2;

/// What one fd of a registration array asks for a slot.
enum Slot {
    Set(Option<Arc<crate::fs::OpenFile>>),
    Skip,
}

/// Reads `nr` fds from user memory into files (-1: an empty slot; -2: skip).
fn read_fds(arg: u64, nr: u32, ring: &IoUring) -> KResult<Vec<Slot>> {
    let mut raw = alloc::vec![0u8; nr as usize * 4];
    task::copy_from_user(&mut raw, arg)?;
    let files = task::current_process().files.lock().clone();
    raw.chunks_exact(4)
        .map(|c| {
            let fd = i32::from_le_bytes(c.try_into().expect("4 bytes"));
            if fd == -1 {
                return Ok(Slot::Set(None));
            }
            if fd == FILES_SKIP {
                return Ok(Slot::Skip);
            }
            let f = files.get(fd)?;
            // A ring cannot hold itself (that would keep it alive forever).
            if f.node.as_any().downcast_ref::<IoUring>().is_some_and(|r| core::ptr::eq(r, ring)) {
                return Err(EBADF);
            }
            Ok(Slot::Set(Some(f)))
        })
        .collect()
}

fn register_files(ring: &IoUring, arg: u64, nr: u32) -> KResult<u64> {
    if nr == 0 {
        return Err(EINVAL);
    }
    if nr as usize > MAX_FIXED_FILES {
        return Err(EMFILE);
    }
    if ring.rsrc.lock().files.is_some() {
        return Err(EBUSY);
    }
    let files = read_fds(arg, nr, ring)?
        .into_iter()
        .map(|s| match s {
            Slot::Set(f) => f,
            Slot::Skip => None,
        })
        .collect();
    ring.rsrc.lock().files = Some(files);
    Ok(0)
}

fn update_files(ring: &IoUring, arg: u64, nr: u32) -> KResult<u64> {
    let update: FilesUpdate = task::read_user(arg)?;
    if update.resv != 0 || nr == 0 || nr as usize > MAX_FIXED_FILES {
        return Err(EINVAL);
    }
    if ring.rsrc.lock().files.is_none() {
        return Err(ENXIO);
    }
    let new = read_fds(update.fds, nr, ring)?;
    let mut rsrc = ring.rsrc.lock();
    let table = rsrc.files.as_mut().expect("checked above");
    let start = update.offset as usize;
    if start.checked_add(new.len()).is_none_or(|end| end > table.len()) {
        return Err(EINVAL);
    }
    let n = new.len();
    for (i, slot) in new.into_iter().enumerate() {
        if let Slot::Set(f) = slot {
            table[start + i] = f;
        }
    }
    Ok(n as u64)
}

/// `struct io_uring_probe` (16 bytes) followed by `io_uring_probe_op`s (8 bytes each).
fn probe(arg: u64, nr: u32) -> KResult<u64> {
    let nr = (nr as usize).min(256);
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
