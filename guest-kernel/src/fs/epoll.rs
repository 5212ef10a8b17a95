//! epoll (Linux's fs/eventpoll.c): an interest list of (fd, open file) items and a
//! ready list.
//!
//! Each item puts a one-shot callback on the wait queue of its file (two, for a file
//! with separate read and write queues) that, when the file is woken, queues the item on
//! the ready list, wakes epoll's waiters, and arms itself again. `epoll_wait` asks each
//! queued item's file what it is ready for now: nothing drops it; a level-triggered item
//! goes back to the end of the list (it is reported again while the file stays ready),
//! an edge-triggered one waits for the next wakeup, and an EPOLLONESHOT one is disabled
//! until EPOLL_CTL_MOD. Items hold their file weakly: closing the file's last descriptor
//! removes it from every epoll, as Linux does.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::any::Any;

use super::{alloc_ino, FileType, Node, OpenFile, Stat, POLLERR, POLLHUP, POLLIN, POLLRDNORM};
use crate::errno::*;
use crate::sync::SpinLock;
use crate::task::wait::{WaitError, WaitQueue};

pub const EPOLL_CTL_ADD: u32 = 1;
pub const EPOLL_CTL_DEL: u32 = 2;
pub const EPOLL_CTL_MOD: u32 = 3;

const EPOLLEXCLUSIVE: u32 = 1 << 28;
const EPOLLWAKEUP: u32 = 1 << 29;
const EPOLLONESHOT: u32 = 1 << 30;
const EPOLLET: u32 = 1 << 31;
/// Behaviour bits, not events (Linux's EP_PRIVATE_BITS): what a disabled one-shot keeps.
const PRIVATE_BITS: u32 = EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE;
/// What EPOLLEXCLUSIVE may come with: in/out events, errors, hangups and behaviour bits.
const EXCLUSIVE_OK: u32 = POLLIN | 0x4 /* OUT */ | POLLERR | POLLHUP | EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE
    | POLLRDNORM | 0x80 /* RDBAND */ | 0x100 /* WRNORM */ | 0x200 /* WRBAND */;
/// How deep epolls may be nested in each other (Linux's EP_MAX_NESTS).
const MAX_NESTS: usize = 4;
/// Most events one epoll_wait may ask for (Linux: INT_MAX / sizeof(struct epoll_event)).
pub const MAX_EVENTS: i32 = i32::MAX / 12;

/// `struct epoll_event` (packed on x86-64: 12 bytes).
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
pub struct EpollEvent {
    pub events: u32,
    pub data: u64,
}
const _: () = assert!(size_of::<EpollEvent>() == 12);
// SAFETY: integers only; packed, so no padding.
unsafe impl crate::mm::uaccess::Pod for EpollEvent {}

/// An item's key: the descriptor it was added with and its open file.
type Key = (i32, usize);

struct Item {
    file: Weak<OpenFile>,
    /// The node whose wait queues hold the callbacks (kept to take them back off).
    node: Arc<dyn Node>,
    /// Events asked for (with POLLERR | POLLHUP) and behaviour bits.
    events: u32,
    data: u64,
    /// Callback ids on the node's read and write queues.
    waits: [Option<u64>; 2],
    /// On the ready list.
    queued: bool,
}

impl Item {
    fn enabled(&self) -> bool {
        self.events & !PRIVATE_BITS != 0
    }
}

#[derive(Default)]
struct State {
    items: BTreeMap<Key, Item>,
    ready: VecDeque<Key>,
}

pub struct Epoll {
    me: Weak<Epoll>,
    ino: u64,
    state: SpinLock<State>,
    /// epoll_wait callers, and whoever polls the epoll file itself (a nesting epoll,
    /// io_uring).
    wq: WaitQueue,
}

pub fn new() -> Arc<Epoll> {
    Arc::new_cyclic(|me| Epoll { me: me.clone(), ino: alloc_ino(), state: SpinLock::new(State::default()), wq: WaitQueue::new() })
}

/// The epoll behind an open file, if it is one.
pub fn of(file: &OpenFile) -> Option<&Epoll> {
    file.node.as_any().downcast_ref::<Epoll>()
}

/// Which queues (read, write) an item asking for `events` needs callbacks on.
fn queues_for(node: &dyn Node, events: u32) -> [bool; 2] {
    let mut want = [true, events & (0x4 | 0x100 | 0x200) != 0];
    // A node with one queue for both directions needs one callback.
    if let (Some(r), Some(w)) = (node.poll_queue(false), node.poll_queue(true))
        && core::ptr::eq(r, w)
    {
        want[1] = false;
    }
    want
}

