//! poll, ppoll, select, pselect6: wait until one of several files is ready, a signal
//! comes or the timeout passes (Linux's fs/select.c). Readiness is each file's
//! `poll_mask`; the wait arms a one-shot callback on each file's wait queues
//! (`wait_files`), as epoll does, so any of them wakes the caller.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use super::epoll::sigmask;
use super::fs::file;
use super::Ctx;
use crate::errno::*;
use crate::fs::{OpenFile, POLLERR, POLLHUP, POLLIN, POLLOUT, POLLPRI, POLLRDNORM, POLLWRNORM};
use crate::task::wait::{WaitError, WaitQueue};
use crate::task::{self, current_process};
use crate::time::monotonic_ns;

const POLLNVAL: u32 = 0x20;
const POLLRDBAND: u32 = 0x80;
const POLLWRBAND: u32 = 0x200;
/// What counts as readable, writable and exceptional for select (Linux's POLLIN_SET ...).
const SELECT_IN: u32 = POLLRDNORM | POLLRDBAND | POLLIN | POLLHUP | POLLERR;
const SELECT_OUT: u32 = POLLWRBAND | POLLWRNORM | POLLOUT | POLLERR;
const SELECT_EX: u32 = POLLPRI;
const NSEC: u64 = 1_000_000_000;

/// Waits until `ready()` holds, the deadline passes or a signal comes, woken by any of
/// `files`' wait queues (the write queue too where `bool` says so). Files without a
/// queue never block, so `ready()` already holds for them.
fn wait_files(files: &[(Arc<OpenFile>, bool)], deadline: Option<u64>, mut ready: impl FnMut() -> bool) -> Result<(), WaitError> {
    let wq = Arc::new(WaitQueue::new());
    let fired = Arc::new(AtomicBool::new(false));
    loop {
        if ready() {
            return Ok(());
        }
        let mut armed = Vec::new();
        for (f, write) in files {
            for w in [false, true] {
                if w && !write {
                    continue;
                }
                if let Some(q) = f.node.poll_queue(w) {
                    let (wq, fired) = (Arc::clone(&wq), Arc::clone(&fired));
                    let id = q.add_callback_as(
                        Box::new(move || {
                            fired.store(true, Ordering::Relaxed);
                            wq.wake_all();
                        }),
                        false,
                    );
                    armed.push((q, id));
                }
            }
        }
        let result = wq.wait_until(deadline, || fired.load(Ordering::Relaxed));
        for (q, id) in armed {
            q.remove_callback(id);
        }
        fired.store(false, Ordering::Relaxed);
        if let Err(e) = result {
            return if ready() { Ok(()) } else { Err(e) };
        }
    }
}

/// A wait's outcome as the call's: a timeout is no error (nothing was ready), a signal
/// is EINTR.
fn interrupted(waited: Result<(), WaitError>) -> KResult<()> {
    match waited {
        Err(WaitError::Interrupted) => Err(EINTR),
        _ => Ok(()),
    }
}

/// A deadline `ns` from now (0: none to wait for).
fn deadline_in(ns: u64) -> u64 {
    if ns == 0 { 0 } else { monotonic_ns().saturating_add(ns) }
}

/// The time left until `deadline`, written back to a timeout argument as Linux's
/// poll_select_finish does (`usec`: a `timeval`, else a `timespec`). A timeout that
/// cannot be written back is not an error.
fn write_back_left(addr: u64, deadline: Option<u64>, usec: bool) {
    let (Some(d), true) = (deadline, addr != 0) else { return };
    let left = d.saturating_sub(monotonic_ns());
    let frac = if usec { left % NSEC / 1000 } else { left % NSEC };
    let _ = task::write_user(addr, &[left / NSEC, frac]);
}

// --- poll ---

/// `struct pollfd`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct PollFd {
    fd: i32,
    events: u16,
    revents: u16,
}

// SAFETY: plain integers, no padding: any bytes are a valid value.
unsafe impl crate::mm::uaccess::Pod for PollFd {}

pub fn poll(c: &mut Ctx) -> KResult<u64> {
    let deadline = match c.int(2) {
        ..0 => None,
        ms => Some(deadline_in(ms as u64 * 1_000_000)),
    };
    do_poll(c.a[0], c.a[1], deadline, None)
}

pub fn ppoll(c: &mut Ctx) -> KResult<u64> {
    let deadline = match c.a[2] {
        0 => None,
        ts => Some(deadline_in(super::time::read_timespec(ts)?)),
    };
    let mask = sigmask(c.a[3], c.a[4])?;
    let result = do_poll(c.a[0], c.a[1], deadline, mask);
    write_back_left(c.a[2], deadline, false);
    result
}

