//! virtio-net queue processing, with no knowledge of the transport: transmit chains are
//! sent when their queue is drained ([`super::tx`]); receive chains are held until frames
//! come ([`super::rx`]). All checks of what the guest wrote happen there: the chain's
//! shape when it is popped (`Chain::parse`, then `Receiver::push` or `tx::check`), a
//! transmit header once copied out of guest memory.
//!
//! The host side is the host's io_uring, one ring per activated device ([`Uring`], made
//! in [`QueueHandler::prepare`] on the worker thread), restricted as the disk's is: it
//! accepts only POLL_ADD, POLL_REMOVE and WRITEV ([`RING_OPS`]), no SQE flag, and no
//! register call once enabled. Its registered eventfd is [`QueueHandler::completion_fd`],
//! which the worker waits on (level-triggered) beside the queues' eventfds, calling
//! [`QueueHandler::complete`] when it is readable.
//!
//! Transmitting. The frames of one drained transmit queue go out together: `start` checks
//! each chain and keeps it, `submit` puts one WRITEV per frame on the ring and waits for
//! them all in one `io_uring_enter`, and the worker publishes their used entries with the
//! drain ([`QueueHandler::finished`]), so no write outlives `submit`. The writes carry
//! RWF_NOWAIT: without it io_uring answers a tap (or socket) that would block by arming
//! a poll and retrying later (Linux 6.x does so even on an O_NONBLOCK descriptor), which
//! would hold guest memory; with it a write is done inside `io_uring_enter`, and EAGAIN
//! drops the frame as a `writev` would. The used entries keep the avail ring's order (a
//! refused chain waits in the batch). The eventfd is off while `submit` waits
//! (IORING_CQ_EVENTFD_DISABLED): the writes' completions, reaped there, must not wake the
//! worker; a poll CQE posted meanwhile is announced by writing it.
//!
//! Receiving. Frames arrive without a kick, so the worker must also wait on the tap: a
//! multishot POLL_ADD (POLLIN) on the ring, which posts a CQE each time the tap is woken
//! (a frame came), in flight only while chains are held and no frame waits for more
//! ("armed"). It is armed once, not after every wake: when the driver posts chains while
//! the tap is not armed, `submit` arms it (a frame already waiting completes it at once);
//! when the device stops wanting frames (no chain to fill, or a frame waits for chains)
//! `complete` removes it with a POLL_REMOVE, whose CQEs (and the poll's -ECANCELED) are
//! reaped at once, the eventfd off, and are stale by the poll's generation in its
//! `user_data` should any come later. With no chain to fill the device does not read the
//! tap: the frames wait in the host kernel's tap queue, which bounds them (txqueuelen;
//! beyond it the host drops). A poll holds no guest memory: a reset drops the ring with
//! any poll in flight, and nothing is cancelled or waited for. When a frame waits for
//! chains, `submit` writes the eventfd itself so that `complete` finishes it.
//! `complete` reads at most [`RX_BUDGET`] frames per call, with one nonblocking `readv`
//! each, so that a flood from the host cannot keep the worker from the transmit queue
//! and from interrupting; a multishot poll does not fire again for frames already
//! waiting, so when the budget runs out `complete` writes the eventfd to be called
//! again. A poll the kernel ends (a CQE without IORING_CQE_F_MORE; a kernel before 5.13
//! refuses multishot polls with EINVAL, and gets one-shot polls from then on) is armed
//! again by `complete` while frames are wanted. A tap that is gone (POLLERR or POLLHUP
//! and no frame, a failing read) stops receiving: the poll is removed and not armed
//! again, so it cannot spin the worker.
//!
//! Why `readv` rather than a READV on the ring: a read names its buffers (the receive
//! chains) before the frame's length is known, so on the ring it too would need
//! RWF_NOWAIT not to hold them; it would then cost one `io_uring_enter` where `readv`
//! costs one system call, and `readv` measured faster (a 1.5 kB frame from a tap on
//! Linux 6.18: 0.5 us against 0.95 us), so the ring only says when to read.
//!
//! Without io_uring (the host's is disabled or filtered, as [`engine_uring::probe`] finds
//! it; a tap that refuses RWF_NOWAIT falls back for writes only), the handler waits on an
//! epoll of its own ([`Watch`]: the tap while armed, and an eventfd that `submit` writes
//! where the ring path arms or wakes) and sends each frame with one `writev` when popped.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use io_uring::{opcode, squeue, types, IoUring};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

use super::rx::{Outcome, Receiver};
use super::tap::Tap;
use super::{tx, QUEUE_SIZE, RX_QUEUE, TX_QUEUE};
use crate::devices::virtio::block::engine_uring;
use crate::devices::virtio::chain::Chain;
use crate::devices::virtio::{DeviceError, QueueHandler};

/// Most frames one [`QueueHandler::complete`] call takes from the tap.
pub const RX_BUDGET: usize = 64;

/// The opcodes the device submits: all that its ring accepts.
pub const RING_OPS: [u8; 3] = [opcode::PollAdd::CODE, opcode::PollRemove::CODE, opcode::Writev::CODE];

/// Most transmit frames written with one `io_uring_enter` (a full queue).
const TX_BATCH: usize = QUEUE_SIZE as usize;

/// SQEs of the ring: a batch and the poll, with room to spare (twice as many CQEs).
const RING_ENTRIES: u32 = 2 * QUEUE_SIZE as u32;

/// A poll's `user_data` is POLL | its generation (a write's is its place in the batch):
/// the CQEs of a poll removed or ended are known for stale when a newer one is armed.
const POLL: u64 = 1 << 63;

/// A POLL_REMOVE's `user_data`.
const REMOVE: u64 = 1 << 62;

/// What a CQE of the device's ring is.
enum Cqe {
    /// The current poll's (noted in `Uring`).
    Poll,
    /// The write at this place of the batch.
    Write(usize),
    /// A poll removed or ended, or a POLL_REMOVE: nothing to do.
    Stale,
}

/// How the host side waits and writes (made by `prepare`).
enum HostIo {
    Uring(Box<Uring>),
    Epoll(Watch),
}

/// The device's io_uring.
struct Uring {
    ring: IoUring,
    /// Registered with the ring (the completion fd).
    eventfd: EventFd,
    poll: PollState,
}

/// The poll on the tap, as its CQEs tell it.
struct PollState {
    /// A POLL_ADD on the tap is in flight (it has not posted its last CQE).
    armed: bool,
    /// The generation of the current poll (in its `user_data`).
    generation: u64,
    /// Polls are multishot (false once the kernel refused one: before Linux 5.13).
    multishot: bool,
    /// What the polls answered since `complete` last looked (their revents together,
    /// or the first -errno).
    fired: Option<i32>,
}

fn retryable(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN | libc::EBUSY))
}