impl Epoll {
    /// EPOLL_CTL_ADD, _MOD and _DEL of `fd` (open file `file`) with `event`.
    pub fn ctl(&self, op: u32, fd: i32, file: &Arc<OpenFile>, event: EpollEvent) -> KResult<()> {
        let key = (fd, Arc::as_ptr(file) as usize);
        let mut events = event.events;
        if matches!(op, EPOLL_CTL_ADD | EPOLL_CTL_MOD) {
            if events & EPOLLEXCLUSIVE != 0 && (op == EPOLL_CTL_MOD || of(file).is_some() || events & !EXCLUSIVE_OK != 0) {
                return Err(EINVAL);
            }
            // There is no suspend to keep away.
            events = (events & !EPOLLWAKEUP) | POLLERR | POLLHUP;
        }
        match op {
            EPOLL_CTL_ADD => {
                if let Some(inner) = of(file)
                    && self.reaches(inner, 0)?
                {
                    return Err(ELOOP);
                }
                let mut st = self.state.lock();
                if st.items.get(&key).is_some_and(|i| i.file.strong_count() > 0) {
                    return Err(EEXIST);
                }
                let item = Item { file: Arc::downgrade(file), node: Arc::clone(&file.node), events, data: event.data, waits: [None, None], queued: false };
                let old = st.items.insert(key, item);
                drop(st);
                if let Some(old) = old {
                    self.disarm(old);
                }
                self.arm(key, [true, true]);
                self.check_now(key);
            }
            EPOLL_CTL_MOD => {
                let mut st = self.state.lock();
                let item = st.items.get_mut(&key).filter(|i| i.file.strong_count() > 0).ok_or(ENOENT)?;
                if item.events & EPOLLEXCLUSIVE != 0 {
                    return Err(EINVAL);
                }
                item.events = events;
                item.data = event.data;
                drop(st);
                // The new events may need the other queue.
                self.arm(key, [true, true]);
                self.check_now(key);
            }
            EPOLL_CTL_DEL => {
                let mut st = self.state.lock();
                let item = st.items.remove(&key).filter(|i| i.file.strong_count() > 0).ok_or(ENOENT)?;
                st.ready.retain(|k| *k != key);
                drop(st);
                self.disarm(item);
            }
            _ => return Err(EINVAL),
        }
        Ok(())
    }