fn do_poll(addr: u64, nfds: u64, deadline: Option<u64>, mask: Option<u64>) -> KResult<u64> {
    if nfds > current_process().files.lock().limit() as u64 {
        return Err(EINVAL);
    }
    let mut fds = alloc::vec![PollFd::default(); nfds as usize];
    for (i, p) in fds.iter_mut().enumerate() {
        *p = task::read_user(addr + i as u64 * 8)?;
    }
    // The files, looked up once (a closed fd is POLLNVAL until the call ends).
    let files: Vec<Option<Arc<OpenFile>>> = fds.iter().map(|p| if p.fd < 0 { None } else { file(p.fd).ok() }).collect();
    let scan = |fds: &mut [PollFd]| {
        let mut ready = 0;
        for (p, f) in fds.iter_mut().zip(&files) {
            p.revents = match (p.fd, f) {
                (..0, _) => 0,
                (_, None) => POLLNVAL as u16,
                (_, Some(f)) => (f.node.poll_mask() & (u32::from(p.events) | POLLERR | POLLHUP)) as u16,
            };
            ready += u64::from(p.revents != 0);
        }
        ready
    };
    let watched: Vec<(Arc<OpenFile>, bool)> =
        fds.iter().zip(&files).filter_map(|(p, f)| Some((Arc::clone(f.as_ref()?), u32::from(p.events) & (POLLOUT | POLLWRNORM | POLLWRBAND) != 0))).collect();
    let mut ready = 0;
    task::signal::with_sigmask(mask, || {
        interrupted(wait_files(&watched, deadline, || {
            ready = scan(&mut fds);
            ready > 0
        }))
    })?;
    for (i, p) in fds.iter().enumerate() {
        task::write_user(addr + i as u64 * 8 + 6, &p.revents)?;
    }
    Ok(ready)
}

// --- select ---

pub fn select(c: &mut Ctx) -> KResult<u64> {
    let deadline = match c.a[4] {
        0 => None,
        tv => {
            let [sec, usec]: [i64; 2] = task::read_user(tv)?;
            Some(deadline_in(valid_timeout(sec, usec.checked_mul(1000).ok_or(EINVAL)?)?))
        }
    };
    let result = do_select(c.int(0), [c.a[1], c.a[2], c.a[3]], deadline, None);
    write_back_left(c.a[4], deadline, true);
    result
}

pub fn pselect6(c: &mut Ctx) -> KResult<u64> {
    let deadline = match c.a[4] {
        0 => None,
        ts => {
            let [sec, nsec]: [i64; 2] = task::read_user(ts)?;
            Some(deadline_in(valid_timeout(sec, nsec)?))
        }
    };
    // The sixth argument: { const sigset_t *ss; size_t ss_len; }.
    let mask = match c.a[5] {
        0 => None,
        arg => {
            let [ss, len]: [u64; 2] = task::read_user(arg)?;
            sigmask(ss, len)?
        }
    };
    let result = do_select(c.int(0), [c.a[1], c.a[2], c.a[3]], deadline, mask);
    write_back_left(c.a[4], deadline, false);
    result
}

/// A select timeout in ns: whole seconds and nanoseconds (carried over as Linux does
/// for select's microseconds), EINVAL when negative.
fn valid_timeout(sec: i64, nsec: i64) -> KResult<u64> {
    let sec = sec.checked_add(nsec / NSEC as i64).ok_or(EINVAL)?;
    let nsec = nsec % NSEC as i64;
    if sec < 0 || nsec < 0 {
        return Err(EINVAL);
    }
    Ok((sec as u64).saturating_mul(NSEC).saturating_add(nsec as u64))
}

/// select's three fd sets (`sets`: user addresses of read, write and except sets, 0 for
/// none): each fd named must be open (EBADF); the sets come back holding the ready fds.
fn do_select(nfds: i32, sets: [u64; 3], deadline: Option<u64>, mask: Option<u64>) -> KResult<u64> {
    if nfds < 0 {
        return Err(EINVAL);
    }
    // Past the descriptor table's reach nothing can be set (Linux clips to max_fds).
    let nfds = (nfds as usize).min(current_process().files.lock().limit());
    let words = nfds.div_ceil(64);
    let mut want = [const { Vec::new() }; 3];
    for (w, &addr) in want.iter_mut().zip(&sets) {
        *w = alloc::vec![0u64; words];
        if addr != 0 {
            for (i, word) in w.iter_mut().enumerate() {
                *word = task::read_user(addr + i as u64 * 8)?;
            }
        }
    }
    let mut files = Vec::new();
    for fd in 0..nfds {
        let bit = |w: &Vec<u64>| w[fd / 64] >> (fd % 64) & 1 != 0;
        if want.iter().any(bit) {
            files.push((fd, file(fd as i32)?, bit(&want[1])));
        }
    }
    let mut got = [const { Vec::new() }; 3];
    let mut ready = 0;
    let scan = |got: &mut [Vec<u64>; 3]| {
        let mut n = 0;
        for g in got.iter_mut() {
            *g = alloc::vec![0u64; words];
        }
        for (fd, f, _) in &files {
            let m = f.node.poll_mask();
            for (k, set) in [SELECT_IN, SELECT_OUT, SELECT_EX].into_iter().enumerate() {
                if want[k][fd / 64] >> (fd % 64) & 1 != 0 && m & set != 0 {
                    got[k][fd / 64] |= 1 << (fd % 64);
                    n += 1;
                }
            }
        }
        n
    };
    let watched: Vec<(Arc<OpenFile>, bool)> = files.iter().map(|(_, f, w)| (Arc::clone(f), *w)).collect();
    task::signal::with_sigmask(mask, || {
        interrupted(wait_files(&watched, deadline, || {
            ready = scan(&mut got);
            ready > 0
        }))
    })?;
    for (g, &addr) in got.iter().zip(&sets) {
        if addr != 0 {
            for (i, word) in g.iter().enumerate() {
                task::write_user(addr + i as u64 * 8, word)?;
            }
        }
    }
    Ok(ready)
}
