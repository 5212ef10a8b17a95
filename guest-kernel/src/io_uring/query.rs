//! IORING_REGISTER_QUERY (Linux's io_uring/query.c): what this io_uring supports, asked
//! with or without a ring (fd -1). The argument is a chain of `io_uring_query_hdr`s linked
//! by `next_entry`; each names a query, a buffer and its size, and gets back a result and
//! the size of the answer.
//!
//! Per entry, as Linux: an unknown query is -EOPNOTSUPP; nonzero `resv` or `result`, or
//! size 0, is -EINVAL; otherwise the answer is written, cut to the caller's size. In every
//! case the caller's buffer past the answer (all of it, on an error) is zeroed up to its
//! size. A header or buffer that cannot be read or written ends the call with -EFAULT.
//! The 1000th entry of a chain ends it with -ERANGE (a chain may loop).

use super::uapi::*;
use super::{opdef, register, ring};
use crate::errno::*;
use crate::task;

const IO_URING_QUERY_OPCODES: u32 = 0;
const IO_URING_QUERY_ZCRX: u32 = 1;
const IO_URING_QUERY_SCQ: u32 = 2;
const IO_URING_QUERY_ZCRX_NOTIF: u32 = 3;
/// Query opcodes Linux defines (`__IO_URING_QUERY_MAX`).
const IO_URING_QUERY_MAX: u32 = 4;

/// The largest answer (Linux's IO_MAX_QUERY_SIZE, the size of its union of them).
const MAX_QUERY_SIZE: usize = 48;
const _: () = assert!(size_of::<QueryOpcode>() <= MAX_QUERY_SIZE && size_of::<QueryScq>() <= MAX_QUERY_SIZE);
const _: () = assert!(QUERY_ZCRX_SIZE <= MAX_QUERY_SIZE && QUERY_ZCRX_NOTIF_SIZE == MAX_QUERY_SIZE);
/// Entries a chain may have (Linux's IO_MAX_QUERY_ENTRIES).
const MAX_QUERY_ENTRIES: u32 = 1000;

/// `io_uring_register(fd, IORING_REGISTER_QUERY, arg, nr_args)`: the ring, if any, plays
/// no part in the answers.
pub fn query(arg: u64, nr_args: u32) -> KResult<u64> {
    if nr_args != 0 {
        return Err(EINVAL);
    }
    let mut uhdr = arg;
    let mut nr = 0;
    // (Linux also stops with -EINTR for a fatal signal between entries; the limit
    // bounds the work here.)
    while uhdr != 0 {
        uhdr = entry(uhdr)?;
        nr += 1;
        if nr >= MAX_QUERY_ENTRIES {
            return Err(ERANGE);
        }
    }
    Ok(0)
}

/// Answers the entry at `uhdr`; returns the next one's address.
fn entry(uhdr: u64) -> KResult<u64> {
    let mut hdr: QueryHdr = task::read_user(uhdr)?;
    let user_size = hdr.size as usize;
    let mut data = [0u8; MAX_QUERY_SIZE];
    let answer = if hdr.query_op >= IO_URING_QUERY_MAX {
        Err(EOPNOTSUPP)
    } else if hdr.resv != [0; 3] || hdr.result != 0 || user_size == 0 {
        Err(EINVAL)
    } else {
        // Read first, as Linux does (an unreadable buffer is -EFAULT for the call).
        task::copy_from_user(&mut data[..user_size.min(MAX_QUERY_SIZE)], hdr.query_data)?;
        answer(hdr.query_op, &mut data)
    };
    let len = match answer {
        Ok(len) => len.min(user_size),
        Err(_) => 0,
    };
    hdr.result = answer.map_or_else(|e| -e.0, |_| 0);
    hdr.size = len as u32;
    // The tail first, then the answer (Linux's copy_struct_to_user).
    clear_user(hdr.query_data.wrapping_add(len as u64), user_size - len)?;
    task::copy_to_user(hdr.query_data, &data[..len])?;
    task::write_user(uhdr, &hdr)?;
    Ok(hdr.next_entry)
}

/// Writes the answer to `op` into `data`; returns its size.
fn answer(op: u32, data: &mut [u8; MAX_QUERY_SIZE]) -> KResult<usize> {
    fn put<T: crate::mm::uaccess::Pod>(data: &mut [u8; MAX_QUERY_SIZE], v: &T) -> usize {
        let bytes = crate::mm::uaccess::bytes_of(v);
        data[..bytes.len()].copy_from_slice(bytes);
        bytes.len()
    }
    match op {
        IO_URING_QUERY_OPCODES => Ok(put(data, &opcodes())),
        IO_URING_QUERY_SCQ => Ok(put(data, &QueryScq { hdr_size: ring::CQES as u64, hdr_alignment: ring::HDR_ALIGN as u64 })),
        // Zero-copy receive does not exist here: Linux's answer for a query it does not
        // have, rather than its flags (which it reports even when built without ZCRX).
        IO_URING_QUERY_ZCRX | IO_URING_QUERY_ZCRX_NOTIF => Err(EOPNOTSUPP),
        // (None: ops past IO_URING_QUERY_MAX were refused before; Linux's switch would
        // leave -EINVAL.)
        _ => Err(EINVAL),
    }
}

/// IO_URING_QUERY_OPCODES, from the tables that setup, enter, submission, register and
/// the probe use.
fn opcodes() -> QueryOpcode {
    QueryOpcode {
        nr_request_opcodes: opdef::IORING_OP_LAST as u32,
        nr_register_opcodes: register::IORING_REGISTER_LAST,
        feature_flags: u64::from(super::FEATURES),
        ring_setup_flags: u64::from(super::SUPPORTED_SETUP),
        enter_flags: u64::from(super::ENTER_FLAGS),
        sqe_flags: u64::from(opdef::SQE_VALID_FLAGS),
        nr_query_opcodes: IO_URING_QUERY_MAX,
        pad: 0,
    }
}

/// Zeroes `len` bytes of user memory at `addr` (Linux's clear_user).
fn clear_user(addr: u64, len: usize) -> KResult<()> {
    static ZEROS: [u8; 4096] = [0; 4096];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(ZEROS.len());
        task::copy_to_user(addr.wrapping_add(done as u64), &ZEROS[..n])?;
        done += n;
    }
    Ok(())
}