    /// Whether `target` (an epoll being added to this one) is this one or contains it,
    /// `depth` levels down; ELOOP past MAX_NESTS, as Linux.
    fn reaches(&self, target: &Epoll, depth: usize) -> KResult<bool> {
        if core::ptr::eq(self, target) {
            return Ok(true);
        }
        if depth >= MAX_NESTS {
            return Err(ELOOP);
        }
        let inner: Vec<Arc<OpenFile>> = target.state.lock().items.values().filter_map(|i| i.file.upgrade()).collect();
        for f in inner {
            if let Some(ep) = of(&f)
                && self.reaches(ep, depth + 1)?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Puts the callbacks of item `key` that `which` (read, write) asks for and that are
    /// not there yet on its node's queues.
    fn arm(&self, key: Key, which: [bool; 2]) {
        let Some(me) = self.me.upgrade() else { return };
        let (node, events) = {
            let st = self.state.lock();
            let Some(item) = st.items.get(&key) else { return };
            (Arc::clone(&item.node), item.events)
        };
        let want = queues_for(node.as_ref(), events);
        for (i, queue) in [node.poll_queue(false), node.poll_queue(true)].into_iter().enumerate() {
            let Some(queue) = queue.filter(|_| want[i] && which[i]) else { continue };
            let mut st = self.state.lock();
            let Some(item) = st.items.get_mut(&key) else { return };
            if item.waits[i].is_some() {
                continue;
            }
            let weak = Arc::downgrade(&me);
            let id = queue.add_callback_as(alloc::boxed::Box::new(move || woken(&weak, key, i)), events & EPOLLEXCLUSIVE != 0);
            item.waits[i] = Some(id);
        }
    }

    /// Takes an item's callbacks off its node's queues.
    fn disarm(&self, item: Item) {
        for (i, id) in item.waits.iter().enumerate() {
            if let (Some(id), Some(queue)) = (id, item.node.poll_queue(i == 1)) {
                queue.remove_callback(*id);
            }
        }
    }

    /// Queues item `key` if its file is ready for it now (what ADD and MOD find).
    fn check_now(&self, key: Key) {
        let (node, events) = {
            let st = self.state.lock();
            let Some(item) = st.items.get(&key) else { return };
            (Arc::clone(&item.node), item.events)
        };
        if node.poll_mask() & events != 0 {
            self.queue(key);
        }
    }

    /// Puts item `key` on the ready list (once) and wakes whoever waits for this epoll.
    fn queue(&self, key: Key) {
        {
            let mut st = self.state.lock();
            let Some(item) = st.items.get_mut(&key) else { return };
            if item.queued || !item.enabled() {
                return;
            }
            item.queued = true;
            st.ready.push_back(key);
        }
        self.wq.wake_all();
    }

    /// Up to `max` events of ready items, in the order they became ready.
    pub fn take_events(&self, max: usize) -> Vec<EpollEvent> {
        let mut out = Vec::new();
        let mut st = self.state.lock();
        let mut left = st.ready.len();
        while left > 0 && out.len() < max {
            left -= 1;
            let Some(key) = st.ready.pop_front() else { break };
            let Some(item) = st.items.get_mut(&key) else { continue };
            item.queued = false;
            if item.file.strong_count() == 0 {
                // Its file was closed: the item goes with it.
                let gone = st.items.remove(&key);
                drop(st);
                if let Some(item) = gone {
                    self.disarm(item);
                }
                st = self.state.lock();
                continue;
            }
            let mask = item.node.poll_mask() & item.events & !PRIVATE_BITS;
            if mask == 0 || !item.enabled() {
                continue;
            }
            out.push(EpollEvent { events: mask, data: item.data });
            if item.events & EPOLLONESHOT != 0 {
                item.events &= PRIVATE_BITS;
            } else if item.events & EPOLLET == 0 {
                item.queued = true;
                st.ready.push_back(key);
            }
        }
        out
    }

    /// Whether any item may be ready (epoll_wait's condition to look).
    fn maybe_ready(&self) -> bool {
        !self.state.lock().ready.is_empty()
    }

    /// epoll_wait: up to `max` events, waiting until `deadline` (None: forever; Some(0):
    /// not at all) for one. EINTR when a signal comes first.
    pub fn wait(&self, max: usize, deadline: Option<u64>) -> KResult<Vec<EpollEvent>> {
        loop {
            let events = self.take_events(max);
            if !events.is_empty() || deadline == Some(0) {
                return Ok(events);
            }
            match self.wq.wait_until(deadline, || self.maybe_ready()) {
                Ok(()) => {}
                Err(WaitError::Interrupted) => return Err(EINTR),
                Err(WaitError::TimedOut) => return Ok(Vec::new()),
            }
        }
    }
}

/// A callback of item `key` ran (its file's queue `queue` was woken): the item is queued
/// and its callback armed again.
fn woken(ep: &Weak<Epoll>, key: Key, queue: usize) {
    let Some(ep) = ep.upgrade() else { return };
    {
        let mut st = ep.state.lock();
        let Some(item) = st.items.get_mut(&key) else { return };
        item.waits[queue] = None;
    }
    let mut which = [false; 2];
    which[queue] = true;
    ep.arm(key, which);
    ep.queue(key);
}

impl Drop for Epoll {
    fn drop(&mut self) {
        let items = core::mem::take(&mut self.state.lock().items);
        for (_, item) in items {
            self.disarm(item);
        }
    }
}

impl Node for Epoll {
    fn stat(&self) -> Stat {
        Stat { ino: self.ino, mode: FileType::Regular.mode_bits() | 0o600, nlink: 1, ..Stat::default() }
    }

    fn seekable(&self) -> bool {
        false
    }

    /// Readable when some item is ready now (polled without taking its event).
    fn poll_mask(&self) -> u32 {
        let st = self.state.lock();
        let ready = st.ready.iter().filter_map(|k| st.items.get(k)).any(|i| {
            i.enabled() && i.file.strong_count() > 0 && i.node.poll_mask() & i.events & !PRIVATE_BITS != 0
        });
        if ready { POLLIN | POLLRDNORM } else { 0 }
    }

    fn poll_queue(&self, _write: bool) -> Option<&WaitQueue> {
        Some(&self.wq)
    }

    fn read(&self, _offset: u64, _buf: &mut super::IoBuf, _nonblock: bool) -> KResult<usize> {
        Err(EINVAL)
    }

    fn write(&self, _offset: u64, _buf: &super::IoBuf, _nonblock: bool) -> KResult<usize> {
        Err(EINVAL)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
