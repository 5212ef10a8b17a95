//! epoll syscalls: epoll_create, epoll_create1, epoll_ctl, epoll_wait, epoll_pwait,
//! epoll_pwait2 (the object itself is `fs::epoll`).

use alloc::string::String;

use super::fs::{file, install};
use super::Ctx;
use crate::errno::*;
use crate::fs::epoll::{self, EpollEvent, EPOLL_CTL_ADD, EPOLL_CTL_MOD, MAX_EVENTS};
use crate::fs::file::{O_CLOEXEC, O_RDWR};
use crate::fs::OpenFile;
use crate::task;

pub fn epoll_create(c: &mut Ctx) -> KResult<u64> {
    if c.int(0) <= 0 {
        return Err(EINVAL);
    }
    create(false)
}

pub fn epoll_create1(c: &mut Ctx) -> KResult<u64> {
    if c.a[0] & !u64::from(O_CLOEXEC) != 0 {
        return Err(EINVAL);
    }
    create(c.a[0] != 0)
}

fn create(cloexec: bool) -> KResult<u64> {
    install(OpenFile::new(epoll::new(), O_RDWR, String::from("anon_inode:[eventpoll]")), cloexec)
}

/// Whether an EPOLL_CTL op carries an event.
pub fn has_event(op: u32) -> bool {
    matches!(op, EPOLL_CTL_ADD | EPOLL_CTL_MOD)
}

pub fn epoll_ctl(c: &mut Ctx) -> KResult<u64> {
    let op = c.a[1] as u32;
    let event = if has_event(op) { task::read_user(c.a[3])? } else { EpollEvent::default() };
    do_ctl(c.int(0), op, c.int(2), event).map(|()| 0)
}

/// epoll_ctl with its event already copied (IORING_OP_EPOLL_CTL copies it at prep).
pub fn do_ctl(epfd: i32, op: u32, fd: i32, event: EpollEvent) -> KResult<()> {
    let ep_file = file(epfd)?;
    let target = file(fd)?;
    // Only a file that can wake its waiters can be watched.
    if target.node.poll_queue(false).is_none() {
        return Err(EPERM);
    }
    let ep = epoll::of(&ep_file).filter(|_| !alloc::sync::Arc::ptr_eq(&ep_file, &target)).ok_or(EINVAL)?;
    ep.ctl(op, fd, &target, event)
}

pub fn epoll_wait(c: &mut Ctx) -> KResult<u64> {
    wait(c.int(0), c.a[1], c.int(2), deadline_ms(c.int(3)), None)
}

pub fn epoll_pwait(c: &mut Ctx) -> KResult<u64> {
    let mask = sigmask(c.a[4], c.a[5])?;
    wait(c.int(0), c.a[1], c.int(2), deadline_ms(c.int(3)), mask)
}

pub fn epoll_pwait2(c: &mut Ctx) -> KResult<u64> {
    let deadline = match c.a[3] {
        0 => None,
        ts => Some(match super::time::read_timespec(ts)? {
            0 => 0,
            ns => crate::time::monotonic_ns().saturating_add(ns),
        }),
    };
    let mask = sigmask(c.a[4], c.a[5])?;
    wait(c.int(0), c.a[1], c.int(2), deadline, mask)
}

/// A millisecond timeout as a deadline: negative waits forever, 0 not at all.
fn deadline_ms(ms: i32) -> Option<u64> {
    match ms {
        ..0 => None,
        0 => Some(0),
        ms => Some(crate::time::monotonic_ns().saturating_add(ms as u64 * 1_000_000)),
    }
}

/// The temporary signal mask of a p-variant (none when `addr` is 0; its size must be 8):
/// epoll_pwait's, ppoll's, pselect6's.
pub fn sigmask(addr: u64, size: u64) -> KResult<Option<u64>> {
    if addr == 0 {
        return Ok(None);
    }
    if size != 8 {
        return Err(EINVAL);
    }
    task::read_user(addr).map(Some)
}

/// Checks epoll_wait's buffer as Linux does: 1..=MAX_EVENTS events, inside user space.
pub fn check_events(events: u64, max: i32) -> KResult<usize> {
    if max <= 0 || max > MAX_EVENTS {
        return Err(EINVAL);
    }
    let end = events.checked_add(max as u64 * size_of::<EpollEvent>() as u64).ok_or(EFAULT)?;
    if end > crate::mm::USER_END {
        return Err(EFAULT);
    }
    Ok(max as usize)
}

/// Copies `events` out to user address `addr`; how many.
pub fn put_events(addr: u64, events: &[EpollEvent]) -> KResult<u64> {
    for (i, e) in events.iter().enumerate() {
        task::write_user(addr + (i * size_of::<EpollEvent>()) as u64, e)?;
    }
    Ok(events.len() as u64)
}

fn wait(epfd: i32, events: u64, max: i32, deadline: Option<u64>, mask: Option<u64>) -> KResult<u64> {
    let f = file(epfd)?;
    let max = check_events(events, max)?;
    let ep = epoll::of(&f).ok_or(EINVAL)?;
    let ready = crate::task::signal::with_sigmask(mask, || ep.wait(max, deadline))?;
    put_events(events, &ready)
}