impl Uring {
    fn new() -> io::Result<Self> {
        engine_uring::probe().map_err(|e| io::Error::other(format!("io_uring unavailable: {e}")))?;
        let eventfd = EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)?;
        let ring = engine_uring::restricted_ring_for(RING_ENTRIES, &eventfd, &RING_OPS, squeue::Flags::empty())?;
        Ok(Self { ring, eventfd, poll: PollState { armed: false, generation: 0, multishot: true, fired: None } })
    }

    /// Hands the SQEs queued to the kernel (retrying EINTR, EAGAIN and EBUSY a while).
    fn submit(&mut self) -> io::Result<()> {
        let mut tries = 0;
        while !self.ring.submission().is_empty() {
            match self.ring.submit() {
                Ok(_) => {}
                Err(e) if retryable(&e) && tries < 1000 => {
                    tries += 1;
                    std::thread::yield_now();
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Arms the (multishot) poll on the tap.
    fn arm(&mut self, tap: RawFd) -> io::Result<()> {
        let p = &mut self.poll;
        p.generation = p.generation.wrapping_add(1) & (REMOVE - 1);
        let poll = opcode::PollAdd::new(types::Fd(tap), libc::POLLIN as u32)
            .multi(p.multishot)
            .build()
            .user_data(POLL | p.generation);
        // SAFETY: a poll refers to no memory of ours; the tap outlives the ring (the
        // handler holds both, and a poll left in flight ends with the ring).
        unsafe { self.ring.submission().push(&poll) }.map_err(|_| io::Error::other("io_uring submission queue full"))?;
        self.submit()?;
        self.poll.armed = true;
        Ok(())
    }

    /// Removes the poll in flight: its CQEs from here on, and the POLL_REMOVE's, are
    /// stale. They are posted before `io_uring_enter` returns (the poll's -ECANCELED by
    /// task work on the way out), with the eventfd off so that they do not wake the
    /// worker, and reaped here. (A poll refers to no guest memory: nothing is waited for.)
    fn disarm(&mut self) -> io::Result<()> {
        let remove = opcode::PollRemove::new(POLL | self.poll.generation).build().user_data(REMOVE);
        // SAFETY: a POLL_REMOVE refers to no memory, only to the poll's user_data.
        unsafe { self.ring.submission().push(&remove) }.map_err(|_| io::Error::other("io_uring submission queue full"))?;
        self.poll.armed = false;
        self.ring.completion().disable_eventfd();
        let submitted = self.submit();
        self.ring.completion().enable_eventfd();
        for cqe in self.ring.completion() {
            // No poll is armed and no write is in flight: every CQE is stale. (ENOENT or
            // EALREADY: the poll had ended, or was ending.)
            let (data, res) = (cqe.user_data(), cqe.result());
            if data == REMOVE && res < 0 && res != -libc::ENOENT && res != -libc::EALREADY {
                log::warn!("virtio-net: io_uring: removing the poll on the tap: {}", io::Error::from_raw_os_error(-res));
            }
            let _ = self.poll.note(data, res, cqe.flags());
        }
        submitted
    }
}

impl PollState {
    /// Sorts a CQE, and notes it if it is the current poll's: what it answered goes to
    /// `fired`, and without IORING_CQE_F_MORE the poll has ended (one-shot, or a
    /// multishot poll the kernel ended).
    fn note(&mut self, data: u64, res: i32, flags: u32) -> Cqe {
        if data & POLL == 0 {
            return if data & REMOVE == 0 { Cqe::Write(data as usize) } else { Cqe::Stale };
        }
        if data != POLL | self.generation || !self.armed {
            return Cqe::Stale;
        }
        if !io_uring::cqueue::more(flags) {
            self.armed = false;
            if res == -libc::EINVAL && self.multishot {
                // A kernel without multishot polls: one-shot ones from now on, armed again
                // by `complete` (the eventfd, written by this CQE, brings it).
                log::info!("virtio-net: the host's io_uring has no multishot poll: one-shot polls");
                self.multishot = false;
                return Cqe::Poll;
            }
        }
        self.fired = Some(match self.fired {
            Some(before) if before < 0 => before,
            Some(before) if res >= 0 => before | res,
            _ => res,
        });
        Cqe::Poll
    }
}

/// The handler's own epoll, without io_uring: what makes its completion fd readable.
struct Watch {
    epoll: Epoll,
    /// Written by the handler to get `complete` called.
    wake: EventFd,
    /// The tap is in `epoll`.
    armed: bool,
}

const WAKE_TOKEN: u64 = 0;
const TAP_TOKEN: u64 = 1;

impl Watch {
    fn new() -> io::Result<Self> {
        let epoll = Epoll::new()?;
        let wake = EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)?;
        epoll.ctl(ControlOperation::Add, wake.as_raw_fd(), EpollEvent::new(EventSet::IN, WAKE_TOKEN))?;
        Ok(Self { epoll, wake, armed: false })
    }

    /// Puts the tap in the epoll (`on`) or takes it out. Taking it out, rather than
    /// asking for no events, also silences EPOLLERR, which a deleted tap reports forever.
    fn arm(&mut self, tap: RawFd, on: bool) -> io::Result<()> {
        if on != self.armed {
            let (op, event) = if on {
                (ControlOperation::Add, EpollEvent::new(EventSet::IN, TAP_TOKEN))
            } else {
                (ControlOperation::Delete, EpollEvent::default())
            };
            self.epoll.ctl(op, tap, event)?;
            self.armed = on;
        }
        Ok(())
    }
}

impl HostIo {
    /// The ring, or the epoll when the host has no io_uring; `uring` false: the epoll.
    fn new(uring: bool) -> io::Result<Self> {
        let (host, why_not) = match if uring { Uring::new() } else { Err(io::Error::other("not asked for")) } {
            Ok(ring) => (HostIo::Uring(Box::new(ring)), None),
            Err(e) => (HostIo::Epoll(Watch::new()?), Some(e)),
        };
        // Said once (and again only if a later device chooses otherwise).
        static CHOSEN: AtomicU8 = AtomicU8::new(0);
        let choice = if why_not.is_none() { 1 } else { 2 };
        if CHOSEN.swap(choice, Ordering::Relaxed) != choice {
            match why_not {
                None => log::info!("virtio-net: the tap is served through the host's io_uring"),
                Some(e) => log::info!("virtio-net: the tap is served with epoll, readv and writev ({e})"),
            }
        }
        Ok(host)
    }
}

/// A transmit chain started on the ring: its head, its frame (none: dropped), the
/// result of its write.
type Pending = (u16, Option<tx::Frame>, i32);

pub struct NetHandler {
    tap: Arc<Tap>,
    rx: Receiver,
    /// Made by `prepare` (or why it could not be).
    host: Result<HostIo, String>,
    /// `prepare` may use io_uring (tests turn it off).
    try_uring: bool,
    /// Transmit frames go through the ring (false once the tap refused RWF_NOWAIT).
    ring_writes: bool,
    /// Transmit chains started since the last `submit`, in order.
    batch: Vec<Pending>,
    /// Most chains in `batch` (tests make it smaller).
    batch_max: usize,
    /// The batch filled up (the worker stopped popping): serve the queue again after it.
    full: bool,
    /// The used entries of the chains the last `submit` wrote.
    finished: Vec<(usize, u16, u32)>,
    /// Guest memory, kept while `batch` points into it.
    mem: Option<GuestMemoryMmap>,
    /// Receive chains were posted since the last `submit`.
    posted: bool,
    /// Reading the tap failed for good (it was deleted): nothing more is received.
    rx_closed: bool,
    /// Shown each WRITEV's iovecs before it goes on the ring (the fuzz target).
    write_hook: Option<WriteHook>,
    /// VIRTIO_NET_F_CSUM: transmit headers may ask for a checksum.
    csum: bool,
    /// Set by `with_checksum_offload`: whether `prepare` turns the tap's TUN_F_CSUM on.
    tap_offload: Option<bool>,
}

/// What [`NetHandler::with_write_hook`] calls: the tap's descriptor and the iovecs of one
/// WRITEV, header first, as the SQE about to be submitted points at them.
pub type WriteHook = fn(RawFd, &[libc::iovec]);

impl NetHandler {
    /// A handler on `tap`; `mrg`: VIRTIO_NET_F_MRG_RXBUF was negotiated.
    pub fn new(tap: Arc<Tap>, mrg: bool) -> Self {
        Self {
            tap,
            rx: Receiver::new(mrg),
            host: Err("not prepared".into()),
            try_uring: true,
            ring_writes: true,
            batch: Vec::new(),
            batch_max: TX_BATCH,
            full: false,
            finished: Vec::new(),
            mem: None,
            posted: false,
            rx_closed: false,
            write_hook: None,
            csum: false,
            tap_offload: None,
        }
    }

    /// The checksum offloads negotiated: `csum` (VIRTIO_NET_F_CSUM, the guest's frames
    /// may ask the host for their checksum), `guest_csum` (VIRTIO_NET_F_GUEST_CSUM, the
    /// tap's partly checksummed or checked frames go to the guest as such).
    pub fn with_checksum_offload(mut self, csum: bool, guest_csum: bool) -> Self {
        self.csum = csum;
        self.rx.set_guest_csum(guest_csum);
        self.tap_offload = Some(guest_csum);
        self
    }

    /// Without io_uring, as on a host that has none: `prepare` chooses the epoll, `readv`
    /// and `writev` path (the unit tests and the fuzz target serve both paths).
    pub fn without_uring(mut self) -> Self {
        self.try_uring = false;
        self
    }

    /// Calls `hook` with the iovecs of every WRITEV just before it is queued on the ring,
    /// where an interposed `writev` cannot see them: the fuzz target
    /// (`fuzz/src/targets/net.rs`) checks there that they lie in guest memory but the
    /// header. One untaken branch per frame without a hook.
    pub fn with_write_hook(mut self, hook: WriteHook) -> Self {
        self.write_hook = Some(hook);
        self
    }

    /// At most `n` transmit chains per write batch (tests: the full-batch path).
    #[cfg(test)]
    pub(crate) fn with_batch_max(mut self, n: usize) -> Self {
        self.batch_max = n;
        self
    }

    /// Whether `prepare` chose the ring.
    pub fn uses_uring(&self) -> bool {
        matches!(self.host, Ok(HostIo::Uring(_)))
    }

    fn host(&mut self) -> Result<&mut HostIo, DeviceError> {
        self.host.as_mut().map_err(|e| DeviceError::Queue(format!("virtio-net: cannot watch the tap: {e}")))
    }

    /// Writes the batch's frames with one `io_uring_enter` and waits for them all; their
    /// used entries go to `finished`, in order.
    fn flush(&mut self) -> Result<(), DeviceError> {
        let Self { tap, host, batch, finished, full, ring_writes, write_hook, .. } = self;
        if batch.is_empty() {
            return Ok(());
        }
        let Ok(HostIo::Uring(u)) = host else {
            return Err(DeviceError::Queue("virtio-net: transmit frames started without a ring".into()));
        };
        let uerr = |e: io::Error| DeviceError::Queue(format!("virtio-net: io_uring: {e}"));
        let writes = batch.iter().filter(|p| p.1.is_some()).count();
        let mut wake = false;
        if writes > 0 {
            {
                let mut sq = u.ring.submission();
                if sq.capacity() - sq.len() < writes {
                    return Err(DeviceError::Queue("virtio-net: io_uring submission queue full".into()));
                }
                let fd = types::Fd(tap.fd());
                for (i, (_, frame, _)) in batch.iter_mut().enumerate() {
                    let Some(frame) = frame else { continue };
                    let iov = frame.iovecs();
                    if let Some(hook) = write_hook {
                        hook(fd.0, iov);
                    }
                    let write = opcode::Writev::new(fd, iov.as_ptr(), iov.len() as u32)
                        .offset(u64::MAX)
                        .rw_flags(libc::RWF_NOWAIT)
                        .build()
                        .user_data(i as u64);
                    // SAFETY: the SQE points at the frame's iovecs, which stay in `batch`
                    // (not moved: it does not grow until it is drained below) until this
                    // function has reaped the write's CQE; they point at the frame's own
                    // header copy and at the chain's device-readable buffers in guest
                    // memory, checked by vm-memory and mapped while `self.mem` lives.
                    // RWF_NOWAIT: the write is done inside io_uring_enter.
                    unsafe { sq.push(&write) }.expect("room checked above");
                }
            }
            // The writes' CQEs are reaped here: they must not wake the worker.
            u.ring.completion().disable_eventfd();
            let mut left = writes;
            let mut tries = 0;
            while left > 0 {
                match u.ring.submit_and_wait(left) {
                    Ok(_) => {}
                    Err(e) if retryable(&e) && tries < 1000 => {
                        tries += 1;
                        std::thread::yield_now();
                    }
                    Err(e) => {
                        // The kernel may still read these frames' iovecs: never free them.
                        std::mem::forget(std::mem::take(batch));
                        u.ring.completion().enable_eventfd();
                        return Err(uerr(e));
                    }
                }
                for cqe in u.ring.completion() {
                    match u.poll.note(cqe.user_data(), cqe.result(), cqe.flags()) {
                        Cqe::Poll => wake = true,
                        Cqe::Write(i) => {
                            if let Some(p) = batch.get_mut(i).filter(|p| p.1.is_some()) {
                                p.2 = cqe.result();
                                left -= 1;
                            }
                        }
                        Cqe::Stale => {}
                    }
                }
            }
            u.ring.completion().enable_eventfd();
            // A CQE (the poll's) posted while the eventfd was off is left for `complete`.
            std::sync::atomic::fence(Ordering::SeqCst);
            wake |= !u.ring.completion().is_empty();
        }
        for (head, frame, res) in batch.drain(..) {
            if let Some(mut frame) = frame {
                if res == -libc::EOPNOTSUPP || res == -libc::EINTR {
                    if res == -libc::EOPNOTSUPP && std::mem::replace(ring_writes, false) {
                        log::info!("virtio-net: tap {} refuses RWF_NOWAIT: frames are sent with writev", tap.name());
                    }
                    tx::write_now(&mut frame, &**tap);
                } else {
                    tx::sent(frame.len, if res >= 0 { Ok(res as usize) } else { Err(io::Error::from_raw_os_error(-res)) });
                }
            }
            finished.push((TX_QUEUE, head, 0));
        }
        if wake || std::mem::take(full) {
            u.eventfd.write(1).map_err(uerr)?;
        }
        Ok(())
    }
}

impl QueueHandler for NetHandler {
    fn process(&mut self, queue: usize, mem: &GuestMemoryMmap, chain: &Chain) -> Result<u32, DeviceError> {
        match queue {
            TX_QUEUE => tx::transmit(mem, chain, &*self.tap, self.csum),
            _ => Err(DeviceError::Queue(format!("virtio-net: queue {queue} is not the transmit queue"))),
        }
    }

    fn start(&mut self, queue: usize, mem: &GuestMemoryMmap, chain: Chain) -> Result<Option<u32>, DeviceError> {
        if queue == RX_QUEUE {
            self.host()?;
            self.rx.push(chain)?;
            self.posted = true;
            return Ok(None);
        }
        if queue != TX_QUEUE || !self.ring_writes || !self.uses_uring() {
            return self.process(queue, mem, &chain).map(Some);
        }
        let frame = match tx::check(mem, &chain, self.csum) {
            Ok(frame) => frame,
            Err(e) => {
                // The device needs a reset; the frames before this chain go out first, as
                // they would have one by one.
                if let Err(f) = self.flush() {
                    log::warn!("{f}");
                }
                return Err(e);
            }
        };
        if frame.is_none() && self.batch.is_empty() {
            return Ok(Some(0));
        }
        if self.mem.is_none() {
            self.mem = Some(mem.clone());
        }
        self.batch.push((chain.head, frame, 0));
        if self.batch.len() >= self.batch_max {
            self.full = true;
        }
        Ok(None)
    }

    fn has_room(&self) -> bool {
        self.batch.len() < self.batch_max
    }

    fn submit(&mut self) -> Result<(), DeviceError> {
        self.flush()?;
        if !std::mem::take(&mut self.posted) || self.rx_closed {
            return Ok(());
        }
        let pending = self.rx.is_pending();
        let tap = self.tap.fd();
        let err = |what: &str, e: io::Error| DeviceError::Queue(format!("virtio-net: {what}: {e}"));
        match self.host()? {
            // A frame waits for chains: `complete` finishes it. Not armed: chains have come,
            // so the tap is watched again (a frame already there completes the poll).
            HostIo::Uring(u) if pending => u.eventfd.write(1).map_err(|e| err("eventfd", e)),
            HostIo::Uring(u) if !u.poll.armed => u.arm(tap).map_err(|e| err("io_uring", e)),
            HostIo::Uring(_) => Ok(()),
            // Armed and nothing waiting: the tap's readiness brings `complete` when a frame
            // comes, and the new chains are there for it.
            HostIo::Epoll(w) if !w.armed || pending => w.wake.write(1).map_err(|e| err("eventfd", e)),
            HostIo::Epoll(_) => Ok(()),
        }
    }

    fn finished(&mut self, done: &mut Vec<(usize, u16, u32)>) {
        done.append(&mut self.finished);
    }

    fn completion_fd(&self) -> Option<RawFd> {
        match self.host.as_ref().ok()? {
            HostIo::Uring(u) => Some(u.eventfd.as_raw_fd()),
            HostIo::Epoll(w) => Some(w.epoll.as_raw_fd()),
        }
    }

    fn complete(&mut self, mem: &GuestMemoryMmap, done: &mut Vec<(usize, u16, u32)>) -> Result<(), DeviceError> {
        // Cleared first: a CQE or a wake from here on makes the fd readable again.
        let fired = match self.host()? {
            HostIo::Uring(u) => {
                let _ = u.eventfd.read();
                for cqe in u.ring.completion() {
                    if let Cqe::Write(i) = u.poll.note(cqe.user_data(), cqe.result(), cqe.flags()) {
                        log::warn!("virtio-net: io_uring: a completion for unknown op {i}");
                    }
                }
                u.poll.fired.take()
            }
            HostIo::Epoll(w) => {
                let _ = w.wake.read();
                None
            }
        };
        if let Some(res) = fired.filter(|&r| r < 0) {
            log::warn!("virtio-net: polling tap {}: {}; the guest receives nothing more", self.tap.name(), io::Error::from_raw_os_error(-res));
            self.rx_closed = true;
        }
        // The budget ran out: frames may still wait, and a multishot poll fires only when
        // another comes.
        let mut spent = true;
        if !self.rx_closed {
            for _ in 0..RX_BUDGET {
                match self.rx.receive(mem, &*self.tap, done)? {
                    Outcome::Delivered | Outcome::Dropped => continue,
                    Outcome::NoFrame if fired.is_some_and(|r| r & i32::from(libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0) => {
                        // The tap reports an error and no frame: watching it would spin.
                        log::warn!("virtio-net: tap {} reports an error; the guest receives nothing more", self.tap.name());
                        self.rx_closed = true;
                    }
                    Outcome::Pending | Outcome::NoBuffers | Outcome::NoFrame => {}
                    Outcome::Failed(e) => {
                        log::warn!("virtio-net: reading tap {}: {e}; the guest receives nothing more", self.tap.name());
                        self.rx_closed = true;
                    }
                }
                spent = false;
                break;
            }
        }
        let want = !self.rx_closed && self.rx.wants_frames();
        let tap = self.tap.fd();
        let uerr = |e: io::Error| DeviceError::Queue(format!("virtio-net: io_uring: {e}"));
        match self.host()? {
            // (A frame already waiting completes a new poll at once.)
            HostIo::Uring(u) if want && !u.poll.armed => u.arm(tap).map_err(uerr),
            HostIo::Uring(u) if want && spent => u.eventfd.write(1).map_err(uerr),
            // No chain to fill, or a frame waits for chains: the tap is not watched.
            HostIo::Uring(u) if !want && u.poll.armed => u.disarm().map_err(uerr),
            HostIo::Uring(_) => Ok(()),
            HostIo::Epoll(w) => w.arm(tap, want).map_err(|e| DeviceError::Queue(format!("virtio-net: epoll: {e}"))),
        }
    }

    fn prepare(&mut self) {
        self.host = HostIo::new(self.try_uring).map_err(|e| e.to_string());
        // The tap hands partly checksummed frames only to a guest that takes them (each
        // activation says again; a reset's renegotiation may turn it off).
        if let Some(guest_csum) = self.tap_offload
            && let Err(e) = self.tap.set_offload(if guest_csum { super::tap::TUN_F_CSUM } else { 0 })
        {
            log::warn!("virtio-net: tap {}: TUNSETOFFLOAD: {e}", self.tap.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::chain::tests::TestQueue;
    use crate::devices::virtio::net::rx::tests::pattern;
    use crate::devices::virtio::net::{NetHdr, HDR_LEN};
    use crate::devices::virtio::worker::{Worker, WorkerHandle};
    use crate::devices::virtio::Interrupt;
    use std::fs::File;
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::time::{Duration, Instant};
    use vm_memory::{Bytes, GuestAddress};

    /// A datagram socket pair: one end stands in for the tap (message boundaries kept,
    /// nonblocking), the other plays the host's side of it.
    fn fake_tap() -> (Tap, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: socketpair fills two descriptors, which we own from here on.
        assert_eq!(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) }, 0);
        // SAFETY: fresh descriptors owned by nobody else.
        let (ours, host) = unsafe { (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: F_SETFL with a flag word on an open descriptor.
        assert_eq!(unsafe { libc::fcntl(ours.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) }, 0);
        (Tap::from_file(ours, "fake"), host)
    }

    fn host_send(host: &OwnedFd, frame: &[u8]) {
        let msg = [&NetHdr::default().to_bytes()[..], frame].concat();
        // SAFETY: a send of our own buffer.
        let n = unsafe { libc::send(host.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        assert_eq!(n, msg.len() as isize);
    }

    fn host_recv(host: &OwnedFd) -> Vec<u8> {
        let mut buf = vec![0u8; 70000];
        // SAFETY: a receive into our own buffer (blocking: the socket's default).
        let n = unsafe { libc::recv(host.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        assert!(n >= 0);
        buf.truncate(n as usize);
        buf
    }

    /// The CPU time (clock ticks) the thread named `name` has taken so far.
    fn thread_ticks(name: &str) -> Option<u64> {
        for task in std::fs::read_dir("/proc/self/task").ok()? {
            let path = task.ok()?.path();
            if std::fs::read_to_string(path.join("comm")).ok()?.trim_end() == name {
                let stat = std::fs::read_to_string(path.join("stat")).ok()?;
                let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
                // utime and stime: fields 14 and 15, the 12th and 13th after the name.
                return Some(fields[11].parse::<u64>().ok()? + fields[12].parse::<u64>().ok()?);
            }
        }
        None
    }

    struct Running {
        t: TestQueue,
        kick: EventFd,
        stop: EventFd,
        irq: EventFd,
        host: OwnedFd,
        thread: Option<WorkerHandle>,
        used_seen: u16,
    }

    impl Running {
        /// A worker serving queue `index` (on the TestQueue's rings) of a handler on a
        /// fake tap, through the host's io_uring if `uring` (and the host has one).
        fn start(name: &str, index: usize, mrg: bool, uring: bool) -> Self {
            let (tap, host) = fake_tap();
            let handler = NetHandler::new(Arc::new(tap), mrg);
            Self::with_handler(name, index, if uring { handler } else { handler.without_uring() }, host)
        }

        fn with_handler(name: &str, index: usize, handler: NetHandler, host: OwnedFd) -> Self {
            let t = TestQueue::with_ram(16, 4 << 20);
            let q = t.queue();
            let kick = EventFd::new(libc::EFD_NONBLOCK).unwrap();
            let stop = EventFd::new(libc::EFD_NONBLOCK).unwrap();
            let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
            let worker = Worker::new(
                name.into(),
                t.mem.clone(),
                vec![(index, q, kick.try_clone().unwrap())],
                Box::new(handler),
                Arc::new(Interrupt::new(irq.try_clone().unwrap())),
                None,
                stop.try_clone().unwrap(),
                Duration::ZERO,
                None,
            );
            let thread = Some(worker.spawn().unwrap());
            Self { t, kick, stop, irq, host, thread, used_seen: 0 }
        }

        /// Waits for the next used element: (id, len).
        fn wait_used(&mut self) -> Option<(u32, u32)> {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                let (idx, id, len) = self.t.used(self.used_seen);
                if idx != self.used_seen {
                    self.used_seen = self.used_seen.wrapping_add(1);
                    return Some((id, len));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            None
        }

        fn no_more_used(&self) -> bool {
            std::thread::sleep(Duration::from_millis(50));
            self.t.used(0).0 == self.used_seen
        }

        /// Posts a receive chain of one buffer at descriptor `d`, and kicks.
        fn post(&mut self, d: u16, size: u32) {
            self.t.chain(d, &[(0x10_0000 + 0x2_0000 * u64::from(d), size, true)]);
            self.t.publish(d);
            self.kick.write(1).unwrap();
        }

        fn received(&self, d: u16, len: usize) -> Vec<u8> {
            let mut b = vec![0u8; len];
            self.t.mem.read_slice(&mut b, GuestAddress(0x10_0000 + 0x2_0000 * u64::from(d))).unwrap();
            b
        }

        fn finish(mut self) {
            self.stop.write(1).unwrap();
            self.thread.take().unwrap().join().unwrap();
        }
    }

    /// Frames from the host reach the guest's chains, in order, with an interrupt; when
    /// the guest has no chain the device leaves the tap alone (without spinning, and the
    /// frames stay in the host's queue), and takes them once the guest posts chains.
    #[test]
    fn receive_through_the_worker() {
        receive_through_the_worker_on("net-rx-uring", true);
        receive_through_the_worker_on("net-rx-epoll", false);
    }

    fn receive_through_the_worker_on(name: &str, uring: bool) {
        let mut r = Running::start(name, RX_QUEUE, true, uring);
        r.post(0, 2048);
        let frames: Vec<Vec<u8>> = (0..3).map(|i| pattern(100 + i, i as u8)).collect();
        for f in &frames {
            host_send(&r.host, f);
        }
        assert_eq!(r.wait_used(), Some((0, HDR_LEN as u32 + 100)));
        assert_eq!(&r.received(0, HDR_LEN + 100)[HDR_LEN..], &frames[0][..]);
        assert_eq!(NetHdr::from_bytes(&r.received(0, HDR_LEN).try_into().unwrap()).num_buffers, 1);
        assert!(r.irq.read().unwrap() >= 1, "an interrupt for the used entry");
        assert!(r.no_more_used());
        // No chain: the worker sleeps although frames wait.
        if let Some(before) = thread_ticks(name) {
            std::thread::sleep(Duration::from_millis(300));
            let spent = thread_ticks(name).unwrap() - before;
            assert!(spent <= 3, "the worker spun for {spent} ticks with no buffers");
        }
        r.post(1, 2048);
        r.post(2, 2048);
        assert_eq!(r.wait_used(), Some((1, HDR_LEN as u32 + 101)));
        assert_eq!(r.wait_used(), Some((2, HDR_LEN as u32 + 102)));
        assert_eq!(&r.received(1, HDR_LEN + 101)[HDR_LEN..], &frames[1][..]);
        assert_eq!(&r.received(2, HDR_LEN + 102)[HDR_LEN..], &frames[2][..]);
        // A chain posted before the frame: served when it comes, with no kick.
        r.post(3, 2048);
        std::thread::sleep(Duration::from_millis(20));
        let late = pattern(1514, 9);
        host_send(&r.host, &late);
        assert_eq!(r.wait_used(), Some((3, HDR_LEN as u32 + 1514)));
        assert_eq!(&r.received(3, HDR_LEN + 1514)[HDR_LEN..], &late[..]);
        r.finish();
    }

    /// A frame larger than one chain waits for the guest to post enough (MRG_RXBUF).
    #[test]
    fn a_large_frame_waits_for_chains_through_the_worker() {
        for uring in [true, false] {
            a_large_frame_waits_on(uring);
        }
    }

    fn a_large_frame_waits_on(uring: bool) {
        let mut r = Running::start("net-mrg-test", RX_QUEUE, true, uring);
        r.post(0, 1024);
        let frame = pattern(3000, 1);
        host_send(&r.host, &frame);
        assert!(r.no_more_used());
        r.post(1, 1024);
        assert!(r.no_more_used());
        r.post(2, 1024);
        assert_eq!(r.wait_used(), Some((0, 1024)));
        assert_eq!(r.wait_used(), Some((1, 1024)));
        assert_eq!(r.wait_used(), Some((2, 964)));
        let back = [&r.received(0, 1024)[HDR_LEN..], &r.received(1, 1024)[..], &r.received(2, 964)[..]].concat();
        assert_eq!(back, frame);
        assert_eq!(NetHdr::from_bytes(&r.received(0, HDR_LEN).try_into().unwrap()).num_buffers, 3);
        r.finish();
    }

    /// Frames of the transmit queue reach the host with their header; a bad one is
    /// answered and dropped, and the device goes on.
    #[test]
    fn transmit_through_the_worker() {
        for uring in [true, false] {
            transmit_through_the_worker_on(uring);
        }
    }

    fn transmit_through_the_worker_on(uring: bool) {
        let mut r = Running::start("net-tx-test", TX_QUEUE, false, uring);
        let frame = pattern(1514, 4);
        let (hdr, data) = (0x10_0000u64, 0x20_0000u64);
        r.t.mem.write_slice(&NetHdr::default().to_bytes(), GuestAddress(hdr)).unwrap();
        r.t.mem.write_slice(&frame, GuestAddress(data)).unwrap();
        r.t.chain(0, &[(hdr, 12, false), (data, 1514, false)]);
        r.t.publish(0);
        r.t.chain(2, &[(hdr, 12, false)]); // no frame: dropped
        r.t.publish(2);
        r.t.chain(3, &[(hdr, 12, false), (data, 60, false)]);
        r.t.publish(3);
        r.kick.write(1).unwrap();
        assert_eq!(r.wait_used(), Some((0, 0)));
        assert_eq!(r.wait_used(), Some((2, 0)));
        assert_eq!(r.wait_used(), Some((3, 0)));
        let sent = host_recv(&r.host);
        assert_eq!(&sent[..HDR_LEN], &[0; HDR_LEN]);
        assert_eq!(&sent[HDR_LEN..], &frame[..]);
        assert_eq!(&host_recv(&r.host)[HDR_LEN..], &frame[..60]);
        r.finish();
    }

    /// The frames of a drained transmit queue go out in one batch (or, past the batch's
    /// size, in several: the worker stops popping and comes back), in order, and their
    /// used entries follow the avail ring's order, dropped chains included.
    #[test]
    fn a_batch_of_frames_goes_out_in_order() {
        for (uring, max) in [(true, TX_BATCH), (true, 4), (false, TX_BATCH)] {
            let (tap, host) = fake_tap();
            let mut handler = NetHandler::new(Arc::new(tap), false).with_batch_max(max);
            if !uring {
                handler = handler.without_uring();
            }
            let mut r = Running::with_handler("net-tx-batch", TX_QUEUE, handler, host);
            let frames: Vec<Vec<u8>> = (0..15).map(|i| pattern(60 + 97 * i, i as u8)).collect();
            for (i, f) in frames.iter().enumerate() {
                let at = 0x10_0000 + 0x1_0000 * i as u64;
                r.t.mem.write_slice(&NetHdr::default().to_bytes(), GuestAddress(at)).unwrap();
                r.t.mem.write_slice(f, GuestAddress(at + HDR_LEN as u64)).unwrap();
                // Chains 0 and 7: a header and no frame (dropped).
                let len = if i % 7 == 0 { HDR_LEN } else { HDR_LEN + f.len() };
                r.t.chain(i as u16, &[(at, len as u32, false)]);
                r.t.publish(i as u16);
            }
            r.kick.write(1).unwrap();
            for i in 0..15 {
                assert_eq!(r.wait_used(), Some((i, 0)), "uring {uring}, batches of {max}");
            }
            for (i, f) in frames.iter().enumerate().filter(|(i, _)| i % 7 != 0) {
                assert_eq!(&host_recv(&r.host)[HDR_LEN..], &f[..], "frame {i}, uring {uring}, batches of {max}");
            }
            assert!(r.no_more_used());
            r.finish();
        }
    }

    /// Whether `fd` becomes readable within `ms` milliseconds.
    fn readable_within(fd: RawFd, ms: u64) -> bool {
        let deadline = Instant::now() + Duration::from_millis(ms);
        loop {
            let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            let left = deadline.saturating_duration_since(Instant::now()).as_millis() as i32;
            // SAFETY: one valid pollfd. (A completion's task work may interrupt it: EINTR.)
            if unsafe { libc::poll(&mut pfd, 1, left) } > 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    }

    /// A handler on the ring, prepared, and guest memory with a receive queue.
    fn ring_handler(tap: Arc<Tap>) -> (NetHandler, TestQueue, virtio_queue::Queue) {
        let mut h = NetHandler::new(tap, false);
        h.prepare();
        assert!(h.uses_uring(), "this host has io_uring");
        let t = TestQueue::with_ram(16, 4 << 20);
        let q = t.queue();
        (h, t, q)
    }

    /// Posts a receive chain of one 2 kB buffer at descriptor `d`, and submits it.
    fn post_to(h: &mut NetHandler, t: &mut TestQueue, q: &mut virtio_queue::Queue, d: u16) {
        t.chain(d, &[(0x10_0000 + 0x1_0000 * u64::from(d), 2048, true)]);
        t.publish(d);
        assert_eq!(h.start(RX_QUEUE, &t.mem, t.pop(q).unwrap()).unwrap(), None);
        h.submit().unwrap();
    }

    /// The poll is in flight only while chains are held: a frame with no chain leaves the
    /// completion fd quiet, and posting chains arms the poll again (a frame already
    /// waiting completes it at once).
    #[test]
    fn the_poll_is_armed_again_when_chains_come() {
        for multishot in [true, false] {
            the_poll_is_armed_again_on(multishot);
        }
    }

    /// (With one-shot polls, as a kernel without multishot ones gets.)
    fn the_poll_is_armed_again_on(multishot: bool) {
        let (tap, host) = fake_tap();
        let (mut h, mut t, mut q) = ring_handler(Arc::new(tap));
        if let Ok(HostIo::Uring(u)) = &mut h.host {
            u.poll.multishot = multishot;
        }
        let fd = h.completion_fd().unwrap();
        let mut done = Vec::new();
        host_send(&host, &pattern(100, 1));
        assert!(!readable_within(fd, 50), "no chain: the tap is not watched");
        post_to(&mut h, &mut t, &mut q, 0);
        assert!(readable_within(fd, 2000), "the waiting frame completes the new poll");
        h.complete(&t.mem, &mut done).unwrap();
        assert_eq!(done, [(RX_QUEUE, 0, HDR_LEN as u32 + 100)]);
        // No chain left: not armed, whatever comes.
        host_send(&host, &pattern(200, 2));
        assert!(!readable_within(fd, 50));
        post_to(&mut h, &mut t, &mut q, 1);
        assert!(readable_within(fd, 2000));
        done.clear();
        h.complete(&t.mem, &mut done).unwrap();
        assert_eq!(done, [(RX_QUEUE, 1, HDR_LEN as u32 + 200)]);
        // A chain and an empty tap: armed, quiet until a frame comes.
        post_to(&mut h, &mut t, &mut q, 2);
        assert!(!readable_within(fd, 50));
        host_send(&host, &pattern(300, 3));
        assert!(readable_within(fd, 2000));
        done.clear();
        h.complete(&t.mem, &mut done).unwrap();
        assert_eq!(done, [(RX_QUEUE, 2, HDR_LEN as u32 + 300)]);
        assert!(!readable_within(fd, 50));
    }

    /// A kernel that refuses multishot polls (EINVAL, before Linux 5.13) gets one-shot
    /// ones; stale CQEs (an older poll's, a POLL_REMOVE's) are ignored; revents add up
    /// until `complete` takes them, an error first.
    #[test]
    fn poll_cqes_are_sorted() {
        let more = 1 << 1; // IORING_CQE_F_MORE
        let mut p = PollState { armed: true, generation: 5, multishot: true, fired: None };
        assert!(matches!(p.note(3, 0, 0), Cqe::Write(3)));
        assert!(matches!(p.note(REMOVE, 0, 0), Cqe::Stale));
        assert!(matches!(p.note(POLL | 4, libc::POLLIN.into(), more), Cqe::Stale));
        assert!(matches!(p.note(POLL | 5, libc::POLLIN.into(), more), Cqe::Poll));
        assert!(matches!(p.note(POLL | 5, libc::POLLHUP.into(), more), Cqe::Poll));
        assert!(p.armed);
        assert_eq!(p.fired.take(), Some(i32::from(libc::POLLIN | libc::POLLHUP)));
        assert!(matches!(p.note(POLL | 5, -libc::EINVAL, 0), Cqe::Poll));
        assert!(!p.armed && !p.multishot && p.fired.is_none(), "EINVAL: one-shot polls from now on");
        p.armed = true;
        assert!(matches!(p.note(POLL | 5, -libc::EBADF, 0), Cqe::Poll));
        assert!(matches!(p.note(POLL | 5, libc::POLLIN.into(), 0), Cqe::Stale), "ended");
        assert_eq!(p.fired, Some(-libc::EBADF));
    }

    /// The poll's generation and whether it is armed.
    fn poll_state(h: &NetHandler) -> (u64, bool) {
        match &h.host {
            Ok(HostIo::Uring(u)) => (u.poll.generation, u.poll.armed),
            _ => panic!("not on the ring"),
        }
    }

    /// The multishot poll is armed once while chains are held, not after every wake; more
    /// frames than one `complete` takes bring it back (the poll does not fire again for
    /// frames already waiting); and once no chain is left it is removed, quietly.
    #[test]
    fn the_multishot_poll_stays_armed_while_chains_are_held() {
        let (tap, host) = fake_tap();
        let mut h = NetHandler::new(Arc::new(tap), false);
        h.prepare();
        assert!(h.uses_uring(), "this host has io_uring");
        let mut t = TestQueue::with_ram(128, 4 << 20);
        let mut q = t.queue();
        let fd = h.completion_fd().unwrap();
        let chains = RX_BUDGET as u16 + 10;
        for d in 0..chains {
            t.chain(d, &[(0x10_0000 + 0x1000 * u64::from(d), 2048, true)]);
            t.publish(d);
            assert_eq!(h.start(RX_QUEUE, &t.mem, t.pop(&mut q).unwrap()).unwrap(), None);
            h.submit().unwrap();
        }
        let (generation, armed) = poll_state(&h);
        assert!(armed);
        let mut done = Vec::new();
        for n in 1..=3 {
            host_send(&host, &pattern(100 + n, n as u8));
            assert!(readable_within(fd, 2000), "frame {n}");
            h.complete(&t.mem, &mut done).unwrap();
            assert_eq!(done.len(), n);
            assert_eq!(poll_state(&h), (generation, true), "armed once");
        }
        // More frames than the budget: a second call, which the first asks for.
        for n in 0..RX_BUDGET + 4 {
            host_send(&host, &pattern(60 + n, n as u8));
        }
        assert!(readable_within(fd, 2000));
        h.complete(&t.mem, &mut done).unwrap();
        assert_eq!(done.len(), 3 + RX_BUDGET);
        assert!(readable_within(fd, 2000), "the frames left after the budget bring complete back");
        h.complete(&t.mem, &mut done).unwrap();
        assert_eq!(done.len(), 3 + RX_BUDGET + 4);
        assert_eq!(poll_state(&h), (generation, true));
        // The last chains taken: the poll is removed, and its CQEs wake nobody.
        for n in 0..3 {
            host_send(&host, &pattern(200, n));
        }
        assert!(readable_within(fd, 2000));
        h.complete(&t.mem, &mut done).unwrap();
        assert_eq!(done.len(), usize::from(chains));
        assert!(!poll_state(&h).1, "no chain: not armed");
        assert!(!readable_within(fd, 50), "the removed poll's CQEs are reaped quietly");
        host_send(&host, &pattern(300, 9));
        assert!(!readable_within(fd, 50), "no chain: the tap is not watched");
        // A chain again: a new poll, which the waiting frames complete at once.
        t.chain(0, &[(0x10_0000, 2048, true)]);
        t.publish(0);
        assert_eq!(h.start(RX_QUEUE, &t.mem, t.pop(&mut q).unwrap()).unwrap(), None);
        h.submit().unwrap();
        assert_eq!(poll_state(&h), (generation + 1, true));
        assert!(readable_within(fd, 2000));
        done.clear();
        h.complete(&t.mem, &mut done).unwrap();
        assert_eq!(done, [(RX_QUEUE, 0, HDR_LEN as u32 + 300)]);
    }

    /// A reset (the handler dropped) with a poll in flight leaves nothing behind: the next
    /// frame is not taken by it nor written anywhere, and the next handler on the same tap
    /// gets it.
    #[test]
    fn a_reset_with_the_poll_armed_leaves_nothing_behind() {
        let (tap, host) = fake_tap();
        let tap = Arc::new(tap);
        let (mut h, mut t, mut q) = ring_handler(Arc::clone(&tap));
        post_to(&mut h, &mut t, &mut q, 0);
        assert!(!readable_within(h.completion_fd().unwrap(), 20), "armed, nothing to read");
        drop(h);
        let frame = pattern(1000, 5);
        host_send(&host, &frame);
        std::thread::sleep(Duration::from_millis(20));
        let mut first = vec![0u8; 2048];
        t.mem.read_slice(&mut first, GuestAddress(0x10_0000)).unwrap();
        assert!(first.iter().all(|&b| b == 0), "the old chain was written after the reset");
        let (mut h, mut t2, mut q2) = ring_handler(tap);
        post_to(&mut h, &mut t2, &mut q2, 1);
        assert!(readable_within(h.completion_fd().unwrap(), 2000));
        let mut done = Vec::new();
        h.complete(&t2.mem, &mut done).unwrap();
        assert_eq!(done, [(RX_QUEUE, 1, HDR_LEN as u32 + 1000)]);
        let mut back = vec![0u8; 1000];
        t2.mem.read_slice(&mut back, GuestAddress(0x10_0000 + 0x1_0000 + HDR_LEN as u64)).unwrap();
        assert_eq!(back, frame);
        // A worker stopped with its poll in flight ends at once.
        let (tap, host) = fake_tap();
        let mut r = Running::with_handler("net-reset-test", RX_QUEUE, NetHandler::new(Arc::new(tap), false), host);
        r.post(0, 2048);
        std::thread::sleep(Duration::from_millis(20));
        let start = Instant::now();
        r.finish();
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    /// A tap that hangs up (readable and in error for ever) does not spin the worker: the
    /// failed read ends receiving and the tap is not watched again.
    #[test]
    fn a_tap_that_hangs_up_does_not_spin() {
        for uring in [true, false] {
            let name = if uring { "net-hup-uring" } else { "net-hup-epoll" };
            let mut fds = [0; 2];
            let kind = libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
            // SAFETY: socketpair fills two descriptors, which we own from here on.
            assert_eq!(unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) }, 0);
            // SAFETY: fresh descriptors owned by nobody else.
            let (ours, host) = unsafe { (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
            let handler = NetHandler::new(Arc::new(Tap::from_file(ours, "hup")), false);
            let handler = if uring { handler } else { handler.without_uring() };
            let mut r = Running::with_handler(name, RX_QUEUE, handler, host);
            r.post(0, 2048);
            std::thread::sleep(Duration::from_millis(20));
            // The host's end goes: POLLHUP, and reads of nothing.
            drop(std::mem::replace(&mut r.host, OwnedFd::from(File::open("/dev/null").unwrap())));
            std::thread::sleep(Duration::from_millis(50));
            if let Some(before) = thread_ticks(name) {
                std::thread::sleep(Duration::from_millis(300));
                let spent = thread_ticks(name).unwrap() - before;
                assert!(spent <= 3, "the worker spun for {spent} ticks on a hung-up tap (uring {uring})");
            }
            assert!(r.no_more_used());
            r.finish();
        }
    }

    /// A tap deleted while the device watches it (POLLERR for ever): receiving ends, and
    /// the worker does not spin. Needs CAP_NET_ADMIN and `ip`; skipped without them.
    #[test]
    fn a_deleted_tap_does_not_spin() {
        for uring in [true, false] {
            let tap_name = format!("vmmt{}{}", std::process::id() % 100_000, u8::from(uring));
            let Ok(tap) = Tap::open(&tap_name) else {
                eprintln!("a_deleted_tap_does_not_spin: cannot create a tap (no CAP_NET_ADMIN?): skipped");
                return;
            };
            let name = if uring { "net-del-uring" } else { "net-del-epoll" };
            let handler = NetHandler::new(Arc::new(tap), false);
            let handler = if uring { handler } else { handler.without_uring() };
            let mut r = Running::with_handler(name, RX_QUEUE, handler, OwnedFd::from(File::open("/dev/null").unwrap()));
            r.post(0, 2048);
            std::thread::sleep(Duration::from_millis(20));
            let deleted = std::process::Command::new("ip").args(["link", "del", &tap_name]).status().is_ok_and(|s| s.success());
            if !deleted {
                eprintln!("a_deleted_tap_does_not_spin: cannot delete {tap_name}: skipped");
                r.finish();
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
            if let Some(before) = thread_ticks(name) {
                std::thread::sleep(Duration::from_millis(300));
                let spent = thread_ticks(name).unwrap() - before;
                assert!(spent <= 3, "the worker spun for {spent} ticks on a deleted tap (uring {uring})");
            }
            assert!(r.no_more_used());
            r.finish();
        }
    }

    /// A descriptor that refuses RWF_NOWAIT (/dev/full): the frame is written with writev
    /// (and refused there, ENOSPC: dropped), and later frames are sent one by one.
    #[test]
    fn a_tap_without_nowait_writes_falls_back_to_writev() {
        let full = std::fs::OpenOptions::new().read(true).write(true).open("/dev/full").unwrap();
        let (mut h, t, _) = ring_handler(Arc::new(Tap::from_file(full, "full")));
        let mut q = t.queue();
        let mut t = t;
        t.mem.write_slice(&NetHdr::default().to_bytes(), GuestAddress(0x10_0000)).unwrap();
        t.chain(0, &[(0x10_0000, 100, false)]);
        t.publish(0);
        t.publish(0);
        assert_eq!(h.start(TX_QUEUE, &t.mem, t.pop(&mut q).unwrap()).unwrap(), None);
        h.submit().unwrap();
        let mut done = Vec::new();
        h.finished(&mut done);
        assert_eq!(done, [(TX_QUEUE, 0, 0)]);
        assert!(!h.ring_writes);
        assert_eq!(h.start(TX_QUEUE, &t.mem, t.pop(&mut q).unwrap()).unwrap(), Some(0), "sent at once now");
    }
}
